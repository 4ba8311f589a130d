#!/usr/bin/perl

# scep_replay_window binds a pair to its signer: the same transactionID
# and senderNonce signed by another key is not a replay (someone who
# learnt a device's pair and signed it first cannot have the device's real
# message refused), while the same message again is, and so is the same
# key's message with its certificate encoded otherwise (an EC point
# compressed).  A full zone counts its evictions on the status page (JSON
# and Prometheus) and logs them at warn at most once a minute.

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

    server {
        listen 127.0.0.1:%%GW%%;

        scep_replay_window 10m;

        location = /scep {
            scep on;
            proxy_pass http://127.0.0.1:%%HOP%%;
        }

        location = /sink {
            scep on;
            proxy_pass http://127.0.0.1:%%SINK%%;
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
    }
}
CONF

my $gw = $t->port('GW');
my $json = JSON::PP->new;
my $dir = $t->dir;

sub post {
    my ($path, $der) = @_;
    return $t->post($gw, "$path?operation=PKIOperation", $der);
}

sub seen { scalar $t->lines('logs/backend.log', $_[0]) }

sub status {
    my $r = $t->get($gw, '/status');
    return eval { $json->decode($r->{body}) } // {};
}

sub nonce { join '', map { sprintf '%02x', int rand 256 } 1 .. 16 }

sub openssl {
    my ($rc, $out) = $t->run('openssl', @_);
    die "openssl @_: $out" if $rc;
}

# a device's message, and someone else's with the same pair, sent first
my $tid = 'signer-' . int(rand(1e9));
my $nonce = nonce();
my $device = $t->device_msg('--tid', $tid, '--nonce', $nonce);
my $other = $t->device_msg('--tid', $tid, '--nonce', $nonce);

is(post('/scep', $other)->{status}, 200,
   'a pair signed by one key passes');
my $r = post('/scep', $device);
is($r->{status}, 200,
   'the same pair signed by another key passes: not a replay');
unlike($r->{body} // '', qr/^replayed_message/, 'no replayed_message');
is(seen(2), 2, 'both reached the back end');

$r = post('/scep', $device);
is($r->{status}, 400, 'the device\'s message again: 400');
like($r->{body}, qr/^replayed_message: /, 'reason replayed_message');
$r = $t->get($gw, '/scep?operation=PKIOperation&message='
                  . SCEPTest::dialect($other, 'std'));
is($r->{status}, 400, 'the other key\'s message again, by GET: 400');
like($r->{body}, qr/^replayed_message: /, 'reason replayed_message');

# the same key signs the pair again: a replay, even with its
# certificate encoded otherwise
openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout',
        '-out', "$dir/ec.pem");
openssl('ec', '-in', "$dir/ec.pem", '-conv_form', 'compressed',
        '-out', "$dir/ec-compressed.pem");

$tid = 'signer-ec-' . int(rand(1e9));
$nonce = nonce();
my $plain = $t->device_msg('--key', "$dir/ec.pem", '--tid', $tid,
                           '--nonce', $nonce);
my $short = $t->device_msg('--key', "$dir/ec-compressed.pem", '--tid', $tid,
                           '--nonce', $nonce);
ok(length($short) < length($plain),
   'one EC key, its point compressed in the second message');

is(post('/sink', $plain)->{status}, 200, 'an EC-signed message passes');
$r = post('/sink', $short);
is($r->{status}, 400, 'the same key\'s pair, its point compressed: 400');
like($r->{body}, qr/^replayed_message: /, 'reason replayed_message');

my $st = status();
is($st->{requests}{rejected}{replayed_message}, 3,
   'status: three replays counted');
is($st->{replay}{entries}, 3, 'status: three pairs kept');
is($st->{replay}{evicted}, 0, 'status: nothing evicted yet');

# a full zone: evictions counted, a warn line a minute at most
my $key = "$dir/device.key";
openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024',
        '-out', $key);
# transactionIDs as long as a hex SHA-256, as clients make them
my @msgs = map {
    $t->device_msg('--key', $key, '--tid', sprintf('%064d', $_))
} 1 .. 300;
my $full = qr/\[warn\].*scep_replay_zone of 32k is full/;

my $refused = 0;
for my $m (@msgs[0 .. 199]) {
    $refused++ if post('/sink', $m)->{status} != 200;
}
is($refused, 0, 'a full zone refuses no request');

$st = status();
my $evicted = $st->{replay}{evicted} // 0;
ok($evicted > 0, "status: $evicted evicted");
ok($st->{replay}{entries} < 200,
   "memory is bounded: $st->{replay}{entries} pairs kept");
$r = $t->get($gw, '/status?format=prometheus');
like($r->{body}, qr/^scep_replay_evicted_total $evicted$/m,
     'prometheus: scep_replay_evicted_total');
ok($t->wait_error_log($full, 2), 'a full zone is logged at warn');
my $first = time;

for my $m (@msgs[200 .. 249]) {
    post('/sink', $m);
}
ok(status()->{replay}{evicted} > $evicted, 'more evictions counted');
is($t->count_error_log($full), 1, 'and no second line within the minute');

# a minute after the first line, evictions are logged again
sleep($first + 61 - time) if time < $first + 61;

for my $m (@msgs[250 .. 299]) {
    post('/sink', $m);
}
ok(defined $t->wait_error_log($full, 2, 1),
   'evictions a minute later: a second line');
is($t->count_error_log($full), 2, 'two lines in all');

$t->stop;
done_testing;
