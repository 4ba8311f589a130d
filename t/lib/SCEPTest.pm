package SCEPTest;

# Test harness for ngx_http_scep_module: per test a temporary folder, a
# generated nginx.conf that loads the built module, free loopback ports,
# real scepserver back ends, and a check of the error log at the end.
# Core Perl and Debian packages only.
#
# For the memory checks (make test-asan, make test-valgrind), and only for
# the nginx binary, never for the other programs a test runs:
#   TEST_NGINX_PRELOAD     LD_PRELOAD for nginx (a sanitizer runtime)
#   TEST_NGINX_WRAPPER     words put in front of the nginx command (valgrind)
#   TEST_NGINX_FOREGROUND  one nginx process, in the foreground: the
#                          configuration gets "master_process off; daemon off;"
#   TEST_TIMEOUT_FACTOR    a whole number that multiplies the harness's
#                          waits and timeouts (default 1)

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use Fcntl qw(O_RDWR O_CREAT O_NOFOLLOW :flock);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Socket::IP;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(http);

my $ROOT = abs_path(dirname(__FILE__) . '/../..');
my @ALL;
my $SLOW = int($ENV{TEST_TIMEOUT_FACTOR} || 1) || 1;

sub root { $ROOT }

# A test that cannot run here skips itself, saying why; with
# TEST_SCEP_NO_SKIP=1 (CI sets it) it fails instead, so that a run where
# it could not run does not pass.  For the reasons a test cannot run
# where it is meant to (not root, no namespaces, a package missing), not
# for a mode the test is not meant for.
sub skip_or_fail {
    my ($why) = @_;
    plan skip_all => $why unless $ENV{TEST_SCEP_NO_SKIP};
    plan tests => 1;
    fail("cannot run: $why (TEST_SCEP_NO_SKIP is set)");
    exit 1;
}

# The reason a test of the system nginx with the package does not run
# when the suite runs against another nginx or module (make test-nginx,
# make test-asan), or undef: those runs would build and check the same
# package again.
sub other_nginx {
    for my $v (qw(TEST_NGINX_BINARY TEST_SCEP_MODULE TEST_SCEP_STATIC
                  TEST_NGINX_PRELOAD TEST_NGINX_WRAPPER))
    {
        return "tests the package with the system nginx only; $v is set"
            . ' (the plain make test runs it)' if $ENV{$v};
    }
    return undef;
}

sub new {
    my ($class, %opts) = @_;

    my $self = bless {
        dir       => tempdir('scep-test-XXXXXX', TMPDIR => 1,
                             CLEANUP => !$ENV{TEST_KEEP}),
        nginx     => $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx',
        module    => $ENV{TEST_SCEP_MODULE}
                     || "$ROOT/build/ngx_http_scep_module.so",
        ports     => {},
        claims    => {},
        told      => {},
        owner     => $$,
        backends  => [],
        pids      => [],
        %opts,
    }, $class;

    -x $self->{nginx} or BAIL_OUT("no nginx binary at $self->{nginx}");
    -f $self->{module} or $ENV{TEST_SCEP_STATIC}
        or BAIL_OUT("module not built: $self->{module} (run make)");

    make_path("$self->{dir}/logs");
    push @ALL, $self;

    # A test killed by a signal (prove under timeout(1), ^C) stops its
    # servers, releases its ports and removes its folder all the same:
    # exit runs the END blocks, a signal's default action does not.  A
    # handler of the test's own stays.
    my %num = (HUP => 1, INT => 2, TERM => 15);
    for my $sig (sort keys %num) {
        next if $SIG{$sig} && $SIG{$sig} ne 'DEFAULT';
        $SIG{$sig} = sub { exit 128 + $num{$sig} };
    }
    return $self;
}

sub dir { $_[0]{dir} }

# Ports.  A test names the ports it needs (port('GW')); each name gets
# one for the life of the test object.  A port the kernel picks (bind to
# port 0) and frees again can be taken by anyone before the server the
# test starts binds it, another test's pick or the source port of any
# outgoing connection.  So ports come from a range below the kernel's
# ephemeral ports (/proc/sys/net/ipv4/ip_local_port_range), where neither
# a pick of port 0 nor a source port lands, and each is claimed across
# processes by an exclusive lock on a file named for it in a per-user
# folder (PORT_DIR), held until the test object stops.  The kernel drops
# the lock of a process that dies, however it dies, so a claim is never
# stale; the next claimant of that port, or the cleanup at the end of a
# test, removes the file.  A claimed port is also checked to be free on
# the wildcard address, IPv6 and IPv4 at once where the host has IPv6:
# scepserver listens on every address (":PORT").  Servers and clients
# use 127.0.0.1 only.
#
# TEST_PORT_RANGE=LOW-HIGH chooses the range instead.

my $PORT_DIR = "/tmp/scep-test-ports-$<";
my @PORT_RANGE;

