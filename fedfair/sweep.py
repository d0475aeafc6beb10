"""Run a grid of fedfair jobs one after another: ``python -m fedfair.sweep``.

    python -m fedfair.sweep --config configs/mnist_10_uni.toml configs/mnist_10_cla.toml \\
        --grid 'mechanism.method=standalone,fedavg,cgsv' --grid 'mechanism.beta=1,2' \\
        --out-dir logs/mnist10 [--launcher torchrun|local] [--dry-run] [section.key=value ...]

The runs are every config file × every combination of the ``--grid`` values, with the fixed
``key=value`` overrides applied to all of them. Details:

- Names are deterministic: ``{dataset}-{method}[-b{beta}]-{partition}-a{agents}-s{seed}``, plus
  ``-{key}{value}`` for any other grid key. β only enters methods that use it (``cgsv``), so
  ``mechanism.beta=1,2`` does not multiply the other methods (they keep the config's β).
- Order: runs are grouped by what a fairness reference must share (``fedfair.runtime.logs.reference_key``:
  data, training, seed, rounds, Γ); within a group ``standalone`` runs first, so the server of
  every later run finds it and writes ``rho`` into its summary.
- Each run is one torchrun job (default; its output goes to ``<out-dir>/sweep-logs/<name>.log``)
  or, with ``--launcher local``, ``fedfair.runtime.local.run_local`` (all ranks as local processes).
- A run whose ``summary.json`` exists is complete and skipped, so re-running the same command
  resumes an interrupted sweep. A finished run whose saved config differs from the planned one
  is a conflict: reported, never overwritten. A failed run is reported and the sweep goes on.
- ``<out-dir>/sweep.json`` (the manifest) records the command, the grid and every run's status,
  rewritten after each run. The exit status is 1 when any run failed or conflicted.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import Config, ConfigError, load_config
from .runtime.logs import atomic_write_text, reference_key

BETA_METHODS = ("cgsv",)
"""Methods whose behaviour depends on mechanism.beta (the others are not multiplied by a β grid)."""

NAMED_KEYS = ("data.dataset", "mechanism.method", "mechanism.beta", "data.partition", "data.agents", "run.seed")
"""Grid keys that always appear in a run's name; other grid keys are appended as -{key}{value}."""

# Saved-config fields that do not change a run's results: a finished run still counts as complete
# when only these differ from the planned config.
IGNORED_FIELDS = {("run", "progress"), ("run", "resume"), ("run", "checkpoint_every"), ("run", "threads"),
                  ("run", "out_dir"), ("comm", "backend"), ("comm", "timeout_s")}

MANIFEST = "sweep.json"
LOG_DIR = "sweep-logs"


class SweepError(ValueError):
    """A bad sweep specification (grid syntax, clashing names): one line for the user."""


# ------------------------------------------------------------------ the plan


@dataclass
class PlannedRun:
    name: str
    config_path: str | None
    overrides: list[str]   # everything passed to fedfair.run after --config (run.name and run.out_dir included)
    cfg: Config
    group: str             # reference_key: runs sharing it share one standalone reference
    status: str = "pending"  # pending | complete | done | failed | conflict | running | interrupted
    seconds: float | None = None
    error: str | None = None
    command: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config_path, "overrides": self.overrides,
                "method": self.cfg.mechanism.method, "status": self.status, "seconds": self.seconds,
                "error": self.error, "command": self.command, "run_dir": str(self.run_dir)}


def split_values(text: str) -> list[str]:
    """Split a grid's comma-separated values, keeping commas inside [...] lists (label_noise=[0,0.5],[0,0])."""
    values, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            values.append(cur.strip())
            cur = ""
        else:
            cur += ch
    values.append(cur.strip())
    if any(v == "" for v in values) or depth != 0:
        raise SweepError(f"grid values {text!r} are invalid: expected v1,v2,... with no empty value")
    return values


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """``--grid section.key=v1,v2`` items as (key, values), in the order given; a key may appear once."""
    grid: list[tuple[str, list[str]]] = []
    for item in items:
        if "=" not in item:
            raise SweepError(f"--grid {item!r} is invalid: expected section.key=v1,v2,...")
        key, text = item.split("=", 1)
        key = key.strip()
        if key.count(".") != 1:
            raise SweepError(f"--grid key {key!r} is invalid: expected section.key (e.g. mechanism.beta)")
        if key in (k for k, _ in grid):
            raise SweepError(f"--grid key {key!r} given twice: put all its values in one --grid")
        if key in ("run.name", "run.out_dir"):
            raise SweepError(f"--grid key {key!r} is set by the sweep itself")
        grid.append((key, split_values(text)))
    return grid


