#!/usr/bin/perl

# Clients for bench/flood, on 127.0.0.0/8 only.
#
#   flood.pl flood PORT PATH DER SECONDS CONNS ADDRS KIND [PER_CONN]
#
# CONNS connections at once, half sending GET PKIOperations (the DER as
# base64, %2B %2F %3D escaped, in the query), half POSTs of the DER,
# PER_CONN requests (default 10) pipelined on a keep-alive connection
# (written at once, as HTTP/1.1 allows, so that the client spends little
# on each).  Each connection is bound to its own source address: the
# i-th connection a process opens to 127.100.0.0 + ((i + R) mod ADDRS)
# + 1, R random, so ADDRS addresses take turns.  A connection is closed
# once its answers came, or when the server closes it (the answers still
# due count as "lost"), and the next one comes from the next address.
# KIND is "forged" or "invalid":
#   forged   the message with a byte of its signature flipped, and a
#            transactionID of its own in every request (the marker
#            FLOODTID... of the template replaced), so that nothing but
#            the signature tells it from a real one, and the limit per
#            transactionID does not group them;
#   invalid  the message with its first byte (the outer SEQUENCE tag)
#            changed: valid base64, no pkiMessage.
# Prints "FLOOD key=value ..." with the answers counted by status.
#
#   flood.pl devices PORT PATH DIR COUNT SPREAD DEADLINE RETRY_MAX
#
# COUNT devices, device i from 127.50.0.(i+1), start at random moments
# within SPREAD seconds; each asks GetCACaps, GetCACert, then sends
# DIR/dev-i.der (even i as a POST, odd i as a GET), as a client does.  An
# answer 429 or 503 is retried after its Retry-After (at most RETRY_MAX
# seconds; 10 s without one), a connection error or timeout (30 s) after
# 5 s, until DEADLINE seconds from the start.  A device has enrolled when
# its PKIOperation gets 200 with a CertRep whose pkiStatus is SUCCESS.
# Prints one "DEVICE ..." line a device.

use strict;
use warnings;

use IO::Socket::INET;
use IO::Select;
use MIME::Base64 qw(encode_base64);
use Errno qw(EAGAIN EWOULDBLOCK EINTR EINPROGRESS);
use Socket qw(inet_aton pack_sockaddr_in);
use Time::HiRes qw(sleep time);

$SIG{PIPE} = 'IGNORE';

my $mode = shift // '';
if ($mode eq 'flood') {
    flood(@ARGV);
} elsif ($mode eq 'devices') {
    devices(@ARGV);
} else {
    die "usage: $0 flood|devices ...\n";
}
exit 0;

sub slurp {
    my ($file) = @_;
    open(my $f, '<:raw', $file) or die "$file: $!\n";
    local $/;
    return scalar <$f>;
}

sub escape_b64 {
    my ($b) = @_;
    $b =~ s/\+/%2B/g;
    $b =~ s/\//%2F/g;
    $b =~ s/=/%3D/g;
    return $b;
}

sub get_request {
    my ($path, $query) = @_;
    return "GET $path?operation=PKIOperation&message=$query HTTP/1.1\r\n"
        . "Host: scep.example.com\r\nUser-Agent: bench-flood\r\n\r\n";
}

sub post_request {
    my ($path, $der) = @_;
    return "POST $path?operation=PKIOperation HTTP/1.1\r\n"
        . "Host: scep.example.com\r\nUser-Agent: bench-flood\r\n"
        . "Content-Type: application/x-pki-message\r\n"
        . "Content-Length: " . length($der) . "\r\n\r\n" . $der;
}

# ------------------------------------------------------------------ flood

