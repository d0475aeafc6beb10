"""RR (round robin): updates are applied to the server model one agent at a time.

Round t's order is 0, 1, ..., N−1 rotated left by (t − 1) mod N (agent (t − 1) mod N + 1
goes first), so over N rounds every agent holds every position once. Each agent's RAW
upload Δw_i is added at full weight (no normalisation, no data-size weighting), as in the
round-robin DSSGD baseline of Lyu et al.'s CFFL code: the server model after the round is
w + Σ_i Δw_i. The agent at position k downloads the model right after its own update,
m_k = w + Δw_π1 + ... + Δw_πk, as a dense delta (m_k minus its own model). Rejected
(non-finite) uploads are skipped; their agent still downloads the model at its position.

Logged: psi = cos(Δw_i, Σ_j Δw_j), q = 1 (dense download); r is not defined (rho_r undefined).
"""
from __future__ import annotations

import torch

from ..mechanism import cosines
from .base import RoundInput, ServerStep, Strategy, model_rewards


def rr_order(round: int, n: int) -> list[int]:
    """Agent indices (0-based) in the order their updates are applied in round ``round`` (1-based)."""
    start = (round - 1) % n
    return [(start + j) % n for j in range(n)]


class RoundRobin(Strategy):
    name = "rr"

    def server_step(self, inp: RoundInput) -> ServerStep:
        n = self.ctx.agents
        running = torch.zeros_like(inp.updates[0])
        steps: list[torch.Tensor | None] = [None] * n
        for i in rr_order(inp.round, n):
            if bool(inp.valid[i]):
                running = running + inp.updates[i]
            steps[i] = running
        return ServerStep(server_delta=running, rewards=model_rewards(inp, steps),
                          psi=cosines(inp.updates, running), q=torch.ones(n, dtype=torch.float64))
