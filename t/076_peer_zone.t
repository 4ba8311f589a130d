#!/usr/bin/perl

# Back ends of an upstream with "zone", whose peers nginx keeps in shared
# memory: their answers are counted on the status page by class, as those
# of any upstream.  And a back end that the balancer wrapper skips while
# it is unhealthy keeps its passive failures (max_fails): skipping it is
# not a success.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;

my $b0 = $t->start_backend;
my $b1 = $t->start_backend;

# the workers (user nobody) look for the file a-down in the test folder
chmod 0711, $t->dir or die "chmod: $!";

my $hc = 'interval=300ms timeout=200ms fails=1 passes=1 uri=/scep';

$t->start_nginx(<<"CONF");
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;
    log_format up '\$request_uri \$upstream_addr \$upstream_status';

    upstream ndes {
        zone ndes 64k;
        server 127.0.0.1:%%BACKEND0%%;
        server 127.0.0.1:%%BACKEND1%%;
        scep_health_check $hc;
    }

    # A answers its probes while the file a-down is missing, and every
    # request to /fail with a 502; B answers everything
    upstream flaky {
        zone flaky 64k;
        server 127.0.0.1:%%A%% max_fails=2 fail_timeout=1s;
        server 127.0.0.1:%%B%%;
        scep_health_check $hc;
    }

    server {
        listen 127.0.0.1:%%A%%;

        location = /scep {
            if (-f %%DIR%%/a-down) {
                return 500;
            }
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }

        location = /fail {
            return 502;
        }
    }

    server {
        listen 127.0.0.1:%%B%%;

        location = /scep {
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }

        location = /fail {
            return 200 "B\\n";
        }
    }

    server {
        listen 127.0.0.1:%%GW%%;

        access_log %%DIR%%/logs/up.log up;

        location = /scep {
            scep on;
            proxy_pass http://ndes;
        }

        location = /fail {
            proxy_pass http://flaky;
            proxy_next_upstream error timeout http_502;
        }

        location = /status {
            scep_status;
        }
    }
}
CONF

my $gw = $t->port('GW');
my $json = JSON::PP->new;

sub status {
    my $r = $t->get($gw, '/status');
    my $s = eval { $json->decode($r->{body}) };
    die "status: HTTP $r->{status}: $r->{body}\n" unless ref $s eq 'HASH';
    return $s;
}

sub peers {
    my ($s, $up) = @_;
    return @{$s->{upstreams}{$up}{peers} // []};
}

sub wait_status {
    my ($cond, $secs) = @_;
    my $end = time + $secs;
    my $s;
    while (1) {
        $s = status();
        return $s if $cond->($s) || time > $end;
        sleep 0.1;
    }
}

# ------------------------------------------------------------------
# 1. answers by class, per back end of a "zone" upstream

wait_status(sub { 2 == grep { $_->{state} eq 'up' } peers($_[0], 'ndes') },
            5);

for (1 .. 6) {
    is($t->get($gw, '/scep?operation=GetCACaps')->{status}, 200,
       "GetCACaps $_ through the zone upstream");
}

my $s = wait_status(sub {
    my $n = 0;
    $n += $_->{responses}{'2xx'} for peers($_[0], 'ndes');
    $n >= 6;
}, 5);

my ($req, $ok) = (0, 0);
for my $p (peers($s, 'ndes')) {
    $req += $p->{requests};
    $ok += $p->{responses}{'2xx'};
    ok($p->{requests} > 0, "$p->{address}: requests $p->{requests}");
    is($p->{responses}{'2xx'}, $p->{requests},
       "$p->{address}: its 2xx answers are counted");
    is($p->{responses}{$_}, 0, "$p->{address}: $_ 0")
        for qw(1xx 3xx 4xx 5xx);
}
is($req, 6, 'the zone upstream: 6 requests');
is($ok, 6, 'the zone upstream: 6 answers 2xx');

# ------------------------------------------------------------------
# 2. passive failures survive a skip

my $a = "127.0.0.1:" . $t->port('A');

wait_status(sub { 2 == grep { $_->{state} eq 'up' } peers($_[0], 'flaky') },
            5);

# one request to A that fails over to B: A has one failure of two
my $failed;
for (1 .. 4) {
    my $n = () = $t->lines('logs/up.log');
    is($t->get($gw, '/fail')->{status}, 200, "/fail $_ answered by B");
    my @l = $t->lines('logs/up.log', $n + 1);
    if (($l[-1] // '') =~ /^\/fail \Q$a\E, /) {
        $failed = time;
        last;
    }
}
ok($failed, 'A failed a request once');

# A goes down.  Once fail_timeout has passed (nginx counts whole seconds:
# 2 s after the failure) the balancer offers it again, as a trial after
# its failure, and the wrapper hands it back; taken for a success, that
# would clear A's failure.
$t->write_file('a-down', '');
ok(defined $t->wait_error_log(qr/\Q$a\E in upstream "flaky" is down/, 5),
   'A is down');
sleep(2.2 - (time - $failed)) if time - $failed < 2.2;

for (1 .. 6) {
    is($t->get($gw, '/fail')->{status}, 200, "/fail $_ while A is down");
}

unlink $t->dir . '/a-down';
ok(defined $t->wait_error_log(qr/\Q$a\E in upstream "flaky" is up/, 5),
   'A is up again');
sleep 1.2;

# its second failure reaches max_fails=2: nginx disables it
is($t->count_error_log(qr/upstream server temporarily disabled/), 0,
   'not disabled yet');
for (1 .. 4) {
    my $n = () = $t->lines('logs/up.log');
    $t->get($gw, '/fail');
    my @l = $t->lines('logs/up.log', $n + 1);
    last if ($l[-1] // '') =~ /^\/fail \Q$a\E, /;
}
ok(defined $t->wait_error_log(qr/upstream server temporarily disabled/, 2),
   'the failure before the skip still counts: A reaches max_fails');

$t->stop;
done_testing;
