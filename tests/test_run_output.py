"""What a run prints: the end-of-run table (a summary over agents above TABLE_AGENTS) and the progress
bar's text (no "nan" before the first evaluation)."""
from __future__ import annotations

import math

from fedfair.runtime.logs import TABLE_AGENTS, Totals, agent_table
from fedfair.runtime.server import progress_text


def summary(n: int) -> dict:
    return {"final_acc": [i / n for i in range(n)], "final_local_acc": [0.5] * n, "final_r": [1 / n] * n,
            "final_q": [None] * n, "final_density": [1.0] * n, "mean_acc": 0.5, "max_acc": (n - 1) / n, "rho_r": None,
            "rho": None, "rho_available": False, "overhead_ratio": 0.01, "bytes_down": 10, "bytes_down_dense": 20,
            "wall_s": 1.0}


def test_a_thousand_agent_run_prints_a_summary_not_a_thousand_line_table():
    lines = agent_table(summary(1000)).splitlines()
    assert len(lines) == 7
    assert lines[0] == (f"1000 agents (more than {TABLE_AGENTS}: a summary over agents; every agent's values are in "
                        "summary.json and agents.csv)")
    assert lines[2].split() == ["min", "0.000", "0.500", "0.0010", "-", "1.000"]
    assert lines[3].split()[:2] == ["median", "0.499"] and lines[4].split()[:2] == ["max", "0.999"]
    small = agent_table(summary(TABLE_AGENTS)).splitlines()
    assert len(small) == 1 + TABLE_AGENTS + 2 and small[1].split()[:2] == ["1", "0.000"]


def test_the_progress_bar_shows_no_nan_before_the_first_evaluation():
    totals = Totals(bytes_down=2_500_000, bytes_down_dense=5_000_000)
    assert progress_text((math.nan, math.nan), totals) == "acc agents - server - | down 2.50 MB (dense 5.00)"
    assert progress_text((0.91234, 0.5), totals) == "acc agents 0.912 server 0.500 | down 2.50 MB (dense 5.00)"
