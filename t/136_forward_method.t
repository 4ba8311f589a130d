#!/usr/bin/perl

# PKIOperation by POST toward the back ends (scep_forward_method): with
# "post", a GET from a device, in any base64 dialect and at 60 KB,
# reaches the back end as "POST ...?operation=PKIOperation" with the
# message in DER as its body, and the real scepserver enrolls it; a POST
# stays a POST.  With "auto", only while every healthy server of the
# upstream says POSTPKIOperation in its GetCACaps: toward scepserver a
# POST, toward a back end that does not say it (the fault daemon's
# getonly mode, as an older NDES) and toward an upstream of both a GET,
# as without health checks.  The default stays GET.  CertPoll and
# GetCert go the same way, micromdm's scepclient enrolls by GET through
# "post", and the gateway's access log still shows the device's request
# line in $request.
#
# A recording server in front of each back end logs the method, the
# Content-Type, the Content-Length and the query it got.
#
# A back end that writes out each raw request (t/lib/record-daemon.pl)
# shows what the conversion sends: one Content-Type under
# proxy_set_header Content-Type, the message's Content-Length for a GET
# with "Content-Length: 0", several POSTs on one keepalive connection,
# a GET with a body stream (chunked, HTTP/2 DATA frames) kept a GET
# with a line at info, and after error_page to a URI or a named
# location, or X-Accel-Redirect, the GET it was, with its message and no body (no 413 of the
# new location's client_max_body_size), or a POST again where that
# location says "post".  A server that resets the connection makes
# proxy_next_upstream send the body again to the next one, which
# enrolls.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use MIME::Base64 ();
use SCEPTest;

my $t = SCEPTest->new;
$t->start_backend;

# the getonly back end sends the test CA in GetCACert, so that messages
# encrypted to it pass the recipient check there too
my $p7 = $t->dir . '/ca.p7';
my ($rc, $out) = $t->run('openssl', 'crl2pkcs7', '-nocrl', '-certfile',
                         $t->ca_pem, '-outform', 'DER', '-out', $p7);
die "openssl crl2pkcs7: $out" if $rc;
$t->start_fault('getonly', $p7);
$t->start_fault('reset');

# a back end that writes out every raw request it gets
my $dump = $t->dir . '/dump.txt';
$t->spawn($t->dir . '/logs/record.log', $^X,
          "$FindBin::Bin/lib/record-daemon.pl", $t->port('DUMP'), $dump);
$t->wait_port($t->port('DUMP')) or die 'record-daemon did not start';
$t->port('CLOSED');

