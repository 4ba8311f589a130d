#!/usr/bin/perl

# A request's state survives internal redirects: with error_page to a URI
# (nginx's default configuration has "error_page 502 503 504 /50x.html")
# and to a named location, and after X-Accel-Redirect,
#   - a pair kept in the replay window for a forward that failed is
#     forgotten, so that the device's retry is not replayed_message;
#   - the request is counted on the status page;
#   - a 502 for no healthy back end becomes 503 with Retry-After;
#   - the $scep_* variables reach the access log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;
my $b = $t->start_backend;

$t->html_file('50x.html', "the admin's error page\n");

$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    scep_replay_zone 32k;

    log_format vars '$uri $status "$scep_operation" "$scep_message_type"'
                    ' "$scep_transaction_id" "$scep_reject_reason"'
                    ' cache=$scep_cache';

    upstream down {
        server 127.0.0.1:%%GONE%%;
        scep_health_check interval=300ms timeout=200ms fails=1 uri=/scep;
    }

    server {
        listen 127.0.0.1:%%GW%%;
        access_log %%DIR%%/logs/vars.log vars;

        scep_replay_window 10m;
        scep_retry_after 42;
        scep_ca_cache on;

        location = /scep {
            scep on;
            proxy_pass http://127.0.0.1:%%BACKEND0%%;
        }

        location = /uri {
            scep on;
            proxy_pass http://127.0.0.1:%%GONE%%/scep;
            error_page 502 503 504 /50x.html;
        }

        location = /named {
            scep on;
            proxy_pass http://127.0.0.1:%%GONE%%/scep;
            error_page 502 503 504 @down;
        }

        location = /uri-nohealthy {
            scep on;
            proxy_pass http://down/scep;
            error_page 502 503 504 /50x.html;
        }

        location = /named-nohealthy {
            scep on;
            proxy_pass http://down/scep;
            error_page 502 503 504 @down;
        }

        location = /accel {
            scep on;
            proxy_pass http://127.0.0.1:%%ACCEL%%;
        }

        location = /50x.html {
            root %%DIR%%/html;
        }

        location @down {
            return 502 "the admin's error page\n";
        }

        location = /accel-done {
            internal;
            return 200 "redirected\n";
        }

        location = /status {
            scep_status;
            access_log off;
        }
    }

    # a back end that answers with X-Accel-Redirect
    server {
        listen 127.0.0.1:%%ACCEL%%;
        access_log off;

        location / {
            add_header X-Accel-Redirect /accel-done;
            return 200 "";
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

# the health check takes the only server of "down" out
my $end = time + 10;
while (time < $end) {
    my $p = status()->{upstreams}{down}{peers} // [];
    last if @$p && $p->[0]{state} eq 'down';
    sleep 0.1;
}

my $total = status()->{requests}{total};

for my $where (qw(uri named)) {

    # the replay window: the device's retry is not refused
    my $m = $t->device_msg;
    my $r = $t->post($gw, "/$where?operation=PKIOperation", $m);
    is($r->{status}, 502, "$where: a forward that failed, through error_page");
    is($r->{body}, "the admin's error page\n", "$where: the admin's page");

    $r = $t->post($gw, "/$where?operation=PKIOperation", $m);
    is($r->{status}, 502, "$where: the device's retry is not replayed_message");

    $r = $t->post($gw, '/scep?operation=PKIOperation', $m);
    is($r->{status}, 200, "$where: and the message reaches a back end later");
    $r = $t->post($gw, '/scep?operation=PKIOperation', $m);
    is($r->{status}, 400, "$where: after which it is a replay");

    # no healthy back end: 503 and Retry-After, with the admin's page
    $r = $t->post($gw, "/$where-nohealthy?operation=PKIOperation",
                  $t->device_msg);
    is($r->{status}, 503, "$where: no healthy back end, through error_page:"
                          . " 503");
    is($r->{headers}{'retry-after'}, 42, "$where: with Retry-After");
    is($r->{body}, "the admin's error page\n", "$where: and the admin's page");

    $r = $t->get($gw, "/$where-nohealthy?operation=GetCACaps");
    is($r->{status}, 503, "$where: GetCACaps there: 503 too");
}

# X-Accel-Redirect from the back end
my $r = $t->post($gw, '/accel?operation=PKIOperation',
                 $t->device_msg('--tid', 'accel-tid'));
is($r->{status}, 200, 'a back end\'s X-Accel-Redirect is followed');
is($r->{body}, "redirected\n", 'to the internal location');

# 4 requests a kind, 2 through the device's first POST to /scep, and the
# X-Accel-Redirect: 2 x (3 + 2 + 2) ... counted one by one below
my $st = status();
is($st->{requests}{total} - $total, 2 * 6 + 1,
   'every redirected request is counted on the status page');
is($st->{requests}{operations}{PKIOperation}
   // $st->{requests}{ops}{PKIOperation}, 2 * 5 + 1,
   'as PKIOperations');
is($st->{requests}{no_healthy_backend} // $st->{requests}{no_healthy}, 4,
   'and those that found no healthy back end');

my @log = $t->lines('logs/vars.log', 2 * 6 + 1);
my @redirected = grep { m{^/(50x\.html|accel-done|uri|named)} } @log;
ok(@redirected >= 2 * 4 + 1, 'redirected requests in the access log')
    or diag(join "\n", @log);
for my $l (@redirected) {
    next if $l =~ /"GetCACaps"/;
    like($l, qr/ "PKIOperation" "PKCSReq" "[^"-][^"]*" /,
         'the $scep_* variables of a redirected request are logged');
}
ok((grep { m{^/(50x\.html|uri-nohealthy|named-nohealthy) 503 } } @log) == 4,
   'the 503 for no healthy back end is what $status logs')
    or diag(join "\n", @log);
is((grep { /"GetCACaps" .* cache=MISS$/ } @log), 2,
   '$scep_cache of a CA request after error_page');
ok((grep { m{^/accel-done 200 "PKIOperation" "PKCSReq" "accel-tid" } } @log),
   'after X-Accel-Redirect too');

$t->stop;

done_testing;
