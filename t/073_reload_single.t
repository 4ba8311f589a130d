#!/usr/bin/perl

# A reload of nginx that runs as one process ("master_process off"):
# nginx then reads the new configuration in that process and calls no
# module's init_process again, so it starts none of the new
# configuration's probes and takes no new connection for it (nginx's
# "worker_connections are not enough"), while it frees a shared zone
# whose size changed under the timers of the running one.  The module
# refuses such a reload, with a line that says what to do, and the
# running configuration goes on: nginx runs, answers, its status page
# shows its probes still counting, nothing crashes.  "nginx -t" of the
# same configuration still passes, and a restart reads it.

use strict;
use warnings;

BEGIN { $ENV{TEST_NGINX_FOREGROUND} = 1 }

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;

my $ba = $t->start_backend(name => 'A');
my $bb = $t->start_backend(name => 'B');

sub conf {
    my ($gen, $zone, $backend) = @_;
    return <<"CONF";
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;
    scep_zone $zone;

    upstream ndes {
        server 127.0.0.1:%%$backend%%;
        scep_health_check interval=300ms timeout=200ms uri=/scep;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            proxy_pass http://ndes;
        }

        location = /status { scep_status; }
        location = /gen { return 200 "gen$gen"; }
    }
}
CONF
}

my $gw = $t->port('GW');

sub status {
    my $r = $t->get($gw, '/status', timeout => 3);
    return undef unless $r->{status} == 200;
    return eval { JSON::PP->new->decode($r->{body}) };
}

# the health record of a back end in upstream "ndes", or undef
sub peer {
    my ($s, $port) = @_;
    return undef unless $s && $s->{upstreams}{ndes};
    my ($p) = grep { $_->{address} eq "127.0.0.1:$port" }
              @{$s->{upstreams}{ndes}{peers}};
    return $p;
}

# the checks of a back end once they have gone beyond $min, or undef
sub checks_beyond {
    my ($port, $min, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        my $p = peer(status(), $port);
        return $p->{checks} if $p && $p->{checks} > $min;
        sleep 0.1;
    }
    return undef;
}

# nginx is a child of the test: one that died is reaped, and how it died
# is told
sub alive {
    my $pid = $t->{nginx_child} or return 0;
    return 1 if waitpid($pid, WNOHANG) == 0;
    diag('nginx ' . (($? & 127) ? 'was killed by signal ' . ($? & 127)
                                : 'exited with ' . ($? >> 8)));
    delete $t->{nginx_child};
    return 0;
}

$t->start_nginx(conf(1, '1m', 'A'));
ok(alive(), 'nginx runs as one process');
like($t->read_file('nginx.conf'), qr/^master_process off;$/m,
     'with master_process off');

my $before = checks_beyond($ba->{port}, 1, 10);
ok($before, "the probes of back end A run ($before checks)");

# ------------------------------------------------------------------
# a new zone size and a new back end

my $new = conf(2, '2m', 'B');

my ($rc, $out) = $t->test_conf($new);
is($rc, 0, 'nginx -t passes the new configuration') or diag($out);

$t->write_conf($new);
my $pid = $t->nginx_pid;
kill 'HUP', $pid;

ok(defined $t->wait_error_log(
       qr/\[emerg\].*"master_process off" cannot reload a configuration/, 10),
   'the reload is refused, and the error log says why');
like(join("\n", $t->error_log_lines(qr/master_process off/)),
     qr/stop and start nginx/, 'the line says what to do instead');

# the timers of the first configuration fire several times over
sleep 1;
ok(alive(), 'nginx still runs after the refused reload');
is($t->get($gw, '/gen')->{body}, 'gen1', 'the first configuration answers');

my $after = checks_beyond($ba->{port}, $before + 2, 10);
ok($after, 'the probes of the running configuration go on ('
           . ($after // 'none') . " checks, were $before)");
is(peer(status(), $bb->{port}), undef,
   'the refused configuration\'s back end is not on the status page');
is($t->get($gw, '/scep?operation=GetCACaps')->{status}, 200,
   'SCEP requests go through');

# again, with the old size: the same answer, however often
$t->write_conf(conf(3, '1m', 'B'));
my $refused = $t->count_error_log(qr/master_process off/);
kill 'HUP', $pid;
ok(defined $t->wait_error_log(qr/master_process off/, 10, $refused),
   'a second reload is refused too');
sleep 0.5;
ok(alive(), 'nginx still runs');
is($t->get($gw, '/gen')->{body}, 'gen1', 'the first configuration answers');

my @bad = grep { !/master_process off/ }
          $t->error_log_lines(qr/\[(alert|crit|emerg)\]|signal \d+ .*exited/);
is(join("\n", @bad), '', 'no alert, crit or crash in the error log');
is($t->read_file('logs/nginx.out'), '', 'nothing on stderr');

# ------------------------------------------------------------------
# a restart reads it

$t->stop_nginx;
ok(!kill(0, $pid), 'nginx stopped');

# the refusals are expected: keep them out of the final check of the
# error log
my $log = $t->dir . '/logs/error.log';
open my $fh, '+<', $log or die "$log: $!";
my @keep = grep { !/\[emerg\].*master_process off/ } <$fh>;
seek $fh, 0, 0;
truncate $fh, 0;
print $fh @keep;
close $fh;

$t->start_nginx(conf(2, '2m', 'B'));
is($t->get($gw, '/gen')->{body}, 'gen2', 'a restart reads the new one');
ok(checks_beyond($bb->{port}, 1, 10), 'and probes back end B');

# ------------------------------------------------------------------
# a configuration without the module: nothing of the module would run
# in it, so it is not refused (nginx then takes no connection, its own
# limit), but the timers of the running configuration must stop before
# they reach the zone that nginx freed

SKIP: {
    skip 'the module is built into nginx', 2 if $ENV{TEST_SCEP_STATIC};

    my $d = $t->dir;
    $t->write_file('nginx.conf', <<"PLAIN");
master_process off;
daemon off;
pid $d/nginx.pid;
error_log $d/logs/error.log info;
events {}
http {
    access_log $d/logs/access.log;
    server {
        listen 127.0.0.1:$gw;
        location = /gen { return 200 "gen4"; }
    }
}
PLAIN
    my $reloads = $t->count_error_log(qr/reconfiguring$/);
    kill 'HUP', $t->nginx_pid;
    ok(defined $t->wait_error_log(qr/reconfiguring$/, 10, $reloads),
       'a reload without the module');
    sleep 1.5;
    ok(alive(), 'nginx still runs: the old timers stopped');
}

$t->stop;
done_testing;
