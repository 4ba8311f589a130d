#!/usr/bin/perl

# Long GET PKIOperation query strings, up to the NDES/IIS maximum of
# 65534 bytes, reach a real scepserver byte for byte and are answered
# with a CertRep; longer ones get 414 from the gateway itself.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
my $b = $t->start_backend;

# The back end is a real scepserver behind a recording hop whose log
# holds the exact query string each request arrived with.
$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format scep '$scep_operation $scep_message_length $status';
    log_format seen '$args';

    server {
        listen 127.0.0.1:%%GW%% ssl;
        ssl_certificate %%CERT%%;
        ssl_certificate_key %%KEY%%;

        access_log %%DIR%%/logs/scep.log scep;

        location = /scep {
            scep on;
            proxy_pass http://127.0.0.1:%%HOP%%;
        }
    }

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

# the canonical query (standard base64, percent-encoded) always has an
# odd length, so 65533 is the longest canonical query within 65534
my @sizes = (4001, 16001, 32001, 65533);
my @sent;

for my $size (@sizes) {
    # scepserver refuses a second certificate for a subject it has
    # issued to, so each request has a subject of its own
    my $q = $t->scep_msg('--challenge', 'secret', '--cn', "device-$size",
                         '--query', '--query-size', $size,
                         '--dialect', 'std');
    is(length $q, $size, "message tool made a $size-byte query");

    my $r = $t->get($gw, "/scep?$q", tls => 1);
    is($r->{status}, 200, "$size-byte GET PKIOperation answered 200");
    is($r->{headers}{'content-type'}, 'application/x-pki-message',
       "$size: the answer is a pkiMessage");

    # the CertRep says SUCCESS: pkiStatus "0"
    my $rep = $t->write_file("rep-$size.der", $r->{body});
    my (undef, $dump) = $t->run('openssl', 'asn1parse', '-inform', 'DER',
                                '-in', $rep);
    like($dump, qr/:2\.16\.840\.1\.113733\.1\.9\.3\s*\n.*SET\s*\n.*PRINTABLESTRING\s*:0\s*\n/,
         "$size: CertRep with pkiStatus SUCCESS");
    push @sent, $q;
}

my @expect = @sent;

# 65534 exactly: unpadded URL-safe base64 (what scepclient sends) can
# have an even length; it reaches the back end in the canonical form
my $q = $t->scep_msg('--challenge', 'secret', '--cn', 'device-65534',
                     '--query', '--query-size', 65534,
                     '--dialect', 'urlsafe');
is(length $q, 65534, 'a 65534-byte query');
my $r = $t->get($gw, "/scep?$q", tls => 1);
is($r->{status}, 200, '65534 bytes is not too long for the gateway');
is($t->pki_status($r->{body}), '0', '65534: CertRep with SUCCESS');
push @sent, $q;

(my $b64 = $q) =~ s/^operation=PKIOperation&message=//;
$b64 =~ tr{-_}{+/};
require MIME::Base64;
push @expect, 'operation=PKIOperation&message='
              . SCEPTest::dialect(MIME::Base64::decode_base64($b64), 'std');

my @seen = $t->lines('logs/backend.log', scalar @sent);
is(scalar @seen, scalar @sent, 'each long query reached the back end once');
for my $i (0 .. $#sent - 1) {
    ok(defined $seen[$i] && $seen[$i] eq $expect[$i],
       length($sent[$i]) . '-byte query arrived byte for byte');
}
ok($seen[-1] eq $expect[-1],
   '65534-byte URL-safe query arrived as the same message, canonical');

# message lengths in the log are the decoded DER sizes
my @log = $t->lines('logs/scep.log', scalar @sent);
my ($len) = $log[-1] =~ /^PKIOperation (\d+) /;
ok($len && $len > 48000 && $len < 49200,
   "\$scep_message_length is the decoded size ($len)");

# over the maximum: nginx's own 414, and nothing reaches the back end
my $long = $t->scep_msg('--challenge', 'secret', '--query',
                        '--query-size', 80001, '--dialect', 'std');
$r = $t->get($gw, "/scep?$long", tls => 1);
is($r->{status}, 414, 'an 80001-byte query gets 414');

@seen = $t->lines('logs/backend.log', scalar @sent);
is(scalar @seen, scalar @sent, 'the 414 did not reach the back end');

$t->stop;
done_testing;
