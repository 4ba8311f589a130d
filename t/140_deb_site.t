#!/usr/bin/perl

# The package the Debian way, as the README's "On Debian and Ubuntu, from
# the package" says: in a scratch root (an overlay of / in a mount
# namespace of this test) with Debian's own nginx.conf and default site,
# the system's nginx runs, and the package is installed under it; a
# reload loads the module into the running nginx.  The site the package
# ships is given a certificate, the addresses of two NDES stand-ins
# (real scepserver back ends) and enabled; nginx -t passes and a reload
# takes it (new workers, nothing at alert, crit or emerg in the error
# log), and a device enrolls through it over TLS with scepclient, both
# NDES stand-ins get the gateway's probes or requests.  Upgrading
# (dpkg -i over the installed package) leaves the site's link alone; a
# reload then keeps the module already loaded, a restart runs the new
# one, as the README says.  Removing the package sets the link aside
# (nginx -t is as before the install), installing it again puts the
# link back; so too with sites-available/ a symbolic link and a relative
# link to the site, which comes back relative; with the site file gone,
# the link stays away and postinst says so.  Purging leaves /etc/nginx
# and nginx -t as they were before the install.
#
# The scratch root is made, and Debian's configuration found, before the
# package is built: a host that lacks either skips the test (fails it
# under TEST_SCEP_NO_SKIP=1).  The test is of the system nginx with the
# package: a run of the suite against another nginx or module skips it.
#
# The test runs in network, mount and PID namespaces of its own, where
# the ports 80 and 443 of Debian's configuration are nobody else's, and
# nothing it started outlives it.  Needs root.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Copy qw(copy);
use Test::More;
use SCEPTest;

my $other = SCEPTest::other_nginx();
plan skip_all => $other if $other;
SCEPTest::skip_or_fail('needs root (namespaces, an overlay of /, chroot)')
    unless $> == 0;
for my $tool (qw(dpkg-buildpackage dh dh_nginx scepserver scepclient
                 unshare ip chroot))
{
    SCEPTest::skip_or_fail("no $tool (make deps installs it)")
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

# The whole test in network, mount and PID namespaces of its own, as
# their PID 1: killed, even by SIGKILL, it takes every process it
# started with it (the kernel kills a PID namespace's processes when
# its PID 1 dies), and the namespaces and mounts go with them.  unshare
# stays outside as the parent: killed, it sends the test SIGTERM, on
# which the test cleans up as on any SIGTERM.
my @NS = qw(--net --mount --propagation private --pid --fork
            --kill-child=SIGTERM --mount-proc);
unless ($ENV{SCEP_TEST_IN_NS}) {
    SCEPTest::skip_or_fail('cannot make network, mount and PID namespaces'
                           . ' here')
        if system("unshare @NS true >/dev/null 2>&1");
    $ENV{SCEP_TEST_IN_NS} = 1;
    exec('unshare', @NS, '--', $^X, $0, @ARGV) or die "exec unshare: $!";
}
system('ip', 'link', 'set', 'lo', 'up') == 0 or BAIL_OUT('ip link set lo up');

my $t = SCEPTest->new;
my $d = $t->dir;
my $root = SCEPTest::root();
my $r = "$d/root";
my $pid;      # the system nginx, while it runs
my ($rc, $out);

# ------------------------------------------------------------------
# the scratch root, with Debian's nginx configuration as nginx-common
# ships it

mkdir $_ for "$d/upper", "$d/work", $r;
($rc, $out) = $t->run('mount', '-t', 'overlay', 'overlay', '-o',
                      "lowerdir=/,upperdir=$d/upper,workdir=$d/work", $r);
SCEPTest::skip_or_fail("cannot make the scratch root (an overlay of /):"
                       . " $out")
    if $rc;
for my $m (qw(proc dev)) {
    ($rc, $out) = $t->run('mount', '--bind', "/$m", "$r/$m");
    BAIL_OUT("mount --bind /$m: $out") if $rc;
}

sub in_root { $t->run('chroot', $r, @_) }

# Before the test folder goes, and before SCEPTest's END (this one runs
# first): the system nginx, which runs in the scratch root, is stopped
# before the root is unmounted.
END {
    if ($pid) {
        kill 'TERM', -$pid;
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
    system('umount', '--recursive', '--lazy', $r) if $r && -d "$r/etc";
}

# no service is started or reloaded from in here
$t->write_file("$r/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n");
chmod 0755, "$r/usr/sbin/policy-rc.d";

# a package installed on the host is not the one under test
if ((in_root('dpkg-query', '-W', '-f=${Status}',
             'libnginx-mod-http-scep'))[1] =~ /installed/)
{
    in_root('dpkg', '--purge', 'libnginx-mod-http-scep');
}

# nginx.conf and the default site as nginx-common has them: the host's,
# unless it changed them, else those of the package from apt's cache
my (undef, $changed) = in_root('dpkg', '--verify', 'nginx-common');
if ($changed =~ m{ /etc/nginx/(nginx\.conf|sites-available/default)$}m) {
    my (undef, $v) = $t->run('dpkg-query', '-W', '-f=${Version}',
                             'nginx-common');
    $v =~ s/:/%3a/;
    my $pkg = "/var/cache/apt/archives/nginx-common_${v}_all.deb";
    SCEPTest::skip_or_fail("this host's Debian nginx configuration is"
                           . " changed and $pkg is not there")
        unless -f $pkg;
    ($rc, $out) = $t->run('dpkg-deb', '--extract', $pkg, "$d/nginx-common");
    BAIL_OUT("dpkg-deb --extract $pkg: $out") if $rc;
    copy("$d/nginx-common/etc/nginx/$_", "$r/etc/nginx/$_") or die "$_: $!"
        for 'nginx.conf', 'sites-available/default';
}
unlink glob("$r/etc/nginx/conf.d/* $r/etc/nginx/sites-enabled/*");
symlink '/etc/nginx/sites-available/default',
        "$r/etc/nginx/sites-enabled/default" or die "symlink: $!";

# ------------------------------------------------------------------
# the package

my ($version) = $t->read_file("$root/src/ngx_http_scep_module.h")
    =~ /NGX_HTTP_SCEP_MODULE_VERSION\s+"([^"]+)"/;
