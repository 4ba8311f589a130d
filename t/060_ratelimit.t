#!/usr/bin/perl

# Rate limits are nginx's own limit_req keyed on the module's variables:
# per client for PKIOperation, per transactionID, and looser for the CA
# operations.  Each works for GET and POST, does not touch other
# clients, and its 429 or 503 carries Retry-After.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
my $b = $t->start_backend;

$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    map $scep_operation $scep_pki_client {
        PKIOperation  $binary_remote_addr;
        default       "";
    }
    map $scep_operation $scep_pki_transaction {
        PKIOperation  $scep_transaction_id;
        default       "";
    }
    map $scep_operation $scep_ca_client {
        PKIOperation  "";
        ""            "";
        default       $binary_remote_addr;
    }

    limit_req_zone $scep_pki_client zone=pki:1m rate=1r/m;
    limit_req_zone $scep_pki_transaction zone=tid:1m rate=1r/m;
    limit_req_zone $scep_ca_client zone=ca:1m rate=1r/m;

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            scep_body_before_limits on;
            limit_req zone=pki burst=1 nodelay;
            limit_req zone=tid nodelay;
            limit_req zone=ca burst=4 nodelay;
            limit_req_status 429;
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }

        location = /busy {
            scep on;
            scep_retry_after 2m;
            limit_req zone=ca nodelay;
            proxy_pass http://127.0.0.1:%%BACKEND0%%/scep;
        }

        location = /busy-quiet {
            scep on;
            scep_retry_after 0;
            limit_req zone=ca nodelay;
            proxy_pass http://127.0.0.1:%%BACKEND0%%/scep;
        }

        location = /plain {
            limit_req zone=ca nodelay;
            return 503;
        }
    }
}
CONF

my $gw = $t->port('GW');
sub msg { $t->device_msg(@_) }

sub pki {
    my ($method, $der, $from) = @_;
    return $method eq 'GET'
        ? $t->get($gw, '/scep?operation=PKIOperation&message='
                  . SCEPTest::dialect($der, 'std'), from => $from)
        : $t->post($gw, '/scep?operation=PKIOperation', $der, from => $from);
}

# Each scenario uses client addresses of its own in 127.0.0.0/8, so
# that the limits of one do not spill into the next.

for my $method ('GET', 'POST') {
    my $o = $method eq 'GET' ? 10 : 20;

    # per transactionID: a replay from another client is limited, the
    # same client with a new transaction is not
    my $der = msg('--tid', "tid-$method");
    my $r = pki($method, $der, "127.0.$o.1");
    is($r->{status}, 200, "$method: first request of a transaction");

    my $before = $t->backend_requests($b);
    $r = pki($method, $der, "127.0.$o.2");
    is($r->{status}, 429, "$method: same transactionID again: 429");
    is($r->{headers}{'retry-after'}, '30', "$method: Retry-After: 30");
    is($t->backend_requests($b), $before, "$method: the 429 stayed here");

    $r = pki($method, msg(), "127.0.$o.2");
    is($r->{status}, 200, "$method: that client's next transaction passes");

    # per client: two PKIOperations pass (burst 1), the third is limited,
    # another client is not
    my $c = "127.0.$o.3";
    is(pki($method, msg(), $c)->{status}, 200, "$method: client: first");
    is(pki($method, msg(), $c)->{status}, 200, "$method: client: second");
    $r = pki($method, msg(), $c);
    is($r->{status}, 429, "$method: client: third is limited");
    is($r->{headers}{'retry-after'}, '30', "$method: with Retry-After");
    is(pki($method, msg(), "127.0.$o.4")->{status}, 200,
       "$method: another client is not limited");
}

# the CA operations are limited apart from PKIOperation, and more loosely
my $c = '127.0.30.1';
for my $i (1 .. 5) {
    my $op = $i % 2 ? 'GetCACaps' : 'GetCACert';
    is($t->get($gw, "/scep?operation=$op", from => $c)->{status}, 200,
       "CA operation $i of 5 passes");
}
my $r = $t->get($gw, '/scep?operation=GetCACaps', from => $c);
is($r->{status}, 429, 'the sixth is limited');
is(pki('GET', msg(), $c)->{status}, 200,
   'PKIOperation from that client still passes');
is($t->get($gw, '/scep?operation=GetCACaps', from => '127.0.30.2')
       ->{status}, 200, 'GetCACaps from another client passes');

# 503 (limit_req's default status) carries Retry-After as set
$c = '127.0.40.1';
is($t->get($gw, '/busy?operation=GetCACaps', from => $c)->{status}, 200,
   'busy: first passes');
$r = $t->get($gw, '/busy?operation=GetCACaps', from => $c);
is($r->{status}, 503, 'busy: second gets 503');
is($r->{headers}{'retry-after'}, '120', 'scep_retry_after 2m: 120');

$c = '127.0.40.2';
$t->get($gw, '/busy-quiet?operation=GetCACaps', from => $c);
$r = $t->get($gw, '/busy-quiet?operation=GetCACaps', from => $c);
is($r->{status}, 503, 'busy-quiet: 503');
ok(!exists $r->{headers}{'retry-after'}, 'scep_retry_after 0: none');

$r = $t->get($gw, '/plain', from => '127.0.40.3');
is($r->{status}, 503, 'a location without scep: 503');
ok(!exists $r->{headers}{'retry-after'}, 'and no Retry-After');

$t->stop;
done_testing;
