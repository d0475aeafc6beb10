"""q-FFL (Li et al., ICLR 2020), the q-FedAvg update.

Agent k reports F_k, the mean NLL loss of its current model (= the server's model, which
every agent downloads each round) on its own shard (up to its first 4096 samples), measured
before local training; it travels as one extra float32 scalar of the upload row
(``extras = 1``). After local training to w̄_k the agent uploads w̄_k − w, so the server has
Δw_k = (w − w̄_k)/η = −upload/η, with η this round's learning rate (L = 1/η as in the paper), and

    Δ_k = F_k^q Δw_k,   h_k = q F_k^(q−1) ‖Δw_k‖² + F_k^q / η,   w ← w − Σ_k Δ_k / Σ_k h_k

(in float64; the q F^(q−1) term is taken as 0 when q = 0, so q = 0 is uniform FedAvg).
Rejected uploads and non-finite losses are left out of both sums. Every agent downloads the
new model as a dense delta. q is ``mechanism.qffl.q`` (default 1; :class:`~fedfair.strategies.settings.QFFLSettings`).

Logged: psi = F_k (the loss the agent reported), r = Σ-normalised h_k (each agent's share of
the step size), q = 1. Per-agent accuracy convention (baselines.md): the model after the
agent's own local training in the final round (``local_acc``).
"""
from __future__ import annotations

from typing import Callable

import torch

from .base import RoundInput, ServerStep, Strategy, model_rewards
from .settings import QFFLSettings


def qffl_step(updates: torch.Tensor, losses: torch.Tensor, valid: torch.Tensor, q: float,
              lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The q-FedAvg server step (float64 D-vector) from uploads w̄_k − w, losses F_k and η = lr.

    Also returns h_k per agent (float64 N-vector, NaN for agents left out of the step).
    """
    use = valid & torch.isfinite(losses)
    dw = -updates[use].to(torch.float64) / lr              # Δw_k = (w − w̄_k)/η
    f = losses[use].to(torch.float64).clamp_min(0.0)
    fq = f.pow(q)
    h = fq / lr
    if q != 0:
        h = h + q * f.pow(q - 1) * (dw * dw).sum(dim=1)
    h_all = torch.full((updates.shape[0],), float("nan"), dtype=torch.float64)
    h_all[use] = h
    total = h.sum()
    if not total > 0:
        return torch.zeros(updates.shape[1], dtype=torch.float64), h_all
    return -(fq @ dw) / total, h_all


class QFFL(Strategy):
    name = "qffl"
    extras = 1
    settings: QFFLSettings

    def agent_extras(self, shard_loss: Callable[[], float]) -> list[float]:
        return [float(shard_loss())]

    def server_step(self, inp: RoundInput) -> ServerStep:
        n = self.ctx.agents
        losses = inp.extras[:, 0].to(torch.float64)
        step64, h = qffl_step(inp.updates, losses, inp.valid, self.settings.q, inp.lr)
        delta = step64.to(inp.updates.dtype)
        total = torch.nansum(h)
        share = h / total if total > 0 else h
        return ServerStep(server_delta=delta, rewards=model_rewards(inp, [delta] * n), psi=losses, r=share,
                          q=torch.ones(n, dtype=torch.float64))
