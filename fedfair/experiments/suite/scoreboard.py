"""The suite's scoreboard: scoreboard.csv (every measure of every cell), scoreboard.md (the summary
a reader needs first, then per-scenario detail), tau_over_rounds.png, and rule 5's verdict.

Also ``keep``: a run's records (config.toml, summary.json, agents.csv, server.csv) copied beside
the report, as docs/results/keep_run.sh does, so the scoreboard can be regenerated from them.
"""
from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .measures import FAILURES, SHARE_MAX, CellResult, SuiteRuns, checkpoints, load, write_failures
from .scenarios import BASELINES, COSINE, SCENARIO_BY_NAME, SCENARIOS, VALUATIONS, SuiteError, parse_run_name

RECORDS = ("config.toml", "summary.json", "agents.csv", "server.csv")
MANIFEST = "suite.json"
WALL_LIMIT = 2.0   # rule 5: at most 2x cosine's round time
MISSING = "–"


@dataclass
class Verdict:
    """Rule 5 for one valuation against cosine, on the (scenario, seed) cells both ran."""
    valuation: str
    held: int
    cosine_held: int
    cells: int
    seeds: list[int]
    wall_ratio: float | None

    @property
    def beats(self) -> bool:
        return self.held > self.cosine_held and self.wall_ratio is not None and self.wall_ratio <= WALL_LIMIT


