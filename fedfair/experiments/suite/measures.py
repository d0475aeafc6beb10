"""What the suite measures in a cell (valuation x scenario x seed) and whether the cell holds.

Run folders are read with fedfair.experiments.runs (``find_runs``; ρ by reference.``rho_of``, the
project's one definition); r at every round comes from agents.csv. Every measure is None when
it is undefined (a missing baseline, a round the run never reached), never 0.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...metrics import num
from ...runtime.logs import atomic_write_text
from ..reference import rho_of
from ..runs import Run, find_runs
from .scenarios import BASELINES, COSINE, SCENARIO_BY_NAME, VALUATIONS, Scenario, SuiteError, parse_run_name

TAU_MIN = 0.8            # tau at the middle and last checkpoints
GAIN_MIN = -0.5          # worst honest gain vs Standalone, points
SERVER_MIN = -1.0        # server accuracy minus FedAvg's, points
FLOOR_FACTOR = 2.0       # an adversary is at the floor when r <= 2 r_min
SHARE_MAX = 0.1          # an adversary receives at most a tenth of an honest agent's reward (mean density)
SPREAD_MAX = 3.0         # symmetry: max r / min r
SYMMETRY_GAIN_MIN = 10.0  # symmetry: two classes alone cap an agent near 20 %: well above alone
FAILURES = "failures.csv"
FAILURE_COLUMNS = ["name", "exit_code", "last_line", "seconds", "when"]


def tau_distinct(r: list[float], truth: tuple[float, ...] | list[float]) -> float | None:
    """Kendall's tau over the pairs whose truth differs: (concordant - discordant) / such pairs.

    A tie in r counts 0; with a strict truth this is tau-a (= tau-b when r has no ties). None when
    no pair's truth differs or r is missing.
    """
    if len(r) != len(truth) or any(x is None or x != x for x in r):
        return None
    score, pairs = 0, 0
    for i in range(len(r)):
        for j in range(i + 1, len(r)):
            if truth[i] == truth[j]:
                continue
            pairs += 1
            dr, dt = r[i] - r[j], truth[i] - truth[j]
            score += (dr > 0) - (dr < 0) if dt > 0 else (dr < 0) - (dr > 0)
    return score / pairs if pairs else None


def spread(r: list[float]) -> float | None:
    """max r / min r (symmetry: equal contributions should earn r within a small factor)."""
    if not r or any(x is None or x != x for x in r) or min(r) <= 0:
        return None
    return max(r) / min(r)


def checkpoints(rounds: int) -> tuple[int, int, int]:
    """The rounds a cell is judged at: a quarter, half and all of the run (50, 100, 200)."""
    return max(1, rounds // 4), max(1, rounds // 2), rounds


def r_table(run: Run, column: str = "r") -> pd.DataFrame:
    """r (or another per-agent column) by round (index) and agent (columns 1..N) from agents.csv;
    empty when there is none."""
    path = run.path / "agents.csv"
    if not path.is_file():
        return pd.DataFrame()
    rows = pd.read_csv(path, usecols=lambda c: c in ("round", "agent", column))
    if column not in rows:
        return pd.DataFrame()
    return rows.pivot_table(index="round", columns="agent", values=column, aggfunc="last").sort_index()


def reward_shares(run: Run, agents: int, adversaries: tuple[int, ...]) -> list[float] | None:
    """What each adversary received: its reward density (the fraction of the aggregate's coordinates
    sent to it) averaged over every round, over the honest agents' average. r at the floor is the
    promise; the density is what an adversary actually takes home, early rounds included. None when
    agents.csv has no density for every agent or the honest agents received nothing."""
    table = r_table(run, "density")
    if table.empty or list(table.columns) != list(range(1, agents + 1)):
        return None
    mean = table.mean()
    honest = [mean[i] for i in range(1, agents + 1) if i not in adversaries]
    if any(x != x for x in mean) or not honest or sum(honest) <= 0:
        return None
    base = sum(honest) / len(honest)
    return [float(mean[a]) / base for a in adversaries]


def r_at(table: pd.DataFrame, t: int, agents: int) -> list[float] | None:
    """The agents' r in round t, or None when the run has no full row for it."""
    if t not in table.index or list(table.columns) != list(range(1, agents + 1)):
        return None
    row = [float(x) for x in table.loc[t]]
    return None if any(x != x for x in row) else row


