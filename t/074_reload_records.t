#!/usr/bin/perl

# Reloads while a worker of an old configuration is still busy (a request
# to a back end that hangs, a probe of it in flight): that back end is
# gone from the new configurations, yet its health record lives on for
# the old worker, and is not handed to another back end.  What the old
# worker writes when its probe and its request end must not show up on
# the back ends of the new configurations.  A reload that fails counts
# no generation.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;

my $hang = $t->start_fault('hang');
$t->start_backend(name => 'A');
$t->start_backend(name => 'Y');
$t->start_backend(name => 'Z');

sub conf {
    my ($gen, @servers) = @_;
    my $servers = join '',
        map { "        server 127.0.0.1:$_;\n" } @servers;
    return <<"CONF";
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    upstream u {
$servers        scep_health_check interval=20s timeout=5s fails=1 passes=1
                          uri=/scep;
    }

    server {
        listen 127.0.0.1:%%GW%%;
        %%EXTRA%%

        location = /scep {
            scep on;
            proxy_pass http://u;
            proxy_read_timeout 8s;
        }

        location = /gen {
            return 200 "gen$gen";
        }

        location = /status {
            scep_status;
        }
    }
}
CONF
}

my $gw = $t->port('GW');
my ($a, $y, $z) = map { $t->port($_) } qw(A Y Z);
my $json = JSON::PP->new;

sub status {
    return $json->decode($t->get($gw, '/status')->{body});
}

sub reload {
    my ($gen, @servers) = @_;
    my $conf = conf($gen, @servers);
    $conf =~ s/%%EXTRA%%//;
    $t->write_conf($conf);
    kill 'HUP', $t->nginx_pid;
    my $body = '';
    for (1 .. 100) {
        $body = $t->get($gw, '/gen')->{body} // '';
        last if $body eq "gen$gen";
        sleep 0.05;
    }
    is($body, "gen$gen", "reload to configuration $gen took effect");
}

# 1: the hanging back end alone; its worker starts a probe at once
my $c1 = conf(1, $hang->{port});
$c1 =~ s/%%EXTRA%%//;
my $t0 = time;
$t->start_nginx($c1);

# a request that waits for it, until proxy_read_timeout: 8 s
my $slow = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$gw") or die;
print $slow "GET /scep?operation=GetCACaps HTTP/1.1\r\nHost: x\r\n"
            . "Connection: close\r\n\r\n";
sleep 0.5;

my $g1 = status()->{gateway}{generation};

# 2: the hanging back end is gone; 3 and 4 bring new ones, whose records
# would take the memory of its record were it freed
reload(2, $a);
reload(3, $a, $y);
reload(4, $a, $y, $z);

is(status()->{gateway}{generation}, $g1 + 3, 'three reloads, three more'
   . ' generations');

# the old worker's probe ends at 5 s (timed out), its request at 8 s
my $wait = $t0 + 9 - time;
sleep $wait if $wait > 0;

my $r = '';
{
    local $/;
    $r = <$slow> // '';
}
like($r, qr{^HTTP/1\.1 504}, 'the slow request ended with a 504');

my $s = status();
my @peers = @{$s->{upstreams}{u}{peers}};
is(scalar @peers, 3, 'the status page shows the three back ends of now');

for my $p (@peers) {
    is($p->{state}, 'up', "$p->{address}: up");
    is($p->{fails}, 0, "$p->{address}: no failed probe");
    is($p->{reason}, undef, "$p->{address}: no failure reason");
    is($p->{requests}, 0, "$p->{address}: no request");
    is($p->{responses}{$_}, 0, "$p->{address}: no $_ answer")
        for qw(2xx 4xx 5xx);
}

# a reload that fails after the zone is set up: a listen address in use
my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                 Listen => 1, ReuseAddr => 0)
    or die "listen: $!";
my $bad = conf(5, $a, $y, $z);
my $busy_port = $busy->sockport;
$bad =~ s/%%EXTRA%%/listen 127.0.0.1:$busy_port;/;
$t->write_conf($bad);
my $before = status()->{gateway}{generation};
kill 'HUP', $t->nginx_pid;
ok(defined $t->wait_error_log(qr/still could not bind\(\)/, 15),
   'the reload failed: the address is in use');
is($t->get($gw, '/gen')->{body}, 'gen4', 'configuration 4 still runs');
is(status()->{gateway}{generation}, $before,
   'the failed reload counts no generation');
close $busy;

# the failed reload's emerg lines are expected: keep them out of the
# final check of the error log
my $log = $t->dir . '/logs/error.log';
open my $fh, '+<', $log or die "$log: $!";
my @keep = grep { !/\[emerg\].*bind\(\)/ } <$fh>;
seek $fh, 0, 0;
truncate $fh, 0;
print $fh @keep;
close $fh;

$t->stop;
done_testing;
