"""One read-only copy of an image data set per machine, shared by all ranks through mmap.

Loading MNIST from its files costs every rank its own arrays (~0.2 GB of float32 images plus
the loader's temporaries). Instead the first rank on a machine to need a data set builds it
once and writes its arrays as .npy files into a folder under the data cache dir, keyed by the
data set and its preprocessing; every rank (the builder too) then ``np.load``s them with
``mmap_mode="r"``, so the pages live once in the page cache and count once in the job's PSS.

- where: ``$FEDFAIR_DATA_CACHE`` or ``$XDG_CACHE_HOME/fedfair/data`` (default
  ``~/.cache/fedfair/data``); ``FEDFAIR_DATA_CACHE=off`` loads from the files as before.
- atomic: the arrays are written into a temporary folder that is ``os.replace``d into place,
  and an exclusive ``flock`` on ``<key>.lock`` makes the other ranks of the machine wait for
  the builder instead of building too (a builder that dies releases the lock).
- fresh: the key holds the data set, its preprocessing, CACHE_VERSION and the path, size and
  modification time of every file the loader may read (:func:`fingerprint`), so changed files
  make a new key.

The tensors are read-only views of the files: nothing writes into a task's arrays (batches
are gathered copies), and a write would fail loudly rather than change another rank's data.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .base import TaskData

CACHE_VERSION = 1
ENV = "FEDFAIR_DATA_CACHE"
ARRAYS = ("train_x", "train_y", "test_x", "test_y")


def cache_dir() -> Path | None:
    """The data cache folder, or None when caching is off."""
    value = os.environ.get(ENV, "")
    if value.lower() == "off":
        return None
    if value:
        return Path(value)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fedfair" / "data"


def cache_key(settings: dict[str, Any]) -> str:
    """``<dataset>-<12 hex of the settings' hash>``: one folder per data set and preprocessing."""
    text = json.dumps({"version": CACHE_VERSION, **settings}, sort_keys=True)
    return f"{settings['dataset']}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


MAX_FILES = 2000
"""fingerprint() looks at most this many files (depth <= 3) under a data dir."""


def fingerprint(paths: list[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of each file, and of the files up to 3 levels under each folder."""
    out: list[tuple[str, int, int]] = []
    for root in paths:
        root = Path(root).resolve()
        if root.is_file():
            files = [root]
        elif root.is_dir():
            files = sorted(p for pattern in ("*", "*/*", "*/*/*") for p in root.glob(pattern) if p.is_file())
        else:
            files = []
        for f in files[:MAX_FILES]:
            st = f.stat()
            out.append((str(f), st.st_size, st.st_mtime_ns))
    return out


def cached_task(settings: dict[str, Any], build: Callable[[], TaskData]) -> TaskData:
    """The task ``build()`` would return, memory-mapped from this machine's cache (built once)."""
    root = cache_dir()
    if root is None:
        return build()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / cache_key(settings)
    if not (folder / "meta.json").is_file():
        with open(root / f"{folder.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the other ranks of this machine wait here for the builder
            if not (folder / "meta.json").is_file():
                _write(folder, build(), settings)
    return _read(folder)


def _write(folder: Path, task: TaskData, settings: dict[str, Any]) -> None:
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name in ARRAYS:
        np.save(tmp / f"{name}.npy", getattr(task, name).numpy())
    meta = {"name": task.name, "kind": task.kind, "num_classes": task.num_classes, "vocab_size": task.vocab_size,
            "source": task.source, "settings": settings}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")  # last: its presence marks a whole folder
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete folder (no meta.json) of an older attempt
    os.replace(tmp, folder)


def _read(folder: Path) -> TaskData:
    meta = json.loads((folder / "meta.json").read_text())
    with warnings.catch_warnings():  # read-only mmaps: torch warns that they are not writable
        warnings.simplefilter("ignore", UserWarning)
        arrays = {name: torch.from_numpy(np.load(folder / f"{name}.npy", mmap_mode="r")) for name in ARRAYS}
    return TaskData(name=meta["name"], kind=meta["kind"], num_classes=meta["num_classes"],
                    vocab_size=meta["vocab_size"], source=f"{meta['source']} (memory-mapped from {folder})", **arrays)
