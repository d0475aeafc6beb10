"""Run a whole job on this machine without torchrun: one process per rank, a FileStore, no ports.

Used by the test suite (torchrun costs seconds of start-up per launch and needs a port) and
handy in notebooks. ``torchrun`` remains the way to run real jobs.
"""
from __future__ import annotations

import os
import queue as _queue
import tempfile
import time
import traceback
from multiprocessing.queues import Queue
from typing import Any

import torch.multiprocessing as mp

from ..config import Config


def _portable(x: Any) -> Any:
    """Tensors become numpy arrays: torch's queue pickling shares memory that dies with the worker."""
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, dict):
        return {k: _portable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_portable(v) for v in x)
    return x


def _worker(cfg: Config, rank: int, world_size: int, store_path: str, queue: Queue) -> None:
    import torch.distributed as dist

    from .roles import run_rank
    from .transport import RunAborted

    try:
        store = dist.FileStore(store_path, world_size)
        queue.put((rank, "ok", _portable(run_rank(cfg, rank, world_size, store=store))))
    except RunAborted as e:  # the one-line report of a failed rank (quiet: this rank only lost its peer)
        queue.put((rank, "quiet" if e.quiet else "error", str(e)))
    except BaseException as e:  # report, never hang the parent
        queue.put((rank, "error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


def run_local(cfg: Config, world_size: int | None = None, timeout_s: float = 600.0, grace_s: float = 5.0) -> list[Any]:
    """Run every rank as a local process (``run.ranks`` of them, N + 1 when 0); returns
    [the server's result, agent 1's, ..., agent N's] (see ``run_rank``; an agent's result is its
    final ``w`` and the bytes it ``received``), whatever the number of ranks; tensors as numpy.

    When a rank fails, the others get ``grace_s`` seconds to end before they are killed (a hung
    rank never ends by itself); the error raised names the lowest failed rank that reported a
    cause (ranks that only lost their peer report nothing).
    """
    from .placement import world_size_for

    world_size = world_size or world_size_for(cfg.data.agents, cfg.run.ranks)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="fedfair-store-") as tmp:
        store_path = os.path.join(tmp, "store")
        procs = [ctx.Process(target=_worker, args=(cfg, r, world_size, store_path, queue), daemon=True)
                 for r in range(world_size)]
        for p in procs:
            p.start()
        results: list[Any] = [None] * world_size
        errors: list[tuple[int, int, str]] = []
        deadline = time.monotonic() + timeout_s
        pending = world_size
        try:
            while pending and time.monotonic() < deadline:
                try:  # read before joining: a large result blocks its sender until it is read
                    rank, status, value = queue.get(timeout=1.0)
                except _queue.Empty:
                    if all(not p.is_alive() for p in procs) and queue.empty():
                        break
                    continue
                pending -= 1
                if status == "ok":
                    results[rank] = value
                else:
                    errors.append((0 if status == "error" else 1, rank, value))
                    deadline = min(deadline, time.monotonic() + grace_s)
        finally:
            for p in procs:
                p.join(1.0 if errors else 5.0)
                if p.is_alive():
                    p.kill()
        if errors:
            _, rank, msg = sorted(errors)[0]
            raise RuntimeError(f"rank {rank} failed: {msg}")
        missing = [r for r, v in enumerate(results) if v is None]
        if missing:
            raise RuntimeError(f"ranks {missing} returned nothing (exit codes {[p.exitcode for p in procs]})")
        per_agent = [results[0]]
        for hosted in results[1:]:
            per_agent += [hosted["agents"][i] for i in sorted(hosted["agents"])]
        return per_agent
