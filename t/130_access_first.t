#!/usr/bin/perl

# The module's own answers come after nginx's access control and limits:
# a CA-cache hit is refused by deny, by auth_basic and by limit_req; a
# rejection (bad base64, a garbage POST, a wrong method) in a denied
# location gets 403 and logs no rejection line; the client's credentials
# reach auth_basic, and are stripped only on the way to the back end.
# Where a limit may key on a variable of a POST's message, the body is
# read before the limits, and a rejection found then still waits for
# access control.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;
my $b = $t->start_backend;

# the workers read it: they may run as another user
my $htpasswd = $t->write_file('htpasswd', "admin:{PLAIN}secret\n");
chmod 0711, $t->dir;
chmod 0644, $htpasswd;
mkdir $t->dir . '/html';
chmod 0755, $t->dir . '/html';
chmod 0644, $t->write_file('html/403.html', "the admin's page\n");

$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    limit_req_zone $binary_remote_addr zone=peraddr:1m rate=1r/m;

    log_format reason '$uri $status "$scep_reject_reason" "$scep_cache"'
                      ' len=$scep_message_length';

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        scep_health_check interval=60s timeout=2s uri=/scep;
    }

    server {
        listen 127.0.0.1:%%GW%%;
        access_log %%DIR%%/logs/reason.log reason;

        scep_ca_cache on;

        location = /scep {
            scep on;
            proxy_pass http://ndes;
        }

        location = /denied {
            scep on;
            allow 10.9.9.9;
            deny all;
            proxy_pass http://ndes/scep;
        }

        location = /auth {
            scep on;
            auth_basic "SCEP";
            auth_basic_user_file %%DIR%%/htpasswd;
            proxy_pass http://ndes/scep;
        }

        location = /limited {
            scep on;
            limit_req zone=peraddr nodelay;
            limit_req_status 429;
            proxy_pass http://ndes/scep;
        }

        location = /denied-page {
            scep on;
            deny all;
            error_page 403 /403.html;
            proxy_pass http://ndes/scep;
        }

        location = /403.html {
            root %%DIR%%/html;
        }

        # limits, but none that needs the message: the body stays unread
        location = /denied-limited {
            scep on;
            limit_req zone=peraddr burst=100 nodelay;
            deny all;
            proxy_pass http://ndes/scep;
        }

        location = /denied-recursive {
            scep on;
            deny all;
            recursive_error_pages on;
            error_page 403 /403.html;
            proxy_pass http://ndes/scep;
        }

        # error_page hands refused requests to a proxy: what goes on is
        # checked, nothing is answered from the cache
        location = /denied-forward {
            scep on;
            deny all;
            error_page 403 = @forward;
            proxy_pass http://ndes/scep;
        }

        location @forward {
            rewrite ^ /scep break;
            proxy_pass http://ndes;
        }

        # a body that nginx refuses half-way, and an error_page that
        # would pass the request on
        location = /badbody {
            scep on;
            error_page 400 = @forward;
            proxy_pass http://ndes/scep;
        }

        location = /status {
            scep_status;
            access_log off;
        }
    }
}
CONF

my $gw = $t->port('GW');
my $json = JSON::PP->new;

sub cached {
    my $end = time + 10;
    while (time < $end) {
        my $r = $t->get($gw, '/status');
        my $s = eval { $json->decode($r->{body}) } // {};
        my $peers = $s->{upstreams}{ndes}{peers} // [];
        return 1 if @$peers && $peers->[0]{ca_answer};
        sleep 0.1;
    }
    return 0;
}

ok(cached(), 'the probe kept the back end\'s CA answers');

my $caps = '/scep?operation=GetCACaps&message=default';
my $r = $t->get($gw, $caps);
is($r->{status}, 200, 'GetCACaps from the cache where nothing refuses it');

my $seen = $t->backend_requests($b);

# deny: 403, never a 200 from the cache
for my $op (qw(GetCACaps GetCACert)) {
    $r = $t->get($gw, "/denied?operation=$op&message=default");
    is($r->{status}, 403, "$op in a denied location: 403, not the cache's 200");
}

# auth_basic: 401 without credentials, the cache with them
$r = $t->get($gw, '/auth?operation=GetCACaps&message=default');
is($r->{status}, 401, 'GetCACaps behind auth_basic without credentials: 401');

my $cred = encode_base64('admin:secret', '');
$r = $t->get($gw, "GET /auth?operation=GetCACaps&message=default HTTP/1.1\r\n"
                  . "Host: localhost\r\nAuthorization: Basic $cred\r\n"
                  . "Connection: close\r\n\r\n");
is($r->{status}, 200, 'with credentials: 200 from the cache');

