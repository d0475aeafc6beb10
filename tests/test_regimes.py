"""The training-regime controls of the ablation, against hand-computed rounds.

mechanism.normalize (rescale, clip, none), mechanism.eps, the Γ schedule (grad_norm_decay),
r_min = 0, train.dtype = float64, and CGSV's r computed beside a baseline (ρ_r of Tables 7/8).
Every expectation is written out in plain Python arithmetic, not with the code under test.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_strategies import inp, make

from fedfair.config import load_config
from fedfair.data import load_task, make_shards
from fedfair.mechanism import grad_norm_at, unit_scales, update_importance, upload_scales
from fedfair.models import build_model
from fedfair.runtime.local import run_local
from fedfair.runtime.training import LocalTrainer, flatten_parameters
from fedfair.strategies import importance_audit

ROOT = Path(__file__).resolve().parents[1]
F64 = torch.float64

# Two agents, D = 2: a large upload (norm 5) and a small one (norm 0.1), equal data.
DW = [[3.0, 4.0], [0.0, 0.1]]


def hand_round(scales: list[float], weights: list[float]) -> tuple[list[float], list[float]]:
    """u_N = Σ a_i s_i Δw_i and ψ_i = cos(Δw_i, u_N), by hand."""
    agg = [sum(a * s * row[j] for a, s, row in zip(weights, scales, DW)) for j in range(2)]
    norm = math.hypot(*agg)
    psi = [(row[0] * agg[0] + row[1] * agg[1]) / (math.hypot(*row) * norm) for row in DW]
    return agg, psi


@pytest.mark.parametrize("normalize, eps, scales", [
    ("rescale", 0.0, [1 / 5, 1 / 0.1]),                       # both to norm Γ = 1 exactly
    ("rescale", 1e-7, [1 / (5 + 1e-7), 1 / (0.1 + 1e-7)]),    # the reference code's ε
    ("clip", 1e-7, [1 / 5, 1.0]),                              # the big one capped, the small one kept
    ("none", 1e-7, [1.0, 1.0]),                                # raw updates
])
def test_cgsv_round_under_each_normaliser(normalize, eps, scales):
    s = make("cgsv", "mechanism.grad_norm=1", f"mechanism.normalize={normalize}", f"mechanism.eps={eps}",
             shard_sizes=(1, 1), layer_sizes=(2,))
    step = s.server_step(inp(DW))
    agg, psi = hand_round(scales, [0.5, 0.5])
    assert step.server_delta.tolist() == pytest.approx(agg, rel=1e-6)
    assert step.psi.tolist() == pytest.approx(psi, rel=1e-6)
    r = [0.05 * max(p, 0) for p in psi]  # r0 = 0, alpha = 0.95, clamp 1e-3 does not bind
    assert step.r.tolist() == pytest.approx([x / sum(r) for x in r], rel=1e-6)


def test_normalisers_differ_where_they_should():
    norms = torch.tensor([5.0, 0.1, 0.0, 1e-9], dtype=F64)
    assert upload_scales(norms, 1.0, 0.0, "rescale").tolist() == pytest.approx([0.2, 10.0, 0.0, 1e9])
    assert upload_scales(norms, 1.0, 0.0, "clip").tolist() == [0.2, 1.0, 0.0, 1.0]
    assert upload_scales(norms, 1.0, 0.0, "none").tolist() == [1.0, 1.0, 0.0, 1.0]  # a zero upload stays zero
    # the reference code's accident: with ε = 1e-7 an update of norm 1e-9 is scaled by ~Γ/ε, not Γ/‖Δw‖,
    # so it keeps its magnitude: ‖u‖ = Γ·1e-9/(1e-9 + 1e-7) ≈ Γ/101 instead of Γ
    s = upload_scales(norms, 0.5, 1e-7, "rescale")
    assert float(s[3]) * 1e-9 == pytest.approx(0.5 * 1e-9 / (1e-9 + 1e-7))
    assert float(s[0]) * 5.0 == pytest.approx(0.5, rel=1e-7)


def test_grad_norm_schedule():
    assert grad_norm_at(0.5, 1.0, 1) == 0.5 and grad_norm_at(0.5, 1.0, 200) == 0.5
    assert grad_norm_at(0.5, 0.5, 3) == pytest.approx(0.125)
    assert grad_norm_at(0.5, 0.9885, 200) == pytest.approx(0.05, rel=0.01)  # the ablation's Γ/10 at T = 200
    s = make("cgsv", "mechanism.grad_norm=1", "mechanism.grad_norm_decay=0.5", "mechanism.eps=0",
             shard_sizes=(1, 1), layer_sizes=(2,))
    s.r = torch.tensor([0.5, 0.5], dtype=F64)  # as if after round 2, so round 3 aggregates with r
    step = s.server_step(inp(DW, round=3))
    agg, _ = hand_round([0.25 / 5, 0.25 / 0.1], [0.5, 0.5])  # Γ_3 = 1 · 0.5^2
    assert step.server_delta.tolist() == pytest.approx(agg, rel=1e-6)


@pytest.mark.parametrize("normalize, want", [("rescale", 0.25 / 5), ("clip", 0.25 / 5), ("none", 1.0)])
def test_standalone_steps_like_the_mechanism(normalize, want):
    s = make("standalone", "mechanism.grad_norm=1", "mechanism.grad_norm_decay=0.5", "mechanism.eps=0",
             f"mechanism.normalize={normalize}")
    w0, delta = torch.zeros(2), torch.tensor([3.0, 4.0])
    assert s.local_apply(w0, delta, 3).tolist() == pytest.approx([3 * want, 4 * want])


def test_baselines_normalise_with_the_same_controls():
    """CFFL and ECI aggregate the normalised uploads; under clip the small upload is not blown up to Γ."""
    for method in ("cffl", "eci"):
        rows = {}
        for normalize in ("rescale", "clip"):
            s = make(method, "mechanism.grad_norm=1", f"mechanism.normalize={normalize}", "mechanism.eps=0",
                     shard_sizes=(1, 1), layer_sizes=(2,), accuracy=lambda w: 0.5)
            from fedfair.strategies.base import normalised_rows
            rows[normalize] = normalised_rows(inp(DW), s.mechanism)
        assert rows["rescale"][1].tolist() == pytest.approx([0.0, 1.0])
        assert rows["clip"][1].tolist() == pytest.approx([0.0, 0.1])
        assert rows["clip"][0].tolist() == pytest.approx([0.6, 0.8])
    assert unit_scales(torch.tensor(DW), 1.0, 0.0, "clip").tolist() == pytest.approx([0.2, 1.0])


# ---------------------------------------------------------------- r_min = 0


def test_r_min_zero_keeps_a_distribution():
    r0 = torch.zeros(2, dtype=F64)
    r = update_importance(r0, torch.tensor([-0.5, 0.2], dtype=F64), alpha=0.95, r_min=0.0)
    assert r.tolist() == [0.0, 1.0]  # [-0.025, 0.01] clamped at 0, normalised
    # every agent at 0 (all ψ <= 0): nothing tells them apart, r is uniform
    r = update_importance(r0, torch.tensor([-0.5, -0.2], dtype=F64), alpha=0.95, r_min=0.0)
    assert r.tolist() == [0.5, 0.5]


def test_r_min_zero_round_after_an_all_zero_r():
    s = make("cgsv", "mechanism.r_min=0", "mechanism.grad_norm=1", "mechanism.eps=0",
             shard_sizes=(1, 1), layer_sizes=(2,))
    step1 = s.server_step(inp([[1.0, 0.0], [-1.0, 0.0]]))  # opposite uploads cancel: u_N = 0, ψ = 0
    assert step1.r.tolist() == [0.5, 0.5]
    step2 = s.server_step(inp(DW, round=2))  # aggregates with r = (1/2, 1/2): a valid round
    agg, psi = hand_round([1 / 5, 1 / 0.1], [0.5, 0.5])
    assert step2.server_delta.tolist() == pytest.approx(agg, rel=1e-6)
    assert torch.isfinite(step2.r).all() and float(step2.r.sum()) == pytest.approx(1.0)


# ---------------------------------------------------------------- CGSV's r beside a baseline


def hand_cgsv_r(rounds: list[list[list[float]]], sizes: list[float], gamma: float, alpha: float = 0.95,
                r_min: float = 1e-3) -> list[float]:
    """CGSV's moving-average importance over several rounds of uploads, in plain Python."""
    n = len(sizes)
    r = [0.0] * n
    for t, U in enumerate(rounds, start=1):
        a = [x / sum(sizes) for x in sizes] if t == 1 else r
        norms = [math.sqrt(sum(v * v for v in row)) for row in U]
        u = [[gamma * v / (nm + 1e-7) for v in row] for row, nm in zip(U, norms)]
        agg = [sum(a[i] * u[i][j] for i in range(n)) for j in range(len(U[0]))]
        an = math.sqrt(sum(v * v for v in agg))
        psi = [sum(x * y for x, y in zip(row, agg)) / (nm * an) for row, nm in zip(U, norms)]
        moved = [max(alpha * r[i] + (1 - alpha) * psi[i], r_min) for i in range(n)]
        r = [m / sum(moved) for m in moved]
    return r