sub flood {
    my ($port, $path, $derfile, $seconds, $conns, $addrs, $kind, $per_conn)
        = @_;
    die "flood: missing arguments\n" unless defined $kind;
    $per_conn //= 10;
    my $der = slurp($derfile);
    my $len = length $der;
    my ($tid_at, $tid_len) = (-1, 0);

    if ($kind eq 'forged') {
        # a signature is the last element of the last SignerInfo, the
        # last thing in the message: flip a byte inside it
        substr($der, $len - 100, 1) = chr(ord(substr($der, $len - 100, 1)) ^ 0x5a);
        $tid_at = index($der, 'FLOODTID');
        die "flood: no FLOODTID marker in $derfile\n" if $tid_at < 0;
        $tid_len = 64;
    } elsif ($kind eq 'invalid') {
        substr($der, 0, 1) = "\x31";
    } else {
        die "flood: KIND is forged or invalid\n";
    }

    # the GET's query around the transactionID: base64 is made of 3-byte
    # groups, so the parts before and after the groups that hold it are
    # encoded once; a request encodes those few groups again
    my ($w0, $w1) = (0, 0);
    my ($q_head, $q_tail, $q_fixed);
    if ($tid_at >= 0) {
        $w0 = $tid_at - $tid_at % 3;
        $w1 = $tid_at + $tid_len;
        $w1 += 3 - $w1 % 3 if $w1 % 3;
        $q_head = escape_b64(encode_base64(substr($der, 0, $w0), ''));
        $q_tail = escape_b64(encode_base64(substr($der, $w1), ''));
    } else {
        $q_fixed = get_request($path, escape_b64(encode_base64($der, '')));
    }
    my $post_fixed = $tid_at < 0 ? post_request($path, $der) : undef;

    my $serial = int(rand(1 << 30));
    my $make = sub {
        my ($get) = @_;
        return $get ? $q_fixed : $post_fixed if $tid_at < 0;
        my $tid = sprintf('%08X', $$) . sprintf('%056X', $serial++);
        my $d = $der;
        substr($d, $tid_at, $tid_len) = substr($tid, 0, $tid_len);
        if ($get) {
            return get_request($path, $q_head
                . escape_b64(encode_base64(substr($d, $w0, $w1 - $w0), ''))
                . $q_tail);
        }
        return post_request($path, $d);
    };

    my %count = (sent => 0, answered => 0, errors => 0, connects => 0,
                 get => 0, post => 0, lost => 0);
    my %status;
    my $sel_r = IO::Select->new;
    my $sel_w = IO::Select->new;
    my %c;          # fileno => connection state
    my $opened = int(rand($addrs));     # the processes start apart
    my $dst = pack_sockaddr_in($port, inet_aton('127.0.0.1'));
    my $start = time;
    my $end = $start + $seconds;

    my $open = sub {
        my ($slot) = @_;
        my $i = $opened++ % $addrs + 1;
        my $src = sprintf('127.%d.%d.%d', 100 + ($i >> 16), ($i >> 8) & 255,
                          $i & 255);
        my $s = IO::Socket::INET->new(Proto => 'tcp', LocalAddr => $src,
                                      Blocking => 0);
        unless ($s) {
            $count{errors}++;
            return;
        }
        $s->setsockopt(Socket::IPPROTO_TCP(), Socket::TCP_NODELAY(), 1);
        connect($s, $dst);
        $count{connects}++;
        my $st = { s => $s, slot => $slot, get => $slot % 2 == 0,
                   left => $per_conn, out => '', off => 0, in => '' };
        $c{fileno $s} = $st;
        # all of its requests at once, pipelined
        $st->{out} = join('', map { $make->($st->{get}) } 1 .. $per_conn);
        $sel_w->add($s);
        $sel_r->add($s);
    };
    my $close = sub {
        my ($st) = @_;
        $sel_r->remove($st->{s});
        $sel_w->remove($st->{s});
        delete $c{fileno $st->{s}};
        close $st->{s};
        $open->($st->{slot}) if time < $end;
    };

    $open->($_) for 0 .. $conns - 1;

    while (time < $end && ($sel_r->count || $sel_w->count)) {
        my ($r, $w) = IO::Select->select($sel_r, $sel_w, undef, 0.5);
        for my $s (@{ $w || [] }) {
            my $st = $c{fileno $s} or next;
            my $n = syswrite($s, $st->{out}, length($st->{out}) - $st->{off},
                             $st->{off});
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR
                        || $! == EINPROGRESS;
                $count{errors}++;
                $close->($st);
                next;
            }
            $st->{off} += $n;
            if ($st->{off} == length $st->{out}) {
                $count{sent} += $per_conn;
                $count{$st->{get} ? 'get' : 'post'} += $per_conn;
                $sel_w->remove($s);
            }
        }
        for my $s (@{ $r || [] }) {
            my $st = $c{fileno $s} or next;
            my $n = sysread($s, my $buf, 65536);
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                $count{errors}++;
                $close->($st);
                next;
            }
            if ($n == 0) {
                # closed by the server: the answers still due are lost
                $count{lost} += $st->{left};
                $close->($st);
                next;
            }
            $st->{in} .= $buf;
            my $done = 0;
            while (1) {
                my $h = index($st->{in}, "\r\n\r\n");
                last if $h < 0;
                my $head = substr($st->{in}, 0, $h);
                my ($code) = $head =~ m{^HTTP/1\.[01] ([0-9]{3})};
                my ($cl) = $head =~ /\r\nContent-Length:\s*([0-9]+)/i;
                $cl //= 0;
                last if length($st->{in}) < $h + 4 + $cl;
                substr($st->{in}, 0, $h + 4 + $cl) = '';
                $count{answered}++;
                $status{$code // 'bad'}++;
                if (--$st->{left} <= 0
                    || $head =~ /\r\nConnection:\s*close/i)
                {
                    $count{lost} += $st->{left};
                    $done = 1;
                    last;
                }
            }
            $close->($st) if $done;
        }
    }
    my $dur = time - $start;
    print join(' ', 'FLOOD', (map { "$_=$count{$_}" } sort keys %count),
               (map { "s$_=$status{$_}" } sort keys %status),
               sprintf('seconds=%.2f', $dur)), "\n";
}

