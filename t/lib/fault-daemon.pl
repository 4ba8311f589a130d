#!/usr/bin/perl

# A fake back end that fails the way a broken NDES server does, for the
# faults a real SCEP server cannot produce on demand:
#
#   fault-daemon.pl [--port-file PF] PORT MODE [FILE]
#
# PORT 0: a port the kernel picks, written to PF (a line with the port
# number, once it listens), so that no other process can take it between
# its choice and the bind.
#
#   html500   every answer is IIS's HTML 500 page
#   html503   every answer is HTTP.sys's HTML 503 page (pool stopped)
#   html200   200, but an HTML page where a SCEP answer belongs
#   hang      accepts, reads, and never answers
#   reset     accepts and resets the connection
#   certs     GetCACaps a capability list, GetCACert the DER bytes of
#             FILE (application/x-x509-ca-ra-cert): a CA with an expired
#             RA certificate, say
#   type      as certs, but GetCACert labelled with the content type
#             TYPE, which the probe quotes in its failure reason: markup
#             there tests that the status page shows it as text
#   getonly   as certs, but GetCACaps without POSTPKIOperation and
#             SCEPStandard, as an older NDES answers: a back end that
#             takes PKIOperation by GET only
#   capstype  as certs, but GetCACaps labelled with the content type
#             TYPE: a header value a back end must not get past the
#             probes (a CR and a header of its own after it, say)
#   answer    GetCACaps a capability list, GetCACert the DER certificate
#             FILE (application/x-x509-ca-cert), and every PKIOperation
#             the bytes of the file ANSWER, read again for each request,
#             as application/x-pki-message: a CertRep a test made
#   pending   a CA that holds requests for approval: GetCACaps a
#             capability list, GetCACert the DER certificate FILE, and a
#             POST PKIOperation a CertRep signed with FILE and its key
#             KEY that answers it: PENDING the first time the daemon sees
#             its transactionID, SUCCESS after (a transactionID that
#             starts with "hold-" stays PENDING); prints "PID
#             PKIOperation TID STATUS" for each
#   cutoff    as answer, but the answer breaks off: its Content-Length
#             promises 100 bytes more than are sent before the close
#   slowtls=S an HTTPS server (FILE.crt, FILE.key) that waits S seconds
#             before its TLS handshake and S more before it answers:
#             GetCACaps a capability list, anything else a 500; prints
#             "PID open TIME", "PID request OPERATION TIME" and "PID
#             close TIME" for each connection
#
#   ndes=STATE  NDES as Microsoft's troubleshooting sees it in a browser:
#             GetCACaps and GetCACert as certs (FILE), and the SCEP URL
#             without a query string (the browser test) answered by
#             STATE: 403 (the Intune Certificate Connector in place:
#             IIS's 403.0 page), page (NDES's generic page with 200, as
#             html200: no connector), lower (the same page, its text in
#             lower case), other (200, a page without NDES's text), 503
#             (as html503: the SCEP application pool stopped), 500 (as
#             html500), or hang (never answered); prints "PID request
#             REQUEST-LINE" for each request
#
#   fault-daemon.pl PORT type FILE TYPE
#   fault-daemon.pl PORT capstype FILE TYPE
#   fault-daemon.pl PORT answer FILE ANSWER
#   fault-daemon.pl PORT pending FILE KEY
#
# Loopback only; one process per connection.

use strict;
use warnings;

use FindBin;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_LINGER);

my $port_file;
(undef, $port_file) = splice @ARGV, 0, 2 if ($ARGV[0] // '') eq '--port-file';
my ($port, $mode, $file, $type) = @ARGV;
die "usage: $0 [--port-file PF] PORT MODE [FILE]\n"
    unless defined $port && $port =~ /^\d+$/ && $mode
           && ($port || $port_file);

my $body = '';
if ($file && $mode !~ /^slowtls/) {
    open my $fh, '<', $file or die "$file: $!";
    binmode $fh;
    local $/;
    $body = <$fh>;
}

my $srv = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
                                Listen => 128, ReuseAddr => 1)
    or die "listen on $port: $!";

# the port, for the folder of what mode "pending" saw
my $listening = $srv->sockport;

if ($port_file) {
    open my $fh, '>', "$port_file.tmp" or die "$port_file.tmp: $!";
    print $fh $srv->sockport, "\n";
    close $fh or die "$port_file.tmp: $!";
    rename "$port_file.tmp", $port_file or die "$port_file: $!";
}

