#!/usr/bin/perl

# make deb: the package is built here (packaging/build-deb, into the
# test's folder) and checked: its control fields (the nginx ABI of the
# system nginx, libssl3, libjansson4), its files laid out as Debian's own
# nginx modules are (with scep_proxy_params and the site as conffiles),
# lintian, with --pedantic and without, exits 0 having processed it,
# with no error or warning, and no info or pedantic tag but those the
# test names; then it is installed with dpkg into a
# scratch root (an overlay of / in a mount namespace of this
# test, so nothing outside the test's folder changes) where nginx -t
# loads the module through /etc/nginx/modules-enabled, and removed and
# purged again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $other = SCEPTest::other_nginx();
plan skip_all => $other if $other;
for my $tool (qw(dpkg-buildpackage dh dh_nginx lintian)) {
    SCEPTest::skip_or_fail("no $tool (make deps installs it)")
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

my $t = SCEPTest->new;
my $d = $t->dir;
my $root = SCEPTest::root();

my ($version) = $t->read_file("$root/src/ngx_http_scep_module.h")
    =~ /NGX_HTTP_SCEP_MODULE_VERSION\s+"([^"]+)"/;
my (undef, $arch) = $t->run('dpkg', '--print-architecture');
chomp $arch;
my (undef, $provides) = $t->run('dpkg-query', '-W', '-f=${Provides}',
                                'nginx');
my ($abi) = $provides =~ /\b(nginx-abi-[\w.~+-]+)/;
ok($abi, "the system nginx provides an ABI ($abi)");

my ($rc, $out) = $t->run("$root/packaging/build-deb", "$d/out");
is($rc, 0, 'packaging/build-deb builds the package')
    or diag(substr($out, -3000));

my $deb = "$d/out/libnginx-mod-http-scep_${version}_$arch.deb";
ok(-f $deb, "libnginx-mod-http-scep_${version}_$arch.deb")
    or BAIL_OUT("no package: $out");

# ------------------------------------------------------------------
# control fields

my %f;
for my $field (qw(Package Version Architecture Section Priority Depends
                  Maintainer Description))
{
    (undef, $f{$field}) = $t->run('dpkg-deb', '--field', $deb, $field);
    chomp $f{$field};
}
is($f{Package}, 'libnginx-mod-http-scep', 'Package');
is($f{Version}, $version, "Version $version, the module's");
is($f{Architecture}, $arch, "Architecture $arch");
is($f{Section}, 'httpd', 'Section httpd, as nginx modules');
my %dep = map { /^(\S+)/ ? ($1 => $_) : () } split /,\s*/, $f{Depends};
ok($dep{$abi}, "Depends on $abi, the ABI it was built for")
    or diag($f{Depends});
ok($dep{libssl3}, "Depends on libssl3 ($dep{libssl3})");
ok($dep{libjansson4}, "Depends on libjansson4 ($dep{libjansson4})");
like($f{Description}, qr/^SCEP gateway module for nginx/,
     'Description');

# ------------------------------------------------------------------
# files

($rc, $out) = $t->run('dpkg-deb', '--contents', $deb);
my %file = map { (split ' ', $_)[5] =~ s{^\.}{}r => 1 } split /\n/, $out;
my $doc = '/usr/share/doc/libnginx-mod-http-scep';
for my $path ('/usr/lib/nginx/modules/ngx_http_scep_module.so',
              '/usr/share/nginx/modules-available/mod-http-scep.conf',
              '/etc/nginx/scep_proxy_params',
              '/etc/nginx/sites-available/scep-gateway',
              "$doc/copyright", "$doc/changelog.gz",
              "$doc/examples/monitoring/scep-alerts.yml",
              "$doc/examples/monitoring/prometheus.yml",
              "$doc/examples/monitoring/grafana-scep-gateway.json",
              "$doc/examples/ha-pair/keepalived.conf",
              "$doc/examples/ha-pair/scep-gateway-check",
              map { s{.*/conf-examples/}{$doc/examples/}r }
                  glob("$root/conf-examples/*.conf"))
{
    ok($file{$path}, "has $path");
}
ok($file{"$doc/README.md"} || $file{"$doc/README.md.gz"}, "has $doc/README.md");
# the package's own folders with all in them, its files in /etc, and
# the folders above them
my $own = qr{^/usr/(lib/nginx/modules|share/nginx/modules-available
                    |share/doc/libnginx-mod-http-scep)(/|$)}x;
