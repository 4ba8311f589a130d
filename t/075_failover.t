#!/usr/bin/perl

# Failover under load: a back end killed and restarted while wrk drives
# GetCACaps and GET PKIOperation through the gateway costs the clients
# no failed request, nor do two reloads during a run.  Health state
# survives a reload; "hash $scep_transaction_id consistent" keeps a
# transaction on its back end and moves it only while that one is down;
# nginx -t refuses a misplaced directive, bad parameters and a zone too
# small; probes are one per back end per interval across all workers.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $wrk = (grep { -x "$_/wrk" } split /:/, $ENV{PATH} // '')[0];
BAIL_OUT('wrk is not installed (apt-get install wrk): the failover test'
         . ' needs it to load the gateway') unless $wrk;
$wrk .= '/wrk';

my $t = SCEPTest->new;
my $d = $t->dir;
my $root = SCEPTest::root();
my $host = '127\.0\.0\.1';

###########################################################################
# nginx -t: order of directives, parameters, the size of the zone

# the line of the first "scep_health_check" in the file nginx -t read
sub hc_line {
    my @l = split /\n/, $t->read_file('test.conf');
    for my $i (0 .. $#l) {
        return $i + 1 if $l[$i] =~ /^\s*scep_health_check\b/;
    }
    return 0;
}

