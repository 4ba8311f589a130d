#!/usr/bin/perl

# Hostile clients: slow headers and bodies, ten thousand idle
# connections, request lines at the buffer limit, thousands of
# parameters, repeated and disguised parameters, NUL and control bytes,
# oversized and chunked bodies, HTTP/1.0 and pipelining.  Each is
# answered as documented, and nothing but a valid SCEP request reaches
# the back end: a recording hop in front of the real scepserver logs
# every request that got past the gateway.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::INET;
use IPC::Open2 qw(open2);
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

$SIG{PIPE} = 'IGNORE';

my $t = SCEPTest->new;
my $b = $t->start_backend;

# The idle-connection part raises RLIMIT_NOFILE to 30000 in nginx's
# worker and in the process holding the connections, or to the hard limit
# when that is lower (setting a limit above the hard one needs
# CAP_SYS_RESOURCE); it needs room for 10,000 connections either way.
my $IDLE = 10_000;
my $hard = `sh -c 'ulimit -Hn'` // '';
chomp $hard;
my $nofile = $hard =~ /^\d+$/ && $hard < 30000 ? $hard : 30000;
my $can_idle = $nofile >= $IDLE + 200;
my $rlimit = "worker_rlimit_nofile $nofile;";

$t->start_nginx(<<"CONF");
$rlimit
events {
    worker_connections 12000;
}

http {
    client_header_timeout 2s;
    client_body_timeout 2s;
    send_timeout 2s;
    keepalive_timeout 5s;
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;
    client_max_body_size 128k;
    scep_max_message 64k;

    log_format seen '\$request|\$content_length|\$http_transfer_encoding|'
                    '\$http_x_injected';

    server {
        listen 127.0.0.1:%%GW%%;

        location = /certsrv/mscep/mscep.dll {
            scep on;
            proxy_pass http://127.0.0.1:%%HOP%%/scep;
        }

        location / {
            return 404;
        }
    }

    # the same gateway for the idle connections, which a 2 s header
    # timeout would close before the test is done with them
    server {
        listen 127.0.0.1:%%IDLE%% backlog=4096;
        client_header_timeout 60s;

        location = /certsrv/mscep/mscep.dll {
            scep on;
            proxy_pass http://127.0.0.1:%%HOP%%/scep;
        }
    }

    # a recording hop in front of the real back end
    server {
        listen 127.0.0.1:%%HOP%%;
        access_log %%DIR%%/logs/backend.log seen;
        # log each request as soon as it is answered, not after a
        # lingering close, so that the log is complete when the client
        # has its answer
        lingering_close off;

        location / {
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }
    }
}
CONF

my $gw = $t->port('GW');
my $p = '/certsrv/mscep/mscep.dll';

###########################################################################
# helpers

# The lines of the hop's log.  One worker serves the gateway and the hop,
# and the hop (lingering_close off) logs a request before the gateway can
# answer it, so the log is complete when the client has its answer.
sub seen { split /\n/, $t->read_file('logs/backend.log') }

sub conn {
    my (%o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . ($o{port} // $gw),
                                  ($o{from} ? (LocalAddr => $o{from}) : ()),
                                  Timeout => 5)
        or die "connect: $!";
    binmode $s;
    return $s;
}

sub send_all {
    my ($s, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($s, $data, length($data) - $off, $off);
        return 0 unless $n;
        $off += $n;
    }
    return 1;
}

# Reads until the peer closes, or $secs pass: (bytes, how it ended)
sub slurp {
    my ($s, $secs) = @_;
    my $sel = IO::Select->new($s);
    my ($raw, $end) = ('', time + $secs);
    while ((my $left = $end - time) > 0) {
        return ($raw, 'timeout') unless $sel->can_read($left);
        my $n = sysread($s, my $buf, 65536);
        return ($raw, defined $n ? 'closed' : "error: $!") unless $n;
        $raw .= $buf;
    }
    return ($raw, 'timeout');
}

# The responses in a byte stream, in order: [status, headers, body]
sub responses {
    my ($raw) = @_;
    my @r;
    while ($raw =~ s{^HTTP/1\.[01] (\d{3})[^\r\n]*\r\n(.*?)\r\n\r\n}{}s) {
        my ($status, %h) = ($1);
        for (split /\r\n/, $2) {
            my ($k, $v) = split /:\s*/, $_, 2;
            $h{lc $k} = $v;
        }
        my $body;
        if (defined $h{'content-length'}) {
            $body = substr($raw, 0, $h{'content-length'}, '');
        } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
            $body = '';
            while ($raw =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
                my $n = hex $1;
                if ($n == 0) {
                    $raw =~ s/^\r\n//;
                    last;
                }
                $body .= substr($raw, 0, $n, '');
                $raw =~ s/^\r\n//;
            }
        } else {
            ($body, $raw) = ($raw, '');
        }
        push @r, { status => $status, headers => \%h, body => $body };
    }
    return @r;
}

