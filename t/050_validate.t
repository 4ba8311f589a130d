#!/usr/bin/perl

# Every PKIOperation is checked before it reaches the back end: DER and
# CMS structure, signed attributes, algorithms, signature.  Each failed
# check is answered by the gateway with its status and reason, logged
# once, and never reaches the back end; every base64 dialect that
# clients send is accepted and forwarded in the canonical form.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MIME::Base64 qw(encode_base64);
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
my $b = $t->start_backend;

$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format scep '$scep_operation|$scep_message_type|'
                    '$scep_transaction_id|$scep_sender_nonce|'
                    '$scep_message_length|$scep_reject_reason|$status';
    log_format seen '$request_method $args $content_length '
                    '$http_transfer_encoding';

    server {
        listen 127.0.0.1:%%GW%% ssl;
        ssl_certificate %%CERT%%;
        ssl_certificate_key %%KEY%%;

        access_log %%DIR%%/logs/scep.log scep;
        scep_log_level warn;

        location = /scep {
            scep on;
            proxy_pass http://127.0.0.1:%%HOP%%;
        }

        location = /aes128 {
            scep on;
            scep_algorithms sha256 aes128;
            proxy_pass http://127.0.0.1:%%HOP%%/scep;
        }
    }

    # a recording hop in front of the real back end
    server {
        listen 127.0.0.1:%%HOP%%;
        access_log %%DIR%%/logs/backend.log seen;

        location / {
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }
    }
}
CONF

my $gw = $t->port('GW');
sub msg { $t->device_msg(@_) }

# requests sent to the gateway and passed to the back end so far, to
# wait for their log lines
my ($sent, $passed) = (0, 0);

sub get {
    $sent++;
    my $r = $t->get($gw, "/scep?operation=PKIOperation&message=$_[0]",
                    tls => 1);
    $passed++ if $r->{status} != 400;
    return $r;
}