($rc, $out) = $t->run("$root/packaging/build-deb", "$d/out");
is($rc, 0, 'packaging/build-deb builds the package')
    or BAIL_OUT(substr($out, -3000));
my ($deb) = glob("$d/out/libnginx-mod-http-scep_${version}_*.deb");

# ------------------------------------------------------------------
# two NDES stand-ins: a scepserver each, behind an nginx of the test's
# that serves it at NDES's path

my @ndes = map { $t->start_backend(name => "SCEP$_") } 0, 1;
$t->start_nginx(<<'CONF');
http {
    server {
        listen 127.0.0.1:%%NDES0%%;
        access_log %%DIR%%/logs/ndes0-access.log;
        location /certsrv/mscep/mscep.dll {
            proxy_pass http://127.0.0.1:%%SCEP0%%/scep;
        }
    }
    server {
        listen 127.0.0.1:%%NDES1%%;
        access_log %%DIR%%/logs/ndes1-access.log;
        location /certsrv/mscep/mscep.dll {
            proxy_pass http://127.0.0.1:%%SCEP1%%/scep;
        }
    }
}
CONF

# what is under /etc/nginx: names, types, link targets
sub etc_nginx {
    my (undef, $list) = in_root('find', '/etc/nginx',
                                '-path', '/etc/nginx/ssl', '-prune', '-o',
                                '-printf', '%p %y %l\n');
    return join "\n", sort split /\n/, $list;
}

my @before = in_root('nginx', '-t');
my $etc_before = etc_nginx();
is($before[0], 0, "Debian's configuration passes nginx -t before")
    or diag($before[1]);

# The system's nginx, as its service runs it, in the foreground here:
# it reads /etc/nginx/nginx.conf of the scratch root and writes its pid
# to /run/nginx.pid there, where "nginx -s reload" (what the service's
# reload runs) finds it.
my $errlog = "$r/var/log/nginx/error.log";
my $errlog_from = (-s $errlog) || 0;

sub start_system_nginx {
    $pid = $t->spawn("$d/logs/system-nginx.out", 'chroot', $r,
                     '/usr/sbin/nginx',
                     '-g', 'daemon off; master_process on;');
    return $t->wait_port(80);
}

sub stop_system_nginx {
    kill 'QUIT', $pid;
    waitpid $pid, 0;
    @{$t->{pids}} = grep { $_ != $pid } @{$t->{pids}};
    undef $pid;
}

# the system nginx's workers, by their pids
sub workers {
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my ($p, $pp) = (<$fh> // '') =~ /^(\d+) \(.*\) \S (\d+) / or next;
        push @w, $p if $pp == $pid;
    }
    return sort { $a <=> $b } @w;
}

# The error log's lines at alert, crit or emerg since $errlog_from.
sub errors {
    my $text = substr($t->read_file($errlog), $errlog_from);
    return join "\n", grep { /\[(alert|crit|emerg)\]/ } split /\n/, $text;
}

