"""Tables and figures in the paper's layout from run folders: ``python -m fedfair report``.

    python -m fedfair report LOGDIR... [--out DIR] [--fig1 CSV] [--title TEXT] [--no-figures]

Each LOGDIR is a run folder (it holds summary.json) or a folder searched recursively for them
(e.g. a sweep's --out-dir). Writes to --out (default: the first LOGDIR):

- ``report.md``: per setting (dataset, agents, rounds) the paper's Table 1 (mean (max) final
  accuracy, %), the same with ``local_acc``, Table 2 (ρ), Tables 7/8 (ρ of r with accuracy and
  with −training loss), Table 3 (mechanism time and its ratio to local training time), bytes
  downloaded, a list of the runs, and the figures.
- CSV files, one per table in long form (``table1_accuracy.csv``, ...), and ``runs.csv``.
- PNG figures with matplotlib (skipped with a notice when it is not installed): r_i, reward
  density and distance to the server over rounds, final accuracy per agent per method, final
  training loss per agent against β, and Fig. 1 (ψ vs exact CGSV) from the benchmark's CSV.

Accuracy: ``test_acc`` is the agent's model after its last reward (the fairness outcome, used
by every table unless named otherwise); ``local_acc`` is its model right after local training
in the last round, before upload (what the paper's FedAvg rows show). Values are means over
seeds; ρ that is undefined (zero variance on a side) shows as "undefined", never 0.
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...methods import REFERENCE
from ...metrics import num
from ..reference import NO_REFERENCE, UNDEFINED, References, references, rho_of
from ..runs import Run, find_runs
from .fig1 import fig1_table, fig1_variant, plot_fig1, read_fig1
from .figures import make_figures
from .runs import MISSING, Grid, grids, local_mean_max
from .tables import build_tables

RUN_FIELDS = ("method", "beta", "dataset", "partition", "agents", "rounds", "seed", "mean_acc", "max_acc",
              "server_acc", "rho", "rho_available", "rho_r", "rho_r_loss", "rho_r_cgsv", "rho_r_loss_cgsv",
              "mechanism_s", "train_s",
              "overhead_ratio", "bytes_up", "bytes_down", "bytes_down_dense", "wall_s")
ACCURACY_TEXT = ("Accuracy: every table uses `test_acc` (each agent's model after its last reward: the fairness "
                 "outcome) except the `local_acc` variant of Table 1 (each agent's model after local training in "
                 "the final round, before upload: what the paper's FedAvg rows show). Values are means over seeds "
                 "(± sd when several seeds); ρ values are ×100. Undefined ρ (zero variance) is shown as "
                 "`undefined`, never 0.")
FIG1_TEXT = ("(benchmarks/fig1_psi_vs_exact.py; {variant}): normalised ℓ1/ℓ2 distance between ψ (and, where "
             "recorded, permutation sampling at ψ's budget of coalition evaluations) and the exact CGSV φ (each "
             "normalised to sum 1), and the time of one valuation, mean over trials.")


@dataclass
class Written:
    """What a report wrote (and the notes it gathered), for the caller to list."""
    markdown: Path
    csv: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    """Long-form records; the columns are every key in order of first appearance."""
    cols = list(dict.fromkeys(k for r in records for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in records:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})


def computed_rho_notes(runs: list[Run], by_ref: References) -> list[str]:
    """Runs whose ρ the report computed itself (they finished before their standalone run)."""
    return [f"{r.name}: rho computed by the report from standalone run "
            f"{by_ref[r.summary['reference_key']].name} (the run finished before it)"
            for r in runs if not r.summary.get("rho_available") and r.method != REFERENCE
            and rho_of(r, by_ref)[1] != NO_REFERENCE]


def run_records(runs: list[Run], by_ref: References) -> list[dict[str, Any]]:
    """runs.csv: one record per run, in table order."""
    records = []
    for r in sorted(runs, key=Run.sort_key):
        rho, state = rho_of(r, by_ref) if r.method != REFERENCE else (num(r.summary.get("rho")), "ok")
        rec = {"run": r.name, "path": str(r.path), "label": r.row.label, **{k: r.summary.get(k) for k in RUN_FIELDS}}
        rec["rho"], rec["rho_state"] = rho, state if rho is None else "ok"
        rec["mean_local_acc"], rec["max_local_acc"] = local_mean_max(r)
        records.append(rec)
    return records


def _fmt(x: Any, digits: int = 2, state: str = UNDEFINED) -> str:
    return state if num(x) is None else f"{float(x):.{digits}f}"


def runs_section(records: list[dict[str, Any]]) -> list[str]:
    md = ["## Runs", "", "| run | method | partition | seed | mean acc | max acc | rho | rho_r | wall s |",
          "|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {rec['run']} | {rec['label']} | {rec['partition']} | {rec['seed']} | {_fmt(rec['mean_acc'], 4)} | "
           f"{_fmt(rec['max_acc'], 4)} | {_fmt(rec['rho'], 2, rec['rho_state'])} | {_fmt(rec['rho_r'])} | "
           f"{_fmt(rec['wall_s'], 1, MISSING)} |" for rec in records]
    return md + [""]


def setting_section(grid: Grid, by_ref: References, out: Path, can_plot: bool, tables: dict[str, list],
                    written: Written) -> list[str]:
    """One setting's tables (their records gathered into ``tables``) and figures, as markdown lines."""
    s = grid.setting
    md = [f"## {s.dataset}, {s.agents} agents, {s.rounds} rounds (seeds: {', '.join(map(str, grid.seeds))})", ""]
    for t in build_tables(grid, by_ref):
        md += [t.markdown(), ""]
        tables.setdefault(t.key, []).extend(t.records)
    if not can_plot:
        return md
    try:
        figs = make_figures(grid, out, written.notes)
    except Exception as e:  # a figure must never cost the tables
        written.notes.append(f"figures for {s.dataset} {s.agents} agents failed: {type(e).__name__}: {e}")
        figs = []
    if figs:
        md += ["**Figures** (lowest seed of each cell)", ""]
        for caption, name in figs:
            md += [f"![{caption}]({name})", "", f"*{caption}*", ""]
            written.figures.append(out / name)
    return md


