"""Run a grid of fedfair jobs one after another: ``python -m fedfair sweep``.

    python -m fedfair sweep --config configs/mnist_10_uni.toml configs/mnist_10_cla.toml \\
        --grid 'mechanism.method=standalone,fedavg,cgsv' --grid 'mechanism.beta=1,2' \\
        --out-dir logs/mnist10 [--launcher torchrun|local] [--dry-run] [section.key=value ...]

The runs are every config file × every combination of the ``--grid`` values, with the fixed
``key=value`` overrides applied to all of them. Details:

- Names are deterministic: ``{dataset}-{method}[-b{beta}]-{partition}-a{agents}-s{seed}``, plus
  ``-{key}{value}`` for any other grid key. β only enters methods that use it (``cgsv``), so
  ``mechanism.beta=1,2`` does not multiply the other methods (they keep the config's β).
- Order: runs are grouped by what a fairness reference must share (``fedfair.runtime.logs.reference_key``:
  data, training, seed, rounds, Γ); within a group ``standalone`` runs first. After each run the
  sweep writes ``rho`` into the summary.json of every run in the output folder whose Standalone
  reference has finished (``fedfair.experiments.reference.fill_rho``).
- Each run is one torchrun job (default; its output goes to ``<out-dir>/sweep-logs/<name>.log``)
  or, with ``--launcher local``, ``fedfair.runtime.local.run_local`` (all ranks as local processes).
- A run whose ``summary.json`` exists is complete and skipped, so re-running the same command
  resumes an interrupted sweep; a run that was interrupted (its folder holds logs but no
  summary.json) is started with ``run.resume=true``: it continues from its newest checkpoint, or
  from round 1 without one. A finished run whose saved config differs from the planned one
  is a conflict: reported, never overwritten. A failed run is reported and the sweep goes on.
- ``<out-dir>/sweep.json`` (the manifest) records the command, the grid and every run's status,
  rewritten after each run. The exit status is 1 when any run failed or conflicted.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..config import ConfigError
from ..runtime.logs import atomic_write_text

# the sweep's API in one place: launchers, planning and status (tests and scripts use them from here)
from .launch import COMMANDS, LAUNCHERS, LOG_DIR, Launcher, torchrun_command  # noqa: F401
from .plan import (  # noqa: F401
    PlannedRun,
    SweepError,
    existing_status,
    expand,
    parse_grid,
    reference_warnings,
    split_values,
    take_over,
)
from .reference import fill_rho
from .runs import read_run

MANIFEST = "sweep.json"


# ------------------------------------------------------------------ the sweep


@dataclass
class Counts:
    """How a sweep ended: runs finished (now or before) and runs that failed or are in conflict."""
    finished: int
    bad: list[PlannedRun]


class Sweep:
    """Runs planned runs one after another, skipping finished ones, and keeps the manifest current.

    ``prog`` prefixes its messages and ``log`` takes them (compare keeps stdout for its table);
    ``skip_finished=False`` runs every planned run again (compare without --reuse).
    """

    def __init__(self, runs: list[PlannedRun], out_dir: Path, launcher: str, argv: list[str],
                 spec: dict[str, Any], timeout_s: float, prog: str = "fedfair.sweep",
                 log: IO[str] | None = None) -> None:
        self.runs, self.out_dir, self.launcher = runs, out_dir, launcher
        self.argv, self.spec, self.timeout_s = argv, spec, timeout_s
        self.prog, self.log = prog, log
        self.replace = False
        """Pending runs replace an earlier run in their folder (compare without --reuse), else resume it."""
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S")
        for r in runs:
            r.command = COMMANDS[launcher](r)

    def say(self, text: str, error: bool = False) -> None:
        print(text, file=sys.stderr if error else (self.log or sys.stdout), flush=True)

    def write_manifest(self) -> None:
        counts: dict[str, int] = {}
        for r in self.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        manifest = {"command": self.argv, "cwd": os.getcwd(), "started": self.started,
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), "launcher": self.launcher,
                    **self.spec, "counts": counts, "runs": [r.record() for r in self.runs]}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")

    def run(self, launch: Launcher | None = None, skip_finished: bool = True) -> int:
        """Run every pending run; returns the exit status (1 when any run failed or is in conflict)."""
        launch = launch or LAUNCHERS[self.launcher]
        n = len(self.runs)
        for r in self.runs:
            r.status, r.error = existing_status(r) if skip_finished else ("pending", None)
        self.replace = not skip_finished
        todo = sum(r.status == "pending" for r in self.runs)
        self.say(f"{self.prog}: {n} runs in {self.out_dir}: {n - todo} already finished, {todo} to run "
                 f"({self.launcher})")
        for w in reference_warnings(self.runs):
            self.say(f"{self.prog}: warning: {w}", error=True)
        self.write_manifest()
        try:
            for i, r in enumerate(self.runs, 1):
                self.run_one(f"[{i}/{n}] {r.name}", r, launch)
        finally:
            self.write_manifest()
        for out_dir in dict.fromkeys(r.run_dir.parent for r in self.runs):
            fill_rho(out_dir)  # runs finished before this sweep started, whose reference finished in it
        counts = self.counts()
        bad = counts.bad
        self.say(f"{self.prog}: {counts.finished}/{n} runs finished, {len(bad)} failed or in conflict"
                 + (": " + ", ".join(r.name for r in bad) if bad else "") + f"; manifest {self.out_dir / MANIFEST}")
        return 1 if bad else 0

    def run_one(self, head: str, r: PlannedRun, launch: Launcher) -> None:
        """Launch one run unless it is complete or in conflict; a failure is recorded, not raised."""
        if r.status == "complete":
            self.say(f"{head}: complete, skipped")
            return
        if r.status == "conflict":
            self.say(f"{head}: CONFLICT, not run: {r.error}", error=True)
            return
        how = take_over(r, self.replace)
        if how:
            r.command = COMMANDS[self.launcher](r)
        self.say(f"{head}: running" + {None: "", "run.resume=true": " (its folder holds an unfinished run: resumed "
                                      "from its checkpoint, if any)",
                                      "run.overwrite=true": " (replaces the earlier run in its folder)"}[how])
        r.status = "running"
        self.write_manifest()
        t0 = time.perf_counter()
        try:
            r.result = launch(r, self.out_dir, self.timeout_s)
            if not (r.run_dir / "summary.json").is_file():
                raise RuntimeError(f"finished without writing {r.run_dir / 'summary.json'}")
        except KeyboardInterrupt:
            r.status, r.seconds = "interrupted", time.perf_counter() - t0
            raise
        except Exception as e:  # one failed run is reported; the sweep goes on
            r.status, r.error = "failed", _one_line(e)
            r.seconds = time.perf_counter() - t0
            self.say(f"{head}: FAILED after {r.seconds:.1f} s: {r.error}", error=True)
        else:
            r.status, r.seconds = "done", time.perf_counter() - t0
            fill_rho(r.run_dir.parent)
            self.say(f"{head}: done in {r.seconds:.1f} s: {_summary_line(r.run_dir)}")
        self.write_manifest()

    def counts(self) -> Counts:
        return Counts(sum(r.status in ("done", "complete") for r in self.runs),
                      [r for r in self.runs if r.status in ("failed", "conflict")])

    def dry_run(self) -> int:
        n = len(self.runs)
        print(f"{self.prog}: dry run, {n} runs in {self.out_dir} ({self.launcher}); nothing is started or written")
        for w in reference_warnings(self.runs):
            print(f"{self.prog}: warning: {w}")
        for i, r in enumerate(self.runs, 1):
            status, err = existing_status(r)
            what = {"pending": "would run", "complete": "complete, would skip",
                    "conflict": f"CONFLICT: {err}"}[status]
            print(f"[{i}/{n}] {r.name}: {what}")
            print("    " + shlex.join(r.command))
        return 0


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first = lines[0] if lines else type(e).__name__
    return first if len(first) < 400 else first[:400] + "..."


def _two_places(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.2f}"


def _summary_line(run_dir: Path) -> str:
    try:
        s = read_run(run_dir).summary
    except (OSError, ValueError):
        return "no summary"
    rho = _two_places(s.get("rho")) if s.get("rho_available") else "n/a"
    return (f"mean acc {s.get('mean_acc', math.nan):.4f} max acc {s.get('max_acc', math.nan):.4f} "
            f"rho {rho} rho_r {_two_places(s.get('rho_r'))}")


# ------------------------------------------------------------------ command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fedfair sweep", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--config", nargs="+", default=None,
                   help="one or more TOML config files (each is crossed with the grid; default: built-in defaults)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a grid dimension, e.g. 'mechanism.method=standalone,fedavg,cgsv' (repeatable)")
    p.add_argument("--out-dir", required=True, help="folder for the run folders and the manifest")
    p.add_argument("--launcher", choices=sorted(LAUNCHERS), default="torchrun",
                   help="torchrun (default): one torchrun job per run; local: fedfair.runtime.local.run_local")
    p.add_argument("--dry-run", action="store_true", help="print the plan and each run's command; run nothing")
    p.add_argument("--timeout", type=float, default=7 * 24 * 3600.0, help="seconds allowed per run")
    p.add_argument("overrides", nargs="*", help="fixed section.key=value overrides for every run")
    return p.parse_args(argv)


def build(args: argparse.Namespace, argv: list[str]) -> Sweep:
    grid = parse_grid(args.grid)
    fixed = list(args.overrides)
    for o in fixed:
        key = o.split("=", 1)[0]
        if key in ("run.name", "run.out_dir"):
            raise SweepError(f"{key} is set by the sweep (use --out-dir)")
        if key in (k for k, _ in grid):
            raise SweepError(f"{key} is both a fixed override and a --grid key")
    if not any(o.startswith("run.progress=") for o in fixed):
        fixed.insert(0, "run.progress=false")  # a progress bar only floods the per-run log
    configs: list[str | None] = list(args.config) if args.config else [None]
    out_dir = str(args.out_dir)
    runs = expand(configs, grid, fixed, out_dir)
    spec = {"configs": configs, "grid": {k: v for k, v in grid}, "fixed": fixed, "out_dir": out_dir}
    return Sweep(runs, Path(out_dir), args.launcher, argv, spec, args.timeout)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops like Ctrl-C inside the block: the running job is stopped, the manifest written."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        sweep = build(args, ["python", "-m", "fedfair", "sweep", *argv])
    except (SweepError, ConfigError) as e:
        print(f"fedfair.sweep: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        return sweep.dry_run()
    with sigterm_interrupts():
        try:
            return sweep.run()
        except KeyboardInterrupt:
            print("fedfair.sweep: interrupted; re-run the same command to resume", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
