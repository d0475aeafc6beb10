"""A run's fairness reference and ρ: the experiment layer's, not the runtime's.

A run records its own facts only, among them its ``reference_key`` (the data, file contents,
training, seed, rounds and Standalone's step: ``fedfair.runtime.logs.recorded_reference_key``).
Which Standalone run is the reference of a run is decided here, once:

- a Standalone run is its own reference;
- any other run's reference is the first (by folder name) finished Standalone run with the same
  ``reference_key`` among the runs at hand (for a sweep or compare: the runs in its output folder);

and ρ = 100·pearson(the reference's final accuracies, the run's), the paper's fairness measure
(undefined, None, on zero variance). :func:`fill_rho` writes ``rho`` and ``rho_available`` into
the summary.json of runs in one output folder once their reference has finished, so the order
in which a sweep runs them does not matter for ρ.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

from ..methods import REFERENCE
from ..metrics import num, pearson100
from ..runtime.logs import atomic_write_text
from .runs import Run, read_run

UNDEFINED = "undefined"
NO_REFERENCE = "n/a"

References = dict[str, Run]
"""reference_key -> the Standalone run that is the fairness reference of runs with that key."""


def references(runs: Sequence[Run]) -> References:
    """The first (by folder name) Standalone run of every reference key."""
    by_ref: References = {}
    for r in sorted(runs, key=lambda r: r.name):
        if r.method == REFERENCE and r.summary.get("reference_key"):
            by_ref.setdefault(r.summary["reference_key"], r)
    return by_ref


def reference_of(run: Run, by_ref: References) -> Run | None:
    """The run's fairness reference among ``by_ref``: itself for a Standalone run."""
    if run.method == REFERENCE:
        return run
    key = run.summary.get("reference_key")
    return by_ref.get(key) if key else None


def rho(reference_acc: Sequence[float], acc: Sequence[float]) -> float | None:
    """ρ = 100·pearson(reference final accuracies, final accuracies); None when undefined."""
    return pearson100(reference_acc, acc)


def rho_of(run: Run, by_ref: References) -> tuple[float | None, str]:
    """(ρ, state): state is 'ok', 'undefined' (zero variance) or 'n/a' (no reference at hand).

    A value recorded in summary.json (``rho_available``) is the run's ρ against the reference of
    its own output folder; without one, ρ comes from the reference among the runs at hand.
    """
    s = run.summary
    if s.get("rho_available"):
        return num(s.get("rho")), ("ok" if num(s.get("rho")) is not None else UNDEFINED)
    ref = reference_of(run, by_ref)
    if ref is None or not ref.summary.get("final_acc") or not s.get("final_acc"):
        return None, NO_REFERENCE
    v = rho(ref.summary["final_acc"], s["final_acc"])
    return v, ("ok" if v is not None else UNDEFINED)


def with_rho(summary: dict[str, Any], value: float | None) -> dict[str, Any]:
    """The summary with ``rho`` and ``rho_available`` (placed after ``server_acc``, as documented)."""
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if k in ("rho", "rho_available"):
            continue
        out[k] = v
        if k == "server_acc":
            out["rho"], out["rho_available"] = value, True
    if "rho_available" not in out:
        out["rho"], out["rho_available"] = value, True
    return out


def fill_rho(out_dir: Path) -> list[Path]:
    """Write ρ into the summary.json of every finished run directly in ``out_dir`` whose reference
    (a Standalone run in the same folder) has finished and that has no ρ yet; returns their folders."""
    runs = []
    for path in sorted(Path(out_dir).glob("*/summary.json")):
        try:
            runs.append(read_run(path.parent))
        except (OSError, ValueError):
            continue
    by_ref = references(runs)
    filled = []
    for run in runs:
        ref = reference_of(run, by_ref)
        if run.summary.get("rho_available") or ref is None or not run.summary.get("final_acc"):
            continue
        summary = with_rho(run.summary, rho(ref.summary["final_acc"], run.summary["final_acc"]))
        atomic_write_text(run.path / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
        filled.append(run.path)
    return filled


def main(argv: list[str] | None = None) -> int:
    """``python -m fedfair rho --config FILE [key=value ...]`` or ``python -m fedfair rho DIR ...``:
    fill ρ into the finished runs of the job's output folder (or of each DIR) whose Standalone
    reference has finished. launch/local.sh and launch/multinode.sh run it after a job, so a job
    started by them has ρ in its summary.json as soon as its reference exists (in either order)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m fedfair rho", description=main.__doc__.split("\n\n")[0])
    p.add_argument("--config", default=None, help="a job's config: its run.out_dir is the folder")
    p.add_argument("args", nargs="*", help="with --config: the job's key=value overrides; else output folders")
    a = p.parse_args(argv)
    if a.config is not None:
        from ..config import ConfigError, load_config

        try:
            folders = [load_config(a.config, a.args).run.out_dir]
        except (ConfigError, OSError, ValueError) as e:
            print(f"fedfair: error: {e}", file=sys.stderr)
            return 2
    else:
        folders = a.args
    for folder in folders:
        for path in fill_rho(Path(folder)):
            print(f"fedfair: rho written into {path / 'summary.json'}")
    return 0
