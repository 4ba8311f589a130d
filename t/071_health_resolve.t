#!/usr/bin/perl

# A "server ... resolve" (nginx 1.27.3 and later) takes its addresses
# from DNS at run time, in peers the health checks never see: nginx -t
# refuses it in an upstream with scep_health_check, and says what to do.
# Skipped on older nginx, which knows no "resolve".

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;

my (undef, $v) = $t->run($t->{nginx}, '-v');
my ($maj, $min, $pat) = $v =~ m{nginx/(\d+)\.(\d+)\.(\d+)};
plan skip_all => "nginx $maj.$min.$pat has no server ... resolve"
    if defined $pat && $maj * 1e6 + $min * 1e3 + $pat < 1027003;

my ($rc, $out) = $t->test_conf(<<'CONF');
http {
    resolver 127.0.0.1:%%DNS%%;

    upstream ndes {
        zone ndes 64k;
        server 127.0.0.1:%%A%%;
        server localhost:%%B%% resolve;
        scep_health_check;
    }

    server {
        listen 127.0.0.1:%%GW%%;
        large_client_header_buffers 4 72k;
        location /scep { scep on; proxy_pass http://ndes; }
    }
}
CONF
isnt($rc, 0, 'a resolve server under scep_health_check is refused');
like($out, qr/"scep_health_check" in \S+test\.conf:\d+ cannot check "server localhost:\d+ resolve" in upstream "ndes"/,
     'the message names the directive, the server and the upstream');
like($out, qr/name its back ends by address or by a name resolved at start/,
     'and what to do instead');

# the same upstream with the name resolved at start passes
($rc, $out) = $t->test_conf(<<'CONF');
http {
    upstream ndes {
        zone ndes 64k;
        server 127.0.0.1:%%A%%;
        server localhost:%%B%%;
        scep_health_check;
    }

    server {
        listen 127.0.0.1:%%GW%%;
        large_client_header_buffers 4 72k;
        location /scep { scep on; proxy_pass http://ndes; }
    }
}
CONF
is($rc, 0, 'without resolve it passes') or diag($out);

# resolve without scep_health_check is none of the module's business
($rc, $out) = $t->test_conf(<<'CONF');
http {
    resolver 127.0.0.1:%%DNS%%;

    upstream ndes {
        zone ndes 64k;
        server localhost:%%B%% resolve;
    }

    server {
        listen 127.0.0.1:%%GW%%;
        large_client_header_buffers 4 72k;
        location /scep { scep on; proxy_pass http://ndes; }
    }
}
CONF
is($rc, 0, 'resolve without scep_health_check passes') or diag($out);

done_testing;
