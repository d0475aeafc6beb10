"""The field's valuations: other ways to compute an agent's round value ψ_i.

CGSV values agent i by ψ_i = cos(u_i, u_N) (:func:`cosine_values`). Later work measures
contribution differently; each measure here is a pure function of one round's uploads (and,
for those that need the model's utility, a callable the runtime supplies), so the rest of the
mechanism (r's moving average, q, the sparsified rewards) stays as the paper has it:

- :func:`loo_cosines` — cosine with the aggregate of the *others* (leave-one-out);
- :func:`classwise_cosines` — ShapFed (Tastan et al., IJCAI 2024): per-class cosine over the
  output layer's rows (weights with their bias), averaged over classes;
- :func:`loo_classwise_cosines` — the same against the rows of the *others'* aggregate;
- :func:`fedce_gradient_scores`, :func:`fedce_combine` — FedCE (Jiang et al., CVPR 2023;
  NVFlare ``app_opt/pt/fedce.py``): novelty 1 − mean cos(u_i, consensus of the others), and its
  combination with a data-space score;
- :func:`descent_cosines` — alignment with the descent direction −∇L_val(w) of the server's
  validation loss;
- :func:`gtg_shapley` — GTG-Shapley (Liu et al., ACM TIST 2022): guided, truncated Monte-Carlo
  Shapley of a utility over coalitions of the round's uploads;
- :func:`shares` — utility values (Shapley, leave-one-out) as shares of the round's value, on
  the scale of r.

Conventions: uploads are the N×D raw rows Δw_i; u_i = s_i Δw_i is the normalised upload
(:func:`~fedfair.mechanism.valuation.unit_scales`) and u_N = Σ_i c_i Δw_i the aggregate with
c_i = a_i s_i. Every ψ is float64, and 0 wherever a cosine involves a zero vector.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .shapley import exact_shapley

__all__ = [
    "cosine_values",
    "loo_cosines",
    "OutputLayer",
    "output_layer",
    "classwise_cosines",
    "loo_classwise_cosines",
    "fedce_gradient_scores",
    "fedce_normalise",
    "fedce_combine",
    "descent_cosines",
    "coalition_step",
    "gtg_shapley",
    "exact_utility_shapley",
    "shares",
]


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den where den > 0, else 0, clamped to [−1, 1] (a cosine)."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num)).clamp(-1.0, 1.0)


def cosine_values(updates: Tensor, norms: Tensor, aggregate: Tensor) -> Tensor:
    """The paper's ψ_i = cos(u_i, u_N) = ⟨Δw_i, u_N⟩ / (‖Δw_i‖ ‖u_N‖) (u_i is a positive multiple of Δw_i).

    ``norms`` are the row norms ‖Δw_i‖ (float64); one matrix-vector product gives all N cosines.
    """
    aggregate_norm = float(torch.linalg.vector_norm(aggregate))
    if not math.isfinite(aggregate_norm):  # float32 overflow of a finite vector
        aggregate_norm = float(torch.linalg.vector_norm(aggregate.to(torch.float64)))
    dots = (updates @ aggregate).to(torch.float64)
    return _safe_ratio(dots, norms * aggregate_norm)


def _dots64(updates: Tensor, v: Tensor, rows: int = 64) -> Tensor:
    """⟨Δw_i, v⟩ for every row in float64, converting a block of rows at a time."""
    v64 = v.to(torch.float64)
    return torch.cat([updates[i:i + rows].to(torch.float64) @ v64 for i in range(0, updates.shape[0], rows)])


def loo_cosines(updates: Tensor, norms: Tensor, coefficients: Tensor, aggregate: Tensor) -> Tensor:
    """ψ_i = cos(u_i, u_N − c_i Δw_i): the cosine with what the *others* contributed.

    From one matrix-vector product, in float64 (the others' norm is a difference):
    ⟨Δw_i, u_N − c_iΔw_i⟩ = ⟨Δw_i, u_N⟩ − c_i‖Δw_i‖² and
    ‖u_N − c_iΔw_i‖² = ‖u_N‖² − 2c_i⟨Δw_i, u_N⟩ + c_i²‖Δw_i‖². An 'others' aggregate that cancels to
    rounding noise (a lone uploader) counts as zero, so ψ_i = 0.
    """
    c = coefficients.to(torch.float64)
    a2 = float(torch.linalg.vector_norm(aggregate.to(torch.float64))) ** 2
    dots = _dots64(updates, aggregate)
    own = norms * norms
    num = dots - c * own
    others2 = a2 - 2.0 * c * dots + c * c * own
    alive = others2 > 1e-12 * (a2 + c * c * own)
    return _safe_ratio(num, norms * torch.where(alive, others2, torch.zeros_like(others2)).sqrt())


class OutputLayer:
    """Where the output layer's class rows sit in the flat parameter vector.

    Class k's row is the weights W[k, :] (``fan_in`` entries from ``weight_offset``, row-major)
    followed by the bias b[k] (at ``bias_offset + k``).
    """

    def __init__(self, weight_offset: int, bias_offset: int, classes: int, fan_in: int) -> None:
        self.weight_offset = weight_offset
        self.bias_offset = bias_offset
        self.classes = classes
        self.fan_in = fan_in

    def rows(self, flat: Tensor) -> Tensor:
        """[..., C, fan_in + 1]: each class's weight row with its bias appended."""
        w = flat[..., self.weight_offset:self.weight_offset + self.classes * self.fan_in]
        w = w.reshape(*flat.shape[:-1], self.classes, self.fan_in)
        b = flat[..., self.bias_offset:self.bias_offset + self.classes].unsqueeze(-1)
        return torch.cat([w, b], dim=-1)


def output_layer(layer_sizes: Sequence[int], classes: int) -> OutputLayer:
    """The output layer of a model whose last two parameter tensors are a Linear's weight [C, H]
    and bias [C] (every built-in model); a ValueError says what was found otherwise."""
    sizes = list(layer_sizes)
    if len(sizes) < 2 or sizes[-1] != classes or sizes[-2] % classes != 0:
        raise ValueError(f"needs a model whose last layer is a Linear with bias onto the {classes} classes "
                         f"(last parameter sizes {sizes[-2:]})")
    total = sum(sizes)
    return OutputLayer(weight_offset=total - sizes[-1] - sizes[-2], bias_offset=total - sizes[-1],
                       classes=classes, fan_in=sizes[-2] // classes)


def classwise_cosines(updates: Tensor, aggregate: Tensor, layer: OutputLayer) -> Tensor:
    """ψ_i = (1/C) Σ_k cos(row_k(Δw_i), row_k(u_N)): ShapFed's class-wise cosine, in update space.

    ShapFed compares the output layer's class rows (weights with bias) of each client with the
    aggregate's. A class that agent i has never seen moves its row only by the softmax's push
    away, so the per-class average credits agents for the classes they actually teach: the
    class-imbalance case where the whole-vector cosine follows the majority.
    """
    mine = layer.rows(updates.to(torch.float64))          # N × C × (H+1)
    theirs = layer.rows(aggregate.to(torch.float64))      # C × (H+1)
    dots = (mine * theirs).sum(dim=-1)
    den = torch.linalg.vector_norm(mine, dim=-1) * torch.linalg.vector_norm(theirs, dim=-1)
    return _safe_ratio(dots, den).mean(dim=1)


def loo_classwise_cosines(updates: Tensor, coefficients: Tensor, aggregate: Tensor, layer: OutputLayer) -> Tensor:
    """ψ_i = (1/C) Σ_k cos(row_k(Δw_i), row_k(u_N − c_i Δw_i)): class-wise, against the others.

    Why: an agent is part of the aggregate it is compared with. Under the whole-vector cosine the
    honest agents' agreement swamps that, but an output-layer row is small, and a free-rider's noise
    (with an honest update's norm) is a visible part of each row of u_N: measured on the default
    digits job, its class-wise ψ averaged 0.135 over 60 rounds, and 0.00 with itself left out.
    A class row the others' aggregate cancels to rounding noise in counts 0, as in ``loo_cosines``.
    """
    mine = layer.rows(updates.to(torch.float64))                              # N × C × (H+1)
    theirs = layer.rows(aggregate.to(torch.float64)).unsqueeze(0)             # 1 × C × (H+1)
    c = coefficients.to(torch.float64).reshape(-1, 1, 1)
    others = theirs - c * mine                                                # N × C × (H+1)
    dots = (mine * others).sum(dim=-1)
    mine2, others2 = (mine * mine).sum(dim=-1), (others * others).sum(dim=-1)
    alive = others2 > 1e-12 * ((theirs * theirs).sum(dim=-1) + c.squeeze(-1) ** 2 * mine2)
    den = mine2.sqrt() * torch.where(alive, others2, torch.zeros_like(others2)).sqrt()
    return _safe_ratio(dots, den).mean(dim=1)


def fedce_gradient_scores(mean_cosines: Tensor) -> Tensor:
    """FedCE's gradient-space score max(0, 1 − mean_t cos(u_i, consensus of the others)): novelty."""
    return (1.0 - mean_cosines.to(torch.float64)).clamp_min(0.0)


def fedce_normalise(values: Tensor, epsilon: float) -> Tensor:
    """FedCE's normalisation: clip below at ε, divide by the sum (uniform if the sum is not positive)."""
    clipped = values.to(torch.float64).clamp_min(epsilon)
    total = clipped.sum()
    return clipped / total if bool(total > 0) else torch.full_like(clipped, 1.0 / clipped.numel())


def fedce_combine(gradient_scores: Tensor, data_scores: Tensor | None, mode: str, epsilon: float) -> Tensor:
    """FedCE's contribution weights: each score normalised, then added ("plus") or multiplied
    ("times") and normalised again; "gradient" uses the gradient-space score alone."""
    g = fedce_normalise(gradient_scores, epsilon)
    if mode == "gradient":
        return g
    if data_scores is None:
        raise ValueError(f"FedCE mode {mode!r} needs the data-space scores")
    d = fedce_normalise(data_scores, epsilon)
    if mode == "plus":
        return fedce_normalise(g + d, epsilon)
    if mode == "times":
        return fedce_normalise(g * d, epsilon)
    raise ValueError(f"FedCE mode must be plus, times or gradient, got {mode!r}")


def descent_cosines(updates: Tensor, norms: Tensor, gradient: Tensor) -> Tensor:
    """ψ_i = cos(Δw_i, −∇L_val(w)): does agent i's step go down the server's validation loss?"""
    g = gradient.to(updates.dtype)
    gnorm = float(torch.linalg.vector_norm(gradient.to(torch.float64)))
    return _safe_ratio(-(updates @ g).to(torch.float64), norms * gnorm)


def coalition_step(updates: Tensor, scales: Tensor, weights: Tensor, members: Sequence[int]) -> Tensor:
    """The step a coalition S takes on its own: Σ_{i∈S} a_i s_i Δw_i / Σ_{i∈S} a_i (zero for ∅).

    A FedAvg of the coalition's normalised uploads with its weights renormalised over S, as
    GTG-Shapley builds a coalition's model (there: data-size fractions).
    """
    members = list(members)
    if not members:
        return torch.zeros(updates.shape[1], dtype=updates.dtype)
    idx = torch.tensor(members, dtype=torch.int64)
    a = weights.to(torch.float64)[idx]
    total = a.sum()
    if not bool(total > 0):
        a, total = torch.ones_like(a), torch.tensor(float(len(members)), dtype=torch.float64)
    c = (a / total * scales.to(torch.float64)[idx]).to(updates.dtype)
    return c @ updates[idx]


Utility = Callable[[tuple[int, ...]], float]
"""A coalition's utility, given as the sorted tuple of its members (e.g. validation accuracy)."""


def gtg_shapley(utility: Utility, n: int, generator: torch.Generator, *, eps: float = 1e-3,
                round_threshold: float = 0.01, min_permutations: int = 30, last_k: int = 10,
                tolerance: float = 0.05, max_evals: int = 0) -> tuple[Tensor, int]:
    """GTG-Shapley (Liu et al. 2022; liuzelei13/GTG-Shapley, ``SV_algs/GTG.py``): (φ, evaluations).

    - Between-round truncation: if |U(N) − U(∅)| ≤ ``round_threshold`` the round is worth
      nothing to share out: φ = 0.
    - Guided sampling: permutations come in cycles of n; in a cycle every agent leads once,
      the rest in random order.
    - Within-round truncation: once |U(N) − U(prefix)| < ``eps``, later agents add 0.
    - Convergence: at least ``min_permutations``; then stop when, over the last ``last_k``
      running means, the largest mean relative deviation from the newest is ≤ ``tolerance``
      (checked after each cycle, as GTG does).
    - Budget (fedfair's addition): with ``max_evals`` > 0, no new coalition is evaluated once
      that many were (the sampling stops after the cycle in which the budget ran out; a
      prefix that would need a new evaluation is truncated to the value before it).
    Utilities are memoised per coalition.
    """
    if n <= 0:
        return torch.zeros(0, dtype=torch.float64), 0
    memo: dict[tuple[int, ...], float] = {}

    def worth(coalition: tuple[int, ...]) -> float | None:
        if coalition not in memo:
            if max_evals > 0 and len(memo) >= max_evals:
                return None
            memo[coalition] = float(utility(coalition))
        return memo[coalition]

    empty, everyone = worth(()), worth(tuple(range(n)))
    assert empty is not None and everyone is not None  # the first two evaluations always fit
    if abs(everyone - empty) <= round_threshold:
        return torch.zeros(n, dtype=torch.float64), len(memo)
    records: list[np.ndarray] = []
    exhausted = False
    while not exhausted and (len(records) < min_permutations or not _converged(records, last_k, tolerance)):
        for lead in range(n):
            rest = [j for j in torch.randperm(n, generator=generator).tolist() if j != lead]
            order = [lead] + rest
            marginals = np.zeros(n, dtype=np.float64)
            before = empty
            for j in range(1, n + 1):
                if abs(everyone - before) >= eps:
                    value = worth(tuple(sorted(order[:j])))
                    if value is None:
                        exhausted, value = True, before
                else:
                    value = before
                marginals[order[j - 1]] = value - before
                before = value
            records.append(marginals)
    return torch.from_numpy(np.mean(records, axis=0)), len(memo)


def _converged(records: list[np.ndarray], last_k: int, tolerance: float) -> bool:
    """GTG's stopping rule on the running means of the marginal contributions."""
    means = np.cumsum(records, axis=0) / np.arange(1, len(records) + 1)[:, None]
    recent = means[-last_k:]
    errors = np.mean(np.abs(recent - recent[-1:]) / (np.abs(recent[-1:]) + 1e-12), axis=1)
    return bool(np.max(errors) <= tolerance)


def exact_utility_shapley(utility: Utility, n: int) -> Tensor:
    """Exact Shapley values of a coalition utility (all 2^n coalitions, each evaluated once)."""
    return exact_shapley(lambda s: utility(tuple(sorted(s))), n)


def shares(values: Tensor) -> Tensor:
    """φ_i / Σ_j |φ_j|: a round's values as shares in [−1, 1] (0 everywhere if all are 0).

    Utility-based values are in units of the utility (e.g. a fraction of a point of accuracy)
    and shrink as training converges; as shares they sit on the scale of r (a distribution),
    so the moving average weighs every round's verdict alike, as it does ψ's cosines.
    """
    v = values.to(torch.float64)
    total = v.abs().sum()
    return v / total if bool(total > 0) else torch.zeros_like(v)

