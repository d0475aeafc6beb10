"""Compare reward methods side by side: ``python -m fedfair.compare``.

    python -m fedfair.compare --config configs/default.toml \\
        --methods standalone,fedavg,dw,eu,rr,qffl,cffl,eci,cgsv [--out-dir DIR] \\
        [--launcher local|torchrun] [--reuse] [section.key=value ...]

Runs the standalone references first, then every other method, on the same data, shards,
seed, training and test set, into one folder (``<out-dir>/<method>/``), so that every later
run's server finds the standalone run and writes ``rho`` into its summary.json. Then prints
the per-method table and writes it to ``<out-dir>/compare.md`` and ``<out-dir>/compare.csv``.

- ``standalone`` is always run first, whether listed or not (it is the fairness reference).
- If any listed method needs a validation set (cffl, eci) and ``data.val_size`` is 0, every
  run (standalone included) holds out the same default slice (10% of the training data, at
  most 1000), so that all methods train on identical shards and share the reference.
- ``--reuse``: a method whose run folder already holds a summary.json and the identical
  resolved config.toml is not run again (resumes an interrupted comparison; its wall time
  and timings are those of the earlier run).
- Launchers: ``local`` (default; ``fedfair.runtime.local.run_local``, every rank a local process) or
  ``torchrun`` (one ``torchrun --standalone`` job per method).
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
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, load_config, to_toml

COLUMNS = ["method", "mean_acc", "max_acc", "rho", "rho_r", "local_mean", "local_max", "rho_local",
           "overhead_ratio", "mechanism_s", "bytes_down", "bytes_down_dense", "bytes_up", "wall_s"]
UNDEFINED = "undefined"


def plan(config: str | None, methods: list[str], out_dir: str, overrides: list[str]) -> list[Config]:
    """One validated config per method, standalone first, all in ``out_dir``, shards aligned."""
    from .strategies import REGISTRY, needs_validation

    unknown = [m for m in methods if m not in REGISTRY]
    if unknown:
        raise ConfigError(f"--methods: unknown method(s) {', '.join(unknown)}; available: {', '.join(REGISTRY)}")
    ordered = ["standalone"] + [m for m in dict.fromkeys(methods) if m != "standalone"]
    base = load_config(config, overrides)
    extra = [f"run.out_dir={out_dir}"]
    if base.data.val_size == 0 and any(needs_validation(m) for m in ordered):
        from .data import load_task
        from .strategies import default_val_size

        task = load_task(base.data.dataset, base.data.data_dir or None, seed=base.run.seed,
                         test_fraction=base.data.test_fraction, image_pad=base.data.image_pad)
        extra.append(f"data.val_size={default_val_size(task.num_train)}")
    return [load_config(config, [*overrides, *extra, f"mechanism.method={m}", f"run.name={m}"]) for m in ordered]


def run_one(cfg: Config, launcher: str = "local") -> list[Any] | None:
    """Run one method to the end; returns run_local's per-rank results (None for torchrun)."""
    if launcher == "local":
        from .runtime.local import run_local

        return run_local(cfg, timeout_s=7 * 24 * 3600.0)
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    conf_dir = Path(cfg.run.out_dir) / "configs"
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / f"{cfg.run.name}.toml"
    path.write_text(to_toml(cfg))
    cmd = [torchrun, "--standalone", "--nproc_per_node", str(cfg.data.agents + 1), "-m", "fedfair.run",
           "--config", str(path)]
    p = subprocess.run(cmd)
    if p.returncode != 0:
        raise RuntimeError(f"{cfg.mechanism.method}: torchrun exited with status {p.returncode} ({' '.join(cmd)})")
    return None


