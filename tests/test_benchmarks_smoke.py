"""Smoke test of the benchmarks' core functions at toy sizes (the benchmarks themselves are not tests).

Runs in a few seconds: no process groups are started; the parts that read a run's logs are
fed a small hand-made run folder whose byte counts follow the codec's sizes.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import overhead  # noqa: E402
import scaling  # noqa: E402
import server_step  # noqa: E402
import shapley  # noqa: E402
import wire  # noqa: E402
from _common import interleaved, make_round  # noqa: E402

from fedfair.mechanism import HEADER_BYTES, encoded_size  # noqa: E402
from fedfair.transport import SIZE_HEADER_BYTES  # noqa: E402

SHAPES = [torch.Size([6, 5]), torch.Size([6]), torch.Size([40]), torch.Size([3])]  # the reference fails on 1-entry tensors


def test_server_step_reference_agrees_and_measures() -> None:
    updates, r = make_round(4, sum(s.numel() for s in SHAPES), seed=1)
    server_step.check_agreement(updates, r, SHAPES)
    m = server_step.measure(3, SHAPES, repeats=1, ref_repeats=1)
    assert m["dim"] == 79 and m["fedfair"] > 0 and m["reference"] > 0 and m["copy"] > 0


def test_shapley_measure_small() -> None:
    m = shapley.measure(4, 64, trials=1, repeats=1)
    assert m["phi_sum"] == pytest.approx(1.0, abs=1e-9)
    assert set(m["k"]) == {"evaluations", "time", "hoeffding"}
    assert m["k"]["evaluations"][0] == 4  # ceil(2^4 / 4)


def test_interleaved_respects_per_function_repeats() -> None:
    calls = {"a": 0, "b": 0}

    def bump(name):
        calls[name] += 1

    times = interleaved({"a": lambda: bump("a"), "b": lambda: bump("b")}, 3, {"b": 1})
    assert calls == {"a": 3, "b": 1} and set(times) == {"a", "b"}


def _fake_run(folder: Path, dim: int = 1000, agents: int = 2, rounds: int = 4) -> Path:
    folder.mkdir(parents=True)
    dense_msg = SIZE_HEADER_BYTES + encoded_size("dense", dim, dim)
    agent_rows, server_rows, down_total = [], [], 0
    for t in range(1, rounds + 1):
        down = 0
        for i, k in enumerate((dim - 3, dim // 3)[:agents]):
            enc = "dense" if i == 0 else "bitmap"
            sent = SIZE_HEADER_BYTES + encoded_size(enc, k, dim)
            down += sent
            agent_rows.append({"round": t, "agent": i + 1, "k": k, "encoding": enc, "bytes_down": sent,
                               "train_s": 0.05})
        down_total += down
        server_rows.append({"round": t, "round_s": 0.1, "train_s": 0.06, "mechanism_s": 0.002,
                            "bytes_up": 4 * dim * agents, "bytes_down": down, "bytes_down_dense": dense_msg * agents})
    for name, rows in (("agents.csv", agent_rows), ("server.csv", server_rows)):
        with open(folder / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    (folder / "summary.json").write_text(json.dumps({
        "method": "cgsv", "agents": agents, "rounds": rounds, "beta": 1.0, "bytes_down": down_total,
        "bytes_down_dense": dense_msg * agents * rounds, "overhead_ratio": 0.002 / 0.06}))
    return folder


def test_wire_analysis_of_a_run_folder(tmp_path: Path) -> None:
    result = wire.analyse(_fake_run(tmp_path / "run"))
    assert result["dim"] == 1000 and result["mismatches"] == 0 and result["downloads"] == 8
    assert max(result["ratios"]) <= 1.1 and min(result["ratios"]) >= 1.0
    assert wire.ideal_bytes(0, 1000) == 0 and wire.ideal_bytes(1000, 1000) == 4000
    assert "target <= 1.01" in wire.report(result, None)


def test_scaling_and_overhead_summaries(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "run")
    s = scaling.summarise(run, rounds=4)
    assert s["round"] == pytest.approx(0.1) and s["rest"] == pytest.approx(0.1 - 0.06 - 0.002)
    o = overhead.summarise(run)
    assert o["ratio"] == pytest.approx(0.002 / 0.06) and o["mech_med"] == pytest.approx(0.002)


def test_overhead_contention_free_estimate() -> None:
    text = overhead.dedicated_estimate(repeats=1, batch=2)
    assert "ratio to one agent's work" in text
