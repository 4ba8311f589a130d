#!/usr/bin/perl

# Renewals checked at the edge (scep_check_renewal, scep_renewal_grace,
# scep_crl): a RenewalReq, or a PKCSReq signed with a certificate that
# is not self-signed, must be signed with a certificate that a CA
# certificate of the back ends' GetCACert answers (or of scep_trusted_ca)
# issued, that is within its validity (scep_renewal_grace after notAfter
# allowed) and that the CRL of scep_crl does not list.  Otherwise 400
# untrusted_renewal_signer, expired_renewal_signer or
# revoked_renewal_signer, and the back end never sees it.  A self-signed
# PKCSReq is no renewal, one signed by a certificate the CA issued to
# its own name is; of a GetCACert answer with an RA certificate, only the
# CA issues.  "scep_check_renewal off" lets renewals through as before;
# an upstream without health checks or scep_trusted_ca leaves the issuer
# unchecked, but not the validity or scep_crl.  scepclient renews with -certificate, as a device does.  A new
# CRL counts after a reload.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(strftime);
use SCEPTest;

my $t = SCEPTest->new;

# -allowrenew 0: scepserver issues again to a subject it issued to
$t->start_backend(args => ['-allowrenew', '0']);

my $dir = $t->dir . '/renew';
mkdir $dir or die "mkdir $dir: $!";

sub openssl {
    my ($rc, $out) = $t->run('openssl', @_);
    die "openssl @_: $out" if $rc;
    return $out;
}

# an "openssl ca" over the back ends' CA: its certificates, and its CRL
my $ca = $t->ca;
$t->write_file("$dir/index.txt", '');
$t->write_file("$dir/index.txt.attr", "unique_subject = no\n");
$t->write_file("$dir/serial", "1000\n");
$t->write_file("$dir/ca.cnf", <<"CNF");
[ ca ]
default_ca = the_ca

[ the_ca ]
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = $ca/ca.pem
private_key = $ca/ca.key
default_md = sha256
default_crl_days = 30
policy = any
copy_extensions = none

[ any ]
commonName = supplied
CNF

# the back ends' CA key has an empty pass phrase
sub ca_cmd {
    return openssl('ca', '-batch', '-config', "$dir/ca.cnf",
                   '-passin', 'pass:', @_);
}

# scepclient reads RSA keys in PKCS#1 form only
sub traditional {
    my ($key) = @_;
    openssl('pkey', '-in', $key, '-traditional', '-out', "$key.rsa");
    return "$key.rsa";
}

sub ca_issue {
    my ($name, @dates) = @_;
    openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes',
            '-keyout', "$dir/$name.key", '-out', "$dir/$name.csr",
            '-subj', "/CN=$name");
    ca_cmd('-notext', '-in', "$dir/$name.csr", '-out', "$dir/$name.pem",
           @dates);
    return (traditional("$dir/$name.key"), "$dir/$name.pem");
}

my $day = 86400;
my $fmt = '%Y%m%d%H%M%SZ';

# expired two days ago
my @expired = ca_issue('expired',
    '-startdate', strftime($fmt, gmtime(time - 10 * $day)),
    '-enddate', strftime($fmt, gmtime(time - 2 * $day)));

# the subject of the back ends' CA
my $ca_subject = openssl('x509', '-in', "$ca/ca.pem", '-noout', '-subject',
                         '-nameopt', 'compat');
$ca_subject =~ s/^subject=\s*//;
chomp $ca_subject;

# issued by the CA to the CA's own name: its issuer and subject are the
# same name, yet it is no self-signed certificate
openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes',
        '-keyout', "$dir/ca-named.key", '-out', "$dir/ca-named.csr",
        '-subj', $ca_subject);
openssl('x509', '-req', '-in', "$dir/ca-named.csr", '-CA', "$ca/ca.pem",
        '-CAkey', "$ca/ca.key", '-passin', 'pass:', '-set_serial', '0x5a5a',
        '-days', '30', '-out', "$dir/ca-named.pem");
my @ca_named = (traditional("$dir/ca-named.key"), "$dir/ca-named.pem");

# revoked, and the CRL that lists it (and the CA-named one)
my @revoked = ca_issue('revoked', '-days', '30');
ca_cmd('-revoke', $revoked[1]);
ca_cmd('-revoke', $ca_named[1]);
ca_cmd('-gencrl', '-out', "$dir/crl.pem");

# valid, issued by the CA, not revoked
my @valid = ca_issue('valid', '-days', '30');

# a certificate of another CA
openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes',
        '-keyout', "$dir/other-ca.key", '-out', "$dir/other-ca.pem",
        '-subj', '/CN=Another CA', '-days', '30');
openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes',
        '-keyout', "$dir/other.key", '-out', "$dir/other.csr",
        '-subj', '/CN=other');
openssl('x509', '-req', '-in', "$dir/other.csr", '-CA', "$dir/other-ca.pem",
        '-CAkey', "$dir/other-ca.key", '-set_serial', '77',
        '-days', '30', '-out', "$dir/other.pem");
my @other = (traditional("$dir/other.key"), "$dir/other.pem");

# a CA with the name of the back ends' CA and a key of its own: only
# the signature tells its certificates from theirs
openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes',
        '-keyout', "$dir/fake-ca.key", '-out', "$dir/fake-ca.pem",
        '-subj', $ca_subject, '-days', '30');
openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes',
        '-keyout', "$dir/forged.key", '-out', "$dir/forged.csr",
        '-subj', '/CN=forged');
openssl('x509', '-req', '-in', "$dir/forged.csr", '-CA', "$dir/fake-ca.pem",
        '-CAkey', "$dir/fake-ca.key", '-set_serial', '78',
        '-days', '30', '-out', "$dir/forged.pem");
my @forged = ("$dir/forged.key", "$dir/forged.pem");

# a back end whose GetCACert answer is a CA and an RA certificate, as
# NDES sends it: a certificate the RA's key signed is no CA's
my $bundle = $t->ca_ra_bundle('ndesra',
                              strftime($fmt, gmtime(time - $day)),
                              strftime($fmt, gmtime(time + 30 * $day)));
(my $ra_dir = $bundle) =~ s{/bundle\.der$}{};
my %by;
for my $c (['ra', 'by-ra', 91], ['ca', 'by-ndes-ca', 92]) {
    my ($issuer, $name, $serial) = @$c;
    openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes',
            '-keyout', "$dir/$name.key", '-out', "$dir/$name.csr",
            '-subj', "/CN=$name");
    openssl('x509', '-req', '-in', "$dir/$name.csr",
            '-CA', "$ra_dir/$issuer.pem", '-CAkey', "$ra_dir/$issuer.key",
            '-set_serial', $serial, '-days', '30', '-out', "$dir/$name.pem");
    $by{$issuer} = ["$dir/$name.key", "$dir/$name.pem"];
}
$t->start_fault('certs', $bundle);

# scep_trusted_ca: the back ends' CA (so the probes pass) and the other
$t->write_file("$dir/anchors.pem",
               $t->read_file("$ca/ca.pem")
               . $t->read_file("$dir/other-ca.pem"));

$t->start_nginx(<<"CONF");
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    # micromdm's scepclient encrypts with single DES
    scep_algorithms sha1 sha256 sha512 des3 aes des;

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        scep_health_check interval=300ms timeout=200ms uri=/scep;
    }

    upstream anchored {
        server 127.0.0.1:%%BACKEND0%%;
        scep_health_check interval=300ms timeout=200ms uri=/scep;
        scep_trusted_ca $dir/anchors.pem;
    }

    upstream plain {
        server 127.0.0.1:%%BACKEND0%%;
    }

    upstream ndesra {
        server 127.0.0.1:%%FAULT_CERTS1%%;
        scep_health_check interval=300ms timeout=200ms uri=/scep;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            scep_crl $dir/crl.pem;
            proxy_pass http://ndes;
        }

        location = /grace {
            scep on;
            scep_renewal_grace 3d;
            proxy_pass http://ndes/scep;
        }

        location = /off {
            scep on;
            scep_check_renewal off;
            scep_crl $dir/crl.pem;
            proxy_pass http://ndes/scep;
        }

        location = /anchored {
            scep on;
            proxy_pass http://anchored/scep;
        }

        location = /plain {
            scep on;
            proxy_pass http://plain/scep;
        }

        location = /plain-crl {
            scep on;
            scep_crl $dir/crl.pem;
            proxy_pass http://plain/scep;
        }

        location = /ndesra {
            scep on;
            scep_check_recipient off;
            proxy_pass http://ndesra/scep;
        }

        location = /status {
            scep_status;
        }
    }
}
CONF

my $gw = $t->port('GW');