@dataclass
class Failure:
    """A run that failed to run (failures.csv): its exit status (None: never started, or timed out)."""
    name: str
    exit_code: int | None
    last_line: str
    seconds: float | None = None
    when: str = ""


@dataclass
class CellResult:
    """Every measure of one cell (valuation x scenario x seed), and the verdict."""
    scenario: str
    valuation: str
    seed: int
    run: str
    status: str = "ok"                    # ok | failed (failed to run: no summary.json)
    error: str = ""
    rounds: int = 0
    tau: dict[int, float | None] = field(default_factory=dict)            # checkpoint -> tau
    worst_gain: float | None = None       # points
    server_gap: float | None = None       # points
    rho: float | None = None
    adversary_r: dict[int, list[float] | None] = field(default_factory=dict)  # checkpoint -> r of adversaries
    adversary_share: list[float] | None = None  # each adversary's mean density / the honest agents' mean
    spread: dict[int, float | None] = field(default_factory=dict)         # middle and last checkpoints
    ratios: dict[str, float | None] = field(default_factory=dict)         # final r ratios (replication)
    valuation_time_ratio: float | None = None   # valuation_s / cosine_s, the same run
    wall_ratio: float | None = None             # wall_s / the cosine run's wall_s (another run, another time)
    wall_s: float | None = None
    cosine_wall_s: float | None = None          # wall_s - valuation_s + cosine_s: the same run valuing by cosine
    wall_per_round: float | None = None
    r_floor: float = 1e-3
    holds: bool | None = None
    failed: list[str] = field(default_factory=list)
    curve: pd.Series | None = field(default=None, repr=False)   # tau (symmetry: spread) at every round

    @property
    def round_time_ratio(self) -> float | None:
        """Round time over the same run's valuing by cosine (rule 5's cost)."""
        return self.wall_s / self.cosine_wall_s if self.wall_s is not None and self.cosine_wall_s else None


def judge(cell: CellResult, scenario: Scenario) -> list[str]:
    """The criteria the cell fails (empty = it holds); an undefined measure fails as '<name>:n/a'."""
    failed: list[str] = []
    _, mid, end = checkpoints(cell.rounds)

    def need(name: str, value: float | None, ok: bool) -> None:
        if value is None:
            failed.append(f"{name}:n/a")
        elif not ok:
            failed.append(name)

    if scenario.kind == "symmetry":
        for t in (mid, end):
            s = cell.spread.get(t)
            need("spread", s, s is not None and s <= SPREAD_MAX)
        gain_min = SYMMETRY_GAIN_MIN
    else:
        for t in (mid, end):
            tau = cell.tau.get(t)
            need(f"tau{t}", tau, tau is not None and tau >= TAU_MIN)
        gain_min = GAIN_MIN
    need("gain", cell.worst_gain, cell.worst_gain is not None and cell.worst_gain >= gain_min)
    need("server", cell.server_gap, cell.server_gap is not None and cell.server_gap >= SERVER_MIN)
    if scenario.adversaries:  # every adversary at the floor at every checkpoint
        values = [cell.adversary_r.get(t) for t in checkpoints(cell.rounds)]
        if any(v is None for v in values):
            failed.append("floor:n/a")
        elif any(max(v) > FLOOR_FACTOR * cell.r_floor for v in values if v):
            failed.append("floor")
        share = cell.adversary_share
        need("receives", None if share is None else max(share), share is not None and max(share) <= SHARE_MAX)
    # a criterion failing twice (tau undefined at two rounds, spread at both) is named once
    return list(dict.fromkeys(failed))


# ------------------------------------------------------------------ reading runs into cells


@dataclass
class SuiteRuns:
    """The suite's finished runs by name, and the recorded failures of runs that never finished."""
    runs: dict[str, Run]
    failures: dict[str, Failure]
    notes: list[str]


