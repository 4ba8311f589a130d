#!/usr/bin/perl

# Configuration: every file in conf-examples/ passes nginx -t, and a
# scep server whose header buffers cannot hold a 65534-byte query string
# is refused with a message that names the fix, as is a "scep on"
# location whose client_body_buffer_size is not larger than
# scep_max_message.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Copy qw(copy);
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
my $d = $t->dir;
my $ex = SCEPTest::root() . '/conf-examples';

# The examples use the paths of a Debian install; point them into the
# test folder so that nginx -t touches nothing outside it.
mkdir "$d/ex";
mkdir "$d/ex/ssl";
$t->tls_cert;
my @full;

for my $f (sort glob("$ex/*")) {
    next unless -f $f;
    my $name = (split m{/}, $f)[-1];
    my $text = $t->read_file($f);
    if ($ENV{TEST_SCEP_STATIC}) {
        $text =~ s{^\s*load_module\s+\S*ngx_http_scep_module\.so;\n}{}mg;
    }
    $text =~ s{/usr/lib/nginx/modules/ngx_http_scep_module\.so}
              {$t->{module}}g;
    $text =~ s{/var/log/nginx/}{$d/logs/}g;
    $text =~ s{/etc/nginx/ssl/[\w.-]+\.crt}{$d/server.crt}g;
    $text =~ s{/etc/nginx/ssl/[\w.-]+\.key}{$d/server.key}g;
    $text =~ s{/etc/nginx/ssl/[\w.-]+\.pem}{$d/server.crt}g;
    $text =~ s{^(\s*)(listen\s+)(\d+)}{$1$2 127.0.0.1:@{[ $t->port("EX$3") ]}}mg;
    $t->write_file("ex/$name", $text);
    push @full, $name if $text =~ /^\s*events\s*\{/m;
}

ok(@full >= 1, 'conf-examples has complete configurations');

for my $name (@full) {
    my ($rc, $out) = $t->nginx_t("$d/ex/$name");
    is($rc, 0, "conf-examples/$name passes nginx -t") or diag($out);
}

# too small: the server of the scep location itself
my ($rc, $out) = $t->test_conf(<<'CONF');
http {
    client_body_buffer_size 128k;
    server {
        listen 127.0.0.1:%%A%%;
        location /scep { scep on; proxy_pass http://127.0.0.1:%%A%%; }
    }
}
CONF
isnt($rc, 0, 'default header buffers are refused');
like($out, qr/"scep" in \S+test\.conf:\d+ needs "large_client_header_buffers" of at least 65k in its server, but it has 8192 bytes/,
     'the message says what is too small and where');
like($out, qr/add "large_client_header_buffers 4 72k;"/,
     'the message names the fix');

# too small: the default server of the listen address reads the line
($rc, $out) = $t->test_conf(<<'CONF');
http {
    client_body_buffer_size 128k;
    server {
        listen 127.0.0.1:%%B%% default_server;
        return 404;
    }
    server {
        listen 127.0.0.1:%%B%%;
        server_name scep.example;
        large_client_header_buffers 4 72k;
        location /scep { scep on; proxy_pass http://127.0.0.1:%%B%%; }
    }
}
CONF
isnt($rc, 0, 'small buffers in the default server are refused');
like($out, qr/in the default server of 127\.0\.0\.1:\d+/,
     'the message names the listen address');

# scep on at the http level counts for every server
($rc, $out) = $t->test_conf(<<'CONF');
http {
    scep on;
    client_body_buffer_size 128k;
    server {
        listen 127.0.0.1:%%C%%;
        location / { proxy_pass http://127.0.0.1:%%C%%; }
    }
}
CONF
isnt($rc, 0, 'scep on in http with small buffers is refused');

# large enough, set once in http
($rc, $out) = $t->test_conf(<<'CONF');
http {
    large_client_header_buffers 4 65k;
    client_body_buffer_size 128k;
    server {
        listen 127.0.0.1:%%D%% default_server;
        return 404;
    }
    server {
        listen 127.0.0.1:%%D%%;
        location /scep { scep on; proxy_pass http://127.0.0.1:%%D%%; }
    }
}
CONF
is($rc, 0, '65k buffers pass') or diag($out);

# servers without scep keep whatever buffers they like
($rc, $out) = $t->test_conf(<<'CONF');
http {
    server {
        listen 127.0.0.1:%%E%%;
        location / { scep off; return 200; }
    }
}
CONF
is($rc, 0, 'scep off needs no large buffers') or diag($out);

# directive syntax
($rc, $out) = $t->test_conf(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    server {
        listen 127.0.0.1:%%F%%;
        location / { scep maybe; }
    }
}
CONF
like($out, qr/invalid value "maybe" in "scep" directive, it must be "on" or "off"/,
     'scep takes on or off');

($rc, $out) = $t->test_conf(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    server {
        listen 127.0.0.1:%%F%%;
        location / { scep on; scep_max_message 3m; }
    }
}
CONF
like($out, qr/"scep_max_message" directive must be between 1 and 2m/,
     'scep_max_message is bounded');

# a POSTed pkiMessage is read in memory: the body buffer of a scep
# location must hold scep_max_message
($rc, $out) = $t->test_conf(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 8k;
    server {
        listen 127.0.0.1:%%G%%;
        location /scep { scep on; proxy_pass http://127.0.0.1:%%G%%; }
    }
}
CONF
isnt($rc, 0, 'a body buffer smaller than scep_max_message is refused');
like($out, qr/"client_body_buffer_size" 8k must be larger than "scep_max_message" 64k in a "scep on" location \("scep on" in \S+test\.conf:\d+\): set client_body_buffer_size 65k or more/,
     'the message says what is too small, where, and the fix');

# nginx's own default (two memory pages) is too small as well
($rc, $out) = $t->test_conf(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    server {
        listen 127.0.0.1:%%G%%;
        location /scep { scep on; proxy_pass http://127.0.0.1:%%G%%; }
    }
}
CONF
like($out, qr/"client_body_buffer_size" \d+k must be larger than "scep_max_message" 64k/,
     'the default body buffer is refused');

# the merged values count: set in the server, smaller in a nested
# location; a larger scep_max_message needs a larger buffer
($rc, $out) = $t->test_conf(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    server {
        listen 127.0.0.1:%%G%%;
        client_body_buffer_size 128k;
        scep on;
        location / {
            proxy_pass http://127.0.0.1:%%G%%;
            location /small { client_body_buffer_size 16k; }
        }
        location /big {
            scep_max_message 100k;
            proxy_pass http://127.0.0.1:%%G%%;
        }
    }
}
CONF
like($out, qr/"client_body_buffer_size" 16k must be larger than "scep_max_message" 64k/,
     'a nested location with its own smaller buffer is refused');

($rc, $out) = $t->test_conf(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 100k;
    server {
        listen 127.0.0.1:%%G%%;
        location /big {
            scep on;
            scep_max_message 100k;
            proxy_pass http://127.0.0.1:%%G%%;
        }
    }
}
CONF
like($out, qr/"client_body_buffer_size" 100k must be larger than "scep_max_message" 100k .* set client_body_buffer_size 101k or more/,
     'a buffer as large as scep_max_message is refused: a body of unknown'
     . ' length that fills it goes to a file');

($rc, $out) = $t->test_conf(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 16385;
    server {
        listen 127.0.0.1:%%G%%;
        scep_max_message 16k;
        location /scep { scep on; proxy_pass http://127.0.0.1:%%G%%; }
        location /other { client_body_buffer_size 1k; return 204; }
    }
}
CONF
is($rc, 0, 'a buffer one byte larger than scep_max_message passes, and'
           . ' locations without scep keep theirs') or diag($out);

($rc, $out) = $t->test_conf(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;
    server {
        listen 127.0.0.1:%%G%%;
        location /scep {
            scep on;
            client_body_in_file_only clean;
            proxy_pass http://127.0.0.1:%%G%%;
        }
    }
}
CONF
isnt($rc, 0, 'client_body_in_file_only in a scep location is refused');
like($out, qr/"client_body_in_file_only" is not off in a "scep on" location \("scep on" in \S+test\.conf:\d+\): .*set client_body_in_file_only off there/,
     'the message names the fix');

$t->stop;
done_testing;
