#!/usr/bin/perl

# scep_health_check refusals=N refusal_hold=T: a back end that answers
# every probe well but refuses every enrollment (here a real scepserver
# with another challenge, as an NDES whose policy module broke) goes down
# after N FAILUREs in a row while another back end of the upstream
# issued, with a reason that names the count, the failInfo and the other
# server; enrollments then succeed every time; after refusal_hold it
# takes part again.  A device's own wrong challenge, refused everywhere,
# trips nothing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;
my $good = $t->start_backend(name => 'GOOD');
my $broken = $t->start_backend(name => 'BROKEN', challenge => 'changed');
$t->start_backend(name => 'SAME0');
$t->start_backend(name => 'SAME1');
$t->start_backend(name => 'TRIO0');
$t->start_backend(name => "TRIO$_", challenge => 'changed') for 1 .. 2;

my $slow = $ENV{TEST_TIMEOUT_FACTOR} || 1;
my $hold = 8 * $slow;
my $hc = 'scep_health_check interval=1s timeout=900ms uri=/scep'
         . " refusals=4 refusal_hold=${hold}s";

# held for longer than its enrollments take on a loaded machine
my $hc_trio = 'scep_health_check interval=1s timeout=900ms uri=/scep'
              . ' refusals=4 refusal_hold=10m';

$t->start_nginx(<<"CONF");
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    upstream ndes {
        server 127.0.0.1:%%GOOD%%;
        server 127.0.0.1:%%BROKEN%%;
        $hc;
    }

    upstream trio {
        server 127.0.0.1:%%TRIO0%%;
        server 127.0.0.1:%%TRIO1%%;
        server 127.0.0.1:%%TRIO2%%;
        $hc_trio;
    }

    upstream same {
        server 127.0.0.1:%%SAME0%%;
        server 127.0.0.1:%%SAME1%%;
        $hc;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            proxy_pass http://ndes/scep;
        }

        location = /trio {
            scep on;
            proxy_pass http://trio/scep;
        }

        location = /same {
            scep on;
            proxy_pass http://same/scep;
        }

        location = /status {
            scep_status;
        }
    }
}
CONF

my $gw = $t->port('GW');

sub status { $t->status_json($gw) }

sub peer {
    my ($up, $name) = @_;
    my $port = $t->port($name);
    my ($p) = grep { $_->{address} eq "127.0.0.1:$port" }
              @{status()->{upstreams}{$up}{peers} // []};
    return $p // {};
}

sub wait_state {
    my ($up, $name, $state, $secs) = @_;
    my $end = time + $secs * $slow;
    while (time < $end) {
        return 1 if (peer($up, $name)->{state} // '') eq $state;
        sleep 0.1;
    }
    return 0;
}

ok(wait_state('ndes', $_, 'up', 10), "$_ is up") for qw(GOOD BROKEN);
ok(wait_state('same', $_, 'up', 10), "$_ is up") for qw(SAME0 SAME1);
ok(wait_state('trio', $_, 'up', 10), "$_ is up") for qw(TRIO0 TRIO1 TRIO2);

sub enroll {
    my ($path, $challenge) = @_;
    my $r = $t->post($gw, "$path?operation=PKIOperation",
                     $t->device_msg('--challenge', $challenge // 'secret'));
    return $r->{status} == 200 ? $t->pki_status($r->{body}) // 'none'
                               : "HTTP $r->{status}";
}

# round robin: half of the devices reach the broken one, and are refused
my %got;
$got{enroll('/scep')}++ for 1 .. 8;
is($got{0}, 4, 'the good back end issues to half of the devices');
is($got{2}, 4, 'the broken one refuses the other half');

ok(wait_state('ndes', 'BROKEN', 'down', 2),
   'after 4 refusals in a row while another issued: down');
my $down = time;
my $p = peer('ndes', 'BROKEN');
like($p->{reason} // '',
     qr/^4 refusals in a row \(badRequest\) while 127\.0\.0\.1:\d+ issued$/,
     'the reason names the count, the failInfo and the other server');
ok($t->wait_error_log(qr/scep: 127\.0\.0\.1:\d+ in upstream "ndes" is down for $hold s: 4 refusals in a row \(badRequest\) while 127\.0\.0\.1:\d+ issued/, 2),
   'logged at warn');
is(peer('ndes', 'GOOD')->{state}, 'up', 'the good one stays up');

%got = ();
$got{enroll('/scep')}++ for 1 .. 10;
is($got{0}, 10, 'every enrollment now succeeds');

sleep 1;
SKIP: {
    skip 'the enrollments took most of refusal_hold', 1
        if time - $down > $hold - 2;
    is(peer('ndes', 'BROKEN')->{state}, 'down',
       'probes pass, and it stays down within refusal_hold');
}

ok(wait_state('ndes', 'BROKEN', 'up', 12 + $hold),
   'after refusal_hold it takes part again');

%got = ();
$got{enroll('/scep')}++ for 1 .. 4;
is($got{2}, 2, 'and is refused again by it');
is(peer('ndes', 'BROKEN')->{state}, 'up',
   'the count started over: 2 refusals do not trip it');

# a device's own wrong challenge is refused by every server
%got = ();
$got{enroll('/same', 'wrong')}++ for 1 .. 12;
is($got{2}, 12, 'a wrong challenge: refused by both back ends');
is(peer('same', $_)->{state}, 'up', "$_ stays up: nobody issued")
    for qw(SAME0 SAME1);

# two broken servers of three: one at a time is out for its refusals,
# so that requests that every server refuses, steered to one server at a
# time, never take out more than one
%got = ();
$got{enroll('/trio')}++ for 1 .. 18;
my @down = grep { (peer('trio', $_)->{state} // '') eq 'down' }
           qw(TRIO0 TRIO1 TRIO2);
is(scalar @down, 1, 'one of the two broken servers is out')
    or diag("down: @down");
isnt($down[0] // '', 'TRIO0', 'not the one that issues');
%got = ();
$got{enroll('/trio')}++ for 1 .. 12;
@down = grep { (peer('trio', $_)->{state} // '') eq 'down' }
        qw(TRIO0 TRIO1 TRIO2);
is(scalar @down, 1, 'the other stays in while the first is held')
    or diag("down: @down");

# configuration errors
for my $bad ('refusals=x', 'refusals=-1', 'refusal_hold=0', 'refusal_hold=x')
{
    my ($rc, $err) = $t->test_conf(<<"CONF");
http {
    upstream u {
        server 127.0.0.1:1;
        scep_health_check $bad;
    }
    server {
        listen 127.0.0.1:%%GW%%;
        location / { scep on; proxy_pass http://u; }
    }
}
CONF
    ok($rc, "$bad: refused");
    like($err, qr/invalid value "\Q$bad\E" in "scep_health_check"/,
         "$bad: nginx -t names it");
}

done_testing;
