"""FedAvg (McMahan et al. 2017): the server averages raw updates by data size, everyone gets it.

Each round w ← w + Σ_i (|D_i| / Σ_j |D_j|) Δw_i with the raw (not normalised) uploads;
uploads rejected as non-finite weigh 0 and the weights are renormalised over the valid ones.
Every agent downloads the new model as a dense delta (the new model minus its own, see
``model_rewards``), so every agent's model equals the server's bit for bit.

With absent agents (run.participation < 1) the weights are renormalised over the present
valid uploads, and only the present download (an absent agent catches up, "the new model minus
yours", when next present).

Logged: r = the aggregation weights, q = 1 (full download), psi = cos(Δw_i, aggregate).

Accuracy convention (baselines.md): a shared model cannot show the spread of the paper's
FedAvg rows; those are the accuracy right after each agent's own local training in the last
round, logged as ``local_acc`` (summary ``final_local_acc``). ``python -m fedfair compare`` reports
both the held model (``test_acc``) and ``local_acc`` columns.
"""
from __future__ import annotations

import torch

from ..mechanism import cosines
from .base import RoundInput, ServerStep, Strategy, model_rewards, size_weights


class FedAvg(Strategy):
    name = "fedavg"

    def server_step(self, inp: RoundInput) -> ServerStep:
        a = size_weights(self.ctx, inp.contributing())
        delta = a.to(inp.updates.dtype) @ inp.updates
        n = self.ctx.agents
        q = torch.ones(n, dtype=torch.float64) if not inp.partial else inp.present.to(torch.float64)
        return ServerStep(server_delta=delta, rewards=model_rewards(inp, [delta] * n),
                          psi=cosines(inp.updates, delta), r=a, q=q)
