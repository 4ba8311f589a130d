#!/usr/bin/perl

# Three SCEP clients that other people wrote, through the gateway to
# real scepserver back ends: certmonger (its helper scep-submit, and the
# daemon driven by getcert), strongSwan's pki, and micromdm's
# scepclient.  Each asks GetCACaps and GetCACert, enrolls and renews,
# over http and https, at a location whose GetCACaps offers POST and at
# one whose GetCACaps does not (the gateway strips POSTPKIOperation and
# SCEPStandard there, with sub_filter): a client that sends one method
# whatever the CA offers gets "client always GETs" (certmonger) or
# "client POSTs (caps defect)" (pki) in the other method's row.  The
# table of results is printed at the end (make interop runs this file
# alone and shows it, under the clients' package versions), and each
# row is checked against what the README says of the client, its
# version too.  certmonger's renewal must be signed with the old
# certificate: the PKCSReq's SignerInfo names its serial, and its
# SignedData carries it.
#
# A client counts as enrolled when it holds a certificate the CA issued
# to it.  strongSwan's pki refuses scepserver's CertRep (its SignerInfo
# says sha1WithRSAEncryption, which pki does not take): there the test
# checks that the CA issued the certificate and that the gateway passed
# the CertRep byte for byte.  A recording hop between the gateway and
# each back end keeps every CertRep as the back end sent it
# (t/lib/delay-proxy.pl --record), and over http one between pki and
# the gateway keeps it as the gateway sent it: the whole HTTP bodies
# are compared.  Over https, where pki cannot go through a plain hop,
# the content of the ContentInfo pki printed at debug level 4 is
# compared with the back end's.
#
# The clients' quirks are worked around here, none in the module:
# - certmonger must be given the CA certificate (add-scep-ca -N);
# - its daemon clears the environment of its children, and one of them
#   decrypts the CertRep, which scepserver encrypts with single DES:
#   OpenSSL 3 does that only with its legacy provider.  The daemon runs
#   in a mount namespace of its own where an openssl.cnf that loads the
#   legacy provider is bound over the system's;
# - scep-submit ignores -R for PKIOperation: in the same namespace the
#   system's CA bundle is the gateway's certificate;
# - pki 5.9.8 tests its bit mask of the CA's caps against their enum
#   values: it takes AES only when the CA lists SHA-384, 3DES only when
#   it lists AES; scepserver lists AES but not SHA-384, so pki is told
#   --cipher des3;
# - scepclient encrypts with single DES: its server has "scep_algorithms
#   ... des".
#
# Everything runs in network, mount and PID namespaces of its own
# (unshare --net --pid --mount-proc): the test starts itself again
# inside them, as their PID 1, so that nothing it started outlives it;
# it needs root for that, and is skipped otherwise.  A client whose
# package is not installed is skipped with a line that says so.  Under
# TEST_SCEP_NO_SKIP=1 (CI) either fails the test instead.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Basename qw(dirname);
use File::Copy qw(copy);
use Math::BigInt;
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(sleep time);

use SCEPTest;

# root, as for t/110: under a user namespace's mapped root, nginx
# cannot hand its temp folders to its workers' user.
# The test is PID 1 of a PID namespace of its own: killed, even by
# SIGKILL, it takes its daemons (certmonger, dbus-daemon, nginx, the
# back ends) with it, and the network namespace goes with them.
# unshare stays outside as the parent: killed, it sends the test
# SIGTERM, on which the test cleans up as on any SIGTERM.
my @NS = qw(--net --pid --fork --kill-child=SIGTERM --mount-proc);
unless ($ENV{SCEP_INTEROP_NETNS}) {
    SCEPTest::skip_or_fail('needs root (network, mount and PID'
                           . ' namespaces)') if $>;
    my $err = qx{unshare @NS true 2>&1};
    SCEPTest::skip_or_fail('no network, mount and PID namespaces of its'
                           . " own here: unshare: $err") if $?;
    $ENV{SCEP_INTEROP_NETNS} = 1;
    # perl's -I (prove -I) is not in the environment: passed on again
    exec 'unshare', @NS, '--', $^X, (map { "-I$_" } grep { !ref } @INC),
         $0, @ARGV or die "exec unshare: $!";
}

my $started = time;
my $SLOW = int($ENV{TEST_TIMEOUT_FACTOR} || 1) || 1;

# (skipped, not bailed out: a BAIL_OUT would stop the whole prove run)
system('ip', 'link', 'set', 'lo', 'up') == 0
    or SCEPTest::skip_or_fail('ip link set lo up failed in the test\'s'
                              . ' network namespace');

