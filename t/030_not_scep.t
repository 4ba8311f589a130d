#!/usr/bin/perl

# Nothing that is not a SCEP request reaches the back end: wrong
# methods, missing, repeated and unknown operations, NDES's own
# operations, bad messages, and every path but the SCEP one.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
my $b = $t->start_backend;

# The back end is a real scepserver behind a recording hop: the hop's
# log lists every request that got past the gateway.
$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format seen '$request';

    server {
        listen 127.0.0.1:%%GW%%;

        location = /certsrv/mscep/mscep.dll {
            scep on;
            proxy_pass http://127.0.0.1:%%HOP%%/scep;
        }

        location / {
            return 404;
        }
    }

    server {
        listen 127.0.0.1:%%HOP%%;
        large_client_header_buffers 4 72k;
        access_log %%DIR%%/logs/backend.log seen;

        location / {
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }
    }
}
CONF

my $gw = $t->port('GW');
my $p = '/certsrv/mscep/mscep.dll';

sub req { return $t->request($gw, @_) }

my @cases = (
    # method, uri, body, status, reason
    # a bare GET or HEAD is the browser test (t/138), not a rejection:
    # nginx's status line as NDES's, and nothing for the back end
    ['GET', "$p", undef, 403, 'browser_test'],
    ['GET', "$p?", undef, 403, 'browser_test'],
    ['HEAD', "$p", undef, 403, 'browser_test'],
    ['POST', "$p", 'x', 400, 'missing_operation'],
    ['GET', "$p?message=abc", undef, 400, 'missing_operation'],
    ['GET', "$p?operation", undef, 400, 'unknown_operation'],
    ['GET', "$p?operation&operation=GetCACaps", undef, 400,
     'repeated_operation'],
    ['GET', "$p?op%65ration=PKIOperation&operation=GetCACaps", undef, 400,
     'repeated_operation'],
    ['GET', "$p?OPERATION=PKIOperation&operation=GetCACaps", undef, 400,
     'repeated_operation'],
    ['GET', "$p?operation=GetCACaps&operation=GetCACert", undef, 400,
     'repeated_operation'],
    ['GET', "$p?operation=getcacaps", undef, 400, 'unknown_operation'],
    ['GET', "$p?operation=GetCRL", undef, 400, 'unknown_operation'],
    ['GET', "$p?operation=", undef, 400, 'unknown_operation'],
    ['GET', "$p?operation=NDESGenerateChallenge", undef, 403,
     'ndes_operation'],
    ['GET', "$p?operation=NDESGetCACertThumbprint", undef, 403,
     'ndes_operation'],
    ['GET', "$p?operation=PKIOperation", undef, 400, 'missing_message'],
    ['GET', "$p?operation=PKIOperation&message=", undef, 400,
     'missing_message'],
    ['GET', "$p?operation=PKIOperation&message=a&message=b", undef, 400,
     'repeated_message'],
    ['GET', "$p?operation=PKIOperation&message=%%%", undef, 400,
     'bad_base64'],
    ['GET', "$p?operation=PKIOperation&message=ab*d", undef, 400,
     'bad_base64'],
    ['GET', "$p?operation=PKIOperation&message=a%00bc", undef, 400,
     'bad_base64'],
    ['GET', "$p?operation=GetCACert&message=" . ('x' x 300), undef, 400,
     'bad_ca_identifier'],
    ['GET', "$p?operation=GetCACert&message=a%01b", undef, 400,
     'bad_ca_identifier'],
    ['POST', "$p?operation=GetCACaps", 'x', 405, 'method_not_allowed'],
    ['POST', "$p?operation=PKIOperation", '', 400, 'missing_message'],
    ['POST', "$p?operation=PKIOperation&message=abcd", 'abcd', 400,
     'repeated_message'],
    ['POST', "$p?operation=PKIOperation", 'x' x 70000, 413,
     'message_too_large'],
    ['PUT', "$p?operation=PKIOperation", 'abcd', 405, 'method_not_allowed'],
    ['HEAD', "$p?operation=GetCACaps", undef, 405, 'method_not_allowed'],
    ['DELETE', "$p?operation=GetCACert", undef, 405, 'method_not_allowed'],
    ['OPTIONS', "$p?operation=GetCACaps", undef, 405, 'method_not_allowed'],
);

for my $c (@cases) {
    my ($m, $uri, $body, $status, $reason) = @$c;
    my $name = substr("$m $uri", 0, 70);
    my $r = req($m, $uri, $body);
    is($r->{status}, $status, "$name: $status");
    next if $m eq 'HEAD';
    like($r->{body}, qr/^\Q$reason\E: /, "$name: says $reason");
    like($r->{headers}{'content-type'} // '', qr{^text/plain},
         "$name: text/plain");
}

my $r = req('PUT', "$p?operation=PKIOperation", 'abcd');
is($r->{headers}{allow}, 'GET, POST', 'Allow for PKIOperation');
$r = req('POST', "$p?operation=GetCACaps", 'x');
is($r->{headers}{allow}, 'GET', 'Allow for GetCACaps');

# other paths of the NDES server
for my $uri ('/certsrv/mscep_admin/', '/certsrv/mscep_admin/mscep.dll',
             '/certsrv/', '/', '/certsrv/mscep/mscep.dll/../../mscep_admin/',
             '/certsrv/mscep/mscep.dllx?operation=GetCACaps',
             '/CERTSRV/MSCEP_ADMIN/', '/certsrv/mscep_admin%2F')
{
    my $r = req('GET', $uri);
    is($r->{status}, 404, "$uri is not served");
}

# the rejections are logged once each, with the reason; not the browser
# tests
my @lines = $t->error_log_lines(qr/scep: rejected/);
is(scalar @lines, (grep { $_->[4] ne 'browser_test' } @cases) + 2,
   'one error-log line per rejection');
like($lines[0], qr/missing_operation, client: 127\.0\.0\.1/,
     'the line names the reason and the client');

# and a valid request still goes through
$r = req('GET', "$p?operation=GetCACaps");
is($r->{status}, 200, 'GetCACaps passes');

my @seen = $t->lines('logs/backend.log', 1);
is_deeply(\@seen, ['GET /scep?operation=GetCACaps HTTP/1.0'],
          'only the valid request reached the back end');
is($t->backend_requests($b), 1, 'the back end served one request');

$t->stop;
done_testing;
