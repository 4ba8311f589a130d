#!/usr/bin/perl

# A transaction log: one JSON line per SCEP request, written by stock
# log_format escape=json with the module's variables.  The log_format is
# the one conf-examples/scep-status-log.conf ships.  Every line parses,
# there is one per request, and each carries the facts of the request
# that made it: transactionID, message type, senderNonce, length, reject
# reason, and no upstream for a request the gateway answered itself.

use strict;
use warnings;

use B ();
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
my $b = $t->start_backend;

# the log_format of the example, word for word
my $example = $t->read_file(SCEPTest::root()
                            . '/conf-examples/scep-status-log.conf');
my ($log_format) = $example =~ /^\s*(log_format\s+scep_json\s+escape=json\b.*?';)[ \t]*$/ms;
ok(defined $log_format, 'the example has the scep_json log_format')
    or BAIL_OUT('no log_format scep_json in conf-examples/scep-status-log.conf');
like($example, qr/location\s*=\s*\/scep-status\s*\{[^}]*\bscep_status;[^}]*\ballow\s[^}]*\bdeny\s+all;/s,
     'the example has a scep_status location with allow and deny');

my $conf = <<'CONF';
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    LOG_FORMAT

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
    }

    server {
        listen 127.0.0.1:%%GW%% ssl;
        ssl_certificate %%CERT%%;
        ssl_certificate_key %%KEY%%;

        location = /scep {
            scep on;
            access_log %%DIR%%/logs/scep.json scep_json;
            proxy_pass http://ndes/scep;
        }
    }
}
CONF
$conf =~ s/LOG_FORMAT/$log_format/;
$t->start_nginx($conf);

my $gw = $t->port('GW');

sub der {
    my (@args) = @_;
    return $t->scep_msg('--challenge', 'secret', '--dialect', 'der',
                        '--type', 19, @args);
}

my $get_der = der('--cn', 'log-get', '--tid', 'tid-085-get');
my $post_der = der('--cn', 'log-post', '--tid', 'tid-085-post');

# each request, and what its line must say
my @req = (
    {
        name => 'GET PKIOperation',
        send => sub {
            $t->get($gw, '/scep?operation=PKIOperation&message='
                    . SCEPTest::dialect($get_der, 'std'),
                    tls => 1, from => '127.0.0.3');
        },
        status => 200, client => '127.0.0.3', operation => 'PKIOperation',
        message_type => 'PKCSReq', transaction_id => 'tid-085-get',
        message_length => length($get_der), reject_reason => '',
        upstream => 1, pki_status => 'SUCCESS', fail_info => '',
        response_check => 'ok',
    },
    {
        name => 'POST PKIOperation',
        send => sub {
            $t->post($gw, '/scep?operation=PKIOperation', $post_der,
                     tls => 1);
        },
        status => 200, client => '127.0.0.1', operation => 'PKIOperation',
        message_type => 'PKCSReq', transaction_id => 'tid-085-post',
        message_length => length($post_der), reject_reason => '',
        upstream => 1, pki_status => 'SUCCESS', fail_info => '',
        response_check => 'ok',
    },
    {
        name => 'GetCACaps',
        send => sub { $t->get($gw, '/scep?operation=GetCACaps', tls => 1) },
        status => 200, client => '127.0.0.1', operation => 'GetCACaps',
        message_type => '', transaction_id => '', sender_nonce => '',
        message_length => '', reject_reason => '', upstream => 1,
        pki_status => '', response_check => '',
    },
    {
        name => 'rejected: bad base64',
        send => sub {
            $t->get($gw, '/scep?operation=PKIOperation&message=ab*d',
                    tls => 1);
        },
        status => 400, client => '127.0.0.1', operation => 'PKIOperation',
        message_type => '', transaction_id => '', sender_nonce => '',
        reject_reason => 'bad_base64', upstream => 0, pki_status => '',
        response_check => '',
    },
    {
        name => 'rejected: no operation',
        send => sub { $t->get($gw, '/scep?message=abc', tls => 1) },
        status => 400, client => '127.0.0.1', operation => '',
        message_type => '', transaction_id => '', sender_nonce => '',
        message_length => '', reject_reason => 'missing_operation',
        upstream => 0,
    },
    {
        # what a client puts in the operation is escaped, not trusted
        name => 'rejected: quote and backslash in the operation',
        send => sub { $t->get($gw, '/scep?operation=Get"CA\\', tls => 1) },
        status => 400, client => '127.0.0.1', operation => 'Get"CA\\',
        message_type => '', transaction_id => '', sender_nonce => '',
        message_length => '', reject_reason => 'unknown_operation',
        upstream => 0,
    },
);