$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    # micromdm's scepclient encrypts with single DES
    scep_algorithms sha1 sha256 sha512 des3 aes des;

    log_format seen '$server_port $request_method'
                    ' $content_type|$content_length $args';
    log_format device '$request_method|$request';

    upstream ndes {
        server 127.0.0.1:%%HOPA%%;
        scep_health_check interval=300ms timeout=200ms uri=/scep;
    }

    upstream getonly {
        server 127.0.0.1:%%HOPB%%;
        scep_health_check interval=300ms timeout=200ms uri=/scep;
    }

    upstream mixed {
        server 127.0.0.1:%%HOPA%%;
        server 127.0.0.1:%%HOPB%%;
        scep_health_check interval=300ms timeout=200ms uri=/scep;
    }

    upstream plain {
        server 127.0.0.1:%%HOPA%%;
    }

    upstream dump {
        server 127.0.0.1:%%DUMP%%;
    }

    upstream dumpka {
        server 127.0.0.1:%%DUMP%%;
        keepalive 4;
    }

    # the first server resets the connection, the second enrolls
    upstream retry {
        server 127.0.0.1:%%FAULT_RESET2%%;
        server 127.0.0.1:%%HOPA%%;
    }

    server {
        listen 127.0.0.1:%%GW%%;
        listen 127.0.0.1:%%GW2%% http2;
        access_log %%DIR%%/logs/device.log device;

        location = /post {
            scep on;
            scep_forward_method post;
            proxy_pass http://plain/scep;
        }

        location = /auto {
            scep on;
            scep_forward_method auto;
            proxy_pass http://ndes/scep;
        }

        location = /getonly {
            scep on;
            scep_forward_method auto;
            proxy_pass http://getonly/scep;
        }

        location = /mixed {
            scep on;
            scep_forward_method auto;
            proxy_pass http://mixed/scep;
        }

        location = /nochecks {
            scep on;
            scep_forward_method auto;
            proxy_pass http://plain/scep;
        }

        location = /get {
            scep on;
            proxy_pass http://ndes/scep;
        }

        # scepclient sends GET where the caps it sees say neither
        # POSTPKIOperation nor SCEPStandard
        location = /client {
            scep on;
            scep_forward_method post;
            proxy_pass http://plain/scep;
            proxy_set_header Accept-Encoding "";
            sub_filter_types text/plain;
            sub_filter_once off;
            sub_filter POSTPKIOperation GETOnly;
            sub_filter SCEPStandard GETOnly;
        }

        # toward the recording back end
        location = /dump {
            scep on;
            scep_forward_method post;
            proxy_pass http://dump/dump;
        }

        location = /ct {
            scep on;
            scep_forward_method post;
            proxy_set_header Content-Type application/x-pki-message;
            proxy_pass http://dump/ct;
        }

        location = /ka {
            scep on;
            scep_forward_method post;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://dumpka/ka;
        }

        location = /retry {
            scep on;
            scep_forward_method post;
            proxy_next_upstream error timeout;
            proxy_pass http://retry/scep;
        }

        # the first back end is down: error_page takes the request on
        location = /epuri {
            scep on;
            scep_forward_method post;
            proxy_pass http://127.0.0.1:%%CLOSED%%/scep;
            error_page 502 = /fb;
        }

        location = /epnew {
            scep on;
            scep_forward_method post;
            proxy_pass http://127.0.0.1:%%CLOSED%%/scep;
            error_page 502 = /fbpost;
        }

        # the back end hands the request on by X-Accel-Redirect
        location = /xar {
            scep on;
            scep_forward_method post;
            proxy_pass http://127.0.0.1:%%XAR%%/xar;
        }

        location = /epnamed {
            scep on;
            scep_forward_method post;
            proxy_pass http://127.0.0.1:%%CLOSED%%/scep;
            error_page 502 = @fb;
        }

        location = /fb {
            client_max_body_size 1k;
            proxy_pass http://dump/fb;
        }

        location = /fbpost {
            client_max_body_size 1k;
            scep_forward_method post;
            proxy_pass http://dump/fbpost;
        }

        location @fb {
            client_max_body_size 1k;
            proxy_pass http://dump;
        }

        location = /status {
            scep_status;
        }
    }

    server {
        listen 127.0.0.1:%%XAR%%;

        location / {
            add_header X-Accel-Redirect /fb;
            return 204;
        }
    }

    # what each back end gets
    server {
        listen 127.0.0.1:%%HOPA%%;
        access_log %%DIR%%/logs/backend.log seen;

        location / {
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }
    }

    server {
        listen 127.0.0.1:%%HOPB%%;
        access_log %%DIR%%/logs/backend.log seen;

        location / {
            proxy_pass http://127.0.0.1:%%FAULT_GETONLY1%%;
        }
    }
}
CONF

my $gw = $t->port('GW');
my $hopa = $t->port('HOPA');
my $hopb = $t->port('HOPB');
my $json = JSON::PP->new;