$SIG{CHLD} = 'IGNORE';
$SIG{PIPE} = 'IGNORE';
$| = 1;

# loaded once, not in each connection's process
my $tls;
if ($mode =~ /^slowtls/) {
    require IO::Socket::SSL;
    require Time::HiRes;
    $tls = IO::Socket::SSL::SSL_Context->new(SSL_server => 1,
                                             SSL_cert_file => "$file.crt",
                                             SSL_key_file => "$file.key")
        or die "TLS: " . IO::Socket::SSL::errstr() . "\n";
}

while (1) {
    my $c = $srv->accept or next;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid) {
        close $c;
        next;
    }

    close $srv;
    serve($c);
    exit 0;
}

sub answer {
    my ($c, $status, $type, $data) = @_;
    print $c "HTTP/1.1 $status\r\nContent-Type: $type\r\n"
             . "Content-Length: " . length($data) . "\r\n"
             . "Connection: close\r\n\r\n" . $data;
}

sub serve {
    my ($c) = @_;
    binmode $c;

    if ($mode =~ /^slowtls=([\d.]+)$/) {
        slowtls($c, $1);
        return;
    }

    if ($mode eq 'reset') {
        setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
        close $c;
        return;
    }

    my $req = '';
    while ($req !~ /\r\n\r\n/) {
        my $n = sysread($c, my $buf, 65536);
        return unless $n;
        $req .= $buf;
    }

    if ($mode eq 'hang') {
        sleep 3600;
        return;
    }

    if ($mode =~ /^ndes=(\w+)$/) {
        ndes($c, $req, $1);
        close $c;
        return;
    }

    if ($mode =~ /^html(500|503|200)$/) {
        page($c, $1);

    } elsif ($mode eq 'answer' || $mode eq 'cutoff' || $mode eq 'pending') {
        if ($req =~ /operation=GetCACaps/) {
            answer($c, '200 OK', 'text/plain',
                   "POSTPKIOperation\nSHA-256\nAES\nSCEPStandard\n");
        } elsif ($req =~ /operation=GetCACert/) {
            answer($c, '200 OK', 'application/x-x509-ca-cert', $body);
        } elsif ($mode eq 'pending') {
            pending($c, $req);
        } else {
            open my $fh, '<', $type or die "$type: $!";
            binmode $fh;
            local $/;
            my $rep = <$fh> // '';
            close $fh;
            # the request's body, read on so that nginx sees no reset
            my ($len) = $req =~ /\r\nContent-Length:\s*(\d+)/i;
            my $have = length($req) - index($req, "\r\n\r\n") - 4;
            while ($len && $have < $len) {
                my $n = sysread($c, my $buf, 65536);
                last unless $n;
                $have += $n;
            }
            if ($mode eq 'cutoff') {
                print $c "HTTP/1.1 200 OK\r\n"
                         . "Content-Type: application/x-pki-message\r\n"
                         . "Content-Length: " . (length($rep) + 100)
                         . "\r\nConnection: close\r\n\r\n" . $rep;
            } else {
                answer($c, '200 OK', 'application/x-pki-message', $rep);
            }
        }

    } elsif ($mode eq 'certs' || $mode eq 'type' || $mode eq 'capstype'
             || $mode eq 'getonly')
    {
        certs($c, $req);
    }

    close $c;
}

sub certs {
    my ($c, $req) = @_;

    if ($req =~ /operation=GetCACaps/ && $mode eq 'getonly') {
        answer($c, '200 OK', 'text/plain', "SHA-256\nAES\nDES3\n");
    } elsif ($req =~ /operation=GetCACaps/) {
        answer($c, '200 OK', $mode eq 'capstype' ? $type : 'text/plain',
               "POSTPKIOperation\nSHA-256\nAES\nSCEPStandard\n");
    } else {
        answer($c, '200 OK', $mode eq 'type'
                             ? $type : 'application/x-x509-ca-ra-cert',
               $body);
    }
}

