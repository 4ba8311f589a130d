#!/usr/bin/perl

# scep_replay_window: a PKIOperation whose (transactionID, senderNonce)
# pair was passed on within the window is answered 400 replayed_message
# and never reaches the back end, by POST or GET; a retry with a fresh
# senderNonce passes; a forged copy with a bad signature cannot block the
# real message; a request that no back end answered is not remembered;
# "off" and the end of the window let a pair through again; counted on
# the status page; a full zone forgets its oldest pairs first, logs that
# once a minute at most, and never refuses a request for it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;
my $b = $t->start_backend;

$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    scep_replay_zone 32k;

    log_format seen '$request_method $args';

    upstream gone {
        server 127.0.0.1:%%GONE%%;
        scep_health_check interval=300ms timeout=200ms fails=1 uri=/scep;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        scep_replay_window 10m;

        location = /scep {
            scep on;
            proxy_pass http://127.0.0.1:%%HOP%%;
        }

        location = /short {
            scep on;
            scep_replay_window 1s;
            proxy_pass http://127.0.0.1:%%HOP%%;
        }

        location = /off {
            scep on;
            scep_replay_window off;
            proxy_pass http://127.0.0.1:%%HOP%%;
        }

        location = /gone {
            scep on;
            proxy_pass http://gone/scep;
        }

        location = /sink {
            scep on;
            proxy_pass http://127.0.0.1:%%SINK%%;
        }

        location = /refused {
            scep on;
            proxy_pass http://127.0.0.1:%%GONE%%;
        }

        location = /fails {
            scep on;
            proxy_pass http://127.0.0.1:%%SINK%%/fails;
        }

        location = /status {
            scep_status;
        }
    }

    # a recording hop in front of the real back end
    server {
        listen 127.0.0.1:%%HOP%%;
        access_log %%DIR%%/logs/backend.log seen;

        location / {
            rewrite ^ /scep break;
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }
    }

    server {
        listen 127.0.0.1:%%SINK%%;
        access_log off;
        location / { return 200; }
        location = /fails { return 500; }
    }
}
CONF

my $gw = $t->port('GW');
my $json = JSON::PP->new;

sub post {
    my ($path, $der) = @_;
    return $t->post($gw, "$path?operation=PKIOperation", $der);
}

sub seen { scalar $t->lines('logs/backend.log', $_[0]) }

sub status {
    my $r = $t->get($gw, '/status');
    return eval { $json->decode($r->{body}) } // {};
}

# a message, then the very same bytes again
my $m = $t->device_msg;
is(post('/scep', $m)->{status}, 200, 'a message passes');
is(seen(1), 1, 'and reaches the back end');

my $r = post('/scep', $m);
is($r->{status}, 400, 'the same message again: 400');
like($r->{body}, qr/^replayed_message: /, 'reason replayed_message');
ok($t->wait_error_log(qr/scep: rejected POST "PKIOperation", transactionID "[^"]+": replayed_message/, 2),
   'an error-log line with the transactionID');

my $q = SCEPTest::dialect($m, 'std');
$r = $t->get($gw, "/scep?operation=PKIOperation&message=$q");
is($r->{status}, 400, 'and by GET: 400');
like($r->{body}, qr/^replayed_message: /, 'reason replayed_message');
is(seen(), 1, 'the replays never reached the back end');

# a device that retries with a fresh nonce, same transactionID
my $tid = 'retry-' . int(rand(1e9));
is(post('/scep', $t->device_msg('--tid', $tid))->{status}, 200,
   'a transactionID');
is(post('/scep', $t->device_msg('--tid', $tid))->{status}, 200,
   'the same transactionID with a fresh senderNonce passes');

# a forged copy first (its signature's last byte changed): refused for
# its signature, and the real message still passes
my $real = $t->device_msg;
my $forged = $real;
substr($forged, -1, 1) = chr(ord(substr($forged, -1, 1)) ^ 0x01);
$r = post('/scep', $forged);
is($r->{status}, 400, 'a forged copy: 400');
like($r->{body}, qr/^bad_signature: /, 'for its signature');
is(post('/scep', $real)->{status}, 200,
   'the real message is not taken for a replay of the forged one');

# the window's end, and "off"
my $s = $t->device_msg;
is(post('/short', $s)->{status}, 200, 'scep_replay_window 1s: passes');
is(post('/short', $s)->{status}, 400, 'again at once: 400');
sleep 1.2;
is(post('/short', $s)->{status}, 200, 'after the window: passes again');

my $o = $t->device_msg;
is(post('/off', $o)->{status}, 200, 'scep_replay_window off: passes');
is(post('/off', $o)->{status}, 200, 'and again');

# no back end answered: the device may send it again
ok(defined $t->wait_error_log(qr/in upstream "gone" is down/, 5),
   'the lone back end is down');
my $g = $t->device_msg;
is(post('/gone', $g)->{status}, 503, 'no healthy back end: 503');
is(post('/gone', $g)->{status}, 503, 'the same message again: 503, not a'
   . ' replay');
my $c = $t->device_msg;
is(post('/refused', $c)->{status}, 502, 'connection refused: 502');
is(post('/refused', $c)->{status}, 502, 'the same message again: 502, not'
   . ' a replay');

# a back end that took it and failed may have it: kept
my $e = $t->device_msg;
is(post('/fails', $e)->{status}, 500, 'a back end answers 500');
is(post('/fails', $e)->{status}, 400, 'the same message again: a replay');

my $st = status();
is($st->{requests}{rejected}{replayed_message}, 4,
   'status: replayed_message counted');
is($st->{replay}{evicted}, 0, 'status: nothing evicted yet');
is($st->{replay}{entries}, 6,
   'status: six pairs kept (not those of "off", the 503 or the 502)');

$r = $t->get($gw, '/status?format=prometheus');
like($r->{body}, qr/^scep_rejected_total\{reason="replayed_message"\} 4$/m,
     'prometheus: replayed_message');

# a full zone: the oldest pairs go first, no request is refused for it
my @msgs = map { $t->device_msg('--key-bits', '1024') } 1 .. 200;
my $first_evicted;
my $refused = 0;
for my $i (0 .. $#msgs) {
    $refused++ if post('/sink', $msgs[$i])->{status} != 200;
    if (!defined $first_evicted && $i % 10 == 9
        && status()->{replay}{evicted} > 0)
    {
        $first_evicted = $i;
    }
}
is($refused, 0, 'a full zone refuses no request');
ok(defined $first_evicted && $first_evicted < 180,
   'the zone filled up (' . ($first_evicted // 'never') . ')');

$st = status();
ok($st->{replay}{entries} <= $first_evicted + 1,
   "memory is bounded: $st->{replay}{entries} pairs kept of 200");
ok($st->{replay}{evicted} > 0, "status: $st->{replay}{evicted} evicted");

is(post('/sink', $msgs[-1])->{status}, 400, 'the newest pair is kept');
is(post('/sink', $msgs[0])->{status}, 200, 'the oldest pair was forgotten');
is(post('/scep', $m)->{status}, 200,
   'as were the first test\'s pairs (the back end answers it)');

is($t->count_error_log(qr/\[warn\].*scep_replay_zone of 32k is full/), 1,
   'a full zone is logged at warn, once within the minute');

$t->stop;
done_testing;
