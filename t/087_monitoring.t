#!/usr/bin/perl

# conf-examples/monitoring/: the alerting rules pass promtool check rules,
# and promtool test rules makes every alert fire and clear
# (t/monitoring/scep-alerts-test.yml); the scrape example passes
# promtool check config; every query of the Grafana dashboard parses;
# and every metric and label that the rules and the dashboard use is in
# the Prometheus output of a real gateway, scraped here (the families of
# what back ends answered only where the gateway publishes them: a
# skipped test says when it does not).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP ();
use Test::More;
use SCEPTest;

my $promtool = $ENV{TEST_PROMTOOL} || '/usr/bin/promtool';
plan skip_all => "no $promtool (make deps installs prometheus)"
    unless -x $promtool;

my $t = SCEPTest->new;
my $root = SCEPTest::root();
my $mon = "$root/conf-examples/monitoring";
my $rules_file = "$mon/scep-alerts.yml";

# ------------------------------------------------------------------
# the rules

my ($rc, $out) = $t->run($promtool, 'check', 'rules', $rules_file);
is($rc, 0, 'promtool check rules scep-alerts.yml') or diag($out);
like($out, qr/SUCCESS: 10 rules found/, 'ten alerting rules');

($rc, $out) = $t->run($promtool, 'test', 'rules',
                      "$root/t/monitoring/scep-alerts-test.yml");
is($rc, 0, 'promtool test rules: every alert fires and clears') or diag($out);

my $rules = $t->read_file($rules_file);
my @alerts = $rules =~ /^\s*- alert: (\S+)/mg;
my $tests = $t->read_file("$root/t/monitoring/scep-alerts-test.yml");
for my $a (@alerts) {
    my @fire = $tests =~ /alertname: \Q$a\E\n\s+exp_alerts:\n\s+- exp_labels:/g;
    my @clear = $tests =~ /alertname: \Q$a\E\n\s+exp_alerts: \[\]/g;
    ok(@fire && @clear, "$a: tested firing and clear");
}
my %want = map { $_ => 1 } qw(ScepGatewayDown ScepBackendDown
    ScepNoHealthyBackend ScepCertificateExpiring
    ScepCertificateExpiringCritical ScepRejectShareHigh
    ScepRateLimitedRising ScepNoHealthyBackend503Rising
    ScepBackendRefusing ScepBackendBusy);
is_deeply([sort @alerts], [sort keys %want], 'the alerts the README lists');

