#!/usr/bin/perl

# scep_trusted_ca: a probe's GetCACert answer passes only when its
# certificates are those of the file or issued by them (the signature
# checked): a back end with another CA under the very same name is down
# at its first probe, with a reason naming the subject it sent, its
# answers are never served, and scep_check_recipient knows none of its
# certificates.  A CA renewed with the same key and an issuing CA under
# a root of the file pass.  Without scep_trusted_ca, answers are served
# only while every healthy back end has the same; while they disagree,
# CA requests pass to the back ends ($scep_cache BYPASS), counted, and
# with none healthy no stale answer is served unless they all agree.
# Real scepserver back ends throughout.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Copy qw(copy);
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;
my $d = $t->dir;

sub openssl {
    my ($cmd) = @_;
    my ($rc, $out) = $t->run('sh', '-c', "cd $d/pki && openssl $cmd");
    die "openssl $cmd: $out" if $rc;
}

# a scepserver whose CA is CERT and KEY instead of the test's CA
sub backend_with_ca {
    my ($cert, $key) = @_;
    my $b = $t->start_backend;
    $t->stop_backend($b);
    copy($cert, "$d/depot-$b->{name}/ca.pem") or die "copy: $!";
    copy($key, "$d/depot-$b->{name}/ca.key") or die "copy: $!";
    return $t->restart_backend($b);
}

my $ca = $t->ca;
mkdir "$d/pki";

# another CA under the same name as the test's (scepserver names them all
# alike): only the signature tells them apart
my ($rc, $out) = $t->run('scepserver', 'ca', '-init', '-keySize', '2048',
                         '-depot', "$d/rogue");
die "scepserver ca -init: $out" if $rc;

# the test's CA renewed: a new certificate for the same name and key
# (and so the same subjectKeyIdentifier, as scepserver computes it)
($rc, $out) = $t->run('openssl', 'x509', '-in', "$ca/ca.pem", '-noout',
                      '-ext', 'subjectKeyIdentifier');
my ($ski) = $out =~ /^\s*([0-9A-F:]{20,})\s*$/m or die "no SKI: $out";
openssl("req -x509 -new -key $ca/ca.key -passin pass:"
        . " -subj '/C=US/O=scep-ca/OU=SCEP CA' -days 400 -set_serial 77"
        . " -addext basicConstraints=critical,CA:TRUE"
        . " -addext subjectKeyIdentifier=$ski"
        . " -addext authorityKeyIdentifier=keyid -out renewed.pem");

# an issuing CA under a root, its key one that scepserver made (it reads
# only keys encrypted as its own are)
openssl('req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.pem'
        . ' -subj /CN=Example-Root -days 365 -addext'
        . ' basicConstraints=critical,CA:TRUE');
($rc, $out) = $t->run('scepserver', 'ca', '-init', '-keySize', '2048',
                      '-depot', "$d/issuing");
die "scepserver ca -init: $out" if $rc;
openssl("req -new -key $d/issuing/ca.key -passin pass:"
        . ' -subj /CN=Example-Issuing-CA -out issuing.csr');
$t->write_file('pki/ca.ext', "basicConstraints=critical,CA:TRUE\n"
               . "keyUsage=critical,keyCertSign,cRLSign,digitalSignature\n");
openssl('x509 -req -in issuing.csr -CA root.pem -CAkey root.key'
        . ' -set_serial 5 -days 300 -extfile ca.ext -out issuing.pem');

my $b0 = $t->start_backend;
my $b1 = backend_with_ca("$d/rogue/ca.pem", "$d/rogue/ca.key");
my $b2 = backend_with_ca("$d/pki/renewed.pem", "$ca/ca.key");
my $b3 = backend_with_ca("$d/pki/issuing.pem", "$d/issuing/ca.key");

my $fast = 'interval=300ms timeout=250ms fails=1 passes=1 uri=/scep';
# one probe in the first 5 s, and three failures to mark a server down
my $slow = 'interval=5s timeout=1s fails=3 passes=1 uri=/scep';

