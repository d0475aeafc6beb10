"""Which agents a rank hosts: the one place that maps ranks to agents.

Rank 0 is the server and hosts no agent. A job of P ranks (2 <= P <= N + 1, ``run.ranks``;
0 = N + 1) spreads agents 1..N over ranks 1..P-1 in contiguous, balanced blocks; code that
needs "my agents" (data loading, the agent loop, checkpoints) or "the host of agent i" (the
server's transport) asks this module instead of assuming agent = rank.
"""
from __future__ import annotations


def world_size_for(agents: int, ranks: int) -> int:
    """The job's world size: ``run.ranks``, or N + 1 when it is 0 (one rank per agent)."""
    return ranks or agents + 1


def hosted_agents(agents: int, rank: int, world_size: int) -> list[int]:
    """The agents (1..N) that ``rank`` hosts in a job of ``world_size`` ranks.

    The rule: with W = world_size - 1 agent ranks, N = q W + m (0 <= m < W), ranks 1..m host
    q + 1 agents each and ranks m+1..W host q each, in agent order: rank 1 hosts agents 1..,
    rank 2 the next block, and so on. P = N + 1 gives rank i agent i (one process per agent).
    """
    if not 2 <= world_size <= agents + 1:
        raise ValueError(f"world size {world_size} does not fit {agents} agents: a run needs 2 to N + 1 = "
                         f"{agents + 1} ranks")
    if rank == 0:
        return []
    slots = world_size - 1
    if not 1 <= rank <= slots:
        raise ValueError(f"rank {rank} is outside a job of {world_size} ranks")
    q, m = divmod(agents, slots)
    first = (rank - 1) * q + min(rank - 1, m) + 1
    return list(range(first, first + q + (1 if rank <= m else 0)))


def host_rank(agents: int, agent: int, world_size: int) -> int:
    """The rank that hosts ``agent`` (1..N): the inverse of :func:`hosted_agents`."""
    slots = world_size - 1
    q, m = divmod(agents, slots)
    big = m * (q + 1)  # agents on the ranks that host q + 1
    rank = (agent - 1) // (q + 1) + 1 if agent <= big else m + (agent - 1 - big) // q + 1
    return rank


def host_ranks(agents: int, world_size: int) -> list[int]:
    """host_ranks[i - 1] = the rank of agent i, for every agent (the server's routing table)."""
    return [r for r in range(1, world_size) for _ in hosted_agents(agents, r, world_size)]
