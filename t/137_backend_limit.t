#!/usr/bin/perl

# scep_backend_limit: a slow back end (a real scepserver behind a proxy
# that holds each PKIOperation a second, and counts on its side how many
# it holds at once) never sees more than the limit; 50 devices at once
# all enroll, some after a 503 backend_busy and a retry after
# Retry-After; the single worker answers GetCACaps and the status page
# at once while requests wait; a full queue and a wait too long get 503
# backend_busy; a client that leaves while it waits or while its server
# works frees what it held, and so does a worker killed with requests
# in flight or waiting, once the master starts another; a request that
# an internal redirect passes on waits its turn; a failover to a full
# server is 503 backend_busy; a pinned CertPoll waits for its own server
# without holding up the others; CA operations are not counted; nginx -t
# refuses bad values.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;
my $d = $t->dir;
my $json = JSON::PP->new;

###########################################################################
# nginx -t

sub limit_conf {
    my ($upstream) = @_;
    return <<"CONF";
http {
    client_body_buffer_size 128k;
    large_client_header_buffers 4 72k;

    upstream u {
        server 127.0.0.1:%%DEAD%%;
$upstream
    }

    server {
        listen 127.0.0.1:%%TCONF%%;
        location / { scep on; proxy_pass http://u; }
    }
}
CONF
}

my ($rc, $out) = $t->test_conf(limit_conf(<<'UP'));
        scep_health_check interval=1s timeout=300ms uri=/scep;
        scep_backend_limit 4 queue=100 timeout=5s;
UP
is($rc, 0, 'nginx -t: scep_backend_limit 4 queue=100 timeout=5s')
    or diag($out);

($rc, $out) = $t->test_conf(limit_conf(<<'UP'));
        scep_backend_limit 4;
UP
isnt($rc, 0, 'nginx -t: scep_backend_limit without scep_health_check is'
             . ' refused');
like($out, qr/"scep_backend_limit" in \Q$d\E\/test\.conf:\d+ needs "scep_health_check" in upstream "u" too/,
     '  naming the file, the upstream and what to add');

for my $bad (['0', qr/invalid number "0" in "scep_backend_limit": the PKIOperations in flight to each server, from 1 to 65535/],
             ['x', qr/invalid number "x"/],
             ['4 queue=-1', qr/invalid value "queue=-1" in "scep_backend_limit": "queue=" takes from 0 to 1000/],
             ['4 queue=5000', qr/"queue=" takes from 0 to 1000/],
             ['4 timeout=0', qr/invalid value "timeout=0" in "scep_backend_limit": "timeout=" takes a time/],
             ['4 timeout=abc', qr/"timeout=" takes a time/],
             ['4 wait=1', qr/invalid parameter "wait=1"/])
{
    ($rc, $out) = $t->test_conf(limit_conf(<<"UP"));
        scep_health_check interval=1s timeout=300ms uri=/scep;
        scep_backend_limit $bad->[0];
UP
    isnt($rc, 0, "nginx -t: scep_backend_limit $bad->[0] is refused");
    like($out, $bad->[1], "  saying $bad->[1]");
}

($rc, $out) = $t->test_conf(<<'CONF');
http {
    server {
        listen 127.0.0.1:%%TCONF%%;
        location / { scep_backend_limit 4; }
    }
}
CONF
isnt($rc, 0, 'nginx -t: scep_backend_limit outside an upstream is refused');
like($out, qr/"scep_backend_limit" directive is not allowed here/,
     '  by nginx');

###########################################################################
# The gateway: one worker; "slow" and "tiny" are slow back ends (one
# second a PKIOperation) in front of real scepservers

my $b0 = $t->start_backend;
my $b1 = $t->start_backend;
my $slow = $t->start_delay($b0, 1);
my $tiny = $t->start_delay($b1, 1);
my $pa = $t->start_delay($b0, 3);
my $pb = $t->start_delay($b1, 3);

my $LIMIT = 3;

$t->start_nginx(<<"CONF");
worker_processes 1;

http {
    client_body_buffer_size 128k;
    large_client_header_buffers 4 72k;
    log_format limit '\$status \$scep_reject_reason \$request_time';

    upstream slow {
        server 127.0.0.1:%%$slow->{name}%%;
        scep_health_check interval=1s timeout=500ms uri=/scep;
        scep_backend_limit $LIMIT queue=20 timeout=3s;
    }

    upstream tiny {
        server 127.0.0.1:%%$tiny->{name}%%;
        scep_health_check interval=1s timeout=500ms uri=/scep;
        scep_backend_limit 1 queue=1 timeout=10s;
    }

    upstream pair {
        server 127.0.0.1:%%$pa->{name}%%;
        server 127.0.0.1:%%$pb->{name}%%;
        scep_health_check interval=1s timeout=500ms uri=/scep;
        scep_backend_limit 1 queue=5 timeout=10s;
    }

    upstream brief {
        server 127.0.0.1:%%$tiny->{name}%%;
        scep_health_check interval=1s timeout=500ms uri=/scep;
        scep_backend_limit 1 queue=5 timeout=300ms;
    }

    server {
        listen 127.0.0.1:%%GW%%;
        access_log %%DIR%%/logs/access.log limit;
        scep_retry_after 1s;

        location = /scep {
            scep on;
            proxy_pass http://slow;
            proxy_read_timeout 30s;
        }

        location = /tiny {
            scep on;
            proxy_pass http://tiny/scep;
        }

        location = /redirect {
            scep on;
            error_page 418 = \@tiny;
            return 418;
        }

        location \@tiny {
            scep on;
            rewrite ^ /scep break;
            proxy_pass http://tiny;
        }

        location = /pair-long {
            scep on;
            proxy_pass http://pair/scep;
        }

        location = /pair-short {
            scep on;
            proxy_pass http://pair/scep;
            proxy_read_timeout 1s;
            proxy_next_upstream error timeout non_idempotent;
        }

        location = /brief {
            scep on;
            proxy_pass http://brief/scep;
        }

        location = /status {
            scep_status;
        }
    }
}
CONF

my $gw = $t->port('GW');

sub status {
    my $r = $t->get($gw, '/status');
    return eval { $json->decode($r->{body}) } // {};
}

sub limit_of {
    my ($up) = @_;
    my $s = status();
    return $s->{upstreams}{$up}{peers}[0]{limit} // {};
}

sub held {
    my ($proxy) = @_;
    my $l = $t->read_file($proxy->{state}) // '';
    return $l =~ /^(\d+) (\d+) (\d+)/ ? ($1, $2, $3) : (0, 0, 0);
}

# a request sent now and read later
sub send_post {
    my ($path, $der) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$gw", Timeout => 5)
        or die "connect: $!";
    print $s "POST $path?operation=PKIOperation HTTP/1.1\r\nHost: localhost\r\n"
             . "Content-Type: application/x-pki-message\r\n"
             . "Content-Length: " . length($der)
             . "\r\nConnection: close\r\n\r\n$der";
    return $s;
}

sub read_resp {
    my ($s) = @_;
    local $/;
    my $raw = <$s> // '';
    close $s;
    my ($status) = $raw =~ m{^HTTP/1\.\d (\d+)};
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my ($ra) = ($head // '') =~ /^Retry-After:\s*(\d+)/mi;
    return { status => $status // 0, body => $body // '',
             retry_after => $ra };
}

# the probes pass first
my $end = time + 10;
sleep 0.2 until time > $end
    || (grep { ($_->{state} // '') eq 'up' }
        map { @{$_->{peers} // []} } values %{status()->{upstreams} // {}})
       == 5;

my $l = limit_of('slow');
is_deeply($l, { max => $LIMIT, in_flight => 0, waiting => 0, busy => 0 },
          'the status page shows the limit of each server, nothing held');

###########################################################################
# 50 devices at once, retrying after Retry-After as a real client does

my $DEVICES = 50;
my @msgs = map { $t->device_msg } 1 .. $DEVICES;
my $results = "$d/devices";
mkdir $results;

my $started = time;
my @kids;
for my $i (0 .. $DEVICES - 1) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my ($tries, $busy, $r) = (0, 0);
        while ($tries++ < 30) {
            $r = read_resp(send_post('/scep', $msgs[$i]));
            last unless $r->{status} == 503;
            $busy++ if $r->{body} =~ /^backend_busy: /;
            sleep($r->{retry_after} // 1);
        }
        open my $fh, '>', "$results/$i" or die;
        print $fh "$r->{status} $tries $busy\n";
        close $fh;
        POSIX::_exit(0);
    }
    push @kids, $pid;
}

# meanwhile: the single worker answers at once, the slots stay bounded

my ($most_waiting, $slowest_caps, $slowest_status, $over) = (0, 0, 0, 0);
while (grep { waitpid($_, WNOHANG) == 0 } @kids) {
    my $t0 = time;
    my $s = status();
    my $dt = time - $t0;
    $slowest_status = $dt if $dt > $slowest_status;

    my $lim = $s->{upstreams}{slow}{peers}[0]{limit} // {};
    $most_waiting = $lim->{waiting}
        if ($lim->{waiting} // 0) > $most_waiting;
    $over++ if ($lim->{in_flight} // 0) > $LIMIT;

    if (($lim->{waiting} // 0) >= 10) {
        $t0 = time;
        my $r = $t->get($gw, '/scep?operation=GetCACaps');
        $dt = time - $t0;
        $slowest_caps = $dt if $dt > $slowest_caps;
        is($r->{status}, 200, 'GetCACaps while requests wait: 200')
            if $dt == $slowest_caps;
    }
    sleep 0.1;
    last if time - $started > 120;
}
waitpid($_, 0) for @kids;
my $took = time - $started;

my (%status, $retried, $busy_seen);
for my $i (0 .. $DEVICES - 1) {
    my ($st, $tries, $busy) = split ' ', ($t->read_file("devices/$i") // '');
    $status{$st // 'none'}++;
    $retried++ if ($tries // 0) > 1;
    $busy_seen += $busy // 0;
}

is($status{200} // 0, $DEVICES, "all $DEVICES devices enrolled")
    or diag(explain(\%status));
ok($retried, "some after a 503 and a retry ($retried devices,"
             . " $busy_seen backend_busy answers)");
my ($now, $max, $total) = held($slow);
ok($max <= $LIMIT, "the back end held at most $LIMIT at once, measured on"
                   . " its side ($max)");
is($max, $LIMIT, '  and used every slot');
is($now, 0, '  and holds none now');
is($over, 0, 'the status page never showed more than the limit in flight');
ok($most_waiting >= 10, "requests waited in the queue (at most"
                        . " $most_waiting at once)");
ok($slowest_caps > 0 && $slowest_caps < 0.5,
   sprintf('GetCACaps through the same worker answered in %.3f s while'
           . ' requests waited', $slowest_caps));
ok($slowest_status < 0.5,
   sprintf('and the status page in %.3f s at the slowest', $slowest_status));
diag(sprintf('%d devices, limit %d, 1 s a PKIOperation: %.1f s; %d'
             . ' PKIOperations reached the back end', $DEVICES, $LIMIT,
             $took, $total));

$l = limit_of('slow');
is($l->{in_flight}, 0, 'afterwards nothing is in flight');
is($l->{waiting}, 0, 'and nothing waits');
is($l->{busy}, $busy_seen, 'busy counts the 503 backend_busy answers');

my $prom = $t->get($gw, '/status?format=prometheus')->{body} // '';
like($prom, qr/^# HELP scep_peer_in_flight .+\n# TYPE scep_peer_in_flight gauge\n/m,
     'Prometheus: scep_peer_in_flight');
like($prom, qr/^scep_peer_waiting\{upstream="slow",peer="127\.0\.0\.1:\d+"\} 0$/m,
     'Prometheus: scep_peer_waiting');
like($prom, qr/^scep_peer_busy_total\{upstream="slow",peer="127\.0\.0\.1:\d+"\} $busy_seen$/m,
     'Prometheus: scep_peer_busy_total');

###########################################################################
# A full queue, and CA operations while it is full

# the devices' messages first: making one takes a while
my @m = map { $t->device_msg } 1 .. 25;

my $first = send_post('/tiny', shift @m);
sleep 0.2;
my $second = send_post('/tiny', shift @m);
sleep 0.2;

$l = limit_of('tiny');
is($l->{in_flight}, 1, 'tiny: one in flight');
is($l->{waiting}, 1, 'tiny: one waits');

my $t0 = time;
my $r = read_resp(send_post('/tiny', shift @m));
is($r->{status}, 503, 'the queue full: 503');
like($r->{body}, qr/^backend_busy: /, '  reason backend_busy');
is($r->{retry_after}, 1, '  with Retry-After');
ok(time - $t0 < 0.5, '  at once');

$r = $t->get($gw, '/tiny?operation=GetCACaps');
is($r->{status}, 200, 'GetCACaps while the queue is full: 200');
$r = $t->get($gw, '/tiny?operation=GetCACert');
is($r->{status}, 200, 'GetCACert too');
is(limit_of('tiny')->{in_flight}, 1, 'and neither is counted in flight');

is(read_resp($first)->{status}, 200, 'the first enrolls');
is(read_resp($second)->{status}, 200, 'the one that waited too');

ok($t->wait_error_log(qr/every server of upstream "tiny" has 1 PKIOperations in flight and its queue is full/, 2),
   'the error log says why');

###########################################################################
# A request that an internal redirect brings to a location that passes it
# on waits its turn there too, instead of finding the server full

$first = send_post('/tiny', shift @m);
sleep 0.2;
$second = send_post('/redirect', shift @m);
sleep 0.2;
is(limit_of('tiny')->{waiting}, 1, 'by error_page 418 = \@tiny: it waits');
is(read_resp($first)->{status}, 200, '  the first enrolls');
is(read_resp($second)->{status}, 200, '  and the redirected one after it');

###########################################################################
# A failover (proxy_next_upstream) does not wait in the queue: when the
# only other server is full, the answer is 503 backend_busy, not that no
# server is healthy

my $long = send_post('/pair-long', shift @m);
sleep 0.3;
$r = read_resp(send_post('/pair-short', shift @m));
is($r->{status}, 503, 'a failover that finds the other server full: 503');
like($r->{body}, qr/^backend_busy: /, '  reason backend_busy');
ok($t->wait_error_log(qr/every server of upstream "pair" that a PKIOperation could go to has 1 in flight/, 2),
   '  and the error log says why');
is(read_resp($long)->{status}, 200, 'the one on the other server enrolls');

###########################################################################
# A wait too long

$first = send_post('/brief', shift @m);
sleep 0.2;
$t0 = time;
$r = read_resp(send_post('/brief', shift @m));
my $waited = time - $t0;
is($r->{status}, 503, 'timeout=300ms: 503');
like($r->{body}, qr/^backend_busy: /, '  reason backend_busy');
ok($waited >= 0.28 && $waited < 1,
   sprintf('  after the timeout (%.3f s)', $waited));
is(read_resp($first)->{status}, 200, 'the one in flight enrolls');
ok($t->wait_error_log(qr/a PKIOperation waited 300 ms for a server of upstream "brief" and is refused/, 2),
   'the error log says so');

###########################################################################
# Clients that leave, while in flight and while waiting

my ($h0) = held($tiny);
$first = send_post('/tiny', shift @m);
sleep 0.2;
$second = send_post('/tiny', shift @m);
sleep 0.2;
$l = limit_of('tiny');
ok($l->{in_flight} == 1 && $l->{waiting} == 1, 'one in flight, one waits');

close $second;
sleep 0.3;
is(limit_of('tiny')->{waiting}, 0, 'the waiting client left: its place is'
                                   . ' given back');
close $first;
sleep 0.3;
is(limit_of('tiny')->{in_flight}, 0, 'the client in flight left: its slot'
                                     . ' is given back');

$t0 = time;
$r = read_resp(send_post('/tiny', shift @m));
is($r->{status}, 200, 'the next one enrolls');
ok(time - $t0 < 3, '  without waiting for what was left');
$l = limit_of('tiny');
ok($l->{in_flight} == 0 && $l->{waiting} == 0, 'nothing held at the end');

###########################################################################
# A worker killed with a request in flight: the worker that the master
# starts in its place gives its slot back

sub workers {
    my $master = $t->nginx_pid;
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $l = <$fh> // '';
        push @w, $1 if $l =~ /^(\d+) \(nginx\) \S (\d+) / && $2 == $master;
    }
    return @w;
}

my ($worker) = workers();
$first = send_post('/tiny', shift @m);
sleep 0.3;
is(limit_of('tiny')->{in_flight}, 1, 'a request in flight');
kill 'KILL', $worker;
close $first;

$end = time + 10;
my $in_flight;
while (time < $end) {
    my @w = workers();
    if (@w && $w[0] != $worker) {
        $in_flight = limit_of('tiny')->{in_flight};
        last if defined $in_flight;
    }
    sleep 0.1;
}
is($in_flight, 0, 'the worker killed with it: its slot is given back');
ok($t->wait_error_log(qr/1 PKIOperations of a worker that exited were still in flight to 127\.0\.0\.1:\d+: their slots of scep_backend_limit are given back/, 2),
   '  and the error log says so');

$r = read_resp(send_post('/tiny', shift @m));
is($r->{status}, 200, 'the next one enrolls at once');

###########################################################################
# A worker killed while requests wait: the worker that the master starts
# in its place gives their places in the queue back, so that those who
# come next are not held up behind requests nobody serves any more

($worker) = workers();
my @gone = map { send_post('/scep', shift @m) } 1 .. $LIMIT + 5;
sleep 0.4;
$l = limit_of('slow');
ok($l->{in_flight} == $LIMIT && $l->{waiting} == 5,
   "$LIMIT in flight, 5 wait") or diag(explain($l));
kill 'KILL', $worker;
close $_ for @gone;

$end = time + 10;
my $waiting;
while (time < $end) {
    my @w = workers();
    if (@w && $w[0] != $worker) {
        $waiting = limit_of('slow')->{waiting};
        last if defined $waiting;
    }
    sleep 0.1;
}
is($waiting, 0, 'the worker killed with them: their places are given back');
ok($t->wait_error_log(qr/5 PKIOperations of a worker that exited waited in the queue of upstream "slow": their places are given back/, 2),
   '  and the error log says so');

# the back end is idle: the next ones go on at once, not after timeout=3s
# for each dead request (nor a 503)
for my $i (1 .. 2) {
    $t0 = time;
    $r = read_resp(send_post('/scep', shift @m));
    is($r->{status}, 200, "after the kill, request $i enrolls");
    ok(time - $t0 < 2.5,
       sprintf('  without waiting behind the dead (%.1f s)', time - $t0));
}

$t->stop_nginx;

like($t->read_file('logs/access.log'), qr/^503 backend_busy /m,
     '$scep_reject_reason is backend_busy');
is(join("\n", grep { /\[(alert|emerg|crit)\]/ && !/exited on signal 9/ }
                split /\n/, $t->read_file('logs/error.log')),
   '', 'no alert in the error log but the killed worker');

###########################################################################
# Two workers: the slots and the queue are counted over both

{
    my $t2 = SCEPTest->new;
    my $be = $t2->start_backend;
    my $slow2 = $t2->start_delay($be, 1);
    $t2->start_nginx(<<"CONF");
worker_processes 2;

http {
    client_body_buffer_size 128k;
    large_client_header_buffers 4 72k;

    upstream slow {
        server 127.0.0.1:%%$slow2->{name}%%;
        scep_health_check interval=1s timeout=500ms uri=/scep;
        scep_backend_limit 2 queue=20 timeout=10s;
    }

    server {
        listen 127.0.0.1:%%GW2%%;

        location = /scep {
            scep on;
            proxy_pass http://slow;
        }
    }
}
CONF
    my $gw2 = $t2->port('GW2');
    sleep 1.5;

    my @m2 = map { $t2->device_msg } 1 .. 12;
    my @s;
    for my $m (@m2) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$gw2",
                                      Timeout => 5) or die "connect: $!";
        print $s "POST /scep?operation=PKIOperation HTTP/1.1\r\n"
                 . "Host: localhost\r\n"
                 . "Content-Type: application/x-pki-message\r\n"
                 . "Content-Length: " . length($m)
                 . "\r\nConnection: close\r\n\r\n$m";
        push @s, $s;
    }
    my @st = map { read_resp($_)->{status} } @s;
    is(scalar(grep { $_ == 200 } @st), 12,
       'two workers: 12 devices at once all enroll, waiting their turn');
    my $l2 = $t2->read_file($slow2->{state}) // '';
    my ($n2, $max2) = $l2 =~ /^(\d+) (\d+)/;
    is($max2, 2, '  and the back end held at most 2 at once over both'
                 . ' workers (' . ($max2 // '?') . ')');
    $t2->stop_nginx;
}

###########################################################################
# A CertPoll pinned to its server (scep_pending_zone) waits for that one
# only: a PKCSReq that the balancer sends to the other, idle, server does
# not wait behind it.  Two fault daemons in mode "pending" behind proxies
# that hold each PKIOperation 2 s; one slot each.

{
    my $t3 = SCEPTest->new;
    my $dir = $t3->dir;

    for my $cmd (
        [qw(req -x509 -newkey rsa:2048 -nodes -keyout pca.key -out pca.pem
            -subj /CN=Pending-CA -days 30)],
        [qw(x509 -in pca.pem -outform DER -out pca.der)],
        [qw(genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048
            -out device.key)],
    )
    {
        my ($rc, $out) = $t3->run('sh', '-c', "cd $dir && openssl @$cmd");
        die "openssl @$cmd: $out" if $rc;
    }

    my $fa = $t3->start_fault('pending', "$dir/pca.der", "$dir/pca.key");
    my $fb = $t3->start_fault('pending', "$dir/pca.der", "$dir/pca.key");
    my $da = $t3->start_delay({ port => $t3->port($fa->{name}) }, 2);
    my $db = $t3->start_delay({ port => $t3->port($fb->{name}) }, 2);

    $t3->start_nginx(<<"CONF");
worker_processes 1;

http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;
    scep_pending_zone 1m;
    log_format pick '\$http_x_pick|\$status|\$upstream_addr|\$request_time';

    upstream ndes {
        hash \$http_x_pick consistent;
        server 127.0.0.1:%%$da->{name}%%;
        server 127.0.0.1:%%$db->{name}%%;
        scep_health_check interval=1s timeout=800ms uri=/scep;
        scep_backend_limit 1 queue=10 timeout=8s;
    }

    server {
        listen 127.0.0.1:%%GW3%%;
        access_log %%DIR%%/logs/pick.log pick;

        location = /scep {
            scep on;
            proxy_pass http://ndes/scep;
        }
    }
}
CONF
    my $gw3 = $t3->port('GW3');
    sleep 1.5;

    my $req = sub {
        my ($key, $body) = @_;
        return SCEPTest::http($gw3,
            "POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: x\r\n"
            . "X-Pick: $key\r\nConnection: close\r\n"
            . "Content-Type: application/x-pki-message\r\n"
            . "Content-Length: " . length($body) . "\r\n\r\n$body",
            timeout => 20);
    };
    my $msg = sub {
        my ($type, $tid) = @_;
        my ($rc, $out) = $t3->run($t3->root . '/build/scep-msg',
            '--ca', "$dir/pca.pem", '--type', $type, '--tid', $tid,
            '--key', "$dir/device.key", '--challenge', 'secret',
            '--cn', 'device', '--dialect', 'der');
        die "scep-msg: $out" if $rc;
        return $out;
    };

    # a key of X-Pick for each server
    for my $k (map { "k$_" } 1 .. 20) {
        SCEPTest::http($gw3, "GET /scep?operation=GetCACaps HTTP/1.1\r\n"
                             . "Host: x\r\nX-Pick: $k\r\n"
                             . "Connection: close\r\n\r\n");
    }
    sleep 0.3;
    my %srv;
    for (split /\n/, $t3->read_file('logs/pick.log') // '') {
        my @f = split /\|/;
        $srv{$f[2]} //= $f[0];
    }
    my ($busy_addr, $idle_addr) = sort keys %srv;
    my ($ks, $ko) = @srv{$busy_addr, $idle_addr};
    ok($ks && $ko, 'pinned: a key for each server');

    # the request that the busy server keeps pending
    my @pk = ($msg->(19, 'tidA'), $msg->(19, 'tidB'), $msg->(20, 'tidA'),
              $msg->(19, 'tidC'));
    is($req->($ks, $pk[0])->{status}, 200, 'pinned: a PKCSReq is pending');

    # the busy server works 2 s; the CertPoll pinned to it waits for it
    my @kids;
    for my $job ([$ks, $pk[1]], ['zzz-other', $pk[2]]) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            $req->(@$job);
            POSIX::_exit(0);
        }
        push @kids, $pid;
        sleep 0.3;
    }

    my $t0 = time;
    my $r3 = $req->($ko, $pk[3]);
    my $dt = time - $t0;
    waitpid($_, 0) for @kids;

    is($r3->{status}, 200, 'pinned: a PKCSReq for the idle server enrolls');
    ok($dt < 3, sprintf('  without waiting behind the CertPoll pinned to'
                        . ' the busy server (%.1f s, the server takes 2)',
                        $dt));

    my $log = $t3->read_file('logs/pick.log') // '';
    like($log, qr/^zzz-other\|200\|\Q$busy_addr\E\|/m,
         '  and the CertPoll went on to its own server after its turn')
        or diag($log);
    $t3->stop_nginx;
}

done_testing;
