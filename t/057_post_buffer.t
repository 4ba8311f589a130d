#!/usr/bin/perl

# A POSTed pkiMessage is read in memory, never read back from a
# temporary file (that read would block the worker): nginx -t makes
# client_body_buffer_size larger than scep_max_message (t/040), and a
# body of exactly scep_max_message, larger than nginx's default buffer,
# by Content-Length, chunked, or HTTP/2 with or without a length, is
# read in memory, checked and enrolled.  (With a buffer only as large
# as the message, an HTTP/2 body without a length went to a file in 2
# runs of 5 here: nginx spools a full buffer before it sees the end of
# the stream.)

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
$t->start_backend;

# larger than nginx's default body buffer (two memory pages) with the
# subjectAltNames of a CSR; each device is one more subject, so the
# messages differ in size by a few bytes: the buffer is sized by the
# largest of them
my @msgs = sort { length($b) <=> length($a) }
           map { $t->device_msg('--sans', 600) } 1 .. 4;
my $max = length $msgs[0];
ok($max > 16384, "the messages ($max bytes) are over 16k");

# two more for HTTP/2, the second one exactly as large as the buffer of
# a location of its own
my @h2 = map { $t->device_msg('--sans', 590) } 1 .. 2;
my $h2max = length $h2[1];

# the smallest buffers nginx -t allows: one byte more than the message
# (a buffer that an HTTP/2 body without a length fills exactly goes to
# a file before nginx sees the end of the stream)
my ($buf, $h2buf) = ($max + 1, $h2max + 1);

$t->start_nginx(<<"CONF");
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size $buf;

    server {
        listen 127.0.0.1:%%GW%%;
        listen 127.0.0.1:%%H2%% ssl http2;
        ssl_certificate %%CERT%%;
        ssl_certificate_key %%KEY%%;

        location = /scep {
            scep on;
            scep_max_message $max;
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }

        location = /exact {
            scep on;
            client_body_buffer_size $h2buf;
            scep_max_message $h2max;
            proxy_pass http://127.0.0.1:%%BACKEND0%%/scep;
        }
    }
}
CONF

my $gw = $t->port('GW');

# the largest message, exactly as large as the buffer, chunked: nginx
# does not know the size before it has read it all
my @ways = (
    ['chunked, 1000-byte chunks', { chunked => 1 }],
    ['Content-Length', {}],
    ['chunked again', { chunked => 1 }],
    ['Content-Length again', {}],
);

for my $i (0 .. $#ways) {
    my ($name, $o) = @{$ways[$i]};
    my $r = $t->post($gw, '/scep?operation=PKIOperation', $msgs[$i], %$o);
    is($r->{status}, 200, "a POST of " . length($msgs[$i]) . " bytes,"
                          . " $name: served");
    is($t->pki_status($r->{body}), '0', "$name: enrolled");
}

# HTTP/2, with a length and without one (an upload from a pipe): nginx
# reads an HTTP/2 body into a buffer of its own
my $h2 = $t->port('H2');

for my $c (['with a length', 'scep', ['--data-binary', '@-']],
           ['without a length', 'exact', ['-T', '-', '-X', 'POST']])
{
    my ($name, $loc, $how) = @$c;
    my $in = $t->write_file("h2-$loc.der", shift @h2);
    my $out = "$t->{dir}/h2-$loc.out";
    my ($rc, $err) = $t->run('sh', '-c', 'exec "$@" < "$0"', $in, 'curl',
                             '-sS', '--http2', '-k', '-o', $out,
                             '-w', '%{http_version} %{http_code}',
                             '-H', 'Content-Type: application/x-pki-message',
                             @$how, "https://127.0.0.1:$h2/$loc?"
                             . 'operation=PKIOperation');
    is($err, '2 200', "HTTP/2 POST $name: served");
    is($t->pki_status($t->read_file("h2-$loc.out")), '0',
       "HTTP/2 POST $name: enrolled");
}

# one byte over: refused before the body is read, or once it was read
my $r = $t->post($gw, '/scep?operation=PKIOperation', $msgs[0] . ('x' x ($max
                 - length($msgs[0]) + 1)));
is($r->{status}, 413, 'one byte over scep_max_message: 413');

$r = $t->post($gw, '/scep?operation=PKIOperation', $msgs[0] . ('x' x ($max
              - length($msgs[0]) + 1)), chunked => 1);
is($r->{status}, 413, 'one byte over, chunked: 413');

is($t->count_error_log(qr/scep: POST body .* in a temporary file/), 0,
   'no body went to a temporary file');

$t->stop;
done_testing;
