#!/usr/bin/perl

# scep_status ?format=html: the page for a browser.  Checked as served
# (one self-contained document, a Content-Security-Policy that allows its
# own style and script by hash and nothing else) and as a real browser
# renders it: headless Chromium loads the page of a gateway with two back
# ends, one of them stopped, and the rendered DOM must show both with
# their states and the stopped one's reason.  Back ends whose failure
# reason holds markup (<script>, <img onerror>) must show it as text,
# with nothing run.  Every tile at the top must show the number that the
# JSON it was drawn from has, and the words under it: the test reads the
# same JSON while the counters stand still, and finds each tile's value
# there itself.  So must each back end's tiles of enrollments issued
# and refused in the last 10 minutes, after one enrollment issued and
# one refused by a real back end; a hand-made JSON with outcomes, served as the page's own location's,
# checks those tiles, the highlight of a back end that refuses most,
# and the chart of outcomes, on any gateway.  Screenshots of both are
# kept in the test's folder and in build/screenshots/.

use strict;
use warnings;

use Digest::SHA qw(sha256_base64);
use File::Copy qw(copy);
use File::Path qw(make_path);
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $chromium = SCEPTest::chromium_path();
plan skip_all => "no $chromium (make deps installs chromium)"
    unless -x $chromium;

my $t = SCEPTest->new;

my $b0 = $t->start_backend;
my $b1 = $t->start_backend;

# a GetCACert answer that parses, for the fault daemons
my $start = strftime('%Y%m%d%H%M%SZ', gmtime(time - 86400));
my $bundle = $t->ca_ra_bundle('good', $start,
                              strftime('%Y%m%d%H%M%SZ',
                                       gmtime(time + 200 * 86400)));
# an RA certificate that expires in 5 days: highlighted
my $soon = $t->ca_ra_bundle('soon', $start,
                            strftime('%Y%m%d%H%M%SZ',
                                     gmtime(time + 5 * 86400 + 3600)));

# Markup in a failure reason: the probe quotes an unexpected content type
# of GetCACert.  Either would mark the body if it ever ran.
my $script = q{<script>document.body.dataset.pwned='script'</script>};
my $img = q{<img src=x onerror=document.body.dataset.pwned='img'>};
my $fs = $t->start_fault('type', $bundle, $script);
my $fi = $t->start_fault('type', $bundle, $img);
my $fc = $t->start_fault('certs', $soon);

my $hc = 'interval=500ms timeout=300ms uri=/scep';

# A gateway's JSON with what its back ends answered (README,
# "scep_status"), by hand: one back end issues, one refuses most, one
# has no counts, one in an upstream named with markup.
sub outcomes {
    my ($issued, $refused, $pending) = @_;
    return {
        issued => $issued * 3, success_other => 0, pending => $pending,
        refused => { total => $refused * 2, badAlg => 0,
                     badMessageCheck => 0, badRequest => $refused * 2,
                     badTime => 0, badCertId => 0, unknown => 0 },
        checks_failed => { not_certrep => 0, bad_signature => 0,
                           unknown_signer => 0, transaction_mismatch => 0,
                           nonce_mismatch => 0 },
        last_10m => { issued => $issued, refused => $refused },
    };
}
my $hostile_up = q{<img src=x onerror=document.body.dataset.pwned=1>};
my %made = (
    gateway => { module_version => '0.1.0', nginx_version => '1.0.0',
                 workers => 1, started => time - 100, uptime => 100,
                 generation => 1 },
    requests => { total => 0 },
    upstreams => {
        made => {
            outcomes => outcomes(7, 9, 2),
            peers => [
                { address => '192.0.2.1:443', state => 'up',
                  last_change => time - 100,
                  outcomes => outcomes(7, 1, 2) },
                { address => '192.0.2.2:443', state => 'up',
                  last_change => time - 100,
                  outcomes => outcomes(0, 8, 0) },
                { address => '192.0.2.3:443', state => 'up',
                  down => JSON::PP::true, last_change => time - 100,
                  limit => { max => 8, in_flight => 3, waiting => 31,
                             busy => 4 } },
            ],
        },
        $hostile_up => {
            peers => [ { address => '192.0.2.4:443', state => 'up',
                         last_change => time - 100,
                         outcomes => outcomes(5, 0, 0) } ],
        },
    },
);
# in the configuration, between single quotes: it has none
my $made = JSON::PP->new->encode(\%made);

$t->start_nginx(<<"CONF");
worker_processes 2;

