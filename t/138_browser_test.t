#!/usr/bin/perl

# The browser test of Microsoft's NDES troubleshooting, through the
# gateway: a bare GET or HEAD of the SCEP URL gets 403 while a back end
# is up and 503 with Retry-After once none is, a short text/plain body,
# $scep_reject_reason "browser_test", counted apart from rejections;
# nothing of it reaches a back end; deny and error_page come first, and
# a request sent to an error_page is not answered there either.  The
# body says whether the probes check the Intune connector; a server
# marked "down" is not up, nor one still "checking"; the answers are
# neither sniffed nor cached; scep_browser_test off gives the 400 back.
# Headless Chromium opens the SCEP URL as the guide has the admin do,
# with a back end up and with none.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;

sub day { strftime('%Y%m%d%H%M%SZ', gmtime(time + $_[0] * 86400)) }

# an NDES whose Intune connector is in place, which logs every request
my $bundle = $t->ca_ra_bundle('ndes', day(-1), day(300));
my $ndes = $t->start_fault('ndes=403', $bundle);
# an NDES that never answers: under "mandatory" it stays "checking"
my $hang = $t->start_fault('hang');

$t->html_file('denied.html', "the admin's page\n");

my $conf = <<'CONF';
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;
    log_format reason '$uri $status "$scep_reject_reason"';
    log_format browser '$status "$scep_reject_reason" '
                       '"$sent_http_retry_after" "$http_user_agent"';

    upstream ndes {
        server 127.0.0.1:%%FAULT_NDES_4031%%;
        scep_health_check interval=1s timeout=900ms fails=1 uri=/scep;
    }

    # the server that is up is marked down: nginx sends it nothing
    upstream marked {
        server 127.0.0.1:%%FAULT_NDES_4031%% down;
        server 127.0.0.1:%%DEAD%%;
        scep_health_check interval=1s timeout=900ms fails=1 uri=/scep;
    }

    upstream checking {
        server 127.0.0.1:%%HANG%%;
        scep_health_check interval=60s timeout=5s fails=1 uri=/scep
                          mandatory;
    }

    server {
        listen 127.0.0.1:%%OTHER%%;
        access_log off;

        location / {
            return 200 "the other server's page\n";
        }
    }

    server {
        listen 127.0.0.1:%%GW%%;
        server_name gw.example;
        access_log %%DIR%%/logs/reason.log reason;

        scep_retry_after 42;
        scep_status_page https://$server_name/scep-status;

        location = /certsrv/mscep/mscep.dll {
            scep on;
            scep_log_level warn;
            proxy_pass http://ndes/scep;
        }

        # a variable the client sets: $uri, percent-decoded
        location /c/ {
            scep on;
            scep_status_page https://$server_name/s$uri;
            proxy_pass http://ndes/scep;
        }

        # "" cancels the server's status page
        location = /unchecked {
            scep on;
            scep_status_page "";
            proxy_pass http://127.0.0.1:%%FAULT_NDES_4031%%/scep;
        }

        location = /denied {
            scep on;
            deny all;
            error_page 403 /denied.html;
            proxy_pass http://ndes/scep;
        }

        location = /denied-errors {
            scep on;
            deny all;
            error_page 403 = @errors;
            proxy_pass http://ndes;
        }

        location @errors {
            proxy_pass http://127.0.0.1:%%OTHER%%;
        }

        location = /marked {
            scep on;
            proxy_pass http://marked/scep;
        }

        location = /checking {
            scep on;
            proxy_pass http://checking/scep;
        }

        # the SCEP URL as a real browser opens it, in a log of its own
        location = /browser/mscep.dll {
            scep on;
            access_log %%DIR%%/logs/browser.log browser;
            proxy_pass http://ndes/scep;
        }

        location = /off {
            scep on;
            scep_browser_test off;
            proxy_pass http://ndes/scep;
        }

        # rewrite ... last from one "scep on" location to another: the
        # answer is the second's
        location = /first {
            scep on;
            scep_status_page https://first.example/;
            rewrite ^ /second last;
        }

        location = /second {
            scep on;
            scep_status_page https://second.example/;
            proxy_pass http://ndes/scep;
        }

        # rewrite ... last to a location without "scep on", and to one
        # with the test off: their answers, not the browser test
        location = /to-plain {
            scep on;
            rewrite ^ /plain last;
        }

        location = /plain {
            proxy_pass http://ndes/scep;
        }

        location = /to-off {
            scep on;
            rewrite ^ /off last;
        }

        location = /redirect {
            error_page 418 = @ndes;
            return 418;
        }

        location @ndes {
            scep on;
            proxy_pass http://ndes;
        }

        location = /denied.html {
            root %%DIR%%/html;
        }

        location = /status {
            scep_status;
            access_log off;
        }
    }
}
CONF