def _fmt_number(v: float) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:g}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_=-]+", "_", text).strip("_") or "x"


def run_name(cfg: Config, extra: list[tuple[str, str]]) -> str:
    """``{dataset}-{method}[-b{beta}]-{partition}-a{agents}-s{seed}[-{key}{value}...]``."""
    m = cfg.mechanism
    parts = [cfg.data.dataset, m.method]
    if m.method in BETA_METHODS:
        parts.append(f"b{_fmt_number(m.beta)}")
    parts += [cfg.data.partition, f"a{cfg.data.agents}", f"s{cfg.run.seed}"]
    parts += [_slug(f"{key.split('.', 1)[1]}{value}") for key, value in extra]
    return "-".join(parts)


def comparable(cfg: Config) -> dict[str, dict[str, Any]]:
    """The config as a dict without the fields that do not change results (see IGNORED_FIELDS)."""
    d = cfg.to_dict()
    for sec, key in IGNORED_FIELDS:
        d.get(sec, {}).pop(key, None)
    return d


def expand(configs: list[str | None], grid: list[tuple[str, list[str]]], fixed: list[str],
           out_dir: str) -> list[PlannedRun]:
    """Every config × grid combination as a validated, named, ordered list of runs."""
    runs: list[PlannedRun] = []
    by_name: dict[str, PlannedRun] = {}
    keys = [k for k, _ in grid]
    for config_path in configs:
        for combo in itertools.product(*(values for _, values in grid)):
            chosen = dict(zip(keys, combo))
            base = list(fixed) + [f"{k}={v}" for k, v in chosen.items()]
            try:
                cfg = load_config(config_path, base)
            except ConfigError as e:
                raise SweepError(f"{config_path or 'defaults'} with {' '.join(base) or 'no overrides'}: {e}") from None
            if cfg.mechanism.method not in BETA_METHODS and "mechanism.beta" in chosen:
                base = [o for o in base if o != f"mechanism.beta={chosen['mechanism.beta']}"]
                cfg = load_config(config_path, base)  # beta does not matter here: keep the config's
            extra = [(k, v) for k, v in chosen.items() if k not in NAMED_KEYS]
            name = run_name(cfg, extra)
            overrides = base + [f"run.name={name}", f"run.out_dir={out_dir}"]
            cfg = load_config(config_path, overrides)
            if name in by_name:
                if comparable(by_name[name].cfg) != comparable(cfg):
                    raise SweepError(f"two different runs would both be named {name!r} "
                                     f"({by_name[name].config_path} and {config_path}): put the key that "
                                     "differs in a --grid, or sweep them into separate --out-dir folders")
                continue  # the same run reached twice (e.g. a beta value for a method without beta)
            run = PlannedRun(name, config_path, overrides, cfg, reference_key(cfg))
            by_name[name] = run
            runs.append(run)
    return order_runs(runs)


def order_runs(runs: list[PlannedRun]) -> list[PlannedRun]:
    """Groups in order of first appearance; within each group standalone first, else as expanded."""
    groups: dict[str, list[PlannedRun]] = {}
    for r in runs:
        groups.setdefault(r.group, []).append(r)
    ordered: list[PlannedRun] = []
    for members in groups.values():
        ordered += [r for r in members if r.cfg.mechanism.method == "standalone"]
        ordered += [r for r in members if r.cfg.mechanism.method != "standalone"]
    return ordered


def existing_status(run: PlannedRun) -> tuple[str, str | None]:
    """complete (summary.json and a matching config), conflict (finished with another config) or pending."""
    if not (run.run_dir / "summary.json").is_file():
        return "pending", None
    saved = run.run_dir / "config.toml"
    try:
        old = load_config(saved)
    except (ConfigError, OSError) as e:
        return "conflict", f"finished run folder has an unreadable config.toml ({e})"
    a, b = comparable(old), comparable(run.cfg)
    if b["data"]["val_size"] == 0 and _needs_validation(run.cfg.mechanism.method):
        b["data"]["val_size"] = a["data"]["val_size"]  # the run resolved 0 to its default (fedfair.run)
    if a != b:
        diffs = [f"{s}.{k}: {a[s].get(k)!r} (saved) vs {b[s].get(k)!r} (planned)"
                 for s in b for k in b[s] if a.get(s, {}).get(k) != b[s][k]]
        return "conflict", "finished with a different config: " + "; ".join(diffs[:3])
    return "complete", None


