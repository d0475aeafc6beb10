"""Each method's server step against hand computation on tiny inputs (no process group)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from fedfair.config import load_config
from fedfair.data import default_val_size
from fedfair.methods import NAMES as METHODS
from fedfair.strategies import REGISTRY, RoundInput, ServerContext, build_strategy
from fedfair.strategies.cffl import update_reputation
from fedfair.strategies.eci import eci_fractions
from fedfair.strategies.eu import eu_fractions
from fedfair.strategies.rr import rr_order

F64 = torch.float64


def make(method: str, *overrides: str, shard_sizes=(1, 2, 1), layer_sizes=(4, 2), accuracy=None):
    n = len(shard_sizes)
    cfg = load_config(None, [f"mechanism.method={method}", f"data.agents={n}", *overrides])
    ctx = ServerContext(agents=n, dim=sum(layer_sizes), layer_sizes=list(layer_sizes),
                        shard_sizes=list(shard_sizes), validation_accuracy=accuracy)
    return build_strategy(cfg, ctx)


def inp(updates, round=1, server=None, agents=None, extras=None, valid=None, lr=0.5) -> RoundInput:
    u = torch.as_tensor(updates, dtype=torch.float32)
    n, d = u.shape
    w = torch.zeros(d) if server is None else torch.as_tensor(server, dtype=torch.float32)
    return RoundInput(round=round, updates=u,
                      extras=torch.zeros(n, 0) if extras is None else torch.as_tensor(extras, dtype=torch.float32),
                      valid=torch.ones(n, dtype=torch.bool) if valid is None else torch.as_tensor(valid),
                      server_model=w, agent_models=w.repeat(n, 1) if agents is None else torch.as_tensor(
                          agents, dtype=torch.float32), lr=lr)


def received(step, dim):
    return [rw.values if rw.indices is None
            else torch.zeros(dim, dtype=rw.values.dtype).index_put((rw.indices,), rw.values) for rw in step.rewards]


U = [[1.0, 0.0, 0.0, 0.0, 2.0, 0.0],
     [0.0, 3.0, 0.0, 0.0, 0.0, 4.0],
     [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]]


def test_every_configured_method_is_registered():
    assert sorted(REGISTRY) == sorted(METHODS)
    assert [m for m in METHODS if REGISTRY[m].needs_validation] == ["cffl", "eci"]
    assert [m for m in METHODS if not REGISTRY[m].communicates] == ["standalone"]


def test_default_validation_size():
    assert default_val_size(1437) == 144  # digits: 10% of the training data
    assert default_val_size(60000) == 1000  # capped
    assert default_val_size(3) == 1


# ---------------------------------------------------------------- standalone

def test_standalone_gamma_step_and_plain_sgd():
    w0, delta = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([3.0, 0.0, 4.0])
    s = make("standalone", "mechanism.grad_norm=0.5")
    assert not s.communicates
    torch.testing.assert_close(s.local_apply(w0, delta, 1), w0 + 0.5 * delta / (5.0 + 1e-7))
    torch.testing.assert_close(s.local_apply(w0, torch.zeros(3), 1), w0)  # a zero update stays zero
    s = make("standalone", "mechanism.standalone.step=sgd")
    torch.testing.assert_close(s.local_apply(w0, delta, 1), w0 + delta)
    empty = s.server_step(inp(U))  # the empty decision: the server model stays, nobody receives anything
    assert empty.server_delta is None and empty.rewards == [None] * 3
    assert (empty.psi, empty.r, empty.q) == (None, None, None)


# ---------------------------------------------------------------- fedavg

def test_fedavg_size_weighted_raw_average_and_everyone_gets_the_model():
    s = make("fedavg")
    w = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.0, 1.0])
    step = s.server_step(inp(U, server=w))
    expected = torch.tensor([0.25, 1.5, 0.0, 0.25, 0.5, 2.0])  # (1*U0 + 2*U1 + 1*U2) / 4, raw
    torch.testing.assert_close(step.server_delta, expected)
    new = w + step.server_delta
    for v in received(step, 6):  # dense, and exactly the server's new model
        assert torch.equal(w + v, new)
    assert all(rw.indices is None for rw in step.rewards)


def test_fedavg_reward_is_new_model_minus_the_agents_own():
    s = make("fedavg")
    w = torch.zeros(6)
    agents = torch.tensor([[0.0] * 6, [1.0] * 6, [0.0, 0, 0, 0, 0, -2]])
    step = s.server_step(inp(U, server=w, agents=agents))
    new = w + step.server_delta
    for i, v in enumerate(received(step, 6)):
        torch.testing.assert_close(agents[i] + v, new)


def test_fedavg_builds_one_reward_per_model_version():
    """Agents that hold the server's model share one reward object (built and encoded once);
    an agent with another model gets its own."""
    s = make("fedavg")
    w = torch.zeros(6)
    same = s.server_step(inp(U, server=w)).rewards
    assert same[0] is same[1] is same[2]
    agents = torch.tensor([[0.0] * 6, [1.0] * 6, [0.0] * 6])
    mixed = s.server_step(inp(U, server=w, agents=agents)).rewards
    assert mixed[0] is mixed[2] and mixed[1] is not mixed[0]


def test_fedavg_ignores_rejected_uploads():
    s = make("fedavg")
    step = s.server_step(inp(U, valid=[True, False, True]))
    torch.testing.assert_close(step.server_delta, (torch.tensor(U[0]) + torch.tensor(U[2])) / 2)


# ---------------------------------------------------------------- cgsv, beta = inf: importance-weighted FedAvg

def test_cgsv_beta_inf_is_importance_weighted_fedavg_with_dense_downloads():
    s = make("cgsv", "mechanism.beta=inf", "mechanism.grad_norm=1.0")
    u = torch.tensor(U)
    unit = u / (u.norm(dim=1, keepdim=True) + 1e-7)
    w = torch.zeros(6)
    for t in (1, 2, 3):
        a = torch.tensor([0.25, 0.5, 0.25]) if t == 1 else s.r.to(torch.float32)
        step = s.server_step(inp(U, round=t))
        torch.testing.assert_close(step.server_delta, a @ unit)
        for v in received(step, 6):
            assert torch.equal(v, step.server_delta)
        assert all(rw.indices is None for rw in step.rewards)
        w = w + step.server_delta


# ---------------------------------------------------------------- dw, eu

def test_dw_fraction_is_relative_shard_size():
    s = make("dw", "mechanism.mask_scope=global", shard_sizes=(1, 2, 1))
    step = s.server_step(inp(U))
    torch.testing.assert_close(step.q, torch.tensor([0.5, 1.0, 0.5], dtype=F64))
    ks = [rw.indices.numel() for rw in step.rewards]
    assert ks == [3, 6, 3]  # floor(6 q)
    # the aggregate is CGSV's (round 1: size weights over normalised uploads)
    cg = make("cgsv", shard_sizes=(1, 2, 1))
    torch.testing.assert_close(step.server_delta, cg.server_step(inp(U)).server_delta)


def test_eu_fraction_min_distance_over_distance():
    updates = torch.tensor([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]])
    agg = torch.tensor([0.0, 0.0])
    q = eu_fractions(updates, agg, torch.tensor([True, True, True]))
    torch.testing.assert_close(q, torch.tensor([1 / 5, 1.0, 1 / 10], dtype=F64))
    q = eu_fractions(updates, agg, torch.tensor([True, False, True]))
    torch.testing.assert_close(q, torch.tensor([1.0, 0.5, 0.5], dtype=F64))  # rejected: the round's min q


def test_eu_server_step_uses_raw_distance_to_the_aggregate():
    s = make("eu", "mechanism.mask_scope=global", "mechanism.grad_norm=1.0")
    step = s.server_step(inp(U))
    d = (torch.tensor(U, dtype=F64) - step.server_delta.to(F64)).norm(dim=1)
    torch.testing.assert_close(step.q, d.min() / d)
    assert [rw.indices.numel() for rw in step.rewards] == [math.floor(6 * float(q) + 1e-9) for q in step.q]


# ---------------------------------------------------------------- rr

def test_rr_order_rotates():
    assert rr_order(1, 3) == [0, 1, 2]
    assert rr_order(2, 3) == [1, 2, 0]
    assert rr_order(4, 3) == [0, 1, 2]


def test_rr_applies_raw_updates_in_turn_and_each_agent_gets_the_model_after_its_own():
    s = make("rr")
    u = torch.tensor(U)
    w = torch.tensor([1.0, 0, 0, 0, 0, 0])
    agents = torch.stack([w, w + 1, w - 1])
    step = s.server_step(inp(U, round=2, server=w, agents=agents))  # order 1, 2, 0
    torch.testing.assert_close(step.server_delta, u.sum(0))
    targets = {1: w + u[1], 2: w + u[1] + u[2], 0: w + u[1] + u[2] + u[0]}
    for i, v in enumerate(received(step, 6)):
        torch.testing.assert_close(agents[i] + v, targets[i])


# ---------------------------------------------------------------- qffl

def test_qffl_hand_computed_step_q1():
    s = make("qffl", "mechanism.qffl.q=1")
    assert s.extras == 1 and s.agent_extras(lambda: 0.25) == [0.25]
    updates = [[-0.5, 0.0], [0.0, 1.0]]       # w_bar - w
    losses = [[2.0], [1.0]]
    lr = 0.5
    step = make("qffl", "mechanism.qffl.q=1", shard_sizes=(1, 1), layer_sizes=(2,)).server_step(
        inp(updates, extras=losses, lr=lr))
    # dw_k = (w - w_bar)/lr: [1, 0], [0, -2]; Delta_k = F dw: [2, 0], [0, -2]
    # h_k = q F^(q-1) |dw|^2 + F^q / lr = 1 + 4 = 5,  4 + 2 = 6
    expected = -torch.tensor([2.0, -2.0]) / 11.0
    torch.testing.assert_close(step.server_delta, expected)
    torch.testing.assert_close(step.r, torch.tensor([5 / 11, 6 / 11], dtype=F64))
    for v in received(step, 2):
        assert torch.equal(v, step.server_delta)


def test_qffl_q0_is_uniform_fedavg():
    updates = torch.tensor(U)
    step = make("qffl", "mechanism.qffl.q=0").server_step(inp(U, extras=[[3.0], [0.1], [7.0]]))
    torch.testing.assert_close(step.server_delta, updates.mean(0))


def test_qffl_skips_rejected_uploads():
    step = make("qffl", "mechanism.qffl.q=0").server_step(
        inp(U, extras=[[3.0], [0.1], [7.0]], valid=[True, False, True]))
    torch.testing.assert_close(step.server_delta, (torch.tensor(U[0]) + torch.tensor(U[2])) / 2)


# ---------------------------------------------------------------- cffl

def test_cffl_reputation_update_by_hand():
    c = torch.full((3,), 1 / 3, dtype=F64)
    scores = torch.tensor([0.6, 0.3, 0.1], dtype=F64)
    active = torch.ones(3, dtype=torch.bool)
    new, act = update_reputation(c, scores, active, alpha=5.0, threshold=1 / 9)
    raw = torch.sinh(5.0 * (0.8 / 3 + 0.2 * scores / scores.sum()))
    expected = raw / raw.sum()
    assert bool((expected >= 1 / 9).all())
    torch.testing.assert_close(new, expected)
    assert act.all()
    # an agent below the threshold is dropped for good, the rest renormalised
    new, act = update_reputation(c, scores, active, alpha=5.0, threshold=0.33)
    keep = expected >= 0.33
    assert act.tolist() == keep.tolist() and not keep.all()
    torch.testing.assert_close(new, torch.where(keep, expected, 0.0) / expected[keep].sum())


def test_cffl_server_step_by_hand():
    w = torch.tensor([0.0, 0, 0, 0, 0, 0])
    # a toy validation "accuracy": how far the model moved along entry 1
    acc = lambda model: float(0.5 + 0.1 * model[1])  # noqa: E731
    s = make("cffl", "mechanism.grad_norm=1.0", "mechanism.mask_scope=global", accuracy=acc)
    step = s.server_step(inp(U, server=w))
    u = torch.tensor(U, dtype=F64)
    unit = u / (u.norm(dim=1, keepdim=True) + 1e-7)
    torch.testing.assert_close(step.server_delta.to(F64), torch.tensor([0.25, 0.5, 0.25], dtype=F64) @ unit,
                               rtol=1e-6, atol=1e-7)
    scores = torch.tensor([0.5, 0.5 + 0.1 * 0.6, 0.5], dtype=F64)
    torch.testing.assert_close(step.psi, scores, rtol=1e-6, atol=1e-7)
    expected_c, _ = update_reputation(torch.full((3,), 1 / 3, dtype=F64), scores, torch.ones(3, dtype=torch.bool),
                                      5.0, 1 / 9)
    torch.testing.assert_close(step.r, expected_c, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(step.q, expected_c / expected_c.max())
    assert step.q[1] == 1.0
    assert [rw.indices.numel() for rw in step.rewards] == [math.floor(6 * float(q)) for q in step.q]
    # round 2 aggregates with the reputations
    step2 = s.server_step(inp(U, round=2, server=w + step.server_delta))
    torch.testing.assert_close(step2.server_delta.to(F64), expected_c @ unit, rtol=1e-6, atol=1e-7)


def test_cffl_needs_validation():
    s = make("cffl")
    with pytest.raises(RuntimeError, match="validation"):
        s.server_step(inp(U))


# ---------------------------------------------------------------- eci

def brute_force_shapley(value, n):
    phi = [0.0] * n
    perms = list(itertools.permutations(range(n)))
    for order in perms:
        coalition = frozenset()
        for i in order:
            phi[i] += value(coalition | {i}) - value(coalition)
            coalition = coalition | {i}
    return torch.tensor([p / len(perms) for p in phi], dtype=F64)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_eci_exact_path_equals_brute_force_shapley(n):
    g = torch.Generator().manual_seed(n)
    d = 7
    updates = torch.randn(n, d, generator=g)
    probe = torch.randn(d, generator=g)
    # a non-additive game: a clipped, saturating "accuracy" of the coalition model
    acc = lambda model: float(torch.sigmoid(3 * (model @ probe)).clamp(0.2, 0.9))  # noqa: E731
    sizes = [int(x) for x in torch.randint(1, 5, (n,), generator=g)]
    s = make("eci", "mechanism.grad_norm=1.0", shard_sizes=sizes, layer_sizes=(d,), accuracy=acc)
    w = torch.randn(d, generator=g)
    step = s.server_step(inp(updates, server=w))
    a = torch.tensor(sizes, dtype=F64) / sum(sizes)
    unit = updates.to(F64) / (updates.to(F64).norm(dim=1, keepdim=True) + 1e-7)
    weighted = (a[:, None] * unit).to(torch.float32)

    def value(S):
        step_ = weighted[sorted(S)].sum(0) if S else torch.zeros(d)
        return acc(w + step_)

    expected = brute_force_shapley(value, n)
    torch.testing.assert_close(step.psi, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(step.r, expected, rtol=1e-6, atol=1e-6)  # accumulated after one round
    torch.testing.assert_close(step.q, eci_fractions(step.psi))


def test_eci_fractions_and_accumulation():
    torch.testing.assert_close(eci_fractions(torch.tensor([0.2, -0.1, 0.4], dtype=F64)),
                               torch.tensor([0.5, 0.0, 1.0], dtype=F64))
    torch.testing.assert_close(eci_fractions(torch.tensor([-0.2, 0.0], dtype=F64)), torch.ones(2, dtype=F64))
    acc = lambda model: float(model[0])  # noqa: E731  additive game: phi_i = a_i u_i[0]
    s = make("eci", "mechanism.grad_norm=1.0", accuracy=acc)
    first = s.server_step(inp(U))
    torch.testing.assert_close(first.r, torch.tensor([0.25 / math.sqrt(5), 0.0, 0.0], dtype=F64), rtol=1e-6, atol=1e-9)
    step = s.server_step(inp(U, round=2))
    torch.testing.assert_close(step.r, 2 * first.r, rtol=1e-6, atol=1e-9)  # same weights, same values


def test_eci_samples_permutations_above_eight_agents():
    n, d = 9, 3
    calls = []

    def acc(model):
        calls.append(1)
        return float(model.sum())

    s = make("eci", "mechanism.eci.permutations=4", "mechanism.grad_norm=1.0", shard_sizes=[1] * n,
             layer_sizes=(d,), accuracy=acc)
    updates = torch.rand(n, d, generator=torch.Generator().manual_seed(0)) + 0.1
    step = s.server_step(inp(updates))
    assert len(calls) <= 4 * n + 1 < 2 ** n  # sampled, memoised; not all 512 coalitions
    # the game is additive, so every permutation gives the exact value a_i * sum(u_i)
    unit = updates.to(F64) / (updates.to(F64).norm(dim=1, keepdim=True) + 1e-7)
    torch.testing.assert_close(step.psi, unit.sum(1) / n, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- checkpoint state

@pytest.mark.parametrize("method", ["cgsv", "dw", "eu", "cffl", "eci"])
def test_state_round_trips(method):
    acc = lambda model: float(0.5 + 0.1 * model[1])  # noqa: E731
    a = make(method, accuracy=acc)
    a.server_step(inp(U))
    b = make(method, accuracy=acc)
    b.load_state_dict(a.state_dict())
    sa, sb = a.server_step(inp(U, round=2)), b.server_step(inp(U, round=2))
    assert torch.equal(sa.server_delta, sb.server_delta) and torch.equal(sa.q, sb.q)