def _mean(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return sum(vals) / len(vals) if vals and len(vals) == len(xs) else None


def table_rows(out_dir: str | Path, methods: list[str]) -> list[dict[str, Any]]:
    """One row per method from ``<out_dir>/<method>/summary.json`` (None = undefined)."""
    from .metrics import pearson100

    out_dir = Path(out_dir)
    summaries = {m: json.loads((out_dir / m / "summary.json").read_text()) for m in methods}
    ref = summaries.get("standalone", {}).get("final_acc")
    rows = []
    for m in methods:
        s = summaries[m]
        local = s.get("final_local_acc") or []
        local_ok = bool(local) and all(x is not None for x in local)
        rows.append({
            "method": m, "mean_acc": s["mean_acc"], "max_acc": s["max_acc"],
            "rho": s["rho"] if s.get("rho_available") else None, "rho_r": s["rho_r"],
            "local_mean": _mean(local) if local_ok else None, "local_max": max(local) if local_ok else None,
            "rho_local": pearson100(ref, local) if ref is not None and local_ok else None,
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
    """Whether cfg's run folder holds a finished run of exactly this resolved config (read back
    through load_config, so a config.toml written before a field existed counts with its default)."""
    d = cfg.run_dir
    try:
        return (d / "summary.json").is_file() and to_toml(load_config(d / "config.toml")) == to_toml(cfg)
    except (OSError, ConfigError):
        return False


def compare(config: str | None, methods: list[str], out_dir: str, overrides: list[str],
            launcher: str = "local", reuse: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run every method (standalone first) and tabulate; returns (rows, per-method run results)."""
    cfgs = plan(config, methods, out_dir, overrides)
    results = {}
    reused = []
    for cfg in cfgs:
        if reuse and finished(cfg):
            print(f"fedfair.compare: reusing the finished run {cfg.run_dir}", file=sys.stderr, flush=True)
            results[cfg.mechanism.method] = None
            reused.append(cfg.mechanism.method)
            continue
        t0 = time.perf_counter()
        print(f"fedfair.compare: running {cfg.mechanism.method} -> {cfg.run_dir}", file=sys.stderr, flush=True)
        results[cfg.mechanism.method] = run_one(cfg, launcher)
        print(f"fedfair.compare: {cfg.mechanism.method} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr,
              flush=True)
    names = [c.mechanism.method for c in cfgs]
    rows = table_rows(out_dir, names)
    c = cfgs[0]
    header = (f"fedfair.compare: {c.data.dataset}, {c.data.agents} agents, {c.data.partition.upper()}, "
              f"{c.run.rounds} rounds, seed {c.run.seed}, Gamma {c.mechanism.grad_norm:g}, "
              f"beta {c.mechanism.beta:g}, standalone_step {c.mechanism.standalone_step}, "
              f"val_size {c.data.val_size}, launcher {launcher}"
              f"{'; reused earlier runs: ' + ', '.join(reused) if reused else ''}\n\n"
              f"command: python -m fedfair.compare {' '.join(sys.argv[1:]) if sys.argv[1:] else ''}".rstrip())
    write_outputs(out_dir, rows, header)
    return rows, results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fedfair.compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--config", default=None, help="TOML config file (default: built-in defaults)")
    p.add_argument("--methods", default="standalone,fedavg,dw,eu,rr,qffl,cffl,eci,cgsv",
                   help="comma-separated methods (standalone always runs first)")
    p.add_argument("--out-dir", default=None,
                   help="folder for all runs and the table (default: <run.out_dir>/compare-<config name>)")
    p.add_argument("--launcher", choices=("local", "torchrun"), default="local")
    p.add_argument("--reuse", action="store_true", help="skip methods whose identical run already finished")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides applied to every run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        base = load_config(args.config, args.overrides)
        stem = Path(args.config).stem if args.config else "defaults"
        out_dir = args.out_dir or str(Path(base.run.out_dir) / f"compare-{stem}")
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        plan(args.config, methods, out_dir, args.overrides)  # validate everything before the first run
    except (ConfigError, ValueError, OSError) as e:
        print(f"fedfair: error: {e}", file=sys.stderr)
        sys.exit(2)
    compare(args.config, methods, out_dir, args.overrides, args.launcher, args.reuse)
    print((Path(out_dir) / "compare.md").read_text(), flush=True)


if __name__ == "__main__":
    main()
