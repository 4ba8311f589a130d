#!/usr/bin/perl

# Requests encrypted to a certificate that the CA no longer uses
# (scep_check_recipient): where the health probes have the back ends'
# GetCACert answer, a PKIOperation whose envelope names none of its
# certificates, by issuer and serial or by subjectKeyIdentifier, is
# answered 400 unknown_recipient, with the issuer and serial in the
# error log, and never reaches a back end.  One encrypted to the CA
# certificate that the back ends publish enrolls.  Without health checks,
# before the first probe, and with "scep_check_recipient off", requests
# pass as before.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use SCEPTest;

my $t = SCEPTest->new;
$t->start_backend for 1 .. 2;

# the RA certificate the devices still hold: the CA's old one, or a
# certificate of another CA
my $old = $t->dir . '/old';
mkdir $old or die "mkdir $old: $!";
my ($rc, $out) = $t->run('openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                         '-nodes', '-keyout', "$old/ra.key",
                         '-out', "$old/ra.pem", '-subj', '/CN=Old MSCEP-RA',
                         '-set_serial', '0x0badcafe', '-days', '2');
die "openssl req: $out" if $rc;

# a GetCACert answer of more certificates than the gateway keeps
# (SCEP_CERTS_MAX, 8): what it does not know, it does not refuse
my @many;
for my $i (1 .. 9) {
    ($rc, $out) = $t->run('openssl', 'req', '-x509', '-newkey', 'rsa:1024',
                          '-nodes', '-keyout', "$old/c$i.key",
                          '-out', "$old/c$i.pem", '-subj', "/CN=cert $i",
                          '-days', '2');
    die "openssl req: $out" if $rc;
    push @many, '-certfile', "$old/c$i.pem";
}
($rc, $out) = $t->run('openssl', 'crl2pkcs7', '-nocrl', @many,
                      '-outform', 'DER', '-out', "$old/many.p7");
die "openssl crl2pkcs7: $out" if $rc;
my $fault = $t->start_fault('certs', "$old/many.p7");

$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        server 127.0.0.1:%%BACKEND1%%;
        scep_health_check interval=300ms timeout=200ms uri=/scep;
    }

    upstream many {
        server 127.0.0.1:%%FAULT_CERTS1%%;
        scep_health_check interval=300ms timeout=200ms uri=/scep;
    }

    upstream plain {
        server 127.0.0.1:%%BACKEND0%%;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            proxy_pass http://ndes;
        }

        location = /off {
            scep on;
            scep_check_recipient off;
            proxy_pass http://ndes/scep;
        }

        location = /many {
            scep on;
            proxy_pass http://many/scep;
        }

        location = /plain {
            scep on;
            proxy_pass http://plain/scep;
        }

        location = /status {
            scep_status;
        }
    }
}
CONF

my $gw = $t->port('GW');
my $json = JSON::PP->new;

# both back ends up, with the certificates of their GetCACert
my $ready = 0;
for (1 .. 100 * (int($ENV{TEST_TIMEOUT_FACTOR} || 1) || 1)) {
    my $r = $t->get($gw, '/status');
    my $s = eval { $json->decode($r->{body}) } // {};
    my $peers = $s->{upstreams}{ndes}{peers} // [];
    $ready = 2 == grep { $_->{state} eq 'up' && @{$_->{certificates} // []} }
                  @$peers;
    $peers = $s->{upstreams}{many}{peers} // [];
    $ready &&= 1 == grep { $_->{state} eq 'up' } @$peers;
    last if $ready;
    select undef, undef, undef, 0.1;
}
ok($ready, 'the probes have the GetCACert of every back end');

# PKIOperations the back ends served
sub pkiops {
    my $n = 0;
    for my $b (@{$t->{backends}}) {
        my $log = $t->read_file($b->{log});
        $n += () = $log =~ /caller=endpoint\.go\S* op=PKIOperation/g;
    }
    return $n;
}

sub enrolled {
    my ($cn) = @_;
    my @f = map { glob($t->dir . "/depot-$_->{name}/$cn.*.pem") }
        @{$t->{backends}};
    return scalar @f;
}

sub send_msg {
    my ($method, $path, $der) = @_;
    return $method eq 'GET'
        ? $t->get($gw, "$path?operation=PKIOperation&message="
                       . SCEPTest::dialect($der, 'std'))
        : $t->post($gw, "$path?operation=PKIOperation", $der);
}

for my $method ('GET', 'POST') {
    for my $keyid (0, 1) {
        my @how = $keyid ? ('--keyid') : ();
        my $what = "$method, recipient by "
                   . ($keyid ? 'subjectKeyIdentifier' : 'issuer and serial');

        # to the old certificate: refused at the gateway

        my $before = pkiops();
        my $re = qr/rejected $method "PKIOperation".*: unknown_recipient/;
        my $logged = $t->count_error_log($re);

        my $der = $t->device_msg('--cipher', 'des3', '--ca', "$old/ra.pem",
                                 @how);
        my $r = send_msg($method, '/scep', $der);

        is($r->{status}, 400, "$what, old certificate: 400");
        like($r->{body}, qr/^unknown_recipient: .*no longer uses: fetch/,
             "$what, old certificate: the reason and what to do");
        is(pkiops(), $before, "$what, old certificate: no back end saw it");
        ok($t->wait_error_log($re, 5, $logged),
           "$what, old certificate: the rejection logged");

        # to the CA certificate the back ends publish: enrolled (but
        # scepserver reads no recipient named by subjectKeyIdentifier)

        $der = $t->device_msg('--cipher', 'des3', @how);
        my $cn = "device-$t->{devices}";
        $r = send_msg($method, '/scep', $der);

        if ($keyid) {
            isnt($r->{status}, 400, "$what, current certificate: passed");
            is(pkiops(), $before + 1,
               "$what, current certificate: the back end got it");
            next;
        }

        is($r->{status}, 200, "$what, current certificate: 200")
            or diag($r->{body});
        ok(enrolled($cn), "$what, current certificate: enrolled");
    }
}

my @l = $t->error_log_lines(qr/encrypted to a certificate that no healthy/);
ok((grep { /upstream "ndes".*issuer "CN=Old MSCEP-RA", serial 0BADCAFE,/ }
    @l), 'the error log names the issuer and serial the device used')
    or diag(join "\n", @l);
ok((grep { /upstream "ndes".*subjectKeyIdentifier [0-9a-f]{40},/ } @l),
   'or the subjectKeyIdentifier');

# where nothing is checked, the old certificate reaches the back end,
# which cannot decrypt it

for my $path ('/off', '/plain') {
    my $before = pkiops();
    my $der = $t->device_msg('--cipher', 'des3', '--ca', "$old/ra.pem");
    my $r = send_msg('POST', $path, $der);

    my $what = $path eq '/off' ? 'scep_check_recipient off'
                               : 'no health checks';

    isnt($r->{status}, 400, "$what: not refused") or diag($r->{body});
    is(pkiops(), $before + 1, "$what: the back end got it");
}

my $der = $t->device_msg('--cipher', 'des3', '--ca', "$old/ra.pem");
my $r = send_msg('POST', '/many', $der);
is($r->{status}, 200, 'GetCACert of more certificates than kept: not refused')
    or diag($r->{body});
like($r->{headers}{'content-type'} // '', qr/x-x509-ca-ra-cert/,
     'GetCACert of more certificates than kept: the back end answered');

$t->stop;
done_testing;
