"""The paper's numbers beside ours: read from ``paper.toml`` (data, not code)."""
from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

PAPER_FILE = Path(__file__).with_name("paper.toml")

PaperCells = dict[str, Any]
"""partition -> the paper's value: [mean, max] accuracy (%) or ρ × 100."""
PaperRows = dict[tuple[str, float | None], PaperCells]
"""(method, β or None) -> cells."""


@cache
def paper_table(kind: str) -> dict[tuple[str, int], PaperRows]:
    """``kind`` (accuracy or rho) as (dataset, agents) -> (method, β or None) -> partition -> value."""
    data = tomllib.loads(PAPER_FILE.read_text())
    table: dict[tuple[str, int], PaperRows] = {}
    for entry in data[kind]:
        rows = table.setdefault((entry["dataset"], entry["agents"]), {})
        rows[(entry["method"], entry.get("beta"))] = entry["cells"]
    return table
