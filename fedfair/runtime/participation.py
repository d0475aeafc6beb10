"""Which agents take part in round t (``run.participation``): the same answer on every rank.

round(participation * N) agents (at least 1) are drawn without replacement from a generator
seeded by (run.seed, t) alone, so the server and every hosting rank compute the same set with
no message, and a resumed run draws the same sets. participation = 1: everyone, nothing drawn.
"""
from __future__ import annotations

import torch

SEED_STRIDE = 1_000_033
"""The round-t generator is seeded with seed * SEED_STRIDE + t (a stream apart from the agents' own)."""


def sampled_count(agents: int, participation: float) -> int:
    """Agents present per round: round(participation * N), at least 1."""
    return max(1, min(agents, round(participation * agents)))


def present_agents(agents: int, participation: float, seed: int, round: int) -> torch.Tensor:
    """N bool: True for the agents present in ``round``."""
    present = torch.ones(agents, dtype=torch.bool)
    m = sampled_count(agents, participation)
    if m == agents:
        return present
    g = torch.Generator().manual_seed(seed * SEED_STRIDE + round)
    present[:] = False
    present[torch.randperm(agents, generator=g)[:m]] = True
    return present
