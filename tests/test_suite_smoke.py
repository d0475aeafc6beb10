"""The fairness suite's digits smoke (issue 29: "a digits version of every cell (few rounds) runs in
the test suite"): every scenario at seed 0, 2 rounds, in-process, then the scoreboard.

CI affords about 30 runs, not the 64 of the whole grid (a 2-round digits run is start-up dominated),
so each scenario runs its Standalone, FedAvg, cosine and ONE other valuation, rotating so that every
valuation is run and scored in at least one scenario. Every (valuation x scenario) cell of the real
suite is the same code path as these with another valuation name.
"""
from __future__ import annotations

import csv

import pytest

from fedfair.experiments.suite import SCENARIOS, VALUATIONS, plan, run_cell
from fedfair.experiments.suite.scenarios import PROFILES
from fedfair.experiments.suite.scoreboard import report

ROUNDS = 2
OTHERS = VALUATIONS[1:]
CASES = [(s, (VALUATIONS[0], OTHERS[i % len(OTHERS)])) for i, s in enumerate(SCENARIOS)]


def test_the_rotation_runs_every_valuation_somewhere():
    assert {v for _, pair in CASES for v in pair} == set(VALUATIONS)


@pytest.mark.parametrize("scenario,valuations", CASES, ids=[f"{s.name}-{v[1]}" for s, v in CASES])
def test_the_scenario_runs_and_is_scored(scenario, valuations, tmp_path):
    runs = plan(PROFILES["digits"], [0], [scenario], list(valuations), rounds=ROUNDS)
    assert sorted(r.what for r in runs) == sorted(["standalone", "fedavg", *valuations])
    for run in runs:
        run_cell(run.name, tmp_path / "suite", "digits", rounds=ROUNDS, extra=("run.ranks=2",))
        assert (tmp_path / "suite" / run.name / "summary.json").is_file()
    written = report([tmp_path / "suite"], tmp_path / "report", "smoke")
    with open(tmp_path / "report" / "scoreboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["valuation"] for r in rows] == list(valuations)
    for row in rows:
        assert row["status"] == "ok" and row["holds"] in ("true", "false")
        assert row["worst_gain"] != "" and row["server_gap"] != "" and row["wall_ratio"] != ""
        if scenario.truth is not None:
            assert row[f"tau{ROUNDS}"] != ""
        else:
            assert row[f"spread{ROUNDS}"] != ""
    assert len(written["cells"]) == len(valuations)