# One raw request on its own connection: the parsed answer
sub raw {
    my ($req, %o) = @_;
    return SCEPTest::http($o{port} // $gw, $req, %o);
}

sub get_req {
    my ($uri, %h) = @_;
    return "GET $uri HTTP/1.1\r\nHost: localhost\r\n"
           . join('', map { "$_: $h{$_}\r\n" } sort keys %h)
           . "Connection: close\r\n\r\n";
}

sub post_req {
    my ($uri, $body, %o) = @_;
    return "POST $uri HTTP/1.1\r\nHost: localhost\r\n"
           . "Content-Type: application/x-pki-message\r\n"
           . "Content-Length: " . length($body) . "\r\n"
           . ($o{keep} ? '' : "Connection: close\r\n") . "\r\n" . $body;
}

# A request the gateway must answer itself: its status, its reason (or
# undef for nginx's own answers), and no line at the back end.
sub rejected {
    my ($name, $req, $status, $reason, %o) = @_;
    my $before = () = seen();
    my $r = raw($req, %o);
    is($r->{status}, $status, "$name: $status");
    if (defined $reason) {
        like($r->{body}, qr/^\Q$reason\E: /, "$name: $reason");
    } else {
        unlike($r->{body}, qr/^[a-z_]+: /, "$name: nginx's own answer");
    }
    is(scalar(() = seen()), $before, "$name: nothing reached the back end");
    return $r;
}

# A request that must pass: 200 and exactly one new line at the back end,
# which is returned.
sub passed {
    my ($name, $req, %o) = @_;
    my $before = () = seen();
    my $r = raw($req, %o);
    is($r->{status}, 200, "$name: 200");
    my @l = $t->lines('logs/backend.log', $before + 1);
    is(scalar @l, $before + 1, "$name: reached the back end once");
    return ($r, $l[-1] // '');
}

my $ncn = 0;
sub msg {
    my (@args) = @_;
    $ncn++;
    return $t->scep_msg('--challenge', 'secret', '--cn', "hostile-$ncn",
                        '--dialect', 'der', @args);
}

###########################################################################
# 1. Slow clients

# Sends $data on $s from offset $off, $n bytes every $gap seconds, until
# all is sent or the server answers or closes: (bytes received, how it
# ended, bytes sent, seconds from the start to the end, seconds from the
# last write to the end)
sub dribble {
    my ($s, $data, $off, $n, $gap) = @_;
    my $sel = IO::Select->new($s);
    my ($raw, $how, $t0) = ('', 'all sent', time);
    my $last = $t0;
    while ($off < length $data) {
        unless (syswrite($s, substr($data, $off, $n))) {
            $how = "write failed: $!";
            last;
        }
        $off += $n;
        $last = time;
        if ($sel->can_read($gap)) {
            my $got = sysread($s, my $buf, 65536);
            if ($got) {
                $raw .= $buf;
                $how = 'answered';
            } else {
                $how = defined $got ? 'closed' : "error: $!";
            }
            last;
        }
    }
    return ($raw, $how, $off, time - $t0, time - $last);
}

# Headers dribbled one byte every 300 ms: nginx wants the whole header
# within client_header_timeout (2 s) of the connection, however often
# bytes arrive; then it closes the connection without an answer (nginx
# sends no 408 for a timeout, it logs one).  And one byte every 3 s,
# slower than the timeout: the same.
for my $gap (0.3, 3) {
    my $req = get_req("$p?operation=GetCACaps&slow=header");
    my $s = conn();
    my ($raw, $how, $sent, $el) = dribble($s, $req, 0, 1, $gap);
    close $s;
    is($how, 'closed', "header, a byte every $gap s: nginx closed the"
                       . ' connection');
    is($raw, '', "header, a byte every $gap s: without an answer");
    ok($el > 1.8 && $el < 3.5, sprintf("header, a byte every $gap s:"
       . ' closed %.2f s after the connection (client_header_timeout 2s),'
       . ' %d of %d bytes sent', $el, $sent, length $req));
}

my $der = msg();

# A POST body dribbled one byte every 3 s, slower than
# client_body_timeout (2 s between two reads): nginx closes the
# connection 2 s after the last byte, without an answer either (nginx
# terminates a request whose body timed out).
{
    my $s = conn();
    my $head = "POST $p?operation=PKIOperation HTTP/1.1\r\nHost: localhost\r\n"
               . "Content-Type: application/x-pki-message\r\n"
               . "Content-Length: " . length($der) . "\r\n\r\n";
    send_all($s, $head);
    my ($raw, $how, $sent, $el, $idle) = dribble($s, $head . $der,
                                                 length $head, 1, 3);
    close $s;
    is($how, 'closed', 'body, a byte every 3 s: nginx closed the connection');
    is($raw, '', 'body, a byte every 3 s: without an answer');
    ok($idle > 1.8 && $idle < 2.8, sprintf('body, a byte every 3 s: closed'
       . ' %.2f s after the last byte (client_body_timeout 2s), %d body'
       . ' bytes sent', $idle, $sent - length $head));
}
is(scalar(() = seen()), 0, 'slow header and slow body: nothing reached the'
                           . ' back end');

# slow but within the timeouts: 20 bytes every 100 ms
{
    my $req = get_req("$p?operation=GetCACaps&message=slow");
    my $s = conn();
    my $t0 = time;
    for (my $i = 0; $i < length $req; $i += 20) {
        syswrite($s, substr($req, $i, 20));
        sleep 0.1;
    }
    my ($raw, $how) = slurp($s, 5);
    close $s;
    my ($r) = responses($raw);
    is($r && $r->{status}, 200, sprintf('GetCACaps dribbled 20 bytes per'
       . ' 100 ms (%.1f s): 200', time - $t0));
    is((seen())[-1], "GET /scep?operation=GetCACaps&message=slow HTTP/1.0|-|-|-",
       'and it reached the back end');
}

# a POST body dribbled 500 bytes every 200 ms: each read within the
# body timeout, so it goes through and enrolls
{
    my $body = msg();
    my $s = conn();
    send_all($s, "POST $p?operation=PKIOperation HTTP/1.1\r\n"
                 . "Host: localhost\r\nConnection: close\r\n"
                 . "Content-Length: " . length($body) . "\r\n\r\n");
    for (my $i = 0; $i < length $body; $i += 500) {
        sleep 0.2;
        syswrite($s, substr($body, $i, 500));
    }
    my ($raw) = slurp($s, 5);
    close $s;
    my ($r) = responses($raw);
    is($r && $r->{status}, 200, 'POST body dribbled within the timeout: 200');
    is($r && $t->pki_status($r->{body}), '0', '  and enrolled');
    is((seen())[-1], 'POST /scep?operation=PKIOperation HTTP/1.0|'
                     . length($body) . '|-|-', '  the back end got it whole');
}

###########################################################################
# 2. Ten thousand idle connections

SKIP: {
    skip "RLIMIT_NOFILE hard limit $hard is too low for $IDLE connections",
        10 unless $can_idle;

    my $idle = $t->port('IDLE');
    my $holder = $t->write_file('idle-holder.pl', <<'PERL');
# idle-holder.pl PORT N SRC...: opens N connections to 127.0.0.1:PORT
# from the source addresses in turn, says "open N", and on "check" says
# how many are still open (the server has not closed them), on "close"
# closes them all and says "closed".
#
# They are closed with a reset (SO_LINGER 0): a normal close would leave
# N sockets in TIME_WAIT on ephemeral ports for a minute, and a server
# that then listens on one of those ports on all addresses (as
# scepserver does) fails with "address already in use".
use strict;
use warnings;
use Socket;
use IO::Select;
$| = 1;
my ($port, $n, @src) = @ARGV;
my $dst = pack_sockaddr_in($port, inet_aton('127.0.0.1'));
my @s;
for my $i (0 .. $n - 1) {
    socket(my $fh, PF_INET, SOCK_STREAM, 0) or die "socket: $!\n";
    bind($fh, pack_sockaddr_in(0, inet_aton($src[$i % @src])))
        or die "bind: $!\n";
    connect($fh, $dst) or die "connect $i: $!\n";
    push @s, $fh;
}
print "open ", scalar(@s), "\n";
while (my $cmd = <STDIN>) {
    if ($cmd =~ /^check/) {
        # a connection the server closed is readable (EOF)
        my $sel = IO::Select->new;
        my $gone = 0;
        for my $i (0 .. $#s) {
            $sel->add($s[$i]);
            if ($sel->count == 500 || $i == $#s) {
                $gone += () = $sel->can_read(0);
                $sel = IO::Select->new;
            }
        }
        print "alive ", scalar(@s) - $gone, "\n";
    } elsif ($cmd =~ /^close/) {
        for (@s) {
            setsockopt($_, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
            close $_;
        }
        @s = ();
        print "closed\n";
        last;
    }
}
PERL

    # the connections are spread over four source addresses so that no
    # one of them runs short of ephemeral ports
    my $t0 = time;
    my $hpid = open2(my $from, my $to, 'sh', '-c',
                     "ulimit -n $nofile && exec \"\$@\"", 'sh', $^X, $holder,
                     $idle, $IDLE, map { "127.0.0.$_" } 2 .. 5);
    push @{$t->{pids}}, $hpid;
    my $line = <$from> // '';
    is($line, "open $IDLE\n", "$IDLE idle connections opened"
       . sprintf(' (%.1f s)', time - $t0));

    # nginx accepted them all: its worker holds a descriptor for each
    my $master = $t->nginx_pid;
    my ($worker) = grep {
        (($t->read_file("/proc/$_/stat") =~ /\)\s+\S+\s+(\d+)/)[0] // 0)
            == $master
    } map { m{/proc/(\d+)$} ? $1 : () } glob '/proc/[0-9]*';
    my $fds = 0;
    my $end = time + 10;
    while (time < $end) {
        $fds = () = glob "/proc/$worker/fd/*";
        last if $fds >= $IDLE;
        sleep 0.1;
    }
    ok($fds >= $IDLE, "nginx's worker accepted them ($fds descriptors)");

    for my $port ($idle, $gw) {
        my $t1 = time;
        my $r = $t->get($port, "$p?operation=GetCACaps&idle=$port",
                        timeout => 5);
        my $el = time - $t1;
        is($r->{status}, 200, 'GetCACaps with them open: 200 on the '
                              . ($port == $gw ? 'gateway' : 'idle') . ' port');
        ok($el < 2, sprintf('  promptly (%.3f s)', $el));
    }

    print $to "check\n";
    $line = <$from> // '';
    is($line, "alive $IDLE\n", 'all idle connections are still open');

    print $to "close\n";
    $line = <$from> // '';
    is($line, "closed\n", 'closed them all');
    close $to;
    close $from;
    waitpid $hpid, 0;
    @{$t->{pids}} = grep { $_ != $hpid } @{$t->{pids}};

    $end = time + 10;
    while (time < $end) {
        $fds = () = glob "/proc/$worker/fd/*";
        last if $fds < 100;
        sleep 0.1;
    }
    ok($fds < 100, "the worker let go of them ($fds descriptors left)");
    is(join("\n", $t->error_log_lines(qr/\[(alert|crit|emerg)\]/)), '',
       'no alert or crit with 10,000 connections');
}

###########################################################################
# 3. Request lines just under and just over the 72k buffer

# the longest canonical query (odd lengths only): 200, byte for byte
{
    my $q = $t->scep_msg('--challenge', 'secret', '--cn', 'hostile-long',
                         '--query', '--query-size', 65533,
                         '--dialect', 'std');
    is(length $q, 65533, 'a 65533-byte canonical query');
    my ($r, $l) = passed('65533-byte GET PKIOperation', get_req("$p?$q"));
    is($t->pki_status($r->{body}), '0', '  enrolled');
    is($l, "GET /scep?$q HTTP/1.0|-|-|-", '  reached the back end byte for'
                                          . ' byte');
}

# a 65534-byte query (the NDES maximum) of junk: the module's answer,
# not nginx's 414
rejected('65534-byte query of junk',
         get_req("$p?operation=PKIOperation&message=" . ('A' x 65503)), 400,
         'bad_der');

# a request line of exactly 72k (73728 bytes with its CRLF) is read;
# one byte more is nginx's 414.  The message is junk, so: bad_der.
for my $len (73728, 73729) {
    my $head = "GET $p?operation=PKIOperation&message=" . ('A' x 4000)
               . '&pad=';
    my $tail = " HTTP/1.1\r\n";
    my $req = $head . ('x' x ($len - length($head) - length($tail))) . $tail
              . "Host: localhost\r\nConnection: close\r\n\r\n";
    if ($len == 73728) {
        rejected("$len-byte request line", $req, 400, 'bad_der');
    } else {
        rejected("$len-byte request line", $req, 414, undef);
    }
}

###########################################################################
# 4. Thousands of query parameters

{
    my $many = '&x=1' x 5000;
    my ($r, $l) = passed('GetCACaps with 5,000 more parameters',
                         get_req("$p?operation=GetCACaps$many"));
    is($l, "GET /scep?operation=GetCACaps HTTP/1.0|-|-|-",
       '  the back end got only the canonical query');

    my $half = '&x=1' x 2500;
    rejected('5,000 parameters, two operations',
             get_req("$p?operation=GetCACaps$half&operation=GetCACaps"
                     . $half), 400, 'repeated_operation');
    rejected('5,000 parameters, second operation last',
             get_req("$p?x=1$many&operation=GetCACert&operation=GetCACaps"),
             400, 'repeated_operation');

    # a PKIOperation among them reaches the back end canonical, alone
    my $m = SCEPTest::dialect(msg(), 'std');
    ($r, $l) = passed('PKIOperation among 5,000 parameters',
                      get_req("$p?$half&operation=PKIOperation$half"
                              . "&message=$m$half"));
    is($l, "GET /scep?operation=PKIOperation&message=$m HTTP/1.0|-|-|-",
       '  the back end got only the canonical query');
}

###########################################################################
# 5. Repeated, empty and case-variant parameters

my @params = (
    # query, status, reason
    ['operation=&operation=GetCACaps', 400, 'repeated_operation'],
    ['operation=GetCACaps&operation=', 400, 'repeated_operation'],
    ['operation=&operation=', 400, 'repeated_operation'],
    ['operation=GetCACaps&operation=GetCACaps', 400, 'repeated_operation'],
    ['operation=PKIOperation&message=&message=', 400, 'repeated_message'],
    ['operation=PKIOperation&message=&message=abcd', 400, 'repeated_message'],
    ['operation=GetCACert&message=&message=', 400, 'repeated_message'],
    ['operation=GetCACert&message=ca1&message=ca2', 400, 'repeated_message'],
    ['operation=PKIOperation&message', 400, 'missing_message'],
    ['operation', 400, 'unknown_operation'],
    ['operation&x=GetCACaps', 400, 'unknown_operation'],
    ['OPERATION=GetCACaps&Operation=GetCACert', 400, 'repeated_operation'],
    ['operation=GetCACaps&OPERATION=x', 400, 'repeated_operation'],
    ['Message=x&operation=GetCACert&message=default', 400,
     'repeated_message'],
    ['operation&operation=GetCACaps', 400, 'repeated_operation'],
    ['op%65ration=GetCACaps&operation=GetCACert', 400, 'repeated_operation'],
    ['operation=GetCACaps&m%65ssage=a&message=b', 400, 'repeated_message'],
    ['operation=GETCACAPS', 400, 'unknown_operation'],
    ['operation=PKIOPERATION&message=abcd', 400, 'unknown_operation'],
    ['operation=GetCACap%73', 400, 'unknown_operation'],
    ['operation=%20GetCACaps', 400, 'unknown_operation'],
    ['operation=GetCACaps%20', 400, 'unknown_operation'],
    ['operation=ndesgeneratechallenge', 403, 'ndes_operation'],
    ['&&&&', 400, 'missing_operation'],
    ['=GetCACaps', 400, 'missing_operation'],
);
for my $c (@params) {
    my ($q, $status, $reason) = @$c;
    rejected("?$q", get_req("$p?$q"), $status, $reason);
}

# Names are read as NDES reads them (percent escapes decoded, case
# ignored); what passes reaches the back end as the canonical query
for my $c (['OPERATION=GetCACaps', 'operation=GetCACaps'],
           ['Operation=GetCACert&MESSAGE=default',
            'operation=GetCACert&message=default'],
           ['op%65ration=GetCACaps&x=1', 'operation=GetCACaps'])
{
    my ($q, $canonical) = @$c;
    my (undef, $l) = passed("?$q", get_req("$p?$q"));
    is($l, "GET /scep?$canonical HTTP/1.0|-|-|-",
       "?$q: the back end got the canonical query");
}

# Disguised parameters: "operation" and "message" percent-encoded, which
# the back end decodes (Go's net/url does, as does NDES).  The gateway
# reads the names the same way: two operations, refused, and the
# disguised PKIOperation (one with a 129-character transactionID, which
# the gateway refuses when it sees it) never reaches the back end.
{
    my $bad = SCEPTest::dialect(msg('--tid', 'T' x 129), 'std');
    rejected('129-character transactionID, undisguised',
             get_req("$p?operation=PKIOperation&message=$bad"), 400,
             'bad_transaction_id');

    my $ops = sub {
        my $log = $t->read_file($b->{log});
        return scalar(() = $log =~ /caller=endpoint\.go:\d+ op=PKIOperation\b/g);
    };
    my $before = $ops->();
    my $r = raw(get_req("$p?op%65ration=PKIOperation&m%65ssage=$bad"
                        . "&operation=GetCACaps"));
    is($r->{status}, 400, 'disguised PKIOperation: 400');
    like($r->{body}, qr/^repeated_operation: /,
         'disguised PKIOperation: two operations');
    ok(!($r->{status} == 200
         && ($r->{headers}{'content-type'} // '') =~ /pki-message/),
       'disguised PKIOperation: not answered with a CertRep (got '
       . "$r->{status}, pkiStatus "
       . ($t->pki_status($r->{body}) // 'none') . ')');
    is($ops->() - $before, 0, 'disguised PKIOperation: the back end ran no'
                              . ' PKIOperation');
}

###########################################################################
# 6. NUL and control bytes

# raw NUL, CR and other control bytes in the request line: nginx's own 400
rejected('raw NUL in the query',
         get_req("$p?operation=GetCACaps\0x"), 400, undef);
rejected('raw NUL in the message',
         get_req("$p?operation=PKIOperation&message=ab\0cd"), 400, undef);
rejected('raw CR in the query',
         "GET $p?operation=GetCACaps\rX-Injected: yes HTTP/1.1\r\n"
         . "Host: localhost\r\nConnection: close\r\n\r\n", 400, undef);
rejected('raw NUL in a header',
         get_req("$p?operation=GetCACaps", 'X-Injected' => "a\0b"), 400,
         undef);

my @ctl = (
    ['operation=PKIOperation&message=%00', 'bad_base64'],
    ['operation=PKIOperation&message=MIIB%00AAAA', 'bad_base64'],
    ['operation=PKIOperation&message=abcd%0D%0AX-Injected:%20yes',
     'bad_base64'],
    ['operation=PKIOperation&message=%0D%0AX-Injected:%20yes%0D%0A',
     'bad_base64'],
    ['operation=GetCACert&message=%00', 'bad_ca_identifier'],
    ['operation=GetCACert&message=ca%00', 'bad_ca_identifier'],
    ['operation=GetCACert&message=ca%0D%0AX-Injected:%20yes',
     'bad_ca_identifier'],
    ['operation=GetCACaps&message=ca%0AX-Injected:%20yes',
     'bad_ca_identifier'],
    ['operation=GetNextCACert&message=ca%0D', 'bad_ca_identifier'],
    ['operation=GetCACert&message=ca%7F', 'bad_ca_identifier'],
    ['operation=GetCACert&message=ca%FF', 'bad_ca_identifier'],
    ['operation=GetCACert&message=ca%', 'bad_ca_identifier'],
    ['operation=GetCACert&message=ca%0', 'bad_ca_identifier'],
    ['operation=GetCACert&message=ca%zz', 'bad_ca_identifier'],
    ['operation=GetCACaps%0D%0AX-Injected:%20yes', 'unknown_operation'],
    ['operation=GetCACaps%00', 'unknown_operation'],
);
for my $c (@ctl) {
    my ($q, $reason) = @$c;
    rejected("?$q", get_req("$p?$q"), 400, $reason);
}

# %0D%0A in another parameter: the back end gets only the canonical
# query, and no header from it
{
    my $q = 'operation=GetCACert&message=default&x=%0D%0AX-Injected:%20yes';
    my (undef, $l) = passed('%0D%0A in another parameter of GetCACert',
                            get_req("$p?$q"));
    is($l, "GET /scep?operation=GetCACert&message=default HTTP/1.0|-|-|-",
       '  dropped, no X-Injected header');
}
ok(!(grep { !/\|-$/ } seen()), 'no request reached the back end with an'
                               . ' X-Injected header');

###########################################################################
# 7. Bodies too large, chunked bodies

# Content-Length over scep_max_message: 413 at once, the body not sent
{
    my $s = conn();
    send_all($s, "POST $p?operation=PKIOperation HTTP/1.1\r\n"
                 . "Host: localhost\r\nContent-Length: 70000\r\n"
                 . "Content-Type: application/x-pki-message\r\n\r\n");
    my $t0 = time;
    my $sel = IO::Select->new($s);
    my $raw = '';
    while ($raw !~ /\r\n\r\n/ && $sel->can_read(1.5)) {
        last unless sysread($s, my $buf, 65536);
        $raw .= $buf;
    }
    my $el = time - $t0;
    close $s;
    my ($r) = responses($raw);
    is($r && $r->{status}, 413, 'Content-Length 70000, no body sent: 413');
    like($r ? $r->{body} : '', qr/^message_too_large: /,
         '  message_too_large');
    ok($el < 1, sprintf('  answered before the body (%.3f s)', $el));
}

# the same, whole body sent, followed on the connection by a request
# that must be read: the body (holding a request of its own) is
# discarded, not taken for a request
{
    my $smuggled = "GET $p?operation=GetCACaps&smuggled=1 HTTP/1.1\r\n"
                   . "Host: localhost\r\n\r\n";
    my $body = $smuggled . ('x' x (70000 - length $smuggled));
    my $before = () = seen();
    my $s = conn();
    send_all($s, post_req("$p?operation=PKIOperation", $body, keep => 1)
                 . get_req("$p?operation=GetCACaps&message=after1"));
    my ($raw) = slurp($s, 5);
    close $s;
    my @r = responses($raw);
    is(join(',', map { $_->{status} } @r), '413,200',
       'an oversized POST and a request after it: 413, then 200');
    my @l = seen();
    is_deeply([@l[$before .. $#l]],
              ["GET /scep?operation=GetCACaps&message=after1 HTTP/1.0|-|-|-"],
              '  the request in the discarded body never ran');
}

# chunked, over scep_max_message but under client_max_body_size: read,
# then the module's 413
sub chunked {
    my ($body, $size, $ext) = @_;
    my $c = '';
    for (my $i = 0; $i < length $body; $i += $size) {
        my $piece = substr($body, $i, $size);
        $c .= sprintf("%x%s\r\n%s\r\n", length $piece, $ext // '', $piece);
    }
    return $c . "0\r\n\r\n";
}
sub chunked_req {
    my ($body, $size, $ext) = @_;
    return "POST $p?operation=PKIOperation HTTP/1.1\r\nHost: localhost\r\n"
           . "Content-Type: application/x-pki-message\r\n"
           . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           . chunked($body, $size, $ext);
}

rejected('chunked 100,000 bytes (over scep_max_message)',
         chunked_req('x' x 100_000, 8192), 413, 'message_too_large');
# over client_max_body_size (128k): nginx's own 413, before the module
rejected('chunked 200,000 bytes (over client_max_body_size)',
         chunked_req('x' x 200_000, 8192), 413, undef);
# Content-Length over client_max_body_size: nginx's own 413 comes first
# (nginx checks it when it picks the location, before the module runs)
rejected('Content-Length 200,000', post_req("$p?operation=PKIOperation",
         'x' x 200_000), 413, undef);

# chunked within the limits, many chunks with extensions: 200, and the
# back end gets a Content-Length and no chunked encoding
{
    my $body = msg();
    my ($r, $l) = passed('chunked POST, 100-byte chunks with extensions',
                         chunked_req($body, 100, ';name=value;x="q"'));
    is($t->pki_status($r->{body}), '0', '  enrolled');
    is($l, 'POST /scep?operation=PKIOperation HTTP/1.0|' . length($body)
           . '|-|-', '  the back end got a Content-Length, not chunked');

    $body = msg();
    ($r, $l) = passed('chunked POST, 1-byte chunks for the first 50',
                      "POST $p?operation=PKIOperation HTTP/1.1\r\n"
                      . "Host: localhost\r\nTransfer-Encoding: chunked\r\n"
                      . "Connection: close\r\n\r\n"
                      . join('', map { "1\r\n" . substr($body, $_, 1)
                                       . "\r\n" } 0 .. 49)
                      . chunked(substr($body, 50), 4000));
    is($l, 'POST /scep?operation=PKIOperation HTTP/1.0|' . length($body)
           . '|-|-', '  the back end got a Content-Length, not chunked');
}

# what nginx refuses itself: Content-Length with chunked, two lengths,
# a bad chunk size
rejected('Content-Length and Transfer-Encoding',
         "POST $p?operation=PKIOperation HTTP/1.1\r\nHost: localhost\r\n"
         . "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
         . "Connection: close\r\n\r\n5\r\nabcde\r\n0\r\n\r\n", 400, undef);
rejected('two Content-Lengths',
         "POST $p?operation=PKIOperation HTTP/1.1\r\nHost: localhost\r\n"
         . "Content-Length: 4\r\nContent-Length: 40\r\n"
         . "Connection: close\r\n\r\nabcd", 400, undef);
rejected('a bad chunk size',
         "POST $p?operation=PKIOperation HTTP/1.1\r\nHost: localhost\r\n"
         . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
         . "zz\r\nabcd\r\n0\r\n\r\n", 400, undef);

###########################################################################
# 8. HTTP/1.0 and pipelining

{
    my ($r, $l) = passed('HTTP/1.0 GET',
                         "GET $p?operation=GetCACaps&message=v10 HTTP/1.0\r\n\r\n");
    like($r->{body}, qr/POSTPKIOperation/, '  the capabilities');
    is($l, 'GET /scep?operation=GetCACaps&message=v10 HTTP/1.0|-|-|-',
       '  reached the back end');

    my $body = msg();
    ($r, $l) = passed('HTTP/1.0 POST with Content-Length',
                      "POST $p?operation=PKIOperation HTTP/1.0\r\n"
                      . 'Content-Length: ' . length($body) . "\r\n\r\n"
                      . $body);
    is($t->pki_status($r->{body}), '0', '  enrolled');

    rejected('HTTP/1.0 unknown operation',
             "GET $p?operation=Nope HTTP/1.0\r\n\r\n", 400,
             'unknown_operation');
}

# pipelined in one write on a keep-alive connection
sub pipeline {
    my ($name, $reqs, $statuses, $reach) = @_;
    my $before = () = seen();
    my $s = conn();
    send_all($s, join '', @$reqs);
    my ($raw, $how) = slurp($s, 10);
    close $s;
    my @r = responses($raw);
    is(join(',', map { $_->{status} } @r), join(',', @$statuses),
       "$name: " . join(', ', @$statuses) . ' in order');
    my @l = seen();
    is_deeply([@l[$before .. $#l]], $reach,
              "$name: only the valid ones reached the back end, in order");
    return @r;
}

sub ka { my ($uri) = @_; "GET $uri HTTP/1.1\r\nHost: localhost\r\n\r\n" }

pipeline('three GetCACaps',
         [ka("$p?operation=GetCACaps&message=n1"), ka("$p?operation=GetCACaps&message=n2"),
          get_req("$p?operation=GetCACaps&message=n3")],
         [200, 200, 200],
         [map { "GET /scep?operation=GetCACaps&message=n$_ HTTP/1.0|-|-|-" } 1 .. 3]);

pipeline('valid, unknown operation, valid',
         [ka("$p?operation=GetCACaps&message=n4"), ka("$p?operation=GetCRL&message=n5"),
          get_req("$p?operation=GetCACaps&message=n6")],
         [200, 400, 200],
         [map { "GET /scep?operation=GetCACaps&message=n$_ HTTP/1.0|-|-|-" } 4, 6]);

{
    my $good = msg();
    my $bad = $good;
    substr($bad, -1, 1) = chr(ord(substr($bad, -1, 1)) ^ 0x01);
    my @r = pipeline('GET, POST with a bad signature, POST, GET',
        [ka("$p?operation=GetCACaps&message=n7"),
         post_req("$p?operation=PKIOperation", $bad, keep => 1),
         post_req("$p?operation=PKIOperation", $good, keep => 1),
         get_req("$p?operation=GetCACert&message=n8")],
        [200, 400, 200, 200],
        ['GET /scep?operation=GetCACaps&message=n7 HTTP/1.0|-|-|-',
         'POST /scep?operation=PKIOperation HTTP/1.0|' . length($good)
         . '|-|-',
         'GET /scep?operation=GetCACert&message=n8 HTTP/1.0|-|-|-']);
    like($r[1] ? $r[1]{body} : '', qr/^bad_signature: /,
         '  the bad one: bad_signature');
    is($r[2] ? $t->pki_status($r[2]{body}) : undef, '0',
       '  the good one enrolled');
}

$t->stop;
done_testing;
