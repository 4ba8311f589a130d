#!/usr/bin/perl

# scep_status: the gateway's state as JSON and in the Prometheus text
# format.  Every documented field is there with its type; the health
# records follow a back end going down and coming back; the request
# counters, summed over two workers, are exact for a known sequence of
# requests; no healthy back end, rate limits and an RA certificate about
# to expire show up; the counters survive a reload; allow/deny, HEAD and
# POST behave.

use strict;
use warnings;

use B ();
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(sleep time);
use SCEPTest;

my $t = SCEPTest->new;
my $t0 = time;

my $b0 = $t->start_backend;
my $b1 = $t->start_backend;

# A CA whose RA certificate expires in 10 days: within ra_expiry_warn, so
# logged and flagged, not failed.
my $ra_not_after = int(time) + 10 * 86400;
my $enddate = strftime('%Y%m%d%H%M%SZ', gmtime $ra_not_after);
my $startdate = strftime('%Y%m%d%H%M%SZ', gmtime(time - 86400));

my $expiring = $t->ca_ra_bundle('exp', $startdate, $enddate);

my $reset = $t->start_fault('reset');
my $certs = $t->start_fault('certs', $expiring);

my $hc = 'interval=500ms timeout=300ms uri=/scep';

$t->start_nginx(<<"CONF");
worker_processes 2;

http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    log_format workers '\$pid \$status';

    limit_req_zone \$binary_remote_addr zone=lim:1m rate=1r/m;

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        server 127.0.0.1:%%BACKEND1%%;
        scep_health_check $hc;
    }

    upstream lonely {
        server 127.0.0.1:$reset->{port};
        scep_health_check $hc;
    }

    upstream expiring {
        server 127.0.0.1:$certs->{port};
        scep_health_check $hc ra_expiry_warn=30d;
    }

    # no health checks: not on the status page
    upstream plain {
        server 127.0.0.1:%%BACKEND0%%;
    }

    server {
        # one listening socket per worker: the kernel spreads the
        # connections over both workers
        listen 127.0.0.1:%%GW%% reuseport;

        location = /scep {
            scep on;
            access_log %%DIR%%/logs/workers.log workers;
            proxy_pass http://ndes;
        }

        location = /limited {
            scep on;
            access_log %%DIR%%/logs/workers.log workers;
            limit_req zone=lim;
            limit_req_status 429;
            proxy_pass http://ndes/scep;
        }

        location = /lonely {
            scep on;
            proxy_pass http://lonely/scep;
        }

        location = /plain {
            scep on;
            proxy_pass http://plain/scep;
        }

        location = /status {
            scep_status;
            allow 127.0.0.1;
            deny all;
        }
    }
}
CONF

my $gw = $t->port('GW');
my $host = '127\.0\.0\.1';
my $json = JSON::PP->new;

my @reject_tokens = qw(
    method_not_allowed missing_operation repeated_operation
    unknown_operation ndes_operation missing_message repeated_message
    message_too_large bad_base64 bad_ca_identifier bad_escape
    replayed_message bad_der not_signed_data
    bad_signer_count bad_content_type bad_envelope bad_message_type
    bad_transaction_id bad_sender_nonce bad_digest_algorithm
    bad_cipher_algorithm no_signer_certificate bad_signature
);
my @ops = qw(GetCACert GetCACaps GetNextCACert PKIOperation other);
my @types = qw(PKCSReq RenewalReq CertPoll GetCert GetCRL);
my @classes = qw(1xx 2xx 3xx 4xx 5xx);

# ------------------------------------------------------------------
# helpers