# nginx -s reload, as the service's reload; true once the old workers
# are gone and new ones run: a reload nginx refuses keeps the old ones
sub reload {
    my ($what) = @_;
    my @old = workers();
    my ($rc, $out) = in_root('nginx', '-s', 'reload');
    is($rc, 0, "$what: nginx -s reload") or diag($out);
    my %old = map { $_ => 1 } @old;
    my $end = time + 15 * ($ENV{TEST_TIMEOUT_FACTOR} || 1);
    my @new;
    while (time < $end) {
        my @now = workers();
        @new = grep { !$old{$_} } @now;
        last if @new && @new == @now;
        select undef, undef, undef, 0.1;
    }
    ok(@old && @new && !grep({ $old{$_} } workers()),
       "$what: new workers run the new configuration, the old ones are gone")
        or diag("workers before: @old, now: @{[workers()]}\n" . errors());
    is(errors(), '', "$what: the error log has no alert, crit or emerg");
}

ok(start_system_nginx(),
   "the system nginx runs Debian's configuration before the install")
    or diag($t->read_file("$d/logs/system-nginx.out") . errors());

# ------------------------------------------------------------------
# 1. install

copy($deb, "$r/tmp/scep.deb") or die "copy: $!";
($rc, $out) = in_root('dpkg', '-i', '/tmp/scep.deb');
is($rc, 0, 'dpkg -i installs it') or diag($out);

my (undef, $conffiles) = in_root('dpkg-query', '-W', '-f=${Conffiles}',
                                 'libnginx-mod-http-scep');
like($conffiles, qr{^ /etc/nginx/scep_proxy_params \w+$}m,
     '/etc/nginx/scep_proxy_params is a conffile');
like($conffiles, qr{^ /etc/nginx/sites-available/scep-gateway \w+$}m,
     '/etc/nginx/sites-available/scep-gateway is a conffile');
ok(!-e "$r/etc/nginx/sites-enabled/scep-gateway"
   && !-e "$r/etc/nginx/conf.d/scep-gateway.conf",
   'the site is not enabled, nothing is in conf.d');
($rc, $out) = in_root('nginx', '-t');
is($rc, 0, 'nginx -t passes with the package installed') or diag($out);

# the reload the install has nginx do (its trigger; not run in here):
# the module is loaded into the running nginx
reload('after the install');
my @loaded = map { $t->read_file("/proc/$_/maps") } workers();
ok(@loaded && !grep({ !m{/ngx_http_scep_module\.so$}m } @loaded),
   'after the install: every new worker has the module loaded');
my $res = $t->get(80, "GET / HTTP/1.1\r\nHost: localhost\r\n"
                   . "Connection: close\r\n\r\n");
ok($res->{status} == 200 && $res->{body} =~ /Welcome to nginx/,
   "after the install: port 80 is still Debian's default site");

# 2. the certificate, for the name devices use
mkdir "$r/etc/nginx/ssl";
copy($t->tls_cert, "$r/etc/nginx/ssl/scep-gateway.crt") or die;
copy("$d/server.key", "$r/etc/nginx/ssl/scep-gateway.key") or die;
my $site = "$r/etc/nginx/sites-available/scep-gateway";
my $text = $t->read_file($site);
ok($text =~ s/^(\s*server_name\s+)scep\.example\.com;/${1}localhost;/m,
   'the site names the server scep.example.com');

# 3. the NDES addresses
my @addr = map { '127.0.0.1:' . $t->port("NDES$_") } 0, 1;
ok($text =~ s/^(\s*server\s+)192\.0\.2\.11:80;/$1$addr[0];/m
   && $text =~ s/^(\s*server\s+)192\.0\.2\.12:80;/$1$addr[1];/m,
   'the site has two NDES addresses to set');
unlike($text, qr/^\s*listen\s[^;]*default_server/m,
       'the site has no default_server');

# the device under test encrypts with single DES
ok($text =~ s/^(\s*scep_algorithms\s[^;]*);/$1 des;/m,
   'the site has the scep_algorithms to add des to');
$t->write_file($site, $text);

# 4. enable, 5. nginx -t
($rc, $out) = in_root('ln', '-s', '/etc/nginx/sites-available/scep-gateway',
                      '/etc/nginx/sites-enabled/');
is($rc, 0, 'ln -s enables the site') or diag($out);
($rc, $out) = in_root('nginx', '-t');
ok($rc == 0 && $out =~ /test is successful/,
   "nginx -t passes: Debian's nginx.conf, default site and the gateway")
    or diag($out);

# 6. reload: the running nginx takes the site
reload('with the site enabled');
ok($t->wait_port(443), 'nginx listens on 443 too')
    or diag($t->read_file("$d/logs/system-nginx.out") . errors());

