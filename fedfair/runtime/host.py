"""A rank's round loop over the agents it hosts (``placement.hosted_agents``).

Each round the rank runs phase 1 (train, upload) for each of its agents in agent order, then
phase 2 (own reward, evaluation) for each, then writes their checkpoint files (when due) and
only then sends their round statistics: the server marks a round complete once it has every
agent's statistics, so every agent file of that round is on disk by then. Agents absent from
the round (``run.participation``) skip phase 1 and their reward but still report.
"""
from __future__ import annotations

from ..config import Config
from .agent import Agent
from .checkpoint import Checkpointer
from .faults import maybe_fail
from .participation import present_agents
from .transport import PeerFailure, RunAborted


class Host:
    """Rank ``rank`` > 0 and the agents it hosts, run one after another each round."""

    def __init__(self, cfg: Config, rank: int, agents: list[Agent], checkpointer: Checkpointer | None = None) -> None:
        self.cfg = cfg
        self.rank = rank
        self.agents = agents
        self.checkpointer = checkpointer

    def round(self, t: int) -> None:
        maybe_fail(self.rank, t)
        present = present_agents(self.cfg.data.agents, self.cfg.run.participation, self.cfg.run.seed, t)
        for agent in self.agents:
            agent.upload(t, bool(present[agent.index - 1]))
        stats = [agent.finish(t) for agent in self.agents]
        if self.checkpointer is not None and self.checkpointer.due(t):
            self.checkpointer.save_agents(t, {agent.index: agent.state_dict() for agent in self.agents})
        for agent, s in zip(self.agents, stats):
            agent.report(s)

    def run(self, start_round: int = 1) -> None:
        for t in range(start_round, self.cfg.run.rounds + 1):
            try:
                self.round(t)
            except PeerFailure as e:
                if e.kind == "closed":  # the server went away; it (or the launcher) reports why
                    raise RunAborted(f"rank {self.rank}: lost the server in round {t}", quiet=True) from None
                # a silent server: every rank times out alike; the first agent's host speaks for them
                quiet = self.agents[0].index != 1
                raise RunAborted(f"the server (rank 0) stopped responding in round {t}: agent {e.agent}'s "
                                 f"{e.what} did not complete within 2 x comm.timeout_s = "
                                 f"{2 * self.cfg.comm.timeout_s:g} s",
                                 quiet=quiet) from None

    def load_state_dict(self, states: dict[int, dict]) -> None:
        for agent in self.agents:
            agent.load_state_dict(states[agent.index])
