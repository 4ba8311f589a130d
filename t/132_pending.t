#!/usr/bin/perl

# scep_pending_zone: a CertRep of PENDING ties the request to the server
# that gave it.  A CertPoll of that request (same transactionID, signed
# by the same key) goes to that server whatever the balancer would
# choose; SUCCESS forgets it, and the next CertPoll is balanced again;
# while that server is down a CertPoll is answered 503
# pending_server_down with Retry-After and never reaches another server;
# a full zone forgets its oldest records, counts and logs that; nginx -t
# says what to change in a bad directive.  Two fault daemons in mode
# "pending" stand for NDES servers that hold requests for approval, and
# log each PKIOperation they answer.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest qw(http);

my $t = SCEPTest->new;
my $dir = $t->dir;
my $slow = int($ENV{TEST_TIMEOUT_FACTOR} || 1) || 1;

# the CA the daemons sign their CertReps with, and a device's key
for my $cmd (
    [qw(req -x509 -newkey rsa:2048 -nodes -keyout pca.key -out pca.pem
        -subj /CN=Pending-CA -days 30)],
    [qw(x509 -in pca.pem -outform DER -out pca.der)],
    [qw(genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048
        -out device.key)],
    [qw(genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048
        -out other.key)],
)
{
    my ($rc, $out) = $t->run('sh', '-c', "cd $dir && openssl @$cmd");
    die "openssl @$cmd: $out" if $rc;
}

# nginx -t: what to change
sub conf {
    my ($http, $ups_conf) = @_;
    $ups_conf //= 'scep_health_check uri=/scep;';
    return <<"C";
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;
    $http
    upstream ndes {
        server 127.0.0.1:%%A%%;
        $ups_conf
    }
    server {
        listen 127.0.0.1:%%A%%;
        location /scep { scep on; proxy_pass http://ndes; }
    }
}
C
}

sub refused {
    my ($conf, $re, $name) = @_;
    my ($rc, $out) = $t->test_conf($conf);
    isnt($rc, 0, "$name: refused");
    like($out, $re, "$name: says why") or diag($out);
}

my ($rc, $out) = $t->test_conf(conf('scep_pending_zone 1m;'));
is($rc, 0, 'scep_pending_zone 1m: accepted') or diag($out);
($rc, $out) = $t->test_conf(conf('scep_pending_zone 64k timeout=12h;'));
is($rc, 0, 'with timeout=12h: accepted') or diag($out);

refused(conf('scep_pending_zone lots;'),
        qr/invalid size "lots" in "scep_pending_zone": give a size such as "1m"/,
        'a bad size');
refused(conf('scep_pending_zone 16k;'),
        qr/"scep_pending_zone" of "16k" is too small: make it at least \d+k/,
        'a small zone');
refused(conf('scep_pending_zone 1m timeout=soon;'),
        qr/invalid value "timeout=soon" in "scep_pending_zone": give a time such as "timeout=1d"/,
        'a bad timeout');
refused(conf('scep_pending_zone 1m timeout=30d;'),
        qr/"timeout=30d" of "scep_pending_zone" is too long: make it at most 7d/,
        'a timeout too long');
refused(conf('scep_pending_zone 1m keep=1;'),
        qr/invalid parameter "keep=1"/, 'an unknown parameter');
refused(conf('scep_pending_zone 1m; scep_pending_zone 2m;'),
        qr/"scep_pending_zone" directive is duplicate/, 'twice');

($rc, $out) = $t->test_conf(conf('scep_pending_zone 1m;', ''));
like($out, qr/\[warn\] "scep_pending_zone" keeps pending requests only for upstreams with "scep_health_check"/,
     'without any scep_health_check: a warning');

my $a = $t->start_fault('pending', "$dir/pca.der", "$dir/pca.key");
my $b = $t->start_fault('pending', "$dir/pca.der", "$dir/pca.key");

# a long upstream name makes records large, so that 32k fills up soon
my $ups = 'ndes' . ('-x' x 100);

