"""ECI (contribution index, Song et al. 2019): Shapley values of validation accuracy.

Each round the server values every agent by its Shapley value in the game

    ν(S) = validation accuracy of (w + Σ_{i∈S} a_i u_i),   ν(∅) = accuracy of w,

with u_i the Γ-normalised uploads, a_i = |D_i| / Σ_j |D_j| (data-size weights over the valid
uploads, as in FedAvg, on which Song et al. build), and w the server model before the round.
ν's grand coalition is the server's own step: w ← w + u_N, u_N = Σ_i a_i u_i. Coalition
weights are NOT renormalised within S, as the formula reads (baselines.md). Rejected uploads
weigh 0 and are null players.

On the digits default (CLA) this aggregate is weak: Γ-normalisation gives the one-class agent
a full-norm vote every round, and the server model reaches only about 62% (FedAvg's raw
updates shrink as an agent fits its shard; CGSV and CFFL down-weight it by valuation).
The aggregate still uses data-size weights, not ECI's own importance (positive accumulated
values, normalised), because the validation-accuracy game is coarse: weighted by importance,
one agent holds nearly all the weight after two rounds, the others' marginal contributions
become exactly 0 and never recover, and the server model stays near 29%.

- N ≤ 8: exact Shapley over all 2^N coalitions (``exact_shapley``; 2^N validation passes).
- N > 8: permutation sampling (``sampled_shapley``, memoised coalitions) with
  ``mechanism.eci.permutations`` permutations per round (default 50, i.e. at most 50·N
  validation passes), drawn from a generator seeded with ``run.seed``.

Each agent accumulates its values over rounds, C_i = Σ_t φ_i^t, and downloads the
largest-magnitude share q_i = max(C_i, 0) / max_j C_j of u_N under ``mechanism.mask_scope``
(q = 1 for everyone while no agent has a positive total). Expensive by design: every
validation pass is server work and counted in mechanism_s.

Logged: psi = φ^t (this round's Shapley values), r = C (accumulated), q.
"""
from __future__ import annotations

import torch

from ..config import MechanismConfig
from ..mechanism import exact_shapley, reward_masks, sampled_shapley
from .base import Reward, RoundInput, ServerContext, ServerStep, Strategy, normalised_rows, size_weights
from .settings import ECISettings

EXACT_UP_TO = 8
"""Exact Shapley for N ≤ this many agents, permutation sampling above."""


def eci_fractions(total: torch.Tensor) -> torch.Tensor:
    """q_i = max(C_i, 0) / max_j C_j, or all ones while no C_j is positive."""
    top = total.max()
    if not top > 0:
        return torch.ones_like(total)
    return total.clamp_min(0.0) / top


class ECI(Strategy):
    name = "eci"
    settings: ECISettings

    def __init__(self, mechanism: MechanismConfig, ctx: ServerContext, seed: int = 0) -> None:
        super().__init__(mechanism, ctx, seed)
        self.total = torch.zeros(ctx.agents, dtype=torch.float64)
        self.generator = torch.Generator().manual_seed(seed)

    def shapley(self, inp: RoundInput, weighted: torch.Tensor) -> torch.Tensor:
        """This round's φ (float64, N) for the rows ``weighted`` = a_i u_i."""
        accuracy = self.ctx.validation_accuracy
        if accuracy is None:
            raise RuntimeError("eci needs the server's validation set (ServerContext.validation_accuracy)")
        w = inp.server_model
        valid = inp.valid.tolist()

        def value(coalition: frozenset) -> float:
            members = [i for i in coalition if valid[i]]
            step = weighted[members].sum(dim=0) if members else torch.zeros_like(w)
            return accuracy(w + step)

        n = self.ctx.agents
        if n <= EXACT_UP_TO:
            return exact_shapley(value, n)
        return sampled_shapley(value, n, self.settings.permutations, self.generator)

    def server_step(self, inp: RoundInput) -> ServerStep:
        m = self.mechanism
        a = size_weights(self.ctx, inp.valid)
        weighted = normalised_rows(inp, m) * a.to(inp.updates.dtype)[:, None]
        aggregate = weighted.sum(dim=0)
        phi = self.shapley(inp, weighted)
        self.total = self.total + phi
        q = eci_fractions(self.total)
        rewards: list[Reward | None] = list(reward_masks(aggregate, q, m.mask_scope, self.ctx.layer_sizes))
        return ServerStep(server_delta=aggregate, rewards=rewards, psi=phi, r=self.total.clone(), q=q)

    def state_dict(self) -> dict:
        return {"total": self.total.clone(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.total = state["total"].clone()
        self.generator.set_state(state["generator"])