sub post {
    $sent++;
    my $r = $t->post($gw, '/scep?operation=PKIOperation', $_[0], tls => 1,
                     @_[1 .. $#_]);
    $passed++ if $r->{status} != 400;
    return $r;
}

sub backend_lines { $t->lines('logs/backend.log', $passed) }
sub scep_log { $t->lines('logs/scep.log', $sent) }

# messages that openssl makes for the structural failures
my $d = $t->dir;
$t->run('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
        '-keyout', "$d/s.key", '-out', "$d/s.crt", '-subj', '/CN=signer',
        '-days', '2');
$t->run('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
        '-keyout', "$d/s2.key", '-out', "$d/s2.crt", '-subj', '/CN=signer2',
        '-days', '2');
$t->write_file('data.bin', 'not an envelope');

sub openssl_der {
    my (@args) = @_;
    my $out = "$d/o-" . rand() . '.der';
    my ($rc, $msg) = $t->run('openssl', 'cms', '-outform', 'DER',
                             '-out', $out, @args);
    die "openssl cms @args: $msg" if $rc;
    return $t->read_file($out);
}

my $good = msg();
my $env = openssl_der('-encrypt', '-in', "$d/data.bin", '-binary',
                      $t->ca_pem);
my $two = openssl_der('-sign', '-in', "$d/data.bin", '-binary', '-nodetach',
                      '-signer', "$d/s.crt", '-inkey', "$d/s.key",
                      '-signer', "$d/s2.crt", '-inkey', "$d/s2.key");
my $data = openssl_der('-sign', '-in', "$d/data.bin", '-binary', '-nodetach',
                       '-signer', "$d/s.crt", '-inkey', "$d/s.key");
my $etype = openssl_der('-sign', '-in', "$d/data.bin", '-binary',
                        '-nodetach', '-econtent_type', 'pkcs7-envelopedData',
                        '-signer', "$d/s.crt", '-inkey', "$d/s.key");
my $badsig = $good;
substr($badsig, -1, 1) = chr(ord(substr($badsig, -1, 1)) ^ 0x01);

my @bad = (
    # name, der, reason
    ['random bytes', join('', map { chr(int rand 256) } 1 .. 300), 'bad_der'],
    ['a trailing byte', $good . "\0", 'bad_der'],
    ['truncated', substr($good, 0, length($good) - 10), 'bad_der'],
    ['EnvelopedData alone', $env, 'not_signed_data'],
    ['two signers', $two, 'bad_signer_count'],
    ['signed content not data', $etype, 'bad_content_type'],
    ['signed data that is no envelope', $data, 'bad_envelope'],
    ['CertRep from a client', msg('--type', 3), 'bad_message_type'],
    ['129-character transactionID', msg('--tid', 'T' x 129),
     'bad_transaction_id'],
    ['MD5 digest', msg('--digest', 'md5'), 'bad_digest_algorithm'],
    ['a flipped signature bit', $badsig, 'bad_signature'],
);

for my $c (@bad) {
    my ($name, $der, $reason) = @$c;
    my $before = backend_lines();
    $before = scalar backend_lines();

    my $r = get(SCEPTest::dialect($der, 'std'));
    is($r->{status}, 400, "GET $name: 400");
    like($r->{body}, qr/^$reason: /, "GET $name: $reason");

    $r = post($der);
    is($r->{status}, 400, "POST $name: 400");
    like($r->{body}, qr/^$reason: /, "POST $name: $reason");

    is(scalar backend_lines(), $before, "$name never reached the back end");
}

# the allow-list of a location
$sent++;
my $r = $t->get($gw, '/aes128?operation=PKIOperation&message='
                . SCEPTest::dialect(msg(), 'std'), tls => 1);
is($r->{status}, 400, 'AES-256 envelope where only AES-128 is allowed');
like($r->{body}, qr/^bad_cipher_algorithm: /, 'says bad_cipher_algorithm');

$sent++;
$passed++;
$r = $t->get($gw, '/aes128?operation=PKIOperation&message='
             . SCEPTest::dialect(msg('--cipher', 'aes128'), 'std'), tls => 1);
is($r->{status}, 200, 'AES-128 envelope passes there');

# the boundaries of what is accepted
for my $tid ('T', 'T' x 128) {
    my $r = get(SCEPTest::dialect(msg('--tid', $tid), 'std'));
    is($r->{status}, 200, length($tid) . '-character transactionID passes');
}

# each dialect is accepted, reaches the back end in the canonical form,
# and enrolls
for my $dialect (qw(std raw space urlsafe nopad lines)) {
    my $der = msg();
    my $r = get(SCEPTest::dialect($der, $dialect));
    is($r->{status}, 200, "$dialect: 200");
    is($t->pki_status($r->{body}), '0', "$dialect: enrolled (SUCCESS)");

    my @seen = backend_lines();
    is($seen[-1], 'GET operation=PKIOperation&message='
                  . SCEPTest::dialect($der, 'std') . ' - -',
       "$dialect: the back end got the canonical query");
}

# other parameters are not passed on with a PKIOperation
my $der = msg();
$sent++;
$passed++;
$r = $t->get($gw, '/scep?message=' . SCEPTest::dialect($der, 'urlsafe')
             . '&x=1&operation=PKIOperation', tls => 1);
is($r->{status}, 200, 'parameters in another order');
my @seen = backend_lines();
is($seen[-1], 'GET operation=PKIOperation&message='
              . SCEPTest::dialect($der, 'std') . ' - -',
   'the back end got only the canonical query');

# a POST body is passed on unchanged, with a Content-Length even when the
# client sent it chunked (IIS refuses chunked bodies)
$der = msg();
$r = post($der, chunked => 1);
is($r->{status}, 200, 'chunked POST');
is($t->pki_status($r->{body}), '0', 'chunked POST enrolled');
@seen = backend_lines();
is($seen[-1], 'POST operation=PKIOperation ' . length($der) . ' -',
   'the back end got a Content-Length and no chunked encoding');

# the variables, for a message whose facts we know
$der = msg('--tid', 'tid-of-this-test', '--type', 19);
$r = get(SCEPTest::dialect($der, 'std'));
my @log = scep_log();
like($log[-1], qr/^PKIOperation\|PKCSReq\|tid-of-this-test\|[0-9a-f]{32}\|\Q@{[length $der]}\E\|-\|200$/,
     'operation, message type, transactionID, nonce and length logged');

$der = msg('--type', 17, '--tid', 'renewal');
$r = get(SCEPTest::dialect($der, 'std'));
@log = scep_log();
like($log[-1], qr/^PKIOperation\|RenewalReq\|renewal\|/, 'RenewalReq');

for my $c ([20, 'CertPoll'], [21, 'GetCert'], [22, 'GetCRL']) {
    $r = post(msg('--type', $c->[0]));
    @log = scep_log();
    like($log[-1], qr/^PKIOperation\|$c->[1]\|/, "$c->[1] recognised");
}

like($log[0], qr/^PKIOperation\|-\|-\|-\|\d+\|bad_der\|400$/,
     'a rejected message logs its reason');

# one error-log line per rejection, at scep_log_level, with the client
# and the transactionID when known
my @lines = $t->error_log_lines(qr/scep: rejected/);
is(scalar @lines, 2 * @bad + 1, 'one error-log line per rejection');
ok(!(grep { !/\[warn\]/ } @lines), 'at the level of scep_log_level');
ok((grep { /rejected GET "PKIOperation", transactionID "[^"]+": bad_signature, client: 127\.0\.0\.1/ } @lines),
   'the line has the transactionID, reason and client');

# a long message whose first byte is no SEQUENCE is refused before the
# rest is decoded (a flood of junk costs its first characters): bad_der
# even with a bad character at its end, and no decoded length; a short
# one is decoded first and keeps its bad_base64
my $junk = "\x31" . join('', map { chr(int rand 256) } 1 .. 2000);
$r = get(SCEPTest::dialect($junk, 'std') . '*');
is($r->{status}, 400, 'long junk: 400');
like($r->{body}, qr/^bad_der: /, 'long junk: bad_der before its end is read');
@log = scep_log();
like($log[-1], qr/^PKIOperation\|-\|-\|-\|-\|bad_der\|400$/,
     'long junk: no decoded length logged');
$r = get(SCEPTest::dialect(substr($junk, 0, 300), 'std') . '*');
like($r->{body}, qr/^bad_base64: /, 'short junk: decoded first, bad_base64');

$t->stop;
done_testing;