http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    limit_req_zone \$binary_remote_addr zone=lim:1m rate=1r/m;

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        server 127.0.0.1:%%BACKEND1%%;
        scep_health_check $hc;
    }

    upstream hostile {
        server 127.0.0.1:$fs->{port};
        server 127.0.0.1:$fi->{port};
        scep_health_check $hc;
    }

    upstream expiring {
        server 127.0.0.1:$fc->{port};
        scep_health_check $hc ra_expiry_warn=30d;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            scep_ca_cache on;
            proxy_pass http://ndes;
        }

        location = /limited {
            scep on;
            limit_req zone=lim;
            limit_req_status 429;
            proxy_pass http://ndes;
        }

        # both back ends down: 503
        location = /hostile {
            scep on;
            proxy_pass http://hostile;
        }

        location = /status {
            scep_status;
            allow 127.0.0.1;
            deny all;
        }

        # the page, reading a hand-made JSON as its location's
        location = /made {
            if (\$arg_format = html) {
                rewrite ^ /made-page last;
            }
            default_type application/json;
            return 200 '$made';
        }

        location = /made-page {
            internal;
            scep_status;
        }
    }
}
CONF

my $gw = $t->port('GW');
my $host = '127\.0\.0\.1';

for my $f ($fs, $fi) {
    ok(defined $t->wait_error_log(
           qr/$host:$f->{port} in upstream "hostile" is down: GetCACert: (?:unexpected content type|Content-Type) "</,
           10),
       "the back end with markup in its content type is down ($f->{port})");
}

$t->stop_backend($b1);
ok(defined $t->wait_error_log(
       qr/$host:$b1->{port} in upstream "ndes" is down: GetCACaps: connect/,
       10),
   'the stopped back end is logged down');

# ------------------------------------------------------------------
# the page as served

my $r = $t->get($gw, '/status?format=html');
is($r->{status}, 200, 'format=html: 200');
is($r->{headers}{'content-type'}, 'text/html; charset=utf-8',
   'Content-Type: text/html; charset=utf-8');
is($r->{headers}{'x-content-type-options'}, 'nosniff',
   'X-Content-Type-Options: nosniff');