$t->start_nginx(<<"CONF");
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format cache '\$uri \$scep_cache "\$upstream_addr" \$status';

    upstream plain {
        server 127.0.0.1:%%BACKEND0%%;
        server 127.0.0.1:%%BACKEND1%%;
        scep_health_check $fast;
    }

    upstream anchored {
        server 127.0.0.1:%%BACKEND0%%;
        server 127.0.0.1:%%BACKEND1%%;
        scep_trusted_ca $ca/ca.pem;
        scep_health_check $slow;
    }

    upstream renewed {
        server 127.0.0.1:%%BACKEND2%%;
        scep_health_check $fast;
        scep_trusted_ca $ca/ca.pem;
    }

    upstream chained {
        server 127.0.0.1:%%BACKEND3%%;
        scep_health_check $fast;
        scep_trusted_ca $d/pki/root.pem;
    }

    upstream unchained {
        server 127.0.0.1:%%BACKEND3%%;
        scep_health_check $fast;
        scep_trusted_ca $ca/ca.pem;
    }

    server {
        listen 127.0.0.1:%%GW%%;
        access_log %%DIR%%/logs/cache.log cache;

        scep_ca_cache on;

        location /plain { scep on; proxy_pass http://plain/scep; }
        location /anchored { scep on; proxy_pass http://anchored/scep; }
        location /renewed { scep on; proxy_pass http://renewed/scep; }
        location /chained { scep on; proxy_pass http://chained/scep; }
        location /unchained { scep on; proxy_pass http://unchained/scep; }

        location = /status {
            scep_status;
            access_log off;
        }
    }
}
CONF

my $gw = $t->port('GW');
my $json = JSON::PP->new;

sub status {
    my $r = $t->get($gw, '/status');
    return eval { $json->decode($r->{body}) } // {};
}

sub peer {
    my ($s, $up, $b) = @_;
    my ($p) = grep { $_->{address} eq "127.0.0.1:$b->{port}" }
              @{ $s->{upstreams}{$up}{peers} // [] };
    return $p // {};
}

my $nlog = 0;

sub ask {
    my ($loc, $op) = @_;
    my $r = $t->get($gw, "/$loc?operation=$op&message=default");
    my @l = $t->lines('logs/cache.log', ++$nlog);
    return ($r, $l[-1] // '');
}

my %direct = map {
    $_->{port} => $t->get($_->{port}, '/scep?operation=GetCACert')->{body}
} $b0, $b1, $b2, $b3;

# with an anchor: the rogue CA is refused at the first probe

my $subject = 'OU=SCEP CA,O=scep-ca,C=US';
my $down = $t->wait_error_log(
    qr/127\.0\.0\.1:$b1->{port} in upstream "anchored" is down: GetCACert: CA certificate not issued by scep_trusted_ca: "\Q$subject\E"$/,
    4);
ok(defined $down, 'anchored: the rogue CA\'s back end is down at its first'
   . ' probe, the subject named');

my $s = status();
my $end = time + 5;
while (!peer($s, 'anchored', $b0)->{ca_answer} && time < $end) {
    sleep 0.1;
    $s = status();
}

is(peer($s, 'anchored', $b1)->{state}, 'down', 'status: down');
is(peer($s, 'anchored', $b1)->{ca_answer}, undef,
   'status: none of its answers kept');
ok(peer($s, 'anchored', $b0)->{ca_answer}, 'status: the good one\'s kept');
is(peer($s, 'plain', $b1)->{state}, 'up',
   'without an anchor the same back end is up');
is($s->{upstreams}{anchored}{trusted_ca}, JSON::PP::true,
   'status: the upstream has an anchor');
is($s->{upstreams}{plain}{trusted_ca}, JSON::PP::false,
   'status: this one has none');

for (1 .. 4) {
    my ($r, $log) = ask('anchored', 'GetCACert');
    ok($r->{body} eq $direct{$b0->{port}}, 'anchored: the trusted answer');
    like($log, qr/ HIT "-" 200$/, 'anchored: from the edge');
}

# scep_check_recipient: the rogue CA's certificate is not one to use
# (named by its key: both CAs have the same name and serial number)
my $der = $t->device_msg('--ca', "$d/rogue/ca.pem", '--keyid');
my $r = $t->post($gw, '/anchored?operation=PKIOperation', $der);
$nlog++;
is($r->{status}, 400, 'anchored: a request to the rogue CA\'s certificate'
   . ' is refused');
like($r->{body}, qr/^unknown_recipient: /, 'as unknown_recipient');

$der = $t->device_msg;
$r = $t->post($gw, '/anchored?operation=PKIOperation', $der);
$nlog++;
is($r->{status}, 200, 'anchored: one to the trusted CA is passed on');

# a renewed CA and an issuing CA under a root of the file

$end = time + 10;
while (time < $end) {
    $s = status();
    last if peer($s, 'renewed', $b2)->{ca_answer}
            && peer($s, 'chained', $b3)->{ca_answer};
    sleep 0.1;
}

for my $up ([ 'renewed', $b2 ], [ 'chained', $b3 ]) {
    my ($name, $b) = @$up;
    is(peer($s, $name, $b)->{state}, 'up', "$name: up");
    my ($r, $log) = ask($name, 'GetCACert');
    ok($r->{body} eq $direct{$b->{port}}, "$name: its answer");
    like($log, qr/ HIT "-" 200$/, "$name: from the edge");
}

ok(defined $t->wait_error_log(
       qr/127\.0\.0\.1:$b3->{port} in upstream "unchained" is down: GetCACert: CA certificate not issued by scep_trusted_ca: "CN=Example-Issuing-CA"$/,
       4),
   'an issuing CA under another root: down, named');
my ($u) = ask('unchained', 'GetCACert');
isnt($u->{status}, 200, 'and nothing of it served');

# without an anchor: healthy back ends that disagree are passed through

ok(defined $t->wait_error_log(
       qr/\[warn\].*scep_ca_cache: healthy back ends of upstream "plain" disagree on GetCACaps or GetCACert \(an RA certificate renewed on some only\?\): passing CA requests to the back ends until they agree/,
       5),
   'plain: the disagreement logged at warn');

my %seen;
for my $op (qw(GetCACert GetCACert GetCACert GetCACert GetCACaps GetCACaps)) {
    my ($r, $log) = ask('plain', $op);
    like($log, qr/^\/plain BYPASS "127\.0\.0\.1:\d+" 200$/,
         "plain: $op BYPASS, from a back end");
    $seen{$r->{body}}++ if $op eq 'GetCACert';
}
ok($seen{$direct{$b0->{port}}} && $seen{$direct{$b1->{port}}},
   'plain: each back end answered for itself, as through a plain proxy');

$s = status();
is($s->{requests}{ca_cache}{bypassed}, 6, 'status: the bypasses counted');
is($s->{upstreams}{plain}{answers_disagree}, JSON::PP::true,
   'status: the upstream flagged');
$r = $t->get($gw, '/status?format=prometheus');
like($r->{body}, qr/^scep_ca_cache_bypassed_total 6$/m,
     'prometheus: the bypasses counted');

# the rogue one goes: they agree, and the answer is served again
$t->stop_backend($b1);
ok(defined $t->wait_error_log(
       qr/scep_ca_cache: healthy back ends of upstream "plain" agree on GetCACaps and GetCACert again/,
       5),
   'plain: agreement logged');
my ($p, $log) = ask('plain', 'GetCACert');
ok($p->{body} eq $direct{$b0->{port}}, 'plain: the answer they agree on');
like($log, qr/^\/plain HIT "-" 200$/, 'plain: from the edge again');

# none healthy: the answers kept still disagree, so none is served stale
$t->stop_backend($b0);
ok(defined $t->wait_error_log(
       qr/127\.0\.0\.1:$b0->{port} in upstream "plain" is down/, 5),
   'plain: the last back end down');
($p, $log) = ask('plain', 'GetCACert');
like($log, qr/^\/plain BYPASS /,
     'plain: stale answers that disagree are not served either');
is($p->{status}, 503, 'plain: 503, as without the cache');

$t->stop;
done_testing;