my $etc = qr{^/etc/nginx/(scep_proxy_params|sites-available/scep-gateway)$};
my $above = qr{^/((usr|etc)/?|usr/lib/?|usr/lib/nginx/?|usr/share/?
                  |usr/share/doc/?|usr/share/nginx/?|etc/nginx/?
                  |etc/nginx/sites-available/?)?$}x;
my @stray = grep { !/$own/ && !/$etc/ && !/$above/ } sort keys %file;
is("@stray", '', 'nothing else');

mkdir "$d/x";
($rc, $out) = $t->run('dpkg-deb', '--extract', $deb, "$d/x");
is($t->read_file("$d/x/usr/share/nginx/modules-available/mod-http-scep.conf"),
   "load_module modules/ngx_http_scep_module.so;\n",
   'mod-http-scep.conf loads the module');

($rc, $out) = $t->run('dpkg-deb', '--control', $deb, "$d/control");
like($t->read_file("$d/control/postinst"),
     qr{ln -sf /usr/share/nginx/modules-available/\$from\s*\\\s*/etc/nginx/modules-enabled/\$to},
     'postinst enables it in /etc/nginx/modules-enabled (dh_nginx)');
like($t->read_file("$d/control/postinst"),
     qr/mod-http-scep\.conf:50-mod-http-scep\.conf/,
     'as 50-mod-http-scep.conf');
ok(-s "$d/control/prerm" && -s "$d/control/postrm",
   'prerm and postrm disable it again');
is($t->read_file("$d/control/conffiles"),
   "/etc/nginx/scep_proxy_params\n/etc/nginx/sites-available/scep-gateway\n",
   'conffiles: scep_proxy_params and the site, nothing in conf.d');

# ------------------------------------------------------------------
# lintian

