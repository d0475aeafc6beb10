"""The experiment layer's one reader of run folders: a folder with summary.json (and config.toml,
agents.csv) is a finished run. Report, compare, the fairness suite and the study scripts read
runs through :func:`find_runs` / :func:`read_run`, so they agree on what a run holds."""
from __future__ import annotations

import csv
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from ..methods import row_label, table_rank, uses_beta
from ..metrics import num

__all__ = ["Row", "Run", "Setting", "find_runs", "num", "read_run"]


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


def read_run(path: Path) -> Run:
    """The finished run in folder ``path`` (raises OSError / ValueError when its files are unreadable)."""
    path = Path(path)
    summary = json.loads((path / "summary.json").read_text())
    config = tomllib.loads((path / "config.toml").read_text()) if (path / "config.toml").is_file() else {}
    return Run(path, summary, config)


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
                runs.append(read_run(s.parent))
            except (OSError, ValueError) as e:
                if notes is not None:
                    notes.append(f"skipped {s.parent}: unreadable ({e})")
    return runs