sub hc_conf {
    my ($upstream, $http) = @_;
    $http //= q{};
    return <<"CONF";
http {
    $http

    upstream u {
$upstream
    }

    server {
        listen 127.0.0.1:%%TCONF%%;
        location / { proxy_pass http://u; }
    }
}
CONF
}

my ($rc, $out) = $t->test_conf(hc_conf(<<'UP'));
        hash $request_uri consistent;
        server 127.0.0.1:%%DEAD%%;
        server 127.0.0.1:%%DEAD2%%;
        scep_health_check interval=1s timeout=300ms uri=/scep;
UP
is($rc, 0, 'nginx -t: scep_health_check after "hash ... consistent" is'
           . ' accepted') or diag($out);

($rc, $out) = $t->test_conf(hc_conf(<<'UP'));
        server 127.0.0.1:%%DEAD%%;
        server 127.0.0.1:%%DEAD2%%;
        scep_health_check interval=1s timeout=300ms uri=/scep;
        hash $request_uri consistent;
UP
my $line = hc_line();
isnt($rc, 0, 'nginx -t: scep_health_check before "hash" is refused');
like($out, qr/"scep_health_check" in \Q$d\E\/test\.conf:$line must come after the load balancing method \("hash", "least_conn", "random"\) of upstream "u"/,
     'naming the file, the line and the upstream');

($rc, $out) = $t->test_conf(hc_conf(<<'UP'));
        server 127.0.0.1:%%DEAD%%;
        scep_health_check uri=/scep;
        least_conn;
UP
isnt($rc, 0, 'nginx -t: scep_health_check before "least_conn" is refused');
like($out, qr/must come after the load balancing method .* of upstream "u"/,
     'with the same message');

my $twenty = join '', map { "        server 127.0.0.1:$_;\n" }
    map { $t->port("Z$_") } 1 .. 20;
$twenty .= "        scep_health_check interval=1s timeout=300ms uri=/scep;\n";

($rc, $out) = $t->test_conf(hc_conf($twenty, 'scep_zone 8k;'));
isnt($rc, 0, 'nginx -t: scep_zone 8k for 20 health-checked back ends is'
             . ' refused');
like($out, qr/"scep_zone" of 8k is too small for the 20 back ends under health checks: make it at least (\d+)k/,
     'the message names the count and the size needed');
my ($need) = $out =~ /make it at least (\d+)k/;
ok(defined $need && $need > 8, 'and the size needed is larger than 8k ('
                               . ($need // '?') . 'k)');

($rc, $out) = $t->test_conf(hc_conf($twenty, 'scep_zone '
                                              . (($need // 1024) + 1) . 'k;'));
is($rc, 0, 'nginx -t: the size it names is enough') or diag($out);

for my $bad (['foo=1', qr/invalid parameter "foo=1"/],
             ['interval=abc', qr/invalid value "interval=abc"/],
             ['timeout=5s interval=1s',
              qr/"timeout" of "scep_health_check" must be shorter than its "interval"/])
{
    ($rc, $out) = $t->test_conf(hc_conf(<<"UP"));
        server 127.0.0.1:%%DEAD%%;
        scep_health_check $bad->[0];
UP
    isnt($rc, 0, "nginx -t: scep_health_check $bad->[0] is refused");
    like($out, $bad->[1], "  saying $bad->[1]");
}

###########################################################################
# The gateway: two back ends under load (ndes), two more behind a
# consistent hash on the transactionID (sticky), and one that never
# listens (deadup).

my @b = map { $t->start_backend } 0 .. 3;

sub conf {
    my ($gen) = @_;
    return <<"CONF";
worker_processes 2;

http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format sticky '\$scep_transaction_id \$upstream_addr \$status';

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        server 127.0.0.1:%%BACKEND1%%;
        scep_health_check interval=500ms timeout=300ms uri=/scep;
        keepalive 8;
    }

    upstream sticky {
        hash \$scep_transaction_id consistent;
        server 127.0.0.1:%%BACKEND2%%;
        server 127.0.0.1:%%BACKEND3%%;
        scep_health_check interval=500ms timeout=300ms uri=/scep;
    }

    upstream deadup {
        server 127.0.0.1:%%DEAD%%;
        scep_health_check interval=2s timeout=300ms fails=1 uri=/scep;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            proxy_pass http://ndes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_500 http_502 http_503
                                http_504 non_idempotent;
            proxy_next_upstream_tries 3;
            proxy_next_upstream_timeout 10s;
        }

        location = /sticky {
            scep on;
            access_log %%DIR%%/logs/sticky.log sticky;
            proxy_pass http://sticky/scep;
        }

        location = /dead {
            scep on;
            proxy_pass http://deadup/scep;
        }

        location = /gen {
            return 200 "$gen";
        }
    }
}
CONF
}

$t->start_nginx(conf('gen1'));
my $gw = $t->port('GW');
my $started = time;

###########################################################################
# Probe traffic: one probe (GetCACaps + GetCACert) per back end per
# interval, whichever of the two workers runs it.  Nothing else talks
# to the back ends during the window.

sub probes {
    my ($be, $op) = @_;
    my $log = $t->read_file($be->{log});
    return scalar(() = $log =~ /caller=endpoint\.go:\d+ op=\Q$op\E\b/g);
}

sleep(1 - (time - $started)) if time - $started < 1;

my @caps0 = map { probes($_, 'GetCACaps') } @b;
my @cert0 = map { probes($_, 'GetCACert') } @b;
my $w0 = time;
sleep 4;
my @caps1 = map { probes($_, 'GetCACaps') } @b;
my @cert1 = map { probes($_, 'GetCACert') } @b;
my $window = time - $w0;
my $expect = $window / 0.5;

for my $i (0 .. $#b) {
    my $caps = $caps1[$i] - $caps0[$i];
    my $cert = $cert1[$i] - $cert0[$i];
    diag(sprintf('probes of back end %d: %d GetCACaps, %d GetCACert in'
                 . ' %.2f s = %.2f probes/s (interval 500ms: %.2f/s)',
                 $i, $caps, $cert, $window, $caps / $window, 1 / 0.5));
    ok($caps >= 0.5 * $expect && $caps <= 1.5 * $expect,
       "back end $i: $caps probes in " . sprintf('%.1f', $window)
       . " s, one per interval across both workers (expected about "
       . sprintf('%.0f', $expect) . ')');
    ok(abs($cert - $caps) <= 2, "back end $i: each probe asks GetCACert"
                                . " too ($cert)");
}

###########################################################################
# Health state survives a reload: a back end found down stays down in
# the new workers, with no second state change logged.

my $dead = $t->port('DEAD');
my $dead_re = qr/scep health check: $host:$dead in upstream "deadup" is down: GetCACaps: connect\(\) failed/;

ok(defined $t->wait_error_log($dead_re, 5), 'deadup: marked down');
is($t->get($gw, '/dead?operation=GetCACaps')->{status}, 503,
   'deadup: 503 before the reload');

$t->write_conf(conf('gen2'));
kill 'HUP', $t->nginx_pid;

my ($gen, $end) = ('', time + 10);
while (time < $end) {
    $gen = $t->get($gw, '/gen')->{body} // '';
    last if $gen eq 'gen2';
    sleep 0.01;
}
is($gen, 'gen2', 'reload: the new workers serve');

my $r = $t->get($gw, '/dead?operation=GetCACaps');
is($r->{status}, 503, 'deadup: still 503 right after the reload (its state'
                      . ' survived; a fresh one would start up and give'
                      . ' 502)');
ok(defined $r->{headers}{'retry-after'}, '  with Retry-After');
like($r->{body}, qr/^no_healthy_backend: /, '  and the reason');

sleep 1.2;
is($t->count_error_log(qr/in upstream "deadup" is down/), 1,
   'deadup: no second "is down" after the reload');
is($t->count_error_log(qr/in upstream "deadup" is up/), 0,
   'deadup: never reported up');

###########################################################################
# Stickiness by transactionID

my $key = "$d/device.key";
{
    my ($krc, $kout) = $t->run('openssl', 'genrsa', '-out', $key, '2048');
    die "openssl genrsa: $kout" if $krc;
}

my $ncn = 0;
my $nsticky = 0;

# one GET PKIOperation with this transactionID through /sticky: its
# status and the back end address(es) that served it
sub sticky {
    my ($tid) = @_;
    $ncn++;
    my $q = $t->scep_msg('--challenge', 'secret', '--key', $key,
                         '--tid', $tid, '--cn', "sticky-$ncn",
                         '--query', '--dialect', 'std');
    chomp $q;
    my $res = $t->get($gw, "/sticky?$q");
    $nsticky++;
    my @l = $t->lines('logs/sticky.log', $nsticky);
    # "tid addr status"; addr is "a:1, b:2" when a second one was tried
    my ($ltid, $addr) = ($l[-1] // '') =~ /^(\S+) (.*) \d{3}$/;
    return { status => $res->{status}, addr => $addr // '',
             tid => $ltid // '' };
}

my %port2b = map { $_->{port} => $_ } @b;
my %spread;
for my $i (1 .. 20) {
    my $s = sticky("SPREAD-$i");
    $spread{$s->{addr}}++ if $s->{status} == 200;
}
ok($spread{"127.0.0.1:$b[2]{port}"} && $spread{"127.0.0.1:$b[3]{port}"},
   'hashing 20 transactionIDs uses both back ends ('
   . join(', ', map { "$_ x$spread{$_}" } sort keys %spread) . ')');

my @s = map { sticky('STICKY-1') } 1 .. 5;
is($s[0]{tid}, 'STICKY-1', '$scep_transaction_id is the transactionID');
my $home = $s[0]{addr};
like($home, qr/^127\.0\.0\.1:($b[2]{port}|$b[3]{port})$/,
     "STICKY-1 went to a sticky back end ($home)");
is(scalar(grep { $_->{status} == 200 && $_->{addr} eq $home } @s), 5,
   'all 5 requests of one transaction reached the same back end')
    or diag(explain(\@s));

my ($hport) = $home =~ /:(\d+)$/;
my $hb = $port2b{$hport // 0} // $b[2];
my ($other) = grep { $_ ne $home }
    map { "127.0.0.1:$_->{port}" } @b[2, 3];

$t->stop_backend($hb);
ok(defined $t->wait_error_log(
       qr/$host:$hb->{port} in upstream "sticky" is down/, 5),
   'its back end killed: marked down');

@s = map { sticky('STICKY-1') } 1 .. 3;
is(scalar(grep { $_->{status} == 200 && $_->{addr} eq $other } @s), 3,
   'while it is down the transaction goes to the other back end, first'
   . ' try, 200') or diag(explain(\@s));

my $ups = $t->count_error_log(
    qr/$host:$hb->{port} in upstream "sticky" is up/);
$t->restart_backend($hb);
ok(defined $t->wait_error_log(
       qr/$host:$hb->{port} in upstream "sticky" is up/, 5, $ups),
   'restarted: marked up');

@s = map { sticky('STICKY-1') } 1 .. 3;
is(scalar(grep { $_->{status} == 200 && $_->{addr} eq $home } @s), 3,
   'once it is up the transaction returns to its own back end')
    or diag(explain(\@s));

###########################################################################
# Under load: wrk drives GetCACaps and, every 10th request, a 4001-byte
# GET PKIOperation through /scep while a back end dies and comes back,
# and while nginx reloads.

my $query = $t->scep_msg('--challenge', 'secret', '--query',
                         '--query-size', 4001, '--dialect', 'std');
$query =~ s/\s+\z//;
my $qfile = $t->write_file('query.txt', $query);
is(length $query, 4001, 'a 4001-byte PKIOperation query string');

# runs wrk for 8 s; @at is a list of [seconds after start, code]; with
# $close every request carries "Connection: close"
sub load {
    my ($tag, $close, @at) = @_;
    my $outf = "$d/logs/wrk-$tag.out";
    my $start = time;
    my $pid = $t->spawn($outf, $wrk, '-t1', '-c4', '-d8s',
                        '-s', "$root/t/lib/mix.lua",
                        "http://127.0.0.1:$gw/scep", '--', $qfile,
                        ($close ? 'close' : ()));
    for my $ev (@at) {
        my $wait = $start + $ev->[0] - time;
        sleep $wait if $wait > 0;
        $ev->[1]->();
    }
    my $done = 0;
    my $until = $start + 30;
    while (time < $until) {
        if (waitpid($pid, WNOHANG) == $pid) {
            $done = 1;
            last;
        }
        sleep 0.1;
    }
    unless ($done) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
    @{$t->{pids}} = grep { $_ != $pid } @{$t->{pids}};
    ok($done, "$tag: wrk finished");

    my $text = $t->read_file($outf);
    my ($mix) = $text =~ /^(MIX .*)$/m;
    ok(defined $mix, "$tag: wrk reported") or diag($text);
    my %m = ($mix // '') =~ /(\w+)=(\d+)/g;
    diag("$tag: $mix") if defined $mix;
    return \%m;
}

sub check_load {
    my ($tag, $m) = @_;
    ok(($m->{requests} // 0) > 100, "$tag: more than 100 requests ("
                                    . ($m->{requests} // 0) . ')');
    ok(($m->{pkiop} // 0) > 10, "$tag: PKIOperations among them ("
                                . ($m->{pkiop} // 0) . ')');
    is($m->{non2xx}, 0, "$tag: no answer other than 2xx")
        or diag("last bad status: " . ($m->{bad_status} // '?'));
    my @e = map { $m->{$_} // '?' } qw(connect read write timeout);
    my $sock = 0;
    $sock += /^\d+$/ ? $_ : 1 for @e;
    is($sock, 0, "$tag: no socket error (connect $e[0], read $e[1], write"
                 . " $e[2], timeout $e[3])");
}

my $victim = $b[1];
my $vre = "$host:$victim->{port} in upstream \"ndes\"";
my $down0 = $t->count_error_log(qr/$vre is down/);
my $up0 = $t->count_error_log(qr/$vre is up/);

my $m = load('kill', 0,
             [2, sub { $t->stop_backend($victim) }],
             [5, sub { $t->restart_backend($victim) }]);
check_load('kill', $m);

ok(defined $t->wait_error_log(qr/$vre is down/, 5, $down0),
   'kill: the killed back end was marked down');
ok(defined $t->wait_error_log(qr/$vre is up/, 5, $up0),
   'kill: and up again after its restart');
my @ch = map { /is (down|up)/ ? $1 : () }
    $t->error_log_lines(qr/$vre is (down|up)/);
is(join(',', @ch > 1 ? @ch[-2, -1] : @ch), 'down,up',
   'kill: down first, then up');

# A reload makes the old workers close their idle keep-alive client
# connections, and a client whose next request is already on its way
# sees the connection closed: stock nginx does that with or without this
# module, and wrk counts it as a read error (it does not retry).  So
# here each request has its own connection: every one of them must be
# answered, and answered 2xx, across the reloads.
my $hups0 = $t->count_error_log(qr/signal 1 \(SIGHUP\) received/);
$m = load('reload', 1,
          [2.5, sub { kill 'HUP', $t->nginx_pid }],
          [5.5, sub { kill 'HUP', $t->nginx_pid }]);
check_load('reload', $m);
is($t->count_error_log(qr/signal 1 \(SIGHUP\) received/) - $hups0, 2,
   'reload: nginx reloaded twice during the run');

$t->stop;
done_testing;
