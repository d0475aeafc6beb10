"""Exact and sampled Shapley values against brute force over permutations, and their axioms."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from fedfair.mechanism import (
    cgsv_approx,
    exact_cgsv,
    exact_shapley,
    normalised_error,
    permutations_for,
    sampled_cgsv,
    sampled_shapley,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cgsv_game(unit: torch.Tensor, weights: torch.Tensor):
    """ν(S) = cos(Σ_{i∈S} a_i u_i, u_N) from explicit vectors (float64), ν(∅) = 0."""
    u = unit.double()
    a = weights.double()
    grand = (a[:, None] * u).sum(0)

    def value(coalition: frozenset) -> float:
        if not coalition:
            return 0.0
        members = sorted(coalition)
        combined = (a[members, None] * u[members]).sum(0)
        if combined.norm() == 0 or grand.norm() == 0:
            return 0.0
        return float(F.cosine_similarity(combined, grand, dim=0))

    return value


def _brute_shapley(value, n: int) -> torch.Tensor:
    """The definition: average marginal contribution over all n! orders."""
    memo: dict[frozenset, float] = {}

    def worth(s: frozenset) -> float:
        if s not in memo:
            memo[s] = value(s)
        return memo[s]

    phi = [0.0] * n
    orders = list(itertools.permutations(range(n)))
    for order in orders:
        coalition: frozenset = frozenset()
        for agent in order:
            phi[agent] += worth(coalition | {agent}) - worth(coalition)
            coalition = coalition | {agent}
    return torch.tensor(phi, dtype=torch.float64) / len(orders)


def _random_agents(n: int, d: int, seed: int):
    g = _gen(seed)
    direction = torch.randn(d, generator=g)
    unit = direction + torch.rand(n, 1, generator=g) * 3 * torch.randn(n, d, generator=g)
    unit = unit / unit.norm(dim=1, keepdim=True)
    weights = torch.rand(n, generator=g)
    return unit, weights / weights.sum()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_exact_cgsv_matches_brute_force(n: int) -> None:
    unit, weights = _random_agents(n, 40, seed=n)
    phi = exact_cgsv(unit, weights)
    assert phi.dtype == torch.float64 and phi.shape == (n,)
    torch.testing.assert_close(phi, _brute_shapley(_cgsv_game(unit, weights), n), rtol=1e-6, atol=1e-6)


def test_exact_cgsv_efficiency_symmetry_null_player() -> None:
    unit, weights = _random_agents(7, 200, seed=10)
    unit[3] = unit[1]
    weights[3] = weights[1]  # agents 1 and 3 are interchangeable
    weights[5] = 0.0  # a null player by weight
    unit[6] = 0.0  # a null player by a zero upload
    phi = exact_cgsv(unit, weights)
    assert float(phi.sum()) == pytest.approx(1.0, abs=1e-12)  # efficiency: ν(N) = 1
    assert float(phi[1]) == pytest.approx(float(phi[3]), abs=1e-12)
    assert abs(float(phi[5])) < 1e-12 and abs(float(phi[6])) < 1e-12


def test_exact_cgsv_vanishing_aggregate_gives_zero() -> None:
    unit = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
    phi = exact_cgsv(unit, torch.tensor([0.5, 0.5, 0.0]))
    assert torch.equal(phi, torch.zeros(3, dtype=torch.float64))
    unit = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])  # a sub-coalition cancels
    phi = exact_cgsv(unit, torch.tensor([1 / 3, 1 / 3, 1 / 3]))
    assert torch.isfinite(phi).all() and float(phi.sum()) == pytest.approx(1.0)
    torch.testing.assert_close(phi, _brute_shapley(_cgsv_game(unit, torch.full((3,), 1 / 3)), 3))


def test_exact_cgsv_refuses_more_than_twenty_agents() -> None:
    with pytest.raises(ValueError, match="sampled_cgsv"):
        exact_cgsv(torch.randn(21, 3), torch.ones(21))
    phi = exact_cgsv(torch.eye(20), torch.ones(20))  # 20 orthogonal equals: φ_i = 1/20
    torch.testing.assert_close(phi, torch.full((20,), 0.05, dtype=torch.float64))


def test_exact_cgsv_refuses_nan() -> None:
    unit = torch.randn(3, 5, generator=_gen())
    unit[2, 1] = math.nan
    with pytest.raises(ValueError, match=r"\[2\]"):
        exact_cgsv(unit, torch.ones(3))
    with pytest.raises(ValueError, match="non-finite"):
        sampled_cgsv(unit, torch.ones(3), 10, _gen())


def test_sampled_cgsv_converges_to_exact() -> None:
    unit, weights = _random_agents(9, 300, seed=3)
    exact = exact_cgsv(unit, weights)
    estimate = sampled_cgsv(unit, weights, permutations=4000, generator=_gen(7))
    assert float((estimate - exact).abs().max()) < 0.01
    assert float(estimate.sum()) == pytest.approx(1.0, abs=1e-9)  # efficiency holds per permutation
    again = sampled_cgsv(unit, weights, permutations=4000, generator=_gen(7))
    assert torch.equal(estimate, again)  # determined by the generator


def test_sampled_cgsv_beyond_twenty_agents() -> None:
    unit, weights = _random_agents(30, 100, seed=4)
    phi = sampled_cgsv(unit, weights, permutations=300, generator=_gen(1))
    assert phi.shape == (30,) and float(phi.sum()) == pytest.approx(1.0)


def _table_game(n: int, seed: int):
    """A game with arbitrary values (ν(∅) ≠ 0): nothing about cosines is assumed."""
    table = torch.rand(1 << n, generator=_gen(seed), dtype=torch.float64).tolist()
    return lambda coalition: table[sum(1 << i for i in coalition)], table


@pytest.mark.parametrize("n", [1, 3, 5])
def test_exact_shapley_generic_game(n: int) -> None:
    value, table = _table_game(n, seed=n)
    phi = exact_shapley(value, n)
    torch.testing.assert_close(phi, _brute_shapley(value, n))
    assert float(phi.sum()) == pytest.approx(table[-1] - table[0])  # ν(N) − ν(∅)


def test_sampled_shapley_generic_game_converges_and_memoises() -> None:
    value, _ = _table_game(5, seed=11)
    calls = []

    def counted(coalition: frozenset) -> float:
        calls.append(coalition)
        return value(coalition)

    estimate = sampled_shapley(counted, 5, permutations=3000, generator=_gen(2))
    assert float((estimate - exact_shapley(value, 5)).abs().max()) < 0.02
    assert len(calls) == len(set(calls)) <= 32  # every coalition evaluated at most once


def test_permutations_for() -> None:
    assert permutations_for(0.1, 0.05) == math.ceil(math.log(40) / 0.02) == 185
    assert permutations_for(0.01, 0.01) == math.ceil(math.log(200) / 2e-4)
    with pytest.raises(ValueError):
        permutations_for(0.0, 0.1)
    with pytest.raises(ValueError):
        permutations_for(0.1, 1.0)


def test_normalised_error_hand_computed() -> None:
    l1, l2 = normalised_error(torch.tensor([1.0, 1.0]), torch.tensor([3.0, 1.0]))
    assert l1 == pytest.approx(0.5) and l2 == pytest.approx(math.sqrt(0.125))
    assert normalised_error(torch.tensor([2.0, 6.0]), torch.tensor([1.0, 3.0])) == (0.0, 0.0)
    with pytest.raises(ValueError, match="sums to 0"):
        normalised_error(torch.tensor([1.0, -1.0]), torch.tensor([1.0, 1.0]))


def _fig1_comparison(raw: torch.Tensor) -> tuple[float, float]:
    n = raw.shape[0]
    weights = torch.full((n,), 1 / n)
    _, psi = cgsv_approx(raw, weights, grad_norm=1.0)
    phi = exact_cgsv(raw / raw.norm(dim=1, keepdim=True), weights)
    return normalised_error(psi, phi)


@pytest.mark.parametrize("seed", [0, 1])
def test_psi_approximates_phi_for_random_high_dimensional_vectors(seed: int) -> None:
    """The paper's Fig. 1: for random high-dimensional uploads, ψ matches the exact CGSV φ."""
    l1, l2 = _fig1_comparison(torch.randn(10, 20_000, generator=_gen(seed)))
    assert l1 < 2e-3 and l2 < 1e-3, (l1, l2)


@pytest.mark.parametrize("seed", [0, 1])
def test_psi_tracks_phi_for_agents_of_mixed_quality(seed: int) -> None:
    """A shared direction plus noise of very different strengths: still a close approximation."""
    g = _gen(seed)
    direction = torch.randn(20_000, generator=g)
    raw = direction + torch.rand(10, 1, generator=g) * 4 * torch.randn(10, 20_000, generator=g)
    l1, l2 = _fig1_comparison(raw)
    assert l1 < 0.1 and l2 < 0.04, (l1, l2)
