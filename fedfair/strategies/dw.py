"""DW (dataset-weighted download): the mechanism, but q_i = |D_i| / max_j |D_j|.

Everything else is CGSV's: Γ-normalised uploads, importance-weighted aggregation (data-size
weights in round 1), ψ = cos(u_i, u_N), the moving-average importance r (logged, and used
for rho_r), and agent i receives the top q_i share of u_N under ``mechanism.mask_scope``.
Only the reward fraction ignores the valuation: it is fixed by shard sizes. On the CLA
partition every shard has the same size S, so every agent gets q = 1 (the whole aggregate).
"""
from __future__ import annotations

import torch

from .base import RoundInput
from .cgsv import CGSV


class DW(CGSV):
    name = "dw"

    def fractions(self, psi: torch.Tensor, inp: RoundInput, aggregate: torch.Tensor) -> torch.Tensor:
        sizes = torch.tensor(self.ctx.shard_sizes, dtype=torch.float64)
        return sizes / sizes.max()