# GEN names the configuration (/gen says it), TIMEOUT the zone's
sub nginx_conf {
    my ($gen, $timeout) = @_;
    return <<"CONF";
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    scep_pending_zone 32k timeout=$timeout;

    log_format pend '\$http_x_pick|\$scep_transaction_id|\$status|'
                    '\$scep_reject_reason|\$upstream_addr';

    upstream $ups {
        hash \$http_x_pick consistent;
        server 127.0.0.1:%%$a->{name}%%;
        server 127.0.0.1:%%$b->{name}%%;
        scep_health_check interval=300ms timeout=200ms fails=3 passes=1
                          uri=/scep;
    }

    # the same servers, round robin
    upstream rr {
        server 127.0.0.1:%%$a->{name}%%;
        server 127.0.0.1:%%$b->{name}%%;
        scep_health_check interval=300ms timeout=200ms fails=3 passes=1
                          uri=/scep;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        access_log %%DIR%%/logs/pend.log pend;

        location = /scep {
            scep on;
            proxy_pass http://$ups/scep;
        }

        location = /rr {
            scep on;
            proxy_pass http://rr/scep;
        }

        location = /status {
            scep_status;
        }

        location = /gen {
            return 200 "gen$gen";
        }
    }
}
CONF
}

$t->start_nginx(nginx_conf(1, '1h'));

my $gw = $t->port('GW');
my $aport = $t->port($a->{name});
my $bport = $t->port($b->{name});
my $json = JSON::PP->new;

sub status {
    my $r = $t->get($gw, '/status');
    return eval { $json->decode($r->{body}) } // {};
}

