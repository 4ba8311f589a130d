#!/usr/bin/perl

# scep_ca_cache when the module's zone has no room for a back end's
# answers: a warn line says to make scep_zone larger, once; the requests
# go to the back end as without the cache ($scep_cache MISS), and nothing
# breaks.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;

# a GetCACert answer of about 62 KB (the RA certificate 77 times, as a
# long chain would be), which a zone of the least size for one server
# cannot hold beside its record
my $bundle = $t->ca_ra_bundle('big', '20250101000000Z', '20351231000000Z');
my $dir = $t->dir . '/big';
my ($rc, $out) = $t->run('sh', '-c', "cd $dir && openssl crl2pkcs7 -nocrl"
    . " -certfile ca.pem" . (" -certfile ra.pem" x 77)
    . " -outform DER -out huge.der");
die "openssl crl2pkcs7: $out" if $rc;
my $size = -s "$dir/huge.der";
ok($size > 50_000 && $size < 63_000, "a GetCACert answer of $size bytes");

my $f = $t->start_fault('certs', "$dir/huge.der");

sub conf {
    my ($zone) = @_;
    return <<"CONF";
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    scep_zone $zone;

    log_format cache '\$scep_cache "\$upstream_addr" \$status';

    upstream ndes {
        server 127.0.0.1:$f->{port};
        scep_health_check interval=1s timeout=900ms uri=/scep;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            scep_ca_cache on;
            access_log %%DIR%%/logs/cache.log cache;
            proxy_pass http://ndes;
        }
    }
}
CONF
}

# the least size nginx -t takes for the one server
my (undef, $need) = $t->test_conf(conf('8k'));
($need) = $need =~ /make it at least (\d+)k/;
ok($need, "nginx -t names the least size: ${\($need // '?')}k")
    or BAIL_OUT('no size');

$t->start_nginx(conf("${need}k"));

my $gw = $t->port('GW');

ok(defined $t->wait_error_log(
       qr/\[warn\].*scep_ca_cache: "scep_zone" has no room for the answers of 127\.0\.0\.1:$f->{port} in upstream "ndes" \(\d+ bytes\): requests for them go to the back ends; make "scep_zone" larger/,
       5),
   'no room: logged at warn, with the fix');

my $r = $t->get($gw, '/scep?operation=GetCACert&message=default');
is($r->{status}, 200, 'GetCACert still answered');
is(length $r->{body}, $size, 'by the back end, whole');
my @log = $t->lines('logs/cache.log', 1);
like($log[0], qr/^MISS "127\.0\.0\.1:\d+" 200$/, '$scep_cache MISS');

# two more probes with the same answers
sleep 2.5;
is($t->count_error_log(qr/has no room for the answers/), 1,
   'logged once, not at every probe');

$t->stop;
done_testing;
