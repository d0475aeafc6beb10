"""Which agents a rank hosts: the one place that maps ranks to agents.

Rank 0 is the server and hosts no agent. Today every agent is its own rank: rank i hosts agent
i, so a job has N + 1 ranks. Code that needs "my agents" (data loading, the agent loop) asks
:func:`hosted_agents` instead of assuming agent = rank.
"""
from __future__ import annotations


def hosted_agents(agents: int, rank: int, world_size: int) -> list[int]:
    """The agents (1..N) that ``rank`` hosts in a job of ``world_size`` ranks."""
    if world_size != agents + 1:
        raise ValueError(f"world size {world_size} does not fit {agents} agents: a run needs N + 1 = {agents + 1} ranks")
    return [] if rank == 0 else [rank]
