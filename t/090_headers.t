#!/usr/bin/perl

# What reaches NDES: no client credentials (Authorization, Cookie,
# Proxy-*), no hop-by-hop headers, no forwarding headers the client made
# up; the client address in X-Forwarded-For only as the gateway saw it.
# scep_pass_credentials on passes credentials where that is wanted.

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

    log_format seen 'auth=[$http_authorization] cookie=[$http_cookie] '
                    'pauth=[$http_proxy_authorization] '
                    'pconn=[$http_proxy_connection] '
                    'xff=[$http_x_forwarded_for] fwd=[$http_forwarded] '
                    'realip=[$http_x_real_ip] ka=[$http_keep_alive] '
                    'te=[$http_te] upgrade=[$http_upgrade] '
                    'listed=[$http_x_listed] custom=[$http_x_custom] '
                    'ua=[$http_user_agent] '
                    'one=[$http_x_one] two=[$http_x_two]';

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            proxy_pass http://127.0.0.1:%%HOP%%;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }

        location = /pass {
            scep on;
            scep_pass_credentials on;
            proxy_pass http://127.0.0.1:%%HOP%%/scep;
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

my $headers =
      "Authorization: NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==\r\n"
    . "Cookie: session=abc\r\n"
    . "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"
    . "Proxy-Connection: keep-alive\r\n"
    . "X-Forwarded-For: 10.9.9.9\r\n"
    . "Forwarded: for=10.9.9.9\r\n"
    . "X-Real-IP: 10.9.9.9\r\n"
    . "Keep-Alive: timeout=5\r\n"
    . "TE: trailers\r\n"
    . "Connection: close, X-Listed\r\n"
    . "X-Listed: hop\r\n"
    . "X-Custom: kept\r\n"
    . "User-Agent: device/1.0\r\n";

sub request {
    my ($method, $uri, $body) = @_;
    my $req = "$method $uri HTTP/1.1\r\nHost: localhost\r\n$headers";
    $req .= "Content-Length: " . length($body) . "\r\n" if defined $body;
    $req .= "\r\n" . ($body // '');
    return SCEPTest::http($gw, $req);
}

my $der = $t->scep_msg('--challenge', 'secret', '--cn', 'hdr-1',
                       '--dialect', 'der');

is(request('GET', '/scep?operation=GetCACaps')->{status}, 200, 'GET');
is(request('POST', '/scep?operation=PKIOperation', $der)->{status}, 200,
   'POST');

my @seen = $t->lines('logs/backend.log', 2);
for my $i (0, 1) {
    my $what = $i ? 'POST' : 'GET';
    my $l = $seen[$i] // '';
    like($l, qr/auth=\[-\] cookie=\[-\] pauth=\[-\] pconn=\[-\]/,
         "$what: no credentials reach the back end");
    like($l, qr/xff=\[127\.0\.0\.1\] fwd=\[-\] realip=\[-\]/,
         "$what: X-Forwarded-For is the address the gateway saw");
    like($l, qr/ka=\[-\] te=\[-\] upgrade=\[-\] listed=\[-\]/,
         "$what: no hop-by-hop headers");
    like($l, qr/custom=\[kept\] ua=\[device\/1\.0\]/,
         "$what: other headers pass");
}

is(request('GET', '/pass?operation=GetCACaps')->{status}, 200,
   'scep_pass_credentials on');
@seen = $t->lines('logs/backend.log', 3);
like($seen[2], qr/auth=\[NTLM \S+\] cookie=\[session=abc\]/,
     'passes credentials when asked to');

# every Connection header names hop-by-hop headers, not only the last
is(SCEPTest::http($gw, "GET /scep?operation=GetCACaps HTTP/1.1\r\n"
                     . "Host: localhost\r\nConnection: X-One\r\n"
                     . "X-One: a\r\nX-Custom: kept\r\n"
                     . "Connection: close, X-Two\r\nX-Two: b\r\n\r\n")
     ->{status}, 200, 'two Connection headers');
@seen = $t->lines('logs/backend.log', 4);
like($seen[3], qr/custom=\[kept\] .* one=\[-\] two=\[-\]/,
     'the headers both Connection headers name do not reach the back end');

$t->stop;
done_testing;