# Errors and warnings: none, whatever the lintian, with --pedantic or
# without.  Info and pedantic tags: none but those named here, each with
# why it is accepted.  The list is empty with Debian 12's lintian
# (2.116); a newer lintian may bring new info or pedantic tags: judge
# each, then fix the package or name the tag here.
my %accepted = (
    # 'tag-name' => 'why the package keeps it',
);
# A clean run prints nothing, as one that read no package would: the
# exit status must be 0, and the status log must say the package's checks
# ran ("complete libnginx-mod-http-scep_VERSION (TIME)" on stderr;
# lintian 2.116's --verbose does not name the package, its --status-log
# takes a value that it does not use)
for my $pedantic (0, 1) {
    my $how = $pedantic ? 'lintian --pedantic' : 'lintian';
    ($rc, $out) = $t->run('lintian', ($> == 0 ? '--allow-root' : ()),
                          '--status-log=stderr',
                          ($pedantic ? '--pedantic' : ()),
                          '--display-info', $deb);
    is($rc, 0, "$how exits 0") or diag($out);
    like($out, qr/^complete libnginx-mod-http-scep_\Q$version\E \(/m,
         "$how processed the package") or diag($out);
    my @lines = split /\n/, $out;
    my @errors = grep { /^[EW]: / } @lines;
    is(join("\n", @errors), '', "$how: no error or warning");
    my @tags = grep { /^[IP]: / && !(/^[IP]: [^:]+: (\S+)/ && $accepted{$1}) }
                    @lines;
    is(join("\n", @tags), '', "$how: no info or pedantic tag but those"
                              . ' accepted');
}

# ------------------------------------------------------------------
# dpkg -i, nginx -t, dpkg -r and --purge in a scratch root

SKIP: {
    my $why = 'the scratch root needs root (mount namespace, overlay,'
              . ' chroot)';
    ok(0, "scratch root: $why (TEST_SCEP_NO_SKIP is set)")
        if $> != 0 && $ENV{TEST_SCEP_NO_SKIP};
    skip $why, 7 unless $> == 0;

    my $r = "$d/root";
    mkdir $_ for "$d/upper", "$d/work", $r;
    $t->write_file('install.sh', <<'SH');
set -u
d=$1; r=$d/root; deb=$2
step() { name=$1; shift; out=$("$@" 2>&1); echo "== $name rc=$?"; echo "$out"; }

step mount mount -t overlay overlay \
    -o lowerdir=/,upperdir=$d/upper,workdir=$d/work $r
mountpoint -q $r || exit 0
mount --bind /proc $r/proc
mount --bind /dev $r/dev

# no service is started or reloaded from in here
printf '#!/bin/sh\nexit 101\n' > $r/usr/sbin/policy-rc.d
chmod 755 $r/usr/sbin/policy-rc.d
cp $deb $r/tmp/scep.deb

# an nginx.conf of this root that needs the module
cat > $r/etc/nginx/nginx.conf <<CONF
include /etc/nginx/modules-enabled/*.conf;
error_log /tmp/scep-error.log;
pid /tmp/scep-nginx.pid;
events {}
http { scep_zone 1m; }
CONF

step install chroot $r dpkg -i /tmp/scep.deb
step link chroot $r readlink /etc/nginx/modules-enabled/50-mod-http-scep.conf
step nginx_t chroot $r nginx -t
step remove chroot $r dpkg -r libnginx-mod-http-scep
step removed ls /$r/etc/nginx/modules-enabled /$r/usr/lib/nginx/modules
step nginx_t_removed chroot $r nginx -t
step purge chroot $r dpkg --purge libnginx-mod-http-scep
step purged ls -a /$r/etc/nginx/modules-enabled
SH
    ($rc, $out) = $t->run('unshare', '--mount', '--propagation', 'private',
                          'sh', "$d/install.sh", $d, $deb);
    my %step;
    while ($out =~ /^== (\w+) rc=(\d+)\n(.*?)(?=^== |\z)/msg) {
        $step{$1} = { rc => $2, out => $3 };
    }
    if ($rc || ($step{mount}{rc} // 1) != 0) {
        $why = 'cannot make the scratch root (an overlay of /): '
               . ($step{mount}{out} // $out);
        ok(0, "$why (TEST_SCEP_NO_SKIP is set)")
            if $ENV{TEST_SCEP_NO_SKIP};
        skip $why, 7;
    }
    is($step{install}{rc}, 0, 'dpkg -i installs it') or diag($out);
    is($step{link}{out}, "/usr/share/nginx/modules-available/mod-http-scep.conf\n",
       '/etc/nginx/modules-enabled/50-mod-http-scep.conf links to it');
    ok(($step{nginx_t}{rc} // 1) == 0
       && $step{nginx_t}{out} =~ /test is successful/,
       'nginx -t loads the module (scep_zone is known)')
        or diag($step{nginx_t}{out});
    is($step{remove}{rc}, 0, 'dpkg -r removes it') or diag($out);
    ok(($step{removed}{out} // '') =~ /50-mod-http-scep\.conf\.removed/
       && ($step{removed}{out} // '') !~ /ngx_http_scep_module\.so/,
       'dpkg -r: the module is gone, the link set aside as .removed');
    like($step{nginx_t_removed}{out} // '',
         qr/unknown directive "scep_zone"/,
         'without the package nginx no longer knows the module');
    ok(($step{purge}{rc} // 1) == 0
       && ($step{purged}{out} // 'x') !~ /scep/,
       'dpkg --purge removes the link') or diag($out);
}

$t->stop;
done_testing;
