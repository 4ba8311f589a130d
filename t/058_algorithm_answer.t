#!/usr/bin/perl

# A message refused for its algorithm says, in the answer and in the
# error log, which algorithm it used (name and OID) and the exact
# scep_algorithms line that would allow it.  micromdm's scepclient, as
# Debian ships it, encrypts with single DES: the default policy refuses
# it, and the line the gateway names lets it enroll.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
$t->start_backend;

my $conf = <<'CONF';
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    server {
        listen 127.0.0.1:%%GW%% ssl;
        ssl_certificate %%CERT%%;
        ssl_certificate_key %%KEY%%;

        location = /scep {
            scep on;
            %%POLICY%%
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }

        location = /aes128 {
            scep on;
            scep_algorithms sha256 aes128;
            proxy_pass http://127.0.0.1:%%BACKEND0%%/scep;
        }
    }
}
CONF

(my $default = $conf) =~ s/%%POLICY%%//;
$t->start_nginx($default);

my $gw = $t->port('GW');
my $url = "https://localhost:$gw/scep";

my $oid = qr/1\.3\.14\.3\.2\.7/;
my $line = 'scep_algorithms sha1 sha224 sha256 sha384 sha512 des des3 aes;';

# ------------------------------------------------------------------
# scepclient against the default policy: refused, and told why

my ($rc, $out, $cert) = $t->scepclient($url, cn => 'des-device');
isnt($rc, 0, 'scepclient (single DES) is refused by the default policy');
ok(!$cert, 'and gets no certificate');

$t->wait_error_log(qr/bad_cipher_algorithm/, 10);
my ($log) = $t->error_log_lines(qr/rejected POST .*bad_cipher_algorithm/);
like($log // '', qr/bad_cipher_algorithm: des-cbc \($oid\); to allow it, set "\Q$line\E"/,
     'the error log names the algorithm, its OID and the directive');

# scepclient prints the answer's body
like($out, qr/status 400 .*msg: bad_cipher_algorithm: content-encryption algorithm not allowed: des-cbc \($oid\); to allow it, set \\?"\Q$line\E\\?"/,
     'the answer names the algorithm, its OID and the directive');

# other algorithms, other policies: the line keeps the location's own
# list and adds the one refused
for my $c (['/scep', ['--digest', 'md5'], 'bad_digest_algorithm',
            'md5 \(1\.2\.840\.113549\.2\.5\)',
            'scep_algorithms md5 sha1 sha224 sha256 sha384 sha512 des3 aes;'],
           ['/aes128', [], 'bad_cipher_algorithm',
            'aes-256-cbc \(2\.16\.840\.1\.101\.3\.4\.1\.42\)',
            'scep_algorithms sha256 aes128 aes256;'],
           ['/aes128', ['--digest', 'sha512', '--cipher', 'aes128'],
            'bad_digest_algorithm',
            'sha512 \(2\.16\.840\.1\.101\.3\.4\.2\.3\)',
            'scep_algorithms sha256 sha512 aes128;'])
{
    my ($loc, $args, $token, $alg, $fix) = @$c;
    (my $name = "$loc, $alg") =~ s/\\//g;
    my $r = $t->post($gw, "$loc?operation=PKIOperation",
                     $t->device_msg(@$args), tls => 1);
    is($r->{status}, 400, "$name: 400");
    like($r->{body}, qr/^$token: .*: $alg; to allow it, set "\Q$fix\E"\n\z/,
         "$name: the answer names it and the line \"$fix\"");
    ok(defined $t->wait_error_log(
           qr/rejected .*: $token: $alg; to allow it, set "\Q$fix\E"/, 5),
       "$name: so does the error log");
}

# ------------------------------------------------------------------
# the line from the log, as is, lets it enroll

my ($named) = ($log // '') =~ /set "([^"]+)"/;
is($named, $line, 'the directive named is the default list and des');

$t->stop_nginx;
(my $allowing = $conf) =~ s/%%POLICY%%/$named/;
$t->start_nginx($allowing);

($rc, $out, $cert) = $t->scepclient($url, cn => 'des-device-2');
is($rc, 0, 'with that line scepclient enrolls') or diag($out);
ok($cert && -s $cert, 'and gets its certificate');

$t->stop;
done_testing;