# a device enrolls over TLS
my ($crc, $cout, $cert) = $t->scepclient(
    'https://localhost/certsrv/mscep/mscep.dll', cn => 'deb-device');
ok($crc == 0 && $cert, 'scepclient enrolls through the site over TLS')
    or diag($cout);
if ($cert) {
    ($rc, $out) = $t->run('openssl', 'verify', '-CAfile', $t->ca_pem, $cert);
    is($rc, 0, 'its certificate is issued by the NDES CA') or diag($out);
}
my @seen = $t->lines("$r/var/log/nginx/scep-access.log", 1);
my $post = qr{"POST /certsrv/mscep/mscep\.dll\?operation=PKIOperation }
           . qr{HTTP/1\.1" 200 };
ok((grep { /$post/ } @seen),
   'the PKIOperation went through the site') or diag(join "\n", @seen);

# the site over plain HTTP; anything else stays Debian's default site
$res = $t->get(80, "GET /certsrv/mscep/mscep.dll?operation=GetCACaps"
                . " HTTP/1.1\r\nHost: localhost\r\nConnection: close"
                . "\r\n\r\n");
ok($res->{status} == 200 && $res->{body} =~ /POSTPKIOperation/,
   'port 80, the site: GetCACaps from the back ends');
$res = $t->get(80, "GET / HTTP/1.1\r\nHost: other.example\r\n"
                . "Connection: close\r\n\r\n");
ok($res->{status} == 200 && $res->{body} =~ /Welcome to nginx/,
   "port 80, another name: Debian's default site");
$res = $t->get(443, '/certsrv/mscep_admin/', tls => 1);
is($res->{status}, 404, 'the site does not serve /certsrv/mscep_admin/');

# both NDES stand-ins: the health checks probe each, the requests go
# to either
for my $n (0, 1) {
    my @hits = grep { m{ "(GET|POST) /certsrv/mscep/mscep\.dll} }
               $t->lines("$d/logs/ndes$n-access.log", 1);
    ok(@hits, "NDES stand-in $n gets probes or requests through the site");
}

# ------------------------------------------------------------------
# upgrade, with the site enabled and nginx running: dpkg -i over the
# installed package

($rc, $out) = in_root('dpkg', '-i', '/tmp/scep.deb');
is($rc, 0, 'dpkg -i over the installed package') or diag($out);
(undef, $out) = in_root('readlink', '/etc/nginx/sites-enabled/scep-gateway');
is($out, "/etc/nginx/sites-available/scep-gateway\n",
   'upgrade: the link in sites-enabled is unchanged');
ok(!-e "$r/var/lib/libnginx-mod-http-scep",
   'upgrade: no notes of links set aside');
($rc, $out) = in_root('nginx', '-t');
is($rc, 0, 'nginx -t passes after the upgrade') or diag($out);

# The module's lines in the workers' maps ('none' for a worker without
# it): once dpkg replaced the file, the module nginx had loaded is
# "(deleted)" there.
sub module_maps {
    return map {
        my @m = map { m{(/ngx_http_scep_module\.so(?: \(deleted\))?)$} }
                split /\n/, $t->read_file("/proc/$_/maps");
        @m ? @m : 'none';
    } workers();
}

# the README's word: a reload after an upgrade keeps the module loaded
reload('upgrade');
my @maps = module_maps();
ok(@maps && !grep({ !/\(deleted\)$/ } @maps),
   'upgrade: after a reload the workers still run the replaced module')
    or diag(join "\n", @maps);
stop_system_nginx();

# the restart the README asks for after an upgrade: a cold start with
# the site enabled runs the new module
ok(start_system_nginx() && $t->wait_port(443),
   'upgrade: the system nginx starts with the site, on 80 and 443')
    or diag($t->read_file("$d/logs/system-nginx.out") . errors());
@maps = module_maps();
ok(@maps && !grep({ !m{so$} } @maps),
   'upgrade: after a restart the workers run the new module')
    or diag(join "\n", @maps);
$res = $t->get(443, '/certsrv/mscep/mscep.dll?operation=GetCACaps',
               tls => 1);
ok($res->{status} == 200 && $res->{body} =~ /POSTPKIOperation/,
   'upgrade: GetCACaps through the site after the start');
stop_system_nginx();
is(errors(), '', "the system nginx's error log: no alert, crit or emerg");

# ------------------------------------------------------------------
# remove, with the site enabled

($rc, $out) = in_root('dpkg', '-r', 'libnginx-mod-http-scep');
is($rc, 0, 'dpkg -r removes it') or diag($out);
ok(!-l "$r/etc/nginx/sites-enabled/scep-gateway"
   && -f "$r/etc/nginx/sites-available/scep-gateway",
   'the link is set aside, the site itself kept');
is_deeply([in_root('nginx', '-t')], \@before,
          'nginx -t after dpkg -r: as before the install');

# a copy of the site is not the package's to set aside
copy($site, "$r/etc/nginx/sites-enabled/scep-copy") or die;
($rc, $out) = in_root('nginx', '-t');
ok($rc != 0 && $out =~ /unknown directive "scep_health_check"/,
   'a copy of the site in sites-enabled: nginx -t fails') or diag($out);
unlink "$r/etc/nginx/sites-enabled/scep-copy";

# installed again, the link is back
($rc, $out) = in_root('dpkg', '-i', '/tmp/scep.deb');
is($rc, 0, 'dpkg -i again') or diag($out);
(undef, $out) = in_root('readlink', '/etc/nginx/sites-enabled/scep-gateway');
is($out, "/etc/nginx/sites-available/scep-gateway\n",
   'the link is back in sites-enabled');
($rc, $out) = in_root('nginx', '-t');
is($rc, 0, 'nginx -t passes with the site again') or diag($out);

# the same with sites-available/ a symbolic link to another folder, and
# a relative link to the site: prerm finds it by the path it resolves to,
# postinst puts it back relative
# (copied, not renamed: the overlay does not rename a folder of /)
($rc, $out) = in_root('sh', '-ec', 'cd /etc/nginx; cp -a sites-available'
                      . ' sites-real; rm -r sites-available;'
                      . ' ln -s sites-real sites-available');
is($rc, 0, 'sites-available/ made a link to sites-real/') or diag($out);
unlink "$r/etc/nginx/sites-enabled/scep-gateway";
symlink '../sites-available/scep-gateway',
        "$r/etc/nginx/sites-enabled/gw" or die "symlink: $!";
($rc, $out) = in_root('dpkg', '-r', 'libnginx-mod-http-scep');
is($rc, 0, 'sites-available/ a symbolic link: dpkg -r') or diag($out);
ok(!-l "$r/etc/nginx/sites-enabled/gw",
   'the relative link through it is set aside');
is_deeply([in_root('nginx', '-t')], \@before,
          'nginx -t after dpkg -r: as before the install');
($rc, $out) = in_root('dpkg', '-i', '/tmp/scep.deb');
is($rc, 0, 'dpkg -i again') or diag($out);
is(readlink("$r/etc/nginx/sites-enabled/gw"),
   '../sites-available/scep-gateway', 'the link is back, relative');
unlink "$r/etc/nginx/sites-enabled/gw";
($rc, $out) = in_root('sh', '-ec', 'cd /etc/nginx; rm sites-available;'
                      . ' cp -a sites-real sites-available; rm -r sites-real');
is($rc, 0, 'sites-available/ a folder again') or diag($out);
symlink '/etc/nginx/sites-available/scep-gateway',
        "$r/etc/nginx/sites-enabled/scep-gateway" or die "symlink: $!";

# the site file gone when the package is installed again: the link stays
# away, and postinst says why
($rc, $out) = in_root('dpkg', '-r', 'libnginx-mod-http-scep');
is($rc, 0, 'dpkg -r, then the site file moved away') or diag($out);
rename $site, "$site.away" or die "rename: $!";
($rc, $out) = in_root('dpkg', '-i', '/tmp/scep.deb');
ok($rc == 0 && $out =~ m{scep-gateway is gone: not enabling it again},
   'dpkg -i: postinst says the link is not put back') or diag($out);
ok(!-e "$r/etc/nginx/sites-enabled/scep-gateway"
   && !-l "$r/etc/nginx/sites-enabled/scep-gateway"
   && !-e "$r/var/lib/libnginx-mod-http-scep",
   'no link, and the note is dropped');
rename "$site.away", $site or die "rename: $!";
symlink '/etc/nginx/sites-available/scep-gateway',
        "$r/etc/nginx/sites-enabled/scep-gateway" or die "symlink: $!";

# ------------------------------------------------------------------
# purge, with the site enabled

($rc, $out) = in_root('dpkg', '--purge', 'libnginx-mod-http-scep');
is($rc, 0, 'dpkg --purge') or diag($out);
is_deeply([in_root('nginx', '-t')], \@before,
          'nginx -t after dpkg --purge: as before the install');
is(etc_nginx(), $etc_before,
   '/etc/nginx: as before the install (but for ssl/, the certificate)');
ok(!-e "$r/var/lib/libnginx-mod-http-scep", 'nothing left in /var/lib');

$t->stop;
done_testing;
