"""Smoke test of the benchmarks' core functions at toy sizes (the benchmarks themselves are not tests).

Runs in a few seconds: no process groups are started; the parts that read a run's logs are
fed a small hand-made run folder whose byte counts follow the codec's sizes.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import fig1_psi_vs_exact as fig1  # noqa: E402
import overhead  # noqa: E402
import scaling  # noqa: E402
import server_step  # noqa: E402
import shapley  # noqa: E402
import wire  # noqa: E402
from _common import interleaved, make_round  # noqa: E402

from fedfair.mechanism import cgsv_approx, exact_cgsv, normalised_error, unit_scales  # noqa: E402
from fedfair.runtime.wire import SIZE_HEADER_BYTES, encoded_size  # noqa: E402

# the reference fails on 1-entry tensors
SHAPES = [torch.Size([6, 5]), torch.Size([6]), torch.Size([40]), torch.Size([3])]


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


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("vectors", fig1.VECTORS)
def test_fig1_both_variants_with_the_sampling_curve(tmp_path: Path, vectors: str) -> None:
    stem = tmp_path / vectors
    assert fig1.main(["--vectors", vectors, "--agents", "2", "4", "--dims", "300", "--trials", "2",
                      "--repeats", "1", "--out", str(stem)]) == 0
    rows = _read_rows(stem.with_suffix(".csv"))
    assert list(rows[0]) == fig1.COLUMNS
    assert {"vectors", "sampling_k", "sampling_l1", "sampling_l2", "sampling_s"} <= set(rows[0])
    assert [(r["n"], r["trial"]) for r in rows] == [("2", "0"), ("2", "1"), ("4", "0"), ("4", "1")]
    assert all(r["vectors"] == vectors and r["weights"] == "uniform" for r in rows)
    assert all(r["sampling_k"] == "1" for r in rows)  # the default budget: one permutation = ψ's N evaluations
    assert all(float(r["sampling_l1"]) >= float(r["sampling_l2"]) > 0 and float(r["sampling_s"]) > 0 for r in rows)
    assert all(float(r["l1"]) >= float(r["l2"]) >= 0 and r["naive_s"] != "" for r in rows)
    assert float(rows[0]["l1"]) < 1e-6  # two agents: ψ is exact up to normalisation
    # ψ's error columns are normalised_error(ψ, φ) on the round the row was drawn from
    row = rows[3]
    updates, a = fig1.make_round(4, 300, fig1.round_seed(4, 1, 0), "uniform", vectors)
    _, psi = cgsv_approx(updates, a, fig1.GAMMA)
    phi = exact_cgsv(updates * unit_scales(updates, fig1.GAMMA).to(updates.dtype)[:, None], a)
    l1, l2 = normalised_error(psi, phi)
    assert float(row["l1"]) == pytest.approx(l1, rel=1e-5) and float(row["l2"]) == pytest.approx(l2, rel=1e-5)
    assert l1 > 1e-5  # a non-trivial error at N = 4, so the comparison above checks something
    if importlib.util.find_spec("matplotlib") is not None:
        assert stem.with_suffix(".png").stat().st_size > 0


def test_fig1_sampling_converges_to_exact_phi_with_a_huge_budget() -> None:
    for n in (3, 5):
        m = fig1.measure(n, 200, trial=0, repeats=1, weights="importance", naive_budget=0, vectors="correlated",
                         budget=40_000)
        assert m["sampling_k"] == 40_000 and m["naive_s"] is None
        assert m["sampling_l1"] < 0.01 and m["sampling_l2"] < 0.01
    low = fig1.measure(5, 200, trial=0, repeats=1, weights="uniform", naive_budget=0, vectors="iid")
    assert low["sampling_k"] == 1 and low["sampling_l1"] > 0.05  # one permutation is far from φ


def test_fig1_is_deterministic_for_a_seed() -> None:
    def values(seed: int) -> list[object]:
        m = fig1.measure(4, 100, trial=1, repeats=1, weights="uniform", naive_budget=0, budget=3, seed=seed)
        return [m[k] for k in ("l1", "l2", "max_abs_diff", "sampling_k", "sampling_l1", "sampling_l2")]

    assert values(0) == values(0) and values(0) != values(1)


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
