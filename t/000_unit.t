#!/usr/bin/perl

# Runs the C unit tests (built by make into build/unit/) and reports
# each of their TAP lines as a test of this file.

use strict;
use warnings;

use FindBin;
use Test::More;

# TEST_UNIT_DIR names another build, as make test-asan's with the
# sanitizers
my $dir = $ENV{TEST_UNIT_DIR} || "$FindBin::Bin/../build/unit";
my @bins = sort glob("$dir/test_*");

plan skip_all => "no unit tests built in $dir (run make unit)" unless @bins;

for my $bin (@bins) {
    my $name = (split m{/}, $bin)[-1];
    open my $fh, '-|', $bin or die "$bin: $!";
    my $seen = 0;
    while (my $line = <$fh>) {
        chomp $line;
        if ($line =~ /^(not )?ok \d+ - (.*)$/) {
            ok(!$1, "$name: $2");
            $seen++;
        } elsif ($line =~ /^Bail out!/) {
            fail("$name: $line");
        }
    }
    close $fh;
    ok($seen > 0, "$name ran tests");
    is($? >> 8, 0, "$name exit status");
}

done_testing;
