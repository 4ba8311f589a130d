#!/usr/bin/perl

# The signature of a PKIOperation is verified last, in the precontent
# phase: after limit_req and access control, so that a request they
# refuse costs the gateway no digest of the message and no public-key
# operation; and also when an internal redirect (error_page to a named
# location) took the request elsewhere after its message was parsed, so
# that no unverified message reaches a back end that way.

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

    log_format seen '$request_method $args';

    # one request a minute for each transactionID
    limit_req_zone $scep_transaction_id zone=tid:1m rate=1r/m;
    limit_req_status 429;

    server {
        listen 127.0.0.1:%%GW%% ssl;
        ssl_certificate %%CERT%%;
        ssl_certificate_key %%KEY%%;

        scep_log_level warn;

        location = /limited {
            scep on;
            scep_body_before_limits on;
            scep_algorithms sha1 sha256 sha512 des3 aes des;
            limit_req zone=tid;
            proxy_pass http://127.0.0.1:%%HOP%%;
        }

        location = /denied {
            scep on;
            deny all;
            proxy_pass http://127.0.0.1:%%HOP%%;
        }

        # the request goes on in a named location, without "scep on"
        location = /redirected {
            scep on;
            error_page 418 = @forward;
            return 418;
        }

        location @forward {
            proxy_pass http://127.0.0.1:%%HOP%%;
        }
    }

    # a recording hop in front of the real back end
    server {
        listen 127.0.0.1:%%HOP%%;
        access_log %%DIR%%/logs/backend.log seen;

        # every path of the gateway is the SCEP path of the back end
        location / {
            rewrite ^ /scep break;
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }
    }
}
CONF

my $gw = $t->port('GW');
sub msg { $t->device_msg(@_) }

# a message whose signature does not verify, all else in order
sub badsig {
    my $der = msg(@_);
    substr($der, -1, 1) = chr(ord(substr($der, -1, 1)) ^ 0x01);
    return $der;
}

sub get {
    my ($path, $der) = @_;
    return $t->get($gw, "$path?operation=PKIOperation&message="
                        . SCEPTest::dialect($der, 'std'), tls => 1);
}

sub post {
    my ($path, $der) = @_;
    return $t->post($gw, "$path?operation=PKIOperation", $der, tls => 1);
}

my $passed = 0;
sub backend_lines { $t->lines('logs/backend.log', $passed) }

# limit_req first: the second request of a transactionID is limited
# before its signature is looked at

for my $how (['GET', \&get], ['POST', \&post]) {
    my ($m, $send) = @$how;
    my $tid = "limited-$m";

    my $r = $send->('/limited', badsig('--tid', $tid));
    is($r->{status}, 400, "$m: a bad signature, first of its transactionID");
    like($r->{body}, qr/^bad_signature: /, "$m: refused as bad_signature");

    $r = $send->('/limited', badsig('--tid', $tid));
    is($r->{status}, 429, "$m: the second is refused by limit_req");
    unlike($r->{body}, qr/bad_signature/,
           "$m: before its signature was verified");

    # a good message of a fresh transactionID passes both
    $r = $send->('/limited', msg('--tid', "good-$m"));
    $passed++;
    is($r->{status}, 200, "$m: a good message passes the limit and the check");
    is($t->pki_status($r->{body}), '0', "$m: and enrolls");
}

# access control first

for my $how (['GET', \&get], ['POST', \&post]) {
    my ($m, $send) = @$how;

    my $r = $send->('/denied', badsig());
    is($r->{status}, 403, "$m: deny refuses before the signature is checked");
}

# an internal redirect does not skip the verification

for my $how (['GET', \&get], ['POST', \&post]) {
    my ($m, $send) = @$how;

    my $r = $send->('/redirected', badsig());
    is($r->{status}, 400, "$m: a bad signature after error_page to a "
                          . "named location: 400");
    like($r->{body}, qr/^bad_signature: /, "$m: refused as bad_signature");

    $r = $send->('/redirected', msg());
    $passed++;
    is($r->{status}, 200, "$m: a good message goes on through it");
    is($t->pki_status($r->{body}), '0', "$m: and enrolls");
}

my @seen = backend_lines();
is(scalar @seen, $passed, 'only the good messages reached the back end');
ok(!(grep { !/PKIOperation/ } @seen), 'and they were PKIOperations');

# every bad signature that was verified was logged once as such

my @lines = $t->error_log_lines(qr/scep: rejected .*: bad_signature/);
is(scalar @lines, 4, 'one error-log line per verified bad signature');

$t->stop;
done_testing;