# ------------------------------------------------------------------ devices

# one request on a new connection from SRC; returns (status, headers, body)
# or (undef) on an error or after 30 s
sub exchange {
    my ($src, $port, $req) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  LocalAddr => $src, Proto => 'tcp',
                                  Timeout => 30) or return;
    my $deadline = time + 30;
    my $sel = IO::Select->new($s);
    my $off = 0;
    while ($off < length $req) {
        return unless time < $deadline;
        my $n = syswrite($s, $req, length($req) - $off, $off);
        return unless defined $n;
        $off += $n;
    }
    my $in = '';
    while (1) {
        my $left = $deadline - time;
        return if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, my $buf, 65536);
        return unless defined $n;
        $in .= $buf;
        my $h = index($in, "\r\n\r\n");
        if ($h >= 0) {
            my $head = substr($in, 0, $h);
            my ($cl) = $head =~ /\r\nContent-Length:\s*([0-9]+)/i;
            if ((defined $cl && length($in) >= $h + 4 + $cl)
                || ($n == 0 && !defined $cl))
            {
                my ($code) = $head =~ m{^HTTP/1\.[01] ([0-9]{3})};
                return ($code, $head, substr($in, $h + 4));
            }
        }
        return if $n == 0;
    }
}

sub devices {
    my ($port, $path, $dir, $count, $spread, $deadline, $retry_max) = @_;
    die "devices: missing arguments\n" unless defined $retry_max;
    my $t0 = time;
    my %kids;
    for my $i (0 .. $count - 1) {
        my $pid = fork // die "fork: $!\n";
        if ($pid) {
            $kids{$pid} = $i;
            next;
        }
        srand($$ ^ time);
        my $src = sprintf('127.50.0.%d', $i + 1);
        my $der = slurp("$dir/dev-$i.der");
        my @reqs = (
            "GET $path?operation=GetCACaps&message=device HTTP/1.1\r\n"
                . "Host: scep.example.com\r\nConnection: close\r\n\r\n",
            "GET $path?operation=GetCACert&message=device HTTP/1.1\r\n"
                . "Host: scep.example.com\r\nConnection: close\r\n\r\n");
        my $pki = $i % 2 == 0 ? post_request($path, $der)
                              : get_request($path,
                                            escape_b64(encode_base64($der, '')));
        $pki =~ s/\r\n\r\n/\r\nConnection: close\r\n\r\n/;
        push @reqs, $pki;
        sleep(rand($spread));
        my $begin = time;
        my ($tries, $waits, $last, $ok) = (0, 0, '-', 0);
        REQ: for my $k (0 .. $#reqs) {
            while (1) {
                last REQ if time - $t0 >= $deadline;
                $tries++;
                my ($code, $head, $body) = exchange($src, $port, $reqs[$k]);
                $last = $code // 'err';
                if (defined $code && $code eq '200') {
                    if ($k == $#reqs) {
                        # pkiStatus (2.16.840.1.113733.1.9.3) SUCCESS ("0")
                        $ok = index($body, "\x06\x0a\x60\x86\x48\x01\x86\xf8"
                                    . "\x45\x01\x09\x03\x31\x03\x13\x01\x30")
                              >= 0 ? 1 : 0;
                        $last = '200-not-success' unless $ok;
                    }
                    next REQ;
                }
                my $pause = 5;
                if (defined $code && ($code eq '429' || $code eq '503')) {
                    my ($ra) = $head =~ /\r\nRetry-After:\s*([0-9]+)/i;
                    $pause = $ra // 10;
                    $pause = $retry_max if $pause > $retry_max;
                } elsif (defined $code) {
                    last REQ;       # refused for good: not enrolled
                }
                $waits++;
                sleep($pause);
            }
        }
        printf "DEVICE %d src=%s ok=%d tries=%d retries=%d last=%s seconds=%.2f\n",
            $i, $src, $ok, $tries, $waits, $last, time - $begin;
        exit 0;
    }
    while ((my $pid = wait) > 0) {
        my $i = delete $kids{$pid};
        print "DEVICE $i ok=0 tries=0 retries=0 last=died seconds=0\n"
            if defined $i && $?;
    }
}
