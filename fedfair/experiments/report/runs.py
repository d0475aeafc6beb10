"""Run folders as the report sees them: the finished runs under some paths, grouped into the
cells of the paper's tables (setting × method row × partition, one run per seed)."""
from __future__ import annotations

import csv
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import pandas as pd

from ...methods import REFERENCE, row_label, table_rank, uses_beta
from ...metrics import pearson100

UNDEFINED = "undefined"
NO_REFERENCE = "n/a"
MISSING = "–"
PARTITION_ORDER = ("uni", "pow", "cla", "disjoint")


class Setting(NamedTuple):
    """What a report section shares: the data set, the number of agents and of rounds."""
    dataset: str
    agents: int
    rounds: int


class Row(NamedTuple):
    """A table row, in table order: the method's rank in the registry, β (−1 when it has none), the method."""
    rank: int
    beta: float
    method: str

    @property
    def label(self) -> str:
        return row_label(self.method, self.beta if self.beta >= 0 else None)

    @property
    def paper_key(self) -> tuple[str, float | None]:
        """The key of this row among the paper's numbers: (method, β or None)."""
        return (self.method, self.beta if uses_beta(self.method) else None)


@dataclass
class Run:
    """One finished run folder: summary.json, config.toml and (read when a figure needs it) agents.csv."""
    path: Path
    summary: dict[str, Any]
    config: dict[str, Any]
    _agents: list[dict[str, str]] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def method(self) -> str:
        return str(self.summary.get("method"))

    @property
    def beta(self) -> float | None:
        b = self.summary.get("beta", self.config.get("mechanism", {}).get("beta"))
        if b is None:
            return None
        return math.inf if b == "inf" else float(b)

    @property
    def partition(self) -> str:
        return str(self.summary.get("partition"))

    @property
    def seed(self) -> int:
        return int(self.summary.get("seed", self.config.get("run", {}).get("seed", 0)))

    @property
    def setting(self) -> Setting:
        s = self.summary
        return Setting(str(s.get("dataset")), int(s.get("agents", 0)), int(s.get("rounds", 0)))

    @property
    def row(self) -> Row:
        m = self.method
        beta = self.beta if (uses_beta(m) and self.beta is not None) else -1.0
        return Row(table_rank(m), beta, m)

    def sort_key(self) -> tuple[Setting, Row, str, int, str]:
        return (self.setting, self.row, self.partition, self.seed, self.name)

    def agents(self) -> list[dict[str, str]]:
        if self._agents is None:
            with open(self.path / "agents.csv", newline="") as f:
                self._agents = list(csv.DictReader(f))
        return self._agents


def find_runs(paths: Iterable[Path], notes: list[str] | None = None) -> list[Run]:
    """Every finished run (a folder with summary.json) under the given paths, each once."""
    seen: set[Path] = set()
    runs: list[Run] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        candidates = [p / "summary.json"] if (p / "summary.json").is_file() else sorted(p.rglob("summary.json"))
        for s in candidates:
            d = s.parent.resolve()
            if d in seen:
                continue
            seen.add(d)
            try:
                summary = json.loads(s.read_text())
                config = tomllib.loads((s.parent / "config.toml").read_text()) \
                    if (s.parent / "config.toml").is_file() else {}
            except (OSError, ValueError) as e:
                if notes is not None:
                    notes.append(f"skipped {s.parent}: unreadable ({e})")
                continue
            runs.append(Run(s.parent, summary, config))
    return runs


# ------------------------------------------------------------------ numbers of one run


def num(x: Any) -> float | None:
    """A finite number, or None (missing, null, non-numeric, NaN or infinite)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def local_mean_max(run: Run) -> tuple[float | None, float | None]:
    acc = [num(a) for a in run.summary.get("final_local_acc") or []]
    acc = [a for a in acc if a is not None]
    return (mean(acc), max(acc)) if acc else (None, None)


References = dict[str, Run]
"""reference_key -> the standalone run that serves as the fairness reference of runs with that key."""


def references(runs: list[Run]) -> References:
    """The first (by folder name) standalone run of every reference key."""
    by_ref: References = {}
    for r in sorted(runs, key=lambda r: r.name):
        if r.method == REFERENCE and r.summary.get("reference_key"):
            by_ref.setdefault(r.summary["reference_key"], r)
    return by_ref


def rho_of(run: Run, by_ref: References) -> tuple[float | None, str]:
    """(rho, state): state is 'ok', 'undefined' (zero variance) or 'n/a' (no standalone reference).

    The server writes rho when a standalone run was there before it; otherwise the report
    computes it from a standalone run with the same reference_key among the runs it loaded.
    """
    s = run.summary
    if s.get("rho_available"):
        return (num(s.get("rho")), "ok" if num(s.get("rho")) is not None else UNDEFINED)
    ref = by_ref.get(s.get("reference_key")) if s.get("reference_key") else None
    if ref is None or not ref.summary.get("final_acc") or not s.get("final_acc"):
        return None, NO_REFERENCE
    v = pearson100(ref.summary["final_acc"], s["final_acc"])
    return v, ("ok" if v is not None else UNDEFINED)


# ------------------------------------------------------------------ the tables' cells


@dataclass
class Cell:
    """The runs of one (setting, row, partition): one per seed."""
    runs: list[Run]

    def summary_values(self, key: str) -> list[float | None]:
        return [num(r.summary.get(key)) for r in self.runs]


@dataclass
class Grid:
    """One report section: its table rows (in order), partitions (columns) and cells."""
    setting: Setting
    rows: list[Row]
    cols: list[str]
    cells: dict[tuple[Row, str], Cell]

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for c in self.cells.values() for r in c.runs})

    def first_runs(self) -> dict[Row, dict[str, Run]]:
        """The lowest seed's run of every cell (what the figures show)."""
        out: dict[Row, dict[str, Run]] = {row: {} for row in self.rows}
        for (row, p), cell in self.cells.items():
            out[row][p] = min(cell.runs, key=lambda r: r.seed)
        return out


CELL_KEYS = ["dataset", "agents", "rounds", "rank", "beta", "method", "partition"]


def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run, in table order, with the keys that place it in a cell."""
    runs = sorted(runs, key=Run.sort_key)
    return pd.DataFrame([{**r.setting._asdict(), **r.row._asdict(), "partition": r.partition, "seed": r.seed,
                          "name": r.name, "run": r} for r in runs], columns=[*CELL_KEYS, "seed", "name", "run"])


def partition_order(p: str) -> tuple[int, str]:
    return (PARTITION_ORDER.index(p) if p in PARTITION_ORDER else 99, p)


def grids(runs: list[Run], notes: list[str]) -> list[Grid]:
    """The runs as one Grid per setting, settings in order; two runs of one cell and seed are noted."""
    frame = runs_frame(runs)
    for (*_, seed), twins in frame.groupby([*CELL_KEYS, "seed"], sort=False):
        for later in twins["name"].iloc[1:]:
            notes.append(f"{later} and {twins['name'].iloc[0]} share method, partition and seed {seed}: both are "
                         "averaged into one cell (report their folders separately to tell them apart)")
    out = []
    for _, section in frame.groupby(["dataset", "agents", "rounds"], sort=False):
        cells = {(g["run"].iloc[0].row, g["run"].iloc[0].partition): Cell(list(g["run"]))
                 for _, g in section.groupby(CELL_KEYS, sort=False)}
        rows = list(dict.fromkeys(row for row, _ in cells))
        cols = sorted({p for _, p in cells}, key=partition_order)
        out.append(Grid(section["run"].iloc[0].setting, rows, cols, cells))
    return out