# ------------------------------------------------------------------ launching


def torchrun_command(run: PlannedRun, python: str = sys.executable) -> list[str]:
    """The torchrun command line of one run (world size N + 1 on this machine)."""
    cmd = [python, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc_per_node", str(run.cfg.data.agents + 1), "-m", "fedfair.run"]
    if run.config_path is not None:
        cmd += ["--config", str(run.config_path)]
    return cmd + run.overrides


def launch_torchrun(run: PlannedRun, out_dir: Path, timeout_s: float) -> None:
    """Run one torchrun job; its output goes to <out_dir>/sweep-logs/<name>.log. Raises on failure."""
    log_dir = out_dir / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{run.name}.log"
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(run.command) + "\n")
        log.flush()
        returncode = run_job(run.command, log, env, timeout_s)
    if returncode is None:
        raise RuntimeError(f"timed out after {timeout_s:.0f} s (see {log_path})")
    if returncode != 0:
        raise RuntimeError(f"exit status {returncode}: {_last_error_line(log_path)} (see {log_path})")


def run_job(command: list[str], log, env: dict[str, str], timeout_s: float) -> int | None:
    """Run a job in its own process group; returns its exit status, None on timeout.

    On a timeout, Ctrl-C or SIGTERM to the sweep, the whole group (torchrun and its ranks) gets
    SIGTERM, then SIGKILL 15 s later, so no rank outlives the sweep.
    """
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        return None
    except BaseException:
        _stop_group(proc)
        raise


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _last_error_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    for ln in reversed(lines):  # the run's own one-line message, else the last exception line
        if ln.startswith("fedfair: error:"):
            return ln
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln):
            return ln
    return lines[-1] if lines else "no output"


def launch_local(run: PlannedRun, out_dir: Path, timeout_s: float) -> None:
    """Run every rank as a local process (fedfair.runtime.local.run_local). Raises on failure."""
    from .runtime.local import run_local

    run_local(run.cfg, timeout_s=timeout_s)


LAUNCHERS: dict[str, Callable[[PlannedRun, Path, float], None]] = {"torchrun": launch_torchrun,
                                                                    "local": launch_local}


# ------------------------------------------------------------------ the sweep


class Sweep:
    def __init__(self, runs: list[PlannedRun], out_dir: Path, launcher: str, argv: list[str],
                 spec: dict[str, Any], timeout_s: float) -> None:
        self.runs, self.out_dir, self.launcher = runs, out_dir, launcher
        self.argv, self.spec, self.timeout_s = argv, spec, timeout_s
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S")
        for r in runs:
            r.command = (torchrun_command(r) if launcher == "torchrun"
                         else ["fedfair.runtime.local.run_local", *(["--config", r.config_path] if r.config_path else []),
                               *r.overrides])

    def write_manifest(self) -> None:
        counts: dict[str, int] = {}
        for r in self.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        manifest = {"command": self.argv, "cwd": os.getcwd(), "started": self.started,
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), "launcher": self.launcher,
                    **self.spec, "counts": counts, "runs": [r.record() for r in self.runs]}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")

    def run(self, launch: Callable[[PlannedRun, Path, float], None] | None = None) -> int:
        launch = launch or LAUNCHERS[self.launcher]
        available = _registered_methods()
        n = len(self.runs)
        for r in self.runs:
            r.status, r.error = existing_status(r)
        todo = sum(r.status == "pending" for r in self.runs)
        print(f"fedfair.sweep: {n} runs in {self.out_dir}: {n - todo} already finished, {todo} to run "
              f"({self.launcher})", flush=True)
        for w in reference_warnings(self.runs):
            print(f"fedfair.sweep: warning: {w}", file=sys.stderr, flush=True)
        self.write_manifest()
        try:
            for i, r in enumerate(self.runs, 1):
                head = f"[{i}/{n}] {r.name}"
                if r.status == "complete":
                    print(f"{head}: complete, skipped", flush=True)
                    continue
                if r.status == "conflict":
                    print(f"{head}: CONFLICT, not run: {r.error}", file=sys.stderr, flush=True)
                    continue
                if available is not None and r.cfg.mechanism.method not in available:
                    r.status = "failed"
                    r.error = (f"mechanism.method = {r.cfg.mechanism.method!r} is not implemented yet; "
                               f"available: {', '.join(sorted(available))}")
                    print(f"{head}: FAILED: {r.error}", file=sys.stderr, flush=True)
                    self.write_manifest()
                    continue
                print(f"{head}: running", flush=True)
                r.status = "running"
                self.write_manifest()
                t0 = time.perf_counter()
                try:
                    launch(r, self.out_dir, self.timeout_s)
                    if not (r.run_dir / "summary.json").is_file():
                        raise RuntimeError(f"finished without writing {r.run_dir / 'summary.json'}")
                except KeyboardInterrupt:
                    r.status, r.seconds = "interrupted", time.perf_counter() - t0
                    raise
                except Exception as e:  # one failed run is reported; the sweep goes on
                    r.status, r.error = "failed", _one_line(e)
                    r.seconds = time.perf_counter() - t0
                    print(f"{head}: FAILED after {r.seconds:.1f} s: {r.error}", file=sys.stderr, flush=True)
                else:
                    r.status, r.seconds = "done", time.perf_counter() - t0
                    print(f"{head}: done in {r.seconds:.1f} s: {_summary_line(r.run_dir)}", flush=True)
                self.write_manifest()
        finally:
            self.write_manifest()
        bad = [r for r in self.runs if r.status in ("failed", "conflict")]
        finished = sum(r.status in ("done", "complete") for r in self.runs)
        print(f"fedfair.sweep: {finished}/{n} runs finished, {len(bad)} failed or in conflict"
              + (": " + ", ".join(r.name for r in bad) if bad else "") + f"; manifest {self.out_dir / MANIFEST}",
              flush=True)
        return 1 if bad else 0

    def dry_run(self) -> int:
        n = len(self.runs)
        print(f"fedfair.sweep: dry run, {n} runs in {self.out_dir} ({self.launcher}); nothing is started or written")
        for w in reference_warnings(self.runs):
            print(f"fedfair.sweep: warning: {w}")
        for i, r in enumerate(self.runs, 1):
            status, err = existing_status(r)
            what = {"pending": "would run", "complete": "complete, would skip",
                    "conflict": f"CONFLICT: {err}"}[status]
            print(f"[{i}/{n}] {r.name}: {what}")
            print("    " + shlex.join(r.command))
        return 0


