#!/usr/bin/perl

# A high-availability pair, conf-examples/ha-pair/ run for real: two
# gateways, each in a network namespace of its own with nginx (the
# module) and keepalived, the shipped configurations with only their
# addresses and paths substituted; two scepserver back ends sharing one
# CA; a client namespace that enrolls through the virtual address with
# scepclient while two loops send GetCACert and PKIOperation.  Under
# that load the test kills the active gateway's nginx, then its
# keepalived, then cuts it off from the back ends, and brings each back.
#
# Asserts that the virtual address moves within a bound each time and
# that every request that failed meanwhile succeeds when retried: an
# enrollment is delayed, never lost.  Prints the figures.
#
# Needs root and "ip netns"; skipped otherwise.  Every namespace is
# named after this process and removed at the end, whatever happens.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Copy qw(copy);
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

sub which {
    my ($prog) = @_;
    for my $dir (split(/:/, $ENV{PATH} // ''), qw(/usr/sbin /sbin)) {
        return "$dir/$prog" if -x "$dir/$prog";
    }
    return undef;
}

my (@made, $t, $cleaned);
my $MAIN = $$;

plan skip_all => 'not root: the pair runs in network namespaces' if $>;
my $IP = which('ip')
    or plan skip_all => 'no ip command (iproute2) for network namespaces';
my $KEEPALIVED = which('keepalived')
    or plan skip_all => 'keepalived is not installed (make deps)';
which('curl') or plan skip_all => 'curl is not installed (make deps)';

my $ROOT = SCEPTest::root();
my $EX = "$ROOT/conf-examples/ha-pair";

# The addresses, inside the namespaces only: the examples' 203.0.113.x
# (devices' side) become 10.66.1.x, their NDES servers 192.0.2.1N:80
# become 10.66.2.2N:8080 (scepserver).
my $VIP = '10.66.1.10';
my %FRONT = (a => '10.66.1.11', b => '10.66.1.12', client => '10.66.1.100');
my %BACK = (a => '10.66.2.11', b => '10.66.2.12', ndes1 => '10.66.2.21',
            ndes2 => '10.66.2.22');

# bounds, in seconds, on the time the address takes to move
my %BOUND = (nginx => 8, keepalived => 8, link => 15, back => 20);

my $tag = "scepha$$";
my %ns = map { $_ => "$tag-$_" } qw(sw a b client ndes1 ndes2);

# in this process only, never in a child that failed to exec
sub cleanup {
    local ($?, $!, $@);
    return if $$ != $MAIN || $cleaned++;
    if ($t) {
        for my $pid (@{$t->{pids}}) {
            kill 'KILL', -$pid;
            kill 'KILL', $pid;
        }
        waitpid $_, 0 for @{$t->{pids}};
        @{$t->{pids}} = ();
    }
    for my $n (reverse @made) {
        my @left = split ' ', qx{$IP netns pids $n 2>/dev/null};
        kill 'KILL', @left if @left;
        system($IP, 'netns', 'del', $n);
    }
}

END { cleanup() }
$SIG{$_} = sub { cleanup(); exit 1 } for qw(INT TERM HUP QUIT);

# namespaces of an earlier run that was killed before it could clean up
for (split /\n/, qx{$IP netns list 2>/dev/null}) {
    my ($n, $pid) = /^(scepha(\d+)-\w+)/ or next;
    next if kill 0, $pid;
    my @left = split ' ', qx{$IP netns pids $n 2>/dev/null};
    kill 'KILL', @left if @left;
    system($IP, 'netns', 'del', $n);
}

my $err = qx{$IP netns add $ns{sw} 2>&1};
plan skip_all => "ip netns is not available here: $err" if $?;
push @made, $ns{sw};

$t = SCEPTest->new;
my $d = $t->dir;

sub ip {
    my ($rc, $out) = $t->run($IP, @_);
    die "ip @_: $out" if $rc;
    return $out;
}

sub in_ns { ($IP, 'netns', 'exec', $ns{$_[0]}) }

###########################################################################
# The network: two bridges in a namespace of their own, the devices'
# side (client, both gateways, the virtual address) and the NDES side
# (both gateways, both back ends).  Nothing of it is in the host's
# namespace.

for my $n (qw(a b client ndes1 ndes2)) {
    ip('netns', 'add', $ns{$n});
    push @made, $ns{$n};
    ip('-n', $ns{$n}, 'link', 'set', 'lo', 'up');
}
for my $br (qw(front back)) {
    ip('-n', $ns{sw}, 'link', 'add', $br, 'type', 'bridge');
    ip('-n', $ns{sw}, 'link', 'set', $br, 'up');
}

my $nveth = 0;
sub wire {
    my ($who, $dev, $br, $addr) = @_;
    my $v = "h$$" . 'v' . $nveth++;
    ip('link', 'add', $v, 'netns', $ns{$who}, 'type', 'veth',
       'peer', 'name', "${v}p", 'netns', $ns{sw});
    ip('-n', $ns{sw}, 'link', 'set', "${v}p", 'master', $br, 'up');
    ip('-n', $ns{$who}, 'link', 'set', $v, 'name', $dev);
    ip('-n', $ns{$who}, 'addr', 'add', "$addr/24", 'dev', $dev);
    ip('-n', $ns{$who}, 'link', 'set', $dev, 'up');
}

wire($_, 'eth0', 'front', $FRONT{$_}) for qw(a b client);
wire($_, 'eth1', 'back', $BACK{$_}) for qw(a b);
wire($_, 'eth0', 'back', $BACK{$_}) for qw(ndes1 ndes2);

###########################################################################
# Two NDES stand-ins sharing one CA.  -allowrenew 0: scepserver issues a
# repeated request again, as a CA answers a retried transaction.

$t->tls_cert("IP:$VIP");
$t->start_backend(name => "NDES$_", netns => $ns{"ndes$_"}, port => 8080,
                  args => ['-allowrenew', '0'])
    for 1, 2;

###########################################################################
# The gateways: the shipped files, addresses and paths substituted

my %gw;

sub gateway_conf {
    my ($g) = @_;
    my $gd = "$d/gw-$g";
    my $text = $t->read_file("$EX/gateway-$g.conf");
    mkdir $gd;
    mkdir "$gd/logs";

    if ($ENV{TEST_SCEP_STATIC}) {
        $text =~ s{^\s*load_module\s+\S*ngx_http_scep_module\.so;\n}{}mg;
    }
    $text =~ s{/usr/lib/nginx/modules/ngx_http_scep_module\.so}
              {$t->{module}}g;
    $text =~ s{/var/log/nginx/}{$gd/logs/}g;
    $text =~ s{/etc/nginx/ssl/[\w.-]+\.crt}{$d/server.crt}g;
    $text =~ s{/etc/nginx/ssl/[\w.-]+\.key}{$d/server.key}g;
    $text =~ s{^(\s*worker_processes\s+)auto;}{${1}1;}mg;
    $text =~ s{\b203\.0\.113\.}{10.66.1.}g;
    $text =~ s{\b192\.0\.2\.1(\d):80\b}{10.66.2.2$1:8080}g;
    # scepserver serves /scep
    $text =~ s{(proxy_pass\s+http://ndes)/certsrv/mscep/mscep\.dll
               (?:/pkiclient\.exe)?;}{$1/scep;}gx;
    $text =~ s{uri=/certsrv/mscep/mscep\.dll}{uri=/scep}g;
    # scepclient encrypts with single DES, which the default refuses
    $text =~ s{^(\s*scep_algorithms\b[^;]*);}{$1 des;}m;

    my $paths = join '', map { "    ${_}_temp_path $gd/tmp_$_;\n" }
        qw(client_body proxy fastcgi uwsgi scgi);
    $text =~ s/^(http\s*\{[ \t]*\n)/$1$paths/m;
    $text = "daemon off;\npid $gd/nginx.pid;\n$text";

    unlike($text, qr{203\.0\.113|192\.0\.2\.|/etc/nginx/ssl|/var/log},
           "gateway-$g.conf: every address and path substituted");
    $t->write_file("gw-$g/nginx.conf", $text);
    copy("$ROOT/conf-examples/scep_proxy_params", "$gd/scep_proxy_params")
        or die "copy scep_proxy_params: $!";
}

sub keepalived_conf {
    my ($g) = @_;
    my $gd = "$d/gw-$g";
    my $text = $t->read_file("$EX/keepalived.conf");
    $text =~ s{/etc/keepalived/scep-gateway-check}{$gd/scep-gateway-check}g;
    $text =~ s{\b203\.0\.113\.}{10.66.1.}g;
    (my $lines = $text) =~ s/^\s*#.*\n//mg;
    unlike($lines, qr{203\.0\.113|/etc/}, "keepalived.conf for gateway $g:"
           . ' every address and path substituted');
    $t->write_file("gw-$g/keepalived.conf", $text);
    copy("$EX/scep-gateway-check", "$gd/scep-gateway-check")
        or die "copy scep-gateway-check: $!";
    chmod 0755, "$gd/scep-gateway-check";
}

sub start_gw_nginx {
    my ($g) = @_;
    my $gd = "$d/gw-$g";
    my @env = $ENV{TEST_NGINX_PRELOAD}
              ? ('env', "LD_PRELOAD=$ENV{TEST_NGINX_PRELOAD}") : ();
    $gw{$g}{nginx} = $t->spawn("$gd/logs/nginx.out", in_ns($g), @env,
        $t->nginx_cmd($t->{nginx}, '-p', $gd, '-c', "$gd/nginx.conf",
                      '-e', "$gd/logs/error.log"));
    $t->wait_port(8080, 10, $ns{$g})
        or die "nginx of gateway $g did not start: "
               . $t->read_file("$gd/logs/nginx.out")
               . $t->read_file("$gd/logs/error.log");
}

# keepalived as one instance among others on the machine: VRRP only,
# its own configuration, config id and pid files (it reads the default
# ones otherwise, to refuse a second instance), logging to its console,
# in the gateway's namespace; it writes nothing outside the gateway's
# folder
sub start_gw_keepalived {
    my ($g) = @_;
    my $gd = "$d/gw-$g";
    $gw{$g}{keepalived} = $t->spawn("$gd/logs/keepalived.log", in_ns($g),
        $KEEPALIVED, '--dont-fork', '--log-console', '--log-detail',
        '--no-syslog', '--vrrp', '--dont-respawn',
        '--use-file', "$gd/keepalived.conf", '--config-id', "gateway-$g",
        '--pid', "$gd/keepalived.pid", '--vrrp_pid', "$gd/vrrp.pid",
        '--checkers_pid', "$gd/checkers.pid", '--bfd_pid', "$gd/bfd.pid");
}

sub kill_group {
    my ($pid) = @_;
    kill 'KILL', -$pid;
    waitpid $pid, 0;
    @{$t->{pids}} = grep { $_ != $pid } @{$t->{pids}};
}

for my $g (qw(a b)) {
    gateway_conf($g);
    keepalived_conf($g);
    my ($rc, $out) = $t->run(in_ns($g), $KEEPALIVED, '--config-test',
                             '--use-file', "$d/gw-$g/keepalived.conf",
                             '--config-id', "gateway-$g");
    is($rc, 0, "keepalived.conf for gateway $g passes keepalived -t")
        or diag($out);
    start_gw_nginx($g);
}

# both back ends up in each gateway's eyes, so both checks pass
for my $g (qw(a b)) {
    my ($rc, $out) = $t->run(in_ns($g), "$d/gw-$g/scep-gateway-check",
                             'backends');
    is($rc, 0, "scep-gateway-check backends passes on gateway $g")
        or diag($out);
}

sub has_vip {
    my ($g) = @_;
    my ($rc, $out) = $t->run($IP, '-n', $ns{$g}, '-4', '-o', 'addr', 'show',
                             'dev', 'eth0');
    return $out =~ m{ \Q$VIP\E/} ? 1 : 0;
}

sub holder {
    my ($x, $y) = (has_vip('a'), has_vip('b'));
    return $x && $y ? 'both' : $x ? 'a' : $y ? 'b' : 'none';
}

# seconds until holder() is one of @want, or undef after $secs
sub wait_holder {
    my ($secs, @want) = @_;
    my $start = time;
    while (time - $start < $secs) {
        my $h = holder();
        return time - $start if grep { $_ eq $h } @want;
        sleep 0.05;
    }
    return undef;
}

start_gw_keepalived($_) for qw(a b);
my $up = wait_holder(15, 'a');
ok(defined $up, 'gateway A takes the virtual address')
    or BAIL_OUT('no VRRP election: ' . holder() . "\n"
                . $t->read_file("$d/gw-a/logs/keepalived.log"));
sleep 1;
is(holder(), 'a', 'and only gateway A has it');

###########################################################################
# A device enrolls through the virtual address

my ($rc, $out, $crt) = $t->scepclient("https://$VIP/certsrv/mscep/mscep.dll",
                                      netns => $ns{client},
                                      cn => 'ha-first');
ok($rc == 0 && $crt, 'scepclient enrolls through the virtual address')
    or diag($out);

sub make_path_or_die { mkdir $_[0] or die "mkdir $_[0]: $!" }

# many PKIOperation messages, one key (quick to make), each its own
# subject and transaction
make_path_or_die("$d/msgs");
my ($krc, $kout) = $t->run('openssl', 'genrsa', '-out', "$d/device.key",
                           '2048');
die "openssl genrsa: $kout" if $krc;
for my $i (0 .. 399) {
    $t->scep_msg('--key', "$d/device.key", '--cn', "ha-load-$i",
                 '--challenge', 'secret', '--dialect', 'der',
                 '--out', "$d/msgs/$i.der");
}

###########################################################################
# Load, and the three failures of the active gateway

make_path_or_die("$d/load");
my $stop = "$d/load/stop";
my $load = $t->spawn("$d/logs/client.log", in_ns('client'), $^X,
                     "$ROOT/t/lib/ha-client.pl", 'load', "$d/load", $stop,
                     180, $VIP, "$d/msgs", "$d/server.crt");
sleep 3;

my @moves;

# $what: which failure; $break and $mend do and undo it
sub move {
    my ($what, $bound, $break, $mend) = @_;

    my $t0 = time;
    $break->();
    my $away = wait_holder($bound, 'b', 'both');
    ok(defined $away, "$what: the virtual address moves to gateway B"
                      . " within $bound s")
        or diag('holder: ' . holder());
    my $dup = holder() eq 'both';
    sleep 3;
    my $t1 = time;
    $mend->();
    my $back = wait_holder($BOUND{back}, 'a');
    ok(defined $back, "$what mended: the address returns to gateway A"
                      . " within $BOUND{back} s")
        or diag('holder: ' . holder());
    sleep 3;
    push @moves, { what => $what, away => $away, back => $back,
                   both => $dup, from => $t0, mended => $t1, to => time };
}

move('nginx of gateway A killed', $BOUND{nginx},
     sub { kill_group($gw{a}{nginx}) },
     sub { start_gw_nginx('a') });

move('keepalived of gateway A killed', $BOUND{keepalived},
     sub { kill_group($gw{a}{keepalived}) },
     sub { start_gw_keepalived('a') });

move('gateway A cut off from the back ends', $BOUND{link},
     sub { ip('-n', $ns{a}, 'link', 'set', 'eth1', 'down') },
     sub { ip('-n', $ns{a}, 'link', 'set', 'eth1', 'up') });

# the load stops itself: a file, and a bound on its time and count
$t->write_file($stop, "stop\n");
my $end = time + 45;
my $reaped;
until (($reaped = waitpid($load, WNOHANG) == $load) || time > $end) {
    sleep 0.2;
}
ok($reaped, 'the load loops stop when told');

###########################################################################
# What failed, and whether it succeeds when retried

my (@all, @failed);
for my $f (glob("$d/load/load-*.tsv")) {
    for (split /\n/, $t->read_file($f)) {
        my %r;
        @r{qw(kind id start end ok detail)} = split /\t/;
        push @all, \%r;
        push @failed, \%r unless $r{ok};
    }
}

my %kinds = map { $_ => 0 } qw(cacert pkiop enroll);
$kinds{$_->{kind}}++ for @all;
ok($kinds{cacert} > 40 && $kinds{pkiop} > 40 && $kinds{enroll} > 3,
   "the load ran: $kinds{cacert} GetCACert, $kinds{pkiop} PKIOperation,"
   . " $kinds{enroll} scepclient enrollments");

# A CertRep FAILURE is the CA's answer, delivered: micromdm's scepserver
# gives one now and then to concurrent requests (its file depot races
# on the serial number).  A device asks again, as the retries below do.
my @refused = grep { $_->{detail} =~ /^CA FAILURE/ } @failed;

# each failure in the window of a move (from the break until the address
# is back and 3 s more) or outside them all
my @outside;
for my $r (grep { $_->{detail} !~ /^CA FAILURE/ } @failed) {
    my ($m) = grep { $r->{end} >= $_->{from} && $r->{start} <= $_->{to} }
              @moves;
    if ($m) {
        push @{$m->{failed}}, $r;
    } else {
        push @outside, $r;
    }
}
is(scalar @outside, 0, 'no request failed outside the moves')
    or diag(join "\n", map { "$_->{kind} $_->{id} $_->{detail}" } @outside);

# B served while it held the address
my $served_b = () = $t->read_file("$d/gw-b/logs/scep-access.log") =~ /\n/g;
ok($served_b > 10, "gateway B served requests meanwhile ($served_b)");

$t->write_file('load/failed.tsv',
               join '', map { "$_->{kind}\t$_->{id}\n" } @failed);
my ($rrc, $rout) = $t->run(in_ns('client'), 'timeout', '300', $^X,
                           "$ROOT/t/lib/ha-client.pl", 'retry', "$d/load",
                           $VIP, "$d/msgs", "$d/server.crt");
is($rrc, 0, 'the retries ran') or diag($rout);
my @retried = map { [split /\t/] } split /\n/, $t->read_file('load/retry.tsv');
is(scalar @retried, scalar @failed, 'every failed request was retried');
my @still = grep { !$_->[4] } @retried;
is(scalar @still, 0, 'every failed request succeeds when retried')
    or diag(join "\n", map { "@$_" } @still);

###########################################################################
# The figures

my $total = @all;
diag(sprintf "HA pair: %d requests (%s); %d failed in the moves, %d"
     . " refused by the CA (scepserver's race); %d of %d retried with"
     . " success", $total,
     join(', ', map { "$kinds{$_} $_" } sort keys %kinds),
     scalar @failed - @refused, scalar @refused,
     scalar @retried - @still, scalar @failed);
# per move: what failed while the address went to B, and while it came
# back, by cause
sub cause {
    my ($r) = @_;
    return 'CA FAILURE' if $r->{detail} =~ /^CA FAILURE/;
    return 'timed out' if $r->{detail} =~ /no answer: closed|timeout/i
                          || $r->{end} - $r->{start} >= 2.9;
    return 'cut off' if $r->{detail} =~ /^HTTP 200/;
    return $1 if $r->{detail} =~ /(HTTP \d+)/;
    return 'refused or reset';
}

sub failures {
    my ($from, $to, @f) = @_;
    @f = grep { $_->{start} < $to && $_->{end} >= $from } @f;
    return '0 failed' unless @f;
    my %c;
    $c{cause($_)}++ for @f;
    my ($first) = sort { $a <=> $b } map { $_->{start} } @f;
    my ($last) = sort { $b <=> $a } map { $_->{end} } @f;
    return sprintf '%d failed (%s) from %+.1f to %+.1f s', scalar @f,
        join(', ', map { "$c{$_} $_" } sort keys %c),
        $first - $from, $last - $from;
}

for my $m (@moves) {
    my @f = @{$m->{failed} // []};
    diag(sprintf "  %s: on B after %s s%s, %s; back on A %s s after the"
         . " mend, %s", $m->{what}, fmt($m->{away}),
         $m->{both} ? ' (A kept it too)' : '',
         failures($m->{from}, $m->{mended}, @f), fmt($m->{back}),
         failures($m->{mended}, $m->{to}, @f));
}

sub fmt { defined $_[0] ? sprintf('%.1f', $_[0]) : 'never' }

###########################################################################

for my $g (qw(a b)) {
    my @bad = grep { /\[(alert|crit|emerg)\]/ }
              split /\n/, $t->read_file("$d/gw-$g/logs/error.log");
    is(join("\n", @bad), '', "gateway $g: no alert, crit or emerg");
}

cleanup();
$t->stop;

done_testing;
