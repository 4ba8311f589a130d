#!/usr/bin/perl

# A back end's answer to a PKIOperation is read as a CertRep: its
# pkiStatus and failInfo in $scep_pki_status and $scep_fail_info, and its
# check (transactionID, recipientNonce, signature by a certificate of the
# back end's GetCACert answer) in $scep_response_check.  With
# "scep_check_response log" (the default) a failed check is logged and
# the answer passes byte for byte; with "on" it is refused with 502
# bad_response and nothing of it reaches the device; "off" reads nothing.
# Outcomes are counted per back end and per upstream on the status page.
# Real scepserver back ends issue and refuse; fault daemons send the
# CertReps a real server does not: another request's, a tampered one, one
# signed by a certificate the back end's GetCACert does not have, HTML,
# a truncated one, one too large.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;
my $dir = $t->dir;
my $b0 = $t->start_backend;

# the CA of the back ends, and a certificate that signs nothing
my ($rc, $out) = $t->run('openssl', 'x509', '-in', $t->ca_pem, '-outform',
                         'DER', '-out', "$dir/ca.der");
die "openssl x509: $out" if $rc;
($rc, $out) = $t->run('openssl', 'x509', '-in', $t->tls_cert, '-outform',
                      'DER', '-out', "$dir/other.der");
die "openssl x509: $out" if $rc;

$t->write_file('answer.der', '');
my $known = $t->start_fault('answer', "$dir/ca.der", "$dir/answer.der");
my $stranger = $t->start_fault('answer', "$dir/other.der",
                               "$dir/answer.der");
my $cutoff = $t->start_fault('cutoff', "$dir/ca.der", "$dir/answer.der");
my $html = $t->start_fault('html200');
my $h500 = $t->start_fault('html500');

my $hc = 'scep_health_check interval=1s timeout=900ms uri=/scep';

$t->start_nginx(<<"CONF");
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format rep '\$scep_transaction_id|\$scep_pki_status|'
                   '\$scep_fail_info|\$scep_response_check|\$status|'
                   '\$scep_reject_reason';

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        $hc;
    }

    upstream known {
        server 127.0.0.1:%%$known->{name}%%;
        $hc;
    }

    upstream stranger {
        server 127.0.0.1:%%$stranger->{name}%%;
        $hc;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        access_log %%DIR%%/logs/rep.log rep;

        location = /scep {
            scep on;
            proxy_pass http://ndes/scep;
        }

        location = /on {
            scep on;
            scep_check_response on;
            proxy_pass http://ndes/scep;
        }

        location = /off {
            scep on;
            scep_check_response off;
            proxy_pass http://ndes/scep;
        }

        location = /known {
            scep on;
            proxy_pass http://known/scep;
        }

        location = /known-on {
            scep on;
            scep_check_response on;
            proxy_pass http://known/scep;
        }

        location = /stranger-on {
            scep on;
            scep_check_recipient off;
            scep_check_response on;
            proxy_pass http://stranger/scep;
        }

        location = /cutoff {
            scep on;
            proxy_pass http://127.0.0.1:%%$cutoff->{name}%%;
        }

        location = /cutoff-nb {
            scep on;
            proxy_buffering off;
            proxy_pass http://127.0.0.1:%%$cutoff->{name}%%;
        }

        location = /intercept-on {
            scep on;
            scep_check_response on;
            proxy_intercept_errors on;
            error_page 500 =200 /ok.txt;
            proxy_pass http://127.0.0.1:%%$h500->{name}%%;
        }

        location = /ok.txt {
            return 200 "the admin's own page\n";
        }

        location = /html {
            scep on;
            proxy_pass http://127.0.0.1:%%$html->{name}%%;
        }

        location = /html-on {
            scep on;
            scep_check_response on;
            proxy_pass http://127.0.0.1:%%$html->{name}%%;
        }

        location = /h500-on {
            scep on;
            scep_check_response on;
            proxy_pass http://127.0.0.1:%%$h500->{name}%%;
        }

        location = /status {
            scep_status;
        }
    }
}
CONF

my $gw = $t->port('GW');

sub status { $t->status_json($gw) }

sub peer {
    my ($st, $up) = @_;
    return $st->{upstreams}{$up}{peers}[0] // {};
}