my $SUBMIT = '/usr/lib/certmonger/scep-submit';
my $PLUGINS = '/usr/lib/ipsec/plugins';

sub have { grep { -x "$_/$_[0]" } split /:/, $ENV{PATH} }

# why a client cannot run here, or '' when it can
my %missing = (
    certmonger => !(have('getcert') && -x $SUBMIT)
                  ? 'package certmonger is not installed'
                : !have('dbus-daemon')
                  ? 'package dbus-daemon is not installed' : '',
    pki => !have('pki') ? 'package strongswan-pki is not installed'
         : !-f "$PLUGINS/libstrongswan-curl.so"
           ? 'package libstrongswan-extra-plugins (pki\'s HTTP) is not'
             . ' installed'
         : !-f "$PLUGINS/libstrongswan-openssl.so"
           ? 'package libstrongswan-standard-plugins (pki\'s 3DES) is not'
             . ' installed' : '',
    scepclient => !have('scepclient') ? 'package scep is not installed' : '',
);

my @CLIENTS = qw(certmonger pki scepclient);
my @OPS = qw(GetCACaps GetCACert enroll renew);
my @TRANSPORTS = qw(http https);
my @METHODS = qw(GET POST);

# what each client gets, and sends, as the README's "Clients known to
# work" says: its Debian package and the upstream version the README
# names, the messages of its enrollment and renewal, its
# User-Agent ('-': none), a POST's Content-Type, how a GET's message is
# encoded, its cipher and its digest
my %EXPECT = (
    certmonger => { package => 'certmonger', version => '0.79.17',
                    enroll => 'enrolled', renew => 'renewed',
                    only => 'GET', other => 'client always GETs',
                    enroll_type => 'PKCSReq', renew_type => 'PKCSReq',
                    ua => '-', encoding => 'base64,percent-encoded',
                    cipher => 'aes-256-cbc', digest => 'sha256',
                    cacert_message => '0,1' },
    pki        => { package => 'strongswan-pki', version => '5.9.8',
                    enroll => 'issued, client refused CertRep',
                    renew => 'issued, client refused CertRep',
                    only => 'POST', other => 'client POSTs (caps defect)',
                    enroll_type => 'PKCSReq', renew_type => 'RenewalReq',
                    ua => '-', ctype => '-',
                    cipher => 'des-ede3-cbc', digest => 'sha256',
                    cacert_message => '' },
    scepclient => { package => 'scep', version => '2.1.0',
                    enroll => 'enrolled', renew => 'renewed',
                    enroll_type => 'PKCSReq', renew_type => 'RenewalReq',
                    ua => 'Go-http-client/1.1',
                    ctype => 'application/octet-stream',
                    encoding => 'base64,percent-encoded',
                    cipher => 'des-cbc', digest => 'sha1',
                    cacert_message => '' },
);

my $t = SCEPTest->new;
my $dir = $t->dir;
my $ca = $t->ca_pem;
my $tls = $t->tls_cert;

# two back ends sharing the CA, each behind a hop that records the
# CertReps it passes
my $rec = "$dir/certreps";
mkdir $rec or die "mkdir $rec: $!";
# (their serials apart, as one CA's are: scepclient renews with the same
# key, and the same serial from the other back end in the same second
# would be the same certificate again)
$t->write_file("depot-BACKEND1/serial", "100000\n");
my @backends = map { $t->start_backend(args => ['-allowrenew', '0']) } 1 .. 2;
my @hops = map { $t->start_delay($_, 0, record => $rec) } @backends;
my $upstream = join '', map { "        server 127.0.0.1:$_->{port};\n" } @hops;

# one server a client, so that each client's requests are in a log of
# their own
my %short = (certmonger => 'CM', pki => 'PKI', scepclient => 'SC');
my %algorithms = (
    scepclient => 'scep_algorithms sha1 sha224 sha256 sha384 sha512'
                  . ' des3 aes des;',
);
my $servers = '';
for my $c (@CLIENTS) {
    my $alg = $algorithms{$c} // '';
    $servers .= <<"SERVER";
    server {
        listen 127.0.0.1:%%$short{$c}_HTTP%%;
        listen 127.0.0.1:%%$short{$c}_HTTPS%% ssl;
        ssl_certificate %%CERT%%;
        ssl_certificate_key %%KEY%%;
        access_log %%DIR%%/logs/$c.log interop;
        access_log %%DIR%%/logs/$c-msg.log interop_msg if=\$interop_pki;
        $alg

        location = /certsrv/mscep/mscep.dll {
            scep on;
            proxy_pass http://ndes/scep;
        }

        # a CA that does not offer POST
        location = /get/certsrv/mscep/mscep.dll {
            scep on;
            proxy_pass http://ndes/scep;
            proxy_set_header Accept-Encoding "";
            sub_filter_types text/plain;
            sub_filter_once off;
            sub_filter POSTPKIOperation GETOnly;
            sub_filter SCEPStandard GETOnly;
        }
    }
SERVER
}