# every probe passed once: the caps of each back end are known
my $ready = 0;
for (1 .. 100 * (int($ENV{TEST_TIMEOUT_FACTOR} || 1) || 1)) {
    my $r = $t->get($gw, '/status');
    my $s = eval { $json->decode($r->{body}) } // {};
    $ready = 1;
    for my $u (qw(ndes getonly mixed)) {
        my $peers = $s->{upstreams}{$u}{peers} // [];
        $ready &&= @$peers
                   && @$peers == grep { $_->{state} eq 'up'
                                        && @{$_->{capabilities} // []} }
                                      @$peers;
    }
    last if $ready;
    select undef, undef, undef, 0.1;
}
ok($ready, 'the probes have the GetCACaps of every back end');

# the next PKIOperation that a back end got: port, method, Content-Type,
# Content-Length and query (probes in between are passed over)
my $seen = 0;

sub forwarded {
    my $end = time + 5 * (int($ENV{TEST_TIMEOUT_FACTOR} || 1) || 1);
    while (time < $end) {
        my @l = split /\n/, $t->read_file('logs/backend.log');
        for my $i ($seen .. $#l) {
            next unless $l[$i] =~ /operation=PKIOperation/;
            $seen = $i + 1;
            my ($port, $method, $ct, $cl, $args) =
                $l[$i] =~ /^(\d+) (\S+) (.*?)\|(.*?) (.*)$/ or return {};
            return { port => $port, method => $method, type => $ct,
                     length => $cl, args => $args };
        }
        select undef, undef, undef, 0.05;
    }
    return {};
}

# the last line of the gateway's own access log
sub device_line {
    my ($min) = @_;
    my @l = $t->lines('logs/device.log', $min);
    return $l[-1] // '';
}

sub as_post {
    my ($f, $der, $port, $what) = @_;
    is($f->{method}, 'POST', "$what reaches the back end as a POST");
    is($f->{args}, 'operation=PKIOperation',
       "$what: the query is operation=PKIOperation only");
    is($f->{type}, 'application/x-pki-message',
       "$what: Content-Type application/x-pki-message");
    is($f->{length}, length $der, "$what: the DER message is the body");
    is($f->{port}, $port, "$what: at the back end of its upstream");
}

sub as_get {
    my ($f, $port, $what) = @_;
    is($f->{method}, 'GET', "$what reaches the back end as a GET");
    like($f->{args} // '', qr/^operation=PKIOperation&message=\S+$/,
         "$what: the message in the query");
    is($f->{length}, '-', "$what: no body");
    is($f->{port}, $port, "$what: at the back end of its upstream")
        if defined $port;
}

# ------------------------------------------------------------------
# post: a GET in every dialect arrives as a POST and enrolls

for my $dialect (qw(std raw space urlsafe nopad lines)) {
    my $der = $t->device_msg;
    my $q = 'operation=PKIOperation&message='
            . SCEPTest::dialect($der, $dialect);
    my $r = $t->get($gw, "/post?$q");
    is($r->{status}, 200, "post: a GET ($dialect) is served");
    is($t->pki_status($r->{body}), '0', "post: a GET ($dialect) enrolls");
    as_post(forwarded(), $der, $hopa, "post: a GET ($dialect)");
}

# the device's request line stays in $request; $request_method is what
# the back end was sent
like(device_line(6), qr{^POST\|GET /post\?operation=PKIOperation&message=},
     'post: $request keeps the GET the device sent');

# a 60 KB GET: no URL of that length reaches the back end
{
    my $q = $t->scep_msg('--challenge', 'secret', '--cn', 'device-60k',
                         '--query-size', 60001);
    my ($b64) = $q =~ /message=(.*)$/;
    $b64 =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    my $der = MIME::Base64::decode_base64($b64);
    my $r = $t->get($gw, "/post?$q");
    is($r->{status}, 200, 'post: a 60 KB GET is served');
    is($t->pki_status($r->{body}), '0', 'post: a 60 KB GET enrolls');
    as_post(forwarded(), $der, $hopa, 'post: a 60 KB GET');
}

# streaming BER by GET: the body is its DER form, which scepserver takes
{
    my $ber = $t->device_msg('--ber', 1000);
    my $r = $t->get($gw, '/post?operation=PKIOperation&message='
                         . SCEPTest::dialect($ber, 'std'));
    is($t->pki_status($r->{body}), '0', 'post: a GET in BER enrolls');
    my $f = forwarded();
    is($f->{method}, 'POST',
       'post: a GET in BER reaches the back end as a POST');
    ok($f->{length} =~ /^\d+$/ && $f->{length} < length $ber,
       'post: a GET in BER: its DER form is the body');
}

# a POST stays a POST, its body as it came
{
    my $der = $t->device_msg;
    my $r = $t->post($gw, '/post?operation=PKIOperation', $der);
    is($r->{status}, 200, 'post: a POST is served');
    is($t->pki_status($r->{body}), '0', 'post: a POST enrolls');
    as_post(forwarded(), $der, $hopa, 'post: a POST');
}

# CertPoll and GetCert go the same way (scepserver answers them with a
# 500 of its own: it keeps no pending requests)
for my $type (20, 21) {
    my $der = $t->device_msg('--type', $type);
    my $r = $t->get($gw, '/post?operation=PKIOperation&message='
                         . SCEPTest::dialect($der, 'std'));
    unlike($r->{body}, qr/^\w+: /, "post: a GET of type $type is passed on");
    as_post(forwarded(), $der, $hopa, "post: a GET of type $type");
}

# ------------------------------------------------------------------
# auto

{
    my $der = $t->device_msg;
    my $r = $t->get($gw, '/auto?operation=PKIOperation&message='
                         . SCEPTest::dialect($der, 'raw'));
    is($r->{status}, 200, 'auto: a GET toward scepserver is served');
    is($t->pki_status($r->{body}), '0',
       'auto: a GET toward scepserver enrolls');
    as_post(forwarded(), $der, $hopa, 'auto: a GET toward scepserver');

    $der = $t->device_msg('--type', 20);
    $r = $t->get($gw, '/auto?operation=PKIOperation&message='
                      . SCEPTest::dialect($der, 'std'));
    as_post(forwarded(), $der, $hopa, 'auto: a CertPoll toward scepserver');
}

{
    my $der = $t->device_msg;
    my $r = $t->get($gw, '/getonly?operation=PKIOperation&message='
                         . SCEPTest::dialect($der, 'std'));
    is($r->{status}, 200, 'auto: a GET toward the getonly back end is served');
    as_get(forwarded(), $hopb, 'auto: a GET toward a back end without'
                               . ' POSTPKIOperation');
    like(device_line(), qr{^GET\|GET /getonly\?},
         'auto: $request_method of a GET passed on as a GET');
}

for my $i (1 .. 4) {
    my $der = $t->device_msg;
    my $r = $t->get($gw, '/mixed?operation=PKIOperation&message='
                         . SCEPTest::dialect($der, 'std'));
    is($r->{status}, 200, "auto: GET $i toward a mixed upstream is served");
    as_get(forwarded(), undef, "auto: GET $i toward a mixed upstream");
}

{
    my $der = $t->device_msg;
    my $r = $t->get($gw, '/nochecks?operation=PKIOperation&message='
                         . SCEPTest::dialect($der, 'std'));
    is($r->{status}, 200, 'auto without health checks: a GET is served');
    is($t->pki_status($r->{body}), '0',
       'auto without health checks: a GET enrolls');
    as_get(forwarded(), $hopa, 'auto without health checks: a GET');
}

# ------------------------------------------------------------------
# get, the default: as before, though the back end takes POST

{
    my $der = $t->device_msg;
    my $r = $t->get($gw, '/get?operation=PKIOperation&message='
                         . SCEPTest::dialect($der, 'std'));
    is($r->{status}, 200, 'get: a GET is served');
    is($t->pki_status($r->{body}), '0', 'get: a GET enrolls');
    as_get(forwarded(), $hopa, 'get: a GET');

    $r = $t->post($gw, '/get?operation=PKIOperation', $der = $t->device_msg);
    is($t->pki_status($r->{body}), '0', 'get: a POST enrolls');
    as_post(forwarded(), $der, $hopa, 'get: a POST');
}

# ------------------------------------------------------------------
# a real client that sends GET enrolls through "post"

{
    my ($rc, $out, $cert) = $t->scepclient("http://127.0.0.1:$gw/client",
                                           cn => 'scepclient-post');
    is($rc, 0, 'scepclient enrolls by GET through post') or diag($out);
    ok($cert, 'scepclient has its certificate');
    my $f = forwarded();
    is($f->{method}, 'POST',
       'scepclient\'s GET reached the back end as a POST');
    is($f->{args}, 'operation=PKIOperation', 'scepclient: the POST query');
    like(device_line(), qr{^POST\|GET /client\?}, 'scepclient sent GET');
}

# ------------------------------------------------------------------
# what the recording back end got, a request at a time: the request
# line, the headers (name and value pairs) and the body's length

my $dumped = 0;

sub recorded {
    my ($n) = @_;
    my @r;
    my $end = time + 5 * (int($ENV{TEST_TIMEOUT_FACTOR} || 1) || 1);
    while (time < $end) {
        my $text = -e $dump ? $t->read_file('dump.txt') : '';
        @r = ();
        for my $rec (grep { length } split /^=== /m, $text) {
            my ($conn, $head, $len) =
                $rec =~ /^conn (\d+) req \d+\n(.*)\nbodylen=(\d+)\n/s
                or next;
            my ($line, @h) = split /\r\n/, $head;
            push @r, { conn => $conn, line => $line, bodylen => $len,
                       headers => [ map { [ split /:\s*/, $_, 2 ] } @h ] };
        }
        last if @r >= $dumped + $n;
        select undef, undef, undef, 0.05;
    }
    my @new = @r[$dumped .. $#r];
    $dumped = @r;
    return @new;
}

sub header_values {
    my ($rec, $name) = @_;
    return map { $_->[1] } grep { lc $_->[0] eq lc $name }
                                @{$rec->{headers} // []};
}

sub mq {
    my ($der) = @_;
    return 'operation=PKIOperation&message='
           . SCEPTest::dialect($der, 'std');
}

# proxy_set_header Content-Type replaces the module's, not adds to it
{
    my $der = $t->device_msg;
    my $r = $t->get($gw, '/ct?' . mq($der));
    is($r->{status}, 200, 'proxy_set_header Content-Type: served');
    my ($rec) = recorded(1);
    like($rec->{line} // '', qr{^POST /ct\?operation=PKIOperation HTTP},
         'proxy_set_header Content-Type: a POST');
    is(scalar(() = header_values($rec, 'Content-Type')), 1,
       'proxy_set_header Content-Type: one Content-Type');

    $r = SCEPTest::http($gw, 'GET /ct?' . mq($t->device_msg)
                              . " HTTP/1.1\r\nHost: localhost\r\n"
                              . "Content-Type: text/plain\r\n"
                              . "Connection: close\r\n\r\n");
    ($rec) = recorded(1);
    is_deeply([ header_values($rec, 'Content-Type') ],
              [ 'application/x-pki-message' ],
              'the device\'s Content-Type: one, the message\'s');
}

# a GET with "Content-Length: 0" is made a POST with the message's
{
    my $der = $t->device_msg;
    my $r = SCEPTest::http($gw, 'GET /dump?' . mq($der)
                                . " HTTP/1.1\r\nHost: localhost\r\n"
                                . "Content-Length: 0\r\n"
                                . "Connection: close\r\n\r\n");
    is($r->{status}, 200, 'a GET with Content-Length: 0 is served');
    my ($rec) = recorded(1);
    like($rec->{line} // '', qr{^POST /dump\?operation=PKIOperation HTTP},
         'a GET with Content-Length: 0 goes on as a POST');
    is_deeply([ header_values($rec, 'Content-Length') ], [ length $der ],
              'a GET with Content-Length: 0: one Content-Length,'
              . ' the message\'s');
    is($rec->{bodylen}, length $der,
       'a GET with Content-Length: 0: the message is the body');
}

# a GET with a body stream of its own stays a GET, and says why
{
    my $der = $t->device_msg;
    my $r = SCEPTest::http($gw, 'GET /dump?' . mq($der)
                                . " HTTP/1.1\r\nHost: localhost\r\n"
                                . "Transfer-Encoding: chunked\r\n"
                                . "Connection: close\r\n\r\n0\r\n\r\n");
    is($r->{status}, 200, 'a chunked GET is served');
    my ($rec) = recorded(1);
    like($rec->{line} // '', qr{^GET /dump\?operation=PKIOperation&message=},
         'a chunked GET goes on as a GET, its message in the query');
    my $why = qr/GET with a request body stream: forwarded as GET/;
    is($t->count_error_log($why), 1,
       'a chunked GET: the reason, at info, once');

    my $gw2 = $t->port('GW2');
    my $f = $t->dir . '/h2body';
    $t->write_file('h2body', 'x');
    my ($rc, $out) = $t->run('curl', '-s', '-o', '/dev/null', '-w',
                             '%{http_code}', '--http2-prior-knowledge',
                             '-X', 'GET', '-H', 'Content-Length:',
                             '--data-binary', "\@$f",
                             "http://127.0.0.1:$gw2/dump?" . mq($der));
    is($out, '200', 'an HTTP/2 GET with DATA frames is served');
    ($rec) = recorded(1);
    like($rec->{line} // '', qr{^GET /dump\?operation=PKIOperation&message=},
         'an HTTP/2 GET with DATA frames goes on as a GET');
    is($t->count_error_log($why), 2,
       'an HTTP/2 GET with DATA frames: the reason, at info');
}

# several converted GETs on one keepalive connection to the back end
{
    my @der = map { $t->device_msg } 1 .. 3;
    my @st = map { $t->get($gw, '/ka?' . mq($_))->{status} } @der;
    is_deeply(\@st, [ 200, 200, 200 ], 'keepalive: three GETs served');
    my @rec = recorded(3);
    is(scalar(grep { $_->{line} =~ m{^POST /ka\?operation=PKIOperation } }
                   @rec),
       3, 'keepalive: three POSTs');
    is_deeply([ map { $_->{bodylen} } @rec ], [ map { length } @der ],
              'keepalive: each with its own message as the body');
    is(scalar(keys %{{ map { $_->{conn} => 1 } @rec }}), 1,
       'keepalive: on one connection');
}

# the first server resets the connection: the next one gets the body
# again, and enrolls
{
    my $der = $t->device_msg;
    my $r = $t->get($gw, '/retry?' . mq($der));
    is($r->{status}, 200, 'retry: served by the second server');
    is($t->pki_status($r->{body}), '0', 'retry: enrolls');
    as_post(forwarded(), $der, $hopa, 'retry: the body resent');
}

# error_page to a URI after the conversion: nginx takes the request on
# as a GET, and the module's body and Content-Length go with the POST
{
    my $der = $t->device_msg;
    my $r = $t->get($gw, '/epuri?' . mq($der));
    is($r->{status}, 200,
       'error_page to a URI: served, no 413 of client_max_body_size');
    my ($rec) = recorded(1);
    like($rec->{line} // '', qr{^GET /fb\?operation=PKIOperation&message=\S+ },
         'error_page to a URI: a GET with the message in the query');
    is($rec->{bodylen}, 0, 'error_page to a URI: no body');
    is(scalar(() = header_values($rec, 'Content-Length')), 0,
       'error_page to a URI: no Content-Length');
    is(scalar(() = header_values($rec, 'Content-Type')), 0,
       'error_page to a URI: no Content-Type');

    $r = $t->get($gw, '/epnew?' . mq($der = $t->device_msg));
    is($r->{status}, 200, 'error_page to a URI that converts: served');
    ($rec) = recorded(1);
    like($rec->{line} // '', qr{^POST /fbpost\?operation=PKIOperation HTTP},
         'error_page to a URI that converts: a POST again');
    is($rec->{bodylen}, length $der,
       'error_page to a URI that converts: the message is the body');
    is_deeply([ header_values($rec, 'Content-Type') ],
              [ 'application/x-pki-message' ],
              'error_page to a URI that converts: one Content-Type');

    $r = $t->get($gw, '/xar?' . mq($der = $t->device_msg));
    is($r->{status}, 200, 'X-Accel-Redirect: served, no 413');
    ($rec) = recorded(1);
    like($rec->{line} // '',
         qr{^GET /fb\?operation=PKIOperation&message=\S+ },
         'X-Accel-Redirect: a GET with the message in the query');
    is($rec->{bodylen}, 0, 'X-Accel-Redirect: no body');

    $r = $t->get($gw, '/epnamed?' . mq($der = $t->device_msg));
    is($r->{status}, 200, 'error_page to a named location: served');
    ($rec) = recorded(1);
    like($rec->{line} // '',
         qr{^GET /epnamed\?operation=PKIOperation&message=\S+ },
         'error_page to a named location: a GET with the message');
    is($rec->{bodylen}, 0, 'error_page to a named location: no body');
}

# ------------------------------------------------------------------
# nginx -t

($rc, $out) = $t->test_conf(<<'CONF');
http {
    client_body_buffer_size 128k;
    server {
        listen 127.0.0.1:%%T%%;
        location /scep {
            scep on;
            scep_forward_method put;
            proxy_pass http://127.0.0.1:%%T%%;
        }
    }
}
CONF
isnt($rc, 0, 'nginx -t refuses scep_forward_method put');
like($out, qr/invalid value "put" in .*test\.conf:\d+/,
     'nginx -t names the bad value');

done_testing;
