"""Partition functions against hand-computed expectations, and their determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedfair.data import partitions as P


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# F^-1(p) = p^(1/a), a = 1.65911332899:  F^-1(0.01) = 0.0623070, F^-1(0.99) = 0.9939607.
def test_pow_sizes_two_agents_by_hand():
    # b = [0.0623070, 0.9939607], sum 1.0562677; floor(10/2)*2 = 10
    # 10*0.0623070/1.0562677 = 0.590 -> 1 ; 10*0.9939607/1.0562677 = 9.410 -> 10
    assert P.pow_sizes(10, 2) == [1, 10]


def test_pow_sizes_five_agents_by_hand():
    # b = linspace(0.0623070, 0.9939607, 5) = 0.0623070, 0.2952204, 0.5281338, 0.7610473, 0.9939607
    # sum = 2.6406692 (= 5 * middle); times 3000: 70.79, 335.39, 600.00, 864.61, 1129.21
    assert P.pow_sizes(3000, 5) == [71, 336, 600, 865, 1130]
    # floor(3002/5)*5 = 3000 as well: same sizes
    assert P.pow_sizes(3002, 5) == [71, 336, 600, 865, 1130]


def test_pow_sizes_three_agents_by_hand():
    # b = 0.0623070, 0.5281338, 0.9939607, sum 1.5844015; floor(100/3)*3 = 99
    # 99*b/sum = 3.893, 33.0, 62.107 -> 4, 33, 63
    assert P.pow_sizes(100, 3) == [4, 33, 63]


def test_pow_sizes_grow_and_overshoot_little():
    for pool, n in [(6000, 10), (12000, 20), (20000, 10)]:
        s = P.pow_sizes(pool, n)
        assert s == sorted(s) and len(s) == n
        assert pool <= sum(s) + n and sum(s) - (pool // n) * n < n + 1


def test_pow_cuts_contiguously_and_last_is_short():
    parts = P.pow(10, 2, rng(3))
    assert [len(p) for p in parts] == [1, 9]  # sizes [1, 10] but only 10 positions
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    parts = P.pow(3000, 5, rng(3))
    assert [len(p) for p in parts] == [71, 336, 600, 865, 1128]
    assert len(np.unique(np.concatenate(parts))) == 3000


def test_uni_equal_disjoint_shards():
    parts = P.uni(103, 5, rng(1))
    assert [len(p) for p in parts] == [20] * 5
    allpos = np.concatenate(parts)
    assert len(np.unique(allpos)) == 100 and allpos.max() < 103
    with pytest.raises(ValueError, match="pool_size"):
        P.uni(3, 5, rng(1))


def test_cla_class_counts_by_hand():
    assert P.cla_class_counts(5, 10) == [1, 3, 5, 7, 10]
    assert P.cla_class_counts(10, 10) == list(range(1, 11))
    assert P.cla_class_counts(5, 2) == [1, 1, 1, 1, 2]


def test_cla_class_contents_and_top_up():
    labels = np.repeat(np.arange(10), 50)  # 50 samples per class
    parts = P.cla(labels, 5, 600, 10, rng(0))
    for part, c in zip(parts, [1, 3, 5, 7, 10]):
        assert len(part) == 600
        counts = np.bincount(labels[part], minlength=10)
        per = 600 // c
        expected = [per] * c + [0] * (10 - c)
        expected[c - 1] += 600 - per * c  # top-up from the last owned class
        assert counts.tolist() == expected
    # c = 7: 85 each, 5 topped up on class 6
    assert np.bincount(labels[parts[3]], minlength=10).tolist() == [85] * 6 + [90, 0, 0, 0]


def test_cla_with_replacement_and_missing_class():
    labels = np.array([0, 0, 1, 1, 2])
    parts = P.cla(labels, 3, 12, 3, rng(0))  # more samples than exist per class
    assert [len(p) for p in parts] == [12, 12, 12]
    with pytest.raises(ValueError, match="class 2"):
        P.cla(np.array([0, 1, 1]), 3, 6, 3, rng(0))


def test_corrupt_labels_fraction_and_copy():
    labels = np.zeros(1000, dtype=np.int64)
    out = P.corrupt_labels(labels, 0.4, 10, rng(0))
    assert labels.sum() == 0  # input untouched
    changed = (out != 0).sum()
    # 400 positions redrawn uniformly over 10 classes: about 360 end up wrong
    assert 320 < changed <= 400
    assert P.corrupt_labels(labels, 0.0, 10, rng(0)).tolist() == labels.tolist()
    assert (P.corrupt_labels(labels, 1.0, 10, rng(0)) != 0).sum() > 850
    with pytest.raises(ValueError):
        P.corrupt_labels(labels, 1.5, 10, rng(0))


def test_partitions_deterministic_by_seed():
    labels = np.repeat(np.arange(10), 30)
    for fn in (lambda g: P.uni(300, 4, g), lambda g: P.pow(300, 4, g),
               lambda g: P.cla(labels, 4, 50, 10, g),
               lambda g: [P.corrupt_labels(labels, 0.3, 10, g)]):
        a, b, c = fn(rng(7)), fn(rng(7)), fn(rng(8))
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_pow_formula_matches_spec_for_many_cases():
    a = 1.65911332899
    for pool in (50, 600, 6000, 20000):
        for n in (1, 2, 5, 10, 20):
            lo, hi = 0.01 ** (1 / a), 0.99 ** (1 / a)
            b = [lo + (hi - lo) * i / (n - 1) for i in range(n)] if n > 1 else [lo]
            want = [math.ceil(v / sum(b) * (pool // n) * n) for v in b]
            got = P.pow_sizes(pool, n)
            assert all(abs(g - w) <= 1 for g, w in zip(got, want))  # float rounding only


# ----------------------------------------------------------------------------- DISJOINT


def test_disjoint_blocks_by_hand():
    assert P.disjoint_blocks(5, 10) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert P.disjoint_blocks(3, 10) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]  # larger blocks first
    assert P.disjoint_blocks(10, 10) == [[k] for k in range(10)]
    assert P.disjoint_blocks(1, 3) == [[0, 1, 2]]
    with pytest.raises(ValueError, match=r"partition=disjoint .* agents=11 must be at most the 10 classes"):
        P.disjoint_blocks(11, 10)


def test_disjoint_counts_by_hand():
    assert P.disjoint_counts(600, 2) == [300, 300]
    assert P.disjoint_counts(301, 2) == [150, 151]  # the remainder goes to the last class
    assert P.disjoint_counts(10, 3) == [3, 3, 4]
    assert P.disjoint_counts(7, 1) == [7]


def test_disjoint_exclusive_classes_exact_counts_without_replacement():
    labels = np.repeat(np.arange(10), 40)[rng(5).permutation(400)]  # 40 per class, shuffled
    parts = P.disjoint(labels, 3, 101, 10, rng(0))
    want = [[25, 25, 25, 26], [33, 33, 35], [33, 33, 35]]  # blocks {0..3}, {4..6}, {7..9}; 101 = 4*25+1 = 3*33+2
    seen = set()
    for i, (part, block) in enumerate(zip(parts, P.disjoint_blocks(3, 10))):
        assert len(part) == 101 and len(np.unique(part)) == 101  # no sample twice
        counts = np.bincount(labels[part], minlength=10)
        assert counts[block].tolist() == want[i]
        assert counts.sum() == counts[block].sum()  # nothing outside the own block
        assert not seen & set(part.tolist())
        seen |= set(part.tolist())


def test_disjoint_too_few_samples_and_determinism():
    labels = np.repeat(np.arange(4), [10, 10, 10, 3])
    with pytest.raises(ValueError, match=r"shard_size=8 needs 4 samples of class 3 for agent 2 .* holds 3"):
        P.disjoint(labels, 2, 8, 4, rng(0))
    with pytest.raises(ValueError, match=r"shard_size=1 is smaller than agent 1's 2 classes"):
        P.disjoint(labels, 2, 1, 4, rng(0))
    a, b, c = (P.disjoint(labels, 2, 6, 4, rng(s)) for s in (1, 1, 2))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
