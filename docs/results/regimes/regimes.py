"""The training-regime ablation's table and figures: what each regime does to CGSV's fairness.

Reads run folders (each with config.toml, summary.json, agents.csv) below the given paths
(``fedfair.experiments.runs.find_runs``; ρ by ``fedfair.experiments.reference.rho``),
pairs every CGSV run with the Standalone run of the same data, training, seed and step
(``reference_key``), and writes, per setting:

- ``regimes.md`` / ``regimes.csv``: one row per CGSV run with the regime (local lr and decay),
  the aggregation (normaliser, ε, Γ schedule), precision and CLA pool, the final accuracy of
  every agent, the server's, the final r and its order, ρ, ρ_r, Kendall's τ between r and the
  agents' contribution order, and individual rationality: the best (most-contributing) agent's
  accuracy minus its standalone accuracy, and the worst such gap over all agents;
- ``rounds.md`` / ``rounds.csv``: the same measures at every evaluated round (server accuracy, τ,
  the best and the worst agent against its standalone accuracy at that round), because several
  regimes are fair at round 100 and not at round 200;
- ``fig_r_<setting>.png``: r over rounds per agent, one panel per run;
- ``fig_norms_<setting>_<regime>_<aggregation>_s<seed>.png``, for CGSV runs whose agents.csv has
  ``upload_norm``: ‖Δw_i‖, ψ_i and r_i over rounds.

Contribution order (what "r ordered by contribution" means): on CLA agent i owns c_i classes and
c grows with i, so the order is the agent index; with label noise it is the clean share, 1 − p_i.

Usage (from the repository root, fedfair installed):
    python docs/results/regimes/regimes.py logs/regimes --out docs/results/regimes
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from regimes_figures import norm_figure, r_figure  # the sibling module (this folder is the script's sys.path[0])

from fedfair.experiments.reference import rho
from fedfair.experiments.runs import find_runs
from fedfair.methods import ACCURACY_REFERENCE, REFERENCE
from fedfair.metrics import kendall_tau

AGG_LABELS = {("rescale", "eps"): "rescale ε=1e-7", ("rescale", "exact"): "rescale ε=0",
              ("rescale", "decay"): "rescale ε=0, Γ decay", ("clip", ""): "clip at Γ", ("none", ""): "none (raw)"}


def load_runs(paths: list[Path]) -> pd.DataFrame:
    """One row per finished run: its config fields, summary and final r."""
    rows = []
    for run in find_runs([p for p in paths if p.exists()]):
        d, s, cfg = run.path, run.summary, run.config
        m, t, data = cfg["mechanism"], cfg["train"], cfg["data"]
        rows.append({
            "run": d.name, "dir": str(d), "setting": d.parent.name, "method": s["method"],
            "partition": data["partition"], "agents": data["agents"], "seed": s["seed"],
            "label_noise": data.get("label_noise", []), "lr": t["lr"], "lr_decay": t["lr_decay"],
            "dtype": t.get("dtype", "float32"), "cla_pool": data.get("cla_pool", "full"),
            "image_pad": data.get("image_pad", "model"), "normalize": m.get("normalize", "rescale"),
            "eps": m.get("eps", 1e-7), "grad_norm_decay": m.get("grad_norm_decay", 1.0),
            "final_acc": s["final_acc"], "server_acc": s.get("server_acc"), "final_r": s["final_r"],
            "rho": s.get("rho"), "rho_r": s.get("rho_r"), "reference_key": s["reference_key"],
            "wall_s": s.get("wall_s"), "rounds": s["rounds"]})
    runs = pd.DataFrame(rows)
    if runs.empty:
        return runs
    runs["aggregation"] = runs.apply(aggregation, axis=1)
    # the same run folder kept in two places (logs/ and a committed copy) counts once
    return runs.drop_duplicates(["setting", "run"]).reset_index(drop=True)


def aggregation(row: pd.Series) -> str:
    if row["normalize"] != "rescale":
        return AGG_LABELS[(row["normalize"], "")]
    if row["grad_norm_decay"] < 1:
        return AGG_LABELS[("rescale", "decay")]
    return AGG_LABELS[("rescale", "exact" if row["eps"] == 0 else "eps")]


def contribution(row: pd.Series) -> list[float]:
    """Each agent's contribution rank key: clean-label share with noise, else the agent index (CLA)."""
    n = row["agents"]
    noise = list(row["label_noise"]) + [0.0] * (n - len(row["label_noise"]))
    if any(noise):
        return [1.0 - p for p in noise]
    return [float(i) for i in range(1, n + 1)]