def read_failures(path: Path) -> dict[str, Failure]:
    """failures.csv as {run name: Failure} (empty when there is no such file)."""
    out: dict[str, Failure] = {}
    if not path.is_file():
        return out
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            code = row.get("exit_code") or ""
            out[row["name"]] = Failure(row["name"], int(code) if code.lstrip("-").isdigit() else None,
                                       row.get("last_line", ""), num(row.get("seconds")), row.get("when", ""))
    return out


def write_failures(path: Path, failures: dict[str, Failure]) -> None:
    """failures.csv, one row per run that failed to run (rewritten whole, so a reader never sees half)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FAILURE_COLUMNS)
    w.writeheader()
    for f in failures.values():
        w.writerow({"name": f.name, "exit_code": "" if f.exit_code is None else f.exit_code,
                    "last_line": f.last_line, "seconds": "" if f.seconds is None else f"{f.seconds:.1f}",
                    "when": f.when})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())


def load(paths: list[Path]) -> SuiteRuns:
    """Every suite run under ``paths`` (run folders or kept records), each name once, and the failures
    recorded there of runs that have no summary.json."""
    notes: list[str] = []
    runs: dict[str, Run] = {}
    try:
        found = find_runs(paths, notes)
    except FileNotFoundError as e:
        raise SuiteError(f"report: {e}") from None
    for run in found:
        if parse_run_name(run.name) is None:
            notes.append(f"skipped {run.path}: not a suite run name (<scenario>_<valuation>_s<seed>)")
        elif run.name in runs:
            notes.append(f"{run.path} and {runs[run.name].path} are both {run.name}: the first is used")
        else:
            runs[run.name] = run
    failures: dict[str, Failure] = {}
    for p in paths:
        for f in sorted(Path(p).rglob(FAILURES)):
            failures.update({k: v for k, v in read_failures(f).items() if k not in runs})
    return SuiteRuns(runs, failures, notes)


def _wall_per_round(run: Run) -> float | None:
    wall, rounds = num(run.summary.get("wall_s")), num(run.summary.get("rounds"))
    return wall / rounds if wall is not None and rounds else None


def valuation_seconds(run: Run) -> tuple[float, float] | None:
    """(valuation_s, cosine_s) of one run: summary.json's totals, else server.csv's columns summed."""
    v, c = num(run.summary.get("valuation_s")), num(run.summary.get("cosine_s"))
    if (v is None or c is None) and (run.path / "server.csv").is_file():
        server = pd.read_csv(run.path / "server.csv")
        if {"valuation_s", "cosine_s"} <= set(server.columns):
            v, c = float(server["valuation_s"].sum()), float(server["cosine_s"].sum())
    return (v, c) if v is not None and c is not None else None


def valuation_time_ratio(run: Run) -> float | None:
    """valuation_s / cosine_s of one run (both computed on the same uploads, every round)."""
    vc = valuation_seconds(run)
    return vc[0] / vc[1] if vc is not None and vc[1] > 0 else None


def cosine_wall(run: Run) -> float | None:
    """The run's wall time had it valued by cosine: wall_s − valuation_s + cosine_s, from the same run.

    Why not the cosine run's wall time: suite runs are made hours apart, and a box that is busy
    for one of them (a test run, another job) moves that ratio by 2× with no change in the
    valuation; the same run's own seconds are not moved by the load of another time."""
    wall, vc = num(run.summary.get("wall_s")), valuation_seconds(run)
    if wall is None or vc is None or wall - vc[0] + vc[1] <= 0:
        return None
    return wall - vc[0] + vc[1]


