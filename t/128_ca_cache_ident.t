#!/usr/bin/perl

# scep_ca_cache_ident: with "any" (the default) every CA identifier
# that clients send (Windows "default", Android agents "ca", an Apple
# profile's name, none at all) is answered from the edge, as NDES
# answers them all alike; with "probe" only the probes' ca_ident= is.
# The answers are kept per upstream and ca_ident=: after a reload that
# changes ca_ident=, the old identifier's answers are not served, not
# even while the back end is down.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;
my $b = $t->start_backend;

sub conf {
    my ($gen, $ident) = @_;
    return <<"CONF";
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format cache '\$uri \$arg_message \$scep_cache "\$upstream_addr"';

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        scep_health_check interval=300ms timeout=250ms uri=/scep
                          "ca_ident=$ident";
    }

    server {
        listen 127.0.0.1:%%GW%%;
        access_log %%DIR%%/logs/cache.log cache;

        scep_ca_cache on;

        location = /gen { return 200 "gen$gen"; }

        location = /any {
            scep on;
            proxy_pass http://ndes/scep;
        }

        location = /probe {
            scep on;
            scep_ca_cache_ident probe;
            proxy_pass http://ndes/scep;
        }

        location = /status {
            scep_status;
            access_log off;
        }
    }
}
CONF
}

my $gw = $t->port('GW');
my $json = JSON::PP->new;

sub answer {
    my $r = $t->get($gw, '/status');
    my $s = eval { $json->decode($r->{body}) } // {};
    return $s->{upstreams}{ndes}{peers}[0]{ca_answer};
}

sub wait_answer {
    my $end = time + 5;
    while (time < $end) {
        return 1 if answer();
        sleep 0.1;
    }
    return 0;
}

my $nlog = 0;

# the $scep_cache and $upstream_addr of a request
sub ask {
    my ($loc, $op, $message) = @_;
    my $q = "/$loc?operation=$op"
            . (defined $message ? "&message=$message" : '');
    my $r = $t->get($gw, $q);
    my @l = $t->lines('logs/cache.log', ++$nlog);
    my ($cache, $addr) = ($l[-1] // '') =~ / (\S+) "([^"]*)"$/;
    return ($cache // '', $addr // '', $r);
}

$t->start_nginx(conf(1, 'default'));
ok(wait_answer(), 'the probes kept the answers');

my $direct = $t->get($b->{port}, '/scep?operation=GetCACert&message=default');

for my $m ('default', 'ca', 'Apple%20Device%20Profile', 'SCEP+Authority',
           'otherCA', undef)
{
    my $name = $m // 'no identifier';
    for my $op (qw(GetCACaps GetCACert)) {
        my ($cache, $addr, $r) = ask('any', $op, $m);
        is("$cache $addr", 'HIT -', "any: $op, $name: from the edge");
        ok($r->{body} eq $direct->{body}, "any: $name: the probes' answer")
            if $op eq 'GetCACert';
    }
}

my ($cache, $addr) = ask('probe', 'GetCACert', 'default');
is("$cache $addr", 'HIT -', 'probe: the probes\' identifier from the edge');
($cache, $addr) = ask('probe', 'GetCACert', 'ca');
like("$cache $addr", qr/^MISS 127\.0\.0\.1:\d+$/,
     'probe: another identifier goes to the back end');
($cache, $addr) = ask('probe', 'GetCACaps');
like("$cache $addr", qr/^MISS 127\.0\.0\.1:\d+$/,
     'probe: no identifier goes to the back end');

# a reload that changes ca_ident=, with the back end down: what was kept
# for "default" is not served for "SCEP Authority"
$t->stop_backend($b);

# the old workers answer with the old configuration until they are gone
sub workers {
    my $master = $t->nginx_pid;
    my ($rc, $out) = $t->run('ps', '-o', 'pid=', '--ppid', $master);
    return grep { /^\d+$/ } map { s/\s+//gr } split /\n/, $out;
}

my %old = map { $_ => 1 } workers();
$t->write_conf(conf(2, 'SCEP Authority'));
kill 'HUP', $t->nginx_pid;
my $end = time + 10;
sleep 0.05 while time < $end && grep { $old{$_} } workers();
my $body = $t->get($gw, '/gen')->{body} // '';
is($body, 'gen2', 'reloaded with another ca_ident=');

($cache) = ask('probe', 'GetCACert', 'SCEP%20Authority');
is($cache, 'MISS', 'probe: the old identifier\'s answers are not served');
($cache) = ask('any', 'GetCACert', 'default');
is($cache, 'MISS', 'any: nor here');

$t->restart_backend($b);
ok(wait_answer(), 'the new identifier\'s answers are kept');
($cache, $addr) = ask('probe', 'GetCACert', 'SCEP%20Authority');
is("$cache $addr", 'HIT -', 'probe: and served for it');
($cache, $addr) = ask('probe', 'GetCACert', 'default');
like("$cache $addr", qr/^MISS 127\.0\.0\.1:\d+$/,
     'probe: "default" is another CA now');
($cache, $addr) = ask('any', 'GetCACert', 'ca');
is("$cache $addr", 'HIT -', 'any: every identifier again');

$t->stop;
done_testing;