def standalone_by_key(runs: pd.DataFrame) -> pd.DataFrame:
    """The Standalone runs indexed by reference_key: each CGSV run's fairness reference."""
    return runs[runs["method"] == REFERENCE].drop_duplicates("reference_key").set_index("reference_key")


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """CGSV runs with their standalone reference and the fairness measures."""
    alone = standalone_by_key(runs)
    # FedAvg averages raw updates, so the aggregation settings do not apply: match on data and training
    match = ["setting", "seed", "lr", "lr_decay", "dtype", "cla_pool"]
    fedavg = {tuple(r[k] for k in match): r["server_acc"]
              for _, r in runs[runs["method"] == ACCURACY_REFERENCE].iterrows()}
    out = []
    for _, row in runs[runs["method"] == "cgsv"].iterrows():
        ref = alone["final_acc"].get(row["reference_key"])
        fedavg_acc = fedavg.get(tuple(row[k] for k in match))
        contrib = contribution(row)
        best = int(np.argmax(contrib))
        gaps = None if ref is None else [a - b for a, b in zip(row["final_acc"], ref)]
        out.append({
            "setting": row["setting"], "seed": row["seed"], "lr": row["lr"], "lr_decay": row["lr_decay"],
            "aggregation": row["aggregation"], "dtype": row["dtype"], "cla_pool": row["cla_pool"],
            "acc": " / ".join(f"{100 * a:.1f}" for a in row["final_acc"]),
            "mean_acc": 100 * float(np.mean(row["final_acc"])), "server_acc": 100 * row["server_acc"],
            "fedavg_server": None if fedavg_acc is None else 100 * fedavg_acc,
            "standalone": None if ref is None else " / ".join(f"{100 * a:.1f}" for a in ref),
            "r": " / ".join(f"{x:.3f}" for x in row["final_r"]),
            "r_order": "<".join(str(i + 1) for i in np.argsort(row["final_r"], kind="stable")),
            "tau_r": kendall_tau(row["final_r"], contrib),
            "rho": None if ref is None else rho(ref, row["final_acc"]),
            "rho_r": row["rho_r"],
            "best_gain": None if gaps is None else 100 * gaps[best],
            "worst_gain": None if gaps is None else 100 * min(gaps),
            "wall_s": row["wall_s"], "run": row["run"]})
    cols = ["setting", "lr", "aggregation", "dtype", "cla_pool", "seed"]
    return pd.DataFrame(out).sort_values(cols).reset_index(drop=True) if out else pd.DataFrame(out)


SEED_COLUMNS = {"server_acc": ("server", 1), "fedavg_server": ("FedAvg server", 1), "mean_acc": ("mean acc", 1),
                "tau_r": ("τ(r, contrib.)", 2), "rho": ("ρ", 1), "rho_r": ("ρ_r", 1),
                "best_gain": ("best agent vs alone", 1), "worst_gain": ("worst agent vs alone", 1)}


def over_seeds(t: pd.DataFrame) -> pd.DataFrame:
    """Configurations run with more than one seed: mean and sample sd (n − 1) of each measure over the
    seeds, and every seed's r order, so a conclusion can be read against seed-to-seed spread."""
    keys = ["setting", "lr", "lr_decay", "aggregation", "dtype", "cla_pool"]
    out = []
    for key, g in t.groupby(keys, sort=False):
        if g["seed"].nunique() < 2:
            continue
        g = g.sort_values("seed")
        row = dict(zip(keys, key), seeds=",".join(str(x) for x in g["seed"]), r_orders=" ; ".join(g["r_order"]))
        for col in SEED_COLUMNS:
            v = pd.to_numeric(g[col], errors="coerce").dropna()
            row[col], row[col + "_sd"], row[col + "_n"] = (
                (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)) if len(v) else
                (math.nan, math.nan, 0))
        out.append(row)
    return pd.DataFrame(out)


