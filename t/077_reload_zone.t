#!/usr/bin/perl

# Records of back ends that a reload removed are freed: a zone sized by
# nginx -t for the configured back ends takes any number of reloads that
# change their addresses.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;

sub conf {
    my ($gen, $zone) = @_;
    my $servers = join '', map { "        server 127.0.0.1:%%G${gen}S$_%%;\n" }
        1 .. 8;
    return <<"CONF";
http {
    large_client_header_buffers 4 72k;
    scep_zone $zone;

    upstream u {
$servers        scep_health_check interval=1s timeout=300ms uri=/scep;
    }

    server {
        listen 127.0.0.1:%%GW%%;
        location = /gen { return 200 "gen$gen"; }
    }
}
CONF
}

# the size nginx -t asks for 8 back ends
my ($rc, $out) = $t->test_conf(conf(0, '8k'));
my ($need) = $out =~ /make it at least (\d+)k/;
ok($need, "nginx -t names the size needed ($out)") or BAIL_OUT('no size');

$t->start_nginx(conf(1, "${need}k"));
my $gw = $t->port('GW');

for my $gen (1 .. 8) {
    if ($gen > 1) {
        $t->write_conf(conf($gen, "${need}k"));
        kill 'HUP', $t->nginx_pid;
    }

    my $body = '';
    for (1 .. 100) {
        $body = $t->get($gw, '/gen')->{body} // '';
        last if $body eq "gen$gen";
        select(undef, undef, undef, 0.05);
    }
    is($body, "gen$gen", "reload $gen with 8 new addresses took effect");
}

is($t->count_error_log(qr/too small/), 0, 'the zone never ran out');

$t->stop;
done_testing;
