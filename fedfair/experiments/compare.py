"""Compare reward methods side by side: ``python -m fedfair compare``, a sweep over methods plus a table.

    python -m fedfair compare --config configs/default.toml \\
        --methods standalone,fedavg,dw,eu,rr,qffl,cffl,eci,cgsv [--out-dir DIR] \\
        [--launcher local|torchrun] [--reuse] [section.key=value ...]

Runs the standalone references first, then every other method, on the same data, shards,
seed, training and test set, into one folder (``<out-dir>/<method>/``); ``rho`` against the
standalone run is written into each run's summary.json (``fedfair.experiments.reference``). Then prints
the per-method table and writes it to ``<out-dir>/compare.md`` and ``<out-dir>/compare.csv``.

- ``standalone`` is always run first, whether listed or not (it is the fairness reference).
- If any listed method needs a validation set (cffl, eci) and ``data.val_size`` is 0, every
  run (standalone included) holds out the same default slice (10% of the training data, at
  most 1000), so that all methods train on identical shards and share the reference.
- ``--reuse``: a method whose run folder already holds a finished run of the same config (the
  sweep's check: fields that do not change results aside) is not run again (resumes an
  interrupted comparison; its wall time and timings are those of the earlier run); one finished
  with another config is a conflict, never overwritten. Without it every method runs again, replacing
  an earlier run of it in ``<out-dir>`` (``run.overwrite = true``, said as it starts).
- Launchers: ``local`` (default; ``fedfair.runtime.local.run_local``, every rank a local process) or
  ``torchrun`` (one torchrun job per method, its output in ``<out-dir>/sweep-logs/<method>.log``);
  ``<out-dir>/sweep.json`` records the runs, as for a sweep.
- Accuracy columns: ``mean_acc``/``max_acc``/``rho`` use each agent's model as it holds it
  after its final reward (``test_acc``: the fairness outcome); ``local_*`` use its model
  right after its own local training in the final round, before upload (``local_acc``),
  the convention that the paper's FedAvg and q-FFL rows need (baselines.md). ``rho_local``
  correlates the standalone accuracies with ``local_acc``.
- A metric that is undefined (zero variance, no reference) is printed as ``undefined``,
  never as 0.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError, load_config
from ..methods import METHODS, NAMES, REFERENCE
from ..metrics import agent_max, agent_mean
from .plan import PlannedRun, finished_status, order_runs, planned_run, shared_val_size
from .reference import reference_of, references, rho, rho_of
from .runs import read_run
from .sweep import MANIFEST, Sweep, sigterm_interrupts

COLUMNS = ["method", "mean_acc", "max_acc", "rho", "rho_r", "local_mean", "local_max", "rho_local",
           "overhead_ratio", "mechanism_s", "bytes_down", "bytes_down_dense", "bytes_up", "wall_s"]
UNDEFINED = "undefined"
TIMEOUT_S = 7 * 24 * 3600.0


def plan_runs(config: str | None, methods: list[str], out_dir: str, overrides: list[str]) -> list[PlannedRun]:
    """One run per method, named by it, all in ``out_dir``, the reference first, validation sizes shared."""
    unknown = [m for m in methods if m not in NAMES]
    if unknown:
        raise ConfigError(f"--methods: unknown method(s) {', '.join(unknown)}; available: {', '.join(NAMES)}")
    ordered = list(dict.fromkeys([REFERENCE, *methods]))
    base = [*overrides, *shared_val_size(load_config(config, overrides), ordered)]
    return order_runs([planned_run(config, [*base, f"mechanism.method={m}"], m, out_dir) for m in ordered])


def plan(config: str | None, methods: list[str], out_dir: str, overrides: list[str]) -> list[Config]:
    """One validated config per method, standalone first, all in ``out_dir``, shards aligned."""
    return [r.cfg for r in plan_runs(config, methods, out_dir, overrides)]


def table_rows(out_dir: str | Path, methods: list[str]) -> list[dict[str, Any]]:
    """One row per method from the run folder ``<out_dir>/<method>`` (None = undefined)."""
    out_dir = Path(out_dir)
    runs = {m: read_run(out_dir / m) for m in methods}
    by_ref = references(list(runs.values()))
    rows = []
    for m in methods:
        run = runs[m]
        s, ref = run.summary, reference_of(run, by_ref)
        local = s.get("final_local_acc") or []
        local_mean = agent_mean(local)
        rows.append({
            "method": m, "mean_acc": s["mean_acc"], "max_acc": s["max_acc"],
            "rho": rho_of(run, by_ref)[0], "rho_r": s["rho_r"],
            "local_mean": local_mean, "local_max": agent_max(local),
            "rho_local": rho(ref.summary["final_acc"], local) if ref is not None and local_mean is not None else None,
            "overhead_ratio": s["overhead_ratio"], "mechanism_s": s["mechanism_s"],
            "bytes_down": s["bytes_down"], "bytes_down_dense": s["bytes_down_dense"], "bytes_up": s["bytes_up"],
            "wall_s": s["wall_s"],
        })
    return rows


def _cell(key: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return UNDEFINED
    if key in ("mean_acc", "max_acc", "local_mean", "local_max"):
        return f"{100 * v:.1f}"
    if key in ("rho", "rho_r", "rho_local"):
        return f"{v:.1f}"
    if key == "overhead_ratio":
        return f"{v:.4f}"
    if key in ("mechanism_s", "wall_s"):
        return f"{v:.2f}"
    if key.startswith("bytes"):
        return f"{int(v):,}"
    return str(v)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] * len(COLUMNS)) + "|"]
    lines += ["| " + " | ".join(_cell(k, r[k]) for k in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def write_outputs(out_dir: str | Path, rows: list[dict[str, Any]], header: str) -> str:
    """Write compare.md (header + table + legend) and compare.csv; returns the markdown."""
    out_dir = Path(out_dir)
    legend = ("Accuracies in %, over agents. mean_acc/max_acc/rho: each agent's model after its final reward "
              "(test_acc); local_*: its model after its own local training in the final round (local_acc, the "
              "convention of the paper's FedAvg and q-FFL rows). rho = 100 pearson(standalone, final accuracies), "
              "rho_r = 100 pearson(r, final accuracies); 'undefined' = zero variance or no reference, never 0. "
              "overhead_ratio = mechanism_s / train_s; bytes summed over rounds and agents, headers included.")
    text = f"{header}\n\n{markdown(rows)}\n\n{legend}\n"
    (out_dir / "compare.md").write_text(text)
    with open(out_dir / "compare.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: UNDEFINED if r[k] is None else r[k] for k in COLUMNS})
    return text


def finished(cfg: Config) -> bool:
    """Whether cfg's run folder holds a finished run of this config (the sweep's check)."""
    return finished_status(cfg)[0] == "complete"


def compare(config: str | None, methods: list[str], out_dir: str, overrides: list[str],
            launcher: str = "local", reuse: bool = False,
            command: list[str] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run every method (standalone first) and tabulate; returns (rows, per-method run results).
    ``command`` is the command line recorded in sweep.json and compare.md (default: the equivalent one).

    The runs go through a ``Sweep`` (its launchers, manifest and finished-run check); without
    ``reuse`` every method runs again. Raises RuntimeError when a run failed or is in conflict.
    """
    runs = plan_runs(config, methods, out_dir, overrides)
    if command is None:
        command = ["python", "-m", "fedfair", "compare", *(["--config", config] if config else []),
                   "--methods", ",".join(methods), *overrides]
    spec = {"configs": [config], "methods": [r.name for r in runs], "fixed": overrides, "out_dir": out_dir}
    sweep = Sweep(runs, Path(out_dir), launcher, command, spec,
                  TIMEOUT_S, prog="fedfair.compare", log=sys.stderr)
    if sweep.run(skip_finished=reuse) != 0:
        bad = sweep.counts().bad
        raise RuntimeError(f"no table written: {', '.join(f'{r.name} ({r.status})' for r in bad)}; the reasons are "
                           f"above and in {Path(out_dir) / MANIFEST}")
    rows = table_rows(out_dir, [r.name for r in runs])
    reused = [r.name for r in runs if r.status == "complete"]
    c = runs[0].cfg
    split = c.data.agent_files if c.data.dataset == "files" else c.data.partition.upper()  # the parties' own files
    header = (f"fedfair.compare: {c.data.dataset}, {c.data.agents} agents, {split}, "
              f"{c.run.rounds} rounds, seed {c.run.seed}, Gamma {c.mechanism.grad_norm:g}, "
              f"beta {c.mechanism.beta:g}, standalone step {c.mechanism.standalone.step}, "
              f"val_size {c.data.val_size}, launcher {launcher}"
              f"{'; reused earlier runs: ' + ', '.join(reused) if reused else ''}\n\n"
              f"command: {' '.join(command)}")
    write_outputs(out_dir, rows, header)
    return rows, {r.name: r.result for r in runs}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fedfair compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--config", default=None, help="TOML config file (default: built-in defaults)")
    p.add_argument("--methods", default=",".join(m.name for m in sorted(METHODS, key=lambda m: m.order)),
                   help="comma-separated methods (standalone always runs first)")
    p.add_argument("--out-dir", default=None,
                   help="folder for all runs and the table (default: <run.out_dir>/compare-<config name>)")
    p.add_argument("--launcher", choices=("local", "torchrun"), default="local")
    p.add_argument("--reuse", action="store_true", help="skip methods whose identical run already finished")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides applied to every run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        base = load_config(args.config, args.overrides)
        stem = Path(args.config).stem if args.config else "defaults"
        out_dir = args.out_dir or str(Path(base.run.out_dir) / f"compare-{stem}")
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        plan_runs(args.config, methods, out_dir, args.overrides)  # validate everything before the first run
    except (ConfigError, ValueError, OSError) as e:
        print(f"fedfair: error: {e}", file=sys.stderr)
        return 2
    with sigterm_interrupts():
        try:
            compare(args.config, methods, out_dir, args.overrides, args.launcher, args.reuse,
                    command=["python", "-m", "fedfair", "compare", *argv])
        except KeyboardInterrupt:
            print("fedfair.compare: interrupted; re-run with --reuse to resume", file=sys.stderr)
            return 130
        except RuntimeError as e:
            print(f"fedfair.compare: error: {e}", file=sys.stderr)
            return 1
    print((Path(out_dir) / "compare.md").read_text(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