def seeds_markdown(s: pd.DataFrame) -> str:
    """``over_seeds`` as a table: mean ± sd (n seeds when fewer than all had the measure)."""
    if s.empty:
        return ""
    head = "| setting | lr (decay) | aggregation | dtype | pool | seeds | " + " | ".join(
        name for name, _ in SEED_COLUMNS.values()) + " | r order per seed |"
    lines = ["## Over seeds (mean ± sample sd)", "", head, "|" + "---|" * (7 + len(SEED_COLUMNS))]
    n_seeds = s["seeds"].str.count(",") + 1
    for (_, r), n in zip(s.iterrows(), n_seeds):
        cells = []
        for col, (_, digits) in SEED_COLUMNS.items():
            m, sd, k = r[col], r[col + "_sd"], r[col + "_n"]
            cell = "–" if k == 0 else f"{m:.{digits}f}" + ("" if k < 2 else f" ± {sd:.{digits}f}")
            cells.append(cell + ("" if k in (0, n) else f" (n={k})"))
        lines.append(f"| {r['setting']} | {r['lr']:g} ({r['lr_decay']:g}) | {r['aggregation']} | {r['dtype']} | "
                     f"{r['cla_pool']} | {r['seeds']} | " + " | ".join(cells) + f" | {r['r_orders']} |")
    return "\n".join(lines) + "\n"


