"""Partial participation (run.participation): the seeded sample, the rules for absent agents
(docs/participation.md) against hand computation, participation = 1 unchanged, and a real run."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fedfair.config import ConfigError, load_config
from fedfair.mechanism import reward_fractions, update_importance
from fedfair.runtime.local import run_local
from fedfair.runtime.participation import present_agents, sampled_count
from fedfair.strategies import RoundInput, ServerContext, build_strategy

ROOT = Path(__file__).resolve().parents[1]
F64 = torch.float64


# ---------------------------------------------------------------- the sample

def test_sample_size_is_rounded_at_least_one_and_seeded():
    assert sampled_count(100, 0.1) == 10 and sampled_count(10, 0.01) == 1 and sampled_count(10, 0.26) == 3
    for t in range(1, 6):
        a = present_agents(100, 0.1, seed=3, round=t)
        assert a.dtype == torch.bool and int(a.sum()) == 10
        assert torch.equal(a, present_agents(100, 0.1, seed=3, round=t))  # what every rank computes alike
    assert not torch.equal(present_agents(100, 0.1, 3, 1), present_agents(100, 0.1, 3, 2))
    assert not torch.equal(present_agents(100, 0.1, 3, 1), present_agents(100, 0.1, 4, 1))
    assert bool(present_agents(7, 1.0, 0, 1).all())


def test_methods_without_a_partial_rule_refuse_it_with_one_line():
    for method in ("qffl", "cffl", "rr", "dw"):
        with pytest.raises(ConfigError) as e:
            load_config(None, [f"mechanism.method={method}", "run.participation=0.5"])
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith("run.participation = 0.5 is invalid") and repr(method) in msg
    for method in ("cgsv", "fedavg", "standalone"):
        load_config(None, [f"mechanism.method={method}", "run.participation=0.5"])
    with pytest.raises(ConfigError, match=r"run.participation = 0.0 is invalid: must be in \(0, 1\]"):
        load_config(None, ["run.participation=0"])


# ---------------------------------------------------------------- the rules, by hand

def make(method: str, n: int, *overrides: str, layer_sizes=(4, 2)):
    cfg = load_config(None, [f"mechanism.method={method}", f"data.agents={n}", *overrides])
    ctx = ServerContext(agents=n, dim=sum(layer_sizes), layer_sizes=list(layer_sizes), shard_sizes=[1, 2, 3, 4][:n])
    return build_strategy(cfg, ctx)


def round_input(updates, round, present) -> RoundInput:
    u = torch.tensor(updates, dtype=torch.float32)
    n, d = u.shape
    return RoundInput(round=round, updates=u, extras=torch.zeros(n, 0), valid=torch.ones(n, dtype=torch.bool),
                      server_model=torch.zeros(d), agent_models=torch.zeros(n, d), lr=0.1,
                      present=None if present is None else torch.tensor(present))


U = [[1.0, 0.0, 0.0, 0.0, 2.0, 0.0],
     [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],   # agent 2 is absent: its row never arrives (zero)
     [0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
     [0.0, 0.0, 3.0, 0.0, 0.0, 4.0]]
PRESENT = [True, False, True, True]


def test_cgsv_round_with_an_absent_agent_by_hand():
    s = make("cgsv", 4, "mechanism.alpha=0.5", "mechanism.grad_norm=1", "mechanism.eps=0", "mechanism.beta=1",
             "mechanism.mask_scope=global")
    s.r = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    step = s.server_step(round_input(U, 2, PRESENT))
    # weights: r renormalised over the present (0.1 + 0.3 + 0.4 = 0.8), the absent weigh 0
    a = [0.1 / 0.8, 0.0, 0.3 / 0.8, 0.4 / 0.8]
    units = [[1 / math.sqrt(5), 0, 0, 0, 2 / math.sqrt(5), 0], [0] * 6, [0, 0, 0, 1, 0, 0], [0, 0, 0.6, 0, 0, 0.8]]
    agg = [sum(a[i] * units[i][j] for i in range(4)) for j in range(6)]
    assert step.server_delta.tolist() == pytest.approx(agg, abs=1e-7)
    norm = math.sqrt(sum(x * x for x in agg))
    psi = [sum(units[i][j] * agg[j] for j in range(6)) / norm for i in range(4)]
    assert step.psi.tolist() == pytest.approx(psi, abs=1e-6)
    # r: the present move (0.5 r + 0.5 psi), renormalised to the 0.8 they held; the absent agent keeps 0.2
    moved = {i: 0.5 * [0.1, 0.2, 0.3, 0.4][i] + 0.5 * psi[i] for i in (0, 2, 3)}
    total = sum(moved.values())
    r = [0.8 * moved[0] / total, 0.2, 0.8 * moved[2] / total, 0.8 * moved[3] / total]
    assert step.r.tolist() == pytest.approx(r, abs=1e-6) and step.r[1].item() == 0.2
    assert float(step.r.sum()) == pytest.approx(1.0)
    # q over the present: tanh(r_i) / max over present j; the absent agent gets q = 0 and no reward
    top = max(math.tanh(r[i]) for i in (0, 2, 3))
    q = [math.tanh(r[0]) / top, 0.0, math.tanh(r[2]) / top, math.tanh(r[3]) / top]
    assert step.q.tolist() == pytest.approx(q, abs=1e-6)
    assert step.rewards[1] is None
    for i in (0, 2, 3):  # the global top floor(6 q_i) magnitudes of the aggregate
        k = math.floor(6 * q[i] + 1e-9)
        top_k = sorted(range(6), key=lambda j: -abs(agg[j]))[:k]
        assert step.rewards[i].indices.tolist() == sorted(top_k)


def test_cgsv_first_partial_round_starts_everyone_at_one_over_n():
    s = make("cgsv", 4, "mechanism.alpha=0.5")
    step = s.server_step(round_input(U, 1, PRESENT))
    assert step.r[1].item() == 0.25  # nothing known, nothing learned: the absent agent holds 1/N
    assert float(step.r[[0, 2, 3]].sum()) == pytest.approx(0.75)
    # round 1 weights: data sizes renormalised over the present (1, 3, 4 of 8)
    units = [[1 / math.sqrt(5), 0, 0, 0, 2 / math.sqrt(5), 0], [0] * 6, [0, 0, 0, 1, 0, 0], [0, 0, 0.6, 0, 0, 0.8]]
    a = [1 / 8, 0, 3 / 8, 4 / 8]
    agg = [0.5 * sum(a[i] * units[i][j] for i in range(4)) for j in range(6)]  # default grad_norm 0.5
    assert step.server_delta.tolist() == pytest.approx(agg, abs=1e-6)


def test_fedavg_with_an_absent_agent_by_hand():
    s = make("fedavg", 4)
    step = s.server_step(round_input(U, 3, PRESENT))
    a = [1 / 8, 0, 3 / 8, 4 / 8]  # shard sizes 1, 2, 3, 4 renormalised over the present
    assert step.r.tolist() == pytest.approx(a)
    assert step.server_delta.tolist() == pytest.approx([sum(a[i] * U[i][j] for i in range(4)) for j in range(6)])
    assert step.rewards[1] is None and step.q.tolist() == [1.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("method", ["cgsv", "fedavg"])
def test_everyone_present_is_exactly_no_mask(method):
    for t in (1, 2):
        outs = []
        for present in (None, [True] * 4):
            s = make(method, 4)
            s.server_step(round_input(U, 1, present))
            outs.append(s.server_step(round_input(U, 2 if t == 2 else 1, present)))
        a, b = outs
        for f in ("server_delta", "psi", "r", "q"):
            assert torch.equal(getattr(a, f), getattr(b, f)), f
        for x, y in zip(a.rewards, b.rewards):
            assert torch.equal(x.values, y.values) and (x.indices is None) == (y.indices is None)
    r, psi = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64), torch.tensor([0.5, -0.1, 0.9, 0.2], dtype=F64)
    everyone = torch.ones(4, dtype=torch.bool)
    assert torch.equal(update_importance(r, psi, 0.9, 1e-3, everyone), update_importance(r, psi, 0.9, 1e-3))
    assert torch.equal(reward_fractions(r, 2.0, everyone), reward_fractions(r, 2.0))


# ---------------------------------------------------------------- a real run

def read(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def partial_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("partial")
    out = {}
    for method, n in (("cgsv", 10), ("fedavg", 6)):
        cfg = load_config(ROOT / "configs" / "default.toml", [
            f"run.name={method}", f"run.out_dir={tmp}", "run.rounds=4", "run.eval_every=2", "run.progress=false",
            f"data.agents={n}", "data.partition=uni", "run.ranks=3", "run.participation=0.3",
            f"mechanism.method={method}"])
        out[method] = (cfg, run_local(cfg))
    return tmp, out


@pytest.mark.parametrize("method", ["cgsv", "fedavg"])
def test_a_partial_run_logs_the_sample_and_absent_agents_carry_nothing(partial_runs, method):
    tmp, out = partial_runs
    cfg, (server, *agents) = out[method]
    n = cfg.data.agents
    rows = read(tmp / method / "agents.csv")
    dim = server["w"].size
    prev_r = {i: 1.0 / n for i in range(1, n + 1)}
    for t in range(1, 5):
        present = present_agents(n, 0.3, cfg.run.seed, t)
        mine = sorted((r for r in rows if int(r["round"]) == t), key=lambda r: int(r["agent"]))
        assert [int(r["present"]) for r in mine] == present.int().tolist()
        assert sum(int(r["present"]) for r in mine) == round(0.3 * n)
        for r in mine:
            i = int(r["agent"])
            if r["present"] == "1":
                assert int(r["bytes_up"]) == 4 * dim and int(r["bytes_down"]) > 0
            else:
                assert int(r["bytes_up"]) == 0 and int(r["bytes_down"]) == 0 and r["q"] == "" and r["psi"] == ""
                if method == "cgsv":  # the absent agent's standing is carried unchanged (1/N before any news)
                    assert float(r["r"]) == pytest.approx(prev_r[i], rel=1e-5)
            prev_r[i] = float(r["r"])
    for i, agent in enumerate(agents, start=1):
        assert agent["received"] == sum(int(r["bytes_down"]) for r in rows if int(r["agent"]) == i)
        np.testing.assert_array_equal(agent["w"], server["agent_models"][i - 1])
    if method == "fedavg":  # the last round's present agents hold the server's model (up to float32 rounding
        last = present_agents(n, 0.3, cfg.run.seed, 4)  # of "new model minus yours"), the others an older one
        for i, agent in enumerate(agents):
            assert np.allclose(agent["w"], server["w"], rtol=0, atol=1e-6) == bool(last[i])
