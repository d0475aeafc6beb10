"""Valuation: the approximate cosine gradient Shapley value (CGSV) and what follows from it.

One server round of the paper (Xu et al., NeurIPS 2021, Algorithm 1), as pure functions:

1. every agent's upload Δw_i is rescaled to norm Γ:  u_i = Γ·Δw_i / (‖Δw_i‖₂ + ε)
   (``normalize = "rescale"``, the paper; :func:`upload_scales` also offers clipping at Γ
   and no normalisation, and :func:`grad_norm_at` an explicit schedule Γ_t);
2. the server aggregates  u_N = Σ_i a_i u_i  with aggregation weights a_i;
3. each agent is valued by  ψ_i = cos(u_i, u_N)            (:func:`cgsv_approx`);
4. importance is a moving average  r ← α r + (1−α) ψ       (:func:`update_importance`);
5. the reward fraction is  q_i = tanh(β r_i) / max_j tanh(β r_j)   (:func:`reward_fractions`);
6. agent i is rewarded with the q_i largest-magnitude share of u_N  (:func:`global_k`,
   :func:`layer_k_rows` give the entry counts; :mod:`fedfair.mechanism.masks` picks the entries).

The N×D matrix of uploads is the only large object. It is read three times (row norms,
aggregate, cosines) and never copied: the rescaling Γ/‖Δw_i‖ is folded into the
aggregation weights, so no normalised N×D copy is ever built.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
from torch import Tensor

from .valuations import cosine_values

__all__ = [
    "finite_rows",
    "upload_norms",
    "median_norm",
    "scheduled_bound",
    "out_of_bounds",
    "aggregate_uploads",
    "cgsv_approx",
    "unit_scales",
    "upload_scales",
    "grad_norm_at",
    "Normalize",
    "update_importance",
    "reward_fractions",
    "global_k",
    "layer_k_rows",
    "cosines",
]

# Relative slack when rounding D·q to an integer: 0.3 * 10 is 3.0000000000000004 in float64
# (and 3.0000001 from a float32 q), and must still give ceil(...) == 3, not 4. The slack covers
# the representation error of a float32 q (2^-24 relative); it can move k by at most one entry.
_ROUND_SLACK = 1e-7


def _check_updates(updates: Tensor) -> Tensor:
    """Row norms ‖Δw_i‖₂ (float64, N), refusing non-finite uploads by agent.

    The norm pass doubles as the finiteness check: a NaN or inf anywhere in a row makes its
    norm non-finite, so only those (rare) rows are inspected entry by entry. A finite row
    whose float32 norm overflowed is recomputed in float64 instead of being refused.
    """
    if updates.dim() != 2:
        raise ValueError(f"updates must be N×D (one flattened upload per agent), got shape {tuple(updates.shape)}")
    if not updates.is_floating_point():
        raise ValueError(f"updates must be floating point, got {updates.dtype}")
    norms = torch.linalg.vector_norm(updates, dim=1).to(torch.float64)
    suspicious = (~torch.isfinite(norms)).nonzero().flatten().tolist()
    offending = []
    for i in suspicious:
        if bool(torch.isfinite(updates[i]).all()):
            norms[i] = torch.linalg.vector_norm(updates[i].to(torch.float64))
        else:
            offending.append(i)
    if offending:
        raise ValueError(
            f"non-finite values (NaN or inf) in the update of agent row(s) {offending}; "
            "refusing to aggregate them"
        )
    return norms


def finite_rows(updates: Tensor) -> Tensor:
    """Per row, whether all its entries are finite: ``torch.isfinite(updates).all(dim=1)``.

    Computed from one pass of row norms, with no N×D temporary (at N = 100, D = 1e6 the
    direct form costs more than the whole mechanism step): a NaN or inf makes the row's norm
    non-finite, so only rows with a non-finite norm (bad rows, or finite rows whose float32
    norm overflowed) are inspected entry by entry.
    """
    if updates.dim() != 2 or not updates.is_floating_point():
        return torch.isfinite(updates).all(dim=1)
    ok = torch.isfinite(torch.linalg.vector_norm(updates, dim=1))
    for i in (~ok).nonzero().flatten().tolist():
        ok[i] = bool(torch.isfinite(updates[i]).all())
    return ok


Normalize = Literal["rescale", "clip", "none"]
"""How an upload becomes u_i = s_i·Δw_i: rescale to norm Γ (the paper), clip at Γ, or keep it raw."""


def upload_scales(norms: Tensor, grad_norm: float, eps: float = 1e-7, normalize: Normalize = "rescale",
                  cap: float | None = None) -> Tensor:
    """The factor s_i with u_i = s_i·Δw_i, from the row norms ‖Δw_i‖₂ (float64, N).

    - ``rescale``: s_i = Γ / (‖Δw_i‖ + ε), every upload to norm Γ (just under, by ε). Once
      ‖Δw_i‖ ≪ ε this tends to Γ/ε and the normalisation switches itself off: uploads then keep
      their magnitude (the reference code's accident, see the spec's quirks).
    - ``clip``: s_i = min(1, Γ / ‖Δw_i‖), the norm capped at Γ and small uploads kept as they
      are (the clipping of DP and robust FL); ε does not enter.
    - ``none``: s_i = 1, the raw update (the step is set by the local learning rate).

    ``cap`` (the round's norm bound B_t, :func:`scheduled_bound`) bounds the magnitude-keeping
    rules: ``clip`` caps at min(Γ, B_t) and ``none`` at B_t, so scaling an upload up buys
    nothing. ``rescale`` removes magnitudes anyway and ignores it.

    A zero upload gets s_i = 0 in every mode, so it stays zero (also with ε = 0).
    """
    positive = norms > 0
    safe = torch.where(positive, norms, torch.ones_like(norms))
    if normalize == "rescale":
        scales = grad_norm / (norms + eps) if eps > 0 else grad_norm / safe
    elif normalize == "clip":
        scales = ((grad_norm if cap is None else min(grad_norm, cap)) / safe).clamp_max(1.0)
    elif normalize == "none":
        scales = torch.ones_like(norms) if cap is None else (cap / safe).clamp_max(1.0)
    else:
        raise ValueError(f"normalize must be rescale, clip or none, got {normalize!r}")
    return torch.where(positive, scales, torch.zeros_like(scales))


def grad_norm_at(grad_norm: float, decay: float, round: int) -> float:
    """The server step Γ_t = Γ·decay^(t−1) of round t (decay = 1: a constant Γ, the paper)."""
    return grad_norm * decay ** (round - 1)


def unit_scales(updates: Tensor, grad_norm: float, eps: float = 1e-7, normalize: Normalize = "rescale",
                cap: float | None = None) -> Tensor:
    """s_i with u_i = s_i·Δw_i per agent (float64, N; :func:`upload_scales`), 0 for a zero upload.

    Multiplying row i by this gives the normalised upload u_i; strategies fold it into their
    own weights instead of materialising the normalised rows.
    """
    _check_grad_norm(grad_norm)
    return upload_scales(_check_updates(updates), grad_norm, eps, normalize, cap)


def _check_grad_norm(grad_norm: float) -> None:
    if not (math.isfinite(grad_norm) and grad_norm > 0):
        raise ValueError(f"grad_norm Γ must be a positive finite number, got {grad_norm}")


def upload_norms(updates: Tensor) -> Tensor:
    """Row norms ‖Δw_i‖₂ (float64, N); a ValueError names the agent rows that hold NaN or inf."""
    return _check_updates(updates)


def median_norm(norms: Tensor) -> float:
    """The median of the non-zero upload norms (mean of the middle two for an even count); 0 if none."""
    positive = norms[norms > 0].to(torch.float64)
    return float(torch.quantile(positive, 0.5)) if positive.numel() else 0.0


def scheduled_bound(reference_norm: float, reference_lr: float, lr: float) -> float:
    """B_t = ‖Δw‖_ref · η_t / η_ref: the typical first-round upload norm, shrunk with the local
    learning rate (an honest SGD or Adam step scales with it).

    The reference comes from the first round, when every agent starts from the same model and
    the median upload is a typical honest one. A bound taken across agents within a late round
    is no such thing: late in a CLA run most agents' updates vanish (to 1e-8 on digits) while one
    agent still learns at 1e-2, and any cross-agent bound (the median, the largest other upload)
    then flags the one still learning.
    """
    return reference_norm * lr / reference_lr if reference_lr > 0 else reference_norm


def out_of_bounds(norms: Tensor, bound: float, factor: float) -> Tensor:
    """N bool: uploads with ‖Δw_i‖ > factor · B_t (never when factor or B_t is 0)."""
    if not (factor > 0 and bound > 0):
        return torch.zeros(norms.shape, dtype=torch.bool)
    return norms.to(torch.float64) > factor * bound


def aggregate_uploads(updates: Tensor, weights: Tensor, grad_norm: float, eps: float = 1e-7,
                      normalize: Normalize = "rescale", norms: Tensor | None = None,
                      cap: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """u_N = Σ_i a_i u_i = Σ_i c_i Δw_i with c_i = a_i s_i: returns (aggregate, c, ‖Δw_i‖).

    ``norms`` (float64 row norms) may be passed when already computed; ``cap`` bounds the
    magnitude-keeping rules (:func:`upload_scales`). The aggregate is in the dtype of ``updates``.
    """
    _check_grad_norm(grad_norm)
    norms = _check_updates(updates) if norms is None else norms
    n = updates.shape[0]
    if weights.shape != (n,):
        raise ValueError(f"weights must have shape ({n},) to match {n} agents, got {tuple(weights.shape)}")
    if not bool(torch.isfinite(weights).all()):
        raise ValueError(f"aggregation weights must be finite, got {weights.tolist()}")
    coefficients = weights.to(torch.float64) * upload_scales(norms, grad_norm, eps, normalize, cap)
    return coefficients.to(updates.dtype) @ updates, coefficients, norms


def cgsv_approx(
    updates: Tensor, weights: Tensor, grad_norm: float, eps: float = 1e-7, normalize: Normalize = "rescale",
    cap: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Aggregate u_N = Σ_i a_i u_i of the normalised uploads, and ψ_i = cos(u_i, u_N).

    ``updates`` is N×D (raw uploads Δw_i), ``weights`` the aggregation weights a_i (N).
    Returns ``(aggregate, psi)``: the aggregate in the dtype of ``updates``, ψ in float64.
    ψ_i is 0 when agent i uploaded a zero vector or the aggregate is zero.

    Since u_i is a positive multiple of Δw_i, cos(u_i, u_N) = ⟨Δw_i, u_N⟩ / (‖Δw_i‖ ‖u_N‖):
    all N cosines come from ONE matrix-vector product with the raw uploads.
    """
    aggregate, _, norms = aggregate_uploads(updates, weights, grad_norm, eps, normalize, cap=cap)
    return aggregate, cosine_values(updates, norms, aggregate)


def cosines(rows: Tensor, v: Tensor) -> Tensor:
    """cos(row_i, v) in float64, 0 where either is zero: a baseline's ψ of its raw uploads.

    (:func:`cgsv_approx` computes the mechanism's ψ without this, from norms it already has.)
    """
    dots = (rows.to(torch.float64) @ v.to(torch.float64))
    norms = torch.linalg.vector_norm(rows.to(torch.float64), dim=1) * torch.linalg.vector_norm(v.to(torch.float64))
    return torch.where(norms > 0, dots / torch.where(norms > 0, norms, 1.0), torch.zeros_like(dots)).clamp(-1, 1)


def update_importance(r: Tensor, psi: Tensor, alpha: float, r_min: float = 1e-3,
                      present: Tensor | None = None) -> Tensor:
    """Importance coefficients: r ← α r + (1−α) ψ, clamped below at r_min, normalised to sum 1.

    ``present`` (N bool, partial participation): only the present agents move; an absent
    agent's r is carried unchanged (not being sampled says nothing about its contribution),
    and the present agents' new values are normalised to the mass S = Σ_present r they held
    before, so r stays a distribution. An all-zero r (nothing known yet) first becomes the
    uniform 1/N. None or all True: the rule above, exactly.

    The moving average makes an agent's standing depend on its whole history, not one round;
    the clamp (reference code: r_min = 1e-3) keeps every agent's reward non-empty and r a
    distribution. With r_min = 0 (the paper, which names no clamp) r is only kept
    non-negative, so it stays a valid set of convex aggregation weights; if every agent then
    sits at 0 (all ψ ≤ 0 so far) nothing tells them apart and r is uniform, 1/N each, which
    aggregates the next round as a plain average. Returns a new tensor.
    """
    if r.shape != psi.shape or r.dim() != 1:
        raise ValueError(f"r and psi must be matching N-vectors, got {tuple(r.shape)} and {tuple(psi.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if not r_min >= 0:
        raise ValueError(f"r_min must be >= 0 so that r stays a distribution, got {r_min}")
    if present is not None and not bool(present.all()):
        return _update_present(r, psi, alpha, r_min, present)
    moved = alpha * r + (1.0 - alpha) * psi.to(r.dtype)
    clamped = moved.clamp_min(r_min)
    total = clamped.sum()
    if not total > 0:
        return torch.full_like(clamped, 1.0 / clamped.numel())
    return clamped / total


def reward_fractions(r: Tensor, beta: float, present: Tensor | None = None) -> Tensor:
    """Reward fractions q_i = tanh(β r_i) / max_j tanh(β r_j) ∈ (0, 1].

    ``present`` (N bool, partial participation): q over the present agents only, the max over
    present j (the best contributor present gets q = 1, so "better contributors get denser
    rewards" holds among those who receive); absent agents get q = 0 (they receive nothing).

    β ≥ 1 is the altruism degree: larger β flattens q (more sharing), β = inf gives every
    agent the full aggregate. The most important agent always gets exactly q = 1.
    If every r_i is 0 (nothing known yet), all agents are treated alike: q = 1.
    """
    if math.isnan(beta) or beta < 1:
        raise ValueError(f"altruism beta must be >= 1 (or math.inf for no sparsification), got {beta}")
    if r.dim() != 1:
        raise ValueError(f"r must be an N-vector, got shape {tuple(r.shape)}")
    if present is not None and not bool(present.all()):
        q = torch.zeros_like(r)
        q[present] = reward_fractions(r[present], beta)
        return q
    if math.isinf(beta):
        return torch.ones_like(r)
    scores = torch.tanh(beta * r.to(torch.float64))
    top = scores.max()
    if not top > 0:
        return torch.ones_like(r)
    return (scores / top).clamp_min_(0.0).to(r.dtype)


def _update_present(r: Tensor, psi: Tensor, alpha: float, r_min: float, present: Tensor) -> Tensor:
    """update_importance over the present agents, renormalised to the mass they held; absent carried."""
    if present.shape != r.shape or present.dtype != torch.bool:
        raise ValueError(f"present must be an N-vector of bool like r, got {present.dtype} {tuple(present.shape)}")
    if not bool(r.any()):  # nothing known yet (r starts at 0): every agent starts from the uniform 1/N
        r = torch.full_like(r, 1.0 / r.numel())
    out = r.clone()
    mass = r[present].sum()
    out[present] = mass * update_importance(r[present], psi[present], alpha, r_min)
    return out


def _rounded(x: float, ceil: bool) -> int:
    """floor/ceil of x, treating values within rounding noise of an integer as that integer."""
    nearest = round(x)
    if abs(x - nearest) <= _ROUND_SLACK * max(1.0, abs(x)):
        return int(nearest)
    return math.ceil(x) if ceil else math.floor(x)


def global_k(dim: int, q: Tensor) -> list[int]:
    """Entries kept per agent under the paper's global mask (eq. 5): k_i = floor(D·q_i) ∈ [0, D]."""
    return [min(dim, max(0, _rounded(dim * float(qi), ceil=False))) for qi in q.tolist()]


def layer_k_rows(layer_sizes: Sequence[int], q: Tensor) -> list[list[int]]:
    """Entries kept per agent i and parameter tensor l under the reference code's mask:
    k_il = min(ceil(n_l·q_i), n_l − 1), with n_l·q_i within rounding noise of an integer taken
    as that integer (as :func:`global_k` does).

    The cap means no tensor is ever handed over whole, not even to the top agent (q = 1);
    a one-entry tensor (e.g. a scalar bias) is therefore never shared. One float64 array
    operation over agents × tensors, no Python call per pair.
    """
    import numpy as np

    n = np.asarray([int(v) for v in layer_sizes], dtype=np.float64)
    x = np.asarray(q.tolist(), dtype=np.float64).reshape(-1, 1) * n
    nearest = np.rint(x)
    close = np.abs(x - nearest) <= _ROUND_SLACK * np.maximum(1.0, np.abs(x))
    k = np.maximum(0.0, np.minimum(np.where(close, nearest, np.ceil(x)), n - 1))
    return k.astype(np.int64).tolist()
