#!/usr/bin/perl

# scep_ca_cache: GetCACaps and GetCACert answered at the edge from the
# probes' last good answers, byte for byte with the back end's
# Content-Type, and no request to a back end; with scep_ca_cache_ident
# probe, another CA identifier goes to the back end, as do locations
# without the cache (t/128 has the default, every identifier); $scep_cache and
# $upstream_addr in the log; the hits counted on the status page; served
# stale up to scep_ca_cache_valid when no back end is healthy, then 503.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;

my $b0 = $t->start_backend;
my $b1 = $t->start_backend;
my $b2 = $t->start_backend;

# one probe soon after the start, the next long after the test: any
# request a back end sees during the test comes from a device
my $hc = 'interval=60s timeout=1s uri=/scep';
my $fast = 'interval=300ms timeout=200ms fails=1 passes=1 uri=/scep';

$t->start_nginx(<<"CONF");
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format cache '\$request_uri \$scep_cache "\$upstream_addr" \$status';

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        server 127.0.0.1:%%BACKEND1%%;
        scep_health_check $hc;
    }

    upstream other_ident {
        server 127.0.0.1:%%BACKEND0%%;
        scep_health_check $hc "ca_ident=SCEP Authority";
    }

    upstream flaky {
        server 127.0.0.1:%%BACKEND2%%;
        scep_health_check $fast;
    }

    server {
        listen 127.0.0.1:%%GW%%;
        access_log %%DIR%%/logs/cache.log cache;

        scep_ca_cache on;
        scep_ca_cache_ident probe;

        location = /scep {
            scep on;
            proxy_pass http://ndes;
        }

        location = /nocache {
            scep on;
            scep_ca_cache off;
            proxy_pass http://ndes/scep;
        }

        location = /ident {
            scep on;
            proxy_pass http://other_ident/scep;
        }

        location = /long {
            scep on;
            proxy_pass http://flaky/scep;
        }

        location = /short {
            scep on;
            scep_ca_cache_valid 2s;
            proxy_pass http://flaky/scep;
        }

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

# every back end of UPSTREAM has answers kept
sub cached {
    my ($up, $n) = @_;
    my $end = time + 10;
    while (time < $end) {
        my $peers = status()->{upstreams}{$up}{peers} // [];
        return 1 if @$peers == $n
                    && !grep { !$_->{ca_answer} } @$peers;
        sleep 0.1;
    }
    return 0;
}

ok(cached('ndes', 2), 'the probes kept both back ends\' answers');
ok(cached('other_ident', 1), 'and those for another CA identifier');
ok(cached('flaky', 1), 'and those of the flaky back end');

# what the back end itself answers, asked directly
my %direct;
for my $op (qw(GetCACaps GetCACert)) {
    $direct{$op} = $t->get($b0->{port}, "/scep?operation=$op&message=default");
    is($direct{$op}{status}, 200, "$op from the back end directly");
}

my @before = map { $t->backend_requests($_) } $b0, $b1;

for my $i (1 .. 5) {
    for my $op (qw(GetCACaps GetCACert)) {
        my $r = $t->get($gw, "/scep?operation=$op&message=default");
        next if $i > 1;
        is($r->{status}, 200, "$op from the edge: 200");
        ok($r->{body} eq $direct{$op}{body},
           "$op from the edge: the back end's body byte for byte");
        is($r->{headers}{'content-type'}, $direct{$op}{headers}{'content-type'},
           "$op from the edge: the back end's Content-Type");
    }
}

# "default" spelled with escapes is the same identifier
is($t->get($gw, '/scep?operation=GetCACaps&message=%64efault')->{status}, 200,
   'an escaped identifier that decodes to the probes\' one');

my @after = map { $t->backend_requests($_) } $b0, $b1;
is("@after", "@before", 'eleven answers from the edge, no request to a back'
   . ' end');

my @log = $t->lines('logs/cache.log', 11);
is(scalar(grep { /^\/scep\?operation=GetCAC(aps|ert)&message=\S+ HIT "-" 200$/ }
       @log), 11, '$scep_cache HIT and no $upstream_addr ("-"), every time');

# other CA identifiers, no identifier, and locations without the cache
my $r = $t->get($gw, '/scep?operation=GetCACert&message=otherCA');
is($r->{status}, 200, 'another CA identifier: 200');
$r = $t->get($gw, '/scep?operation=GetCACaps');
is($r->{status}, 200, 'no CA identifier: 200');
$r = $t->get($gw, '/nocache?operation=GetCACaps&message=default');
is($r->{status}, 200, 'scep_ca_cache off: 200');
$r = $t->get($gw, '/scep?operation=GetNextCACert&message=default');

@after = map { $t->backend_requests($_) } $b0, $b1;
is($after[0] + $after[1] - $before[0] - $before[1], 4,
   'those four went to the back ends');

@log = $t->lines('logs/cache.log', 15);
like($log[11], qr/^\S+otherCA MISS "127\.0\.0\.1:\d+" 200$/,
     'another identifier: MISS, with the back end in $upstream_addr');
like($log[12], qr/^\S+GetCACaps MISS "127\.0\.0\.1:\d+" 200$/,
     'no identifier: MISS');
like($log[13], qr/^\/nocache\S+ - "127\.0\.0\.1:\d+" 200$/,
     'scep_ca_cache off: $scep_cache empty');
like($log[14], qr/^\S+GetNextCACert\S+ - "127\.0\.0\.1:\d+" \d+$/,
     'GetNextCACert: not from the edge');

# ca_ident=: the probes asked with that identifier, and it is served
my $log0 = $t->read_file($b0->{log});
$r = $t->get($gw, '/ident?operation=GetCACert&message=SCEP%20Authority');
is($r->{status}, 200, 'ca_ident="SCEP Authority": served');
@log = $t->lines('logs/cache.log', 16);
like($log[15], qr/ HIT "-" 200$/, 'ca_ident=: a HIT');
$r = $t->get($gw, '/ident?operation=GetCACert&message=default');
@log = $t->lines('logs/cache.log', 17);
like($log[16], qr/ MISS "127/, 'ca_ident=: "default" is another CA now');

# counted apart on the status page
my $s = status();
is_deeply($s->{requests}{ca_cache},
          { hits => { GetCACaps => 6, GetCACert => 6 }, stale_hits => 0,
            misses => 3, bypassed => 0 },
          'status: hits by operation, stale hits, misses, none bypassed');
is($s->{requests}{operations}{GetCACaps}, 8,
   'status: hits are requests too');
is($s->{upstreams}{ndes}{answers_disagree}, JSON::PP::false,
   'status: back ends with the same answers agree');

$r = $t->get($gw, '/status?format=prometheus');
like($r->{body}, qr/^scep_ca_cache_hits_total\{operation="GetCACert"\} 6$/m,
     'prometheus: hits');
like($r->{body}, qr/^scep_ca_cache_misses_total 3$/m, 'prometheus: misses');
like($r->{body}, qr/^scep_upstream_answers_disagree\{upstream="ndes"\} 0$/m,
     'prometheus: no disagreement');

# no healthy back end: served until scep_ca_cache_valid after the last
# good probe, then 503 as without the cache
is($t->get($gw, '/short?operation=GetCACaps&message=default')->{status},
   200, 'flaky: served while up');
$t->stop_backend($b2);
my $down = $t->wait_error_log(qr/127\.0\.0\.1:$b2->{port} in upstream "flaky" is down/, 5);
ok(defined $down, 'flaky back end marked down');

$r = $t->get($gw, '/short?operation=GetCACert&message=default');
is($r->{status}, 200, 'no healthy back end: still served within the'
   . ' validity');
ok($r->{body} eq $direct{GetCACert}{body}, 'the same answer');

my $last = status()->{upstreams}{flaky}{peers}[0]{ca_answer}{last_good};
sleep 0.2 while time <= $last + 3;

$r = $t->get($gw, '/short?operation=GetCACert&message=default');
is($r->{status}, 503, 'scep_ca_cache_valid 2s later: 503');
like($r->{body}, qr/^no_healthy_backend: /, 'as without the cache');

$r = $t->get($gw, '/long?operation=GetCACert&message=default');
is($r->{status}, 200, 'the default scep_ca_cache_valid 1h: still served');

$s = status();
is($s->{requests}{ca_cache}{stale_hits}, 2, 'status: stale hits counted');

$t->stop;
done_testing;
