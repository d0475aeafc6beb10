"""Every baseline end to end on real gloo process groups: one short shared run per method.

All runs come from ONE ``fedfair.experiments.compare.compare`` call (standalone first, same out_dir), so
the test also covers the user command: rho in summary.json and the compare table.
cgsv itself is covered by tests/test_runtime.py.
"""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fedfair.config import load_config
from fedfair.experiments.compare import COLUMNS, UNDEFINED, compare, finished, plan
from fedfair.runtime.wire import SIZE_HEADER_BYTES, encoded_size

ROOT = Path(__file__).resolve().parents[1]
AGENTS = 3
ROUNDS = 2
METHODS = ["standalone", "fedavg", "dw", "eu", "rr", "qffl", "cffl", "eci"]
COMMUNICATING = METHODS[1:]


OVERRIDES = [f"run.rounds={ROUNDS}", f"run.eval_every={ROUNDS}", "run.progress=false", f"data.agents={AGENTS}",
             "data.val_size=0", "mechanism.audit=none"]  # cffl and eci then resolve their own validation size


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("baselines")
    overrides = OVERRIDES
    rows, results = compare(str(ROOT / "configs" / "default.toml"), METHODS, str(out), overrides)
    summaries = {m: json.loads((out / m / "summary.json").read_text()) for m in METHODS}
    return out, rows, results, summaries


def test_every_method_runs_end_to_end(runs):
    out, rows, results, summaries = runs
    assert [r["method"] for r in rows] == METHODS
    for m in METHODS:
        s = summaries[m]
        assert s["method"] == m and len(s["final_acc"]) == AGENTS
        assert all(0.0 <= a <= 1.0 for a in s["final_acc"] + s["final_local_acc"])
        assert len(results[m]) == AGENTS + 1


def test_standalone_sends_no_model_bytes(runs):
    _, _, results, summaries = runs
    s = summaries["standalone"]
    assert s["bytes_up"] == 0 and s["bytes_down"] == 0 and s["bytes_down_dense"] == 0
    assert s["mechanism_s"] == 0.0
    assert all(agent["received"] == 0 for agent in results["standalone"][1:])
    assert s["bytes_ctrl"] > 0  # only the per-round metrics travel


def test_fedavg_and_qffl_leave_every_agent_with_the_server_model(runs):
    out, _, results, _ = runs
    for m in ("fedavg", "qffl"):
        server, *agents = results[m]
        for agent in agents:
            np.testing.assert_array_equal(agent["w"], server["w"])
        rows = list(csv.DictReader(open(out / m / "agents.csv")))
        assert all(r["encoding"] == "dense" and float(r["dist_to_server"]) == 0.0 for r in rows)


def test_every_agent_holds_exactly_what_the_server_sent_it(runs):
    _, _, results, _ = runs
    for m in COMMUNICATING:
        server, *agents = results[m]
        for i, agent in enumerate(agents):
            np.testing.assert_array_equal(agent["w"], server["agent_models"][i], err_msg=m)


def test_bytes_come_from_the_ledger(runs):
    out, _, results, summaries = runs
    dim = results["fedavg"][0]["w"].size
    dense = SIZE_HEADER_BYTES + encoded_size("dense", dim, dim)
    for m in COMMUNICATING:
        s = summaries[m]
        extras = 1 if m == "qffl" else 0
        assert s["bytes_up"] == ROUNDS * AGENTS * 4 * (dim + extras), m
        rows = list(csv.DictReader(open(out / m / "agents.csv")))
        assert s["bytes_down"] == sum(int(r["bytes_down"]) for r in rows)
        assert sum(agent["received"] for agent in results[m][1:]) == s["bytes_down"]
    for m in ("fedavg", "rr", "qffl"):  # model downloads are dense
        assert summaries[m]["bytes_down"] == ROUNDS * AGENTS * dense
    for m in ("eu", "cffl", "eci"):  # sparse rewards
        assert summaries[m]["bytes_down"] < ROUNDS * AGENTS * dense


def test_validation_methods_share_the_shards_and_count_their_validation_passes(runs):
    out, _, _, summaries = runs
    sizes = {m: load_config(out / m / "config.toml").data.val_size for m in METHODS}
    assert set(sizes.values()) == {144}  # 10% of digits' 1437 training samples, for every run
    # the validation passes are server work, counted (not timed: timings are no test on a shared box):
    # CFFL scores each agent's update once a round, exact ECI values all 2^N coalitions (N <= 8)
    assert summaries["cffl"]["validation_passes"] == ROUNDS * AGENTS
    assert summaries["eci"]["validation_passes"] == ROUNDS * 2 ** AGENTS
    assert summaries["fedavg"]["validation_passes"] == 0
    for m in ("cffl", "eci"):
        rows = list(csv.DictReader(open(out / m / "agents.csv")))
        assert all(r["q"] != "" for r in rows)


def test_rho_is_in_every_summary_against_the_standalone_reference(runs):
    out, rows, _, summaries = runs
    ref = summaries["standalone"]["final_acc"]
    key = summaries["standalone"]["reference_key"]
    for m in COMMUNICATING:
        s = summaries[m]
        assert s["rho_available"] and s["reference_key"] == key, m
        if s["rho"] is None:  # undefined only when an accuracy vector is constant
            assert len(set(s["final_acc"])) == 1 or len(set(ref)) == 1, m
        else:
            assert -100.0 - 1e-9 <= s["rho"] <= 100.0 + 1e-9
    assert summaries["fedavg"]["rho"] is None  # one shared model: rho undefined, not 0


def test_compare_table_files(runs):
    out, rows, _, _ = runs
    md = (out / "compare.md").read_text()
    assert "| method |" in md and all(f"| {m} |" in md for m in METHODS)
    table = list(csv.DictReader(open(out / "compare.csv")))
    assert [r["method"] for r in table] == METHODS and list(table[0]) == COLUMNS
    fedavg = next(r for r in table if r["method"] == "fedavg")
    assert fedavg["rho"] == UNDEFINED and fedavg["rho_r"] == UNDEFINED
    for r in rows:
        assert r["rho"] is None or math.isfinite(r["rho"])


def test_compare_rejects_an_unknown_method_with_one_line():
    p = subprocess.run([sys.executable, "-m", "fedfair", "compare", "--config", "configs/default.toml",
                        "--methods", "fedavg,nope"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown method(s) nope" in lines[0]


def test_finished_runs_are_recognised_for_reuse(runs):
    out = runs[0]
    cfgs = plan(str(ROOT / "configs" / "default.toml"), METHODS, str(out), OVERRIDES)
    assert all(finished(c) for c in cfgs)
    other = plan(str(ROOT / "configs" / "default.toml"), METHODS, str(out), [*OVERRIDES, "run.seed=1"])
    assert not any(finished(c) for c in other)