# the PromQL of the rules, for the metric check below
my @exprs;
while ($rules =~ /^\s+expr: (?:>-\n((?:\s{10,}.*\n)+)|(.*)\n)/mg) {
    push @exprs, ['rules', $1 // $2];
}

# ------------------------------------------------------------------
# the scrape example, its paths pointed into the test folder

my $d = $t->dir;
my $prom = $t->read_file("$mon/prometheus.yml");
$t->tls_cert;
$t->write_file('scep-alerts.yml', $rules);
$prom =~ s{/etc/prometheus/scep-alerts\.yml}{$d/scep-alerts.yml}g;
$prom =~ s{/etc/prometheus/scep-gateway-ca\.pem}{$d/server.crt}g;
$t->write_file('prometheus.yml', $prom);
($rc, $out) = $t->run($promtool, 'check', 'config', "$d/prometheus.yml");
is($rc, 0, 'promtool check config prometheus.yml') or diag($out);
like($prom, qr/job_name: scep-gateway\b/,
     'the scrape job is the one ScepGatewayDown names');
like($prom, qr/format: \[prometheus\]/, 'it asks for ?format=prometheus');

# ------------------------------------------------------------------
# the Grafana dashboard

my $dash = eval {
    JSON::PP->new->decode($t->read_file("$mon/grafana-scep-gateway.json"))
};
ok(ref $dash eq 'HASH', 'the Grafana dashboard is JSON') or diag($@);
$dash //= {};

my (@panels, @rows);
for my $p (@{$dash->{panels} // []}) {
    push @rows, $p if ($p->{type} // '') eq 'row';
    push @panels, $p, @{$p->{panels} // []};
}
my ($up_row) = grep { ($_->{repeat} // '') eq 'upstream' } @rows;
ok($up_row, 'a row repeated for each upstream');

# the panels of the upstream row: those after it
my (%in_upstream, $after);
for my $p (@{$dash->{panels} // []}) {
    $after = 1, next if $up_row && $p == $up_row;
    $in_upstream{$p->{title}} = 1 if $after && ($p->{type} // '') ne 'row';
}
for my $title ('State', 'Probe latency', 'Certificates: days left',
               'Enrollment outcomes by server')
{
    ok($in_upstream{$title}, "upstream row: panel \"$title\"");
}
my %titles = map { ($_->{title} // '') => 1 } @panels;
for my $title ('Requests by operation', 'Rejects by reason',
               'Limits: 429 and 503')
{
    ok($titles{$title}, "panel \"$title\"");
}

for my $p (@panels) {
    push @exprs, ["panel \"$p->{title}\"", $_->{expr}]
        for grep { defined $_->{expr} } @{$p->{targets} // []};
}
for my $v (@{$dash->{templating}{list} // []}) {
    push @exprs, ["variable $v->{name}", $1]
        if ($v->{definition} // '') =~ /^label_values\((.*), \w+\)$/;
}

# every query parses: as recording rules, with the dashboard's variables
# filled in
my $i = 0;
my $rec = "groups:\n  - name: dashboard\n    rules:\n";
for my $e (@exprs) {
    next if $e->[0] eq 'rules';
    my $q = $e->[1];
    $q =~ s/\$__rate_interval/5m/g;
    $q =~ s/\$(instance|upstream)/x/g;
    $q =~ s/'/''/g;
    $i++;
    $rec .= "      - record: dashboard:query$i\n        expr: '$q'\n";
}
$t->write_file('dashboard-queries.yml', $rec);
($rc, $out) = $t->run($promtool, 'check', 'rules', "$d/dashboard-queries.yml");
is($rc, 0, "the dashboard's $i queries parse (promtool)") or diag($out);

# ------------------------------------------------------------------
# a real gateway's metrics

my $b0 = $t->start_backend;
my $b1 = $t->start_backend;

$t->start_nginx(<<'CONF');
http {
    large_client_header_buffers 4 72k;
    client_body_buffer_size 128k;

    upstream ndes {
        server 127.0.0.1:%%BACKEND0%%;
        server 127.0.0.1:%%BACKEND1%%;
        scep_health_check interval=500ms timeout=300ms uri=/scep;
        scep_backend_limit 8 queue=10;
    }

    server {
        listen 127.0.0.1:%%GW%%;

        location = /scep {
            scep on;
            proxy_pass http://ndes;
        }

        location = /scep-status {
            scep_status;
        }
    }
}
CONF

my $gw = $t->port('GW');
# a probe has passed: the certificate metrics are there
my $metrics = '';
for (1 .. 50) {
    $metrics = $t->get($gw, '/scep-status?format=prometheus')->{body} // '';
    last if $metrics =~ /^scep_peer_certificate_days_left\{/m;
    select undef, undef, undef, 0.1;
}
$t->get($gw, '/scep?operation=GetCACaps');
$t->get($gw, '/scep?operation=nonsense');

my (%labels_of);
for my $line (split /\n/, $metrics) {
    next if $line =~ /^#/ || $line eq '';
    my ($name, $labels) = $line =~ /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$/
        or next;
    $labels_of{$name} //= {};
    $labels_of{$name}{$_} = 1 for ($labels // '') =~ /(\w+)="/g;
}
ok(scalar keys %labels_of > 20, 'the gateway publishes its metrics');

# promtool's own lint of the exposition
{
    $t->write_file('metrics.txt', $metrics);
    my ($rc, $out) = $t->run('sh', '-c',
                             "$promtool check metrics < $d/metrics.txt");
    # the one lint left is about a documented name, kept: days are what
    # an admin compares with a renewal policy
    my @lint = grep { !/^scep_peer_certificate_days_left use base unit "seconds" instead of "days"$/ }
               grep { /\S/ } split /\n/, $out;
    is(join("\n", @lint), '',
       'promtool check metrics: every family has HELP and TYPE');
}

# Prometheus adds these to every series it scrapes
my %scrape_labels = map { $_ => 1 } qw(instance job);

# What back ends answered to enrollments (README, "scep_status"): a
# gateway that reads its back ends' CertReps publishes these.  Where
# this one does not yet, the queries over them are left to promtool
# above, and a skipped test says so.
my %absent = map { $_ => 1 } grep { !$labels_of{$_} }
    qw(scep_peer_outcomes_total scep_peer_response_check_failures_total);

my (%seen, @missing);
for my $e (@exprs) {
    my ($where, $q) = @$e;
    my @names = $q =~ /\b(scep_[a-z0-9_]+)/g;
    if (grep { $absent{$_} } @names) {
        $seen{$_} = 1 for @names;
        next;
    }
    for my $name (@names) {
        $seen{$name} = 1;
        push @missing, "$where: metric $name" unless $labels_of{$name};
    }
    # label matchers: metric{label="..."}
    while ($q =~ /\b(scep_[a-z0-9_]+)\{([^}]*)\}/g) {
        my ($name, $m) = ($1, $2);
        for my $l ($m =~ /(\w+)\s*[=!]~?\s*"/g) {
            next if $scrape_labels{$l};
            push @missing, "$where: label $l of $name"
                unless $labels_of{$name}{$l};
        }
    }
    # by (...) and on (...): on one of the metrics of the query
    while ($q =~ /\b(?:by|on)\s*\(([^)]*)\)/g) {
        for my $l (split /\s*,\s*/, $1) {
            next if $scrape_labels{$l};
            push @missing, "$where: label $l"
                unless grep { $labels_of{$_}{$l} } @names;
        }
    }
}
is(join("\n", @missing), '',
   'every metric and label of the rules and the dashboard is in the '
   . "gateway's output");
is(join(' ', sort keys %absent), '',
   'the metrics of what back ends answer are in the output, checked with'
   . ' the others');
ok(scalar keys %seen >= 15,
   scalar(keys %seen) . ' metric names used, all checked');

# the README lists what they use
my $readme = $t->read_file("$root/README.md");
my @undocumented = grep { $readme !~ /`\Q$_\E`/ } sort keys %seen;
is("@undocumented", '', 'every metric used is in the README');

$t->stop;
done_testing;