sub peer_state {
    my ($port) = @_;
    for my $p (@{ status()->{upstreams}{$ups}{peers} // [] }) {
        return $p->{state} // '' if ($p->{address} // $p->{name} // '')
                                    =~ /:$port$/;
    }
    return '';
}

sub wait_state {
    my ($port, $state) = @_;
    my $end = time + 10 * $slow;
    while (time < $end) {
        return 1 if peer_state($port) eq $state;
        sleep 0.1;
    }
    return 0;
}

# a request with X-Pick, the key of the upstream's hash
sub pick {
    my ($key, $method, $uri, $body) = @_;
    my $req = "$method $uri HTTP/1.1\r\nHost: localhost\r\n"
              . "X-Pick: $key\r\nConnection: close\r\n";
    $req .= "Content-Type: application/x-pki-message\r\n"
            . "Content-Length: " . length($body) . "\r\n" if defined $body;
    return http($gw, $req . "\r\n" . ($body // ''));
}

# a pkiMessage of the device's key (or KEY): TYPE 19 PKCSReq, 20 CertPoll
sub msg {
    my ($type, $tid, $key) = @_;
    my ($rc, $out) = $t->run($t->root . '/build/scep-msg', '--ca',
                             "$dir/pca.pem", '--type', $type, '--tid', $tid,
                             '--key', $key // "$dir/device.key",
                             '--challenge', 'secret', '--cn', 'device',
                             '--dialect', 'der');
    die "scep-msg: $out" if $rc;
    return $out;
}

sub pkiop {
    my ($key, $type, $tid, $dkey) = @_;
    return pick($key, 'POST', '/scep?operation=PKIOperation',
                msg($type, $tid, $dkey));
}

# what a daemon answered to a transactionID, from its log
sub answered {
    my ($d, $tid) = @_;
    return map { / PKIOperation \Q$tid\E (\w+)$/ ? $1 : () }
           split /\n/, $t->read_file("logs/$d->{name}.log");
}

# the access-log line of the COUNT-th request with this transactionID
sub logged {
    my ($tid, $count) = @_;
    my @l;
    for my $try (1 .. 50) {
        @l = grep { /^[^|]*\|\Q$tid\E\|/ } $t->lines('logs/pend.log');
        last if @l >= $count;
        sleep 0.1;
    }
    return $l[$count - 1] // '';
}

ok(wait_state($aport, 'up') && wait_state($bport, 'up'),
   'both servers are up');

# hash keys that the balancer sends to A and to B
my (%to, $n);
for my $k (map { "k$_" } 1 .. 64) {
    my $r = pick($k, 'GET', '/scep?operation=GetCACaps');
    my ($addr) = (grep { /^\Q$k\E\|/ } $t->lines('logs/pend.log'))[-1]
                 =~ /\|([^|]*)$/;
    my $to = $addr =~ /:$aport$/ ? 'A' : $addr =~ /:$bport$/ ? 'B' : next;
    $to{$to} //= $k;
    last if $to{A} && $to{B};
}
ok($to{A} && $to{B}, "hash keys for A ($to{A}) and B ($to{B})")
    or BAIL_OUT('the hash never chose one of the servers');

# PENDING from A, then a CertPoll the hash would send to B goes to A
my $tid = 'pend-' . int(rand(1e9));
my $r = pkiop($to{A}, 19, $tid);
is($r->{status}, 200, 'a PKCSReq: 200');
is($t->pki_status($r->{body}), '3', 'PENDING');
is_deeply([answered($a, $tid)], ['PENDING'], 'A answered it');

$r = pkiop($to{B}, 20, $tid);
is($r->{status}, 200, 'its CertPoll, hashed to B: 200');
is($t->pki_status($r->{body}), '0', 'SUCCESS');
is_deeply([answered($a, $tid)], [qw(PENDING SUCCESS)],
          'A, which holds the request, answered the CertPoll');
is_deeply([answered($b, $tid)], [], 'B never saw it');
like(logged($tid, 2), qr/\|200\|-\|127\.0\.0\.1:$aport$/,
     '$upstream_addr is A');

# SUCCESS forgot it: the next CertPoll is balanced as any request
$r = pkiop($to{B}, 20, $tid);
is($r->{status}, 200, 'a CertPoll after SUCCESS: 200');
is_deeply([answered($b, $tid)], ['PENDING'],
          'balanced to B again: the record was forgotten');

# round robin would alternate: every CertPoll of a request that stays
# pending goes to the server that holds it, each PENDING keeping it on
my $hold = 'hold-' . int(rand(1e9));
$r = $t->post($gw, '/rr?operation=PKIOperation', msg(19, $hold));
is($t->pki_status($r->{body}), '3', 'round robin: a PKCSReq, PENDING');
my ($holder, $other) = answered($a, $hold) ? ($a, $b) : ($b, $a);
for my $i (1 .. 4) {
    $r = $t->post($gw, '/rr?operation=PKIOperation', msg(20, $hold));
    is($r->{status}, 200, "round robin: CertPoll $i, 200");
}
is(scalar(() = answered($holder, $hold)), 5,
   'round robin: the server that holds it got all four CertPolls');
is_deeply([answered($other, $hold)], [], 'the other none');

# only the key that made the request moves its CertPolls
my $tid2 = 'key-' . int(rand(1e9));
is(pkiop($to{A}, 19, $tid2)->{status}, 200, 'a PKCSReq to A');
$r = pkiop($to{B}, 20, $tid2, "$dir/other.key");
is($r->{status}, 200, 'a CertPoll of its transactionID, another key');
is_deeply([answered($b, $tid2)], ['PENDING'],
          'is not pinned: it went where the hash sent it');

# a full zone: the oldest records go first, counted and logged once
my $st = status();
is($st->{pending}{evicted}, 0, 'status: nothing evicted yet');
ok($st->{pending}{entries} >= 1, "status: $st->{pending}{entries} kept");

my @fill = map { "fill-$_-" . int(rand(1e9)) } 1 .. 120;
my $failed = 0;
for my $f (@fill) {
    $failed++ if pkiop($to{A}, 19, $f)->{status} != 200;
    # the records before the fill are the oldest, and go first
    last if status()->{pending}{evicted} >= 5;
}
is($failed, 0, 'PENDING answers pass while the zone fills');

$st = status();
ok($st->{pending}{evicted} > 0, "status: $st->{pending}{evicted} evicted");
ok($st->{pending}{entries} < 120, "bounded: $st->{pending}{entries} kept");
ok($t->wait_error_log(qr/\[warn\].*scep_pending_zone of 32k is full/, 2),
   'a full zone is logged at warn');

$r = $t->get($gw, '/status?format=prometheus');
like($r->{body}, qr/^scep_pending_evicted_total [1-9]\d*$/m,
     'prometheus: scep_pending_evicted_total');
like($r->{body}, qr/^scep_pending_entries [1-9]\d*$/m,
     'prometheus: scep_pending_entries');
like($r->{body}, qr/^# HELP scep_pending_entries /m, 'with # HELP');

# the oldest records are gone: their CertPolls are balanced again
$r = pkiop($to{B}, 20, $tid2);
is_deeply([answered($a, $tid2)], ['PENDING'],
          'an evicted record pins nothing: A did not get the CertPoll');
is_deeply([answered($b, $tid2)], [qw(PENDING SUCCESS)],
          'B did, as the hash has it');

# a reload keeps the records, and finds A in the new configuration; the
# same size keeps the zone, and a timeout of 1s ends what is kept after
my $tid5 = 'reload-' . int(rand(1e9));
is(pkiop($to{A}, 19, $tid5)->{status}, 200, 'a PKCSReq held by A');

$t->write_conf(nginx_conf(2, '1s'));
my $exited = qr/\[notice\].* worker process \d+ exited/;
my $before = $t->count_error_log($exited);
kill 'HUP', $t->nginx_pid;
my $gen = '';
for (1 .. 100) {
    $gen = $t->get($gw, '/gen')->{body} // '';
    last if $gen eq 'gen2';
    sleep 0.05;
}
is($gen, 'gen2', 'nginx -s reload took effect');

# the old worker accepts for a moment still, with the old timeout
ok(defined $t->wait_error_log($exited, 10, $before),
   'the old worker is gone');

$r = pkiop($to{B}, 20, $tid5);
is($r->{status}, 200, 'its CertPoll after the reload: 200');
is_deeply([answered($a, $tid5)], [qw(PENDING SUCCESS)],
          'A, which holds it, answered it');
is_deeply([answered($b, $tid5)], [], 'B never saw it');

my $tid6 = 'late-' . int(rand(1e9));
is(pkiop($to{A}, 19, $tid6)->{status}, 200, 'a PKCSReq held by A');
sleep 1.5;
$r = pkiop($to{B}, 20, $tid6);
is_deeply([answered($b, $tid6)], ['PENDING'],
          'a CertPoll after timeout=1s: balanced to B');
is_deeply([answered($a, $tid6)], ['PENDING'], 'A did not get it');

# back to a timeout longer than the rest of the test: on a busy machine
# the probes take more than 1s to see A down
$t->write_conf(nginx_conf(3, '1h'));
$before = $t->count_error_log($exited);
kill 'HUP', $t->nginx_pid;
for (1 .. 100) {
    $gen = $t->get($gw, '/gen')->{body} // '';
    last if $gen eq 'gen3';
    sleep 0.05;
}
is($gen, 'gen3', 'reloaded with timeout=1h');
ok(defined $t->wait_error_log($exited, 10, $before),
   'the worker of timeout=1s is gone');

# A goes down: the CertPolls it holds get 503 and never reach B
my $tid3 = 'down-' . int(rand(1e9));
my $tid4 = 'race-' . int(rand(1e9));
is(pkiop($to{A}, 19, $tid3)->{status}, 200, 'a PKCSReq held by A');
is(pkiop($to{A}, 19, $tid4)->{status}, 200, 'another');

$t->stop_backend($a);

# before the probes see it (three failed probes, 600 ms at least): the
# connection to A fails, and the CertPoll is not passed on to B
$r = pkiop($to{B}, 20, $tid4);
is($r->{status}, 503, 'a CertPoll as A stops: 503');
ok(defined $r->{headers}{'retry-after'}, 'with Retry-After');
my $downs = $r->{body} =~ /^pending_server_down: / ? 1 : 0;
note("the CertPoll as A stopped: $r->{body}");
like($r->{body}, qr/^(no_healthy_backend|pending_server_down): /,
     'no server for it') or diag($r->{body});
ok($downs || $t->wait_error_log(qr/\[error\].*scep: 127\.0\.0\.1:$aport, the server that holds a pending request, failed: its CertPoll is not passed on to another/, 2),
   'the failed connection is logged at error');

ok(wait_state($aport, 'down'), 'the probes mark A down');

$r = pkiop($to{B}, 20, $tid3);
is($r->{status}, 503, 'a CertPoll of a request A holds: 503');
ok(defined $r->{headers}{'retry-after'}, 'with Retry-After');
like($r->{body}, qr/^pending_server_down: /, 'reason pending_server_down');
like(logged($tid3, 2), qr/\|503\|pending_server_down\|-?$/,
     '$scep_reject_reason pending_server_down, no upstream');
is_deeply([answered($b, $tid3)], [], 'B never saw it');
is_deeply([answered($b, $tid4)], [], 'nor the one sent as A stopped');

$st = status();
is($st->{requests}{rejected}{pending_server_down}, 1 + $downs,
   'status: pending_server_down counted');

# a PKCSReq is balanced as always: B takes new requests
$r = pkiop($to{A}, 19, 'new-' . int(rand(1e9)));
is($r->{status}, 200, 'a new PKCSReq while A is down: 200, from B');

$t->stop;

done_testing;
