"""Exact and sampled Shapley values: the CGSV game behind ψ, and generic games.

The cosine gradient Shapley value (CGSV) game of the paper: agent i brings the weighted
normalised upload a_i u_i; a coalition S is worth how well its combined upload points
along the grand aggregate,

    ν(S) = cos(u_S, u_N),   u_S = Σ_{i∈S} a_i u_i,   ν(∅) = 0,

and agent i's CGSV is its Shapley value φ_i = Σ_{S ⊆ N∖{i}} |S|!(N−|S|−1)!/N! (ν(S∪{i}) − ν(S)).
The paper's ψ_i = cos(u_i, u_N) approximates φ_i (its Fig. 1); this module computes φ so
that the approximation can be audited.

Every ν(S) depends on the uploads only through the Gram matrix H_ij = a_i a_j ⟨u_i, u_j⟩:

    ⟨u_S, u_N⟩ = Σ_{i∈S} h_i  with h_i = Σ_j H_ij,      ‖u_S‖² = Σ_{i,j∈S} H_ij.

So after one O(N²·D) Gram matrix, all 2^N coalitions cost O(2^N) (independent of D), built by
doubling over agents (a subset DP), and never coalition by coalition.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "MAX_EXACT_AGENTS",
    "exact_cgsv",
    "sampled_cgsv",
    "permutations_for",
    "exact_shapley",
    "sampled_shapley",
    "normalised_error",
]

MAX_EXACT_AGENTS = 20
"""2^20 coalitions (8 MB per float64 table) is where exact enumeration stops being cheap."""

# A coalition whose combined upload has squared norm below this fraction of Σ_i ‖a_i u_i‖²
# has vanished up to rounding: its cosine is 0, as cgsv_approx treats a zero vector.
_VANISHING = 1e-12

# Columns of the uploads converted to float64 at a time when forming the Gram matrix.
_GRAM_CHUNK_ELEMENTS = 1 << 22

# Sampled permutations processed together (each costs an N×N gather of the Gram matrix).
_PERMUTATION_CHUNK = 2048


# ---------------------------------------------------------------- building blocks


def _gram64(x: Tensor) -> Tensor:
    """X Xᵀ accumulated in float64, converting a bounded slab of columns at a time."""
    n, d = x.shape
    gram = torch.zeros(n, n, dtype=torch.float64)
    step = max(1, _GRAM_CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, d, step):
        slab = x[:, start : start + step].to(torch.float64)
        gram += slab @ slab.T
    return gram


def _subset_sums(x: np.ndarray) -> np.ndarray:
    """s[mask] = Σ_{i ∈ mask} x_i for all 2^n bitmasks (bit i ↔ element i), by doubling.

    After element i, the table has 2^(i+1) entries: the old ones (i absent) followed by
    the old ones plus x_i (i present) — exactly the masks' binary order.
    """
    sums = np.zeros(1, dtype=np.float64)
    for xi in x:
        sums = np.concatenate([sums, sums + xi])
    return sums


def _popcounts(n: int) -> np.ndarray:
    """|mask| for all 2^n bitmasks, by the same doubling."""
    counts = np.zeros(1, dtype=np.int64)
    for _ in range(n):
        counts = np.concatenate([counts, counts + 1])
    return counts


def _shapley_from_values(values: np.ndarray) -> Tensor:
    """Shapley values of the game whose 2^n coalition values are ``values`` (indexed by bitmask).

    φ_i = Σ_{S∋i} c(|S|−1) ν(S) − Σ_{S∌i} c(|S|) ν(S), with c(s) = s!(n−s−1)!/n! = 1/(n·C(n−1, s)).
    For agent i, the masks with and without bit i are the two halves of a (…, 2, 2^i) view.
    """
    n = values.size.bit_length() - 1
    c = np.array([1.0 / (n * math.comb(n - 1, s)) for s in range(n)], dtype=np.float64)
    sizes = _popcounts(n)
    as_member = np.concatenate([[0.0], c])[sizes] * values  # weight of ν(S) when i ∈ S
    as_outsider = np.concatenate([c, [0.0]])[sizes] * values  # weight of ν(S) when i ∉ S
    phi = np.empty(n, dtype=np.float64)
    for i in range(n):
        with_i = as_member.reshape(-1, 2, 1 << i)[:, 1, :]
        without_i = as_outsider.reshape(-1, 2, 1 << i)[:, 0, :]
        phi[i] = with_i.sum() - without_i.sum()
    return torch.from_numpy(phi)


def _weighted_gram(unit_updates: Tensor, weights: Tensor) -> Tensor:
    """H_ij = a_i a_j ⟨u_i, u_j⟩ in float64, after validating the inputs."""
    if unit_updates.dim() != 2:
        raise ValueError(f"unit_updates must be N×D, got shape {tuple(unit_updates.shape)}")
    n = unit_updates.shape[0]
    if weights.shape != (n,):
        raise ValueError(f"weights must have shape ({n},) to match {n} agents, got {tuple(weights.shape)}")
    gram = _gram64(unit_updates)
    a = weights.to(torch.float64)
    weighted = a[:, None] * gram * a[None, :]
    if not bool(torch.isfinite(weighted).all()):
        # A NaN or inf in row i shows on the diagonal H_ii (off-diagonal, it spreads to all rows).
        bad = (~torch.isfinite(weighted.diagonal())).nonzero().flatten().tolist() or "(overflow)"
        raise ValueError(f"non-finite values in the uploads or weights of agent row(s) {bad}")
    return weighted


def _cosines(dots: np.ndarray, squared_norms: np.ndarray, total: float, scale: float) -> np.ndarray:
    """cos(u_S, u_N) from ⟨u_S, u_N⟩, ‖u_S‖² and ‖u_N‖²; 0 for a vanished u_S or u_N."""
    tolerance = _VANISHING * scale
    if not total > tolerance:
        return np.zeros_like(dots)
    alive = squared_norms > tolerance
    denominators = np.sqrt(np.where(alive, squared_norms, 1.0) * total)
    return np.clip(np.where(alive, dots / denominators, 0.0), -1.0, 1.0)


# ---------------------------------------------------------------- the CGSV game


def exact_cgsv(unit_updates: Tensor, weights: Tensor) -> Tensor:
    """Exact CGSV φ (float64, N) of the game ν(S) = cos(Σ_{i∈S} a_i u_i, Σ_all a_i u_i).

    One Gram matrix, then a subset DP over all 2^N coalitions; for N ≤ 20 only.
    Efficiency: Σ_i φ_i = ν(N) = 1 (or 0 if the aggregate vanishes).
    """
    n = unit_updates.shape[0] if unit_updates.dim() == 2 else -1
    if n > MAX_EXACT_AGENTS:
        raise ValueError(
            f"exact_cgsv enumerates all 2^N coalitions and stops at N = {MAX_EXACT_AGENTS} agents "
            f"(got N = {n}); use sampled_cgsv(unit_updates, weights, permutations, generator) instead"
        )
    h = _weighted_gram(unit_updates, weights).numpy()
    if n == 0:
        return torch.zeros(0, dtype=torch.float64)
    # The DP runs in numpy: 2^N-sized, single-threaded steps whose time does not depend on
    # the torch thread pool (which only adds overhead at these sizes).
    dots = _subset_sums(h.sum(axis=1))  # ⟨u_S, u_N⟩ = Σ_{i∈S} h_i
    # ‖u_S‖² by doubling: adding agent j to S ⊆ {0..j−1} adds 2 Σ_{i∈S} H_ij + H_jj.
    squared_norms = np.zeros(1, dtype=np.float64)
    for j in range(n):
        cross = _subset_sums(h[:j, j])
        squared_norms = np.concatenate([squared_norms, squared_norms + 2.0 * cross + h[j, j]])
    values = _cosines(dots, squared_norms, float(h.sum()), float(np.trace(h)))
    return _shapley_from_values(values)


def sampled_cgsv(unit_updates: Tensor, weights: Tensor, permutations: int, generator: torch.Generator) -> Tensor:
    """Permutation-sampling estimate of the CGSV φ (Maleki et al.), float64, any N.

    For each random order of the agents, agent π_m is credited ν(π_1..π_m) − ν(π_1..π_{m−1});
    the estimate averages these marginals. A permutation's prefix coalitions come from the
    Gram matrix by cumulative sums, so it costs O(N²), independent of D.
    """
    if permutations < 1:
        raise ValueError(f"need at least one permutation, got {permutations}")
    h = _weighted_gram(unit_updates, weights)
    n = h.shape[0]
    phi = torch.zeros(n, dtype=torch.float64)
    if n == 0:
        return phi
    contributions = h.sum(dim=1)
    total, scale = float(h.sum()), float(h.diagonal().sum())
    done = 0
    while done < permutations:
        batch = min(_PERMUTATION_CHUNK, permutations - done)
        orders = torch.argsort(torch.rand(batch, n, generator=generator, dtype=torch.float64), dim=1)
        dots = contributions[orders].cumsum(dim=1)
        blocks = h[orders[:, :, None], orders[:, None, :]]  # H permuted into each order
        squared_norms = blocks.cumsum(dim=1).cumsum(dim=2).diagonal(dim1=1, dim2=2)
        values = torch.from_numpy(_cosines(dots.numpy(), squared_norms.numpy(), total, scale))
        marginals = torch.diff(values, dim=1, prepend=torch.zeros(batch, 1, dtype=torch.float64))
        phi.index_add_(0, orders.flatten(), marginals.flatten())
        done += batch
    return phi / permutations


def permutations_for(epsilon: float, delta: float) -> int:
    """Permutations K = ceil(ln(2/δ) / (2ε²)) for P(|φ̂_i − φ_i| ≥ ε) ≤ δ per agent.

    Hoeffding's bound for marginal contributions ranging over an interval of width 1
    (Maleki et al.); scale ε accordingly for games with a wider range.
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    return math.ceil(math.log(2.0 / delta) / (2.0 * epsilon**2))


