#!/usr/bin/perl

# Active health checks that understand SCEP: a stopped back end is
# marked down within interval x fails and up again within interval x
# passes; back ends that answer HTML 500 or 503 pages, hang, reset, or
# publish an expired RA certificate are marked down with the reason; no
# healthy back end gives 503 with Retry-After; "mandatory" holds traffic
# until the first probe passes.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;

my $b0 = $t->start_backend;
my $b1 = $t->start_backend;

# a CA whose RA certificate expired on 2026-01-02, as NDES's MSCEP-RA
# certificates do after two years
my $expired = $t->ca_ra_bundle('exp', '20250101000000Z', '20260102000000Z');

my %fault;
$fault{$_} = $t->start_fault($_) for qw(html500 html503 html200 hang reset);
$fault{expired} = $t->start_fault('certs', $expired);

# the sanitizer runs (TEST_TIMEOUT_FACTOR) fork and answer slower
my $slow = int($ENV{TEST_TIMEOUT_FACTOR} || 1) || 1;
my $hc = sprintf('interval=%dms timeout=%dms fails=2 passes=2 uri=/scep',
                 500 * $slow, 300 * $slow);

my $faults = join '', map { <<"UP" } sort keys %fault;
    upstream f_$_ {
        server 127.0.0.1:$fault{$_}{port};
        scep_health_check $hc;
    }
UP

$t->start_nginx(<<"CONF");
worker_processes 2;

http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format up '\$upstream_addr \$status';

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        server 127.0.0.1:%%BACKEND1%%;
        scep_health_check $hc;
    }

    upstream late {
        server 127.0.0.1:%%LATE%%;
        scep_health_check $hc mandatory;
    }

$faults
    server {
        listen 127.0.0.1:%%GW%%;
        access_log %%DIR%%/logs/up.log up;

        location = /scep {
            scep on;
            proxy_pass http://ndes;
        }

        location = /expired {
            scep on;
            proxy_pass http://f_expired/scep;
        }

        location = /reset {
            scep on;
            scep_retry_after 45s;
            proxy_pass http://f_reset/scep;
        }

        location = /late {
            scep on;
            proxy_pass http://late/scep;
        }
    }
}
CONF

my $gw = $t->port('GW');
my $host = '127\.0\.0\.1';

# each fault is found, with its reason in words, within interval x fails
# (1 s) and some slack for a busy machine
my %reason = (
    html500 => 'GetCACaps: HTTP 500',
    html503 => 'GetCACaps: HTTP 503',
    html200 => 'GetCACaps: HTML page instead of capabilities',
    hang    => 'GetCACaps: timed out waiting for the answer',
    reset   => 'GetCACaps: connection reset',
    expired => 'GetCACert: RA certificate expired 2026-01-02',
);

for my $f (sort keys %reason) {
    my $took = $t->wait_error_log(
        qr/\[warn\].*scep health check: $host:$fault{$f}{port} in upstream "f_$f" is down: \Q$reason{$f}\E$/,
        5);
    ok(defined $took, "$f: marked down: $reason{$f}");
}

# the real back ends stay up
is($t->count_error_log(qr/in upstream "ndes" is down/), 0,
   'healthy back ends are not marked down');

# no healthy back end: 503, Retry-After, never nginx's 502
my $r = $t->get($gw, '/reset?operation=GetCACaps');
is($r->{status}, 503, 'no healthy back end: 503');
is($r->{headers}{'retry-after'}, '45', 'with Retry-After');
like($r->{body}, qr/^no_healthy_backend: /, 'and a reason');

$r = $t->get($gw, '/expired?operation=GetCACert');
is($r->{status}, 503, 'a back end with an expired RA certificate gets no'
                      . ' traffic');

# mandatory: nothing until the first probe passes
$r = $t->get($gw, '/late?operation=GetCACaps');
is($r->{status}, 503, 'mandatory: 503 before any probe has passed');
my $late = $t->start_backend(name => 'LATE');
ok(defined $t->wait_error_log(
       qr/$host:$late->{port} in upstream "late" is up/, 5),
   'mandatory: up after its first passing probe');
is($t->get($gw, '/late?operation=GetCACaps')->{status}, 200,
   'mandatory: traffic once it passed');

# a stopped back end: down within interval x fails, no traffic, back up
# within interval x passes
$t->stop_backend($b1);
my $down = $t->wait_error_log(
    qr/$host:$b1->{port} in upstream "ndes" is down: GetCACaps: connect\(\) failed/,
    5);
ok(defined $down, 'stopped back end marked down');
ok(defined $down && $down < 2.5 * $slow,
   'within interval x fails and slack (' . ($down // 'never') . ' s)');

my $ok = 0;
for (1 .. 20) {
    $ok++ if $t->get($gw, '/scep?operation=GetCACaps')->{status} == 200;
}
is($ok, 20, 'every request answered while it is down');
my @up = $t->lines('logs/up.log', 20);
ok(!(grep { /:$b1->{port}/ } @up[-20 .. -1]),
   'none of them was sent to the stopped back end');

$t->restart_backend($b1);
my $back = $t->wait_error_log(
    qr/$host:$b1->{port} in upstream "ndes" is up/, 5);
ok(defined $back && $back < 2.5 * $slow,
   'marked up again within interval x passes and slack ('
   . ($back // 'never') . ' s)');

my %seen;
for (1 .. 10) {
    $t->get($gw, '/scep?operation=GetCACaps');
}
@up = $t->lines('logs/up.log', 30);
$seen{$_}++ for map { /:(\d+) / ? $1 : () } @up[-10 .. -1];
ok($seen{$b1->{port}}, 'and it takes traffic again');

# state changes are logged once, not at every probe
is($t->count_error_log(qr/$host:$fault{html500}{port} in upstream "f_html500" is down/),
   1, 'a down back end is reported once');

$t->stop;
done_testing;