# IIS's pages: 500, HTTP.sys's 503 (the pool stopped), NDES's generic
# page with 200, and mscep.dll's 403.0 with the Intune connector
sub page {
    my ($c, $status) = @_;

    if ($status eq '500') {
        answer($c, '500 Internal Server Error', 'text/html',
               "<html><head><title>500 - Internal server error.</title>"
               . "</head><body><h2>500 - Internal server error.</h2>"
               . "</body></html>\r\n");

    } elsif ($status eq '503') {
        answer($c, '503 Service Unavailable', 'text/html; charset=us-ascii',
               "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\">"
               . "<HTML><HEAD><TITLE>Service Unavailable</TITLE></HEAD>"
               . "<BODY><h2>Service Unavailable</h2><hr><p>HTTP Error 503."
               . " The service is unavailable.</p></BODY></HTML>\r\n");

    } elsif ($status eq '200') {
        answer($c, '200 OK', 'text/html',
               "<html><body>Network Device Enrollment Service</body>"
               . "</html>\r\n");

    } elsif ($status eq 'lower') {
        answer($c, '200 OK', 'text/html',
               "<html><body>network device enrollment service</body>"
               . "</html>\r\n");

    } elsif ($status eq 'other') {
        answer($c, '200 OK', 'text/html',
               "<html><body>Welcome</body></html>\r\n");

    } else {
        answer($c, '403 Forbidden', 'text/html',
               "<html><head><title>403 - Forbidden: Access is denied."
               . "</title></head><body><h2>403 - Forbidden: Access is"
               . " denied.</h2></body></html>\r\n");
    }
}

sub ndes {
    my ($c, $req, $state) = @_;
    my ($line) = $req =~ /^([^\r\n]*)/;
    print "$$ request $line\n";

    if ($line =~ /\?operation=GetCAC(aps|ert)/) {
        certs($c, $req);
    } elsif ($line =~ /\?/) {
        answer($c, '400 Bad Request', 'text/plain', "not this test's\n");
    } elsif ($state eq 'hang') {
        sleep 3600;
    } else {
        page($c, $state eq 'page' ? '200' : $state);
    }
}

sub slowtls {
    my ($c, $delay) = @_;

    print "$$ open ", Time::HiRes::time(), "\n";
    Time::HiRes::sleep($delay);

    if (IO::Socket::SSL->start_SSL($c, SSL_server => 1,
                                   SSL_reuse_ctx => $tls))
    {
        my $req = '';
        while ($req !~ /\r\n\r\n/) {
            my $n = sysread($c, my $buf, 65536);
            last unless $n;
            $req .= $buf;
        }

        print "$$ request $1 ", Time::HiRes::time(), "\n"
            if $req =~ /operation=(\w+)/;

        Time::HiRes::sleep($delay);

        if ($req =~ /operation=GetCACaps/) {
            answer($c, '200 OK', 'text/plain',
                   "POSTPKIOperation\nSHA-256\nAES\nSCEPStandard\n");
        } else {
            answer($c, '500 Internal Server Error', 'text/plain', "no\n");
        }
    }

    close $c;
    print "$$ close ", Time::HiRes::time(), "\n";
}

# A CertRep for the POST PKIOperation in $req: PENDING the first time
# for its transactionID (a file in a folder of this daemon's own says it
# was seen), SUCCESS after, made by the message tool
sub pending {
    my ($c, $req) = @_;

    my ($len) = $req =~ /\r\nContent-Length:\s*(\d+)/i;
    my $msg = substr($req, index($req, "\r\n\r\n") + 4);
    while ($len && length($msg) < $len) {
        my $n = sysread($c, my $buf, 65536);
        last unless $n;
        $msg .= $buf;
    }

    my $state = "$file.pending-$listening";
    mkdir $state;
    my $in = "$state/req-$$.der";
    open my $fh, '>', $in or die "$in: $!";
    binmode $fh;
    print $fh $msg;
    close $fh;

    my $asn1 = `openssl asn1parse -inform DER -in $in 2>&1`;
    my ($tid) = $asn1 =~ /:2\.16\.840\.1\.113733\.1\.9\.7\n.*\n.*:(\S+)\n/;
    unless (defined $tid && $tid =~ /^[\w.-]+$/) {
        answer($c, '400 Bad Request', 'text/plain', "no transactionID\n");
        unlink $in;
        return;
    }

    my $seen = "$state/tid-$tid";
    my $status = -e $seen && $tid !~ /^hold-/ ? 0 : 3;
    open $fh, '>', $seen and close $fh;

    my $tool = "$FindBin::Bin/../../build/scep-msg";
    my $cmd = "$tool --type 3 --reply-to $in --key $type"
              . " --signer-cert $file --status $status";
    my $rep = `$cmd`;
    unlink $in;

    print "$$ PKIOperation $tid ", $status ? 'PENDING' : 'SUCCESS', "\n";

    answer($c, '200 OK', 'application/x-pki-message', $rep);
}