def _f(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def wall_ratio(results: list[CellResult]) -> float | None:
    """Round time over these cells as a ratio to the same runs valuing by cosine (ratio of the sums of
    wall_s and wall_s - valuation_s + cosine_s; see measures.cosine_wall)."""
    pairs = [(c.wall_s, c.cosine_wall_s) for c in results if c.wall_s is not None and c.cosine_wall_s]
    return sum(a for a, _ in pairs) / sum(b for _, b in pairs) if pairs else None


def rule5(results: list[CellResult]) -> list[Verdict]:
    """Each valuation's held cells against cosine's on the (scenario, seed) cells both ran."""
    by = {(c.valuation, c.scenario, c.seed): c for c in results}
    out = []
    for v in VALUATIONS[1:]:
        common = [(sc, seed) for (val, sc, seed) in by if val == v and (COSINE, sc, seed) in by]
        if not common:
            continue
        mine = [by[(v, sc, seed)] for sc, seed in common]
        cosine_held = sum(bool(by[(COSINE, sc, seed)].holds) for sc, seed in common)
        out.append(Verdict(v, sum(bool(c.holds) for c in mine), cosine_held, len(common),
                           sorted({seed for _, seed in common}), wall_ratio([c for c in mine if c.status == "ok"])))
    return out


# ------------------------------------------------------------------ scoreboard.csv


def columns(rounds: int) -> list[str]:
    a, b, c = checkpoints(rounds)
    ratio_names = [r.name for s in SCENARIOS for r in s.ratios]
    return (["scenario", "valuation", "seed", "run", "status", "error", "rounds", f"tau{a}", f"tau{b}", f"tau{c}",
             "worst_gain", "server_gap", "rho", f"adv_r{a}", f"adv_r{b}", f"adv_r{c}", "adv_share",
             f"spread{b}", f"spread{c}"]
            + ratio_names + ["valuation_time_ratio", "round_time_ratio", "wall_ratio", "wall_s_per_round", "holds",
                             "failed"])


def csv_row(c: CellResult, rounds: int) -> dict[str, Any]:
    pts = checkpoints(rounds)
    row: dict[str, Any] = {"scenario": c.scenario, "valuation": c.valuation, "seed": c.seed, "run": c.run,
                           "status": c.status, "error": c.error, "rounds": c.rounds or ""}
    for t in pts:
        row[f"tau{t}"] = _g(c.tau.get(t))
        adv = c.adversary_r.get(t)
        row[f"adv_r{t}"] = " ".join(f"{x:.6g}" for x in adv) if adv else ""
    row["adv_share"] = " ".join(f"{x:.6g}" for x in c.adversary_share) if c.adversary_share else ""
    for t in pts[1:]:
        row[f"spread{t}"] = _g(c.spread.get(t))
    row.update({k: _g(v) for k, v in c.ratios.items()})
    row.update({"worst_gain": _g(c.worst_gain), "server_gap": _g(c.server_gap), "rho": _g(c.rho),
                "valuation_time_ratio": _g(c.valuation_time_ratio), "round_time_ratio": _g(c.round_time_ratio),
                "wall_ratio": _g(c.wall_ratio),
                "wall_s_per_round": _g(c.wall_per_round),
                "holds": "" if c.holds is None else str(c.holds).lower(), "failed": " ".join(c.failed)})
    return row


def _g(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def write_csv(path: Path, results: list[CellResult], rounds: int) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns(rounds))
        w.writeheader()
        for c in results:
            w.writerow(csv_row(c, rounds))


# ------------------------------------------------------------------ scoreboard.md


def settings_line(loaded: SuiteRuns, seeds_by_valuation: dict[str, list[int]]) -> str:
    """Data set, model, rounds, precision, data pool and seeds, from the runs' own config.toml."""
    cfgs = [r.config for r in loaded.runs.values() if r.config]

    def values(sec: str, key: str, default: Any = "?") -> str:
        return ", ".join(sorted({str(c.get(sec, {}).get(key, default)) for c in cfgs})) or "?"

    per_agent = sorted({(c["data"].get("shard_size") if c["data"].get("partition") in ("cla", "disjoint")
                         else c["data"].get("pool_size", 0) // max(1, c["data"].get("agents", 1))) for c in cfgs})
    seeds = "; ".join(f"{', '.join(vs)}: {', '.join(map(str, s))}" for s, vs in _group_seeds(seeds_by_valuation))
    return (f"Settings: {values('data', 'dataset')} ({values('train', 'model')}), {values('run', 'rounds')} rounds, "
            f"precision {values('train', 'dtype', 'float32')}; data pool: {', '.join(map(str, per_agent))} training "
            f"samples per agent (uni/pow: a pool of that x N; cla/disjoint: shard_size), server validation set "
            f"{values('data', 'val_size')} held out, the same in every run; seeds by valuation: {seeds}.")


def _group_seeds(by_val: dict[str, list[int]]) -> list[tuple[list[int], list[str]]]:
    groups: dict[tuple[int, ...], list[str]] = {}
    for v, seeds in by_val.items():
        groups.setdefault(tuple(seeds), []).append(v)
    return [(list(s), vs) for s, vs in groups.items()]


def summary_mark(cells_: list[CellResult]) -> str:
    """Seed 0's verdict (✓, ✗ and the failed criteria, 'failed to run'), plus k/n over seeds when more ran."""
    if not cells_:
        return MISSING
    first = min(cells_, key=lambda c: c.seed)
    mark = ("failed to run" if first.status == "failed" else "✓" if first.holds else "✗ " + " ".join(first.failed))
    if first.seed != 0:
        mark = f"(s{first.seed}) {mark}"
    if len(cells_) > 1:
        mark += f" ({sum(bool(c.holds) for c in cells_)}/{len(cells_)})"
    return mark


def summary_table(results: list[CellResult], scenarios: list[str], valuations: list[str]) -> list[str]:
    head = ["valuation", *scenarios, "held, seed 0", "held, all seeds", "valuation_s / cosine_s",
            "round time / cosine's"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in valuations:
        mine = [c for c in results if c.valuation == v]
        seed0 = [c for c in mine if c.seed == 0]
        ratios = [c.valuation_time_ratio for c in mine if c.valuation_time_ratio is not None]
        row = [v, *(summary_mark([c for c in mine if c.scenario == s]) for s in scenarios),
               f"{sum(bool(c.holds) for c in seed0)}/{len(seed0)}" if seed0 else MISSING,
               f"{sum(bool(c.holds) for c in mine)}/{len(mine)}",
               _f(sum(ratios) / len(ratios)) if ratios else "", _f(wall_ratio(mine))]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def verdict_lines(verdicts: list[Verdict]) -> list[str]:
    lines = [f"Rule 5 (issue 29): a valuation beats cosine when it holds strictly more cells than cosine on the "
             f"seeds both ran, at <= {WALL_LIMIT:g}x cosine's round time.", ""]
    for v in verdicts:
        lines.append(f"- {v.valuation}: {v.held} cells held against cosine's {v.cosine_held} "
                     f"({v.cells} cells, seeds {', '.join(map(str, v.seeds))}), round time "
                     f"{_f(v.wall_ratio) + 'x' if v.wall_ratio is not None else 'unknown against'} cosine's: "
                     f"{'BEATS cosine' if v.beats else 'does not beat cosine'}")
    winners = [v.valuation for v in verdicts if v.beats]
    lines += ["", f"**Beat cosine: {', '.join(winners) if winners else 'none'}.**"]
    return lines


def detail_table(scenario: str, results: list[CellResult], rounds: int) -> list[str]:
    sc = SCENARIO_BY_NAME[scenario]
    a, b, c = checkpoints(rounds)
    head = ["valuation", "seed"]
    if sc.truth is not None:
        head += [f"τ{a}", f"τ{b}", f"τ{c}"]
    if sc.kind == "symmetry":
        head += [f"spread{b}", f"spread{c}"]
    head += ["worst gain", "server gap", "ρ"]
    if sc.adversaries:
        head += [f"adversaries' r{t}" for t in (a, b, c)] + ["adversaries' reward / honest"]
    head += [r.name for r in sc.ratios] + ["val_s/cos_s", "round time/cosine's", "wall/cosine run", "holds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell in results:
        if cell.status == "failed":
            error = (cell.error if len(cell.error) <= 160 else cell.error[:157] + "...").replace("|", "\\|")
            row = [cell.valuation, str(cell.seed), "failed to run: " + error] + [""] * (len(head) - 3)
        else:
            row = [cell.valuation, str(cell.seed)]
            if sc.truth is not None:
                row += [_f(cell.tau.get(t)) for t in (a, b, c)]
            if sc.kind == "symmetry":
                row += [_f(cell.spread.get(t)) for t in (b, c)]
            row += [_f(cell.worst_gain, 1), _f(cell.server_gap, 1), _f(cell.rho, 1)]
            if sc.adversaries:
                row += [" ".join(f"{x:.4f}" for x in r) if (r := cell.adversary_r.get(t)) else "" for t in (a, b, c)]
                row += [" ".join(f"{x:.3f}" for x in s) if (s := cell.adversary_share) else ""]
            row += [_f(cell.ratios.get(r.name)) for r in sc.ratios]
            row += [_f(cell.valuation_time_ratio), _f(cell.round_time_ratio), _f(cell.wall_ratio),
                    "✓" if cell.holds else "✗ " + " ".join(cell.failed)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def scenario_head(scenario: str, loaded: SuiteRuns) -> str:
    sc = SCENARIO_BY_NAME[scenario]
    cfg = next((r.config for n, r in loaded.runs.items() if n.startswith(scenario + "_") and r.config), {})
    data = cfg.get("data", {})
    size = (f"shard_size {data.get('shard_size', '?')}" if sc.sized_by_shard else f"pool {data.get('pool_size', '?')}")
    truth = "no order" if sc.truth is None else "truth " + ", ".join(f"{t:g}" for t in sc.truth)
    return f"### {scenario}: {sc.partition}, {sc.agents} agents, {size}; {truth} ({sc.note})"


def markdown(loaded: SuiteRuns, results: list[CellResult], rounds: int, commands: list[str]) -> str:
    scenarios = [s.name for s in SCENARIOS if any(c.scenario == s.name for c in results)]
    valuations = [v for v in VALUATIONS if any(c.valuation == v for c in results)]
    seeds_by_val = {v: sorted({c.seed for c in results if c.valuation == v}) for v in valuations}
    a, b, c = checkpoints(rounds)
    out = ["# Fairness suite: scoreboard (issue 29)", "", "Made by:", "", "```", *commands, "```", "",
           settings_line(loaded, seeds_by_val), "",
           f"A cell holds when τ >= 0.8 at rounds {b} and {c}, the worst honest agent's gain over its own "
           "Standalone is >= -0.5 points, the server is >= FedAvg - 1 point, every adversary's r <= 2 r_min "
           f"at rounds {a}, {b} and {c} (floor), and every adversary's reward density, averaged over the run, is at "
           f"most {SHARE_MAX:g} of the honest agents' (receives); "
           f"symmetry5 instead of τ: max r / min r <= 3 at rounds {b} and {c} and a worst "
           "gain >= +10 points. τ is over the pairs of agents whose truth differs (a tie in r counts 0).", "",
           "## Summary (seed 0; k/n = cells held over the n seeds run)", "",
           *summary_table(results, scenarios, valuations), "",
           "valuation_s / cosine_s: the valuation's seconds over cosine's on the same uploads, same run (mean over "
           "cells); round time / cosine's: wall_s over wall_s - valuation_s + cosine_s, the same runs (ratio of "
           "the sums): what valuing by this instead of cosine costs, measured where both ran on one box at one "
           "time. The detail's wall/cosine run divides by the cosine run's wall time instead: runs made at "
           "different times, so it also shows how busy the box was.", "",
           *verdict_lines(rule5(results)), "", "## Per scenario", "",
           "Gains and gaps in points; a blank is undefined (ρ when every agent ends at one accuracy, a measure whose "
           "baseline failed to run) or not measured in that scenario.", ""]
    for s in scenarios:
        out += [scenario_head(s, loaded), "", *detail_table(s, [c for c in results if c.scenario == s], rounds), ""]
    baseline_failures = [f for n, f in loaded.failures.items() if (k := parse_run_name(n)) and k[1] in BASELINES]
    if baseline_failures:
        out += ["## Baselines that failed to run", ""]
        out += [f"- {f.name}: {'' if f.exit_code is None else f'exit status {f.exit_code}: '}{f.last_line}"
                for f in baseline_failures] + [""]
    if loaded.notes:
        out += ["## Notes", "", *(f"- {n}" for n in loaded.notes), ""]
    return "\n".join(out)


# ------------------------------------------------------------------ tau_over_rounds.png


def figure(path: Path, results: list[CellResult], rounds: int) -> bool:
    """One panel per scenario (symmetry: spread), one line per valuation (mean over its seeds);
    False when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    scenarios = [s for s in SCENARIOS if any(c.scenario == s.name and c.curve is not None for c in results)]
    cols = min(4, max(1, len(scenarios)))
    rows = max(1, -(-len(scenarios) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, sc in zip(axes.flat, scenarios):
        for i, v in enumerate(VALUATIONS):
            curves = [c.curve for c in results if c.scenario == sc.name and c.valuation == v and c.curve is not None]
            if curves:
                mean = pd.concat(curves, axis=1).mean(axis=1)
                seeds = f" (mean of {len(curves)} seeds)" if len(curves) > 1 else ""
                style = ("-", "--", ":", "-.")[i % 4]  # equal curves stay visible
                ax.plot(mean.index, mean.values, label=v + seeds, ls=style)
        if sc.kind == "symmetry":
            ax.axhline(3.0, color="grey", lw=0.8, ls="--")
            ax.set_yscale("log")
            ax.set_ylabel("max r / min r")
        else:
            ax.axhline(0.8, color="grey", lw=0.8, ls="--")
            ax.set_ylim(-1.05, 1.05)
            ax.set_ylabel("τ(r, truth)")
        ax.set_title(sc.name)
        ax.set_xlabel("round")
        ax.legend(fontsize=6)
    fig.suptitle("τ(r, truth) over rounds; symmetry5: max r / min r (seed 0, or the mean over the seeds run)",
                 fontsize=9)
    for ax in list(axes.flat)[len(scenarios):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------ report and keep


def run_commands(paths: list[Path]) -> list[str]:
    """The run commands recorded in suite.json under ``paths`` (run folders or kept records)."""
    out: list[str] = []
    for p in paths:
        for m in sorted(Path(p).rglob(MANIFEST)):
            try:
                out += [c for c in json.loads(m.read_text()).get("commands", []) if c not in out]
            except (OSError, ValueError):
                continue
    return out


def report(paths: list[Path], out: Path, command: str) -> dict[str, Any]:
    """Write scoreboard.csv, scoreboard.md and tau_over_rounds.png for the suite runs under ``paths``."""
    from .measures import cells

    loaded = load(paths)
    results = cells(loaded)
    if not results:
        raise SuiteError(f"report: no suite runs (<scenario>_<valuation>_s<seed>) under {', '.join(map(str, paths))}")
    rounds = sorted({int(r.summary.get("rounds", 0)) for r in loaded.runs.values()})
    if len(rounds) > 1:
        raise SuiteError(f"report: the runs under {', '.join(map(str, paths))} have different numbers of rounds "
                         f"({', '.join(map(str, rounds))}): report each set separately")
    r = rounds[0] if rounds else 0   # no run finished: only failures to list
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "scoreboard.csv", results, r)
    commands = [command, *(f"# runs: {c}" for c in run_commands(paths))]
    (out / "scoreboard.md").write_text(markdown(loaded, results, r, commands))
    drew = figure(out / "tau_over_rounds.png", results, r)
    return {"cells": results, "figure": drew, "notes": loaded.notes}


def keep(paths: list[Path], out: Path) -> list[Path]:
    """Copy every suite run's records to ``<out>/runs/<name>/``, with failures.csv and suite.json."""
    loaded = load(paths)
    dest = out / "runs"
    kept = []
    for name, run in sorted(loaded.runs.items()):
        if run.path.resolve() == (dest / name).resolve():
            continue  # already a kept record
        (dest / name).mkdir(parents=True, exist_ok=True)
        for f in RECORDS:
            if (run.path / f).is_file():
                shutil.copy2(run.path / f, dest / name / f)
        kept.append(dest / name)
    if loaded.failures:
        write_failures(dest / FAILURES, loaded.failures)
    commands = run_commands(paths)
    if commands:
        (dest / MANIFEST).write_text(json.dumps({"commands": commands}, indent=2) + "\n")
    return kept
