#!/usr/bin/perl

# What the back end reads of a query string is what the gateway checked:
# a POST PKIOperation reaches it as exactly "operation=PKIOperation",
# whatever else the client put in its query, and a "%u" escape (which
# IIS decodes in names and values, and standard URLs never have) is
# refused with bad_escape, by GET and POST alike, before it reaches
# anything.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
my $b = $t->start_backend;

$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format seen '$request';

    server {
        listen 127.0.0.1:%%GW%%;
        scep_log_level warn;

        location = /scep {
            scep on;
            proxy_pass http://127.0.0.1:%%HOP%%;
        }
    }

    # a recording hop in front of the real back end: the request line
    # as the back end received it
    server {
        listen 127.0.0.1:%%HOP%%;
        access_log %%DIR%%/logs/backend.log seen;

        location / {
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }
    }
}
CONF

my $gw = $t->port('GW');
my $seen = 0;

# the request line the back end got for the last request passed on
sub backend_line {
    my @l = $t->lines('logs/backend.log', $seen + 1);
    return undef if @l <= $seen;
    $seen = @l;
    return $l[-1];
}

# ------------------------------------------------------------------
# POST: the client's query string never reaches the back end

for my $q ('operation=PKIOperation&x=1&y=%41',
           'OPERATION=PKIOperation',
           'operation=PKIOperation&foo=bar&operationx=GetCACert',
           'x=%2526operation%253DGetCACert&operation=PKIOperation&',
           'operation=PKIOperation&debug')
{
    my $r = $t->post($gw, "/scep?$q", $t->device_msg);
    is($r->{status}, 200, "POST ?$q is served");
    is($t->pki_status($r->{body}), '0', "POST ?$q enrolls");
    is(backend_line(), 'POST /scep?operation=PKIOperation HTTP/1.0',
       "POST ?$q reaches the back end as operation=PKIOperation only");
}

my $r = $t->post($gw, '/scep?operation=PKIOperation', $t->device_msg);
is($r->{status}, 200, 'a canonical POST is served');
is(backend_line(), 'POST /scep?operation=PKIOperation HTTP/1.0',
   'a canonical POST reaches the back end unchanged');

# ------------------------------------------------------------------
# %u escapes: refused in names and values, by GET and POST

my $msg = SCEPTest::dialect($t->device_msg, 'std');

my @refused = (
    [GET => 'op%u0065ration=GetCACaps'],
    [GET => 'operation=GetCACaps&op%U0065ration=PKIOperation'],
    [GET => 'operation=PKIOper%u0061tion&message=' . $msg],
    [GET => 'operation=PKIOperation&message=' . $msg . '%u0026x'],
    [GET => 'operation=PKIOperation&m%u0065ssage=x&message=' . $msg],
    [GET => 'operation=GetCACert&message=ca%u0020x'],
    [GET => 'operation=GetCACert&x=%u'],
    [POST => 'operation=PKIOperation&op%u0065ration=GetCACert'],
    [POST => 'operation=PKIOper%u0061tion'],
    [POST => 'operation=PKIOperation&m%u0065ssage=x'],
);

my $logged = $t->count_error_log(qr/rejected .*: bad_escape, client/);

for my $c (@refused) {
    my ($method, $q) = @$c;
    my $r = $method eq 'GET'
            ? $t->get($gw, "/scep?$q")
            : $t->post($gw, "/scep?$q", $t->device_msg);
    my $short = length $q > 60 ? substr($q, 0, 60) . '...' : $q;
    is($r->{status}, 400, "$method ?$short is refused");
    like($r->{body}, qr/^bad_escape: /, "$method ?$short: bad_escape");
}

is($t->count_error_log(qr/rejected .*: bad_escape, client/) - $logged,
   scalar @refused, 'each bad_escape is logged once');

# nothing refused reached the back end, and an escape IIS would not
# decode differently ("%75" is a plain "u") is no %u escape
$r = $t->get($gw, '/scep?operation=GetCACaps&x=%75');
is($r->{status}, 200, '%75 is not a %u escape');
is(backend_line(), 'GET /scep?operation=GetCACaps HTTP/1.0',
   'only the requests passed on reached the back end');

done_testing;
