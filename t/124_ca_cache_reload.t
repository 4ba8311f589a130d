#!/usr/bin/perl

# scep_ca_cache across reloads: the answers kept survive a reload that
# keeps the cache on (served at once), are dropped by one that turns it
# off (they would no longer be kept up to date), and are kept again when
# it is on again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;
my $b = $t->start_backend;

sub conf {
    my ($gen, $cache) = @_;
    return <<"CONF";
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format cache '\$scep_cache';

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        scep_health_check interval=300ms timeout=250ms uri=/scep;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /gen { return 200 "gen$gen"; }

        location = /scep {
            scep on;
            scep_ca_cache $cache;
            access_log %%DIR%%/logs/cache.log cache;
            proxy_pass http://ndes;
        }

        location = /status {
            scep_status;
        }
    }
}
CONF
}

my $gw = $t->port('GW');
my $json = JSON::PP->new;

sub answer {
    my $r = $t->get($gw, '/status');
    my $s = eval { $json->decode($r->{body}) } // {};
    return $s->{upstreams}{ndes}{peers}[0]{ca_answer};
}

sub wait_answer {
    my ($want) = @_;
    my $end = time + 5;
    while (time < $end) {
        return 1 if !!answer() == $want;
        sleep 0.1;
    }
    return 0;
}

sub reload {
    my ($gen, $cache) = @_;
    $t->write_conf(conf($gen, $cache));
    kill 'HUP', $t->nginx_pid;
    my $body = '';
    for (1 .. 100) {
        $body = $t->get($gw, '/gen')->{body} // '';
        last if $body eq "gen$gen";
        sleep 0.05;
    }
    return $body eq "gen$gen";
}

sub cache_var {
    $t->get($gw, '/scep?operation=GetCACaps&message=default');
    my @l = $t->lines('logs/cache.log');
    return $l[-1] // '';
}

# after a reload the old workers may take a request or two more
sub cache_var_after_reload {
    my ($want) = @_;
    my $end = time + 5;
    my $v;
    while (1) {
        $v = cache_var();
        last if $v eq $want || time > $end;
        sleep 0.1;
    }
    return $v;
}

$t->start_nginx(conf(1, 'on'));

ok(wait_answer(1), 'cache on: the answers are kept');
is(cache_var(), 'HIT', 'and served');

# the back end stops: what the zone keeps is all there is
$t->stop_backend($b);

ok(reload(2, 'on'), 'reloaded, the cache still on');
is(cache_var(), 'HIT', 'the answers kept survive the reload, served at'
   . ' once');

$t->restart_backend($b);
ok(reload(3, 'off'), 'reloaded with the cache off');
ok(wait_answer(0), 'the answers are dropped at the next probe');
is(cache_var_after_reload('-'), '-', 'nothing from the edge');

ok(reload(4, 'on'), 'reloaded with the cache on again');
ok(wait_answer(1), 'the answers are kept again');
is(cache_var_after_reload('HIT'), 'HIT', 'and served');

$t->stop;
done_testing;
