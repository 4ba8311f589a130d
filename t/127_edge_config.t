#!/usr/bin/perl

# Configuration of the CA answers at the edge (scep_ca_cache_ident,
# scep_trusted_ca) and of the replay window: nginx -t refuses what cannot
# work and says what to change.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;

# an http block around LINES (http level) and LOC (in a scep location)
sub conf {
    my ($http, $loc, $ups) = @_;
    $ups //= 'scep_health_check uri=/scep;';
    return <<"CONF";
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;
    $http
    upstream ndes {
        server 127.0.0.1:%%A%%;
        $ups
    }
    server {
        listen 127.0.0.1:%%A%%;
        location /scep { scep on; $loc proxy_pass http://ndes; }
    }
}
CONF
}

sub refused {
    my ($conf, $re, $name) = @_;
    my ($rc, $out) = $t->test_conf($conf);
    isnt($rc, 0, "$name: refused");
    like($out, $re, "$name: says why") or diag($out);
}

sub accepted {
    my ($conf, $name) = @_;
    my ($rc, $out) = $t->test_conf($conf);
    is($rc, 0, "$name: accepted") or diag($out);
}

# scep_replay_window needs scep_replay_zone
refused(conf('', 'scep_replay_window 10m;'),
        qr/"scep_replay_window" in \S+test\.conf:\d+ needs a zone to keep the pairs in: add "scep_replay_zone 1m;" to the http block/,
        'a window without a zone');
accepted(conf('scep_replay_zone 1m;', 'scep_replay_window 10m;'),
         'a window with a zone');
accepted(conf('scep_replay_window 5m; scep_replay_zone 64k;', ''),
         'a window at http level, the zone after it');
accepted(conf('', 'scep_replay_window off;'), '"off" without a zone');

refused(conf('scep_replay_zone 16k;', ''),
        qr/"scep_replay_zone" of "16k" is too small: make it at least 32k/,
        'a zone too small');
refused(conf('scep_replay_zone lots;', ''),
        qr/invalid size "lots" in "scep_replay_zone"/, 'a zone size');
refused(conf('scep_replay_zone 1m; scep_replay_zone 1m;', ''),
        qr/"scep_replay_zone" directive is duplicate/, 'a second zone');
refused(conf('scep_replay_zone 1m;', 'scep_replay_window 0;'),
        qr/invalid value "0" in "scep_replay_window": give a time such as "10m", or "off"/,
        'a window of 0');
refused(conf('scep_replay_zone 1m;', 'scep_replay_window soon;'),
        qr/invalid value "soon" in "scep_replay_window"/, 'a window');
refused(conf('scep_replay_zone 1m;', 'scep_replay_window 30d;'),
        qr/"scep_replay_window" of "30d" is too long: make it at most 7d/,
        'a window too long');
refused(conf('scep_replay_zone 1m;',
             'scep_replay_window 1m; scep_replay_window 2m;'),
        qr/"scep_replay_window" directive is duplicate/, 'two windows');

# scep_ca_cache and ca_ident=
accepted(conf('scep_ca_cache on; scep_ca_cache_valid 10m;', ''),
         'scep_ca_cache on');
refused(conf('', 'scep_ca_cache sometimes;'),
        qr/invalid value "sometimes" in "scep_ca_cache" directive, it must be "on" or "off"/,
        'scep_ca_cache takes on or off');
accepted(conf('scep_ca_cache_ident probe;', 'scep_ca_cache_ident any;'),
         'scep_ca_cache_ident any and probe');
refused(conf('', 'scep_ca_cache_ident default;'),
        qr/invalid value "default" in \S+test\.conf:\d+/,
        'scep_ca_cache_ident takes any or probe');
refused(conf('', 'scep_ca_cache_ident;'),
        qr/invalid number of arguments in "scep_ca_cache_ident"/,
        'scep_ca_cache_ident takes one value');
refused(conf('', 'scep_ca_cache_valid forever;'),
        qr/"scep_ca_cache_valid" directive invalid value/,
        'scep_ca_cache_valid takes a time');
accepted(conf('', '', 'scep_health_check uri=/scep "ca_ident=SCEP Authority";'),
         'ca_ident with a space');
accepted(conf('', '', 'scep_health_check uri=/scep ca_ident=;'),
         'an empty ca_ident');
refused(conf('', '', 'scep_health_check uri=/scep "ca_ident=a\tb";'),
        qr/"ca_ident" of "scep_health_check" must be up to 255 printable ASCII characters, as a CA identifier is/,
        'ca_ident with a tab');
refused(conf('', '', 'scep_health_check uri=/scep ca_ident=' . ('x' x 256)
             . ';'),
        qr/"ca_ident" of "scep_health_check" must be up to 255/,
        'ca_ident too long');

# scep_trusted_ca: PEM certificates, read by nginx -t
my $d = $t->dir;
my $pem = $t->tls_cert;
$t->write_file('key-only.pem', $t->read_file("$d/server.key"));
$t->write_file('broken.pem', $t->read_file($pem)
               . "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n"
               . "-----END CERTIFICATE-----\n");

accepted(conf('', '', "scep_health_check uri=/scep;"
                      . " scep_trusted_ca $pem;"), 'scep_trusted_ca');
accepted(conf('', '', "scep_trusted_ca $pem;"
                      . " scep_health_check uri=/scep;"),
         'scep_trusted_ca before scep_health_check');
refused(conf('', '', "scep_health_check uri=/scep;"
                     . " scep_trusted_ca $d/missing.pem;"),
        qr/"scep_trusted_ca" cannot read "\S+missing\.pem" \(2: No such file or directory\)/,
        'scep_trusted_ca: a missing file');
refused(conf('', '', "scep_health_check uri=/scep;"
                     . " scep_trusted_ca $d/key-only.pem;"),
        qr/"scep_trusted_ca" "\S+key-only\.pem": no certificates: give a PEM file of the CA certificates that the back ends' GetCACert answers must hold or be issued by/,
        'scep_trusted_ca: a file without certificates');
refused(conf('', '', "scep_health_check uri=/scep;"
                     . " scep_trusted_ca $d/broken.pem;"),
        qr/"scep_trusted_ca" "\S+broken\.pem": a certificate that does not parse/,
        'scep_trusted_ca: a certificate that does not parse');
refused(conf('', '', "scep_health_check uri=/scep;"
                     . " scep_trusted_ca $pem; scep_trusted_ca $pem;"),
        qr/"scep_trusted_ca" directive is duplicate/,
        'scep_trusted_ca twice');
refused(conf('', '', "server 127.0.0.1:1; scep_trusted_ca $pem;"),
        qr/"scep_trusted_ca" in \S+test\.conf:\d+ needs "scep_health_check" in upstream "ndes"/,
        'scep_trusted_ca without scep_health_check');
refused(conf("scep_trusted_ca $pem;", '', 'scep_health_check uri=/scep;'),
        qr/"scep_trusted_ca" directive is not allowed here/,
        'scep_trusted_ca outside an upstream');
refused(conf('', "scep_trusted_ca $pem;", 'scep_health_check uri=/scep;'),
        qr/"scep_trusted_ca" directive is not allowed here/,
        'scep_trusted_ca in a location');
refused(conf('', '', "scep_health_check uri=/scep; scep_trusted_ca;"),
        qr/invalid number of arguments in "scep_trusted_ca"/,
        'scep_trusted_ca without a file');

$t->stop;
done_testing;