$t->start_nginx(<<"CONF");
http {
    client_body_buffer_size 128k;
    large_client_header_buffers 4 72k;
    log_format interop '\$request_method \$arg_operation \$status'
                       ' \$scep_message_type "\$content_type"'
                       ' msg=\$interop_msg "\$http_user_agent"';
    # the pkiMessage, to read its cipher and digest: a GET's message
    # argument, or a POST's body as nginx escapes it
    log_format interop_msg escape=default '\$arg_message \$request_body';
    map \$arg_operation \$interop_pki {
        PKIOperation 1;
        default "";
    }
    # a PKIOperation's message, by how it is encoded; other operations'
    # message as it came
    map "\$arg_operation \$arg_message" \$interop_msg {
        "~^PKIOperation .*[-_]" "base64url";
        "~^PKIOperation .*%" "base64,percent-encoded";
        "~^PKIOperation ." "base64";
        "~^PKIOperation" "";
        default \$arg_message;
    }

    upstream ndes {
$upstream    }

$servers}
CONF

# the gateway's URL for a client: GET or POST is the location whose
# GetCACaps offers that method
# pki over http goes through a recording hop in front of the gateway
# as well, which keeps each CertRep as the gateway sent it: the whole
# HTTP body is compared on both sides.  (Over https pki cannot be
# pointed at a plain hop; there the test compares the SignedData pki
# printed.)
my $front_rec = "$dir/certreps-client";
mkdir $front_rec or die "mkdir $front_rec: $!";
my $front = $t->start_delay({ port => $t->port('PKI_HTTP') }, 0,
                            record => $front_rec);

sub url {
    my ($c, $tr, $m) = @_;
    my $port = $c eq 'pki' && $tr eq 'http' ? $front->{port}
        : $t->port($short{$c} . ($tr eq 'https' ? '_HTTPS' : '_HTTP'));
    return "$tr://127.0.0.1:$port" . ($m eq 'GET' ? '/get' : '')
           . '/certsrv/mscep/mscep.dll';
}

sub cmd {
    my (@cmd) = @_;
    return $t->run('timeout', 120 * $SLOW, @cmd);
}

# @cmd in a mount namespace of its own where the system's CA bundle is
# the gateway's certificate alone: for clients that take no CA file for
# https.  The folder is bound, not the file: a system without the
# ca-certificates package has no file to bind over.
my $certs = "$dir/certs";
mkdir $certs or die "mkdir $certs: $!";
copy($tls, "$certs/ca-certificates.crt") or die "copy $tls: $!";

sub trusting_gateway {
    return ('unshare', '--mount', 'sh', '-c',
            'mount --bind "$0" /etc/ssl/certs && exec "$@"', $certs, @_);
}

sub openssl {
    my ($rc, $out) = $t->run('openssl', @_);
    return $rc ? undef : $out;
}

# where a client's server logs stand: the lines of its access log and
# of its log of PKIOperation messages, to read what came after
sub mark { [scalar $t->lines("logs/$_[0].log"),
            scalar $t->lines("logs/$_[0]-msg.log")] }

