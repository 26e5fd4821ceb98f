#!/usr/bin/perl
# workload.pl: an allocation-heavy, fully deterministic Perl workload for test_perl.py,
# run with and without the preload; the two outputs must be byte-identical. Hash
# iteration order is randomised per process in Perl, so every hash is read through
# sorted keys, and nothing prints addresses, times or random() values.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);
use List::Util qw(sum max min reduce);

$| = 1;
my $ctx = Digest::MD5->new;    # a running digest of everything worth comparing
sub out { my $line = join('|', @_); $ctx->add($line, "\n"); print $line, "\n"; }

# A deterministic pseudo-random sequence (the same LCG as workload.sql).
my $r = 12345;
sub rnd { $r = ($r * 1103515245 + 12345) % 2147483648; return $r; }

# 1. Hashes: many keys, values of mixed types, deletions, nested structures.
my %h;
for my $i (1 .. 200_000) {
    my $k = sprintf('key-%06d-%s', rnd() % 150_000, ('x' x ($i % 17)));
    $h{$k} .= chr(97 + $i % 26);
}
out('hash-keys', scalar(keys %h));
out('hash-len', sum(map { length $h{$_} } keys %h));
my @sorted_keys = sort keys %h;
out('hash-first', @sorted_keys[0 .. 4]);
out('hash-last', @sorted_keys[-3 .. -1]);
delete @h{ grep { /7/ } @sorted_keys };
out('hash-after-delete', scalar(keys %h));
$ctx->add(join(',', map { "$_=$h{$_}" } sort keys %h));
undef %h;

my %tree;
for my $i (1 .. 30_000) {
    my $v = rnd();
    push @{ $tree{ $v % 97 }{ $v % 13 } }, { id => $i, v => $v, tag => "t$v" };
}
my $leaves = 0;
my $total  = 0;
for my $x (sort { $a <=> $b } keys %tree) {
    for my $y (sort { $a <=> $b } keys %{ $tree{$x} }) {
        $leaves++;
        $total += $_->{v} % 1000 for @{ $tree{$x}{$y} };
    }
}
out('tree', scalar(keys %tree), $leaves, $total);
%tree = ();

# 2. Arrays: push/pop/shift/unshift/splice, big lists, map/grep, sort.
my @a = map { rnd() % 1_000_000 } 1 .. 300_000;
out('array', scalar(@a), sum(@a), max(@a), min(@a));
my @s = sort { $a <=> $b } @a;
out('sorted', @s[0 .. 4], @s[-5 .. -1]);
my @strs = sort map { sprintf('%x', $_) } @a[0 .. 99_999];
out('str-sort', @strs[0 .. 3], $strs[-1]);
my @by_len = sort { length($a) <=> length($b) or $b cmp $a } @strs;
out('len-sort', @by_len[0 .. 2], $by_len[-1]);
my @q;
for my $i (1 .. 100_000) {
    push @q, [$i, "v$i"];
    unshift @q, $i if $i % 3 == 0;
    shift @q if $i % 5 == 0;
    pop @q   if $i % 7 == 0;
}
splice(@q, 100, 1000, ('filler') x 2000);
out('queue', scalar(@q), ref($q[-1]) ? $q[-1][1] : $q[-1]);
my @even = grep { $_ % 2 == 0 } @a;
out('grep', scalar(@even), reduce { ($a + $b) % 1_000_003 } @even);
@a = @s = @strs = @by_len = @q = @even = ();

# 3. String building: repeated concatenation, join, substr, sprintf, reverse.
my $big = '';
for my $i (1 .. 200_000) {
    $big .= sprintf('%d,', $i * 7919 % 100_003);
    $big .= 'z' x ($i % 11) if $i % 1000 == 0;
}
out('big', length($big), md5_hex($big));
my $copy = $big;
substr($copy, 1000, 50_000) = uc(substr($big, 2000, 70_000));
$copy =~ tr/0-9/a-j/;
out('copy', length($copy), md5_hex($copy), md5_hex(scalar reverse $copy));
my @parts = split /,/, $big;
out('split', scalar(@parts), $parts[12345], md5_hex(join(';', reverse @parts)));
my $rep = join('', map { chr(32 + ($_ * 31) % 95) } 1 .. 1_000_000);
out('rep', length($rep), md5_hex($rep), length($rep x 20));
undef $big; undef $copy; undef @parts;

# 4. Regexes: captures, global matches, substitutions with expressions, lookarounds.
my $text = join(' ', map { "word$_ foo-$_ bar@" . ($_ % 97) . '.example' } 1 .. 50_000);
my @mails = $text =~ /\b(bar@\d+\.example)\b/g;
out('regex-global', scalar(@mails), $mails[-1]);
my %seen;
$seen{$1}++ while $text =~ /foo-(\d*7)\b/g;
out('regex-while', scalar(keys %seen), sum(values %seen));
(my $sub = $text) =~ s/word(\d+)/'W' . ($1 * 2)/ge;
out('regex-subst', length($sub), md5_hex($sub));
my $n = () = $text =~ /(?<=foo-)\d+(?= bar)/g;
out('regex-look', $n);
my $rx = qr/(\d+)\.example/;
my $cnt = grep { /$rx/ && $1 > 50 } split / /, $text;
out('regex-qr', $cnt);
(my $squeezed = $text) =~ tr/a-z//s;
out('tr', length($squeezed));
undef $text; undef $sub; undef $squeezed;

# 5. Closures, objects and cyclic garbage broken by hand.
my @subs = map { my $k = $_; sub { $k * $_[0] } } 1 .. 10_000;
out('closures', sum(map { $subs[$_]->($_) } 0 .. $#subs));
package Node { sub new { my ($c, %a) = @_; bless {%a}, $c } sub val { $_[0]{v} } }
my @nodes = map { Node->new(v => $_, kids => []) } 1 .. 50_000;
push @{ $nodes[$_ % 1000]{kids} }, $nodes[$_] for 1000 .. $#nodes;
out('nodes', sum(map { scalar @{ $_->{kids} } } @nodes), sum(map { $_->val } @nodes[0 .. 999]));
@nodes = ();

out('digest', $ctx->hexdigest);
print "done\n";