$conf =~ s/%%HANG%%/%%$hang->{name}%%/g;
$t->start_nginx($conf);

my $gw = $t->port('GW');
my $p = '/certsrv/mscep/mscep.dll';

my $chromium = SCEPTest::chromium_path();

# what headless Chromium shows of the SCEP URL, as an admin following
# Microsoft's guide opens it, and the line the gateway logged for it
sub chromium {
    my $dom = $t->chromium("http://127.0.0.1:$gw/browser/mscep.dll",
                           '--dump-dom');
    my @lines = grep { /HeadlessChrome/ }
                split /\n/, $t->read_file('logs/browser.log') // '';
    return ($dom, $lines[-1] // '', scalar @lines);
}

# without Chromium its checks are skipped, or fail where the suite must
# run whole (TEST_SCEP_NO_SKIP, as in CI)
sub no_chromium {
    my ($n) = @_;
    fail("no $chromium (TEST_SCEP_NO_SKIP is set)") if $ENV{TEST_SCEP_NO_SKIP};
    skip "no $chromium (make deps installs chromium)", $n;
}

sub req {
    my ($method, $uri, $body) = @_;
    return $t->request($gw, $method, $uri, $body, 'gw.example');
}

# the requests that reached the back end, but the probes'
sub reached {
    return grep { !/&message=default / }
           grep { /^\d+ request / }
           split /\n/, $t->read_file("logs/$ndes->{name}.log");
}

# "mandatory", and the only server not answered yet: not up (asked
# first, well within the probe's timeout)
is($t->status_json($gw)->{upstreams}{checking}{peers}[0]{state}, 'checking',
   'the server is still checking');
my $r = req('GET', '/checking');
is($r->{status}, 503, 'a bare GET while the only server is checking: 503');
like($r->{body}, qr/^back ends up: 0 of 1$/m, 'none of one');

# the first probe passes: the back end is up
my $end = time + 10;
while (time < $end) {
    last if ($t->status_json($gw)->{upstreams}{ndes}{peers}[0]{last_result}
             // '') eq 'pass';
    sleep 0.1;
}

# a real browser, as Microsoft's guide has the admin do it
my $browsed = 0;
SKIP: {
    no_chromium(4) unless -x $chromium;
    my ($dom, $line, $n) = chromium();
    $browsed = $n;
    like($line, qr/^403 "browser_test" "-" /,
         'Chromium, a back end up: 403, browser_test, no Retry-After')
        or diag($t->read_file('logs/chromium.log'));
    like($dom, qr/browser_test: a SCEP endpoint behind a gateway/,
         'Chromium shows what this is');
    like($dom, qr/back ends up: 1 of 1/, 'and how many back ends are up');
    is($n, 1, 'one request of the browser reached the SCEP URL');
}

my $before = $t->status_json($gw)->{requests};

$r = req('GET', $p);
is($r->{status}, 403, 'a bare GET while a back end is up: 403, as NDES');
is($r->{headers}{'content-type'}, 'text/plain', 'text/plain');
like($r->{body}, qr/^browser_test: a SCEP endpoint behind a gateway/,
     'the body says what this is');
like($r->{body}, qr/^back ends up: 1 of 1$/m, 'how many back ends are up');
like($r->{body}, qr{^status page: https://gw\.example/scep-status$}m,
     'and where the status page is');
ok(!defined $r->{headers}{'retry-after'}, 'no Retry-After on the 403');
my $no_intune = "intune: the gateway's probes do not check the Intune"
                . ' connector (scep_health_check ... intune)';
like($r->{body}, qr/^\Q$no_intune\E$/m,
     'and that the probes do not check the Intune connector');
is($r->{headers}{'x-content-type-options'}, 'nosniff', 'nosniff');
is($r->{headers}{'cache-control'}, 'no-store', 'no-store');
my $get_length = length $r->{body};

$r = req('HEAD', $p);
is($r->{status}, 403, 'HEAD: 403');
is($r->{body}, '', 'HEAD: no body');
is($r->{headers}{'content-length'}, $get_length,
   "HEAD: the length of the GET's body");

$r = req('GET', "$p?");
is($r->{status}, 403, 'an empty query string is bare too');

# what is not bare stays a rejection
$r = req('GET', "$p?message=abc");
is($r->{status}, 400, 'a query string without operation: 400');
like($r->{body}, qr/^missing_operation: /, 'missing_operation');
is($r->{headers}{'x-content-type-options'}, 'nosniff', 'a rejection: nosniff');
is($r->{headers}{'cache-control'}, 'no-store', 'a rejection: no-store');
$r = req('POST', $p, 'x');
is($r->{status}, 400, 'a POST without a query string: 400');
like($r->{body}, qr/^missing_operation: /, 'missing_operation');

# an upstream without health checks: the gateway does not know
$r = req('GET', '/unchecked');
is($r->{status}, 403, 'no scep_health_check: 403');
like($r->{body}, qr/^back ends: not health-checked by the gateway$/m,
     'and it says the gateway does not check them');
unlike($r->{body}, qr/status page/,
       'no status page where scep_status_page "" cancels the inherited one');

# access control first: deny, and the admin's error_page
$r = req('GET', '/denied');
is($r->{status}, 403, 'deny: 403');
is($r->{body}, "the admin's page\n", "deny's error_page, not the gateway's");

# deny, and an error_page that passes the request on: not the browser
# test, nor passed on unchecked, but refused as "?message=abc" is there
$r = req('GET', '/denied-errors');
is($r->{status}, 400, 'deny with error_page 403 = @errors: 400');
like($r->{body}, qr/^missing_operation: /,
     'missing_operation, not the browser test');

# scep_browser_test off: the 400 of before
$r = req('GET', '/off');
is($r->{status}, 400, 'scep_browser_test off: 400');
like($r->{body}, qr/^missing_operation: /, 'missing_operation');

# a redirect to a named location that passes requests on
$r = req('GET', '/redirect');
is($r->{status}, 403, 'redirected to a "scep on" location: answered there');
like($r->{body}, qr/^browser_test: /, 'by the gateway');

# a bare GET with a body nginx refuses: nginx's 400, no browser test
$r = $t->get($gw, "GET $p HTTP/1.1\r\nHost: gw.example\r\n"
                  . "Connection: close\r\nTransfer-Encoding: chunked\r\n"
                  . "\r\nzz\r\n");
is($r->{status}, 400, 'a bare GET with a bad chunked body: 400');
unlike($r->{body}, qr/browser_test/, "nginx's, not the browser test's");

# rewrite ... last to another "scep on" location: that one's status page
$r = req('GET', '/first');
is($r->{status}, 403, 'rewritten to another "scep on" location: 403');
like($r->{body}, qr{^status page: https://second\.example/$}m,
     "the status page of the location that answers");

# rewrite ... last keeps the context: the location it lands in decides
$r = req('GET', '/to-plain');
is($r->{status}, 400, 'rewritten to a location without "scep on": 400');
like($r->{body}, qr/^missing_operation: /, 'missing_operation');
$r = req('GET', '/to-off');
is($r->{status}, 400, 'rewritten to "scep_browser_test off": 400');
like($r->{body}, qr/^missing_operation: /, 'missing_operation');

# a real request still gets through
$r = req('GET', "$p?operation=GetCACaps");
is($r->{status}, 200, 'GetCACaps passes');

is_deeply([map { /request (.*)/ } reached()],
          ['GET /scep?operation=GetCACaps HTTP/1.0'],
          'no browser test reached the back end');

my @log = $t->lines('logs/reason.log', 15);
is((grep { /^\Q$p\E 403 "browser_test"$/ } @log), 3,
   '$scep_reject_reason is browser_test')
    or diag(join "\n", @log);
ok((grep { m{^/denied\.html 403 "-"$} } @log),
   'not for a request that deny refused') or diag(join "\n", @log);
ok((grep { m{^/redirect 403 "browser_test"$} } @log),
   'and after a redirect') or diag(join "\n", @log);
ok((grep { m{^/denied-errors 400 "missing_operation"$} } @log),
   'not for a request sent to an error_page') or diag(join "\n", @log);
ok((grep { m{^/plain 400 "missing_operation"$} } @log),
   'nor for one rewritten out of "scep on"') or diag(join "\n", @log);
ok((grep { /^\Q$p\E 400 "-"$/ } @log),
   'nor for one whose body nginx refused') or diag(join "\n", @log);

my $said = 'scep: browser test (GET) answered 403, 1 of 1 back ends up';
is($t->count_error_log(qr/\[warn\] .*\Q$said\E/),
   2, "the error log says so at the location's scep_log_level");
is($t->count_error_log(qr/\[warn\] .*browser test \(HEAD\) answered 403/),
   1, 'and names the method');
is($t->count_error_log(qr/\[info\] .*browser test \(GET\) answered 403/),
   3 + $browsed, 'at info in locations without scep_log_level');

# counted apart
my $after = $t->status_json($gw)->{requests};
is($after->{browser_tests} - $before->{browser_tests}, 6,
   'the JSON counts the browser tests');
ok(!exists $after->{rejected}{browser_test}, 'not among the rejections');
is($after->{rejected}{missing_operation}
   - $before->{rejected}{missing_operation}, 6,
   'which count only the rejections');

my $prom = $t->get($gw, '/status?format=prometheus')->{body};
my $total = 7 + $browsed;
like($prom, qr/^scep_browser_tests_total $total$/m, 'Prometheus counts them');
unlike($prom, qr/reason="browser_test"/, 'and not as rejections');

# "down" in the upstream: never up, though it passes its probes
my $end2 = time + 10;
while (time < $end2) {
    last if ($t->status_json($gw)->{upstreams}{marked}{peers}[1]{last_result}
             // '') eq 'fail';
    sleep 0.1;
}
$r = req('GET', '/marked');
is($r->{status}, 503, 'the server up is marked down: 503');
like($r->{body}, qr/^back ends up: 0 of 2$/m, 'none of two up');
is(req('GET', '/marked?operation=GetCACaps')->{status}, 503,
   'as a real request gets');
my $marked = $t->status_json($gw)->{upstreams}{marked}{peers};
is($marked->[0]{state}, 'up', 'the status page: its probes pass');
ok($marked->[0]{down}, 'and "down": true says that nginx sends it nothing');
ok(defined $marked->[1]{down} && !$marked->[1]{down},
   '"down": false for a server not marked');
my $marked_prom = $t->get($gw, '/status?format=prometheus')->{body};
like($marked_prom,
     qr/^scep_peer_up\{upstream="marked",peer="127\.0\.0\.1:$ndes->{port}"\} 0$/m,
     'Prometheus: scep_peer_up 0 for it, so that ScepNoHealthyBackend fires');
like($marked_prom,
     qr/^scep_peer_state\{upstream="marked",peer="127\.0\.0\.1:$ndes->{port}",state="up"\} 1$/m,
     'and scep_peer_state what the probes found');

# no back end up: 503 with Retry-After
$t->stop_backend($ndes);
ok($t->wait_error_log(qr/in upstream "ndes" is down/, 10),
   'the back end is down');

$r = req('GET', $p);
is($r->{status}, 503, 'a bare GET with no back end up: 503');
is($r->{headers}{'retry-after'}, 42, 'with Retry-After');
like($r->{body}, qr/^browser_test: .*no SCEP server behind it is up/,
     'the body says so');
like($r->{body}, qr/^back ends up: 0 of 1$/m, 'none of one');

$r = req('HEAD', $p);
is($r->{status}, 503, 'HEAD: 503');
is($r->{headers}{'retry-after'}, 42, 'HEAD: with Retry-After');

$after = $t->status_json($gw)->{requests};
is($after->{browser_tests} - $before->{browser_tests}, 9,
   'counted as browser tests');
is($after->{no_healthy_backend} - $before->{no_healthy_backend}, 1,
   'not as no_healthy_backend: only the GetCACaps of /marked');

SKIP: {
    no_chromium(3) unless -x $chromium;
    my ($dom, $line, $n) = chromium();
    like($line, qr/^503 "browser_test" "42" /,
         'Chromium, no back end up: 503 with Retry-After')
        or diag($t->read_file('logs/chromium.log'));
    like($dom, qr/no SCEP server behind it is up/, 'Chromium shows it');
    like($dom, qr/back ends up: 0 of 1/, 'none of one');
}

# a client's CR, LF and bytes that are not ASCII in the status page's
# variables: percent-encoded, no line of the client's in the answer
$r = req('GET', '/c/x%0D%0Abrowser_test:%20fake%09%C3%A9%7F');
like($r->{body}, qr/^status page: /m, 'the status page line');
unlike($r->{body}, qr/^browser_test: fake/m,
       'a LF in $uri adds no line to the body');
my $escaped = 'https://gw.example/s/c/x%0D%0Abrowser_test: fake%09%C3%A9%7F';
like($r->{body}, qr/^status page: \Q$escaped\E$/m,
     'control characters and non-ASCII bytes percent-encoded');

$t->stop;
done_testing;
