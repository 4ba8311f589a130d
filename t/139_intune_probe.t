#!/usr/bin/perl

# scep_health_check ... intune: each probe also opens the SCEP URL as
# Microsoft's troubleshooting does in a browser, and reads the answer as
# that guide does: 403 passes; NDES's generic page, 503, any other
# status and a hang take the server down, with the guide's reason on
# the status page and in the error log; the page's text is found in any
# case, and a 200 without it is no 403 either.  Without intune the
# generic page is fine.  The browser test says whether the probes check
# the connector.  nginx -t refuses bad uses of the parameter.

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

my $bundle = $t->ca_ra_bundle('ndes', day(-1), day(300));

my %reason = (
    page => 'NDES answers its generic page: the Intune Certificate'
            . ' Connector is not installed correctly (SetupMsi.log)',
    503 => 'SCEP application pool stopped (HTTP 503): intermediate CAs'
           . ' in the Trusted Root store, unreachable CRL URLs, or Windows'
           . ' authentication on CertificateRegistrationSvc',
    500 => 'bare GET: HTTP 500, where NDES with the Intune Certificate'
           . ' Connector answers 403',
    other => 'bare GET: HTTP 200, where NDES with the Intune Certificate'
             . ' Connector answers 403',
    hang => 'bare GET: timed out waiting for the answer',
);
$reason{lower} = $reason{page};

my %d;
for my $state (qw(403 page lower other 503 500 hang)) {
    $d{$state} = $t->start_fault("ndes=$state", $bundle);
}
my $plain = $t->start_fault('ndes=page', $bundle);

my $ups = '';
for my $state (sort keys %d) {
    $ups .= "    upstream u$state {\n"
            . "        server 127.0.0.1:%%$d{$state}{name}%%;\n"
            . "        scep_health_check interval=1s timeout=900ms fails=1"
            . " uri=/scep intune;\n"
            . "    }\n";
}

$t->start_nginx(<<"CONF");
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

$ups
    upstream plain {
        server 127.0.0.1:%%$plain->{name}%%;
        scep_health_check interval=1s timeout=900ms fails=1 uri=/scep;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /page {
            scep on;
            proxy_pass http://upage/scep;
        }

        location = /intune {
            scep on;
            proxy_pass http://u403/scep;
        }

        location = /status {
            scep_status;
        }
    }
}
CONF

my $gw = $t->port('GW');

sub peer {
    my ($up) = @_;
    return $t->status_json($gw)->{upstreams}{$up}{peers}[0] // {};
}

# every back end probed at least twice, so that one probe has run whole
my $end = time + 20;
while (time < $end) {
    last unless grep { (peer($_)->{checks} // 0) < 2 }
                map { "u$_" } keys %d;
    sleep 0.2;
}

my $p = peer('u403');
is($p->{state}, 'up', '403 to the bare GET: up');
is($p->{last_result}, 'pass', 'the probe passes');
ok(!defined $p->{reason}, 'with no reason');
ok((grep { m{ request GET /scep HTTP/1\.0$} }
    split /\n/, $t->read_file("logs/$d{403}{name}.log")),
   'the probe sent the bare GET');
ok((grep { /operation=GetCACert/ }
    split /\n/, $t->read_file("logs/$d{403}{name}.log")),
   'and GetCACaps and GetCACert after it');

for my $state (qw(page lower other 503 500 hang)) {
    $p = peer("u$state");
    is($p->{state}, 'down', "$state: down");
    is($p->{reason}, $reason{$state}, "$state: the status page says why");
    ok($t->count_error_log(qr/scep health check: \S+ in upstream "u$state"/
                           . qr/ is down: \Q$reason{$state}\E$/),
       "$state: and so does the error log");
}

unlike($t->read_file("logs/$d{page}{name}.log"), qr/operation=GetCACaps/,
       'a failed bare GET ends the probe');

# without intune the generic page is normal, and never asked for
$p = peer('plain');
is($p->{state}, 'up', 'without intune: up');
ok(!defined $p->{reason}, 'without intune: no reason');
ok(!(grep { m{ request GET /scep HTTP} }
     split /\n/, $t->read_file("logs/$plain->{name}.log")),
   'without intune: no bare GET');

# the JSON says which upstreams' probes ask the bare GET
my $ups_json = $t->status_json($gw)->{upstreams};
ok($ups_json->{u403}{intune}, 'the status page: "intune": true with intune');
ok(defined $ups_json->{plain}{intune} && !$ups_json->{plain}{intune},
   'and false without it');

# the browser test through the gateway reads the probes' verdict
my $r = $t->get($gw, '/page');
is($r->{status}, 503, 'a browser test where NDES shows its page: 503');
my $checked = "intune: the Intune connector's answer is checked by the"
              . " gateway's probes";
like($r->{body}, qr/^\Q$checked\E$/m, 'the body says it was checked');

$r = $t->get($gw, '/intune');
is($r->{status}, 403, 'a browser test where the connector is in place: 403');
like($r->{body}, qr/^back ends up: 1 of 1$/m, 'one of one up');
like($r->{body}, qr/^\Q$checked\E$/m, 'checked by the probes');

# nginx -t
my %bad = (
    'intune=on' => qr/"intune" of "scep_health_check" is a flag and takes/
                   . ' no value: "intune=on"',
    'intune intune' => qr/"intune" of "scep_health_check" is given twice/,
    'intunes' => qr/invalid parameter "intunes"/,
);
for my $params (sort keys %bad) {
    my ($rc, $out) = $t->test_conf(<<"CONF");
http {
    upstream u {
        server 127.0.0.1:1;
        scep_health_check $params;
    }
}
CONF
    isnt($rc, 0, "nginx -t refuses \"$params\"");
    like($out, qr/$bad{$params}/, "and says why: $params");
}

my ($rc, $out) = $t->test_conf(<<'CONF');
http {
    upstream u {
        server 127.0.0.1:1;
        scep_health_check intune;
    }
}
CONF
is($rc, 0, 'nginx -t takes "intune"') or diag($out);

$t->stop;
done_testing;
