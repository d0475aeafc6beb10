"""Runs (read by ``fedfair.experiments.runs``) grouped into the cells of the paper's tables:
setting × method row × partition, one run per seed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import pandas as pd

from ...config import Partition
from ...metrics import agent_max, agent_mean, num
from ..runs import Row, Run, Setting

MISSING = "–"
PARTITION_ORDER: tuple[str, ...] = get_args(Partition)


# ------------------------------------------------------------------ numbers of one run


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def local_mean_max(run: Run) -> tuple[float | None, float | None]:
    """Mean and max over agents of the final local_acc (undefined as in fedfair.metrics)."""
    acc = run.summary.get("final_local_acc") or []
    return agent_mean(acc), agent_max(acc)


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