is($r->{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');

my $page = $r->{body};
my @scripts = $page =~ m{<script\b([^>]*)>(.*?)</script>}gs;
is(scalar @scripts, 2, 'one script element');
is($scripts[0], '', 'the script is inline: no src');
my ($style) = $page =~ m{<style>(.*?)</style>}s;
ok(defined $style, 'one inline style sheet');
unlike($page, qr{<link\b|\@import|\@font-face|url\(|<iframe|<object}i,
       'no external style, font, frame or object');
unlike($page, qr{<[^>]+\son[a-z]+\s*=}i, 'no inline event handler');
unlike($page, qr{<[^>]+\sstyle\s*=}i, 'no style attribute');
unlike($page, qr{\binnerHTML\b|\bouterHTML\b|insertAdjacentHTML|document\.write|\beval\(}, 'the script builds no markup from strings');

my $csp = $r->{headers}{'content-security-policy'} // '';
my %csp = map { my ($k, @v) = split ' '; ($k => "@v") } split /;\s*/, $csp;
is($csp{'default-src'}, "'none'", "CSP default-src 'none'");
is($csp{'script-src'}, "'sha256-" . sha256_base64($scripts[1] // '') . "='",
   'CSP script-src: the hash of the inline script, and nothing else');
is($csp{'style-src'}, "'sha256-" . sha256_base64($style // '') . "='",
   'CSP style-src: the hash of the inline style sheet, and nothing else');
is($csp{'connect-src'}, "'self'", "CSP connect-src 'self'");
is($csp{'frame-ancestors'}, "'none'", "CSP frame-ancestors 'none'");
is($csp{'require-trusted-types-for'}, "'script'",
   'CSP require-trusted-types-for: no markup from strings');
unlike($csp, qr/unsafe-|\*|https?:|data:/, 'CSP: no unsafe-*, wildcard, host');

$r = SCEPTest::http($gw, "HEAD /status?format=html HTTP/1.1\r\n"
                         . "Host: localhost\r\nConnection: close\r\n\r\n");
is($r->{status}, 200, 'HEAD: 200');
is($r->{body}, '', 'HEAD: no body');
is($t->get($gw, '/status?format=html', from => '127.0.0.2')->{status}, 403,
   'allow/deny hold for the page');

# whether the gateway counts what its back ends answer (README,
# "scep_status": "outcomes")
sub has_outcomes {
    my ($d) = @_;
    return scalar grep { $_->{outcomes} }
        map { @{$_->{peers} // []} } values %{$d->{upstreams} // {}};
}

# the JSON it will read, for the reasons to expect
my $s = JSON::PP->new->decode($t->get($gw, '/status')->{body});
my %json;
for my $up (keys %{$s->{upstreams}}) {
    $json{"$up $_->{address}"} = $_ for @{$s->{upstreams}{$up}{peers}};
}

# ------------------------------------------------------------------
# the page in a browser

# a little traffic for the charts while the browser polls
my $load = fork;
die "fork: $!" unless defined $load;
if ($load == 0) {
    my $end = time + 30;
    while (time < $end) {
        $t->get($gw, '/scep?operation=GetCACaps');
        $t->get($gw, '/scep?operation=GetCACert');
        $t->get($gw, '/scep?operation=getcacaps');
        $t->get($gw, '/scep?message=x');
        # 1 rate limited (but the first), 2 rejects, 3 cache hits, 4
        # with no healthy back end and 5 browser tests a round: no two
        # tiles count alike
        $t->get($gw, '/scep?operation=GetCACaps&message=default');
        $t->get($gw, '/scep?operation=GetCACaps&message=default');
        $t->get($gw, '/scep?operation=GetCACert&message=default');
        $t->get($gw, '/scep?operation=GetCACert&message=another-ca');
        $t->get($gw, '/limited?operation=GetCACaps');
        $t->get($gw, '/hostile?operation=GetCACaps') for 1 .. 4;
        $t->get($gw, '/scep') for 1 .. 5;
        sleep 0.05;
    }
    POSIX::_exit(0);
}

# PATH (the status page's location, /status unless given) and options
sub chromium {
    my (@args) = @_;
    my $path = @args && $args[0] =~ m{^/} ? shift @args : '/status';
    return $t->chromium("http://127.0.0.1:$gw$path?format=html",
                        '--window-size=1400,1100', '--hide-scrollbars',
                        @args);
}

# virtual time runs the page's first fetches and polls before the dump
my $dom = chromium('--virtual-time-budget=20000', '--dump-dom');
like($dom, qr{<body[^>]*\bdata-loaded="yes"}, 'the page read the JSON')
    or diag(substr($dom, 0, 2000), $t->read_file('logs/chromium.log'));

# the back ends' rows of a DOM, by "UPSTREAM ADDRESS"
sub rows {
    my ($dom) = @_;
    my %row;
    while ($dom =~ m{<tr ([^>]*)>(.*?)</tr>}gs) {
        my ($attrs, $cells) = ($1, $2);
        my %a = $attrs =~ /([a-z-]+)="([^"]*)"/g;
        next unless $a{'data-peer'};
        my %o;
        while ($cells =~ m{<div\ class="tile\ peer(\ alert)?"
                           \ data-outcome="(\w+)">
                           <div\ class="label">(.*?)</div>
                           <div\ class="value">(.*?)</div>
                           <div\ class="sub">(.*?)</div></div>}gsx)
        {
            $o{$2} = { alert => $1 ? 1 : 0, label => unhtml($3),
                       value => unhtml($4), sub => unhtml($5) };
        }
        $row{unhtml("$a{'data-upstream'} $a{'data-peer'}")} = {
            state    => $a{'data-state'},
            cells    => [ $cells =~ m{<td[^>]*>(.*?)</td>}gs ],
            html     => $cells,
            outcomes => \%o,
        };
    }
    return %row;
}

my %row = rows($dom);

sub unhtml {
    my ($h) = @_;
    $h =~ s/<[^>]*>/ /g;
    $h =~ s/&lt;/</g;
    $h =~ s/&gt;/>/g;
    $h =~ s/&quot;/"/g;
    $h =~ s/&#39;/'/g;
    $h =~ s/&amp;/&/g;
    return $h;
}

my $k0 = "ndes 127.0.0.1:$b0->{port}";
my $k1 = "ndes 127.0.0.1:$b1->{port}";
ok($row{$k0} && $row{$k1}, 'both back ends of ndes have a row');
is($row{$k0}{state}, 'up', 'the running back end: up');
is($row{$k1}{state}, 'down', 'the stopped back end: down');
like($row{$k0}{cells}[1] // '', qr{<span class="state up">up</span>},
     'the running back end: a green "up" badge');
like($row{$k1}{cells}[1] // '', qr{<span class="state down">down</span>},
     'the stopped back end: a red "down" badge');
my $reason1 = $json{$k1}{reason} // 'none';
like($reason1, qr/connect/, "the stopped back end's reason: $reason1");
like(unhtml($row{$k1}{cells}[2] // ''), qr/\Q$reason1\E/,
     "the stopped back end's row shows its reason");
like(unhtml($row{$k0}{cells}[2] // ''), qr/serving requests/,
     'the running back end: in words, serving requests');

# markup from a back end is text
for my $f ([$fs, $script], [$fi, $img]) {
    my ($fault, $markup) = @$f;
    my $k = "hostile 127.0.0.1:$fault->{port}";
    is($row{$k}{state}, 'down', "$k: down");
    my $cell = $row{$k}{cells}[2] // '';
    unlike($cell, qr/<(script|img)\b/i, "$k: no element from the reason");
    like(unhtml($cell), qr/\Q$markup\E/,
         "$k: the reason shown as text, markup and all");
}
my @elems = $dom =~ /<script\b/gi;
is(scalar @elems, 1, 'the page\'s own script is the only script element');
unlike($dom, qr/<img\b/i, 'no img element');
unlike($dom, qr/data-pwned/, 'nothing from a reason ran');

# the certificate that expires in 5 days is highlighted
my $kc = "expiring 127.0.0.1:$fc->{port}";
like($row{$kc}{html} // '', qr{<div class="cert critical"[^>]*>.*?NDES-MSCEP-RA.*?[45] days left}s,
     'the RA certificate 5 days from expiry is highlighted');
like($row{$kc}{html} // '', qr{<div class="cert"[^>]*>.*?NDES-CA.*?\d+ days left}s,
     'the CA certificate with days left, not highlighted');

# the gateway
like(unhtml($dom), qr/127\.0\.0\.1:$gw: nginx \Q$s->{gateway}{nginx_version}\E, module \Q$s->{gateway}{module_version}\E/,
     'the gateway: its address, nginx and module versions');
like($dom, qr{<title>SCEP gateway 127\.0\.0\.1:$gw</title>},
     'the title names the gateway');
like($dom, qr{<div class="label">Workers</div><div class="value">2</div>},
     'the gateway: 2 workers');
like($dom, qr{<div class="label">Reloads</div><div class="value">0</div>},
     'the gateway: 0 reloads');
like($dom, qr{<div class="label">Uptime</div><div class="value">\d+ s</div>},
     'the gateway: its uptime');
for my $c ('Requests per second by operation', 'Rejects per second by reason',
           '429 and 503 per second')
{
    like($dom, qr{<figcaption>\Q$c\E<span class="max">peak [0-9.]+/s</span></figcaption><svg[^>]*class="chart"},
         "a chart: $c");
}
like($dom, qr{<polyline class="s\d" points="[0-9.]+,[0-9.]+ },
     'the charts have points');

# ------------------------------------------------------------------
# what the back ends answered, from the hand-made JSON

{
    my $dom = chromium('/made', '--virtual-time-budget=12000', '--dump-dom');
    like($dom, qr{<body[^>]*\bdata-loaded="yes"}, 'made: the page read it')
        or diag(substr($dom, 0, 2000));
    my %r = rows($dom);
    for my $up (sort keys %{$made{upstreams}}) {
        for my $p (@{$made{upstreams}{$up}{peers}}) {
            my $k = "$up $p->{address}";
            my $o = $r{$k}{outcomes} // {};
            if (!$p->{outcomes}) {
                is_deeply($o, {}, "made: $k: no counts, no tiles");
                like(unhtml($r{$k}{html} // ''), qr/not counted/,
                     "made: $k: in words, not counted");
                next;
            }
            my $m = $p->{outcomes};
            is_deeply($o, {
                issued => { alert => 0, label => 'Issued, 10 min',
                            value => $m->{last_10m}{issued},
                            sub => "$m->{issued} in all, "
                                   . "$m->{pending} pending" },
                refused => { alert => $m->{last_10m}{refused}
                                      > $m->{last_10m}{issued} ? 1 : 0,
                             label => 'Refused, 10 min',
                             value => $m->{last_10m}{refused},
                             sub => "$m->{refused}{total} in all" },
            }, "made: $k: issued $m->{last_10m}{issued}, refused"
               . " $m->{last_10m}{refused} in 10 minutes")
                or diag($r{$k}{html});
        }
    }
    # "down" in the upstream: probed up, but nginx sends it nothing
    my $marked = $r{'made 192.0.2.3:443'} // {};
    like($marked->{cells}[1] // '',
         qr{<span class="state down">marked down</span>},
         'made: a server marked down: a "marked down" badge');
    like(unhtml($marked->{cells}[2] // ''), qr/nginx sends it nothing/,
         'made: and in words');
    like(unhtml($dom), qr/\b2 of 3 up\b/, 'made: not counted as up');
    like(unhtml($dom), qr/3 of 8 in flight, 31 waiting, 4 busy/,
         'made: scep_backend_limit under the requests of its server');
    like(unhtml($dom), qr/upstream \Q$hostile_up\E /,
         'made: an upstream named with markup is shown as text');
    unlike($dom, qr/<img\b|data-pwned/, 'made: nothing of it ran');
    like($dom, qr{<figure id="chart-outcomes"><figcaption>Enrollment outcomes per second<span class="max">peak [0-9.]+/s</span></figcaption><svg[^>]*class="chart"},
         'made: the chart of outcomes');
    like($dom, qr{<span class="sw s1"></span>issued: \d+</span><span class="item"><span class="sw s3"></span>pending: \d+</span><span class="item"><span class="sw s5"></span>refused: \d+</span>},
         'made: issued, pending and refused in its legend');
}
ok(has_outcomes($s), 'the gateway counts what its back ends answer');
like($dom, qr{<figure id="chart-outcomes"><figcaption>Enrollment outcomes per second},
     'so the chart of outcomes is shown');

# the screenshot
my $png = $t->dir . '/dashboard.png';
chromium('--virtual-time-budget=20000', "--screenshot=$png");
my $head = $t->read_file($png);
ok(length($head) > 20000 && substr($head, 0, 8) eq "\x89PNG\r\n\x1a\n",
   'a screenshot of the page (' . length($head) . ' bytes)');
make_path(SCEPTest::root() . '/build/screenshots');
copy($png, SCEPTest::root() . '/build/screenshots/dashboard.png');

# and of the hand-made JSON's, with the back ends' outcomes
my $made_png = $t->dir . '/dashboard-outcomes.png';
chromium('/made', '--virtual-time-budget=12000', "--screenshot=$made_png");
ok(-s $made_png, 'a screenshot of the page with outcomes');
copy($made_png, SCEPTest::root() . '/build/screenshots/dashboard-outcomes.png');

kill 'TERM', $load;
waitpid $load, 0;

# ------------------------------------------------------------------
# each tile against the JSON it was drawn from

sub status {
    return JSON::PP->new->decode($t->get($gw, '/status')->{body});
}

# what the tiles are drawn from: these stand still once the load is over
sub counters {
    my ($d) = @_;
    return JSON::PP->new->canonical->encode(
        [ $d->{requests}, @{$d->{gateway}}{qw(generation workers started)},
          map { [ map { $_->{outcomes} } @{$_->{peers}} ] }
              @{$d->{upstreams}}{sort keys %{$d->{upstreams}}} ]);
}

# enrollments for the outcome counters: one issued, one refused (a
# wrong challenge), both by the running back end of ndes
ok(has_outcomes(status()), 'the JSON counts outcomes');
{
    my $r = $t->post($gw, '/scep?operation=PKIOperation',
                     $t->device_msg('--cn', 'dashboard-issued'));
    is($t->pki_status($r->{body}) // 'none', '0',
       'an enrollment through the gateway, issued');
    $r = $t->post($gw, '/scep?operation=PKIOperation',
                  $t->scep_msg('--challenge', 'wrong', '--cn',
                               'dashboard-refused', '--dialect', 'der'));
    is($t->pki_status($r->{body}) // 'none', '2',
       'an enrollment with a wrong challenge, refused');
}

my ($j1, $prev);
for (1 .. 50) {
    $j1 = status();
    last if $prev && counters($j1) eq counters($prev);
    $prev = $j1;
    sleep 0.2;
}

$dom = chromium('--virtual-time-budget=6000', '--dump-dom');
my $j2 = status();
like($dom, qr{<body[^>]*\bdata-loaded="yes"}, 'the page read the JSON again');
is(counters($j2), counters($j1),
   'the counters stood still while the browser read them');

my %tile;
while ($dom =~ m{<div\ class="tile(?:\ alert)?">
                 <div\ class="label">(.*?)</div>
                 <div\ class="value">(.*?)</div>
                 <div\ class="sub">(.*?)</div></div>}gsx)
{
    $tile{unhtml($1)} = [ unhtml($2), unhtml($3) ];
}

my $q = $j2->{requests};
my $g = $j2->{gateway};
my $c = $q->{ca_cache};
my $sum = sub { my $n = 0; $n += $_ for values %{$_[0] // {}}; $n };

ok($sum->($c->{hits}) > 0 && $q->{rate_limited} > 0
   && $q->{no_healthy_backend} > 0 && $sum->($q->{rejected}) > 0
   && $q->{browser_tests} > 0,
   'the load made cache hits, 429s, 503s, rejects and browser tests')
    or diag(JSON::PP->new->canonical->encode($q));

my %want = (
    'Reloads' => [ $g->{generation} - 1,
                   "configuration generation $g->{generation}" ],
    'Workers' => [ $g->{workers}, 'worker processes' ],
    'Requests' => [ $q->{total},
                    join(', ', map { ($q->{responses}{$_} // 'none') . " $_" }
                                   qw(2xx 4xx 5xx)) ],
    'Rejected' => [ $sum->($q->{rejected}),
                    'answered by the gateway itself' ],
    'Browser tests' => [ $q->{browser_tests},
                         'bare GETs of the SCEP URL, answered 403 or 503' ],
    '429 rate limited' => [ $q->{rate_limited}, 'limit_req' ],
    '503 no healthy back end' => [ $q->{no_healthy_backend},
                                   'no server was up' ],
    'Cache hits' => [ $sum->($c->{hits}),
                      ($c->{misses} // 'none') . ' misses, '
                      . ($c->{stale_hits} // 'none') . ' stale' ],
);

is_deeply([ sort keys %tile ], [ sort 'Uptime', keys %want ],
          'the tiles are those the test knows, each checked below')
    or diag(substr($dom, 0, 3000));

for my $label (sort keys %want) {
    is($tile{$label}[0], $want{$label}[0],
       "tile \"$label\": the JSON's $want{$label}[0]");
    is($tile{$label}[1], $want{$label}[1],
       "tile \"$label\": under it, \"$want{$label}[1]\"");
}

# the uptime the page was given lies between the two the test read (a
# second either way: each worker reads the clock for itself)
my ($shown, $secs) = ($tile{Uptime}[0] // '', 0);
my %unit = (d => 86400, h => 3600, min => 60, s => 1);
$secs += $1 * $unit{$2} while $shown =~ /(\d+) (d|h|min|s)\b/g;
ok($shown =~ /^\d+ s$|^\d+ min \d+ s$/
   && $secs >= $j1->{gateway}{uptime} - 1
   && $secs <= $j2->{gateway}{uptime} + 1,
   "tile \"Uptime\": $shown, the JSON's $j1->{gateway}{uptime} to"
   . " $j2->{gateway}{uptime} s");
is($tile{Uptime}[1],
   'since ' . strftime('%Y-%m-%d %H:%M:%S', localtime $g->{started}),
   'tile "Uptime": under it, the JSON\'s start, in local time');

# each back end's tiles of issued and refused against the JSON
{
    ok(has_outcomes($j2), 'the JSON has each back end\'s outcomes');

    my %r = rows($dom);
    my @checked;
    for my $up (sort keys %{$j2->{upstreams}}) {
        for my $p (@{$j2->{upstreams}{$up}{peers}}) {
            my $m = $p->{outcomes} or next;
            my $o = $r{"$up $p->{address}"}{outcomes} // {};
            push @checked, "$up $p->{address}: "
                . join(', ', map { "$_ " . ($o->{$_}{value} // 'none') }
                                 qw(issued refused));
            is_deeply([ map { $o->{$_}{value} } qw(issued refused) ],
                      [ map { $m->{last_10m}{$_} } qw(issued refused) ],
                      "$up $p->{address}: issued and refused in 10"
                      . ' minutes, as in the JSON');
            is_deeply([ map { $o->{$_}{sub} } qw(issued refused) ],
                      [ "$m->{issued} in all, $m->{pending} pending",
                        "$m->{refused}{total} in all" ],
                      "$up $p->{address}: the totals under them");
        }
    }
    my $ndes = "ndes 127.0.0.1:$b0->{port}";
    ok($r{$ndes}{outcomes}{issued}{value} >= 1
       && $r{$ndes}{outcomes}{refused}{value} >= 1,
       'the running back end of ndes: the enrollments issued and refused')
        or diag(join("\n", @checked));
}

$t->stop;
done_testing;