# The lines of a client's server log after $from (a mark) whose
# operation is $op, as hashes, once there is one (nginx logs after the
# client has its answer).
sub seen {
    my ($c, $from, $op) = @_;
    my $end = time + 5 * $SLOW;
    my @l;
    while (1) {
        my @all = $t->lines("logs/$c.log");
        @l = grep { /^\S+ \Q$op\E / } @all[$from->[0] .. $#all];
        last if @l || time > $end;
        sleep 0.05;
    }
    my @r;
    for (@l) {
        my %h;
        @h{qw(method op status type ctype msg ua)} =
            /^(\S+) (\S+) (\S+) (\S+) "(.*?)" msg=(\S*) "(.*)"$/ or next;
        push @r, \%h;
    }
    return @r;
}

# the methods a client's PKIOperations came by after $from
sub methods_after {
    my %m = map { $_->{method} => 1 } seen(@_[0, 1], 'PKIOperation');
    return join ',', sort keys %m;
}

# whether a client's server answered $op 200, and only by GET, after
# $from
sub answered {
    my ($c, $from, $op) = @_;
    my @s = seen($c, $from, $op);
    return @s && !grep { $_->{method} ne 'GET' || $_->{status} ne '200' }
                  @s;
}

# The ciphers and digests named in the PKIOperation messages a client's
# server got after $from: the OIDs of the pkiMessage's SignedData and
# of the EnvelopedData inside it, which are not encrypted.
my %OID = (
    'aes-128-cbc'  => '0609608648016503040102',
    'aes-192-cbc'  => '0609608648016503040116',
    'aes-256-cbc'  => '060960864801650304012a',
    'des-ede3-cbc' => '06082a864886f70d0307',
    'des-cbc'      => '06052b0e030207',
    'sha1'         => '06052b0e03021a',
    'sha224'       => '0609608648016503040204',
    'sha256'       => '0609608648016503040201',
    'sha384'       => '0609608648016503040202',
    'sha512'       => '0609608648016503040203',
);
# the PKIOperation messages a client's server got after $from, as DER
sub messages_after {
    my ($c, $from) = @_;
    my @all = $t->lines("logs/$c-msg.log");
    my @der;
    for (@all[$from->[1] .. $#all]) {
        my ($arg, $body) = /^(\S+) (.*)$/ or next;
        if ($arg ne '-') {             # GET: base64, percent-encoded
            $arg =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
            $arg =~ tr{-_}{+/};
            push @der, decode_base64($arg);
        } else {                       # POST: as nginx escapes it
            $body =~ s/\\x([0-9A-F]{2})/chr hex $1/ge;
            push @der, $body;
        }
    }
    return @der;
}

sub algorithms_after {
    my ($c, $from) = @_;
    my %seen;
    for my $der (messages_after($c, $from)) {
        my $hex = unpack 'H*', $der;
        $hex =~ /^(?:..)*?\Q$OID{$_}\E/ and $seen{$_} = 1 for keys %OID;
    }
    my @c = grep { /-cbc$/ } sort keys %seen;
    my @d = grep { /^sha/ } sort keys %seen;
    return (join(',', @c), join(',', @d));
}
# Why the PKIOperation message $der is not signed with the certificate
# in the PEM file $cert, or '': its one SignerInfo names the
# certificate's serial (its issuer is the one CA's), and the SignedData
# carries the certificate.
sub not_signed_by {
    my ($der, $cert) = @_;
    $t->write_file('signed.der', $der);
    my $print = openssl('cms', '-inform', 'DER', '-in', "$dir/signed.der",
                        '-cmsout', '-print')
        // return 'not a CMS message';
    my @sid = $print =~ /issuerAndSerialNumber:\s*\n\s*issuer:.*\n
                         \s*serialNumber:\s*(\d+)$/gmx;
    my ($hex) = (openssl('x509', '-in', $cert, '-noout', '-serial') // '')
                =~ /^serial=([0-9A-F]+)$/m;
    return 'signed ' . (@sid ? "by serial(s) @sid" : 'by no serial')
           . ", not by the old certificate's ($hex)"
        unless $hex && @sid == 1
               && Math::BigInt->new($sid[0]) == Math::BigInt->from_hex($hex);
    my $certs = openssl('pkcs7', '-inform', 'DER', '-in', "$dir/signed.der",
                        '-print_certs') // '';
    my $want = openssl('x509', '-in', $cert) // 'none';
    return 'without the old certificate in its SignedData'
        if index($certs, $want) < 0;
    return '';
}

# A certificate the CA issued with subject CN=$cn: its SHA-256
# fingerprint, or undef.  (Not its serial: each back end counts serials
# of its own.)
sub issued {
    my ($cert, $cn) = @_;
    return undef unless $cert && -s $cert;
    my $ok = openssl('verify', '-CAfile', $ca, $cert) // '';
    return undef unless $ok =~ /: OK$/m;
    my $s = openssl('x509', '-in', $cert, '-noout', '-fingerprint',
                    '-sha256', '-subject', '-nameopt', 'RFC2253') // '';
    return undef unless $s =~ /^subject=.*\bCN=\Q$cn\E(,|$)/m;
    return $s =~ /Fingerprint=([0-9A-F:]+)/ ? $1 : undef;
}

# certificates the CA issued to CN=$cn, as the back ends keep them
sub ca_issued { sort glob("$dir/depot-*/$_[0].*.pem") }

sub certreps { sort glob("$rec/*.resp") }
sub certreps_client { sort glob("$front_rec/*.resp") }

# the body of a recorded HTTP answer
sub body_of {
    my ($resp) = @_;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    return undef unless defined $body;
    $body = SCEPTest::dechunk($body)
        if $head =~ /^Transfer-Encoding:\s*chunked/mi;
    return $body;
}

my %res;

# The row of a run at the location that offers method $m, whose
# PKIOperations came after $from (a mark): where the client sent the
# other method, and got as far as it gets, the row says it always does.
# What the client sent is checked against %EXPECT, as the README says.
sub row {
    my ($c, $op, $tr, $m, $from, $outcome) = @_;
    my @s = seen($c, $from, 'PKIOperation');
    my %sent = map { $_->{method} => 1 } @s;
    my $sent = join ',', sort keys %sent;
    my $good = $outcome =~ /^(enrolled|renewed|issued, client refused)/;
    $res{$c}{$op}{$tr}{$m} =
        $sent eq '' ? "failed: no PKIOperation seen at the gateway"
        : $sent eq $m ? $outcome
        : $good && $sent !~ /,/
          ? $EXPECT{$c}{other} // "client ${sent}s"
        : "$outcome (sent $sent)";
    return unless @s;

    my $e = $EXPECT{$c};
    my $what = "$c $op over $tr at the $m location";
    is(join(',', sort keys %{{ map { $_->{type} => 1 } @s }}),
       $e->{"${op}_type"}, "$what: message type");
    is(join(',', sort keys %{{ map { $_->{ua} => 1 } @s }}), $e->{ua},
       "$what: User-Agent");
    for my $x (@s) {
        if ($x->{method} eq 'POST') {
            is($x->{ctype}, $e->{ctype}, "$what: a POST's Content-Type");
        } else {
            is($x->{msg}, $e->{encoding}, "$what: a GET's message");
        }
    }
    my ($cipher, $digest) = algorithms_after($c, $from);
    is($cipher, $e->{cipher}, "$what: cipher");
    is($digest, $e->{digest}, "$what: digest");
}


# certmonger: scep-submit asked directly for GetCACaps and GetCACert;
# the daemon, on a bus of its own, enrolls and rekeys

sub certmonger {
    my $cm = "$dir/certmonger";
    mkdir $cm;
    mkdir "$cm/$_" for qw(requests cas tmp local config out);

    # the legacy provider, for the DES of scepserver's CertReps
    $t->write_file("$cm/openssl.cnf", <<'CNF');
openssl_conf = init

[init]
providers = providers

[providers]
default = on
legacy = on

[on]
activate = 1
CNF
    # a bus of its own, with the policy of a session bus
    $t->write_file("$cm/bus.conf", <<"BUS");
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$cm/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
BUS
    $t->spawn("$dir/logs/dbus.log", 'dbus-daemon',
              "--config-file=$cm/bus.conf", '--nofork', '--nopidfile');
    my $end = time + 10 * $SLOW;
    until (-S "$cm/bus") {
        die "dbus-daemon made no socket:\n"
            . $t->read_file("$dir/logs/dbus.log") if time > $end;
        sleep 0.05;
    }

    local $ENV{DBUS_SESSION_BUS_ADDRESS} = "unix:path=$cm/bus";
    local $ENV{CERTMONGER_REQUESTS_DIR} = "$cm/requests";
    local $ENV{CERTMONGER_CAS_DIR} = "$cm/cas";
    local $ENV{CERTMONGER_TMPDIR} = "$cm/tmp";
    local $ENV{CERTMONGER_LOCAL_CA_DIR} = "$cm/local";
    # and, even on a session bus, it would read /etc/certmonger and wait
    # for a lock on /var/lib/certmonger/lock, which a certmonger.service
    # of the host, or another run of this test, holds
    local $ENV{CERTMONGER_CONFIG_DIR} = "$cm/config";
    local $ENV{CERTMONGER_SYSTEM_LOCK_FILE} = "$cm/lock";

    # its own mount namespace: the gateway's certificate as the CA
    # bundle, and its own openssl.cnf
    $t->spawn("$dir/logs/certmonger-daemon.log",
              trusting_gateway('sh', '-c',
                  'mount --bind "$0" /usr/lib/ssl/openssl.cnf &&'
                  . ' exec certmonger -s -n -d 1', "$cm/openssl.cnf"));
    $end = time + 20 * $SLOW;
    until ((cmd('getcert', 'list-cas', '-s'))[0] == 0) {
        die "certmonger did not start:\n"
            . $t->read_file("$dir/logs/certmonger-daemon.log")
            if time > $end;
        sleep 0.1;
    }

    for my $tr (@TRANSPORTS) {
        my @r = $tr eq 'https' ? ('-R', $tls) : ();
        my $url = url('certmonger', $tr, 'POST');

        my $from = mark('certmonger');
        my ($rc, $out) = cmd($SUBMIT, '-u', $url, @r, '-c');
        $res{certmonger}{GetCACaps}{$tr}{GET} =
            $rc != 0 ? "failed: exit $rc"
            : $out !~ /^POSTPKIOperation$/m ? 'failed: not the caps'
            : answered('certmonger', $from, 'GetCACaps') ? 'ok'
            : 'failed: not by GET';

        $from = mark('certmonger');
        ($rc, $out) = cmd($SUBMIT, '-u', $url, @r, '-C');
        my ($pem) = $out =~ /(-----BEGIN CERTIFICATE.*?-----END \S+-----)/s;
        my $want = openssl('x509', '-in', $ca);
        $res{certmonger}{GetCACert}{$tr}{GET} =
            $rc != 0 ? "failed: exit $rc"
            : !($pem && index($want, $pem) >= 0) ? 'failed: not the CA'
            : answered('certmonger', $from, 'GetCACert') ? 'ok'
            : 'failed: not by GET';

        for my $m (@METHODS) {
            my $id = "cm-$tr-$m";
            my $cert = "$cm/out/$id.pem";
            my $key = "$cm/out/$id.key";
            ($rc, $out) = cmd('getcert', 'add-scep-ca', '-s', '-c', $id,
                              '-u', url('certmonger', $tr, $m), @r,
                              '-N', $ca);
            die "getcert add-scep-ca: $out" if $rc;

            my $from = mark('certmonger');
            ($rc, $out) = cmd('getcert', 'request', '-s', '-w', '-c', $id,
                              '-I', $id, '-f', $cert, '-k', $key,
                              '-N', "CN=$id", '-L', 'secret');
            my $fp = issued($cert, $id);
            row('certmonger', 'enroll', $tr, $m,
                $from,
                $fp ? 'enrolled' : "failed: $out");
            next unless $fp;

            # rekey: a new key, a PKCSReq signed with the old certificate
            $from = mark('certmonger');
            my $old_key = $t->read_file($key);
            copy($cert, "$cert.old") or die "copy $cert: $!";
            ($rc, $out) = cmd('getcert', 'rekey', '-s', '-w', '-i', $id);
            my $new = issued($cert, $id);
            # each PKIOperation of the renewal, once nginx logged it
            my $n = () = seen('certmonger', $from, 'PKIOperation');
            my @msgs = messages_after('certmonger', $from);
            for (1 .. 50) {
                last if @msgs >= $n;
                sleep 0.1;
                @msgs = messages_after('certmonger', $from);
            }
            my ($unsigned) = grep { $_ }
                             map { not_signed_by($_, "$cert.old") } @msgs;
            row('certmonger', 'renew', $tr, $m,
                $from,
                !($new && $new ne $fp && $t->read_file($key) ne $old_key)
                ? "failed: $out"
                : !@msgs ? 'failed: no renewal message logged'
                : $unsigned ? "failed: the renewal request is $unsigned"
                : 'renewed');
        }
    }
}


# strongSwan's pki

# DER: the length of the header at $off of $der, and the length of its
# content
sub der_header {
    my ($der, $off) = @_;
    my $l = ord substr $der, $off + 1, 1;
    return (2, $l) if $l < 0x80;
    my $n = $l & 0x7f;
    my $len = 0;
    $len = $len * 256 + ord substr $der, $off + 2 + $_, 1 for 0 .. $n - 1;
    return (2 + $n, $len);
}

# The content of a CertRep's ContentInfo (its SignedData), when the DER
# is one ContentInfo and nothing more.
sub certrep_content {
    my ($der) = @_;
    return undef unless length $der > 4 && substr($der, 0, 1) eq "\x30";
    my ($h, $len) = der_header($der, 0);
    return undef unless $h + $len == length $der;
    my $off = $h;
    my ($oh, $olen) = der_header($der, $off);          # contentType
    $off += $oh + $olen;
    return undef unless substr($der, $off, 1) eq "\xa0";
    my ($eh, $elen) = der_header($der, $off);          # [0] content
    return undef unless $off + $eh + $elen == length $der;
    return substr $der, $off + $eh, $elen;
}

# The bytes pki printed at debug level 4 as the content of the
# ContentInfo it got for its PKIOperation.
sub pki_received {
    my ($log) = @_;
    my ($after) = $log =~ /operation=PKIOperation'\.\.\.\n(.*)\z/s
        or return undef;
    my ($n, $dump) = $after =~ /^=> (\d+) bytes @ \S+\n((?:\s*\d+: .*\n)+)/m
        or return undef;
    my $bytes = '';
    for (split /\n/, $dump) {
        /^\s*\d+: ((?:[0-9A-F]{2} )*[0-9A-F]{2})/ or last;
        $bytes .= pack 'H*', join '', split ' ', $1;
    }
    return length $bytes == $n ? $bytes : undef;
}

# One pki enrollment (or renewal, with @old: --cert and --key); the
# outcome, and the checks of what it got
sub pki_scep {
    my ($tr, $m, $cn, $name, $key, $cacert, @old) = @_;
    my $pki = "$dir/pki";
    my $from = mark('pki');
    my @before = certreps();
    my @before_client = certreps_client();
    my @had = ca_issued($cn);
    my $out = "$pki/$name.pem";
    my @tls = $tr eq 'https' ? trusting_gateway() : ();
    my ($rc, $log) = cmd(@tls, 'sh', '-c', 'exec pki "$@" > "$0"', $out,
        '--scep', '--url', url('pki', $tr, $m), '--in', $key,
        '--dn', "CN=$cn", '--password', 'secret',
        '--cacert-enc', $cacert, '--cacert-sig', $cacert,
        '--cipher', 'des3', '--outform', 'pem', '--debug', '4', @old);
    $t->write_file("logs/pki-$name.log", $log);

    if ($log =~ /^CA Capabilities:\n((?:  \S+\n)+)/m) {
        $res{pki}{GetCACaps}{$tr}{GET} //=
            answered('pki', $from, 'GetCACaps') ? 'ok'
            : 'failed: not by GET';
    }
    my $outcome;
    if (issued($out, $cn)) {
        $outcome = $old[0] ? 'renewed' : 'enrolled';
    } else {
        # the CA issued one more certificate to CN, and the CertRep the
        # back end sent is what pki got
        my %seen = map { $_ => 1 } @before;
        my @new = grep { !$seen{$_} } certreps();
        my @issued = ca_issued($cn);
        my $body = @new == 1 ? body_of($t->read_file($new[0])) : undef;
        my $content = defined $body ? certrep_content($body) : undef;
        my $got = pki_received($log);
        # over http, the body the gateway sent as well
        my %seen_client = map { $_ => 1 } @before_client;
        my @new_client = grep { !$seen_client{$_} } certreps_client();
        my $client = @new_client == 1
            ? body_of($t->read_file($new_client[0])) : undef;
        my $http = $tr eq 'http';
        my $why = @issued != @had + 1 ? 'the CA issued nothing'
            : @new != 1 ? scalar(@new) . ' CertReps recorded, not 1'
            : ($t->pki_status($body) // '') ne '0' ? 'CertRep not SUCCESS'
            : !defined $content ? 'the back end\'s CertRep is no ContentInfo'
            : $http && @new_client != 1
              ? scalar(@new_client) . ' CertReps recorded client-side, not 1'
            : $http && $client ne $body
              ? 'the HTTP body changed on the way'
            : !defined $got ? 'pki printed no CertRep'
            : $got ne $content ? 'the CertRep changed on the way'
            : '';
        ok(!$why, "pki, $name: the CA issued, the gateway passed the"
                  . ($http ? ' HTTP body' : ' SignedData pki printed')
                  . ' byte for byte') or diag($why);
        my ($last) = grep { length } reverse split /\n/, $log;
        $outcome = $why ? "failed: $why"
            : $log =~ /only RSA digest encryption supported/
              ? 'issued, client refused CertRep'
            : "issued, client failed: $last";
    }
    row('pki', $old[0] ? 'renew' : 'enroll', $tr, $m, $from, $outcome);
    return ca_issued($cn);
}

sub pki {
    my $pki = "$dir/pki";
    mkdir $pki;
    for my $tr (@TRANSPORTS) {
        my $cacert = "$pki/ca-$tr.der";
        my @tls = $tr eq 'https' ? trusting_gateway() : ();
        my $from = mark('pki');
        my ($rc, $out) = cmd(@tls, 'pki', '--scepca', '--url',
                             url('pki', $tr, 'POST'), '--caout', $cacert);
        $t->write_file("logs/pki-scepca-$tr.log", $out);
        my $want = openssl('x509', '-in', $ca, '-outform', 'DER');
        $res{pki}{GetCACert}{$tr}{GET} =
            $rc != 0 ? "failed: exit $rc"
            : $t->read_file($cacert) ne ($want // '') ? 'failed: not the CA'
            : answered('pki', $from, 'GetCACert') ? 'ok'
            : 'failed: not by GET';
        next unless $rc == 0;

        for my $m (@METHODS) {
            my $cn = "pki-$tr-$m";
            my @keys = map { "$pki/$cn-$_.der" } 1 .. 2;
            for my $k (@keys) {
                ($rc, $out) = cmd('sh', '-c', 'exec pki --gen --type rsa'
                                  . ' --size 2048 > "$0"', $k);
                die "pki --gen: $out" if $rc;
            }
            my @issued = pki_scep($tr, $m, $cn, "$cn-enroll", $keys[0],
                                  $cacert);
            next unless @issued;
            # pki keeps no certificate: the one the CA issued for its key
            pki_scep($tr, $m, $cn, "$cn-renew", $keys[1], $cacert,
                     '--cert', $issued[-1], '--key', $keys[0]);
        }
    }
}


# micromdm's scepclient

sub scepclient {
    for my $tr (@TRANSPORTS) {
        for my $m (@METHODS) {
            my $cn = "sc-$tr-$m";
            my $url = url('scepclient', $tr, $m);
            my $from = mark('scepclient');
            my ($rc, $out, $cert) = $t->scepclient($url, cn => $cn);
            my $fp = issued($cert, $cn);
            row('scepclient', 'enroll', $tr, $m,
                $from,
                $fp ? 'enrolled' : "failed: $out");
            for my $op (qw(GetCACaps GetCACert)) {
                $res{scepclient}{$op}{$tr}{GET} //=
                    answered('scepclient', $from, $op) ? 'ok' : 'failed';
            }
            next unless $fp;

            # it signs with the certificate of -certificate, and writes
            # the new one over it
            $from = mark('scepclient');
            ($rc, $out) = $t->scepclient($url, cn => $cn,
                key => dirname($cert) . '/key.pem', certificate => $cert);
            my $renewed = issued($cert, $cn);
            row('scepclient', 'renew', $tr, $m,
                $from,
                $renewed && $renewed ne $fp ? 'renewed'
                : "failed: $out");
        }
    }
}


my %run = (certmonger => \&certmonger, pki => \&pki,
           scepclient => \&scepclient);

for my $c (@CLIENTS) {
    if ($missing{$c}) {
        ok(0, "$c: $missing{$c} (TEST_SCEP_NO_SKIP is set)")
            if $ENV{TEST_SCEP_NO_SKIP};
      SKIP: { skip("$c: $missing{$c} (make deps installs it)", 1) }
        next;
    }
    $run{$c}->();
}

# GetCACaps and GetCACert are GETs in SCEP
for my $c (@CLIENTS) {
    for my $op (qw(GetCACaps GetCACert)) {
        $res{$c}{$op}{$_}{POST} = 'n/a: a GET in SCEP' for @TRANSPORTS;
    }
}

# the clients' versions, as installed: the upstream version of each
# package must be the one the README names
my %version;
for my $c (grep { !$missing{$_} } @CLIENTS) {
    my $p = $EXPECT{$c}{package};
    (undef, $version{$c}) = $t->run('dpkg-query', '-W', '-f=${Version}', $p);
    (my $upstream = $version{$c}) =~ s/^\d+://;
    $upstream =~ s/-[^-]*$//;
    is($upstream, $EXPECT{$c}{version},
       "$c: $p $version{$c}, the version the README names");
}

# the table, one line a client, operation and transport, under the
# versions it is of
my $table = join(', ', map { "$EXPECT{$_}{package} "
                             . ($version{$_} || 'not installed') }
                       @CLIENTS) . "\n";
$table .= sprintf "%-11s %-10s %-6s %-32s %s\n", 'client', 'operation',
                    'over', 'GET', 'POST';
for my $c (@CLIENTS) {
    if ($missing{$c}) {
        $table .= sprintf "%-11s skipped: %s\n", $c, $missing{$c};
        next;
    }
    for my $op (@OPS) {
        for my $tr (@TRANSPORTS) {
            $table .= sprintf "%-11s %-10s %-6s %-32s %s\n", $c, $op, $tr,
                map { $res{$c}{$op}{$tr}{$_} // 'not run' } @METHODS;
        }
    }
}
$table .= sprintf "(%.0f s)\n", time - $started;

# each row as the README says
for my $c (grep { !$missing{$_} } @CLIENTS) {
    my $e = $EXPECT{$c};
    for my $tr (@TRANSPORTS) {
        for my $op (qw(GetCACaps GetCACert)) {
            is($res{$c}{$op}{$tr}{GET}, 'ok', "$c $op over $tr");
        }
        for my $op (qw(enroll renew)) {
            for my $m (@METHODS) {
                my $want = $e->{only} && $e->{only} ne $m
                    ? $e->{other} : $e->{$op};
                is($res{$c}{$op}{$tr}{$m}, $want, "$c $op over $tr by $m");
            }
        }
    }
}

# the message argument of each client's GetCACerts ('': none)
for my $c (grep { !$missing{$_} } @CLIENTS) {
    my %m = map { $_->{msg} => 1 } seen($c, [0, 0], 'GetCACert');
    is(join(',', sort keys %m), $EXPECT{$c}{cacert_message},
       "$c: GetCACert's message argument");
}

# last, where make interop shows it
note($table);

$t->stop;
done_testing;