# the probes have the GetCACert answer of both upstreams
my $ready = 0;
for (1 .. 100 * (int($ENV{TEST_TIMEOUT_FACTOR} || 1) || 1)) {
    my $s = $t->get($gw, '/status')->{body} // '';
    $ready = () = $s =~ /"certificates":\s*\[\s*\{/g;
    last if $ready >= 2;
    select undef, undef, undef, 0.1;
}
ok($ready >= 2, 'the probes have the GetCACert of the back end');

sub pkiops {
    my $log = $t->read_file($t->{backends}[0]{log});
    my $n = () = $log =~ /caller=endpoint\.go\S* op=PKIOperation/g;
    return $n;
}

my $n = 0;

# a renewal signed with KEY and CERT, by POST, of messageType TYPE
sub renewal {
    my ($path, $type, $key, $cert) = @_;
    $n++;
    my $der = $t->scep_msg('--type', $type, '--key', $key,
                           '--signer-cert', $cert, '--challenge', 'secret',
                           '--cn', "renewed-$n", '--dialect', 'der');
    return $t->post($gw, "$path?operation=PKIOperation", $der);
}

sub refused {
    my ($r, $token, $what) = @_;
    is($r->{status}, 400, "$what: 400");
    like($r->{body}, qr/^\Q$token\E: \S.* /, "$what: $token explained");
}

# the back end judges what the gateway lets through: scepserver refuses
# an expired signer itself (500), after the gateway passed it on
sub reached {
    my ($path, $kc, $what) = @_;
    my $before = pkiops();
    my $r = renewal($path, 17, @$kc);
    isnt($r->{status}, 400, "$what: not refused by the gateway");
    is(pkiops(), $before + 1, "$what: reached the back end");
}

sub passed {
    my ($r, $what) = @_;
    is($r->{status}, 200, "$what: passed to the back end");
    is($t->pki_status($r->{body}), '0', "$what: issued");
}

# a device enrolls, then renews with the certificate it got, by
# scepclient as it would
my ($rc, $out, $cert) = $t->scepclient("http://127.0.0.1:$gw/scep",
                                       cn => 'device-a');
is($rc, 0, 'scepclient enrolls with a self-signed certificate')
    or diag($out);
my $key = $cert && ($cert =~ s{client\.pem$}{key.pem}r);

my $before = pkiops();
($rc, $out) = $t->scepclient("http://127.0.0.1:$gw/scep", cn => 'device-a2',
                             key => $key, certificate => $cert);
is($rc, 0, 'scepclient renews with the certificate issued through the'
           . ' gateway') or diag($out);
is(pkiops(), $before + 1, 'the renewal reached the back end');

# a certificate of another CA, by scepclient: refused at the edge
$before = pkiops();
($rc, $out) = $t->scepclient("http://127.0.0.1:$gw/scep", cn => 'other-a',
                             key => $other[0], certificate => $other[1]);
isnt($rc, 0, 'scepclient renewal signed by another CA fails');
is(pkiops(), $before, 'it never reached the back end');
my $signer = 'issuer "CN=Another CA", serial 4D';
ok(defined $t->wait_error_log(
       qr/RenewalReq refused: its signer certificate \Q($signer)\E is not/),
   'the error log names the signer');

# the same with the message tool, for the answers
refused(renewal('/scep', 17, @other), 'untrusted_renewal_signer',
        'RenewalReq signed by another CA');
refused(renewal('/scep', 19, @other), 'untrusted_renewal_signer',
        'PKCSReq signed by another CA');
refused(renewal('/scep', 17, @forged), 'untrusted_renewal_signer',
        "RenewalReq signed by a CA of the same name, another key");
passed(renewal('/scep', 17, @valid), 'RenewalReq signed by the CA');
passed(renewal('/scep', 19, @valid), 'PKCSReq signed by the CA (Cisco IOS)');

# expired: refused, but within scep_renewal_grace it passes
$before = pkiops();
($rc, $out) = $t->scepclient("http://127.0.0.1:$gw/scep", cn => 'expired-a',
                             key => $expired[0], certificate => $expired[1]);
isnt($rc, 0, 'scepclient renewal with an expired certificate fails');
is(pkiops(), $before, 'it never reached the back end');
refused(renewal('/scep', 17, @expired), 'expired_renewal_signer',
        'RenewalReq signed by an expired certificate');
reached('/grace', \@expired, 'expired two days ago, scep_renewal_grace 3d');

# revoked: on the CRL of scep_crl
$before = pkiops();
($rc, $out) = $t->scepclient("http://127.0.0.1:$gw/scep", cn => 'revoked-a',
                             key => $revoked[0], certificate => $revoked[1]);
isnt($rc, 0, 'scepclient renewal with a revoked certificate fails');
is(pkiops(), $before, 'it never reached the back end');
refused(renewal('/scep', 17, @revoked), 'revoked_renewal_signer',
        'RenewalReq signed by a revoked certificate');
passed(renewal('/grace', 17, @revoked), 'no scep_crl there: passed');

# a PKCSReq signed by a certificate the CA issued to its own name is a
# renewal: the names alone do not make it self-signed
refused(renewal('/scep', 19, @ca_named), 'revoked_renewal_signer',
        "PKCSReq signed by a revoked certificate of the CA's name");
ok(defined $t->wait_error_log(
       qr/PKCSReq refused: .*, serial 5A5A\) is on the CRL/),
   "the error log names the CA-named signer");

# a self-signed PKCSReq is no renewal; a self-signed RenewalReq is
passed($t->post($gw, '/scep?operation=PKIOperation', $t->device_msg),
       'self-signed PKCSReq');
refused($t->post($gw, '/scep?operation=PKIOperation',
                 $t->device_msg('--type', 17)),
        'untrusted_renewal_signer', 'self-signed RenewalReq');

# scep_check_renewal off: as before
for my $c (['other CA', @other], ['expired', @expired],
           ['revoked', @revoked])
{
    my ($what, @kc) = @$c;
    reached('/off', \@kc, "scep_check_renewal off: $what");
}

# scep_trusted_ca: the other CA is an anchor there
passed(renewal('/anchored', 17, @other),
       'scep_trusted_ca: signed by an anchor');

# nothing known of the CA: its issuer is not judged, but its validity
# and the CRL need no CA certificate
reached('/plain', \@other, 'no health check, no scep_trusted_ca');
refused(renewal('/plain-crl', 17, @revoked), 'revoked_renewal_signer',
        'no health check, scep_crl: a revoked signer');
refused(renewal('/plain-crl', 17, @expired), 'expired_renewal_signer',
        'no health check: an expired signer');
passed(renewal('/plain-crl', 17, @valid),
       'no health check, scep_crl: a valid signer');

# a GetCACert answer of a CA and an RA: the RA's key issues nothing;
# the first answers may come before the probe passed
my $ra_r;
for (1 .. 50 * (int($ENV{TEST_TIMEOUT_FACTOR} || 1) || 1)) {
    $ra_r = renewal('/ndesra', 17, @{$by{ra}});
    last if $ra_r->{status} == 400;
    select undef, undef, undef, 0.1;
}
refused($ra_r, 'untrusted_renewal_signer',
        "RenewalReq signed by a certificate of the RA's key");
unlike(renewal('/ndesra', 17, @{$by{ca}})->{body},
       qr/^untrusted_renewal_signer/,
       'RenewalReq signed by a certificate of the CA of that answer');

# the status page lists the reasons
my $status = $t->get($gw, '/status')->{body};
like($status, qr/"$_"/, "status page lists $_")
    for qw(untrusted_renewal_signer expired_renewal_signer
           revoked_renewal_signer);

# the CRL is read with the configuration: a new one counts after a
# reload, not before
ca_cmd('-revoke', $valid[1]);
ca_cmd('-gencrl', '-out', "$dir/crl.pem");
passed(renewal('/scep', 17, @valid), 'revoked since, CRL not reloaded');

kill 'HUP', $t->nginx_pid;
my $after;
for (1 .. 50 * (int($ENV{TEST_TIMEOUT_FACTOR} || 1) || 1)) {
    $after = renewal('/scep', 17, @valid);
    last if $after->{status} == 400;
    select undef, undef, undef, 0.1;
}
refused($after, 'revoked_renewal_signer', 'the new CRL after a reload');

# nginx -t: a CRL file that is not there, or not a CRL, or with a CRL
# that does not parse; a bad grace
$t->write_file("$dir/broken-crl.pem",
               $t->read_file("$dir/crl.pem")
               . "-----BEGIN X509 CRL-----\nMIIBAAAA\n-----END X509 CRL-----\n"
               . $t->read_file("$dir/crl.pem"));

my $conf = <<'CONF';
http {
    server {
        listen 127.0.0.1:%%GW%%;
        location / {
            scep on;
            %%WHAT%%
        }
    }
}
CONF

for my $c (["scep_crl $dir/missing.pem;",
            qr/"\Q$dir\E\/missing\.pem": cannot open the file \(No such/],
           ["scep_crl $dir/broken-crl.pem;",
            qr/"scep_crl" "\Q$dir\E\/broken-crl\.pem": CRL 2 does not parse/],
           ["scep_crl $ca/ca.pem;",
            qr/"scep_crl" "\Q$ca\E\/ca\.pem": no CRL in the file/],
           ['scep_renewal_grace soon;',
            qr/"scep_renewal_grace" directive invalid value/])
{
    my ($what, $re) = @$c;
    (my $text = $conf) =~ s/%%WHAT%%/$what/;
    my ($trc, $tout) = $t->test_conf($text);
    isnt($trc, 0, "nginx -t refuses $what");
    like($tout, $re, "nginx -t says why for $what");
}

done_testing;
