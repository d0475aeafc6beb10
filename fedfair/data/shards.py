"""Turn a task's training data into the N agents' shards (plus an unowned validation set)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, get_args

import numpy as np
import torch

from ..config.sections import ClaPool, Partition
from . import partitions
from .base import SettingError, TaskData
from .holding import FeatureNoise, Holding

DEFAULT_VAL_FRACTION = 0.1
"""Held-out validation share of the training data when a method needs one and data.val_size = 0."""
DEFAULT_VAL_CAP = 1000
"""...capped at this many samples (every validation pass is server work that mechanism_s counts)."""

PARTITIONS: tuple[str, ...] = get_args(Partition)
CLA_POOLS: tuple[str, ...] = get_args(ClaPool)


def default_val_size(num_train: int) -> int:
    """The validation size a method that needs one (cffl, eci) gets when data.val_size = 0: 10% of
    the training data, at most DEFAULT_VAL_CAP."""
    return max(1, min(DEFAULT_VAL_CAP, math.ceil(DEFAULT_VAL_FRACTION * num_train)))


TRAIN_SAMPLES: dict[str, int] = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}
"""Training samples of the data sets that ship their own test split (MNIST's pickle too: train + valid)."""
SPLIT_SAMPLES: dict[str, int] = {"digits": 1797}
"""Samples of the data sets without a test split: the run holds ``data.test_fraction`` of them out
(``stratified_split``: ceil(fraction * n) for the test set, as scikit-learn's train_test_split)."""


def train_samples(dataset: str, test_fraction: float) -> int | None:
    """The training samples ``dataset`` has, from the config alone (no data loaded); None where it
    depends on which source files are found (the text sets: MR's and SST-5's own files or the stand-in)."""
    if dataset in TRAIN_SAMPLES:
        return TRAIN_SAMPLES[dataset]
    if dataset in SPLIT_SAMPLES:
        n = SPLIT_SAMPLES[dataset]
        return n - math.ceil(test_fraction * n)
    return None


def planned_validation_size(dataset: str, test_fraction: float, requested: int, needed: bool) -> int | None:
    """:func:`validation_size` before any data is loaded (the sweep's planner): the same number the run
    will hold out, or None when the data set's size is known only once it is read (see train_samples)."""
    if requested != 0 or not needed:
        return requested
    n = train_samples(dataset, test_fraction)
    return None if n is None else validation_size(requested, needed, n)


def validation_size(requested: int, needed: bool, num_train: int) -> int:
    """The samples held out for the server's validation set: ``requested`` (data.val_size), or the
    default when the method ``needed`` one and none was requested."""
    return default_val_size(num_train) if requested == 0 and needed else requested


@dataclass
class Shard:
    """One agent's private data: indices into ``task.train_*`` and the labels it trains on.

    ``labels`` is a copy, corrupted where label noise applies, so the shared task stays clean;
    ``noise`` (data.feature_noise) likewise lives in the shard, never in the task: the agent's
    noisy inputs are its own copy (:meth:`inputs`).
    """

    indices: np.ndarray
    labels: np.ndarray
    noise: FeatureNoise | None = None

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def inputs(self, task: TaskData) -> torch.Tensor | None:
        """The agent's own noisy copy of its inputs, aligned with ``indices`` (None without feature
        noise: the agent then reads the shared, clean task). Memory: len(shard) x sample size."""
        if self.noise is None:
            return None
        if task.kind == "text":
            raise SettingError("feature_noise",
                               f"feature_noise applies to image and tabular inputs, but {task.name} is text")
        x = task.train_x[torch.from_numpy(self.indices)]
        z = self.noise.draw(tuple(x.shape[1:]))
        reps = len(self) // self.noise.rows
        return x + torch.from_numpy(np.concatenate([z] * reps) if reps > 1 else z)


def default_pool_size(dataset: str, agents: int, available: int) -> int:
    """Samples used by UNI/POW (and CLA with cla_pool = capped) when the config gives none.

    Spec: MNIST 600*N; CIFAR-10 10,000 for N <= 5 else 20,000. Fashion-MNIST stands in for
    CIFAR-10 (the harder 10-class image task) and takes CIFAR's pools. Every other data set
    (digits, MR, SST-5) uses all training data not held out for validation. Always capped at
    what is available.
    """
    if dataset == "mnist":
        want = 600 * agents
    elif dataset in ("cifar10", "fashion_mnist"):
        want = 10_000 if agents <= 5 else 20_000
    else:
        want = available
    return min(want, available)


def default_shard_size(dataset: str, agents: int, available: int) -> int:
    """CLA's S when the config gives none: spec's 600 (MNIST) / 2,000 (CIFAR-10, and
    Fashion-MNIST as its stand-in); elsewhere floor(available / N), i.e. a UNI-sized shard."""
    if dataset == "mnist":
        return 600
    if dataset in ("cifar10", "fashion_mnist"):
        return 2_000
    return max(1, available // agents)


def capped_pool(available: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """The first ``size`` of a random permutation of ``available``, in that order.

    Mirrors the reference code's sample_size_cap (utils/Data_Prepper.py, get_train_valid_indices:
    shuffle all training indices with random.seed(1111), keep the first min(90%, cap); main.py
    sets cap = 600*N on MNIST), whose CLA then samples within this pool only. Here the shuffle is
    seeded by the run's seed instead of a constant, and the held-out validation set is excluded.
    """
    return rng.permutation(available)[:size].astype(np.int64)


def make_shards(
    task: TaskData,
    *,
    partition: str,
    agents: int,
    seed: int,
    pool_size: int | None = None,
    shard_size: int | None = None,
    label_noise: Sequence[float] = (),
    val_size: int = 0,
    cla_pool: str = "full",
    feature_noise: Sequence[float] = (),
    copy_of: Sequence[int] = (),
    repeats: Sequence[int] = (),
) -> tuple[list[Shard], np.ndarray]:
    """The N agents' shards and ``val_size`` validation indices that no agent owns.

    Order of draws (each from its own child of SeedSequence(seed), so changing one setting
    does not reshuffle the others): validation set, then the partition, then per-agent label
    noise; CLA's capped pool comes from a fourth child and feature noise from a fifth (children
    are added at the end, so the earlier ones are the same as before each existed).
    UNI/POW draw their pool without replacement from the non-validation data; CLA samples
    with replacement from it (so CLA agents may share samples, as in the reference code);
    DISJOINT draws each agent's own classes without replacement (:func:`partitions.disjoint`).
    ``cla_pool = "capped"`` makes CLA sample within a pool of ``pool_size`` samples
    (:func:`capped_pool`) instead of all of it; it does not change UNI/POW/DISJOINT.
    ``feature_noise``, ``copy_of`` and ``repeats`` then shape what each agent holds
    (:meth:`Holding.hold`); every agent's own shard is drawn first, so they change no other agent's.
    """
    partition = partition.lower()
    if partition not in PARTITIONS:
        raise SettingError("partition", f"partition must be one of {PARTITIONS}, got {partition!r}")
    if cla_pool not in CLA_POOLS:
        raise ValueError(f"cla_pool must be one of {CLA_POOLS}, got {cla_pool!r}")
    if agents < 1:
        raise ValueError(f"agents must be >= 1, got {agents}")
    label_noise = list(label_noise)
    if len(label_noise) > agents:
        raise SettingError("label_noise",
                           f"label_noise has {len(label_noise)} entries but there are only agents={agents}")
    n = task.num_train
    if val_size < 0 or val_size >= n:
        raise SettingError("val_size",
                           f"val_size={val_size} must be in [0, {n - 1}]: the training data has {n} samples")
    holding = Holding.checked(agents, task.kind, feature_noise, copy_of, repeats, label_noise)
    val_seq, part_seq, noise_seq, pool_seq, feature_seq = np.random.SeedSequence(seed).spawn(5)
    perm = np.random.default_rng(val_seq).permutation(n).astype(np.int64)
    val_idx = np.sort(perm[:val_size])
    available = np.sort(perm[val_size:])
    part_rng = np.random.default_rng(part_seq)
    y_all = task.train_y.numpy().astype(np.int64)

    def checked_pool_size() -> int:
        size = default_pool_size(task.name, agents, available.size) if pool_size is None else pool_size
        if size < 1 or size > available.size:
            raise SettingError("pool_size", f"pool_size={size} must be in [1, {available.size}]: {task.name} has "
                                            f"{n} training samples, {val_size} held out for validation")
        return size

    if partition in ("uni", "pow"):
        size = checked_pool_size()
        pool = part_rng.choice(available, size=size, replace=False).astype(np.int64)
        fn = partitions.uni if partition == "uni" else partitions.pow
        positions = fn(size, agents, part_rng)
        index_lists = [pool[p] for p in positions]
    elif partition == "disjoint":
        if shard_size is None:
            shard_size = default_shard_size(task.name, agents, available.size)
        positions = partitions.disjoint(y_all[available], agents, shard_size, task.num_classes, part_rng)
        index_lists = [available[p] for p in positions]
    else:
        if shard_size is None:
            shard_size = default_shard_size(task.name, agents, available.size)
        if shard_size < 1:
            raise SettingError("shard_size", f"shard_size={shard_size} must be >= 1")
        source = available
        if cla_pool == "capped":
            source = capped_pool(available, checked_pool_size(), np.random.default_rng(pool_seq))
        positions = partitions.cla(y_all[source], agents, shard_size, task.num_classes, part_rng)
        index_lists = [source[p] for p in positions]

    noise_rngs = [np.random.default_rng(s) for s in noise_seq.spawn(agents)]
    shards = []
    for i, ix in enumerate(index_lists):
        labels = y_all[ix].copy()
        frac = float(label_noise[i]) if i < len(label_noise) else 0.0
        if frac > 0:
            labels = partitions.corrupt_labels(labels, frac, task.num_classes, noise_rngs[i])
        elif frac < 0:
            raise SettingError("label_noise", f"label_noise[{i}]={frac} must be in [0, 1]")
        shards.append(Shard(indices=ix.astype(np.int64), labels=labels))
    return holding.hold(shards, feature_seq.spawn(agents)), val_idx
