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

# 1.8 s before the handshake and 1.8 s before the answer, twice: a probe
# of 7.2 s or more, with timeout=2s
my $slow = $t->start_fault('slowtls=1.8', $t->dir . '/server');

# the harness's own connection, to see the daemon listen, is not a probe
sleep 0.5;
my $start = time;

$t->start_nginx(<<"CONF");
worker_processes 4;

http {
    large_client_header_buffers 4 72k;

    upstream slow {
        server 127.0.0.1:$slow->{port};
        scep_health_check interval=2500ms timeout=2s fails=1 passes=1
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
my $log = $t->dir . "/logs/$slow->{name}.log";

# two probes' time, and a little
sleep 16;

my $s = JSON::PP->new->decode($t->get($gw, '/status')->{body});
my ($p) = @{$s->{upstreams}{slow}{peers}};

$t->stop;

# the connections the back end saw, as [open, close]
my (%open, @conn);
for (split /\n/, $t->read_file($log)) {
    my ($pid, $what, $time) = split ' ';
    next unless defined $time;
    if ($what eq 'open') {
        next if $time < $start;
        $open{$pid} = $time;
    } elsif (exists $open{$pid}) {
        push @conn, [delete $open{$pid}, $time];
    }
}
push @conn, map { [$_, 9e9] } values %open;
@conn = sort { $a->[0] <=> $b->[0] } @conn;

my $overlap = 0;
for my $i (1 .. $#conn) {
    $overlap++ if $conn[$i][0] < $conn[$i - 1][1];
}

ok(@conn >= 2, scalar(@conn) . ' probe connections');
is($overlap, 0, 'no probe connection while another was open');
like($p->{reason} // '', qr/GetCACert: HTTP 500/,
     'the probes ran both steps');
ok($p->{checks} <= int((@conn + 1) / 2),
   "status: $p->{checks} checks for " . scalar(@conn) . ' connections');

done_testing;
