#!/usr/bin/perl

# Slow clients for bench/slowmem: opens CONNECTIONS connections to
# 127.0.0.1:PORT and sends on each the first BYTES bytes of a GET
# PKIOperation request line (a query of letters, as base64), in ROUNDS
# equal pieces SECONDS apart, never its end.  Then it reads the VmRSS and
# VmHWM of the nginx worker WORKER_PID, counts the connections the
# server has not closed, closes them all and prints one line:
#
#   SLOW conns=N open=N base_kb=N rss_kb=N hwm_kb=N seconds=N
#
#   slowclients.pl PORT WORKER_PID CONNECTIONS BYTES ROUNDS SECONDS
#
# Everything is bounded: CONNECTIONS and BYTES by the caller, the run by
# ROUNDS * SECONDS plus 60 s at most for connecting and sending.

use strict;
use warnings;

use IO::Socket::INET;
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use Time::HiRes qw(sleep time);

die "usage: $0 PORT WORKER_PID CONNECTIONS BYTES ROUNDS SECONDS\n"
    unless @ARGV == 6 && !grep { !/^[0-9]+(\.[0-9]+)?$/ } @ARGV;

my ($port, $pid, $conns, $bytes, $rounds, $pause) = @ARGV;

# a connection the server closed is counted, not fatal
$SIG{PIPE} = 'IGNORE';
my $start = time;
my $deadline = $start + 60 + $rounds * $pause;

sub mem {
    my ($key) = @_;
    open(my $f, '<', "/proc/$pid/status") or die "worker $pid: $!\n";
    while (<$f>) {
        return $1 if /^$key:\s+([0-9]+) kB/;
    }
    die "worker $pid: no $key\n";
}

my $base = mem('VmRSS');

my $line = "GET /scep?operation=PKIOperation&message=";
$line .= 'A' x ($bytes - length($line)) if $bytes > length($line);
$line = substr($line, 0, $bytes);

my $piece = int((length($line) + $rounds - 1) / $rounds);

my @socks;
for (1 .. $conns) {
    die "connecting took too long\n" if time > $deadline;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or die "connection " . (@socks + 1) . ": $!\n";
    $s->blocking(0);
    push @socks, { sock => $s, sent => 0 };
}

for my $round (1 .. $rounds) {
    my $upto = $round * $piece;
    $upto = length($line) if $upto > length($line);

    for my $c (@socks) {
        while ($c->{sent} < $upto) {
            my $n = syswrite($c->{sock}, $line, $upto - $c->{sent}, $c->{sent});
            if (!defined $n) {
                last if $! == EAGAIN || $! == EWOULDBLOCK;
                next if $! == EINTR;
                $c->{closed} = 1;
                last;
            }
            $c->{sent} += $n;
        }
    }

    # the pieces not yet taken by the socket buffers are sent next round
    sleep($pause) if $round < $rounds;
    die "sending took too long\n" if time > $deadline;
}

# the rest of what a full socket buffer held back
while (time < $deadline) {
    my $left = 0;
    for my $c (@socks) {
        next if $c->{closed} || $c->{sent} >= length($line);
        my $n = syswrite($c->{sock}, $line, length($line) - $c->{sent}, $c->{sent});
        if (defined $n) {
            $c->{sent} += $n;
        } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
            $c->{closed} = 1;
        }
        $left++ if !$c->{closed} && $c->{sent} < length($line);
    }
    last if !$left;
    sleep(0.05);
}

# let the worker read what is in flight
sleep(1);

my $rss = mem('VmRSS');
my $hwm = mem('VmHWM');

# a connection the server answered (414, 400) or closed has something
# to read; one still waiting for the rest of its request line has not
my $open = 0;
for my $c (@socks) {
    next if $c->{closed};
    my $buf;
    my $n = sysread($c->{sock}, $buf, 1);
    $open++ if !defined $n && ($! == EAGAIN || $! == EWOULDBLOCK);
}

close($_->{sock}) for @socks;

printf "SLOW conns=%d open=%d base_kb=%d rss_kb=%d hwm_kb=%d seconds=%.1f\n",
    scalar(@socks), $open, $base, $rss, $hwm, time - $start;