def _needs_validation(method: str) -> bool:
    try:
        from .strategies import REGISTRY
    except Exception:  # pragma: no cover
        return method in ("cffl", "eci")
    cls = REGISTRY.get(method)
    return bool(getattr(cls, "needs_validation", method in ("cffl", "eci")))


def reference_warnings(runs: list[PlannedRun]) -> list[str]:
    """Runs that will find no standalone reference in this sweep (so their rho stays n/a)."""
    groups = {r.group for r in runs if r.cfg.mechanism.method == "standalone"}
    if not groups:
        return []
    out = []
    if any(_needs_validation(r.cfg.mechanism.method) and r.cfg.data.val_size == 0 for r in runs):
        out.append("cffl/eci hold out a validation slice (data.val_size = 0 resolves to a default inside the run), "
                   "which changes their data and so their fairness reference: give a fixed data.val_size=... to "
                   "the whole sweep so that standalone shares it")
    missing = sorted({r.name for r in runs if r.group not in groups and not _needs_validation(r.cfg.mechanism.method)})
    if missing:
        out.append(f"no standalone run in this sweep shares data, training, seed and rounds with: {', '.join(missing)}")
    return out


def _registered_methods() -> set[str] | None:
    try:
        from .strategies import REGISTRY
    except Exception:  # pragma: no cover - let the run itself report it
        return None
    return set(REGISTRY)


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first = lines[0] if lines else type(e).__name__
    return first if len(first) < 400 else first[:400] + "..."


def _summary_line(run_dir: Path) -> str:
    try:
        s = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return "no summary"

    def g(x):
        return "undefined" if x is None else f"{x:.2f}"

    rho = g(s.get("rho")) if s.get("rho_available") else "n/a"
    return (f"mean acc {s.get('mean_acc', math.nan):.4f} max acc {s.get('max_acc', math.nan):.4f} "
            f"rho {rho} rho_r {g(s.get('rho_r'))}")


# ------------------------------------------------------------------ command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fedfair.sweep", description=__doc__.split("\n\n")[0],
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        sweep = build(args, ["python", "-m", "fedfair.sweep", *argv])
    except (SweepError, ConfigError) as e:
        print(f"fedfair.sweep: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        return sweep.dry_run()

    def on_sigterm(signum, frame):  # stop like Ctrl-C: the running job is stopped, the manifest written
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return sweep.run()
    except KeyboardInterrupt:
        print("fedfair.sweep: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
