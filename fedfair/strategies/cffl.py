"""CFFL (Lyu et al., "Collaborative Fairness in Federated Learning", 2020).

The server holds a validation set (a held-out slice of the training pool that no agent
owns, ``data.val_size``; see ``fedfair.run.prepare`` for the default when it is 0). Each round:

1. Uploads are Γ-normalised, u_i = Γ Δw_i/‖Δw_i‖, like the mechanism's, so every method's
   server step has the same size Γ; the server aggregates u_N = Σ_i c_i u_i over active
   agents with the reputations c of the previous round (data-size weights in round 1).
2. Score: s_i = validation accuracy of (w + u_i), w the server model before the round;
   normalised over active agents, ŝ_i = s_i / Σ_j s_j (as Lyu et al.'s code does, so that
   scores and reputations live on the same scale). Rejected uploads score 0.
3. Reputation: c_i ← 0.8 c_i + 0.2 ŝ_i (initial c_i = 1/N), sharpened c_i ← sinh(α c_i)
   (α = ``mechanism.cffl.alpha``, default 5) and renormalised to sum 1 over active agents.
4. Agents whose reputation is below the threshold (``mechanism.cffl.threshold``, 0 = 1/(3N))
   are dropped for good: reputation 0, no weight in the aggregate, an empty reward; the rest
   are renormalised. The most reputable agent always survives (its c ≥ 1/N_active).
5. Agent i downloads the largest-magnitude share q_i = c_i / max_j c_j of u_N (the paper's
   k_i = q_i·D) under ``mechanism.mask_scope`` (the same masks as the mechanism, so that the
   comparison isolates the valuation; "global" gives CFFL's exact k_i = floor(q_i D)).

Lyu et al. also let agents upload only a fraction of their gradients and subtract their own
contribution from downloads; here everyone uploads in full, like every other method.
mechanism_s includes the N validation passes.

Logged: psi = s_i (validation accuracy), r = c (reputation), q.
"""
from __future__ import annotations

import torch

from ..config import MechanismConfig
from ..mechanism import reward_masks
from .base import Reward, RoundInput, ServerContext, ServerStep, Strategy, normalised_rows, size_weights
from .settings import CFFLSettings

OLD, NEW = 0.8, 0.2


def update_reputation(c: torch.Tensor, scores: torch.Tensor, active: torch.Tensor, alpha: float,
                      threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One CFFL reputation step (steps 2-4 above); returns (new c, new active mask)."""
    s = torch.where(active, scores, torch.zeros_like(scores))
    s_hat = s / s.sum() if s.sum() > 0 else torch.where(active, 1.0 / active.sum(), 0.0).to(c.dtype)
    c = torch.where(active, OLD * c + NEW * s_hat, torch.zeros_like(c))
    c = torch.sinh(alpha * c)
    c = c / c.sum()
    active = active & (c >= threshold)
    c = torch.where(active, c, torch.zeros_like(c))
    return c / c.sum(), active


class CFFL(Strategy):
    name = "cffl"
    settings: CFFLSettings

    def __init__(self, mechanism: MechanismConfig, ctx: ServerContext, seed: int = 0) -> None:
        super().__init__(mechanism, ctx, seed)
        n = ctx.agents
        self.c = torch.full((n,), 1.0 / n, dtype=torch.float64)
        self.active = torch.ones(n, dtype=torch.bool)

    @property
    def threshold(self) -> float:
        t = self.settings.threshold
        return t if t > 0 else 1.0 / (3 * self.ctx.agents)

    def server_step(self, inp: RoundInput) -> ServerStep:
        m, n = self.mechanism, self.ctx.agents
        accuracy = self.ctx.validation_accuracy
        if accuracy is None:
            raise RuntimeError("cffl needs the server's validation set (ServerContext.validation_accuracy)")
        u = normalised_rows(inp, m)
        use = self.active & inp.valid
        a = size_weights(self.ctx, use) if inp.round == 1 else torch.where(use, self.c, torch.zeros_like(self.c))
        aggregate = a.to(u.dtype) @ u
        scores = torch.zeros(n, dtype=torch.float64)
        for i in range(n):
            if bool(use[i]):
                scores[i] = accuracy(inp.server_model + u[i])
        self.c, self.active = update_reputation(self.c, scores, self.active, self.settings.alpha, self.threshold)
        q = self.c / self.c.max()
        rewards: list[Reward | None] = list(reward_masks(aggregate, q, m.mask_scope, self.ctx.layer_sizes))
        return ServerStep(server_delta=aggregate, rewards=rewards, psi=scores, r=self.c.clone(), q=q)

    def state_dict(self) -> dict:
        return {"c": self.c.clone(), "active": self.active.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.c, self.active = state["c"].clone(), state["active"].clone()