sub fetch {
    my ($query) = @_;
    return $t->get($gw, '/status' . ($query // ''));
}

# the status as JSON; dies (failing the test file) if it does not parse
sub status {
    my $r = fetch();
    die "status: HTTP $r->{status}: $r->{body}\n" unless $r->{status} == 200;
    my $s = eval { $json->decode($r->{body}) };
    die "status: not JSON ($@): $r->{body}\n" unless ref $s eq 'HASH';
    return $s;
}

sub peer {
    my ($s, $up, $port) = @_;
    my $peers = $s->{upstreams}{$up}{peers} // [];
    my ($p) = grep { ($_->{address} // '') eq "127.0.0.1:$port" } @$peers;
    return $p;
}

# polls the status until $cond->($s) holds; returns the last document
sub wait_status {
    my ($cond, $secs) = @_;
    my $end = time + ($secs // 5);
    my $s;
    while (1) {
        $s = status();
        return $s if $cond->($s);
        return $s if time > $end;
        sleep 0.1;
    }
}

# The JSON types, checked on the scalars exactly as JSON::PP decoded
# them (a JSON number has a numeric flag and no string one; a string
# only the string one).
sub jtype {
    my ($v) = @_;
    return 'null' unless defined $v;
    return 'bool' if JSON::PP::is_bool($v);
    return 'object' if ref $v eq 'HASH';
    return 'array' if ref $v eq 'ARRAY';
    my $f = B::svref_2object(\$v)->FLAGS;
    return 'string' if $f & B::SVf_POK;
    return 'int' if $f & B::SVf_IOK;
    return 'number' if $f & B::SVf_NOK;
    return 'unknown';
}

# schema: 'int', 'string', 'bool', 'int|null', ... ; { key => schema };
# [ schema ] for an array of such.  Returns the list of problems.
sub check_schema {
    my ($v, $schema, $path) = @_;
    my @bad;
    if (ref $schema eq 'HASH') {
        return ("$path: " . jtype($v) . ", expected an object")
            unless jtype($v) eq 'object';
        for my $k (sort keys %$schema) {
            if (!exists $v->{$k}) {
                push @bad, "$path.$k: missing";
                next;
            }
            push @bad, check_schema($v->{$k}, $schema->{$k}, "$path.$k");
        }
        return @bad;
    }
    if (ref $schema eq 'ARRAY') {
        my ($elem, $or_null) = @$schema;
        return () if $or_null && !defined $v;
        return ("$path: " . jtype($v) . ", expected an array")
            unless jtype($v) eq 'array';
        for my $i (0 .. $#$v) {
            push @bad, check_schema($v->[$i], $elem, "$path\[$i]");
        }
        return @bad;
    }
    my $got = jtype($v);
    my %ok = map { $_ => 1 } split /\|/, $schema;
    $ok{int} = 1 if $ok{number};
    return () if $ok{$got};
    return ("$path: $got, expected $schema");
}

my %classes_schema = map { $_ => 'int' } @classes;

my $cert_schema = {
    role => 'string', subject => 'string', serial => 'string',
    not_after => 'int', days_left => 'int', expiring => 'bool',
};

my $peer_schema = {
    address => 'string', state => 'string',
    passes => 'int', fails => 'int', checks => 'int',
    last_check => 'int|null', last_result => 'string|null',
    latency_ms => 'int|null', reason => 'string|null',
    last_change => 'int',
    # from the last passing probe: none for a server that never passed
    capabilities => ['string', 'or null'],
    certificates => [$cert_schema, 'or null'],
    warning => 'string|null',
    requests => 'int',
    responses => \%classes_schema,
    failovers => 'int',
    # scep_ca_cache is off here: the probes keep no answers
    ca_answer => 'null',
};

my $schema = {
    gateway => {
        module_version => 'string', nginx_version => 'string',
        workers => 'int', started => 'int', uptime => 'int',
        generation => 'int',
    },
    requests => {
        total => 'int',
        operations => { map { $_ => 'int' } @ops },
        message_types => { map { $_ => 'int' } @types },
        responses => \%classes_schema,
        rejected => { map { $_ => 'int' } @reject_tokens },
        rate_limited => 'int',
        no_healthy_backend => 'int',
        ca_cache => { hits => { GetCACaps => 'int', GetCACert => 'int' },
                      stale_hits => 'int', misses => 'int',
                      bypassed => 'int' },
    },
    upstreams => {
        map { $_ => { peers => [$peer_schema], answers_disagree => 'bool',
                      trusted_ca => 'bool' } }
            qw(ndes lonely expiring)
    },
    replay => { entries => 'int', evicted => 'int' },
    pending => { entries => 'int', evicted => 'int' },
};

# the counters of a document as "requests.operations.GetCACaps" => 7
sub flat {
    my ($v, $path, $out) = @_;
    $path //= '';
    $out //= {};
    if (ref $v eq 'HASH') {
        flat($v->{$_}, $path eq '' ? $_ : "$path.$_", $out) for keys %$v;
    } elsif (!ref $v && defined $v) {
        $out->{$path} = $v;
    }
    return $out;
}

# the counters summed over the peers of an upstream
sub peer_sums {
    my ($s, $up) = @_;
    my %sum;
    for my $p (@{$s->{upstreams}{$up}{peers}}) {
        $sum{requests} += $p->{requests};
        $sum{failovers} += $p->{failovers};
        $sum{"responses.$_"} += $p->{responses}{$_} for @classes;
    }
    return \%sum;
}

# ------------------------------------------------------------------
# the first probes: every server has been checked once, the reset one is
# down, the one with the expiring RA certificate is up and warned about

ok(defined $t->wait_error_log(
       qr/\[warn\].*scep health check: $host:$reset->{port} in upstream "lonely" is down/,
       10),
   'the server that resets is logged down');
ok(defined $t->wait_error_log(
       qr/\[warn\].*scep health check: $host:$certs->{port} in upstream "expiring": .*expires/,
       10),
   'the expiring RA certificate is logged');

my $s = wait_status(sub {
    my $s = shift;
    for my $up (qw(ndes lonely expiring)) {
        for my $p (@{$s->{upstreams}{$up}{peers} // []}) {
            return 0 unless defined $p->{last_result};
        }
    }
    return 1;
}, 10);

# ------------------------------------------------------------------
# 1. the document: every documented field, with its type

my $r = fetch();
is($r->{status}, 200, 'status: 200');
like($r->{headers}{'content-type'} // '', qr{^application/json\b},
     'Content-Type: application/json');

{
    # a fresh decode, so that nothing has touched the scalars' flags
    my $doc = eval { JSON::PP->new->decode($r->{body}) };
    ok(ref $doc eq 'HASH', 'the status is a JSON object') or diag($r->{body});
    my @bad = check_schema($doc, $schema, '');
    is(join("\n", @bad), '', 'every documented field, with its JSON type');
}

$s = $json->decode($r->{body});

my (undef, $nginx_v) = $t->run($t->{nginx}, '-v');
my ($nginx_version) = $nginx_v =~ m{nginx/(\S+)};
my ($module_version) = $t->read_file(SCEPTest::root()
                                     . '/src/ngx_http_scep_module.h')
    =~ /NGX_HTTP_SCEP_MODULE_VERSION\s+"([^"]+)"/;

my $g = $s->{gateway};
is($g->{nginx_version}, $nginx_version, "gateway.nginx_version $nginx_version");
is($g->{module_version}, $module_version,
   "gateway.module_version $module_version");
is($g->{workers}, 2, 'gateway.workers: 2');
is($g->{generation}, 1, 'gateway.generation: 1 at start');
ok($g->{started} >= int($t0) - 1 && $g->{started} <= time + 1,
   "gateway.started is when nginx started ($g->{started})");
ok(abs($g->{uptime} - (time - $g->{started})) <= 2,
   "gateway.uptime is now - started ($g->{uptime})");

is_deeply([sort keys %{$s->{upstreams}}], [qw(expiring lonely ndes)],
          'upstreams: those with scep_health_check, and only those');
is_deeply([sort map { $_->{address} } @{$s->{upstreams}{ndes}{peers}}],
          [sort map { "127.0.0.1:$_->{port}" } $b0, $b1],
          'ndes: both servers, by address');

for my $be ($b0, $b1) {
    my $p = peer($s, 'ndes', $be->{port});
    is($p->{state}, 'up', "ndes $be->{name}: up");
    is($p->{last_result}, 'pass', "ndes $be->{name}: last_result pass");
    ok(!defined $p->{reason}, "ndes $be->{name}: reason null, none failed");
    ok(!defined $p->{warning}, "ndes $be->{name}: warning null");
    ok($p->{checks} >= 1 && $p->{passes} >= 1 && $p->{fails} == 0,
       "ndes $be->{name}: checks $p->{checks}, passes $p->{passes}, fails 0");
    ok($p->{last_check} >= int($t0) - 1 && $p->{last_check} <= time + 1,
       "ndes $be->{name}: last_check is a recent Unix time");
    ok($p->{latency_ms} >= 0 && $p->{latency_ms} <= 300,
       "ndes $be->{name}: latency_ms within the timeout");
    ok((grep { $_ eq 'POSTPKIOperation' } @{$p->{capabilities} // []}),
       "ndes $be->{name}: capabilities from GetCACaps");
    my @ca = grep { $_->{role} eq 'CA' } @{$p->{certificates} // []};
    is(scalar @ca, 1, "ndes $be->{name}: the CA certificate");
    ok(@ca && JSON::PP::is_bool($ca[0]{expiring}) && !$ca[0]{expiring},
       "ndes $be->{name}: not expiring");
}

my $lp = peer($s, 'lonely', $reset->{port});
is($lp->{state}, 'down', 'lonely: down');
is($lp->{last_result}, 'fail', 'lonely: last_result fail');
is($lp->{reason}, 'GetCACaps: connection reset', 'lonely: reason');
ok($lp->{fails} >= 2 && $lp->{passes} == 0,
   "lonely: fails $lp->{fails}, passes 0");
is(scalar @{$lp->{certificates} // []}, 0,
   'lonely: no certificates, it never passed');

# allow/deny
is($t->get($gw, '/status', from => '127.0.0.2')->{status}, 403,
   'deny: 127.0.0.2 gets 403');

# ------------------------------------------------------------------
# 8. HEAD and POST

$r = SCEPTest::http($gw, "HEAD /status HTTP/1.1\r\nHost: localhost\r\n"
                         . "Connection: close\r\n\r\n");
is($r->{status}, 200, 'HEAD: 200');
is($r->{body}, '', 'HEAD: no body');
like($r->{headers}{'content-type'} // '', qr{^application/json\b},
     'HEAD: Content-Type application/json');

$r = SCEPTest::http($gw, "POST /status HTTP/1.1\r\nHost: localhost\r\n"
                         . "Content-Length: 2\r\nConnection: close\r\n\r\n{}");
is($r->{status}, 405, 'POST: 405');

# ------------------------------------------------------------------
# 3. the counters are exact, summed over both workers

my $n = 0;
sub der {
    my (@args) = @_;
    $n++;
    return $t->scep_msg('--challenge', 'secret', '--cn', "status-$n",
                        '--dialect', 'der', '--type', 19, @args);
}
my @get_pki = map { SCEPTest::dialect(der(), 'std') } 1 .. 4;
my @post_pki = map { der() } 1 .. 2;

my @seq;
push @seq, ['GET', '/scep?operation=GetCACaps', 200] for 1 .. 7;
push @seq, ['GET', '/scep?operation=GetCACert', 200] for 1 .. 5;
push @seq, ['GET', "/scep?operation=PKIOperation&message=$_", 200]
    for @get_pki;
push @seq, ['POST', '/scep?operation=PKIOperation', 200, $_] for @post_pki;
push @seq, ['GET', '/scep?message=abc', 400, undef, 'missing_operation'],
           ['GET', '/scep?operation=getcacaps', 400, undef,
            'unknown_operation'],
           ['GET', '/scep?operation=PKIOperation&message=ab*d', 400, undef,
            'bad_base64'],
           ['GET', '/scep?operation=NDESGenerateChallenge', 403, undef,
            'ndes_operation'],
           ['GET', '/scep?operation=NDESGetCACertThumbprint', 403, undef,
            'ndes_operation'];

# interleaved (23 requests, and 7 is prime to 23: a permutation), so
# that the kinds mix over both workers
my @idx = map { ($_ * 7) % @seq } 0 .. $#seq;
my %idx = map { $_ => 1 } @idx;
die 'the interleaving lost requests' unless keys %idx == @seq;
my @order = @seq[@idx];

my $before = status();
my $bsum = peer_sums($before, 'ndes');

my @wrong;
for my $q (@order) {
    my ($method, $uri, $want, $body, $reason) = @$q;
    my $r = $method eq 'GET' ? $t->get($gw, $uri)
                             : $t->post($gw, $uri, $body);
    push @wrong, "$method $uri: $r->{status}, expected $want"
        if $r->{status} != $want;
    push @wrong, "$method $uri: body '$r->{body}', expected $reason"
        if $reason && $r->{body} !~ /^$reason: /;
}
my @limited = map { $t->get($gw, '/limited?operation=GetCACaps')->{status} }
              1 .. 3;
is(join("\n", @wrong), '', 'the scripted requests got the expected answers');
is("@limited", '200 429 429', '/limited: 1 passes, 2 are rate-limited');

my $nreq = @seq + 3;
my @pids = map { (split ' ')[0] } $t->lines('logs/workers.log', $nreq);
my %pids = map { $_ => 1 } @pids;
is(scalar @pids, $nreq, "$nreq requests logged");
is(scalar keys %pids, 2, 'both workers served some of them');

my %expect = (
    'requests.total'                      => $nreq,
    'requests.operations.GetCACaps'       => 7 + 3,
    'requests.operations.GetCACert'       => 5,
    'requests.operations.GetNextCACert'   => 0,
    'requests.operations.PKIOperation'    => 4 + 2 + 1,
    'requests.operations.other'           => 4,
    'requests.message_types.PKCSReq'      => 6,
    'requests.responses.2xx'              => 7 + 5 + 4 + 2 + 1,
    'requests.responses.4xx'              => 3 + 2 + 2,
    'requests.rejected.missing_operation' => 1,
    'requests.rejected.unknown_operation' => 1,
    'requests.rejected.bad_base64'        => 1,
    'requests.rejected.ndes_operation'    => 2,
    'requests.rate_limited'               => 2,
);

my $after = wait_status(sub {
    $_[0]{requests}{total} >= $before->{requests}{total} + $nreq
}, 5);
sleep 0.3;
$after = status();

my $fb = flat($before->{requests}, 'requests');
my $fa = flat($after->{requests}, 'requests');
for my $k (sort keys %$fb) {
    my $want = $expect{$k} // 0;
    is(($fa->{$k} // 0) - $fb->{$k}, $want, "$k +$want");
}
my $asum = peer_sums($after, 'ndes');
is($asum->{requests} - $bsum->{requests}, 19,
   'ndes peers: requests +19 over both');
is($asum->{'responses.2xx'} - $bsum->{'responses.2xx'}, 19,
   'ndes peers: responses.2xx +19 over both');
for my $k ((map { "responses.$_" } grep { $_ ne '2xx' } @classes),
           'failovers')
{
    is($asum->{$k} - $bsum->{$k}, 0, "ndes peers: $k +0");
}
for my $be ($b0, $b1) {
    my $p = peer($after, 'ndes', $be->{port});
    ok($p->{requests} - peer($before, 'ndes', $be->{port})->{requests} > 0,
       "ndes $be->{name} got some of them");
}

# ------------------------------------------------------------------
# 4. no healthy back end

$before = status();
for (1 .. 2) {
    my $r = $t->get($gw, '/lonely?operation=GetCACaps');
    is($r->{status}, 503, 'no healthy back end: 503');
}
$after = wait_status(sub {
    $_[0]{requests}{total} >= $before->{requests}{total} + 2
}, 5);
is($after->{requests}{no_healthy_backend}
       - $before->{requests}{no_healthy_backend}, 2,
   'requests.no_healthy_backend +2');
is($after->{requests}{responses}{'5xx'}
       - $before->{requests}{responses}{'5xx'}, 2, 'requests.responses.5xx +2');
is(peer($after, 'lonely', $reset->{port})->{requests}, 0,
   'the server that is down was given no request');

# ------------------------------------------------------------------
# 6. the RA certificate that expires in 10 days

my $ep = peer($after, 'expiring', $certs->{port});
is($ep->{state}, 'up', 'expiring: up (an expiring certificate is no failure)');
my ($ra) = grep { $_->{role} eq 'RA' } @{$ep->{certificates} // []};
my ($ca) = grep { $_->{role} eq 'CA' } @{$ep->{certificates} // []};
ok($ra, 'expiring: a certificate with role RA');
ok($ca, 'expiring: a certificate with role CA');
if ($ra) {
    ok(JSON::PP::is_bool($ra->{expiring}) && $ra->{expiring},
       'RA: expiring true');
    ok($ra->{days_left} == 9 || $ra->{days_left} == 10,
       "RA: days_left $ra->{days_left}");
    is($ra->{not_after}, $ra_not_after, 'RA: not_after');
    is($ra->{subject}, 'CN=NDES-MSCEP-RA', 'RA: subject');
    ok($ra->{serial} =~ /^[0-9A-Fa-f]+$/ && hex($ra->{serial}) == 1,
       "RA: serial ($ra->{serial})");
}
if ($ca) {
    ok(JSON::PP::is_bool($ca->{expiring}) && !$ca->{expiring},
       'CA: expiring false');
    is($ca->{subject}, 'CN=NDES-CA', 'CA: subject');
    ok($ca->{days_left} >= 363 && $ca->{days_left} <= 365,
       "CA: days_left $ca->{days_left}");
}
like($ep->{warning} // '', qr/RA certificate expires/,
     'expiring: the warning says it expires');
is_deeply([sort @{$ep->{capabilities} // []}],
          [sort qw(POSTPKIOperation SHA-256 AES SCEPStandard)],
          'expiring: its capabilities');

# more probes have passed since; the warning was logged once
my $checks = $ep->{checks};
wait_status(sub {
    (peer($_[0], 'expiring', $certs->{port})->{checks} // 0) >= $checks + 2
}, 5);
is($t->count_error_log(
       qr/\[warn\].*scep health check: $host:$certs->{port} in upstream "expiring": .*RA certificate expires/),
   1, 'the warning is logged once');

# ------------------------------------------------------------------
# 2. a back end goes down and comes back

my $p1 = peer(status(), 'ndes', $b1->{port});
my $initial_change = $p1->{last_change};
# make sure the next change falls in a later second
sleep 0.1 while time < $initial_change + 1.05;

$t->stop_backend($b1);
ok(defined $t->wait_error_log(
       qr/$host:$b1->{port} in upstream "ndes" is down: GetCACaps: connect/,
       10),
   'stopped back end logged down');

$s = status();
$p1 = peer($s, 'ndes', $b1->{port});
is($p1->{state}, 'down', 'stopped: state down');
is($p1->{last_result}, 'fail', 'stopped: last_result fail');
like($p1->{reason} // '', qr/connect/,
     'stopped: reason (' . ($p1->{reason} // 'null') . ')');
ok($p1->{fails} >= 2, "stopped: fails $p1->{fails} >= 2");
is($p1->{passes}, 0, 'stopped: passes 0');
ok($p1->{last_change} > $initial_change, 'stopped: last_change moved');
is(peer($s, 'ndes', $b0->{port})->{state}, 'up', 'the other one stays up');

# ------------------------------------------------------------------
# 5. Prometheus, between two JSON snapshots with no request in between:
# the counters are the same, probe figures lie between

my $j1 = status();
$r = fetch('?format=prometheus');
my $j2 = status();

is($r->{status}, 200, 'prometheus: 200');
like($r->{headers}{'content-type'} // '', qr{^text/plain; version=0\.0\.4\b},
     'prometheus: Content-Type text/plain; version=0.0.4');

my (%m, %type, @badline, @dup);
for my $line (split /\n/, $r->{body}) {
    next if $line eq '';
    if ($line =~ /^#/) {
        if ($line =~ /^# TYPE (\S+) (\S+)$/) {
            $type{$1} = $2;
        } elsif ($line !~ /^# HELP \S+ /) {
            push @badline, $line if $line =~ /^# (TYPE|HELP)/;
        }
        next;
    }
    unless ($line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)\})? (-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)$/) {
        push @badline, $line;
        next;
    }
    my ($name, $labels, $value) = ($1, $2 // '', $3);
    my %l;
    while ($labels =~ /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g) {
        my ($k, $v) = ($1, $2);
        $v =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ge;
        $l{$k} = $v;
    }
    my $key = $name . '{' . join(',', map { "$_=$l{$_}" } sort keys %l) . '}';
    push @dup, $key if exists $m{$key};
    $m{$key} = $value;
}
is(join("\n", @badline), '', 'every line is a sample or a comment');
is(join("\n", @dup), '', 'no series twice');

sub pm {
    my ($name, %l) = @_;
    return $m{$name . '{' . join(',', map { "$_=$l{$_}" } sort keys %l) . '}'};
}

my %doc_type = (
    scep_gateway_info => 'gauge', scep_gateway_workers => 'gauge',
    scep_gateway_uptime_seconds => 'gauge',
    scep_gateway_generation => 'gauge',
    scep_requests_total => 'counter', scep_messages_total => 'counter',
    scep_responses_total => 'counter', scep_rejected_total => 'counter',
    scep_browser_tests_total => 'counter',
    scep_rate_limited_total => 'counter',
    scep_no_healthy_backend_total => 'counter',
    scep_ca_cache_hits_total => 'counter',
    scep_ca_cache_stale_hits_total => 'counter',
    scep_ca_cache_misses_total => 'counter',
    scep_ca_cache_bypassed_total => 'counter',
    scep_replay_entries => 'gauge', scep_replay_evicted_total => 'counter',
    scep_pending_entries => 'gauge', scep_pending_evicted_total => 'counter',
    scep_upstream_answers_disagree => 'gauge',
    scep_peer_up => 'gauge', scep_peer_state => 'gauge',
    scep_peer_consecutive_passes => 'gauge',
    scep_peer_consecutive_fails => 'gauge',
    scep_peer_checks_total => 'counter',
    scep_peer_last_check_timestamp_seconds => 'gauge',
    scep_peer_probe_latency_seconds => 'gauge',
    scep_peer_requests_total => 'counter',
    scep_peer_responses_total => 'counter',
    scep_peer_failovers_total => 'counter',
    scep_peer_certificate_not_after_timestamp_seconds => 'gauge',
    scep_peer_certificate_days_left => 'gauge',
    scep_peer_certificate_expiring => 'gauge',
    scep_peer_outcomes_total => 'counter',
    scep_peer_response_check_failures_total => 'counter',
);
for my $name (sort keys %doc_type) {
    is($type{$name}, $doc_type{$name}, "# TYPE $name $doc_type{$name}");
}
my %series_of = map { /^([^{]+)/; ($1 => 1) } keys %m;
my @undocumented = grep { !$doc_type{$_} } sort keys %series_of;
is("@undocumented", '', 'no metric that the README does not list');

is_deeply(flat($j1->{requests}), flat($j2->{requests}),
          'no request counted between the two JSON snapshots');

my $jg = $j1->{gateway};
is(pm('scep_gateway_info', module_version => $jg->{module_version},
      nginx_version => $jg->{nginx_version}), 1,
   'scep_gateway_info{module_version,nginx_version} 1');
is(pm('scep_gateway_workers'), 2, 'scep_gateway_workers 2');
is(pm('scep_gateway_generation'), $jg->{generation},
   'scep_gateway_generation');
my $up = pm('scep_gateway_uptime_seconds');
ok(defined $up && $up >= $j1->{gateway}{uptime} - 1
   && $up <= $j2->{gateway}{uptime} + 1,
   'scep_gateway_uptime_seconds ' . ($up // 'missing'));

my $jr = $j1->{requests};
is(pm('scep_requests_total', operation => $_), $jr->{operations}{$_},
   "scep_requests_total{operation=\"$_\"} $jr->{operations}{$_}")
    for @ops;
is(pm('scep_messages_total', type => $_), $jr->{message_types}{$_},
   "scep_messages_total{type=\"$_\"} $jr->{message_types}{$_}")
    for @types;
is(pm('scep_responses_total', class => $_), $jr->{responses}{$_},
   "scep_responses_total{class=\"$_\"} $jr->{responses}{$_}")
    for @classes;
is(pm('scep_rejected_total', reason => $_), $jr->{rejected}{$_},
   "scep_rejected_total{reason=\"$_\"} $jr->{rejected}{$_}")
    for @reject_tokens;
is(pm('scep_rate_limited_total'), $jr->{rate_limited},
   "scep_rate_limited_total $jr->{rate_limited}");
is(pm('scep_no_healthy_backend_total'), $jr->{no_healthy_backend},
   "scep_no_healthy_backend_total $jr->{no_healthy_backend}");

sub between {
    my ($v, $lo, $hi) = @_;
    return 0 unless defined $v && defined $lo && defined $hi;
    ($lo, $hi) = ($hi, $lo) if $lo > $hi;
    return $v >= $lo && $v <= $hi;
}

for my $upname (sort keys %{$j1->{upstreams}}) {
    for my $pa (@{$j1->{upstreams}{$upname}{peers}}) {
        my $pb = (grep { $_->{address} eq $pa->{address} }
                  @{$j2->{upstreams}{$upname}{peers}})[0];
        my %l = (upstream => $upname, peer => $pa->{address});
        my $what = "$upname $pa->{address}";

        is($pa->{state}, $pb->{state}, "$what: same state in both snapshots");
        is(pm('scep_peer_up', %l), $pa->{state} eq 'up' ? 1 : 0,
           "scep_peer_up $what ($pa->{state})");
        is(pm('scep_peer_state', %l, state => $pa->{state}), 1,
           "scep_peer_state $what state=\"$pa->{state}\" 1");
        my @other = grep { $_ ne $pa->{state} } qw(up down checking);
        ok(!(grep { (pm('scep_peer_state', %l, state => $_) // 0) != 0 }
             @other),
           "scep_peer_state $what: 0 or absent for the other states");

        for my $c ([scep_peer_consecutive_passes => 'passes'],
                   [scep_peer_consecutive_fails => 'fails'],
                   [scep_peer_checks_total => 'checks'],
                   [scep_peer_last_check_timestamp_seconds => 'last_check'])
        {
            my $v = pm($c->[0], %l);
            ok(between($v, $pa->{$c->[1]}, $pb->{$c->[1]}),
               "$c->[0] $what " . ($v // 'missing')
               . " (JSON $c->[1] $pa->{$c->[1]}..$pb->{$c->[1]})");
        }
        my $lat = pm('scep_peer_probe_latency_seconds', %l);
        ok(defined $lat
           && (grep { abs($lat * 1000 - $_) <= 1 }
               $pa->{latency_ms}, $pb->{latency_ms}),
           "scep_peer_probe_latency_seconds $what " . ($lat // 'missing')
           . " (JSON latency_ms $pa->{latency_ms}, $pb->{latency_ms})");

        is(pm('scep_peer_requests_total', %l), $pa->{requests},
           "scep_peer_requests_total $what $pa->{requests}");
        is(pm('scep_peer_responses_total', %l, class => $_),
           $pa->{responses}{$_},
           "scep_peer_responses_total $what class=\"$_\"")
            for @classes;
        is(pm('scep_peer_failovers_total', %l), $pa->{failovers},
           "scep_peer_failovers_total $what $pa->{failovers}");

        for my $c (@{$pa->{certificates} // []}) {
            my %cl = (%l, role => $c->{role}, subject => $c->{subject},
                      serial => $c->{serial});
            my $cw = "$what $c->{role} $c->{subject}";
            is(pm('scep_peer_certificate_not_after_timestamp_seconds', %cl),
               $c->{not_after},
               "scep_peer_certificate_not_after_timestamp_seconds $cw");
            is(pm('scep_peer_certificate_days_left', %cl), $c->{days_left},
               "scep_peer_certificate_days_left $cw");
            is(pm('scep_peer_certificate_expiring', %cl),
               $c->{expiring} ? 1 : 0, "scep_peer_certificate_expiring $cw");
        }
    }
}

# ------------------------------------------------------------------
# 2 (continued). the back end comes back

my $down_change = $p1->{last_change};
sleep 0.1 while time < $down_change + 1.05;

$t->restart_backend($b1);
ok(defined $t->wait_error_log(
       qr/$host:$b1->{port} in upstream "ndes" is up/, 10),
   'restarted back end logged up');

$p1 = peer(status(), 'ndes', $b1->{port});
is($p1->{state}, 'up', 'restarted: state up');
ok($p1->{passes} >= 2, "restarted: passes $p1->{passes} >= 2");
is($p1->{fails}, 0, 'restarted: fails 0');
is($p1->{last_result}, 'pass', 'restarted: last_result pass');
like($p1->{reason} // '', qr/connect/,
     'restarted: reason is still the last failure');
ok($p1->{last_change} > $down_change, 'restarted: last_change moved');

# ------------------------------------------------------------------
# 7. the counters survive a reload

$before = status();
kill 'HUP', $t->nginx_pid;
$after = wait_status(sub {
    $_[0]{gateway}{generation} >= $before->{gateway}{generation} + 1
}, 10);
is($after->{gateway}{generation}, $before->{gateway}{generation} + 1,
   'reload: gateway.generation +1');
is($after->{gateway}{started}, $before->{gateway}{started},
   'reload: gateway.started unchanged');
is_deeply(flat($after->{requests}), flat($before->{requests}),
          'reload: the request counters are all still there');
is_deeply(peer_sums($after, 'ndes'), peer_sums($before, 'ndes'),
          'reload: the peer counters are all still there');
is(peer($after, 'lonely', $reset->{port})->{state}, 'down',
   'reload: the health state is still there');

is($t->get($gw, '/scep?operation=GetCACaps')->{status}, 200,
   'a request after the reload');
$s = wait_status(sub {
    $_[0]{requests}{total} >= $before->{requests}{total} + 1
}, 5);
is($s->{requests}{total}, $before->{requests}{total} + 1,
   'reload: counting goes on from where it was');

$t->stop;
done_testing;
