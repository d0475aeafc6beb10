"""Valuation and reward masks against independent brute-force or hand-computed expectations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fedfair.mechanism import (
    cgsv_approx,
    global_k,
    layer_k_rows,
    layer_top_k_rewards,
    magnitude_order,
    reward_fractions,
    reward_masks,
    top_k_rewards,
    unit_scales,
    update_importance,
)
from fedfair.mechanism.valuation import _rounded


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- cgsv_approx


def _reference_cgsv(updates: torch.Tensor, weights: torch.Tensor, gamma: float, eps: float = 1e-7):
    """The textbook computation: explicit normalised copies, then per-agent cosines (float64)."""
    u = updates.double()
    unit = torch.stack([gamma * row / (row.norm() + eps) for row in u])
    aggregate = (weights.double()[:, None] * unit).sum(0)
    psi = torch.stack(
        [
            F.cosine_similarity(row, aggregate, dim=0) if row.norm() > 0 and aggregate.norm() > 0
            else torch.tensor(0.0, dtype=torch.float64)
            for row in unit
        ]
    )
    return aggregate, psi


@pytest.mark.parametrize("n,d", [(1, 7), (4, 100), (10, 5000)])
def test_cgsv_approx_matches_normalised_copies(n: int, d: int) -> None:
    g = _gen(n)
    updates = torch.randn(n, d, generator=g) * torch.rand(n, 1, generator=g) * 10
    weights = torch.rand(n, generator=g)
    aggregate, psi = cgsv_approx(updates, weights, grad_norm=0.5)
    ref_aggregate, ref_psi = _reference_cgsv(updates, weights, 0.5)
    assert aggregate.dtype == torch.float32 and aggregate.shape == (d,)
    assert psi.shape == (n,)
    torch.testing.assert_close(aggregate.double(), ref_aggregate, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(psi.double(), ref_psi, rtol=1e-5, atol=1e-6)


def test_cgsv_approx_zero_update_and_zero_aggregate() -> None:
    updates = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    aggregate, psi = cgsv_approx(updates, torch.tensor([0.5, 0.3, 0.2]), grad_norm=1.0)
    # u_1 = (0.6, 0.8, 0), u_3 = (0, 1, 0); u_N = 0.5 u_1 + 0.2 u_3 = (0.3, 0.6, 0)
    torch.testing.assert_close(aggregate, torch.tensor([0.3, 0.6, 0.0]), atol=1e-6, rtol=0)
    norm = math.hypot(0.3, 0.6)
    expected = torch.tensor([(0.18 + 0.48) / norm, 0.0, 0.6 / norm], dtype=torch.float64)
    torch.testing.assert_close(psi, expected, atol=1e-6, rtol=0)
    # all-zero uploads: aggregate zero, every psi zero, no NaN
    aggregate, psi = cgsv_approx(torch.zeros(3, 5), torch.ones(3), grad_norm=1.0)
    assert torch.equal(aggregate, torch.zeros(5)) and torch.equal(psi, torch.zeros(3, dtype=torch.float64))


def test_cgsv_approx_opposite_agents_cancel() -> None:
    updates = torch.tensor([[1.0, 2.0], [-1.0, -2.0]])
    aggregate, psi = cgsv_approx(updates, torch.tensor([0.5, 0.5]), grad_norm=1.0)
    assert float(aggregate.abs().max()) < 1e-6
    assert torch.isfinite(psi).all()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_cgsv_approx_refuses_non_finite_updates_by_agent(bad: float) -> None:
    updates = torch.randn(4, 10, generator=_gen())
    updates[1, 3] = bad
    updates[3, 0] = bad
    with pytest.raises(ValueError, match=r"agent row\(s\) \[1, 3\]"):
        cgsv_approx(updates, torch.ones(4), grad_norm=1.0)
    with pytest.raises(ValueError, match="non-finite"):
        unit_scales(updates, 1.0)


def test_cgsv_approx_survives_float32_norm_overflow() -> None:
    updates = torch.tensor([[3e20, 4e20], [1.0, 0.0]])
    aggregate, psi = cgsv_approx(updates, torch.tensor([1.0, 1.0]), grad_norm=1.0)
    torch.testing.assert_close(aggregate, torch.tensor([1.6, 0.8]), rtol=1e-5, atol=0)
    assert torch.isfinite(psi).all()


def test_cgsv_approx_validates_shapes() -> None:
    with pytest.raises(ValueError, match="weights"):
        cgsv_approx(torch.ones(3, 4), torch.ones(2), grad_norm=1.0)
    with pytest.raises(ValueError, match="N×D"):
        cgsv_approx(torch.ones(4), torch.ones(4), grad_norm=1.0)
    with pytest.raises(ValueError, match="grad_norm"):
        cgsv_approx(torch.ones(2, 4), torch.ones(2), grad_norm=0.0)


def test_unit_scales() -> None:
    updates = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, 0.5]])
    scales = unit_scales(updates, grad_norm=2.0, eps=0.0)
    torch.testing.assert_close(scales, torch.tensor([0.4, 0.0, 4.0], dtype=torch.float64))
    scales = unit_scales(updates, grad_norm=2.0)
    assert float(scales[0]) == pytest.approx(2.0 / (5.0 + 1e-7), rel=1e-12)


# ---------------------------------------------------------------- importance, fractions, k


def test_update_importance_hand_computed() -> None:
    r = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    psi = torch.tensor([0.9, -0.5, 0.1], dtype=torch.float64)
    out = update_importance(r, psi, alpha=0.8, r_min=0.01)
    # 0.8 r + 0.2 psi = [0.58, 0.14, 0.18]; clamp no-op; sum 0.9
    torch.testing.assert_close(out, torch.tensor([0.58, 0.14, 0.18], dtype=torch.float64) / 0.9)
    assert torch.equal(r, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))  # input untouched
    # round 1 from r = 0: r ∝ clamped psi
    out = update_importance(torch.zeros(3, dtype=torch.float64), psi, alpha=0.95, r_min=1e-3)
    raw = torch.tensor([0.045, 1e-3, 0.005], dtype=torch.float64)
    torch.testing.assert_close(out, raw / raw.sum())
    assert float(out.sum()) == pytest.approx(1.0)


def test_update_importance_validates() -> None:
    with pytest.raises(ValueError, match="alpha"):
        update_importance(torch.zeros(2), torch.zeros(2), alpha=1.5)
    with pytest.raises(ValueError, match="matching"):
        update_importance(torch.zeros(2), torch.zeros(3), alpha=0.5)


def test_reward_fractions_hand_computed() -> None:
    r = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    q = reward_fractions(r, beta=2.0)
    expected = torch.tensor([math.tanh(1.0), math.tanh(0.5), math.tanh(0.5)], dtype=torch.float64) / math.tanh(1.0)
    torch.testing.assert_close(q, expected)
    assert float(q.max()) == 1.0
    assert torch.equal(reward_fractions(r, math.inf), torch.ones(3, dtype=torch.float64))
    # larger beta is more altruistic: everyone's fraction grows
    assert bool((reward_fractions(r, 5.0) >= q).all())
    assert torch.equal(reward_fractions(torch.zeros(2), 1.0), torch.ones(2))


@pytest.mark.parametrize("beta", [0.5, 0.0, -1.0, math.nan])
def test_reward_fractions_refuses_beta_below_one(beta: float) -> None:
    with pytest.raises(ValueError, match="beta must be >= 1"):
        reward_fractions(torch.tensor([0.5, 0.5]), beta)


def test_global_k() -> None:
    q = torch.tensor([1.0, 0.5, 0.0, 0.3, 0.29999])
    assert global_k(10, q) == [10, 5, 0, 3, 2]
    # q = 1 gives exactly dim even when float32 arithmetic would not
    assert global_k(104_242, torch.tensor([1.0], dtype=torch.float32)) == [104_242]
    # 0.7 * 10 = 7.000000000000001 in float64 and 0.7f * 10 = 6.99999988: both must floor to 7
    assert global_k(10, torch.tensor([0.7], dtype=torch.float64)) == [7]
    assert global_k(10, torch.tensor([0.7], dtype=torch.float32)) == [7]
    # ...but a genuine fraction of an entry is floored, also for large D
    assert global_k(10**6, torch.tensor([0.5000006], dtype=torch.float64)) == [500_000]
    assert global_k(10**6, torch.tensor([0.4999996], dtype=torch.float64)) == [499_999]


def layer_k(layer_sizes: list[int], q_i: float) -> list[int]:
    """One agent's entry counts, min(ceil(n_l·q_i), n_l − 1), one Python call per tensor: the scalar
    reference that ``layer_k_rows`` (one array operation) must match."""
    q = float(q_i)
    return [max(0, min(_rounded(n * q, ceil=True), n - 1)) for n in layer_sizes]


def test_layer_k() -> None:
    for counts in (layer_k, lambda sizes, q_i: layer_k_rows(sizes, torch.tensor([q_i], dtype=torch.float64))[0]):
        assert counts([10, 100, 1, 7], 0.3) == [3, 30, 0, 3]  # 0.3*10 must not ceil to 4
        assert counts([10, 100, 1, 7], 1.0) == [9, 99, 0, 6]  # the n_l - 1 cap
        assert counts([10, 100, 1, 0], 0.0) == [0, 0, 0, 0]
        assert counts([10, 100], 0.011) == [1, 2]


# ---------------------------------------------------------------- top-k rewards


def _brute_top_k(x: torch.Tensor, k: int) -> torch.Tensor:
    """Full sort on the key (-|x_j|, j), in plain Python."""
    keys = sorted(range(x.numel()), key=lambda j: (-abs(float(x[j])), j))
    return torch.tensor(sorted(keys[:k]), dtype=torch.int64)


def _tied_vector(gen: torch.Generator, d: int) -> torch.Tensor:
    """Few distinct magnitudes with random signs: ties everywhere, including at every boundary."""
    levels = torch.randint(0, 4, (d,), generator=gen).float()
    signs = torch.where(torch.rand(d, generator=gen) < 0.5, -1.0, 1.0)
    return levels * signs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("tied", [False, True])
def test_top_k_rewards_matches_brute_force(tied: bool, dtype: torch.dtype) -> None:
    g = _gen(1)
    for d in [1, 2, 9, 64, 257]:
        x = (_tied_vector(g, d) if tied else torch.randn(d, generator=g)).to(dtype)
        ks = sorted({0, d, 1, d // 2, d // 3, max(0, d - 1)}) + [d // 2]
        rewards = top_k_rewards(x, ks)
        assert len(rewards) == len(ks)
        for k, (indices, values) in zip(ks, rewards):
            assert indices.dtype == torch.int64 and indices.numel() == k
            assert torch.equal(indices, _brute_top_k(x, k)), (d, k)
            assert torch.equal(values, x[indices])


def test_top_k_rewards_sets_are_nested_prefixes() -> None:
    x = _tied_vector(_gen(2), 1000)
    ks = [0, 7, 100, 333, 999, 1000, 500]
    order = magnitude_order(x, max(ks))
    for k, (indices, _) in zip(ks, top_k_rewards(x, ks)):
        assert torch.equal(indices, order[:k].sort().values)
    nested = [set(i.tolist()) for i, _ in top_k_rewards(x, sorted(ks))]
    assert all(a <= b for a, b in zip(nested, nested[1:]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_magnitude_order_tie_break_at_boundary(dtype: torch.dtype) -> None:
    x = torch.tensor([1.0, -3.0, 2.0, 3.0, -2.0, 2.0, -0.0, math.inf, 0.0, -math.inf], dtype=dtype)
    expected = [7, 9, 1, 3, 2, 4, 5, 0, 6, 8]
    for k in range(len(expected) + 1):
        assert magnitude_order(x, k).tolist() == expected[:k]


def test_top_k_rewards_edge_cases() -> None:
    x = torch.tensor([0.5, -2.0, 1.0])
    (i0, v0), (i3, v3) = top_k_rewards(x, [0, 3])
    assert i0.numel() == 0 and v0.numel() == 0 and i0.dtype == torch.int64
    assert i3.tolist() == [0, 1, 2] and torch.equal(v3, x)
    assert top_k_rewards(x, []) == []
    (i1, v1), = top_k_rewards(x, [1])  # N = 1
    assert i1.tolist() == [1] and v1.tolist() == [-2.0]
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        top_k_rewards(x, [4])
    with pytest.raises(ValueError, match="NaN"):
        top_k_rewards(torch.tensor([1.0, math.nan]), [1])


def test_large_and_small_prefix_paths_agree() -> None:
    """Small k sorts its prefix, large k reads a rank vector: both must give the brute-force set."""
    x = _tied_vector(_gen(3), 4000)
    ks = [1, 10, 499, 500, 501, 3999]
    for k, (indices, _) in zip(ks, top_k_rewards(x, ks)):
        assert torch.equal(indices, _brute_top_k(x, k))


def _brute_layer(x: torch.Tensor, sizes: list[int], q: float) -> torch.Tensor:
    out, start = [], 0
    for n in sizes:
        k = min(math.ceil(round(n * round(q, 6), 9)), n - 1) if n else 0  # q as the decimal meant
        out.append(_brute_top_k(x[start : start + n], max(k, 0)) + start)
        start += n
    return torch.cat(out)


def test_layer_top_k_rewards_matches_per_layer_brute_force() -> None:
    g = _gen(4)
    sizes = [6, 1, 40, 3, 0, 17]
    x = _tied_vector(g, sum(sizes))
    q = torch.tensor([1.0, 0.5, 0.3, 0.01, 0.0])
    rewards = layer_top_k_rewards(x, sizes, q)
    for qi, (indices, values) in zip(q.tolist(), rewards):
        expected = _brute_layer(x, sizes, qi)
        assert torch.equal(indices, expected)
        assert torch.equal(values, x[indices])
        assert bool((indices[1:] > indices[:-1]).all())
    # the cap: even q = 1 leaves one entry of every tensor out, and the 1-entry tensor entirely
    assert rewards[0][0].numel() == sum(max(n - 1, 0) for n in sizes)
    with pytest.raises(ValueError, match="sum to"):
        layer_top_k_rewards(x, [5, 5], q)


def dense_reward(indices: torch.Tensor, values: torch.Tensor, dim: int) -> torch.Tensor:
    """A reward as a dense D-vector: values at indices, zeros elsewhere."""
    return torch.zeros(dim, dtype=values.dtype).index_put((indices,), values)


def test_reward_masks_dispatch_and_dense_reward() -> None:
    x = torch.randn(50, generator=_gen(5))
    q = torch.tensor([1.0, 0.2])
    glob = reward_masks(x, q, "global")
    assert [i.numel() for i, _ in glob] == [50, 10]
    layer = reward_masks(x, q, "layer", [20, 30])
    assert [i.numel() for i, _ in layer] == [48, 10]
    dense = dense_reward(*glob[1], 50)
    assert dense.shape == (50,) and int((dense != 0).sum()) == 10
    assert torch.equal(dense[glob[1][0]], glob[1][1])
    with pytest.raises(ValueError, match="scope"):
        reward_masks(x, q, "model")
    with pytest.raises(ValueError, match="layer_sizes"):
        reward_masks(x, q, "layer")


def test_pipeline_top_agent_gets_the_full_aggregate() -> None:
    """End to end: the best-aligned agent keeps the whole aggregate (global scope, q = 1)."""
    g = _gen(6)
    direction = torch.randn(300, generator=g)
    noise = torch.tensor([0.1, 1.0, 5.0])
    updates = direction + noise[:, None] * torch.randn(3, 300, generator=g)
    aggregate, psi = cgsv_approx(updates, torch.full((3,), 1 / 3), grad_norm=1.0)
    r = update_importance(torch.zeros(3, dtype=torch.float64), psi, alpha=0.95)
    q = reward_fractions(r, beta=1.0)
    assert float(q[0]) == 1.0 and bool(q[0] > q[1] > q[2])
    rewards = reward_masks(aggregate, q, "global")
    assert torch.equal(dense_reward(*rewards[0], 300), aggregate)
    assert rewards[2][0].numel() < rewards[1][0].numel() < 300


def test_finite_rows_matches_isfinite_all() -> None:
    from fedfair.mechanism import finite_rows

    x = torch.randn(6, 50, generator=_gen(11))
    x[1, 3] = float("nan")
    x[2, 7] = float("inf")
    x[3, 0] = -float("inf")
    x[4] = 3e38  # finite, but its float32 norm overflows
    for t in (x, x.double(), x[:, :0], x[:0]):
        assert torch.equal(finite_rows(t), torch.isfinite(t).all(dim=1))


def test_layer_k_rows_equals_layer_k_per_agent() -> None:
    sizes = [0, 1, 2, 3, 10, 64, 576, 50_176, 654_000]
    g = _gen(12)
    q = torch.cat([torch.rand(200, generator=g, dtype=torch.float64),
                   torch.tensor([0.0, 1.0, 0.3, 0.1, 0.7, 1e-9, 1 - 1e-12], dtype=torch.float64),
                   torch.arange(1, 50, dtype=torch.float64) / 50])
    for qq in (q, q.float()):
        assert layer_k_rows(sizes, qq) == [layer_k(sizes, qi) for qi in qq.tolist()]
