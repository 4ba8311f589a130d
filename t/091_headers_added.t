#!/usr/bin/perl

# A request header that another module adds after the gateway rebuilt
# the headers list (headers-more's more_set_input_headers here, like
# the Lua module's ngx.req.set_header) reaches the back end: the list's
# "last" points into the request's own list, not into a stack frame
# that has ended.  Needs the headers-more module built for this nginx
# (libnginx-mod-http-headers-more-filter for Debian's); skipped without.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;

my $more = $ENV{TEST_NGINX_HEADERS_MORE}
    || '/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so';

# headers-more first: the phase handlers of the module loaded last run
# first, so the gateway rebuilds the list before headers-more adds to it
my $main = "load_module $more;\n"
    . ($ENV{TEST_SCEP_STATIC} ? '' : "load_module %%MODULE%%;\n")
    . ($ENV{TEST_NGINX_FOREGROUND} ? "master_process off;\ndaemon off;\n"
                                    : "daemon on;\n")
    . "pid %%DIR%%/nginx.pid;\n"
    . "error_log %%DIR%%/logs/error.log info;\n"
    . "worker_processes 1;\n"
    . "events {}\n";

my $http = <<'CONF';
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format seen 'added=[$http_x_added] many=[$http_x_h25] '
                    'listed=[$http_x_listed] ua=[$http_user_agent]';

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            more_set_input_headers 'X-Added: late';
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

unless (-f $more) {
    plan skip_all => "no headers-more module at $more";
}
my ($rc, $out) = $t->test_conf($main . $http);
if ($rc && $out =~ /binary compatible|version \d+ instead|dlopen/) {
    plan skip_all => "headers-more at $more does not load: $out";
}
is($rc, 0, 'nginx -t') or diag($out);

$t->start_backend;
$t->start_nginx($main . $http);
my $gw = $t->port('GW');

# few headers, one of them dropped: the rebuilt list has room left
my $r = SCEPTest::http($gw, "GET /scep?operation=GetCACaps HTTP/1.1\r\n"
    . "Host: localhost\r\nCookie: a=b\r\nUser-Agent: device/1.0\r\n\r\n");
is($r->{status}, 200, 'GET with a dropped header');

# many headers and two Connection headers: the rebuilt list is full,
# so headers-more's push needs a new part
my $many = join '', map { "X-H$_: $_\r\n" } 1 .. 30;
$r = SCEPTest::http($gw, "GET /scep?operation=GetCACaps HTTP/1.1\r\n"
    . "Host: localhost\r\nConnection: X-Listed\r\nX-Listed: hop\r\n"
    . $many . "Connection: close\r\nUser-Agent: device/1.0\r\n\r\n");
is($r->{status}, 200, 'GET with many headers');

my @seen = $t->lines('logs/backend.log', 2);
like($seen[0] // '', qr/added=\[late\] many=\[-\] listed=\[-\] ua=\[device/,
     'a header added after the gateway reaches the back end');
like($seen[1] // '',
     qr/added=\[late\] many=\[25\] listed=\[-\] ua=\[device/,
     'and with a full list too');

$t->stop;
done_testing;
