#!/usr/bin/perl

# Streaming BER forwarded as DER (scep_forward_der): PKCSReqs in BER with
# the signed content cut into 64- and 1000-byte pieces, as iOS and
# BouncyCastle send them, enroll by GET and by POST with the real
# scepserver back ends, which answer "Message digest mismatch" to the
# same messages forwarded as they came (scep_forward_der off).  What the
# back end gets is DER that openssl cms -verify passes; a DER message
# reaches it byte for byte as it was sent.
#
# A second server of the same nginx stands between the gateway and the
# back ends and keeps what it gets: the bodies in files
# (client_body_in_file_only), the query strings in its access log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::Base64 ();
use SCEPTest;

my $t = SCEPTest->new;
$t->start_backend for 1 .. 2;

my $bodies = $t->dir . '/bodies';
mkdir $bodies or die "mkdir $bodies: $!";
# the workers (nobody) write there
chmod 0711, $t->dir;
chmod 0777, $bodies;

$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format args '$args';

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        server 127.0.0.1:%%BACKEND1%%;
    }

    upstream recorder {
        server 127.0.0.1:%%REC%%;
    }

    server {
        listen 127.0.0.1:%%GW%% ssl;
        ssl_certificate %%CERT%%;
        ssl_certificate_key %%KEY%%;
        ssl_protocols TLSv1.2 TLSv1.3;

        location = /scep {
            scep on;
            proxy_pass http://recorder;
        }

        location = /asis {
            scep on;
            scep_forward_der off;
            proxy_pass http://recorder/scep;
        }
    }

    # what the back ends get, kept
    server {
        listen 127.0.0.1:%%REC%%;

        access_log %%DIR%%/logs/args.log args;

        location / {
            client_body_in_file_only on;
            client_body_temp_path %%DIR%%/bodies;
            proxy_pass http://ndes;
        }
    }
}
CONF

my $gw = $t->port('GW');

# the last body the back ends got (each is taken away once read)
sub last_body {
    my ($f) = grep { -f } glob("$bodies/*");
    return undef unless $f;
    my $body = $t->read_file($f);
    unlink $f;
    return $body;
}

# the message of the last query string the back ends got
sub last_query_msg {
    my @l = $t->lines('logs/args.log', 1);
    my $args = $l[-1] // '';
    my ($m) = $args =~ /(?:^|&)message=([^&]*)/ or return undef;
    $m =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return MIME::Base64::decode_base64($m);
}

# whether openssl cms -verify passes the message (no chain check), and
# whether it is DER (openssl asn1parse shows no indefinite length)
sub verifies {
    my ($der, $name) = @_;
    my $f = $t->dir . "/$name.der";
    $t->write_file("$name.der", $der);
    my ($rc, $out) = $t->run('openssl', 'cms', '-verify', '-noverify',
                             '-binary', '-inform', 'DER', '-in', $f,
                             '-out', '/dev/null');
    return $rc == 0 && $out =~ /Verification successful/;
}

sub is_der {
    my ($der, $name) = @_;
    my $f = $t->dir . "/$name.der";
    $t->write_file("$name.der", $der);
    my ($rc, $out) = $t->run('openssl', 'asn1parse', '-inform', 'DER',
                             '-in', $f, '-i');
    return $rc == 0 && $out !~ /l=inf/ && $out !~ /cons: OCTET STRING/;
}

# whether a back end issued a certificate to the device
sub enrolled {
    my ($cn) = @_;
    my @f = map { glob($t->dir . "/depot-$_->{name}/$cn.*.pem") }
        @{$t->{backends}};
    return scalar @f;
}

sub send_msg {
    my ($method, $path, $der) = @_;
    return $method eq 'GET'
        ? $t->get($gw, "$path?operation=PKIOperation&message="
                       . SCEPTest::dialect($der, 'std'), tls => 1)
        : $t->post($gw, "$path?operation=PKIOperation", $der, tls => 1);
}

for my $chunk (64, 1000) {
    for my $method ('GET', 'POST') {
        my $what = "$method, content in $chunk-byte pieces";

        # through the gateway: re-encoded, enrolled

        my $der = $t->device_msg('--cipher', 'des3', '--ber', $chunk);
        my $cn = "device-$t->{devices}";
        like(substr($der, 0, 2), qr/^\x30\x80/, "$what: the message is BER");

        my $r = send_msg($method, '/scep', $der);
        is($r->{status}, 200, "$what: 200") or diag($r->{body});
        like($r->{headers}{'content-type'} // '',
             qr{application/x-pki-message}, "$what: a CertRep");
        ok(enrolled($cn), "$what: the device enrolled");

        my $fwd = $method eq 'GET' ? last_query_msg() : last_body();
        ok(defined $fwd && length $fwd < length $der,
           "$what: the back end got the shorter DER form");
        ok(is_der($fwd // '', "fwd-$method-$chunk"), "$what: it is DER");
        ok(verifies($fwd // '', "fwd-$method-$chunk"),
           "$what: openssl cms -verify passes it");

        # forwarded as it came: scepserver cannot read it

        $der = $t->device_msg('--cipher', 'des3', '--ber', $chunk);
        $cn = "device-$t->{devices}";

        $r = send_msg($method, '/asis', $der);
        is($r->{status}, 500, "$what, scep_forward_der off: the back end"
                              . " fails") or diag($r->{body});
        like($r->{body}, qr/digest mismatch/i,
             "$what, scep_forward_der off: message digest mismatch");
        ok(!enrolled($cn), "$what, scep_forward_der off: no certificate");

        $fwd = $method eq 'GET' ? last_query_msg() : last_body();
        ok(defined $fwd && $fwd eq $der,
           "$what, scep_forward_der off: the BER as it was sent");
    }
}

# a chunked POST (what a streaming client may send as well): the DER form
# with its own Content-Length

{
    my $der = $t->device_msg('--cipher', 'des3', '--ber', 1000);
    my $cn = "device-$t->{devices}";
    my $r = $t->post($gw, '/scep?operation=PKIOperation', $der, tls => 1,
                     chunked => 1);
    is($r->{status}, 200, 'chunked POST of BER: 200') or diag($r->{body});
    ok(enrolled($cn), 'chunked POST of BER: the device enrolled');
    my $fwd = last_body();
    ok(is_der($fwd // '', 'fwd-chunked'),
       'chunked POST of BER: DER passed on');
}

# DER already: the back end gets it byte for byte, and it enrolls

for my $method ('GET', 'POST') {
    my $der = $t->device_msg('--cipher', 'des3');
    my $cn = "device-$t->{devices}";

    my $r = send_msg($method, '/scep', $der);
    is($r->{status}, 200, "$method, DER: 200") or diag($r->{body});
    ok(enrolled($cn), "$method, DER: the device enrolled");

    my $fwd = $method eq 'GET' ? last_query_msg() : last_body();
    ok(defined $fwd && $fwd eq $der, "$method, DER: forwarded untouched");
}

# a GET already in the canonical form keeps its query string as it came

my $der = $t->device_msg('--cipher', 'des3');
my $q = 'operation=PKIOperation&message=' . SCEPTest::dialect($der, 'std');
my $r = $t->get($gw, "/scep?$q", tls => 1);
is($r->{status}, 200, 'canonical GET of DER: 200');
is(($t->lines('logs/args.log', 1))[-1], $q,
   'canonical GET of DER: the query string as it came');

$t->stop;
done_testing;
