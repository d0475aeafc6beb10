"""EU (Euclidean): the mechanism, but the reward fraction comes from Euclidean distances.

Everything else is CGSV's (normalised uploads, importance-weighted aggregate u_N, ψ and the
moving-average r, logged and used for aggregation). Agent i's score is the negative distance
of its RAW upload to the aggregate, −d_i with d_i = ‖Δw_i − u_N‖₂, computed afresh each round.

Mapping to (0, 1] (the paper leaves it open): q_i = max(min_j d_j, ε) / max(d_i, ε) with
ε = 1e-12, over the valid uploads. It is monotone (closer ⇒ larger q), the closest agent gets
q = 1, and it is scale-free (multiplying every distance by c leaves q unchanged). A rejected
(non-finite) upload gets the smallest q of the round. Agent i receives the top q_i share of
u_N under ``mechanism.mask_scope``.

Observed consequence of "raw": u_N has norm up to Γ while raw uploads shrink as the learning
rate decays, so late in training every d_i approaches ‖u_N‖ and q approaches 1 for everyone
(digits default, round 200: q ≈ 0.999 for all five agents). That is EU as specified.
"""
from __future__ import annotations

import torch

from .base import RoundInput
from .cgsv import CGSV

EPS = 1e-12


def eu_fractions(updates: torch.Tensor, aggregate: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """q_i = max(min_j d_j, ε) / max(d_i, ε), d_i = ‖Δw_i − u_N‖ (float64); invalid rows get min q."""
    d = torch.linalg.vector_norm(updates.to(torch.float64) - aggregate.to(torch.float64), dim=1)
    if not bool(valid.any()):
        return torch.ones_like(d)
    d_valid = d[valid]
    q = d_valid.min().clamp_min(EPS) / d.clamp_min(EPS)
    return torch.where(valid, q, q[valid].min())


class EU(CGSV):
    name = "eu"

    def fractions(self, psi: torch.Tensor, inp: RoundInput, aggregate: torch.Tensor) -> torch.Tensor:
        return eu_fractions(inp.updates, aggregate, inp.valid)
