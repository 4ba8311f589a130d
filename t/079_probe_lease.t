#!/usr/bin/perl

# One probe at a time per back end, across workers: a probe's lease
# outlasts the longest probe.  An HTTPS back end that is slow to shake
# hands and slow to answer, in both steps of a probe, keeps a probe busy
# for almost 4 x timeout; no second probe may start meanwhile.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;
$t->tls_cert;

# 2.6 s before the handshake and 2.6 s before the answer, twice: a probe
# of 10.4 s or more, with timeout=3s (a lease of 2 x timeout + 1 s ran
# out after 7 s, and the workers, which look again every 3 s, started a
# second probe)
my $slow = $t->start_fault('slowtls=2.6', $t->dir . '/server');

$t->start_nginx(<<"CONF");
worker_processes 4;

http {
    large_client_header_buffers 4 72k;

    upstream slow {
        server 127.0.0.1:$slow->{port};
        scep_health_check interval=4s timeout=3s fails=1 passes=1
                          uri=/scep ssl;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /status {
            scep_status;
        }
    }
}
CONF

my $gw = $t->port('GW');

# until a second probe has started: the probe connections that nginx holds
# open at once, seen every 50 ms (a connection nginx has given up on may
# linger at the back end, so count on nginx's side)
my ($max, $polls) = (0, 0);
my $end = time + 15;
while (time < $end) {
    my $n = grep { /127\.0\.0\.1:$slow->{port}\s*$/ }
        `ss -Htn state established dst 127.0.0.1:$slow->{port}`;
    $max = $n if $n > $max;
    $polls++;
    sleep 0.05;
}

my $s = JSON::PP->new->decode($t->get($gw, '/status')->{body});
my ($p) = @{$s->{upstreams}{slow}{peers}};

$t->stop;

my $log = $t->read_file("logs/$slow->{name}.log");
my $caps = () = $log =~ / request GetCACaps /g;
my $cacert = () = $log =~ / request GetCACert /g;

# on a loaded machine the back end may shake hands too late for a probe
# to get past its first step: the probes are shorter then, but still one
# at a time
diag("$p->{checks} probes, $caps GetCACaps and $cacert GetCACert at the"
     . " back end, $polls looks at the connections");
ok($p->{checks} >= 2, "$p->{checks} probes");
is($max, 1, 'never two probe connections at once');

done_testing;
