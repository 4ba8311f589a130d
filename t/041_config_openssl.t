#!/usr/bin/perl

# The module's config script (nginx's configure runs it): OpenSSL 3.0 or
# later, and the OpenSSL that nginx uses.  With --with-openssl=DIR that
# is the libcrypto nginx builds from DIR, never the system's -lcrypto
# beside it; a DIR older than 3.0 is refused, and so is a system OpenSSL
# older than 3.0.  Runs configure only, in a copy of the nginx source
# tree of nginx-dev (TEST_NGINX_SRC to use another).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $src = $ENV{TEST_NGINX_SRC} || '/usr/share/nginx/src';
plan skip_all => "no nginx source tree at $src" unless -x "$src/configure";

my $t = SCEPTest->new;
my $d = $t->dir;
my $root = SCEPTest::root();

system('cp', '-r', $src, "$d/nginx") == 0 or die "cp $src: $?";

sub configure {
    my (@args) = @_;
    system('rm', '-rf', "$d/nginx/objs");
    my ($rc, $out) = $t->run('sh', '-c', 'cd "$0" && exec ./configure "$@"',
                             "$d/nginx", '--with-http_ssl_module', @args);
    return ($rc, $out, $t->read_file("$d/nginx/objs/Makefile"));
}

# the link rules of objs/Makefile, nginx's and the dynamic module's:
# the lines of each "$(LINK) -o target" command
sub links {
    my ($mk) = @_;
    my %l;
    while ($mk =~ /^\t\$\(LINK\) -o (\S+) \\\n((?:\t[^\n]*\n)+)/mg) {
        $l{$1} = $2;
    }
    return %l;
}

# an OpenSSL source tree as --with-openssl wants it; nginx builds it
# only at make time, so a VERSION.dat is all configure reads
for my $v (1, 3) {
    $t->write_file("ossl$v/VERSION.dat", "MAJOR=$v\nMINOR=1\nPATCH=1\n");
    $t->write_file("ossl$v/config", "#!/bin/sh\n");
}

my ($rc, $out, $mk) = configure("--with-openssl=$d/ossl3",
                                "--add-dynamic-module=$root");
is($rc, 0, '--with-openssl=DIR of OpenSSL 3: configure') or diag($out);
my %l = links($mk);
my ($so) = grep { /ngx_http_scep_module\.so$/ } keys %l;
ok($so, 'the dynamic module has a link line');
like($l{$so // ''} // '', qr{\Q$d\E/ossl3/\.openssl/lib/libcrypto\.a},
     'the module links the libcrypto nginx builds');
unlike($l{$so // ''} // '', qr/-lcrypto\b/,
       'and not the system libcrypto');
like($mk, qr{-I \Q$d\E/ossl3/\.openssl/include},
     'the module compiles with that OpenSSL\'s headers');
unlike($out, qr/checking for OpenSSL 3\.0 or later for ngx_http_scep/,
       'no feature test against the system OpenSSL');

($rc, $out, $mk) = configure("--with-openssl=$d/ossl3",
                             "--add-module=$root");
is($rc, 0, 'built in statically: configure') or diag($out);
%l = links($mk);
like($l{'objs/nginx'} // '', qr{\Q$d\E/ossl3/\.openssl/lib/libcrypto\.a},
     'nginx links the libcrypto it builds');
unlike($l{'objs/nginx'} // '', qr/-lcrypto\b/,
       'and not the system libcrypto as well');

($rc, $out) = configure("--with-openssl=$d/ossl1",
                        "--add-dynamic-module=$root");
isnt($rc, 0, '--with-openssl=DIR of OpenSSL 1: configure fails');
like($out, qr/requires OpenSSL 3\.0 or later.*\n.*ossl1 \(--with-openssl\)/,
     'and says why');

# a system OpenSSL that says it is 1.1.1: the real headers, with a
# version number put in front of them
$t->write_file('old/openssl/opensslv.h', <<'H');
#include_next <openssl/opensslv.h>
#undef OPENSSL_VERSION_NUMBER
#define OPENSSL_VERSION_NUMBER 0x1010117fL
H
($rc, $out) = configure("--with-cc-opt=-I$d/old",
                        "--add-dynamic-module=$root");
isnt($rc, 0, 'system OpenSSL older than 3.0: configure fails');
like($out, qr/requires OpenSSL 3\.0 or later: its\nlibcrypto/,
     'and says why');

($rc, $out) = configure("--add-dynamic-module=$root");
is($rc, 0, 'system OpenSSL 3: configure') or diag($out);
like($out, qr/checking for OpenSSL 3\.0 or later for ngx_http_scep_module \.\.\. found/,
     'the feature test finds it');

done_testing;
