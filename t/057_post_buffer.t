#!/usr/bin/perl

# A POSTed pkiMessage is read in memory, never read back from a
# temporary file (that read would block the worker): nginx -t makes
# client_body_buffer_size at least scep_max_message (t/040), and a body
# of exactly that size, larger than nginx's default buffer, by
# Content-Length or chunked, is read in memory, checked and enrolled.

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

$t->start_nginx(<<"CONF");
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size $max;

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            scep_max_message $max;
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
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

# one byte over: refused before the body is read, or once it was read
my $r = $t->post($gw, '/scep?operation=PKIOperation', $msgs[0] . ('x' x ($max
                 - length($msgs[0]) + 1)));
is($r->{status}, 413, 'one byte over scep_max_message: 413');

$r = $t->post($gw, '/scep?operation=PKIOperation', $msgs[0] . ('x' x ($max
              - length($msgs[0]) + 1)), chunked => 1);
is($r->{status}, 413, 'one byte over, chunked: 413');

is($t->count_error_log(qr/temporary file|\[alert\]/), 0,
   'no body went to a temporary file');

$t->stop;
done_testing;
