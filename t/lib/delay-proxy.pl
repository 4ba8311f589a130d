#!/usr/bin/perl

# A slow SCEP server: forwards each request to a real one (scepserver)
# after holding every PKIOperation DELAY seconds, and counts, on its own
# side, how many PKIOperations it holds at once:
#
#   delay-proxy.pl [--port-file PF] [--record DIR] PORT TARGET DELAY STATE
#
# PORT 0: a port the kernel picks, written to PF once it listens.  With
# --record, each PKIOperation's answer, raw as the back end sent it, is
# written to a file of its own in DIR, named for the time it came
# (sorted by name, in the order they came).
# STATE holds one line, "now max total": PKIOperations being served,
# the most at once, and all of them.  GetCACaps and GetCACert (the
# health probes) pass at once and are not counted.
#
# Loopback only; one process per connection, one request a connection.

use strict;
use warnings;

use Fcntl qw(:flock O_RDWR O_CREAT);
use Getopt::Long qw(GetOptions);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

my $usage = "usage: $0 [--port-file PF] [--record DIR] PORT TARGET DELAY"
            . " STATE\n";
my ($port_file, $record);
GetOptions('port-file=s' => \$port_file, 'record=s' => \$record)
    or die $usage;

my ($port, $target, $delay, $state) = @ARGV;
die $usage unless defined $state && @ARGV == 4;

$SIG{CHLD} = 'IGNORE';
$SIG{PIPE} = 'IGNORE';

count(0);

my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                              Listen => 512, ReuseAddr => 1)
    or die "listen: $!";

if ($port_file) {
    open my $fh, '>', "$port_file.tmp" or die;
    print $fh $l->sockport, "\n";
    close $fh;
    rename "$port_file.tmp", $port_file or die;
}

while (1) {
    my $c = $l->accept or next;
    my $pid = fork;
    if (!defined $pid) {
        close $c;
        next;
    }
    if ($pid == 0) {
        close $l;
        serve($c);
        exit 0;
    }
    close $c;
}

# adds $d to the PKIOperations being served, under a lock
sub count {
    my ($d) = @_;
    sysopen my $fh, $state, O_RDWR | O_CREAT or die "$state: $!";
    flock $fh, LOCK_EX or die;
    my $line = <$fh> // '';
    my ($now, $max, $total) = $line =~ /^(\d+) (\d+) (\d+)/ ? ($1, $2, $3)
                                                             : (0, 0, 0);
    $now += $d;
    $max = $now if $now > $max;
    $total++ if $d > 0;
    seek $fh, 0, 0;
    truncate $fh, 0;
    print $fh "$now $max $total\n";
    close $fh;
}

# written under another name first: a reader never sees half of it
sub keep {
    my ($resp) = @_;
    my $name = sprintf '%s/%017.6f-%d', $record, time, $$;
    open my $fh, '>', "$name.tmp" or die "$name.tmp: $!";
    binmode $fh;
    print $fh $resp;
    close $fh;
    rename "$name.tmp", "$name.resp" or die "$name: $!";
}

sub serve {
    my ($c) = @_;
    my $req = '';
    while ($req !~ /\r\n\r\n/) {
        my $n = sysread $c, $req, 65536, length $req;
        return unless $n;
    }
    my ($head, $body) = split /\r\n\r\n/, $req, 2;
    my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
    while (defined $len && length $body < $len) {
        my $n = sysread $c, $body, 65536, length $body;
        return unless $n;
    }

    my $pki = $head =~ /\A\S+ \S*operation=PKIOperation/;
    my $done = 0;

    if ($pki) {
        count(1);
        sleep $delay;
    }

    $head =~ s/^(Connection|Keep-Alive):[^\r\n]*\r\n//mgi;
    $head =~ s/\r\n(Connection|Keep-Alive):[^\r\n]*//gi;
    my $out = "$head\r\nConnection: close\r\n\r\n$body";

    my $u = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$target");
    if ($u) {
        print $u $out;
        my $resp = '';
        while (sysread $u, $resp, 65536, length $resp) { }
        close $u;
        keep($resp) if $record && $pki;
        # the client left meanwhile: it is not answered
        syswrite $c, $resp if length $resp;
    }

    count(-1) if $pki;
    close $c;
}
