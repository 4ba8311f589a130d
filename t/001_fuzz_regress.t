#!/usr/bin/perl

# Replays the inputs that fuzzing once found a bug with
# (t/fuzz/regress/TARGET/*) through the fuzz target TARGET built without
# libFuzzer and with the sanitizers (make regress, into build/regress/;
# TEST_REGRESS_DIR names another build, as make test-asan's clang one).
# Each input must run through without a sanitizer report.

use strict;
use warnings;

use FindBin;
use Test::More;

my $root = "$FindBin::Bin/..";
my $bindir = $ENV{TEST_REGRESS_DIR} || "$root/build/regress";
my @dirs = sort grep { -d } glob("$root/t/fuzz/regress/*");

plan skip_all => 'no inputs in t/fuzz/regress' unless @dirs;
plan skip_all => "no replay programs in $bindir (run make regress)"
    unless glob("$bindir/fuzz_*");

for my $dir (@dirs) {
    my $target = (split m{/}, $dir)[-1];
    my $bin = "$bindir/$target";
    my @inputs = sort grep { -f } glob("$dir/*");

    ok(-x $bin, "$target: replay program built") or next;
    ok(@inputs > 0, "$target: has inputs") or next;

    for my $input (@inputs) {
        my $name = (split m{/}, $input)[-1];
        my $out = qx{"$bin" "$input" 2>&1};
        my $rc = $? >> 8;

        ok($? == 0 && $out =~ /^ok 1 - /m, "$target: $name")
            or diag("exit status $rc, signal " . ($? & 127) . "\n$out");
    }
}

done_testing;
