#!/usr/bin/perl

# A real scepclient enrolling by GET.  It sends URL-safe base64, which
# micromdm's own scepserver cannot decode: it only enrolls because the
# gateway forwards the canonical form.  scepclient switches to POST when
# GetCACaps lists POSTPKIOperation or SCEPStandard, so the gateway hides
# those two here (sub_filter, on text/plain answers only).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
$t->start_backend;

$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    # micromdm's scepclient encrypts with single DES, which the default
    # refuses
    scep_algorithms sha1 sha256 sha512 des3 aes des;

    log_format seen '$request_method $arg_operation';

    server {
        listen 127.0.0.1:%%GW%% ssl;
        ssl_certificate %%CERT%%;
        ssl_certificate_key %%KEY%%;

        location = /scep {
            scep on;
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
            proxy_set_header Accept-Encoding "";
            sub_filter_types text/plain;
            sub_filter_once off;
            sub_filter POSTPKIOperation GETOnly;
            sub_filter SCEPStandard GETOnly;
        }

        location = /direct {
            proxy_pass http://127.0.0.1:%%BACKEND0%%/scep;
            proxy_set_header Accept-Encoding "";
            sub_filter_types text/plain;
            sub_filter_once off;
            sub_filter POSTPKIOperation GETOnly;
            sub_filter SCEPStandard GETOnly;
        }

        access_log %%DIR%%/logs/access.log seen;
    }
}
CONF

my $gw = $t->port('GW');

my $r = $t->get($gw, '/scep?operation=GetCACaps', tls => 1);
unlike($r->{body}, qr/POSTPKIOperation|SCEPStandard/,
       'the caps the client sees have no POST');

my ($rc, $out, $cert) = $t->scepclient("https://localhost:$gw/scep",
                                       cn => 'get-device');
is($rc, 0, 'scepclient enrolled by GET through the gateway') or diag($out);
ok($cert, 'and got its certificate');

# nginx logs after the client has its answer: wait for the four lines
# (the GetCACaps above, and the client's GetCACaps, GetCACert and
# PKIOperation)
my @log = $t->lines('logs/access.log', 4);
ok((grep { $_ eq 'GET PKIOperation' } @log), 'the PKIOperation was a GET');
ok(!(grep { /^POST/ } @log), 'no POST');

# the same client straight to the back end fails: the gateway's
# normalisation is what makes it work
($rc, $out, $cert) = $t->scepclient("https://localhost:$gw/direct",
                                    cn => 'direct-device');
isnt($rc, 0, 'without the gateway the URL-safe GET fails');
ok(!$cert, 'and gets no certificate');

$t->stop;
done_testing;
