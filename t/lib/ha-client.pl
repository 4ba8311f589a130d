#!/usr/bin/perl

# The devices of t/110_ha_pair.t, run inside the client's network
# namespace (ip netns exec NS perl ha-client.pl ...).
#
#   ha-client.pl load OUTDIR STOPFILE SECONDS HOST MSGDIR CERT
#       two loops of GetCACert and POST PKIOperation (the messages of
#       MSGDIR in turn, each loop its own), one request every 100 ms a
#       loop, and one loop of real scepclient enrollments over HTTPS,
#       all to HOST, until STOPFILE exists or SECONDS have passed;
#       every request is a line of OUTDIR/load-N.tsv
#   ha-client.pl retry OUTDIR HOST MSGDIR CERT
#       every request listed in OUTDIR/failed.tsv once more, each line
#       in OUTDIR/retry.tsv
#
# A line: kind id start end ok detail (tab-separated; kind cacert,
# pkiop or enroll; ok 1 or 0).  A PKIOperation is good when the answer is
# a CertRep with pkiStatus SUCCESS, an enrollment when scepclient wrote
# the certificate; the detail of a CertRep FAILURE starts "CA FAILURE".

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;
use File::Path qw(make_path);
use IO::Handle;
use POSIX qw(_exit);
use Time::HiRes qw(sleep time);
use SCEPTest qw(http);

my $PATH = '/certsrv/mscep/mscep.dll';
my $MAX_REQUESTS = 3000;      # a loop's bound, whatever the time
my $MAX_ENROLLMENTS = 200;

my $mode = shift // '';

if ($mode eq 'load') {
    my ($out, $stop, $secs, $host, $msgdir, $cert) = @ARGV;
    my $end = time + $secs;
    my @msgs = sort { $a <=> $b } map { m{/(\d+)\.der$} ? $1 : () }
               glob("$msgdir/*.der");
    my @pids;

    for my $w (0, 1) {
        push @pids, child(sub {
            my @mine = grep { $_ % 2 == $w } @msgs;
            open my $log, '>>', "$out/load-$w.tsv" or die "$out: $!";
            $log->autoflush(1);
            for my $i (0 .. $MAX_REQUESTS - 1) {
                last if -e $stop || time > $end;
                my $next = time + 0.1;
                my ($kind, $id) = $i % 2
                    ? ('pkiop', $mine[($i >> 1) % @mine])
                    : ('cacert', "$w-$i");
                print $log request($kind, $id, $host, $msgdir);
                my $rest = $next - time;
                sleep $rest if $rest > 0;
            }
        });
    }

    push @pids, child(sub {
        open my $log, '>>', "$out/load-enroll.tsv" or die "$out: $!";
        $log->autoflush(1);
        for my $n (1 .. $MAX_ENROLLMENTS) {
            last if -e $stop || time > $end;
            print $log enroll($n, $host, $out, $cert);
        }
    });

    waitpid $_, 0 for @pids;
    exit 0;
}

if ($mode eq 'retry') {
    my ($out, $host, $msgdir, $cert) = @ARGV;
    open my $in, '<', "$out/failed.tsv" or die "$out/failed.tsv: $!";
    open my $log, '>', "$out/retry.tsv" or die "$out: $!";
    while (<$in>) {
        chomp;
        my ($kind, $id) = split /\t/;
        print $log $kind eq 'enroll'
                   ? enroll($id, $host, $out, $cert)
                   : request($kind, $id, $host, $msgdir);
    }
    close $log;
    exit 0;
}

die "usage: $0 load|retry ...\n";

sub child {
    my ($code) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    return $pid if $pid;
    $code->();
    _exit(0);
}

sub line {
    my ($kind, $id, $start, $ok, $detail) = @_;
    $detail =~ s/[\t\r\n]+/ /g;
    return join("\t", $kind, $id, sprintf('%.3f', $start),
                sprintf('%.3f', time), $ok ? 1 : 0, $detail) . "\n";
}

sub request {
    my ($kind, $id, $host, $msgdir) = @_;
    my $start = time;
    my $r;

    if ($kind eq 'cacert') {
        $r = http(80, "$PATH?operation=GetCACert", host => $host,
                  timeout => 3);
        my $ok = $r->{status} == 200 && length $r->{body};
        return line($kind, $id, $start, $ok,
                    $r->{status} ? "HTTP $r->{status}"
                                 : "no answer: " . ($r->{error} // 'closed'));
    }

    open my $fh, '<', "$msgdir/$id.der" or die "$msgdir/$id.der: $!";
    binmode $fh;
    my $msg = do { local $/; <$fh> };
    close $fh;

    $r = http(80, "POST $PATH?operation=PKIOperation HTTP/1.1\r\n"
                  . "Host: localhost\r\n"
                  . "Content-Type: application/x-pki-message\r\n"
                  . "Content-Length: " . length($msg) . "\r\n"
                  . "Connection: close\r\n\r\n$msg",
              host => $host, timeout => 10);

    # pkiStatus: OID 2.16.840.1.113733.1.9.3, a SET of one
    # PrintableString; "0" is SUCCESS
    my $status = $r->{body} =~ /\x06\x0a\x60\x86\x48\x01\x86\xf8\x45\x01
                                 \x09\x03\x31\x03\x13\x01(.)/x ? $1 : '';
    my $ok = $r->{status} == 200 && $status eq '0';
    return line($kind, $id, $start, $ok,
                !$r->{status} ? "no answer: " . ($r->{error} // 'closed')
                : $r->{status} == 200 && $status eq '2'
                ? "CA FAILURE: HTTP 200 pkiStatus '2'"
                : "HTTP $r->{status} pkiStatus '$status'");
}

# a device, in a folder of its own that keeps its key and request: a
# retry is the same device asking again
sub enroll {
    my ($n, $host, $out, $cert) = @_;
    my $dir = "$out/enroll-$n";
    make_path($dir);
    my $start = time;
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        chdir $dir or die "$dir: $!";
        open STDERR, '>&', \*STDOUT;
        $ENV{SSL_CERT_FILE} = $cert;
        exec 'timeout', '30', 'scepclient', '-server-url',
             "https://$host$PATH", '-private-key', 'key.pem',
             '-cn', "ha-device-$n", '-challenge', 'secret'
            or die "exec scepclient: $!";
    }
    my $said = do { local $/; <$fh> } // '';
    close $fh;
    my $rc = $? >> 8;
    my $ok = $rc == 0 && -s "$dir/client.pem";
    my ($last) = reverse grep { length } split /\n/, $said;
    my ($refused) = $said =~ /(request failed, failInfo: [^\n]*)/;
    return line('enroll', $n, $start, $ok,
                $refused ? "CA FAILURE: $refused"
                         : "exit $rc " . ($last // ''));
}