sub port_range {
    return @PORT_RANGE if @PORT_RANGE;
    if (($ENV{TEST_PORT_RANGE} // '') =~ /^(\d+)-(\d+)$/
        && $1 >= 1024 && $2 <= 65535 && $1 + 100 <= $2)
    {
        return @PORT_RANGE = ($1, $2);
    }
    my ($lo, $hi) = (32768, 60999);
    if (open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
        (<$fh> // '') =~ /^\s*(\d+)\s+(\d+)/ and ($lo, $hi) = ($1, $2);
    }
    return @PORT_RANGE = (20000, $lo - 1) if $lo - 1 - 20000 >= 1000;
    return @PORT_RANGE = ($hi + 1, 65535) if 65535 - $hi >= 1000;
    die "no range of ports outside the ephemeral ones ($lo-$hi):"
        . " set TEST_PORT_RANGE=LOW-HIGH";
}

sub port_dir {
    mkdir $PORT_DIR, 0700;
    my @st = lstat $PORT_DIR;
    die "$PORT_DIR: not a folder of mine"
        unless @st && -d _ && $st[4] == $< && !($st[2] & 022);
    return $PORT_DIR;
}

# A claim on $port: an open file handle holding the lock, or undef when
# another process has the port.
sub claim_port {
    my ($port) = @_;
    for (1 .. 5) {
        my $path = port_dir() . "/$port";
        my $fh;
        unless (sysopen $fh, $path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600) {
            next if $!{ENOENT};           # the folder was just removed
            die "$path: $!";
        }
        unless (flock $fh, LOCK_EX | LOCK_NB) {
            close $fh;
            return undef;
        }
        # its last holder may have removed the file after it was opened
        my @a = stat $fh;
        my @b = stat $path;
        unless (@b && $a[0] == $b[0] && $a[1] == $b[1]) {
            close $fh;
            next;
        }
        truncate $fh, 0;
        syswrite $fh, "$$\n";
        return $fh;
    }
    return undef;
}

# The file goes while the lock is held: a process waiting on it then
# sees that its file is not the one at the path any more.
sub release_port {
    my ($port, $fh) = @_;
    unlink "$PORT_DIR/$port";
    close $fh;
    rmdir $PORT_DIR;                      # once empty
}

# The files of claims whose process is gone (killed before it could
# clean up), and the folder once it is empty.
sub sweep_ports {
    opendir my $dh, $PORT_DIR or return;
    for my $port (grep { /^\d+$/ } readdir $dh) {
        my $fh = claim_port($port) or next;
        release_port($port, $fh);
    }
    closedir $dh;
    rmdir $PORT_DIR;
}

# Free on the wildcard address; no SO_REUSEADDR, so a port with a
# connection in TIME_WAIT on it counts as taken too.
sub port_free {
    my ($port) = @_;
    my $s = IO::Socket::IP->new(LocalHost => '::', V6Only => 0,
                                LocalPort => $port, Proto => 'tcp')
         || IO::Socket::IP->new(LocalHost => '0.0.0.0',
                                LocalPort => $port, Proto => 'tcp');
    return 0 unless $s;
    close $s;
    return 1;
}

# A new claimed port, free as far as can be seen; the scan starts at a
# random place so that parallel tests seldom contend.
sub new_port {
    my ($self) = @_;
    my ($lo, $hi) = port_range();
    my $n = $hi - $lo + 1;
    my $start = int rand $n;
    for my $i (0 .. $n - 1) {
        my $port = $lo + ($start + $i) % $n;
        next if $self->{claims}{$port};
        my $fh = claim_port($port) or next;
        unless (port_free($port)) {
            release_port($port, $fh);
            next;
        }
        $self->{claims}{$port} = $fh;
        return $port;
    }
    die "no free port in $lo-$hi";
}

# A free port for a loopback server, kept per name so a test can refer to
# it again.
sub port {
    my ($self, $name) = @_;
    $name //= 'default';
    # a port the test has read is not moved when a server of the
    # harness fails to bind it
    $self->{told}{$name} = 1 unless caller eq __PACKAGE__;
    return $self->{ports}{$name} if $self->{ports}{$name};
    return $self->{ports}{$name} = $self->new_port;
}

# The name gets another port, for a server that could not bind its own;
# the old claim goes, it holds nothing.
sub move_port {
    my ($self, $name) = @_;
    my $old = $self->{ports}{$name};
    my $port = $self->new_port;
    my $fh = $old && delete $self->{claims}{$old};
    release_port($old, $fh) if $fh;
    return $self->{ports}{$name} = $port;
}

# A name for a port a server bound itself (a fault daemon on port 0)
sub set_port {
    my ($self, $name, $port) = @_;
    return $self->{ports}{$name} = $port;
}

sub release_ports {
    my ($self) = @_;
    return unless $self->{owner} == $$;       # not in a forked child
    my $claims = delete $self->{claims} // {};
    release_port($_, $claims->{$_}) for keys %$claims;
    $self->{claims} = {};
}

# Whether process $pid has a socket listening on TCP $port, as its
# /proc entries say (its own network namespace included): a server that
# did not get its port cannot be taken for one that did.  Undef where
# there is no /proc to ask.
sub listens {
    my ($self, $pid, $port) = @_;
    my %inode;
    for my $f ("/proc/$pid/net/tcp", "/proc/$pid/net/tcp6") {
        open my $fh, '<', $f or next;
        while (my $line = <$fh>) {
            my @w = split ' ', $line;
            next unless @w > 9 && $w[3] eq '0A';
            $inode{$w[9]} = 1 if $w[1] =~ /:([0-9A-F]{4})$/ && hex $1 == $port;
        }
    }
    return (-d '/proc/self/fd' ? 0 : undef) unless %inode;
    opendir my $dh, "/proc/$pid/fd" or return 0;
    for my $fd (readdir $dh) {
        my $l = readlink "/proc/$pid/fd/$fd" // next;
        return 1 if $l =~ /^socket:\[(\d+)\]$/ && $inode{$1};
    }
    return 0;
}

# Waits until the child $pid listens on $port; 0 when it exits first
# (it is reaped) or after $secs.
sub wait_listen {
    my ($self, $pid, $port, $secs, $netns) = @_;
    my $end = time + ($secs // 10) * $SLOW;
    while (time < $end) {
        if (waitpid($pid, WNOHANG) == $pid) {
            @{$self->{pids}} = grep { $_ != $pid } @{$self->{pids}};
            return 0;
        }
        my $l = $self->listens($pid, $port);
        return 1 if $l;
        # no /proc: whoever answers on the port
        return $self->wait_port($port, ($end - time) / $SLOW, $netns)
            if !defined $l;
        sleep 0.05;
    }
    return 0;
}

# A command that runs the nginx binary gets TEST_NGINX_WRAPPER in front
# of it; nginx_env() is for the child that execs it.
sub nginx_cmd {
    my ($self, @cmd) = @_;
    return @cmd unless @cmd && $cmd[0] eq $self->{nginx};
    return (split(' ', $ENV{TEST_NGINX_WRAPPER} // ''), @cmd);
}

sub nginx_env {
    $ENV{LD_PRELOAD} = $ENV{TEST_NGINX_PRELOAD} if $ENV{TEST_NGINX_PRELOAD};
}

sub run {
    my ($self, @cmd) = @_;
    my $is_nginx = @cmd && $cmd[0] eq $self->{nginx};
    @cmd = $self->nginx_cmd(@cmd);
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        nginx_env() if $is_nginx;
        exec @cmd or die "exec $cmd[0]: $!";
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

sub write_file {
    my ($self, $name, $text) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    make_path(dirname($path));
    open my $fh, '>', $path or die "$path: $!";
    binmode $fh;
    print $fh $text;
    close $fh;
    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    open my $fh, '<', $path or return '';
    binmode $fh;
    local $/;
    return scalar <$fh>;
}

# %%NAME%% in a configuration is replaced by port(NAME); %%DIR%%,
# %%MODULE%%, %%ROOT%%, %%CERT%% and %%KEY%% by their paths.
sub expand {
    my ($self, $text) = @_;
    $text =~ s/%%DIR%%/$self->{dir}/g;
    $text =~ s/%%ROOT%%/$ROOT/g;
    $text =~ s/%%MODULE%%/$self->{module}/g;
    if ($text =~ /%%(CERT|KEY)%%/) {
        my $crt = $self->tls_cert;
        $text =~ s/%%CERT%%/$crt/g;
        $text =~ s/%%KEY%%/$self->{dir}\/server.key/g;
    }
    $text =~ s/%%([A-Z0-9_]+)%%/$self->port($1)/ge;
    # a configuration other than start_nginx's own holds these ports now
    unless ($self->{own_conf}) {
        $self->{told}{$_} = 1 for $_[1] =~ /%%([A-Z0-9_]+)%%/g;
    }
    return $text;
}

# The main-context lines every test configuration needs and temp paths
# inside the test folder, so that nothing outside it is touched.
sub write_conf {
    my ($self, $conf, $name) = @_;
    $name //= 'nginx.conf';
    my $d = $self->{dir};

    my $text = $self->expand($conf);

    unless ($text =~ /^\s*load_module/m) {
        # TEST_SCEP_STATIC: the nginx binary has the module built in
        $text = ($ENV{TEST_SCEP_STATIC} ? ''
                 : "load_module $self->{module};\n")
            . ($ENV{TEST_NGINX_FOREGROUND}
               ? "master_process off;\ndaemon off;\n" : "daemon on;\n")
            . "pid $d/nginx.pid;\n"
            . "error_log $d/logs/error.log info;\n"
            . ($text =~ /^\s*worker_processes/m ? '' : "worker_processes 1;\n")
            . ($text =~ /^\s*events/m ? '' : "events {}\n")
            . $text;
    }

    my $paths = join '', map { "    ${_}_temp_path $d/tmp_$_;\n" }
        qw(client_body proxy fastcgi uwsgi scgi);
    $paths .= "    access_log $d/logs/access.log;\n";
    $text =~ s/^(http\s*\{[ \t]*\n)/$1$paths/m;

    return $self->write_file($name, $text);
}

sub test_conf {
    my ($self, $conf) = @_;
    my $path = $self->write_conf($conf, 'test.conf');
    return $self->nginx_t($path);
}

sub nginx_t {
    my ($self, $path) = @_;
    return $self->run($self->{nginx}, '-t', '-p', $self->{dir},
                      '-c', $path, '-e', "$self->{dir}/logs/test.log");
}

# With a configuration to write, a listening port another process took
# (bind() fails with "Address already in use") moves to another port and
# nginx starts again, as long as only this configuration has that port.
# Otherwise nginx fails to start with a message that names the port.
sub start_nginx {
    my ($self, $conf) = @_;
    for my $try (1 .. 5) {
        if (defined $conf) {
            local $self->{own_conf} = 1;
            $self->write_conf($conf);
        }
        my $log = "$self->{dir}/logs/error.log";
        my $size = -s $log // 0;
        my $err = do { local $@; eval { $self->start_nginx_once }; $@ };
        return $self unless $err;

        my ($port) = $err =~ /bind\(\) to \S+:(\d+) failed \(98: /;
        die $err unless $port;
        my ($name) = grep { $self->{ports}{$_} == $port }
                     sort keys %{$self->{ports}};
        my $why = !$name ? 'not a port of the test'
            : !defined $conf ? 'the configuration was written before'
            : $self->{told}{$name} ? "the test has read the port of $name"
            : !$self->{claims}{$port} ? "$name was not chosen by the test"
            : $try == 5 ? 'and so were four others' : '';
        die "nginx failed to start: port $port"
            . ($name ? " ($name)" : '') . " is in use by another process"
            . ($why ? ", $why" : '') . ":\n$err" if $why;
        diag("nginx: port $port ($name) is taken, trying another");
        $self->move_port($name);

        # what the failed start logged is no error of the test's: it goes
        # to a file of its own
        my $all = $self->read_file($log);
        $self->write_file("logs/error.log.start-$try",
                          substr($all, $size));
        truncate $log, $size;
    }
}

sub start_nginx_once {
    my ($self) = @_;

    unlink "$self->{dir}/nginx.pid";
    return $self->start_nginx_foreground if $ENV{TEST_NGINX_FOREGROUND};
    my ($rc, $out) = $self->run($self->{nginx}, '-p', $self->{dir}, '-c',
                                "$self->{dir}/nginx.conf",
                                '-e', "$self->{dir}/logs/error.log");
    die "nginx failed to start: $out" if $rc;

    $self->wait_file("$self->{dir}/nginx.pid")
        or die "nginx wrote no pid file";
    $self->{nginx_running} = 1;
    return $self;
}

# TEST_NGINX_FOREGROUND: nginx is a child of the test, ready once it has
# written its pid file (it listens by then) and its ports take connections.
sub start_nginx_foreground {
    my ($self) = @_;
    my $d = $self->{dir};
    my $log = "$d/logs/nginx.out";
    # what this start says, not what earlier ones said
    my %from = map { $_ => -s "$d/logs/$_" // 0 } qw(nginx.out error.log);
    my $pid = $self->spawn($log, $self->{nginx}, '-p', $d, '-c',
                           "$d/nginx.conf", '-e', "$d/logs/error.log");
    my $end = time + 10 * $SLOW;
    my $exited;
    until (-s "$d/nginx.pid") {
        # exit code 0: nginx went into the background (a configuration
        # of the test's own says "daemon on") and writes its pid file
        $exited = $? if !defined $exited && waitpid($pid, WNOHANG) == $pid;
        if ($exited || time > $end) {
            kill 'KILL', $pid;
            waitpid $pid, 0 unless defined $exited;
            @{$self->{pids}} = grep { $_ != $pid } @{$self->{pids}};
            die "nginx failed to start: "
                . join '', map { substr $self->read_file("logs/$_"),
                                        $from{$_} } qw(nginx.out error.log);
        }
        sleep 0.05;
    }
    if (defined $exited || $self->nginx_pid != $pid) {
        waitpid $pid, 0 unless defined $exited;
        @{$self->{pids}} = grep { $_ != $pid } @{$self->{pids}};
        $self->{nginx_running} = 1;
        return $self;
    }
    my $conf = $self->read_file('nginx.conf');
    for my $port ($conf =~ /^\s*listen\s+127\.0\.0\.1:(\d+)/mg) {
        $self->wait_port($port) or die "nginx does not listen on $port";
    }
    $self->{nginx_child} = $pid;
    $self->{nginx_running} = 1;
    return $self;
}

sub nginx_pid {
    my ($self) = @_;
    my $pid = $self->read_file('nginx.pid');
    chomp $pid;
    return $pid;
}

sub stop_nginx {
    my ($self) = @_;
    return unless $self->{nginx_running};
    return $self->stop_nginx_foreground if $self->{nginx_child};
    my $pid = $self->nginx_pid;
    if ($pid && kill 0, $pid) {
        kill 'QUIT', $pid;
        for (1 .. 200 * $SLOW) {
            last unless kill 0, $pid;
            sleep 0.05;
        }
        kill 'KILL', $pid if kill 0, $pid;
    }
    $self->{nginx_running} = 0;
}

# QUIT, and a wait for the exit: valgrind writes its leak report then.
# One nginx process checks for the signal before it waits for events, and
# under valgrind a signal that lands just before that wait leaves it
# waiting with nothing to wake it: so QUIT again every second.
sub stop_nginx_foreground {
    my ($self) = @_;
    my $pid = delete $self->{nginx_child};
    my $end = time + 20 * $SLOW;
    my $next = 0;
    while (waitpid($pid, WNOHANG) != $pid) {
        if (time > $end) {
            kill 'KILL', $pid;
            waitpid $pid, 0;
            last;
        }
        if (time >= $next) {
            kill 'QUIT', $pid;
            $next = time + 1;
        }
        sleep 0.05;
    }
    @{$self->{pids}} = grep { $_ != $pid } @{$self->{pids}};
    $self->{nginx_running} = 0;
}

sub wait_file {
    my ($self, $path, $secs) = @_;
    my $end = time + ($secs // 10) * $SLOW;
    while (time < $end) {
        return 1 if -s $path;
        sleep 0.05;
    }
    return 0;
}

# $netns and $host: a port in a network namespace the test made
sub wait_port {
    my ($self, $port, $secs, $netns, $host) = @_;
    my $end = time + ($secs // 10) * $SLOW;
    my $addr = ($host // '127.0.0.1') . ":$port";
    while (time < $end) {
        if ($netns) {
            my ($rc) = $self->run('ip', 'netns', 'exec', $netns, $^X,
                '-MIO::Socket::INET', '-e',
                'exit !IO::Socket::INET->new(PeerAddr => $ARGV[0],'
                . ' Timeout => 1)', $addr);
            return 1 if $rc == 0;
        } elsif (my $s = IO::Socket::INET->new(PeerAddr => $addr,
                                               Timeout => 1)) {
            close $s;
            return 1;
        }
        sleep 0.05;
    }
    return 0;
}

sub spawn {
    my ($self, $log, @cmd) = @_;
    my $is_nginx = @cmd && $cmd[0] eq $self->{nginx};
    @cmd = $self->nginx_cmd(@cmd);
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        setpgrp(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or die;
        open STDERR, '>&', \*STDOUT;
        nginx_env() if $is_nginx;
        exec @cmd or die "exec @cmd: $!";
    }
    push @{$self->{pids}}, $pid;
    return $pid;
}

# One CA per test, shared by all its back ends (as the NDES servers of
# one enterprise CA share it).
sub ca {
    my ($self) = @_;
    my $ca = "$self->{dir}/ca";
    return $ca if -f "$ca/ca.pem";
    my ($rc, $out) = $self->run('scepserver', 'ca', '-init', '-depot', $ca);
    die "scepserver ca -init: $out" if $rc;
    return $ca;
}

sub ca_pem { $_[0]->ca . '/ca.pem' }

# A real micromdm scepserver standing in for NDES; with netns, in that
# network namespace (made by the test) on the given port, with args,
# more options of scepserver.  scepserver exits (with status 0) when it
# cannot bind its port; then it starts again on another port under the
# same name, unless the test has read that name's port already or gave
# the port: a test reads a back end's port after its start ($b->{port},
# port(NAME), %%NAME%%).
sub start_backend {
    my ($self, %o) = @_;
    my $n = scalar @{$self->{backends}};
    my $name = $o{name} // "BACKEND$n";
    my @ns = $o{netns} ? ('ip', 'netns', 'exec', $o{netns}) : ();
    my $depot = "$self->{dir}/depot-$name";
    make_path($depot);
    for my $f (qw(ca.pem ca.key)) {
        copy($self->ca . "/$f", "$depot/$f") or die "copy $f: $!";
    }

    my $log = "$self->{dir}/logs/$name.log";
    my ($port, $pid);
    for my $try (1 .. 5) {
        $port = $o{port} // $self->port($name);
        my $from = -s $log // 0;
        $pid = $self->spawn($log, @ns, 'scepserver', '-depot', $depot,
                            '-port', $port,
                            '-challenge', $o{challenge} // 'secret',
                            @{$o{args} // []});
        last if $self->wait_listen($pid, $port, undef, $o{netns});

        my $keep = $self->{told}{$name} ? "the test has read the port of $name"
                   : defined $o{port} ? 'the test gave the port'
                   : $try == 5 ? 'and so were four others' : undef;
        my ($why, $in_use) = $self->not_started($pid, $log, $from,
                                                "scepserver on $port", $keep);
        die $why unless $in_use && !defined $keep;
        diag("$name: port $port is taken, trying another");
        $self->move_port($name);
    }

    my $b = { name => $name, port => $port, pid => $pid, log => $log };
    push @{$self->{backends}}, $b;
    return $b;
}

# Why a child that should listen does not: it exited, or it is killed
# now; with the last lines it logged from offset $from of its log, and
# whether they say its port is in use.  $keep: why the port stays.
sub not_started {
    my ($self, $pid, $log, $from, $what, $keep) = @_;
    my $alive = grep { $_ == $pid } @{$self->{pids}};
    if ($alive) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
        @{$self->{pids}} = grep { $_ != $pid } @{$self->{pids}};
    }
    my @l = grep { length } split /\n/,
                  substr($self->read_file($log), $from);
    my $last = join "\n", @l > 3 ? @l[-3 .. -1] : @l;
    my $in_use = !$alive && $last =~ /address already in use/i;
    my $why = "$what did not start: "
        . ($alive ? 'it did not listen in time' : 'it exited')
        . ($in_use ? ', its port is in use by another process'
                     . ($keep ? ", $keep" : '') : '')
        . ($last ? ":\n$last" : '');
    return wantarray ? ($why, $in_use) : $why;
}

sub stop_backend {
    my ($self, $b) = @_;
    kill 'KILL', $b->{pid};
    waitpid $b->{pid}, 0;
    @{$self->{pids}} = grep { $_ != $b->{pid} } @{$self->{pids}};
}

# the same back end again: same depot, same port (nginx's configuration
# names it), which the test object still holds; a port another process
# took meanwhile is tried again for a few seconds
sub restart_backend {
    my ($self, $b, %o) = @_;
    for my $try (1 .. 5) {
        my $from = -s $b->{log} // 0;
        $b->{pid} = $self->spawn($b->{log}, 'scepserver', '-depot',
                                 "$self->{dir}/depot-$b->{name}",
                                 '-port', $b->{port},
                                 '-challenge', $o{challenge} // 'secret');
        return $b if $self->wait_listen($b->{pid}, $b->{port});
        my ($why, $in_use) = $self->not_started($b->{pid}, $b->{log}, $from,
                                                "scepserver on $b->{port}"
                                                . ' (again)');
        die $why if $try == 5 || !$in_use;
        diag("$b->{name}: port $b->{port} is taken, trying again");
        sleep 1;
    }
}

# A fake back end that fails as a broken NDES does (t/lib/fault-daemon.pl);
# ARGS are the mode's FILE and TYPE.  It binds a port of its own choice
# (port 0) and writes it to a file: no other process can have it.
sub start_fault {
    my ($self, $mode, @args) = @_;
    # a name that %%NAME%% can hold: "ndes=403" is FAULT_NDES_4031
    (my $m = uc $mode) =~ s/\W/_/g;
    my $name = 'FAULT_' . $m . (++$self->{nfault});
    my $log = "$self->{dir}/logs/$name.log";
    my $pf = "$self->{dir}/$name.port";
    my $pid = $self->spawn($log, $^X, "$ROOT/t/lib/fault-daemon.pl",
                           '--port-file', $pf, 0, $mode,
                           grep { defined } @args);
    my $end = time + 10 * $SLOW;
    until (-s $pf) {
        my $exited = waitpid($pid, WNOHANG) == $pid;
        if ($exited || time > $end) {
            @{$self->{pids}} = grep { $_ != $pid } @{$self->{pids}}
                if $exited;
            die scalar $self->not_started($pid, $log, 0,
                                          "fault daemon $mode");
        }
        sleep 0.02;
    }
    my $port = $self->read_file($pf) =~ /^(\d+)$/m ? $1 : 0;
    $self->set_port($name, $port);
    return { name => $name, port => $port, pid => $pid };
}

# A slow back end in front of back end $b (t/lib/delay-proxy.pl): each
# PKIOperation is held $delay seconds; state() reads "now max total" of
# the PKIOperations it held, counted on its side.  With record => DIR,
# it writes each PKIOperation's answer, raw, to a file of its own in DIR.
sub start_delay {
    my ($self, $b, $delay, %o) = @_;
    my $name = 'DELAY' . (++$self->{ndelay});
    my $log = "$self->{dir}/logs/$name.log";
    my $pf = "$self->{dir}/$name.port";
    my $state = "$self->{dir}/$name.state";
    my $pid = $self->spawn($log, $^X, "$ROOT/t/lib/delay-proxy.pl",
                           '--port-file', $pf,
                           ($o{record} ? ('--record', $o{record}) : ()),
                           0, $b->{port}, $delay,
                           $state);
    my $end = time + 10 * $SLOW;
    until (-s $pf) {
        my $exited = waitpid($pid, WNOHANG) == $pid;
        die scalar $self->not_started($pid, $log, 0, 'delay proxy')
            if $exited || time > $end;
        sleep 0.02;
    }
    my $port = $self->read_file($pf) =~ /^(\d+)$/m ? $1 : 0;
    $self->set_port($name, $port);
    return { name => $name, port => $port, pid => $pid, state => $state };
}

# Waits for an error-log line matching $re that was not there before;
# returns the seconds it took, or undef after $secs.
sub wait_error_log {
    my ($self, $re, $secs, $after) = @_;
    my $start = time;
    my $end = $start + ($secs // 10) * $SLOW;
    my $skip = $after // 0;
    while (time < $end) {
        my @l = grep { /$re/ } split /\n/, $self->read_file('logs/error.log');
        return time - $start if @l > $skip;
        sleep 0.05;
    }
    return undef;
}

sub count_error_log {
    my ($self, $re) = @_;
    return scalar grep { /$re/ } split /\n/, $self->read_file('logs/error.log');
}

# SCEP operations the back end served (it logs one line for each).
sub backend_requests {
    my ($self, $b) = @_;
    my $log = $self->read_file($b->{log});
    return scalar(() = $log =~ /caller=endpoint\.go/g);
}

# What an NDES server answers to GetCACert, made with openssl in the
# folder NAME: a certs-only PKCS#7 (DER) of a CA "NDES-CA" and an RA
# certificate "NDES-MSCEP-RA" valid from START to END (openssl ca's
# YYYYMMDDHHMMSSZ), as an expired or expiring RA certificate needs.
# Returns the path of the PKCS#7.
sub ca_ra_bundle {
    my ($self, $name, $start, $end) = @_;
    my $dir = "$self->{dir}/$name";

    mkdir $dir or die "mkdir $dir: $!";
    mkdir "$dir/db" or die "mkdir $dir/db: $!";
    $self->write_file("$name/db/index", '');
    $self->write_file("$name/db/serial", "01\n");
    $self->write_file("$name/ca.cnf", <<'CNF');
[ca]
default_ca = d
[d]
dir = .
database = db/index
serial = db/serial
new_certs_dir = db
default_md = sha256
policy = p
unique_subject = no
x509_extensions = ra
[p]
commonName = supplied
[ra]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
# NDES's RA templates: Certificate Request Agent
extendedKeyUsage = 1.3.6.1.4.1.311.20.2.1
CNF

    my @cmds = (
        [qw(req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem
            -subj /CN=NDES-CA -days 365 -addext),
         'basicConstraints=critical,CA:TRUE'],
        [qw(req -new -newkey rsa:2048 -nodes -keyout ra.key -out ra.csr
            -subj /CN=NDES-MSCEP-RA)],
        [qw(ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in ra.csr
            -out ra.pem), '-startdate', $start, '-enddate', $end],
        [qw(crl2pkcs7 -nocrl -certfile ca.pem -certfile ra.pem -outform DER
            -out bundle.der)],
    );
    for my $cmd (@cmds) {
        my ($rc, $out) = $self->run('sh', '-c', "cd $dir && openssl @$cmd");
        die "openssl @$cmd: $out" if $rc;
    }

    return "$dir/bundle.der";
}

# A self-signed server certificate for 127.0.0.1 and localhost, and
# $san (such as "IP:10.0.0.1") if given at the first call.
sub tls_cert {
    my ($self, $san) = @_;
    my $crt = "$self->{dir}/server.crt";
    return $crt if -f $crt;
    my ($rc, $out) = $self->run('openssl', 'req', '-x509', '-newkey',
        'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', "$self->{dir}/server.key", '-out', $crt,
        '-days', '2', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'
                   . ($san ? ",$san" : ''));
    die "openssl req: $out" if $rc;
    return $crt;
}

# A real device: micromdm's scepclient enrolling in a fresh folder (it
# keeps its key and CSR in the working directory); with netns, in that
# network namespace.  A renewal: key, the key of certificate, the
# certificate it holds and signs with.
sub scepclient {
    my ($self, $url, %o) = @_;
    my $dir = tempdir('client-XXXXXX', DIR => $self->{dir});
    if (defined $o{key}) {
        copy($o{key}, "$dir/key.pem") or die "copy $o{key}: $!";
    }
    my @renew = defined $o{certificate}
        ? ('-certificate', $o{certificate}) : ();
    local $ENV{SSL_CERT_FILE} = $self->tls_cert if $url =~ /^https/;
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        chdir $dir or die;
        open STDERR, '>&', \*STDOUT;
        exec(($o{netns} ? ('ip', 'netns', 'exec', $o{netns}) : ()),
             'timeout', '60', 'scepclient', '-server-url', $url,
             '-private-key', 'key.pem', '-cn', $o{cn} // 'device',
             '-challenge', $o{challenge} // 'secret', @renew)
            or die "exec scepclient: $!";
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my $rc = $? >> 8;
    return ($rc, $out, -f "$dir/client.pem" ? "$dir/client.pem" : undef);
}

# The message tool: a pkiMessage of a chosen type, size and dialect.
sub scep_msg {
    my ($self, @args) = @_;
    my $tool = "$ROOT/build/scep-msg";
    -x $tool or die "$tool not built (run make)";
    my ($rc, $out) = $self->run($tool, '--ca', $self->ca_pem, @args);
    die "scep-msg @args failed: $out" if $rc;
    return $out;
}

# A DER pkiMessage from a new device: a subject of its own (scepserver
# issues one certificate a subject) and the back ends' challenge; ARGS
# are more options of build/scep-msg.
sub device_msg {
    my ($self, @args) = @_;
    my $n = ++$self->{devices};
    return $self->scep_msg('--challenge', 'secret', '--cn', "device-$n",
                           '--dialect', 'der', @args);
}

# A plain HTTP/1.1 exchange over TCP or TLS, to 127.0.0.1 or host.
# Returns a hash with status, headers (lower-case names), body and raw.
sub http {
    my ($port, $request, %o) = @_;
    my $s;
    if ($o{tls}) {
        require IO::Socket::SSL;
        $s = IO::Socket::SSL->new(
            PeerAddr => ($o{host} // '127.0.0.1') . ":$port",
            ($o{from} ? (LocalAddr => $o{from}) : ()),
            SSL_verify_mode => 0,
            SSL_hostname => $o{sni} // 'localhost',
            Timeout => ($o{timeout} // 10) * $SLOW,
        ) or return { status => 0, error => IO::Socket::SSL::errstr() };
    } else {
        $s = IO::Socket::INET->new(PeerAddr => ($o{host} // '127.0.0.1')
                                               . ":$port",
                                   ($o{from} ? (LocalAddr => $o{from}) : ()),
                                   Timeout => ($o{timeout} // 10) * $SLOW)
            or return { status => 0, error => "$!" };
    }

    $request = "GET $request HTTP/1.1\r\nHost: localhost\r\n"
               . "Connection: close\r\n\r\n" unless $request =~ /\r\n/;

    my $off = 0;
    while ($off < length $request) {
        my $n = $s->syswrite($request, length($request) - $off, $off);
        last unless $n;
        $off += $n;
    }

    my $raw = '';
    local $SIG{ALRM} = sub { die "timeout\n" };
    eval {
        alarm(($o{timeout} // 10) * $SLOW);
        while (1) {
            my $n = $s->sysread(my $buf, 65536);
            last unless $n;
            $raw .= $buf;
        }
        alarm(0);
    };
    close $s;

    my %r = (raw => $raw, status => 0, headers => {}, body => '');
    if ($raw =~ m{^HTTP/1\.[01] (\d{3})[^\r\n]*\r\n(.*?)\r\n\r\n(.*)\z}s) {
        $r{status} = $1;
        $r{body} = $3;
        for my $line (split /\r\n/, $2) {
            my ($k, $v) = split /:\s*/, $line, 2;
            $r{headers}{lc $k} = $v;
        }
        $r{body} = dechunk($r{body})
            if ($r{headers}{'transfer-encoding'} // '') =~ /chunked/i;
    }
    return \%r;
}

sub dechunk {
    my ($in) = @_;
    my $out = '';
    while ($in =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
        my $n = hex $1;
        last if $n == 0;
        $out .= substr($in, 0, $n, '');
        $in =~ s/^\r\n//;
    }
    return $out;
}

sub get {
    my ($self, $port, $uri, %o) = @_;
    return http($port, $uri, %o);
}

# A page in DIR/html that nginx's workers (another user) may read: the
# admin's error page of an error_page, say.
sub html_file {
    my ($self, $name, $text) = @_;
    mkdir "$self->{dir}/html";
    my $f = $self->write_file("html/$name", $text);
    chmod 0711, $self->{dir};
    chmod 0755, "$self->{dir}/html";
    chmod 0644, $f;
    return $f;
}

# Headless Chromium (TEST_CHROMIUM, /usr/bin/chromium unless set) with
# its options, at $url; what it prints (--dump-dom, say).  Its log is
# logs/chromium.log, its profile the test's own.
sub chromium_path { $ENV{TEST_CHROMIUM} || '/usr/bin/chromium' }

sub chromium {
    my ($self, $url, @args) = @_;
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>>', "$self->{dir}/logs/chromium.log";
        exec 'timeout', '120', chromium_path(), '--headless', '--no-sandbox',
             '--disable-gpu', '--no-first-run', '--disable-extensions',
             "--user-data-dir=$self->{dir}/chromium", @args, $url
            or die "exec chromium: $!";
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return $out;
}

# A request of any method, with $body (and its Content-Length) if given;
# Host: localhost unless $host.
sub request {
    my ($self, $port, $method, $uri, $body, $host) = @_;
    my $req = "$method $uri HTTP/1.1\r\nHost: " . ($host // 'localhost')
              . "\r\nConnection: close\r\n";
    $req .= "Content-Length: " . length($body) . "\r\n" if defined $body;
    $req .= "\r\n" . ($body // '');
    return http($port, $req);
}

# The JSON of a scep_status location (/status unless $uri), decoded; {}
# when it is not JSON.
sub status_json {
    my ($self, $port, $uri) = @_;
    require JSON::PP;
    my $r = http($port, $uri // '/status');
    return eval { JSON::PP->new->decode($r->{body}) } // {};
}

sub post {
    my ($self, $port, $uri, $body, %o) = @_;
    my $ct = $o{content_type} // 'application/x-pki-message';
    my $req = "POST $uri HTTP/1.1\r\nHost: localhost\r\n"
              . "Content-Type: $ct\r\n";
    if ($o{chunked}) {
        my $chunks = '';
        for (my $i = 0; $i < length $body; $i += 1000) {
            my $c = substr($body, $i, 1000);
            $chunks .= sprintf("%x\r\n%s\r\n", length $c, $c);
        }
        $req .= "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                . $chunks . "0\r\n\r\n";
    } else {
        $req .= "Content-Length: " . length($body)
                . "\r\nConnection: close\r\n\r\n$body";
    }
    return http($port, $req, %o);
}

# base64 of DER in the dialects SCEP clients send
sub dialect {
    my ($der, $dialect) = @_;
    require MIME::Base64;
    my $b = MIME::Base64::encode_base64($der, '');
    my $pct = sub { my $s = shift; $s =~ s/\+/%2B/g; $s =~ s{/}{%2F}g;
                    $s =~ s/=/%3D/g; $s };
    return $pct->($b) if $dialect eq 'std';
    if ($dialect eq 'raw') { $b =~ s/=/%3D/g; return $b }
    if ($dialect eq 'space') { $b =~ s/\+/%20/g; $b =~ s/=/%3D/g; return $b }
    if ($dialect eq 'urlsafe') { $b =~ tr{+/}{-_}; $b =~ s/=+$//; return $b }
    if ($dialect eq 'nopad') { $b =~ s/=+$//; return $pct->($b) }
    if ($dialect eq 'lines') {
        my @l = unpack('(A64)*', $b);
        return join('%0D%0A', map { $pct->($_) } @l);
    }
    die "unknown dialect $dialect";
}

# the pkiStatus of a CertRep ("0" SUCCESS, "2" FAILURE, "3" PENDING)
sub pki_status {
    my ($self, $der) = @_;
    my $f = $self->write_file('certrep-' . rand() . '.der', $der);
    my (undef, $dump) = $self->run('openssl', 'asn1parse', '-inform', 'DER',
                                   '-in', $f);
    unlink $f;
    return $1 if $dump =~ /:2\.16\.840\.1\.113733\.1\.9\.3\s*\n.*SET\s*\n.*PRINTABLESTRING\s*:(\d+)/;
    return undef;
}

# The lines of a log file, once it has at least $min of them: nginx
# writes the access log after the client may already have its answer.
sub lines {
    my ($self, $name, $min) = @_;
    my $end = time + 5 * $SLOW;
    my @l;
    while (1) {
        @l = split /\n/, $self->read_file($name);
        last if @l >= ($min // 0) || time > $end;
        sleep 0.02;
    }
    return @l;
}

sub error_log_lines {
    my ($self, $re) = @_;
    my $log = $self->read_file('logs/error.log');
    return grep { /$re/ } split /\n/, $log;
}

sub stop {
    my ($self) = @_;
    return if $self->{stopped}++;

    $self->stop_nginx;

    for my $pid (@{$self->{pids}}) {
        kill 'TERM', -$pid;
        kill 'TERM', $pid;
    }
    for my $pid (@{$self->{pids}}) {
        waitpid $pid, 0;
    }
    $self->release_ports;

    my @bad = $self->error_log_lines(qr/\[(alert|crit|emerg)\]/);
    is(join("\n", @bad), '', 'no alert, crit or emerg in the error log');
}

# Not in a child the test forked: its copy of the test objects is not
# its own to clean up.
END {
    my $mine;
    for my $t (@ALL) {
        next unless $t->{owner} == $$;
        $mine = 1;
        next if $t->{stopped};
        $t->stop_nginx;
        for my $pid (@{$t->{pids}}) {
            kill 'TERM', -$pid;
            kill 'TERM', $pid;
        }
    }
    # after the processes had their signal: they may still be on their
    # way out, on their ports, but they are leaving
    $_->release_ports for @ALL;
    sweep_ports() if $mine;
}

1;
