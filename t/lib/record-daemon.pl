#!/usr/bin/perl

# A back end that writes out every request it gets, raw, and answers
# each "200 ok", on keepalive connections too:
#
#   record-daemon.pl PORT FILE
#
# FILE gets, a request each, "=== conn PEERPORT req N", the request line
# and headers as they came, and "bodylen=N" with the body's length.

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ':sys_wait_h';

my ($port, $file) = @ARGV;

my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port", Listen => 64,
                              ReuseAddr => 1)
    or die "listen: $!";

$SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 };

while (1) {
    my $c = $l->accept or next;
    my $pid = fork;
    if ($pid) {
        close $c;
        next;
    }

    my $buf = '';
    my $n = 0;

    while (1) {
        while ($buf !~ /\r\n\r\n/) {
            exit 0 unless sysread($c, $buf, 65536, length $buf);
        }
        my ($h, $rest) = split /\r\n\r\n/, $buf, 2;
        my $cl = $h =~ /^Content-Length:\s*(\d+)/mi ? $1 : 0;
        while (length $rest < $cl) {
            last unless sysread($c, $rest, 65536, length $rest);
        }
        my $body = substr($rest, 0, $cl, '');
        $buf = $rest;
        $n++;

        open my $f, '>>', $file or die "$file: $!";
        binmode $f;
        printf $f "=== conn %d req %d\n%s\nbodylen=%d\n",
                  $c->peerport, $n, $h, length $body;
        close $f;

        syswrite $c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     . "Content-Length: 2\r\n\r\nok";
    }
}
