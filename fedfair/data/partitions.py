"""The paper's three data partitions (UNI, POW, CLA), the fairness suite's DISJOINT, and label
noise, as pure functions.

Each returns index arrays (or sizes / new labels) and draws all randomness from the numpy
Generator passed in, so a seed fixes the result. Formulas follow the spec's "Data partitions"
section, which follows the authors' reference code.
"""

from __future__ import annotations

import math

import numpy as np

from .base import SettingError

#: Power-law exponent of the reference code's POW split.
POW_ALPHA = 1.65911332899


def _check_agents(agents: int) -> None:
    if agents < 1:
        raise ValueError(f"agents must be >= 1, got {agents}")


def uni(pool_size: int, agents: int, rng: np.random.Generator) -> list[np.ndarray]:
    """UNI: shuffle positions 0..pool_size-1 and cut N equal contiguous shards.

    Every shard has floor(pool_size / N) positions; the remainder (< N positions) is left
    unused so the shards are exactly equal, as the spec says.
    """
    _check_agents(agents)
    size = pool_size // agents
    if size < 1:
        raise SettingError("pool_size",
                           f"pool_size={pool_size} is smaller than agents={agents}: UNI shards would be empty")
    perm = rng.permutation(pool_size).astype(np.int64)
    return [perm[i * size : (i + 1) * size].copy() for i in range(agents)]


def pow_sizes(pool_size: int, agents: int) -> list[int]:
    """POW shard sizes: size_i = ceil(b_i / sum(b) * floor(pool/N) * N).

    b = linspace(F^-1(0.01), F^-1(0.99), N) with the power-law quantile F^-1(p) = p^(1/a),
    a = 1.65911332899 (scipy.stats.powerlaw.ppf in the reference code). Sizes grow with i;
    because of the ceilings they may sum to a little more than the pool, and :func:`pow` then
    leaves the last shard short.
    """
    _check_agents(agents)
    lo, hi = 0.01 ** (1.0 / POW_ALPHA), 0.99 ** (1.0 / POW_ALPHA)
    b = np.linspace(lo, hi, agents)
    total = (pool_size // agents) * agents
    return [int(math.ceil(v)) for v in (b / b.sum() * total)]


def pow(pool_size: int, agents: int, rng: np.random.Generator) -> list[np.ndarray]:  # noqa: A001
    """POW: shuffle positions 0..pool_size-1 and cut contiguously in :func:`pow_sizes` order.

    The last shard may come out short (never negative) when the ceilings overshoot the pool.
    """
    sizes = pow_sizes(pool_size, agents)
    perm = rng.permutation(pool_size).astype(np.int64)
    out, start = [], 0
    for s in sizes:
        out.append(perm[start : start + s].copy())
        start += s
    return out


def cla_class_counts(agents: int, num_classes: int) -> list[int]:
    """c = linspace(1, C, N) cast to int: how many classes each agent owns (N=5, C=10: 1,3,5,7,10)."""
    _check_agents(agents)
    return [int(c) for c in np.linspace(1, num_classes, agents).astype(int)]


def cla(
    labels: np.ndarray,
    agents: int,
    shard_size: int,
    num_classes: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """CLA: agent i owns classes 0..c_i-1; each contributes floor(S/c_i) samples WITH replacement.

    Top-up: the S - c_i*floor(S/c_i) (< c_i) missing samples are drawn, also with replacement,
    from the agent's LAST owned class (class c_i - 1). The reference code topped up from its
    last class as well (taking the first unused indices instead of random ones), so class
    balance differs from floor(S/c_i) by at most c_i - 1 samples in that one class.
    Returns positions into ``labels``; every shard has exactly ``shard_size`` entries.
    """
    if shard_size < 1:
        raise SettingError("shard_size", f"shard_size must be >= 1, got {shard_size}")
    labels = np.asarray(labels, dtype=np.int64)
    counts = cla_class_counts(agents, num_classes)
    by_class = [np.flatnonzero(labels == k).astype(np.int64) for k in range(num_classes)]
    out: list[np.ndarray] = []
    for c in counts:
        for k in range(c):
            if by_class[k].size == 0:
                raise ValueError(f"CLA needs samples of class {k}, but the data holds none")
        per = shard_size // c
        parts = [rng.choice(by_class[k], size=per, replace=True) for k in range(c)]
        extra = shard_size - per * c
        if extra:
            parts.append(rng.choice(by_class[c - 1], size=extra, replace=True))
        out.append(np.concatenate(parts).astype(np.int64))
    return out


def disjoint_blocks(agents: int, num_classes: int) -> list[list[int]]:
    """DISJOINT's classes: C classes cut into N contiguous blocks as evenly as possible, the
    larger blocks first (C=10, N=5: {0,1}, {2,3}, ...; C=10, N=3: {0..3}, {4..6}, {7..9})."""
    _check_agents(agents)
    if agents > num_classes:
        raise SettingError("partition",
                           f"partition=disjoint gives every agent its own classes, so agents={agents} must be at "
                           f"most the {num_classes} classes of the data")
    return [b.tolist() for b in np.array_split(np.arange(num_classes), agents)]


def disjoint_counts(shard_size: int, classes: int) -> list[int]:
    """Samples per owned class: S split evenly, the remainder (< c) to the last class."""
    per = shard_size // classes
    return [per] * (classes - 1) + [shard_size - per * (classes - 1)]


def disjoint(
    labels: np.ndarray,
    agents: int,
    shard_size: int,
    num_classes: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """DISJOINT: agent i owns block i of :func:`disjoint_blocks`; it gets ``shard_size`` samples of
    its classes (:func:`disjoint_counts`), drawn WITHOUT replacement, so no sample is held twice and
    no two agents share a class: equal contributions of different knowledge (the suite's symmetry
    scenario). Returns positions into ``labels``, class by class.
    """
    if shard_size < 1:
        raise SettingError("shard_size", f"shard_size must be >= 1, got {shard_size}")
    labels = np.asarray(labels, dtype=np.int64)
    by_class = [np.flatnonzero(labels == k).astype(np.int64) for k in range(num_classes)]
    out: list[np.ndarray] = []
    for agent, block in enumerate(disjoint_blocks(agents, num_classes), start=1):
        if shard_size < len(block):
            raise SettingError("shard_size",
                               f"shard_size={shard_size} is smaller than agent {agent}'s {len(block)} classes "
                               "(partition disjoint)")
        parts = []
        for k, count in zip(block, disjoint_counts(shard_size, len(block))):
            if by_class[k].size < count:
                raise SettingError("shard_size",
                                   f"shard_size={shard_size} needs {count} samples of class {k} for agent {agent} "
                                   f"(partition disjoint, drawn without replacement), but the data holds "
                                   f"{by_class[k].size} outside the validation set")
            parts.append(rng.choice(by_class[k], size=count, replace=False))
        out.append(np.concatenate(parts).astype(np.int64))
    return out


def corrupt_labels(
    labels: np.ndarray, fraction: float, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Copy of ``labels`` with round(fraction * n) of them, chosen without replacement,
    replaced by classes drawn uniformly from all C classes.

    As in the paper's Fig. 2 a replacement may coincide with the true class, so the expected
    share of actually wrong labels is fraction * (C-1)/C.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label noise fraction must be in [0, 1], got {fraction}")
    out = np.array(labels, dtype=np.int64, copy=True)
    n = int(round(fraction * out.size))
    if n:
        pos = rng.choice(out.size, size=n, replace=False)
        out[pos] = rng.integers(0, num_classes, size=n)
    return out