# the credentials reach auth_basic, and not the back end: a PKIOperation
# that auth_basic lets through reaches scepserver, which issues
my $der = $t->device_msg;
my $post = "POST /auth?operation=PKIOperation HTTP/1.1\r\nHost: localhost\r\n"
           . "Authorization: Basic $cred\r\n"
           . "Content-Type: application/x-pki-message\r\n"
           . "Content-Length: " . length($der) . "\r\n"
           . "Connection: close\r\n\r\n$der";
$r = $t->get($gw, $post);
is($r->{status}, 200, 'a POST PKIOperation with credentials passes auth_basic');
is($t->pki_status($r->{body}), '0', 'and the back end issued');

$r = $t->post($gw, '/auth?operation=PKIOperation', $t->device_msg);
is($r->{status}, 401, 'the same without credentials: 401');

# limit_req: the second cache hit within the minute is refused
$r = $t->get($gw, '/limited?operation=GetCACaps&message=default');
is($r->{status}, 200, 'the first GetCACaps under limit_req: from the cache');
$r = $t->get($gw, '/limited?operation=GetCACert&message=default');
is($r->{status}, 429, 'the second one: 429 from limit_req, not the cache');

is($t->backend_requests($b), $seen + 1,
   'only the PKIOperation that passed auth_basic reached the back end');

# rejections in a denied location: access control answers, the module
# logs no rejection
my $before = $t->count_error_log(qr/scep: rejected/);

$r = $t->post($gw, '/denied?operation=PKIOperation', 'garbage' x 100);
is($r->{status}, 403, 'a garbage POST to a denied location: 403, not 400');

$r = $t->post($gw, '/denied?operation=PKIOperation', $t->device_msg);
is($r->{status}, 403, 'a good POST to a denied location: 403');

$r = $t->get($gw, '/denied?operation=PKIOperation&message=%%%');
is($r->{status}, 403, 'bad base64 by GET in a denied location: 403');

$r = $t->get($gw, '/denied');
is($r->{status}, 403, 'no operation in a denied location: 403');
unlike($r->{body}, qr/browser_test/,
       "deny's 403, not the gateway's answer to the browser test");

$r = $t->get($gw, "PUT /denied?operation=PKIOperation HTTP/1.1\r\n"
                  . "Host: localhost\r\nContent-Length: 0\r\n"
                  . "Connection: close\r\n\r\n");
is($r->{status}, 403, 'a PUT to a denied location: 403, not 405');

$r = $t->post($gw, '/denied-page?operation=PKIOperation', 'garbage' x 100);
is($r->{status}, 403, 'a garbage POST to a denied location with an'
                      . ' error_page: 403');
is($r->{body}, "the admin's page\n", 'with the error page, not bad_der');

$r = $t->get($gw, '/denied-page?operation=GetCACaps');
is($r->{status}, 403, 'a cache hit there: 403');
is($r->{body}, "the admin's page\n", 'with the error page');

$r = $t->get($gw, '/denied-page?operation=PKIOperation&message=%%%');
is($r->{status}, 403, 'bad base64 by GET there: 403');
is($r->{body}, "the admin's page\n", 'with the error page, not bad_base64');

$r = $t->post($gw, '/denied-limited?operation=PKIOperation', $t->device_msg);
is($r->{status}, 403, 'a POST to a denied location with limit_req: 403');

$r = $t->get($gw, '/denied-recursive?operation=Bogus');
is($r->{status}, 403, 'recursive_error_pages: a bad operation denied: 403');
is($r->{body}, "the admin's page\n", 'with the page, not unknown_operation');

$r = $t->post($gw, '/limited?operation=PKIOperation', 'garbage' x 100);
is($r->{status}, 429, 'a garbage POST over the limit: 429, not 400');

$r = $t->get($gw, '/limited');
is($r->{status}, 429, 'a browser test over the limit: 429, not 403');

sleep 0.3;
is($t->count_error_log(qr/scep: rejected/), $before,
   'no rejection line for requests that access control or limits refused');
is($t->count_error_log(qr/scep_body_before_limits/), 0,
   'nor a line about scep_body_before_limits for their access log');

my @log = grep { m{^/(denied|limited|denied-limited) } }
          $t->lines('logs/reason.log');
