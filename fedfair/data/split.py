"""Write per-party data files from one data set, for demos and experiments (``python -m fedfair prepare``).

The split is the simulator's: the same seeded uni/pow/cla/disjoint partitions and per-agent label noise
(:func:`fedfair.data.make_shards`), so a files run on the written files sees the shards a
simulated run of the same settings would. Sources: fedfair's built-in data sets, scikit-learn's
bundled tabular sets (no download), or a user's .npz/.csv file (split into train and a stratified
test set by the seed).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .base import DataError, TaskData, stratified_split
from .party_files import read_file
from .shards import make_shards
from .tasks import TASKS, load_task

TABULAR = ("breast_cancer", "wine", "iris")
"""scikit-learn's bundled tabular data sets (no download)."""
SOURCES = TABULAR + TASKS


def tabular_task(x: np.ndarray, y: np.ndarray, name: str, seed: int, test_fraction: float) -> TaskData:
    """Stratified train/test split; features standardised with the training part's mean and std."""
    y = np.asarray(y, dtype=np.int64)
    classes = np.unique(y)
    if classes.min() < 0:
        raise DataError(f"{name}: labels must be 0..C-1, found {int(classes.min())}")
    train, test = stratified_split(y, test_fraction, seed)
    x = np.asarray(x, dtype=np.float64).reshape(len(y), -1)
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1.0
    x = ((x - mean) / std).astype(np.float32)
    return TaskData(name, "tabular", torch.from_numpy(x[train]), torch.from_numpy(y[train]),
                    torch.from_numpy(x[test]), torch.from_numpy(y[test]), int(classes.max()) + 1, source=name)


def load_source(source: str, seed: int = 0, test_fraction: float = 0.2, label_column: str = "label") -> TaskData:
    """A built-in name (fedfair's data sets, or breast_cancer/wine/iris) or a path to a .npz/.csv file."""
    if source in TABULAR:
        import sklearn.datasets as ds

        x, y = getattr(ds, f"load_{source}")(return_X_y=True)
        return tabular_task(x, y, source, seed, test_fraction)
    if source in TASKS:
        return load_task(source, seed=seed, test_fraction=test_fraction)
    if Path(source).suffix.lower() in (".npz", ".csv"):
        f = read_file(source, "--source", label_column)
        return tabular_task(f.x, f.y, Path(source).stem, seed, test_fraction) if f.x.ndim == 2 else \
            _image_task(f.x, f.y, Path(source).stem, seed, test_fraction)
    raise DataError(f"--source {source!r} is neither a built-in data set ({', '.join(SOURCES)}) nor a .npz/.csv file")


def _image_task(x: np.ndarray, y: np.ndarray, name: str, seed: int, test_fraction: float) -> TaskData:
    """Multi-dimensional samples: split as they are (no standardisation)."""
    train, test = stratified_split(y, test_fraction, seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    return TaskData(name, "image", xt[train], yt[train], xt[test], yt[test], int(y.max()) + 1, source=name)


@dataclass
class Written:
    """What :func:`write_parties` wrote: the config lines to use them, and the sizes."""
    agent_files: str
    test_file: str
    val_file: str
    sizes: list[int]
    class_counts: list[list[int]]


def write_parties(task: TaskData, out_dir: str | Path, *, agents: int, partition: str, seed: int,
                  label_noise: Sequence[float] = (), pool_size: int | None = None, shard_size: int | None = None,
                  val_size: int = 0, fmt: str = "npz", label_column: str = "label") -> Written:
    """party_<i>.<fmt> for agents 1..N, test.<fmt> and (val_size > 0) val.<fmt> in ``out_dir``."""
    if fmt not in ("npz", "csv"):
        raise DataError(f"--format {fmt!r} is invalid: npz or csv")
    if task.kind == "text":
        raise DataError(f"{task.name} is text: party files hold fixed-size numeric samples (npz or csv)")
    shards, val = make_shards(task, partition=partition, agents=agents, seed=seed, pool_size=pool_size,
                              shard_size=shard_size, label_noise=label_noise, val_size=val_size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_x = task.train_x.numpy()
    for i, s in enumerate(shards, start=1):
        _write(out / f"party_{i}.{fmt}", train_x[s.indices], s.labels, label_column)
    _write(out / f"test.{fmt}", task.test_x.numpy(), task.test_y.numpy(), label_column)
    if val_size:
        _write(out / f"val.{fmt}", train_x[val], task.train_y.numpy()[val], label_column)
    counts = [np.bincount(s.labels, minlength=task.num_classes).tolist() for s in shards]
    return Written(str(out / f"party_{{agent}}.{fmt}"), str(out / f"test.{fmt}"),
                   str(out / f"val.{fmt}") if val_size else "", [len(s) for s in shards], counts)


def _write(path: Path, x: np.ndarray, y: np.ndarray, label_column: str) -> None:
    y = np.asarray(y, dtype=np.int64)
    if path.suffix == ".npz":
        np.savez(path, x=np.ascontiguousarray(x, dtype=np.float32), y=y)
        return
    flat = x.reshape(len(y), -1)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{j}" for j in range(flat.shape[1])] + [label_column])
        for row, label in zip(flat, y):
            w.writerow([repr(float(v)) for v in row] + [int(label)])
