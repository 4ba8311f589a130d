#!/usr/bin/perl

# scep_ca_cache sends a back end's Content-Type on to devices, so the
# probes judge it first: a value with a control character (a CR and a
# header of its own after it), one that is no media type, or none at
# all fails the probe with a reason that says so, and nothing of that
# answer is kept or served.  A real back end's answers still are.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;

sub day { strftime('%Y%m%d%H%M%SZ', gmtime(time + $_[0] * 86400)) }

my $bundle = $t->ca_ra_bundle('ndes', day(-1), day(300));

my %bad = (
    caps_cr => ['capstype', "text/plain\rSet-Cookie: x=1",
                'GetCACaps: Content-Type "text/plain?Set-Cookie: x=1" has a'
                . ' control character'],
    cert_cr => ['type', "application/x-x509-ca-ra-cert; a=b\rSet-Cookie: x=1",
                'GetCACert: Content-Type "application/x-x509-ca-ra-cert;'
                . ' a=b?Set-Cookie: x=1" has a control character'],
    caps_esc => ['capstype', "text/plain\e[2J",
                 'GetCACaps: Content-Type "text/plain?[2J" has a control'
                 . ' character'],
    caps_word => ['capstype', 'plain',
                  'GetCACaps: Content-Type "plain" is not a media type'],
    caps_none => ['capstype', '', 'GetCACaps: no Content-Type'],
);

my %fault;
$fault{$_} = $t->start_fault($bad{$_}[0], $bundle, $bad{$_}[1])
    for sort keys %bad;

my $b0 = $t->start_backend;

my $hc = 'interval=300ms timeout=200ms fails=1 passes=1 uri=/scep';

my $ups = join '', map { <<"UPS" } sort keys %bad;
    upstream $_ {
        server 127.0.0.1:$fault{$_}{port};
        scep_health_check $hc;
    }
UPS

my $locs = join '', map { <<"LOC" } sort keys %bad;
        location = /$_ {
            scep on;
            proxy_pass http://$_/scep;
        }
LOC

$t->start_nginx(<<"CONF");
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format cache '\$uri \$scep_cache \$status';

$ups
    upstream good {
        server 127.0.0.1:%%BACKEND0%%;
        scep_health_check $hc;
    }

    server {
        listen 127.0.0.1:%%GW%%;
        access_log %%DIR%%/logs/cache.log cache;

        scep_ca_cache on;

$locs
        location = /good {
            scep on;
            proxy_pass http://good/scep;
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

sub status {
    my $r = $t->get($gw, '/status');
    return eval { $json->decode($r->{body}) } // {};
}

for my $up (sort keys %bad) {
    my $port = $fault{$up}{port};
    my $re = quotemeta($bad{$up}[2]);
    ok(defined $t->wait_error_log(
           qr/127\.0\.0\.1:$port in upstream "$up" is down: $re$/, 10),
       "$up: the probe fails, and the reason says why");
}

# the real back end's answers are kept
my $end = time + 10;
sleep 0.1 while time < $end
                && !status()->{upstreams}{good}{peers}[0]{ca_answer};

my $s = status();
ok($s->{upstreams}{good}{peers}[0]{ca_answer}, 'good: answers kept');

for my $up (sort keys %bad) {
    my $p = $s->{upstreams}{$up}{peers}[0] // {};
    is($p->{state}, 'down', "status: $up is down");
    is($p->{reason}, $bad{$up}[2], "status: $up, the reason");
    is($p->{ca_answer}, undef, "status: $up, no answers kept");
}

my $n = 0;
for my $up (sort keys %bad) {
    for my $op (qw(GetCACaps GetCACert)) {
        my $r = $t->get($gw, "/$up?operation=$op&message=default");
        $n++;
        isnt($r->{status}, 200, "$up $op: not answered from the edge");
        unlike($r->{raw}, qr/Set-Cookie|x=1|\e/i,
               "$up $op: nothing of the back end's header sent");
    }
}

my $r = $t->get($gw, '/good?operation=GetCACaps&message=default');
is($r->{status}, 200, 'good: GetCACaps from the edge');
$n++;

my @log = $t->lines('logs/cache.log', $n);
is(scalar(grep { / HIT / } @log[0 .. $n - 2]), 0,
   'no answer of the faulty back ends served from the edge');
like($log[$n - 1], qr{^/good HIT 200$}, 'the real back end\'s: a HIT');

$t->stop;
done_testing;