# the probes have each back end's GetCACert before anything is checked
my $end = time + 15 * ($ENV{TEST_TIMEOUT_FACTOR} || 1);
while (time < $end) {
    my $st = status();
    last if 3 == grep { (peer($st, $_)->{state} // '') eq 'up'
                        && defined peer($st, $_)->{last_check} }
                      qw(ndes known stranger);
    sleep 0.1;
}

my $n = 0;
sub msg {
    my (@args) = @_;
    $n++;
    return $t->scep_msg('--challenge', 'secret', '--cn', "rep-$n",
                        '--dialect', 'der', @args);
}

sub post {
    my ($path, $der) = @_;
    return $t->post($gw, "$path?operation=PKIOperation", $der);
}

# the access-log line of this request: the nth with its transactionID
my %asked;
sub logged {
    my ($tid) = @_;
    my $nth = ++$asked{$tid};
    my @l;
    for my $try (1 .. 100) {
        @l = grep { /^\Q$tid\E\|/ } $t->lines('logs/rep.log', 1);
        last if @l >= $nth;
        sleep 0.05;
    }
    return $l[$nth - 1] // '';
}

# issued by a real back end: SUCCESS, checked ok
my $tid = 'issue-' . int(rand(1e9));
my $r = post('/scep', msg('--tid', $tid));
is($r->{status}, 200, 'a PKCSReq: 200');
is($t->pki_status($r->{body}), '0', 'the back end issued');
is(logged($tid), "$tid|SUCCESS|-|ok|200|-",
   '$scep_pki_status SUCCESS, $scep_response_check ok');

# refused by a real back end: a wrong challenge gets 200 and FAILURE
$tid = 'refuse-' . int(rand(1e9));
$r = post('/scep', $t->scep_msg('--challenge', 'wrong', '--cn', 'refused',
                                '--dialect', 'der', '--tid', $tid));
is($r->{status}, 200, 'a wrong challenge: 200, as NDES answers');
is($t->pki_status($r->{body}), '2', 'with a FAILURE CertRep');
is(logged($tid), "$tid|FAILURE|badRequest|ok|200|-",
   '$scep_pki_status FAILURE, $scep_fail_info badRequest');

# "on" lets good answers through, "off" reads nothing
$tid = 'on-' . int(rand(1e9));
$r = post('/on', msg('--tid', $tid));
is($r->{status}, 200, 'scep_check_response on: a good answer passes');
is($t->pki_status($r->{body}), '0', 'issued');
is(logged($tid), "$tid|SUCCESS|-|ok|200|-", 'checked ok');

$tid = 'off-' . int(rand(1e9));
$r = post('/off', msg('--tid', $tid));
is($r->{status}, 200, 'scep_check_response off: passes');
is(logged($tid), "$tid|-|-|-|200|-", 'and nothing is read');

# a real CertRep, made for one request, sent back by the fault daemons
my $nonce = unpack('H*', pack('N4', map { int(rand(2**32)) } 1 .. 4));
my $rtid = 'real-' . int(rand(1e9));
my $b0port = $b0->{port};
$r = $t->post($b0port, '/scep?operation=PKIOperation',
              msg('--tid', $rtid, '--nonce', $nonce));
is($r->{status}, 200, 'a CertRep straight from the back end');
my $real = $r->{body};
is($t->pki_status($real), '0', 'of SUCCESS');

$t->write_file('answer.der', $real);

# the very request it answers: checked ok through a fault daemon
$r = post('/known-on', msg('--tid', $rtid, '--nonce', $nonce));
is($r->{status}, 200, 'the CertRep of this request: 200 under "on"');
ok($r->{body} eq $real, 'byte for byte');
like(logged($rtid), qr/\|SUCCESS\|-\|ok\|200\|-$/, 'checked ok');

# another request's answer
$tid = 'other-' . int(rand(1e9));
$r = post('/known', msg('--tid', $tid));
is($r->{status}, 200, 'another request\'s CertRep, "log": 200');
ok($r->{body} eq $real, 'passed on byte for byte');
is(logged($tid), "$tid|SUCCESS|-|transaction_mismatch|200|-",
   'transaction_mismatch');
ok($t->wait_error_log(qr/scep: the answer of 127\.0\.0\.1:\d+ to transactionID "\Q$tid\E" failed its check: transaction_mismatch, passed on/, 3),
   'logged at warn');

$tid = 'other-on-' . int(rand(1e9));
$r = post('/known-on', msg('--tid', $tid));
is($r->{status}, 502, 'under "on": 502');
ok(index($r->{body}, $real) < 0
   && index($r->{body}, substr($real, -64)) < 0,
   'and nothing of the answer reaches the device');
is(logged($tid), "$tid|SUCCESS|-|transaction_mismatch|502|bad_response",
   'reason bad_response');

# the same transactionID, another senderNonce
my $nonce2 = unpack('H*', pack('N4', map { int(rand(2**32)) } 1 .. 4));
$r = post('/known-on', msg('--tid', $rtid, '--nonce', $nonce2));
is($r->{status}, 502, 'a recipientNonce that is not the senderNonce: 502');
like(logged($rtid), qr/\|nonce_mismatch\|502\|bad_response$/,
     'nonce_mismatch');

# a tampered signature
my $bad = $real;
substr($bad, -1, 1) = chr(ord(substr($bad, -1, 1)) ^ 0x01);
$t->write_file('answer.der', $bad);

$r = post('/known', msg('--tid', $rtid, '--nonce', $nonce));
is($r->{status}, 200, 'a tampered signature, "log": 200');
ok($r->{body} eq $bad, 'passed on as it came');
like(logged($rtid), qr/\|bad_signature\|200\|-$/, 'bad_signature');

$r = post('/known-on', msg('--tid', $rtid, '--nonce', $nonce));
is($r->{status}, 502, 'under "on": 502');
like(logged($rtid), qr/\|bad_signature\|502\|bad_response$/,
     'bad_signature, bad_response');

# a signer that the back end's GetCACert does not have
$t->write_file('answer.der', $real);
$r = post('/stranger-on', msg('--tid', $rtid, '--nonce', $nonce));
is($r->{status}, 502, 'signed by a certificate not in GetCACert: 502');
like(logged($rtid), qr/\|unknown_signer\|502\|bad_response$/,
     'unknown_signer');

# truncated, and larger than any CertRep
$t->write_file('answer.der', substr($real, 0, length($real) / 2));
$tid = 'cut-' . int(rand(1e9));
$r = post('/known-on', msg('--tid', $tid));
is($r->{status}, 502, 'a truncated CertRep: 502');
is(logged($tid), "$tid|-|-|not_certrep|502|bad_response", 'not_certrep');

my $big = "\x30\x84" . ('A' x (300 * 1024));
$t->write_file('answer.der', $big);
$tid = 'big-' . int(rand(1e9));
$r = post('/known', msg('--tid', $tid));
is($r->{status}, 200, '300 KB, "log": 200');
is(length($r->{body}), length($big), 'passed on whole');
ok($r->{body} eq $big, 'byte for byte');
is(logged($tid), "$tid|-|-|not_certrep|200|-", 'not_certrep');

$tid = 'big-on-' . int(rand(1e9));
$r = post('/known-on', msg('--tid', $tid));
is($r->{status}, 502, 'under "on": 502');
ok(length($r->{body}) < 4096, 'nothing of it reaches the device');

# an empty answer, and one that breaks off
$t->write_file('answer.der', '');
$tid = 'empty-' . int(rand(1e9));
$r = post('/known', msg('--tid', $tid));
is($r->{status}, 200, 'an empty 200, "log": passed on');
is($r->{body}, '', 'empty, and complete');
is(logged($tid), "$tid|-|-|not_certrep|200|-", 'not_certrep');

$tid = 'empty-on-' . int(rand(1e9));
$r = post('/known-on', msg('--tid', $tid));
is($r->{status}, 502, 'under "on": 502');
like($r->{body}, qr/^bad_response: /, 'the gateway\'s own answer');

$t->write_file('answer.der', $real);
for my $path ('/cutoff', '/cutoff-nb') {
    $tid = "cut$path-" . int(rand(1e9));
    $r = post($path, msg('--tid', $tid));
    is($r->{status}, 502, "$path: an answer that breaks off: 502");
    like($r->{body}, qr/^bad_response: /, "$path: the gateway's own answer");
    is(logged($tid), "$tid|-|-|not_certrep|502|bad_response",
       "$path: not_certrep");
}

# the admin's page for an intercepted error is not the back end's answer
$tid = 'intercept-' . int(rand(1e9));
$r = post('/intercept-on', msg('--tid', $tid));
is($r->{status}, 200, 'proxy_intercept_errors and error_page: 200');
is($r->{body}, "the admin's own page\n", 'the error page, not refused');

# HTML where a CertRep belongs, and an HTTP error
$tid = 'html-' . int(rand(1e9));
$r = post('/html', msg('--tid', $tid));
is($r->{status}, 200, 'HTML with 200, "log": passed on');
like($r->{body}, qr/Network Device Enrollment Service/, 'as it came');
is(logged($tid), "$tid|-|-|not_certrep|200|-", 'not_certrep');

$tid = 'html-on-' . int(rand(1e9));
$r = post('/html-on', msg('--tid', $tid));
is($r->{status}, 502, 'under "on": 502');
unlike($r->{body}, qr/Network Device Enrollment Service/,
       'the page does not reach the device');

$tid = 'h500-' . int(rand(1e9));
$r = post('/h500-on', msg('--tid', $tid));
is($r->{status}, 500, 'an HTTP 500 of the back end passes as it is');
is(logged($tid), "$tid|-|-|not_certrep|500|-", 'not_certrep, not refused');

# outcomes per back end and per upstream
my $st = status();
my $o = peer($st, 'ndes')->{outcomes} // {};
is($o->{issued}, 2, 'status: 2 issued by the real back end');
is($o->{refused}{badRequest}, 1, 'status: 1 refused for badRequest');
is($o->{refused}{total}, 1, 'status: 1 refused in all');
is($o->{pending}, 0, 'status: none pending');
is($o->{last_10m}{issued}, 2, 'status: 2 issued in the last 10 minutes');
is($o->{last_10m}{refused}, 1, 'status: 1 refused in the last 10 minutes');
is_deeply($st->{upstreams}{ndes}{outcomes}, $o,
          'status: the upstream sums its one back end');

my $k = peer($st, 'known')->{outcomes} // {};
is($k->{checks_failed}{transaction_mismatch}, 2,
   'status: transaction_mismatch counted');
is($k->{checks_failed}{nonce_mismatch}, 1, 'status: nonce_mismatch counted');
is($k->{checks_failed}{bad_signature}, 2, 'status: bad_signature counted');
is($k->{checks_failed}{not_certrep}, 5, 'status: not_certrep counted');
is($k->{issued}, 1,
   'status: only the CertRep that passed its check counts as issued');
is(peer($st, 'stranger')->{outcomes}{checks_failed}{unknown_signer}, 1,
   'status: unknown_signer counted');
is($st->{requests}{rejected}{bad_response}, 10,
   'status: bad_response rejections');

$r = $t->get($gw, '/status?format=prometheus');
like($r->{body}, qr/^# HELP scep_peer_outcomes_total /m,
     'prometheus: outcomes with HELP');
like($r->{body},
     qr/^scep_peer_outcomes_total\{upstream="ndes",peer="127\.0\.0\.1:\d+",status="issued"\} 2$/m,
     'prometheus: issued');
like($r->{body},
     qr/^scep_peer_outcomes_total\{upstream="ndes",peer="127\.0\.0\.1:\d+",status="refused",fail_info="badRequest"\} 1$/m,
     'prometheus: refused by failInfo');
like($r->{body},
     qr/^scep_peer_response_check_failures_total\{upstream="known",peer="127\.0\.0\.1:\d+",check="bad_signature"\} 2$/m,
     'prometheus: failed checks by check');

# configuration errors say what to change
my ($bad_rc, $err) = $t->test_conf(<<'CONF');
http {
    server {
        listen 127.0.0.1:%%GW%%;
        location / { scep on; scep_check_response maybe; }
    }
}
CONF
ok($bad_rc, 'scep_check_response maybe: refused');
like($err, qr/invalid value "maybe" in .*test\.conf/,
     'nginx -t names the value');

done_testing;