# ---------------------------------------------------------------- generic games


Game = Callable[[frozenset], float]
"""A cooperative game: the value of a coalition, given as a frozenset of agent indices."""


def exact_shapley(value: Game, n: int) -> Tensor:
    """Exact Shapley values (float64, n) of an arbitrary game, evaluating all 2^n coalitions once.

    ``value(frozenset())`` is taken as given (e.g. an untrained model's accuracy), not assumed 0.
    Meant for expensive games with small n (e.g. validation accuracy, n ≲ 12).
    """
    if n > MAX_EXACT_AGENTS:
        raise ValueError(f"exact_shapley enumerates 2^n coalitions, n ≤ {MAX_EXACT_AGENTS}; use sampled_shapley")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if n == 0:
        return torch.zeros(0, dtype=torch.float64)
    values = np.array(
        [float(value(frozenset(i for i in range(n) if mask >> i & 1))) for mask in range(1 << n)],
        dtype=np.float64,
    )
    return _shapley_from_values(values)


def sampled_shapley(value: Game, n: int, permutations: int, generator: torch.Generator) -> Tensor:
    """Permutation-sampling Shapley estimate (float64, n) of an arbitrary game.

    Coalition values are memoised, so a coalition reached by several permutations is
    evaluated once.
    """
    if permutations < 1:
        raise ValueError(f"need at least one permutation, got {permutations}")
    memo: dict[frozenset, float] = {}

    def worth(coalition: frozenset) -> float:
        if coalition not in memo:
            memo[coalition] = float(value(coalition))
        return memo[coalition]

    phi = torch.zeros(n, dtype=torch.float64)
    for _ in range(permutations):
        coalition: frozenset = frozenset()
        before = worth(coalition)
        for agent in torch.randperm(n, generator=generator).tolist():
            coalition = coalition | {agent}
            after = worth(coalition)
            phi[agent] += after - before
            before = after
    return phi / permutations


def normalised_error(a: Tensor, b: Tensor) -> tuple[float, float]:
    """(ℓ1, ℓ2) distance between a and b after normalising each to sum 1 (the paper's Fig. 1)."""
    a64, b64 = a.to(torch.float64).flatten(), b.to(torch.float64).flatten()
    if a64.shape != b64.shape:
        raise ValueError(f"cannot compare shapes {tuple(a.shape)} and {tuple(b.shape)}")
    sa, sb = float(a64.sum()), float(b64.sum())
    if sa == 0 or sb == 0:
        raise ValueError("cannot normalise a vector that sums to 0")
    diff = a64 / sa - b64 / sb
    return float(diff.abs().sum()), float(torch.linalg.vector_norm(diff))