def test_audit_r_beside_fedavg_is_cgsvs_r():
    gen = torch.Generator().manual_seed(3)
    rounds = [torch.randn(3, 6, generator=gen).tolist() for _ in range(4)]
    s = make("fedavg", shard_sizes=(1, 2, 1))
    audit = importance_audit(s)
    assert audit is not None and importance_audit(make("cgsv")) is None and importance_audit(make("standalone")) is None
    for t, U in enumerate(rounds, start=1):
        audit.value(inp(U, round=t))
    assert audit.r.tolist() == pytest.approx(hand_cgsv_r(rounds, [1, 2, 1], gamma=0.5), rel=1e-6)


def test_rho_r_from_cgsvs_r_for_a_baseline_in_a_run(tmp_path):
    """An RR run (no r of its own; agents end on different models) logs CGSV's r (cgsv_r) and
    summary.rho_r_cgsv = 100·pearson(final cgsv_r, final acc)."""
    cfg = load_config(ROOT / "configs" / "default.toml", [
        "run.name=fa", f"run.out_dir={tmp_path}", "run.rounds=4", "run.eval_every=4", "run.progress=false",
        "data.agents=3", "mechanism.method=rr"])
    run_local(cfg)
    s = json.loads((tmp_path / "fa" / "summary.json").read_text())
    with open(tmp_path / "fa" / "agents.csv") as f:
        last = [row for row in csv.DictReader(f) if row["round"] == "4"]
    # agents.csv writes 6 significant digits (%.6g): the logged r is the summary's, digit for digit
    # (an approx at rel 1e-6 is tighter than that format and failed where rounding hit 1.1e-6)
    assert [row["cgsv_r"] for row in last] == [f"{v:.6g}" for v in s["final_cgsv_r"]]
    assert sum(s["final_cgsv_r"]) == pytest.approx(1.0)
    acc = s["final_acc"]
    assert all(row["r"] == "" for row in last) and s["rho_r"] is None  # RR has no coefficient of its own
    r = s["final_cgsv_r"]  # full precision (the CSV rounds)
    x, y = np.array(r) - np.mean(r), np.array(acc) - np.mean(acc)
    want = 100 * float(x @ y) / math.sqrt(float(x @ x) * float(y @ y))
    assert s["rho_r_cgsv"] == pytest.approx(want, abs=1e-9)