def measure(run: Run, scenario: Scenario, valuation: str, seed: int, baselines: dict[str, Run],
            cosine: Run | None) -> CellResult:
    """Every measure of one finished valuation run against its scenario+seed's baselines."""
    s = run.summary
    rounds = int(s.get("rounds", 0))
    cell = CellResult(scenario.name, valuation, seed, run.name, rounds=rounds,
                      r_floor=float(run.config.get("mechanism", {}).get("r_min", 1e-3)))
    table = r_table(run)
    n = scenario.agents
    points = checkpoints(rounds)
    if scenario.truth is not None:
        cell.tau = {t: (None if (r := r_at(table, t, n)) is None else tau_distinct(r, scenario.truth)) for t in points}
    if scenario.kind == "symmetry":
        cell.spread = {t: (None if (r := r_at(table, t, n)) is None else spread(r)) for t in points[1:]}
    if scenario.adversaries:
        cell.adversary_r = {t: (None if (r := r_at(table, t, n)) is None else [r[a - 1] for a in scenario.adversaries])
                            for t in points}
        cell.adversary_share = reward_shares(run, n, scenario.adversaries)
    final_r = r_at(table, rounds, n)
    for ratio in scenario.ratios:
        value = None
        if final_r is not None:
            top = sum(final_r[a - 1] for a in ratio.numerator) / len(ratio.numerator)
            bottom = sum(final_r[a - 1] for a in ratio.denominator) / len(ratio.denominator)
            value = top / bottom if bottom > 0 else None
        cell.ratios[ratio.name] = value
    alone = baselines.get(BASELINES[0])
    acc = s.get("final_acc") or []
    if alone is not None and len(alone.summary.get("final_acc") or []) == len(acc) == n:
        gains = [100 * (acc[i - 1] - alone.summary["final_acc"][i - 1]) for i in scenario.honest]
        cell.worst_gain = min(gains)
        key = alone.summary.get("reference_key")
        cell.rho = rho_of(run, {key: alone} if key else {})[0]
    fed = baselines.get(BASELINES[1])
    if fed is not None and num(s.get("server_acc")) is not None and num(fed.summary.get("server_acc")) is not None:
        cell.server_gap = 100 * (float(s["server_acc"]) - float(fed.summary["server_acc"]))
    cell.valuation_time_ratio = valuation_time_ratio(run)
    cell.wall_per_round = _wall_per_round(run)
    cell.wall_s, cell.cosine_wall_s = num(s.get("wall_s")), cosine_wall(run)
    mine, theirs = cell.wall_per_round, _wall_per_round(cosine) if cosine is not None else None
    cell.wall_ratio = mine / theirs if mine is not None and theirs else None
    if not table.empty:  # the figure's line: tau at every round (symmetry: the spread)
        truth = scenario.truth
        at = (lambda r: spread(r)) if truth is None else (lambda r: tau_distinct(r, truth))
        cell.curve = pd.Series({t: at([float(x) for x in row]) for t, row in table.iterrows()}, dtype=float)
    cell.failed = judge(cell, scenario)
    cell.holds = not cell.failed
    return cell


def cells(loaded: SuiteRuns) -> list[CellResult]:
    """One CellResult per valuation run or recorded failure, ordered by seed, scenario, valuation."""
    out: list[CellResult] = []
    keys = {parse_run_name(n) for n in (*loaded.runs, *loaded.failures)}
    for scenario_name, what, seed in sorted((k for k in keys if k and k[1] in VALUATIONS), key=_order):
        scenario = SCENARIO_BY_NAME[scenario_name]
        name = f"{scenario_name}_{what}_s{seed}"
        if name not in loaded.runs:
            f = loaded.failures[name]
            code = "" if f.exit_code is None else f"exit status {f.exit_code}: "
            out.append(CellResult(scenario_name, what, seed, name, status="failed", error=code + f.last_line))
            continue
        baselines = {b: loaded.runs[n] for b in BASELINES if (n := f"{scenario_name}_{b}_s{seed}") in loaded.runs}
        cosine = loaded.runs.get(f"{scenario_name}_{COSINE}_s{seed}")
        out.append(measure(loaded.runs[name], scenario, what, seed, baselines, cosine))
    return out


def _order(key: tuple[str, str, int]) -> tuple[int, int, int]:
    scenario, what, seed = key
    return seed, list(SCENARIO_BY_NAME).index(scenario), VALUATIONS.index(what)


def auto_valuations(results: list[CellResult]) -> list[str]:
    """``--valuations auto``: cosine plus every valuation that holds at least as many seed-0 cells as cosine."""
    held: dict[str, int] = {}
    for c in results:
        if c.seed == 0:
            held[c.valuation] = held.get(c.valuation, 0) + bool(c.holds)
    if COSINE not in held:
        raise SuiteError("--valuations auto picks from the seed-0 cells, but there is no seed-0 cosine run: "
                         "run --seeds 0 first")
    return [v for v in VALUATIONS if v in held and held[v] >= held[COSINE]]
