#!/usr/bin/perl

# Health probes over HTTPS, with certificate verification and SNI, to
# back ends that serve SCEP over TLS (an nginx TLS hop in front of a real
# scepserver here).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
my $d = $t->dir;
my $b = $t->start_backend;

# a CA that signed nothing of ours
$t->run('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
        '-keyout', "$d/other.key", '-out', "$d/other.crt",
        '-subj', '/CN=other CA', '-days', '2');

# the sanitizer runs (TEST_TIMEOUT_FACTOR) fork and answer slower
my $slow = int($ENV{TEST_TIMEOUT_FACTOR} || 1) || 1;
my $hc = sprintf('interval=%dms timeout=%dms fails=1 passes=1 uri=/scep',
                 500 * $slow, 300 * $slow);

$t->start_nginx(<<"CONF");
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    upstream tls_ok {
        server 127.0.0.1:%%TLSHOP%%;
        scep_health_check $hc ssl ssl_verify=on
                          ssl_trusted_certificate=%%CERT%%
                          ssl_name=localhost;
    }

    upstream tls_noverify {
        server 127.0.0.1:%%TLSHOP%%;
        scep_health_check $hc ssl;
    }

    upstream tls_name {
        server 127.0.0.1:%%TLSHOP%%;
        scep_health_check $hc ssl ssl_verify=on
                          ssl_trusted_certificate=%%CERT%%
                          ssl_name=ndes.example.com;
    }

    upstream tls_untrusted {
        server 127.0.0.1:%%TLSHOP%%;
        scep_health_check $hc ssl ssl_verify=on
                          ssl_trusted_certificate=%%DIR%%/other.crt
                          ssl_name=localhost;
    }

    upstream tls_to_plain {
        server 127.0.0.1:%%BACKEND0%%;
        scep_health_check $hc ssl;
    }

    upstream plain_to_tls {
        server 127.0.0.1:%%TLSHOP%%;
        scep_health_check $hc;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            proxy_pass https://tls_ok;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate %%CERT%%;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
        }
    }

    # an HTTPS back end: TLS in front of the real scepserver
    server {
        listen 127.0.0.1:%%TLSHOP%% ssl;
        ssl_certificate %%CERT%%;
        ssl_certificate_key %%KEY%%;
        access_log %%DIR%%/logs/tlshop.log;

        location / {
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }
    }
}
CONF

my $gw = $t->port('GW');
my $port = $t->port('TLSHOP');

my %down = (
    tls_name      => 'GetCACaps: TLS: certificate does not match "ndes.example.com"',
    tls_untrusted => 'GetCACaps: TLS: certificate verify failed',
    tls_to_plain  => 'GetCACaps: TLS handshake failed',
    plain_to_tls  => 'GetCACaps: HTTP 400',
);

for my $u (sort keys %down) {
    ok(defined $t->wait_error_log(
           qr/in upstream "$u" is down: \Q$down{$u}\E/, 5),
       "$u: down: $down{$u}");
}

# the probes that verify and pass keep their back end up
my $probes = () = $t->read_file('logs/tlshop.log') =~ /GetCACert/g;
sleep 1 * $slow;
my $more = () = $t->read_file('logs/tlshop.log') =~ /GetCACert/g;
ok($more > $probes, 'HTTPS probes reach the back end and go on');

is($t->count_error_log(qr/in upstream "tls_(ok|noverify)" is down/), 0,
   'verified and unverified HTTPS probes pass');

my $r = $t->get($gw, '/scep?operation=GetCACaps');
is($r->{status}, 200, 'traffic goes through to the HTTPS back end');

# parameters that need others
for my $c (['ssl_verify=on', 'need its "ssl" parameter'],
           ['ssl ssl_verify=on', 'needs "ssl_trusted_certificate="'],
           ['ssl ssl_trusted_certificate=/nonexistent/ca.pem',
            'SSL_CTX_load_verify_locations\\("/nonexistent/ca.pem"\\) failed'])
{
    my ($rc, $out) = $t->test_conf(<<"CONF");
http {
    upstream u {
        server 127.0.0.1:1;
        scep_health_check $c->[0];
    }
}
CONF
    isnt($rc, 0, "scep_health_check $c->[0]: refused");
    like($out, qr/$c->[1]/, "scep_health_check $c->[0]: says why");
}

$t->stop;
done_testing;
