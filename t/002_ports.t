#!/usr/bin/perl

# The harness's ports: claimed across processes from a range below the
# kernel's ephemeral ports, never handed to two test objects at once,
# refused to another claimant until released, free again once a claimant
# is killed, and moved when a server the harness starts finds its port
# taken (or the start fails with a message that names the port, where
# the test has read the port already).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::IP;
use POSIX qw(_exit);
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my ($lo, $hi) = SCEPTest::port_range();
my ($elo, $ehi) = (32768, 60999);
if (open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
    ($elo, $ehi) = split ' ', scalar <$fh>;
}
ok($hi < $elo || $lo > $ehi,
   "ports come from $lo-$hi, outside the ephemeral $elo-$ehi")
    unless $ENV{TEST_PORT_RANGE};

my $t = SCEPTest->new;
my $d = $t->dir;
my $claims = "/tmp/scep-test-ports-$<";

sub wait_for {
    my ($cond, $secs) = @_;
    my $end = time + ($secs // 10);
    until ($cond->()) {
        return 0 if time > $end;
        sleep 0.02;
    }
    return 1;
}

# A port whose claim is released: no file, or, the suite running in
# parallel, the file of another test's claim, which holds its lock
sub released {
    my ($port) = @_;
    return 1 unless -e "$claims/$port";
    my $c = SCEPTest::claim_port($port) or return 1;
    SCEPTest::release_port($port, $c);
    return 0;
}

# A port the harness chooses for its own servers: a test that has not
# read it lets the harness move it.
sub unread_port {
    my ($o, $name) = @_;
    package SCEPTest;
    return $o->port($name);
}

# a listener of "another process" on a port
# Another process listens on $port: not this one, whose children would
# hold its socket from their fork to their exec, and so seem to listen.
sub squat {
    my ($port) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $r;
        my $s = IO::Socket::IP->new(LocalHost => '127.0.0.1',
                                    LocalPort => $port, Listen => 1,
                                    ReuseAddr => 1, Proto => 'tcp')
            or POSIX::_exit(1);
        syswrite $w, "ok\n";
        close $w;
        sleep 300;
        POSIX::_exit(0);
    }
    close $w;
    my $ok = <$r>;
    close $r;
    die "listen on $port failed" unless $ok;
    return $pid;
}

sub unsquat {
    my ($pid) = @_;
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

###########################################################################
# Four processes, 25 ports each, all held at the same time

my @kids;
for my $k (1 .. 4) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $c = SCEPTest->new;
        my @p = map { $c->port("P$_") } 1 .. 25;
        $t->write_file("ports-$k", join("\n", @p) . "\n");
        wait_for(sub { -e "$d/go" }, 60);
        exit 0;               # its END releases them (Test::More's not)
    }
    push @kids, $pid;
}

ok(wait_for(sub { 4 == grep { -s "$d/ports-$_" } 1 .. 4 }, 30),
   'four processes hold 25 ports each');
my (%owner, @clash);
for my $k (1 .. 4) {
    for my $p (split /\n/, $t->read_file("ports-$k")) {
        push @clash, $p if $owner{$p};
        $owner{$p} = $k;
    }
}
is(scalar keys %owner, 100, 'no port went to two of them');
is(join(' ', @clash), '', 'none twice');
is(scalar(grep { $_ < $lo || $_ > $hi } keys %owner), 0,
   'every one in the range');

my ($taken) = sort keys %owner;
ok(-e "$claims/$taken", "a claimed port has its file ($taken)");
ok(!defined SCEPTest::claim_port($taken),
   'another process cannot claim it meanwhile');
my @mine = map { $t->port("M$_") } 1 .. 20;
is(scalar(grep { $owner{$_} } @mine), 0,
   "nor does this one's port() hand out theirs");

$t->write_file('go', "1\n");
waitpid $_, 0 for @kids;
# a file still there is another test's claim by now (the suite runs in
# parallel), which holds its lock: none is left unlocked
is(scalar(grep { !released($_) } keys %owner), 0,
   'released, their files are gone');
my $fh = SCEPTest::claim_port($taken);
ok($fh, 'a released port can be claimed again');
SCEPTest::release_port($taken, $fh) if $fh;

###########################################################################
# A claimant killed before it could release its port

my $pid = fork;
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    for my $p ($lo .. $hi) {
        my $fh = SCEPTest::claim_port($p) or next;
        $t->write_file('killed', "$p\n");
        sleep 60;
    }
    _exit(0);
}
ok(wait_for(sub { -s "$d/killed" }), 'a claimant holds a port');
my ($k) = $t->read_file('killed') =~ /(\d+)/;
ok(!defined SCEPTest::claim_port($k), 'refused while it lives');
kill 'KILL', $pid;
waitpid $pid, 0;
ok(-e "$claims/$k", 'killed, it left its file');
$fh = SCEPTest::claim_port($k);
ok($fh, 'but not its claim: the port can be claimed');
SCEPTest::release_port($k, $fh) if $fh;
ok(released($k), 'and its file is gone after that');

###########################################################################
# Servers of the harness on a port that another process took

my $u = SCEPTest->new;

my $busy = unread_port($u, 'NDES');
my $sq = squat($busy);
my $b = $u->start_backend(name => 'NDES');
isnt($b->{port}, $busy, "scepserver found $busy taken and moved");
is($u->port('NDES'), $b->{port}, 'the name follows it');
like($u->read_file($b->{log}), qr/address already in use/,
     'its first start failed on the bind');
is($u->get($b->{port}, '/scep?operation=GetCACaps')->{status}, 200,
   'it answers on its new port');
ok($u->listens($b->{pid}, $b->{port}), 'the harness knows it listens');
ok(released($busy), 'the old claim is gone');
unsquat($sq);

my $read = $u->port('NDES2');
$sq = squat($read);
my $err = eval { $u->start_backend(name => 'NDES2'); '' } // $@;
my $want = "scepserver on $read did not start: it exited, its port is in"
           . " use by another process, the test has read the port of NDES2:";
like($err, qr/^\Q$want\E/,
     'a port the test read already is not moved: the start fails, saying why');
unsquat($sq);

my $f = $u->start_fault('html500');
ok($u->listens($f->{pid}, $f->{port}), 'a fault daemon binds a port itself');
is($u->port($f->{name}), $f->{port}, 'under its name');
is($u->get($f->{port}, '/')->{status}, 500, 'and answers there');

my $conf = <<'CONF';
http {
    server {
        listen 127.0.0.1:%%GW%%;
        location / {
            return 200 "gw\n";
        }
    }
}
CONF

my $gw = unread_port($u, 'GW');
$sq = squat($gw);
$u->start_nginx($conf);
isnt($u->port('GW'), $gw, "nginx found $gw taken, and the port moved");
is($u->get($u->port('GW'), '/')->{body}, "gw\n", 'nginx listens there');
$u->stop_nginx;
unsquat($sq);

$gw = $u->port('GW');
$sq = squat($gw);
$err = eval { $u->start_nginx($conf); '' } // $@;
$want = "nginx failed to start: port $gw (GW) is in use by another"
        . " process, the test has read the port of GW:";
like($err, qr/^\Q$want\E/,
     'nginx on a port the test read fails to start, naming the port');
unsquat($sq);
# the failed start's [emerg] lines are this test's doing
$u->write_file('logs/error.log', '');

my @held = map { $u->port($_) } qw(NDES GW);
$u->stop;
is(scalar(grep { !released($_) } @held), 0,
   'stop releases the ports of the test object');
ok(!kill(0, $b->{pid}) && !kill(0, $f->{pid}), 'and its servers are gone');

$t->stop;

done_testing;