ok(@log >= 7 && !grep({ !/ "-" "/ } @log),
   'and $scep_reject_reason is empty for them')
    or diag(join "\n", @log);
ok(!grep({ m{^/denied-limited } && !/ len=-$/ } @log),
   'the body of a POST that deny refused in a location with limits was'
   . ' not read') or diag(join "\n", @log);

# a chunked body that turns bad after its first chunk: nginx answers 400,
# and the part that came never goes on unchecked
{
    require IO::Socket::INET;
    my $der = $t->device_msg;
    my $s = IO::Socket::INET->new("127.0.0.1:$gw") or die "connect: $!";
    $s->syswrite("POST /badbody?operation=PKIOperation HTTP/1.1\r\n"
                 . "Host: localhost\r\nTransfer-Encoding: chunked\r\n"
                 . "Connection: close\r\n\r\n"
                 . sprintf("%x\r\n", 100) . substr($der, 0, 100) . "\r\n");
    sleep 0.3;
    $s->syswrite("zz\r\n\r\n");
    my $raw = '';
    while ($s->sysread(my $buf, 65536)) { $raw .= $buf }
    like($raw, qr{^HTTP/1\.1 400 }, 'a body nginx refused half-way: 400');
    sleep 0.2;
    is($t->backend_requests($b), $seen + 1,
       'and nothing of it reached the back end');
}

# the same rejections where nothing refuses them are the module's
$r = $t->post($gw, '/scep?operation=PKIOperation', 'garbage' x 100);
is($r->{status}, 400, 'a garbage POST where access is allowed: 400');
like($r->{body}, qr/^bad_der/, 'with the reason');
ok($t->wait_error_log(qr/scep: rejected POST "PKIOperation": bad_der/, 5),
   'and its rejection line');

my $st = $json->decode($t->get($gw, '/status')->{body});
is($st->{requests}{rejected}{bad_der} // $st->{requests}{rejects}{bad_der},
   1, 'one bad_der counted: not those that access control refused');

$seen = $t->backend_requests($b);

$r = $t->get($gw, '/denied-forward?operation=GetCACaps&message=default');
is($r->{status}, 200, 'error_page = @forward of a denied GetCACaps: 200');
is($t->backend_requests($b), $seen + 1,
   'from the back end, not the cache: the admin passes it on');

$r = $t->post($gw, '/denied-forward?operation=PKIOperation', 'garbage' x 100);
is($r->{status}, 400, 'a garbage POST that error_page passes on: 400');
like($r->{body}, qr/^bad_der/, 'checked before it went on');
is($t->backend_requests($b), $seen + 1, 'and it did not reach the back end');

# a bare GET that deny refused and error_page passes on: not the
# gateway's browser test, and not passed on unchecked either, but
# refused as a request without an operation, as "?message=abc" is
$r = $t->get($gw, '/denied-forward');
unlike($r->{body}, qr/browser_test/,
       'error_page = @forward of a denied bare GET: not the browser test');
is($r->{status}, 400, 'but 400, as before the browser test');
like($r->{body}, qr/^missing_operation: /, 'missing_operation');
is($t->backend_requests($b), $seen + 1,
   'and the bare GET did not reach the back end');

$t->stop;


# A limit that keys on a variable of the message: the body is read before
# limit_req, and a bad one still gets access control's answer.

my $t2 = SCEPTest->new;
my $b2 = $t2->start_backend;

$t2->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    map $scep_operation $scep_pki_transaction {
        PKIOperation  $scep_transaction_id;
        default       "";
    }

    limit_req_zone $scep_pki_transaction zone=tid:1m rate=1r/m;

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            scep_body_before_limits on;
            limit_req zone=tid nodelay;
            limit_req_status 429;
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }

        location = /nodirective {
            scep on;
            limit_req zone=tid nodelay;
            proxy_pass http://127.0.0.1:%%BACKEND0%%/scep;
        }

        location = /denied {
            scep on;
            scep_body_before_limits on;
            limit_req zone=tid nodelay;
            deny all;
            proxy_pass http://127.0.0.1:%%BACKEND0%%/scep;
        }
    }
}
CONF

my $gw2 = $t2->port('GW');

$r = $t2->post($gw2, '/nodirective?operation=PKIOperation', $t2->device_msg);
is($r->{status}, 200, 'a limit keyed on the message without'
                      . ' scep_body_before_limits: the POST passes');
ok($t2->wait_error_log(qr/needs "scep_body_before_limits on;"/, 5),
   'and a warn line says what the limit needs');

my $msg = $t2->device_msg;
$r = $t2->post($gw2, '/scep?operation=PKIOperation', $msg);
is($r->{status}, 200, 'a POST where limit_req keys on its transactionID');
$r = $t2->post($gw2, '/scep?operation=PKIOperation', $msg);
is($r->{status}, 429, 'the same transactionID again: 429, the body was read'
                      . ' before limit_req');

$before = $t2->count_error_log(qr/scep: rejected/);
$r = $t2->post($gw2, '/denied?operation=PKIOperation', 'garbage' x 100);
is($r->{status}, 403, 'a garbage POST read early in a denied location: 403');
sleep 0.3;
is($t2->count_error_log(qr/scep: rejected/), $before,
   'and its rejection is kept, never logged');

$t2->stop;

done_testing;