def fig1_section(path: Path, out: Path, can_plot: bool, written: Written) -> list[str]:
    rows = read_fig1(path)
    md = ["## Fig. 1: ψ against the exact CGSV", "", f"From `{path}` " + FIG1_TEXT.format(variant=fig1_variant(rows)),
          "", fig1_table(rows), ""]
    if can_plot:
        plot_fig1(rows, out / "fig1_psi_vs_exact.png")
        md += ["![Fig. 1: ψ vs exact CGSV](fig1_psi_vs_exact.png)", ""]
        written.figures.append(out / "fig1_psi_vs_exact.png")
    return md


def report(paths: list[Path], out: Path, fig1: Path | None = None, title: str | None = None,
           figures: bool = True, command: list[str] | None = None) -> Written:
    """Write report.md, the CSV tables and the figures to ``out``; returns what was written."""
    written = Written(out / "report.md")
    notes = written.notes
    runs = find_runs(paths, notes)
    if not runs:
        raise FileNotFoundError(f"no finished runs (summary.json) under {', '.join(map(str, paths))}")
    out.mkdir(parents=True, exist_ok=True)
    by_ref = references(runs)
    sections = grids(runs, notes)
    notes += computed_rho_notes(runs, by_ref)
    can_plot = figures and have_matplotlib()
    if figures and not can_plot:
        msg = "figures skipped: matplotlib is not installed (pip install matplotlib, or fedfair[plot])"
        print(f"fedfair.report: {msg}", file=sys.stderr)
        notes.append(msg)

    md: list[str] = [f"# {title or 'fedfair results'}", ""]
    if command:
        md += ["Generated by:", "", "```", " ".join(command), "```", ""]
    md += [f"{len(runs)} runs from {', '.join(f'`{p}`' for p in paths)}.", "", ACCURACY_TEXT, ""]
    tables: dict[str, list[dict[str, Any]]] = {}
    for grid in sections:
        md += setting_section(grid, by_ref, out, can_plot, tables, written)
    if fig1 is not None:
        md += fig1_section(fig1, out, can_plot, written)
    records = run_records(runs, by_ref)
    md += runs_section(records)
    if notes:
        md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]

    (out / "report.md").write_text("\n".join(md))
    write_csv(out / "runs.csv", records)
    written.csv.append(out / "runs.csv")
    for key, table_records in tables.items():
        write_csv(out / f"{key}.csv", table_records)
        written.csv.append(out / f"{key}.csv")
    return written


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m fedfair report", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("logdirs", nargs="+", type=Path, help="run folders, or folders holding run folders")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the first LOGDIR)")
    p.add_argument("--fig1", type=Path, default=None, help="CSV written by benchmarks/fig1_psi_vs_exact.py")
    p.add_argument("--title", default=None, help="title of report.md")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    args = p.parse_args(argv)
    out = args.out or args.logdirs[0]
    try:
        written = report(args.logdirs, out, fig1=args.fig1, title=args.title, figures=not args.no_figures,
                         command=["python", "-m", "fedfair", "report", *argv])
    except FileNotFoundError as e:
        print(f"fedfair.report: error: {e}", file=sys.stderr)
        return 2
    print(f"fedfair.report: wrote {written.markdown}, {len(written.csv)} CSV files and "
          f"{len(written.figures)} figures to {out}")
    return 0