for my $q (@req) {
    my $r = $q->{send}->();
    is($r->{status}, $q->{status}, "$q->{name}: $q->{status}");
}

my @lines = $t->lines('logs/scep.json', scalar @req);
is(scalar @lines, scalar @req, 'one line per request');

my @fields = qw(time client operation message_type transaction_id
                sender_nonce message_length reject_reason pki_status
                fail_info response_check upstream status request_time
                upstream_response_time);

# a JSON number as JSON::PP decoded it: numeric flags, no string flag
sub is_number {
    my $f = B::svref_2object(\$_[0])->FLAGS;
    return ($f & (B::SVf_IOK | B::SVf_NOK)) && !($f & B::SVf_POK);
}

my %nonce;
for my $i (0 .. $#req) {
    my $q = $req[$i];
    my $w = $q->{name};
    my $line = $lines[$i] // '';
    my $l = eval { JSON::PP->new->decode($line) };
    ok(ref $l eq 'HASH', "$w: the line is JSON") or do {
        diag($line);
        next;
    };
    ok(is_number($l->{status}) && is_number($l->{request_time}),
       "$w: status and request_time are JSON numbers");
    is_deeply([sort keys %$l], [sort @fields], "$w: every field");

    like($l->{time}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/,
         "$w: time is ISO 8601");
    ok($l->{request_time} >= 0 && $l->{request_time} < 30,
       "$w: request_time $l->{request_time}");
    is($l->{status}, $q->{status}, "$w: status $q->{status}");

    for my $k (qw(client operation message_type transaction_id
                  message_length reject_reason sender_nonce pki_status
                  fail_info response_check))
    {
        next unless exists $q->{$k};
        is($l->{$k}, $q->{$k}, "$w: $k \"$q->{$k}\"");
    }

    if ($q->{message_type}) {
        like($l->{sender_nonce}, qr/^[0-9a-fA-F]{32}$/,
             "$w: sender_nonce, 32 hex digits");
        $nonce{$l->{sender_nonce}}++;
    }
    if ($q->{reject_reason} eq 'bad_base64') {
        like($l->{message_length}, qr/^\d*$/,
             "$w: message_length empty or a number");
    }

    if ($q->{upstream}) {
        is($l->{upstream}, "127.0.0.1:$b->{port}", "$w: upstream");
        like($l->{upstream_response_time}, qr/^\d+\.\d{3}$/,
             "$w: upstream_response_time");
    } else {
        is($l->{upstream}, '', "$w: no upstream (\"\")");
        is($l->{upstream_response_time}, '',
           "$w: no upstream_response_time (\"\")");
    }
}

is(scalar keys %nonce, 2, 'each PKIOperation has its own senderNonce');

# a PKIOperation line carries the transactionID of the request that made
# it, also when requests of other transactions come in between
my @tids = map { der('--cn', "tid-$_", '--tid', "tid-085-$_") } 1 .. 4;
for my $i (0 .. $#tids) {
    my $r = $i % 2
        ? $t->post($gw, '/scep?operation=PKIOperation', $tids[$i], tls => 1)
        : $t->get($gw, '/scep?operation=PKIOperation&message='
                  . SCEPTest::dialect($tids[$i], 'std'), tls => 1);
    is($r->{status}, 200, 'PKIOperation ' . ($i + 1) . ' of 4: 200');
}
@lines = $t->lines('logs/scep.json', @req + @tids);
is(scalar @lines, @req + @tids, 'one line each');
my @got = map {
    my $l = eval { JSON::PP->new->decode($_) } // {};
    ($l->{transaction_id} // '?') . ' ' . ($l->{message_length} // '?')
} @lines[-4 .. -1];
is_deeply(\@got,
          [map { 'tid-085-' . ($_ + 1) . ' ' . length($tids[$_]) } 0 .. 3],
          'each line has the transactionID and length of its request');

$t->stop;
done_testing;
