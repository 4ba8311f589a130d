#!/usr/bin/perl

# A real device enrolls through the gateway over TLS: scepclient asks
# GetCACaps and GetCACert, then POSTs a PKCSReq, against two real
# scepserver back ends behind one upstream.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
$t->start_backend for 1 .. 2;

$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;

    # micromdm's scepclient encrypts with single DES, which the default
    # refuses
    scep_algorithms sha1 sha256 sha512 des3 aes des;
    client_body_buffer_size 128k;

    log_format scep '$scep_operation|$scep_message_length|'
                    '$scep_reject_reason|$status';

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        server 127.0.0.1:%%BACKEND1%%;
    }

    server {
        listen 127.0.0.1:%%GW%% ssl;
        ssl_certificate %%CERT%%;
        ssl_certificate_key %%KEY%%;
        ssl_protocols TLSv1.2 TLSv1.3;

        access_log %%DIR%%/logs/scep.log scep;

        location = /scep {
            scep on;
            proxy_pass http://ndes;
        }

        location / {
            return 404;
        }
    }
}
CONF

my $gw = $t->port('GW');

my $r = $t->get($gw, '/scep?operation=GetCACaps', tls => 1);
is($r->{status}, 200, 'GetCACaps over TLS');
like($r->{body}, qr/^POSTPKIOperation\r?$/m, 'GetCACaps lists POST');

$r = $t->get($gw, '/scep?operation=GetCACert&message=default', tls => 1);
is($r->{status}, 200, 'GetCACert over TLS');
like($r->{headers}{'content-type'}, qr{^application/x-x509-ca},
     'GetCACert content type');
my $ca = $t->read_file($t->ca_pem);
$ca =~ s/-----[^-]+-----|\s//g;
require MIME::Base64;
is(MIME::Base64::encode_base64($r->{body}, ''), $ca,
   'GetCACert answers the CA certificate in DER');

for my $i (1 .. 2) {
    my ($rc, $out, $cert) = $t->scepclient("https://localhost:$gw/scep",
                                           cn => "device-$i");
    is($rc, 0, "scepclient enrollment $i through the gateway")
        or diag($out);
    ok($cert, "device $i got a certificate");

    if ($cert) {
        my (undef, $subj) = $t->run('openssl', 'x509', '-in', $cert,
                                    '-noout', '-subject', '-issuer');
        like($subj, qr/CN = device-$i/, "certificate $i is for the device");
        like($subj, qr/issuer=.*SCEP CA/, "certificate $i issued by the CA");
    }
}

# two requests above, then GetCACert, GetCACaps and PKCSReq per device
my @log = $t->lines('logs/scep.log', 8);
my @post = grep { /^PKIOperation\|\d+\|-\|200$/ } @log;
is(scalar @post, 2, 'both PKIOperations logged with their message length');
ok((grep { /^GetCACaps\|-\|-\|200$/ } @log), '$scep_operation in the log');

# scepclient sent GetCACaps and GetCACert too: everything was served
# by the two back ends together
my $served = 0;
$served += $t->backend_requests($_) for @{$t->{backends}};
is($served, scalar(@log), 'every request reached a back end once');

$t->stop;
done_testing;
