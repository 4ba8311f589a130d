#!/usr/bin/perl

# Every configuration in conf-examples/, run for real: only the SCEP path
# reaches the NDES servers; /certsrv/mscep_admin/ and every other path of
# them get 404 from the gateway, over every listener of the example.
#
# The examples' NDES servers become one stand-in here: an nginx with a
# plain and a TLS listener in front of a real scepserver, whose access
# log lists every request that got through.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $ex = SCEPTest::root() . '/conf-examples';
my @files = grep { -f && do { local $/; open my $f, '<', $_; <$f> =~ /^\s*events\s*\{/m } }
            sort glob("$ex/*");

ok(@files >= 4, 'conf-examples has complete configurations');

for my $file (@files) {
    my $name = (split m{/}, $file)[-1];
    my $t = SCEPTest->new;
    my $d = $t->dir;
    $t->start_backend;
    $t->tls_cert;

    # the NDES stand-in
    $t->write_file('ndes/nginx.conf', $t->expand(<<'CONF'));
daemon on;
pid %%DIR%%/ndes/nginx.pid;
error_log %%DIR%%/logs/ndes-error.log;
events {}
http {
    client_body_temp_path %%DIR%%/ndes/tmp;
    proxy_temp_path %%DIR%%/ndes/tmp;
    large_client_header_buffers 4 72k;
    log_format seen '$request_uri "$http_user_agent"';

    server {
        listen 127.0.0.1:%%NDES%%;
        listen 127.0.0.1:%%NDESTLS%% ssl;
        ssl_certificate %%CERT%%;
        ssl_certificate_key %%KEY%%;
        access_log %%DIR%%/logs/ndes.log seen;

        location /certsrv/mscep/mscep.dll {
            # the browser test: NDES with the Intune connector in place
            if ($args = "") {
                return 403;
            }

            proxy_pass http://127.0.0.1:%%BACKEND0%%/scep;
        }

        location / {
            return 200 "another path of the NDES server\n";
        }
    }
}
CONF
    my ($rc, $out) = $t->run($t->{nginx}, '-p', "$d/ndes", '-c',
                             "$d/ndes/nginx.conf", '-e',
                             "$d/logs/ndes-error.log");
    die "NDES stand-in: $out" if $rc;

    # the example, with its paths, ports and servers pointed at the test
    my %tls;
    for my $f (glob("$ex/*")) {
        next unless -f $f;
        my $text = $t->read_file($f);
        my $n = (split m{/}, $f)[-1];

        if ($ENV{TEST_SCEP_STATIC}) {
            $text =~ s{^\s*load_module\s+\S*ngx_http_scep_module\.so;\n}{}mg;
        }
        $text =~ s{/usr/lib/nginx/modules/ngx_http_scep_module\.so}
                  {$t->{module}}g;
        $text =~ s{/var/log/nginx/}{$d/logs/}g;
        # the CA that scep_trusted_ca names is the back end's
        $text =~ s{/etc/nginx/ssl/corp-root-ca\.pem}{$t->ca_pem}ge;
        $text =~ s{/etc/nginx/ssl/[\w.-]+\.(crt|pem)}{$d/server.crt}g;
        $text =~ s{/etc/nginx/ssl/[\w.-]+\.key}{$d/server.key}g;
        $text =~ s{ndes\.corp\.example\.com}{localhost}g;
        $text =~ s{^(\s*worker_processes\s+)auto;}{${1}1;}mg;
        $text =~ s{^(\s*listen\s+)(\d+)([^;]*);}{
            my ($lead, $num, $rest) = ($1, $2, $3);
            my $p = $t->port("L$num");
            $tls{$p} = ($rest =~ /\bssl\b/) ? 1 : 0 if $n eq $name;
            "$lead 127.0.0.1:$p$rest;"
        }mge;

        my $https = $text =~ m{proxy_pass\s+https://};
        my $ndes = $t->port($https ? 'NDESTLS' : 'NDES');
        $text =~ s{^(\s*server\s+)192\.0\.2\.\d+:\d+;}{$1 127.0.0.1:$ndes;}mg;

        # every http block gets its temporary files in the test folder
        my $paths = join '', map { "    ${_}_temp_path $d/tmp_$_;\n" }
            qw(client_body proxy fastcgi uwsgi scgi);
        $text =~ s/^(http\s*\{[ \t]*\n)/$1$paths/m;
        $text = "pid $d/nginx.pid;\n$text" if $n eq $name;

        $t->write_file("ex/$n", $text);
    }

    ($rc, $out) = $t->run($t->{nginx}, '-p', "$d/ex", '-c', "$d/ex/$name",
                          '-e', "$d/logs/error.log");
    if ($rc) {
        fail("$name starts: $out");
        next;
    }
    $t->{nginx_running} = 1;
    $t->wait_file("$d/nginx.pid");

    # health-checked examples: let the first probes pass
    sleep 1 if $t->read_file("ex/$name") =~ /scep_health_check/;

    my $passed = 0;

    for my $port (sort keys %tls) {
        my $tls = $tls{$port};
        my $via = "$name, port " . ($tls ? 'TLS' : 'plain');

        for my $uri ('/certsrv/mscep_admin/', '/certsrv/mscep_admin/mscep.dll',
                     '/certsrv/mscep_admin/?operation=GetCACaps',
                     '/certsrv/', '/', '/certsrv/certfnsh.asp',
                     '/certsrv/mscep/../mscep_admin/',
                     '/certsrv/mscep/mscep.dll/../../mscep_admin/',
                     '/CertSrv/MSCEP_ADMIN/')
        {
            my $r = $t->get($port, $uri, tls => $tls);
            is($r->{status}, 404, "$via: $uri is not served");
        }

        my $r = $t->get($port, '/certsrv/mscep/mscep.dll?operation=GetCACaps',
                        tls => $tls);
        is($r->{status}, 200, "$via: GetCACaps on the SCEP path passes");
        $passed++;
    }

    # what the NDES servers saw, health probes (which send the CA
    # identifier "default", and with "intune" the bare SCEP URL, which
    # only they may send) included
    my @seen = $t->lines('logs/ndes.log', $passed);
    my $probe = qr/"nginx-scep-health-check"/;
    my $path = qr{/certsrv/mscep/mscep\.dll(?:/pkiclient\.exe)?};
    my @bad = grep {
                  $_ !~ m{^$path\?operation=GetCAC(aps|ert)(&message=default)? }
                  && $_ !~ m{^$path $probe$}
              } @seen;
    is(join(', ', @bad), '', "$name: nothing but SCEP reached NDES");

    $t->stop;

    # the stand-in
    my $pid = $t->read_file('ndes/nginx.pid');
    chomp $pid;
    if ($pid) {
        kill 'QUIT', $pid;
        for (1 .. 100) { last unless kill 0, $pid; select(undef, undef, undef, 0.05) }
    }
}

done_testing;