# ---------------------------------------------------------------- float64 training


def test_float64_keeps_the_steps_float32_rounds_away():
    """At lr ~1e-9 the float32 step w + lr·g rounds to w for most entries; float64 keeps them."""
    task = load_task("digits")
    shards, _ = make_shards(task, partition="uni", agents=2, seed=0)
    zeros = {}
    for dtype in ("float32", "float64"):
        cfg = load_config(None, ["train.lr=1e-9", f"train.dtype={dtype}"])
        torch.manual_seed(0)
        model = build_model("digits_cnn", task)
        model = model.to(torch.float64) if dtype == "float64" else model
        w = flatten_parameters(model)
        trainer = LocalTrainer(model, task, shards[0].indices, shards[0].labels, cfg.train,
                               torch.Generator().manual_seed(1))
        before = w.clone()
        trainer.train_round(1)
        delta = w - before
        assert delta.dtype == getattr(torch, dtype)
        zeros[dtype] = float((delta == 0).double().mean())
    assert zeros["float32"] > 0.5 and zeros["float64"] < 0.05, zeros


def test_float64_run_sends_float32_and_agents_match_the_servers_copy(tmp_path):
    results = {}
    for dtype in ("float32", "float64"):
        cfg = load_config(ROOT / "configs" / "default.toml", [
            f"run.name={dtype}", f"run.out_dir={tmp_path}", "run.rounds=3", "run.eval_every=3",
            "run.progress=false", "data.agents=2", f"train.dtype={dtype}"])
        results[dtype] = run_local(cfg)
    s32, s64 = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("float32", "float64"))
    assert s64["bytes_up"] == s32["bytes_up"]  # the wire carries float32 rows either way
    server = results["float64"][0]
    assert server["w"].dtype == np.float64 and server["agent_models"].dtype == np.float64
    for rank in (1, 2):
        w = results["float64"][rank]["w"]
        assert w.dtype == np.float64
        np.testing.assert_array_equal(w, server["agent_models"][rank - 1])  # the server's copy is exact
    assert not np.array_equal(server["w"], results["float32"][0]["w"].astype(np.float64))


