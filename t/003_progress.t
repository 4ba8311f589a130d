#!/usr/bin/perl

# Progress of long runs (t/lib/progress.sh, used by bench/run, bench/soak
# and t/fuzz/run): on a terminal one status line with the row or phase,
# done out of total and the time left; nothing when standard error is
# not a terminal.  The library is run under a pseudo-terminal (script)
# and through a pipe; so is t/fuzz/run with a real fuzz target.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SCEPTest;

my $t = SCEPTest->new;
my $d = $t->dir;
my $root = SCEPTest::root();
my $lib = "$root/t/lib/progress.sh";

plan skip_all => 'no script(1) for a pseudo-terminal (util-linux)'
    unless -x '/usr/bin/script';

$ENV{TERM} = 'xterm';
delete $ENV{SCEP_PROGRESS};

# runs a bash snippet with its output on a terminal, or through a pipe
sub on_tty {
    my ($cmd) = @_;
    $t->write_file('cmd.sh', $cmd);
    my ($rc, $out) = $t->run('script', '-qefc', "bash $d/cmd.sh", '/dev/null');
    $out =~ s/\r\n/\n/g;
    return ($rc, $out);
}

sub on_pipe {
    my ($cmd) = @_;
    $t->write_file('cmd.sh', $cmd);
    return $t->run('bash', "$d/cmd.sh");
}

my $snippet = <<"SH";
. $lib
progress 'bench: GetCACaps via gateway, round 2' 7 30 75 runs
progress 'bench: GetCACert, round 1' 8 30 '' runs
progress_clear
echo result line
echo "left: \$(progress_left \$((EPOCHSECONDS - 100)) 10 30)"
progress_duration 4000; echo
SH

my ($rc, $out) = on_tty($snippet);
is($rc, 0, 'on a terminal: runs');
like($out, qr/\r\e\[K\[7\/30 runs done, 1m 15s left\] bench: GetCACaps via gateway, round 2/,
     'on a terminal: the row, done of total, the time left');
like($out, qr/\r\e\[K\[8\/30 runs done, time left unknown\] bench: GetCACert, round 1/,
     'the line is redrawn in place; an unknown time left is said');
like($out, qr/\r\e\[Kresult line\n/, 'cleared before other output');
like($out, qr/^left: 200$/m, 'progress_left: the rate so far');
like($out, qr/^1h 06m$/m, 'durations in words');

# cut at the terminal's width
($rc, $out) = on_tty("stty rows 30 cols 100\n. $lib\n"
                     . "progress \"\$(printf 'x%.0s' {1..300})\" 1 2 3\n");
my ($long) = $out =~ /\e\[K(\[1\/2 done, 3s left\] x+)/;
is(length($long // ''), 99, 'the line is cut at the width of the terminal');

($rc, $out) = on_pipe($snippet);
is($rc, 0, 'through a pipe: runs');
is($out, "result line\nleft: 200\n1h 06m\n",
   'through a pipe: no status line, no control characters');

($rc, $out) = on_tty("SCEP_PROGRESS=0\n$snippet");
unlike($out, qr/\e\[K/, 'SCEP_PROGRESS=0 turns it off on a terminal');

# the scripts use it
for my $s ('bench/run', 'bench/floor', 'bench/soak', 't/fuzz/run') {
    my $text = $t->read_file("$root/$s");
    ok($text =~ m{^\. "\$ROOT/t/lib/progress\.sh"$}m
       || $text =~ m{^\. "\$root/t/lib/progress\.sh"$}m,
       "$s sources t/lib/progress.sh");
    like($text, qr/^\s*progress "/m, "$s shows its progress");
    like($text, qr/progress_clear/, "$s clears the line");
}

# t/fuzz/run with a real target, for 2 seconds
SKIP: {
    my ($crc) = $t->run('sh', '-c', 'command -v clang');
    skip 'no clang for a fuzz target (make deps-fuzz)', 4 if $crc;
    skip 'no build/scep-msg (make tools)', 4 unless -x "$root/build/scep-msg";

    ($rc, $out) = $t->run('make', '-s', '-C', $root, "BUILD=$d",
                          "$d/fuzz/fuzz_base64");
    skip "cannot build a fuzz target: $out", 4 unless -x "$d/fuzz/fuzz_base64";

    ($rc, $out) = on_tty("$root/t/fuzz/run 2 $d/fuzz/fuzz_base64 2>&1\n");
    is($rc, 0, 't/fuzz/run on a terminal') or diag($out);
    like($out, qr/\r\e\[K\[0\/1 targets done, \ds left\] fuzz: fuzz_base64, \d+s of 2s/,
         't/fuzz/run on a terminal: the target, done of total, time left');

    ($rc, $out) = on_pipe("$root/t/fuzz/run 2 $d/fuzz/fuzz_base64 2>&1\n");
    is($rc, 0, 't/fuzz/run through a pipe') or diag($out);
    ok($out =~ /^fuzz_base64\s+\d+ runs\s+[\d.]+s\s+ok$/m && $out !~ /[\r\e]/,
       't/fuzz/run through a pipe: the summary, no status line')
        or diag($out);
}

$t->stop;
done_testing;
