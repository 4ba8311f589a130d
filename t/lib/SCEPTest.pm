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

sub new {
    my ($class, %opts) = @_;

    my $self = bless {
        dir       => tempdir('scep-test-XXXXXX', TMPDIR => 1,
                             CLEANUP => !$ENV{TEST_KEEP}),
        nginx     => $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx',
        module    => $ENV{TEST_SCEP_MODULE}
                     || "$ROOT/build/ngx_http_scep_module.so",
        ports     => {},
        backends  => [],
        pids      => [],
        %opts,
    }, $class;

    -x $self->{nginx} or BAIL_OUT("no nginx binary at $self->{nginx}");
    -f $self->{module} or $ENV{TEST_SCEP_STATIC}
        or BAIL_OUT("module not built: $self->{module} (run make)");

    make_path("$self->{dir}/logs");
    push @ALL, $self;
    return $self;
}

sub dir { $_[0]{dir} }

# A free port for a loopback server, kept per name so a test can refer to
# it again.  It is chosen by binding (not listening) on the wildcard
# address, IPv6 and IPv4 at once where the host has IPv6: scepserver
# listens on every address (":PORT"), and a port free on 127.0.0.1 alone
# may be taken there.  Servers and clients still use 127.0.0.1 only.
sub port {
    my ($self, $name) = @_;
    $name //= 'default';
    return $self->{ports}{$name} if $self->{ports}{$name};

    my $s = IO::Socket::IP->new(LocalHost => '::', V6Only => 0,
                                LocalPort => 0, Proto => 'tcp')
        || IO::Socket::IP->new(LocalHost => '0.0.0.0', LocalPort => 0,
                               Proto => 'tcp')
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $self->{ports}{$name} = $port;
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

sub start_nginx {
    my ($self, $conf) = @_;
    $self->write_conf($conf) if defined $conf;

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
            die "nginx failed to start: " . $self->read_file($log)
                . $self->read_file('logs/error.log');
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
# more options of scepserver.
sub start_backend {
    my ($self, %o) = @_;
    my $n = scalar @{$self->{backends}};
    my $name = $o{name} // "BACKEND$n";
    my $port = $o{port} // $self->port($name);
    my @ns = $o{netns} ? ('ip', 'netns', 'exec', $o{netns}) : ();
    my $depot = "$self->{dir}/depot-$name";
    make_path($depot);
    for my $f (qw(ca.pem ca.key)) {
        copy($self->ca . "/$f", "$depot/$f") or die "copy $f: $!";
    }

    my $log = "$self->{dir}/logs/$name.log";
    my $pid = $self->spawn($log, @ns, 'scepserver', '-depot', $depot,
                           '-port', $port,
                           '-challenge', $o{challenge} // 'secret',
                           @{$o{args} // []});
    $self->wait_port($port, undef, $o{netns})
        or die "scepserver on $port did not start";

    my $b = { name => $name, port => $port, pid => $pid, log => $log };
    push @{$self->{backends}}, $b;
    return $b;
}

sub stop_backend {
    my ($self, $b) = @_;
    kill 'KILL', $b->{pid};
    waitpid $b->{pid}, 0;
    @{$self->{pids}} = grep { $_ != $b->{pid} } @{$self->{pids}};
}

# the same back end again: same depot, same port
sub restart_backend {
    my ($self, $b, %o) = @_;
    $b->{pid} = $self->spawn($b->{log}, 'scepserver', '-depot',
                             "$self->{dir}/depot-$b->{name}",
                             '-port', $b->{port},
                             '-challenge', $o{challenge} // 'secret');
    $self->wait_port($b->{port}) or die "scepserver on $b->{port} is not back";
    return $b;
}

# A fake back end that fails as a broken NDES does (t/lib/fault-daemon.pl);
# ARGS are the mode's FILE and TYPE
sub start_fault {
    my ($self, $mode, @args) = @_;
    my $name = 'FAULT_' . uc($mode) . (++$self->{nfault});
    my $port = $self->port($name);
    my $pid = $self->spawn("$self->{dir}/logs/$name.log", $^X,
                           "$ROOT/t/lib/fault-daemon.pl", $port, $mode,
                           grep { defined } @args);
    $self->wait_port($port) or die "fault daemon $mode did not start";
    return { name => $name, port => $port, pid => $pid };
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
[p]
commonName = supplied
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
# network namespace.
sub scepclient {
    my ($self, $url, %o) = @_;
    my $dir = tempdir('client-XXXXXX', DIR => $self->{dir});
    local $ENV{SSL_CERT_FILE} = $self->tls_cert if $url =~ /^https/;
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        chdir $dir or die;
        open STDERR, '>&', \*STDOUT;
        exec(($o{netns} ? ('ip', 'netns', 'exec', $o{netns}) : ()),
             'timeout', '60', 'scepclient', '-server-url', $url,
             '-private-key', 'key.pem', '-cn', $o{cn} // 'device',
             '-challenge', $o{challenge} // 'secret')
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

    my @bad = $self->error_log_lines(qr/\[(alert|crit|emerg)\]/);
    is(join("\n", @bad), '', 'no alert, crit or emerg in the error log');
}

END {
    for my $t (@ALL) {
        next if $t->{stopped};
        $t->stop_nginx;
        for my $pid (@{$t->{pids}}) {
            kill 'TERM', -$pid;
            kill 'TERM', $pid;
        }
    }
}

1;