def test_r_min_zero_runs_end_to_end(tmp_path):
    """mechanism.r_min = 0 under the real runtime: every round's r is a distribution (>= 0, sum 1)."""
    cfg = load_config(ROOT / "configs" / "default.toml", [
        "run.name=r0", f"run.out_dir={tmp_path}", "run.rounds=5", "run.eval_every=5", "run.progress=false",
        "data.agents=3", "mechanism.r_min=0"])
    run_local(cfg)
    with open(tmp_path / "r0" / "agents.csv") as f:
        rows = list(csv.DictReader(f))
    for t in range(1, 6):
        r = [float(row["r"]) for row in rows if row["round"] == str(t)]
        assert len(r) == 3 and min(r) >= 0 and sum(r) == pytest.approx(1.0, abs=1e-5)
    assert json.loads((tmp_path / "r0" / "summary.json").read_text())["rounds"] == 5


# ---------------------------------------------------------------- the upload norm column


def test_upload_norm_is_the_norm_of_the_update_the_agent_trained(tmp_path):
    """agents.csv's upload_norm is ‖Δw_i‖ of round 1, recomputed here by training agent i's first
    round in-process (same initial model, shard and generators as the runtime gives it)."""
    from fedfair.runtime.setup import build_model as initial_model
    from fedfair.runtime.setup import prepare

    cfg = load_config(ROOT / "configs" / "default.toml", [
        "run.name=norms", f"run.out_dir={tmp_path}", "run.rounds=1", "run.eval_every=1", "run.progress=false",
        "data.agents=3"])
    run_local(cfg)
    with open(tmp_path / "norms" / "agents.csv") as f:
        logged = [float(row["upload_norm"]) for row in csv.DictReader(f)]
    setup = prepare(cfg)
    want = []
    for i in (1, 2, 3):
        model = initial_model(cfg, setup)
        torch.manual_seed(cfg.run.seed * 7919 + i)
        w = flatten_parameters(model)
        trainer = LocalTrainer(model, setup.task, setup.shards[i - 1].indices, setup.shards[i - 1].labels,
                               cfg.train, torch.Generator().manual_seed(cfg.run.seed * 1_000_003 + i))
        before = w.clone()
        trainer.train_round(1)
        want.append(float((w - before).norm()))
    assert logged == pytest.approx(want, rel=1e-5)
    assert len(set(want)) == 3 and min(want) > 0