def fmt(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _per_setting(df: pd.DataFrame, head: str, cells: Callable[[pd.Series], list[str]]) -> str:
    """One markdown table per setting: the head row, then ``cells(row)`` for each run in it."""
    lines = []
    for setting, group in df.groupby("setting", sort=False):
        lines += [f"### {setting}", "", head, "|" + "---|" * (head.count("|") - 1)]
        lines += ["| " + " | ".join(cells(r)) + " |" for _, r in group.iterrows()]
        lines.append("")
    return "\n".join(lines)


def _regime_cells(r: pd.Series) -> list[str]:
    return [f"{r['lr']:g} ({r['lr_decay']:g})", r["aggregation"], r["dtype"], r["cla_pool"], str(r["seed"])]


def markdown(t: pd.DataFrame) -> str:
    head = ("| lr (decay) | aggregation | dtype | pool | seed | CGSV acc per agent | server | FedAvg server "
            "| standalone | final r | r order | τ(r, contrib.) | ρ | ρ_r | best agent vs alone "
            "| worst agent vs alone |")
    return _per_setting(t, head, lambda r: _regime_cells(r) + [
        r["acc"], fmt(r["server_acc"]), fmt(r["fedavg_server"]), fmt(r["standalone"]), r["r"], r["r_order"],
        fmt(r["tau_r"], 2), fmt(r["rho"]), fmt(r["rho_r"]), fmt(r["best_gain"]), fmt(r["worst_gain"])])


def _evaluated(run_dir: Path) -> pd.DataFrame | None:
    """agents.csv rows of the evaluated rounds (test_acc logged), or None if it has no test_acc."""
    agents = pd.read_csv(run_dir / "agents.csv")
    if "test_acc" not in agents.columns:
        return None
    return agents[agents["test_acc"].notna()].sort_values(["round", "agent"])


def eval_rounds(runs: pd.DataFrame) -> pd.DataFrame:
    """Per CGSV run and evaluated round: server accuracy, mean agent accuracy, τ of r at that round
    and the best and worst agent against its standalone run's accuracy at the same round."""
    alone = standalone_by_key(runs)["dir"]
    out = []
    for _, row in runs[runs["method"] == "cgsv"].iterrows():
        ev = _evaluated(Path(row["dir"]))
        if ev is None:
            continue
        ref_dir = alone.get(row["reference_key"])
        ref = None if ref_dir is None else _evaluated(Path(ref_dir))
        server_csv = Path(row["dir"]) / "server.csv"
        server = pd.read_csv(server_csv).set_index("round")["test_acc"] if server_csv.is_file() else None
        contrib = contribution(row)
        best = int(np.argmax(contrib))
        for t, g in ev.groupby("round"):
            acc = g["test_acc"].tolist()
            alone_acc = None if ref is None else ref.loc[ref["round"] == t, "test_acc"].tolist()
            gaps = [a - b for a, b in zip(acc, alone_acc)] if alone_acc and len(alone_acc) == len(acc) else None
            s_acc = None if server is None or t not in server.index else server.loc[t]
            out.append({
                "setting": row["setting"], "lr": row["lr"], "lr_decay": row["lr_decay"],
                "aggregation": row["aggregation"],
                "dtype": row["dtype"], "cla_pool": row["cla_pool"], "seed": row["seed"], "round": int(t),
                "server_acc": None if s_acc is None or pd.isna(s_acc) else 100 * float(s_acc),
                "mean_acc": 100 * float(np.mean(acc)), "tau_r": kendall_tau(g["r"].tolist(), contrib),
                "best_gain": None if gaps is None else 100 * gaps[best],
                "worst_gain": None if gaps is None else 100 * min(gaps), "run": row["run"]})
    cols = ["setting", "lr", "aggregation", "dtype", "cla_pool", "seed", "round"]
    return pd.DataFrame(out).sort_values(cols).reset_index(drop=True) if out else pd.DataFrame(out)


def rounds_markdown(e: pd.DataFrame) -> str:
    """``eval_rounds`` as one table per setting."""
    head = ("| lr (decay) | aggregation | dtype | pool | seed | round | server | mean acc | τ(r, contrib.) | "
            "best agent vs alone | worst agent vs alone |")
    return _per_setting(e, head, lambda r: _regime_cells(r) + [
        str(r["round"]), fmt(r["server_acc"]), fmt(r["mean_acc"]), fmt(r["tau_r"], 2), fmt(r["best_gain"]),
        fmt(r["worst_gain"])])


TABLE_KEYS = ["setting", "seed", "lr", "lr_decay", "aggregation", "dtype", "cla_pool"]


def _not_at_hand(committed: pd.DataFrame, at_hand: pd.DataFrame) -> pd.DataFrame:
    """The committed rows whose run (setting and run name) is not among the rows at hand."""
    if at_hand.empty:
        return committed
    key = ["setting", "run"]
    return committed[~committed.set_index(key).index.isin(at_hand.set_index(key).index)]


def with_committed(t: pd.DataFrame, runs: pd.DataFrame, committed: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``t`` plus the rows of an earlier, committed table whose run folders are gone (logs/ is not
    committed). A run at hand replaces its committed row (same setting and run name). A committed row
    without a standalone reference gets one from a Standalone run at hand of the same setting, seed,
    training, aggregation, precision and pool; ρ and the gains are then computed from the committed
    accuracies, which are rounded to 0.1 point. Returns the merged table and the filled rows' run names."""
    committed = _not_at_hand(committed, t)
    alone = {tuple(r[k] for k in TABLE_KEYS): r for _, r in runs[runs["method"] == REFERENCE].iterrows()}
    rows, filled = [], []
    for _, row in committed.iterrows():
        row = row.copy()
        ref = alone.get(tuple(row[k] for k in TABLE_KEYS))
        if pd.isna(row["standalone"]) and ref is not None:
            acc = [float(x) / 100 for x in row["acc"].split(" / ")]
            gaps = [a - b for a, b in zip(acc, ref["final_acc"])]
            best = int(np.argmax(contribution(ref)))
            row["standalone"] = " / ".join(f"{100 * a:.1f}" for a in ref["final_acc"])
            row["rho"] = rho(ref["final_acc"], acc)
            row["best_gain"], row["worst_gain"] = 100 * gaps[best], 100 * min(gaps)
            filled.append(row["run"])
        rows.append(row)
    merged = pd.concat([pd.DataFrame(rows), t], ignore_index=True) if rows else t
    cols = ["setting", "lr", "aggregation", "dtype", "cla_pool", "seed"]
    return merged.sort_values(cols).reset_index(drop=True), filled


def rounds_with_committed(e: pd.DataFrame, committed: pd.DataFrame) -> pd.DataFrame:
    """``eval_rounds`` plus an earlier table's rounds of runs not at hand (a run at hand replaces them)."""
    committed = _not_at_hand(committed, e)
    cols = ["setting", "lr", "aggregation", "dtype", "cla_pool", "seed", "round"]
    return pd.concat([committed, e], ignore_index=True).sort_values(cols).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python docs/results/regimes/regimes.py", description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=Path, help="folders holding run folders (searched recursively)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--committed", type=Path, help="a folder with an earlier regimes.csv (and rounds.csv) whose "
                   "run folders are gone: its rows are kept, runs at hand replace or complete them")
    args = p.parse_args(argv)
    runs = load_runs(args.paths)
    if runs.empty:
        print(f"no finished runs below {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    t, filled, source, committed_e = table(runs), [], f"{len(runs)} runs", pd.DataFrame()
    if args.committed is not None:
        committed_csv = args.committed / "regimes.csv"
        if not committed_csv.is_file():
            print(f"--committed: no regimes.csv in {args.committed}", file=sys.stderr)
            return 2
        committed = pd.read_csv(committed_csv)
        t, filled = with_committed(t, runs, committed)
        source = f"{len(runs)} run folders and the rows of {committed_csv} whose folders are not at hand"
        committed_rounds = args.committed / "rounds.csv"
        committed_e = pd.read_csv(committed_rounds) if committed_rounds.is_file() else pd.DataFrame()
    if t.empty:
        print(f"no finished CGSV runs below {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    t.to_csv(args.out / "regimes.csv", index=False)
    command = "python docs/results/regimes/regimes.py " + " ".join(map(str, args.paths)) + (
        "" if args.committed is None else f" --committed {args.committed}") + f" --out {args.out}"
    note = "" if not filled else (
        "Standalone references added after the CGSV run's folder was gone (ρ and gains from its accuracies as "
        "committed, rounded to 0.1 point): " + ", ".join(f"`{name}`" for name in filled) + ".\n")
    (args.out / "regimes.md").write_text(
        f"# Training-regime ablation: the table\n\nGenerated by `{command}` from {source}.\n"
        "Accuracies in %; gains = CGSV accuracy minus the same agent's standalone accuracy (points); "
        "τ = Kendall's τ between final r and the contribution order (1 = r ordered by contribution).\n"
        + note + "\n" + seeds_markdown(over_seeds(t)) + "\n" + markdown(t))
    e = eval_rounds(runs)
    if not committed_e.empty:
        e = rounds_with_committed(e, committed_e)
    if not e.empty:
        e.to_csv(args.out / "rounds.csv", index=False)
        (args.out / "rounds.md").write_text(
            f"# Training-regime ablation: every evaluated round\n\nGenerated by `{command}`.\n"
            "Per CGSV run and evaluated round: server accuracy, mean agent accuracy, Kendall's τ between r at "
            "that round and the contribution order, and the best (most-contributing) and the worst agent's "
            "accuracy minus its standalone run's accuracy at the same round (points).\n\n" + rounds_markdown(e))
    for setting in sorted(runs["setting"].unique()):  # with --committed, a figure of the runs at hand only
        r_figure(runs, setting, args.out / f"fig_r_{setting}{'' if args.committed is None else '_added'}.png")
    for _, run in runs[runs["method"] == "cgsv"].iterrows():
        agg = "".join(c for c in run["aggregation"].replace("ε=", "eps").replace(",", "-").replace("Γ", "G")
                      if c.isalnum() or c in ".-")
        extra = ("" if run["dtype"] == "float32" else f"_{run['dtype']}") + (
            "" if run["cla_pool"] == "full" else f"_{run['cla_pool']}")  # so such runs do not overwrite each other
        norm_figure(run, args.out / f"fig_norms_{run['setting']}_lr{run['lr']:g}_{agg}_s{run['seed']}{extra}.png")
    print(f"wrote {args.out / 'regimes.md'} ({len(t)} CGSV runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
