#!/usr/bin/perl

# scep_ca_cache with healthy back ends that disagree: one publishes an RA
# certificate renewed later than the other's, both under CAs of
# scep_trusted_ca.  The newest RA certificate's answer is served; the
# status page flags the upstream (JSON and Prometheus) and names the back
# end that differs; the error log says so at warn once, and once again
# when they agree (the renewed one gone).  Without scep_trusted_ca
# nothing is served while they disagree: t/129.

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

# the old RA certificate issued 300 days ago, the renewed one yesterday;
# the old one's notAfter is the later one, as happens when a template's
# validity was shortened: newest means issued last
my $old = $t->ca_ra_bundle('old', day(-300), day(400));
my $new = $t->ca_ra_bundle('new', day(-1), day(300));

# the two bundles were made by CAs of their own
$t->write_file('trusted.pem',
               $t->read_file($t->dir . '/old/ca.pem')
               . $t->read_file($t->dir . '/new/ca.pem'));

my $f_old = $t->start_fault('certs', $old);
my $f_new = $t->start_fault('certs', $new);

my $hc = 'interval=300ms timeout=200ms fails=1 passes=1 uri=/scep';

$t->start_nginx(<<"CONF");
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    upstream ndes {
        server 127.0.0.1:$f_old->{port};
        server 127.0.0.1:$f_new->{port};
        scep_health_check $hc;
        scep_trusted_ca %%DIR%%/trusted.pem;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            scep_ca_cache on;
            proxy_pass http://ndes;
        }

        location = /status {
            scep_status;
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

sub peer {
    my ($s, $port) = @_;
    my ($p) = grep { $_->{address} eq "127.0.0.1:$port" }
              @{ $s->{upstreams}{ndes}{peers} // [] };
    return $p // {};
}

my $warned = $t->wait_error_log(
    qr/\[warn\].*scep_ca_cache: healthy back ends of upstream "ndes" disagree.*serving the answers of 127\.0\.0\.1:$f_new->{port}, whose RA certificate is newest/,
    10);
ok(defined $warned, 'disagreement logged at warn, naming the back end'
   . ' served');

my $new_der = $t->read_file($new);
my $old_der = $t->read_file($old);

for (1 .. 4) {
    my $r = $t->get($gw, '/scep?operation=GetCACert&message=default');
    ok($r->{body} eq $new_der, 'the answer with the newest RA certificate'
       . ' is served');
}

# GetCACaps, which no anchor vouches for: not one back end's for all
my $bypassed = status()->{requests}{ca_cache}{bypassed};
my $caps = $t->get($gw, '/scep?operation=GetCACaps&message=default');
is($caps->{status}, 200, 'GetCACaps while they disagree: 200');
is(status()->{requests}{ca_cache}{bypassed}, $bypassed + 1,
   'passed to a back end, not chosen by the RA certificate\'s date');

my $s = status();
is($s->{upstreams}{ndes}{answers_disagree}, JSON::PP::true,
   'status: the upstream is flagged');
is(peer($s, $f_old->{port})->{ca_answer}{differs}, JSON::PP::true,
   'status: the old one differs');
is(peer($s, $f_new->{port})->{ca_answer}{differs}, JSON::PP::false,
   'status: the served one does not');
ok(peer($s, $f_new->{port})->{ca_answer}{ra_not_before}
   > peer($s, $f_old->{port})->{ca_answer}{ra_not_before},
   'status: the RA certificates\' notBefore');

my $r = $t->get($gw, '/status?format=prometheus');
like($r->{body}, qr/^scep_upstream_answers_disagree\{upstream="ndes"\} 1$/m,
     'prometheus: flagged');

# many probes later, still one line
sleep 1.5;
is($t->count_error_log(qr/scep_ca_cache: .* disagree/), 1,
   'logged once, not at every probe');

# the renewed back end goes: the healthy ones agree again
kill 'TERM', $f_new->{pid};
ok(defined $t->wait_error_log(
       qr/\[warn\].*scep_ca_cache: healthy back ends of upstream "ndes" agree on GetCACaps and GetCACert again/,
       5),
   'agreement logged at warn');

$r = $t->get($gw, '/scep?operation=GetCACert&message=default');
ok($r->{body} eq $old_der, 'the healthy back end\'s answer is served');
is(status()->{upstreams}{ndes}{answers_disagree}, JSON::PP::false,
   'status: the flag is cleared');
sleep 1;
is($t->count_error_log(qr/scep_ca_cache: .* agree .* again/), 1,
   'logged once');

$t->stop;
done_testing;
