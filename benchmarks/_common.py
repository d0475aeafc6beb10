"""Pieces shared by the benchmarks: machine description, interleaved min-of-repeats timing,
synthetic rounds of uploads, realistic layer splits.

The benchmarks run on a machine whose cores are shared with other jobs, so every comparison
is a ratio measured within one process: the competing implementations run interleaved
(A, B, A, B, ...) and the minimum of the repeats is kept for each (the least disturbed run is
the best estimate of the cost). Process CPU time is reported beside wall time because it is
less sensitive to other processes taking the cores.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# MNIST settings of the paper (spec table): Γ = 0.5, α = 0.95; β = 1 is the least altruistic
# setting, which gives the widest spread of reward sizes.
GAMMA = 0.5
ALPHA = 0.95
BETA = 1.0


# ---------------------------------------------------------------- machine


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_header(threads: int | None = None) -> str:
    """One paragraph describing the machine and the software, with the load average now."""
    threads = torch.get_num_threads() if threads is None else threads
    return (
        f"machine: {os.cpu_count()} cores ({cpu_model()}), torch {torch.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}; torch threads {threads}\n"
        f"load average at start (1/5/15 min): {load_average()}"
    )


def footer() -> str:
    return f"load average at end (1/5/15 min): {load_average()}"


# ---------------------------------------------------------------- timing


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Minimum wall time and minimum process CPU time of fn over repeats."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                repeats_for: dict[str, int] | None = None) -> dict[str, tuple[float, float]]:
    """Time several functions in rotation (A, B, C, A, B, C, ...): min wall and min CPU per name.

    Interleaving spreads any burst of load from other processes over all contenders, so the
    ratio of their minima is a fair comparison even on a busy machine. ``repeats_for`` lets an
    expensive contender run fewer times (it still runs interleaved with the others).
    """
    repeats_for = repeats_for or {}
    walls: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    for rep in range(max([repeats, *repeats_for.values()])):
        for name, fn in fns.items():
            if rep >= repeats_for.get(name, repeats):
                continue
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
    return {name: (min(walls[name]), min(cpus[name])) for name in fns}


# ---------------------------------------------------------------- synthetic rounds


def make_round(n: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Uploads sharing one direction under agent-specific noise, and a mid-run importance r.

    Noise strengths differ across agents, so their ψ, r and reward sizes q differ too, as in
    a real run; r comes from ten warm-up rounds of the same mechanism.
    """
    from fedfair.mechanism import cgsv_approx, update_importance

    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(dim, generator=g)
    noise = torch.linspace(0.2, 3.0, n)
    updates = torch.randn(n, dim, generator=g)
    updates.mul_(noise[:, None]).add_(direction)
    weights = torch.full((n,), 1.0 / n)
    r = torch.zeros(n, dtype=torch.float64)
    _, psi = cgsv_approx(updates, weights, GAMMA)
    for _ in range(10):
        r = update_importance(r, psi, ALPHA)
    return updates, r


# ---------------------------------------------------------------- realistic layer splits

# D ≈ 1e5: the paper's MNIST CNN (D = 104,242); D ≈ 1e6: the paper's text CNN (Kim) with a
# 2,180-word vocabulary and 2 classes (D = 1,000,754). Shapes come from fedfair.models, so the
# parameter tensors are exactly those a run of these models uploads, in the same order.
MODELS = {"1e5": "mnist_cnn", "1e6": "text_cnn_2180"}


def model_shapes(name: str) -> list[torch.Size]:
    """Parameter shapes, in ``model.parameters()`` order, of a named model."""
    from fedfair.models import MnistCNN, TextCNN

    if name == "mnist_cnn":
        model = MnistCNN(10, 1)
    elif name.startswith("text_cnn_"):
        model = TextCNN(int(name.rsplit("_", 1)[1]), 2)
    else:
        raise ValueError(f"unknown model {name!r}")
    return [p.shape for p in model.parameters()]


def describe_split(shapes: list[torch.Size]) -> str:
    return " + ".join(f"{int(np.prod(s)):,}" for s in shapes)


# ---------------------------------------------------------------- runs


def torchrun(config: str | Path, nproc: int, overrides: list[str], timeout_s: float = 3600.0,
             env: dict[str, str] | None = None) -> float:
    """Run ``python -m torch.distributed.run --nproc_per_node nproc -m fedfair.run`` and return its wall time."""
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "fedfair.run", "--config", str(config), *overrides]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"torchrun failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return wall
