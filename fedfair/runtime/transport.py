"""Point-to-point transport between the server (rank 0) and agents (ranks 1..N), with a byte ledger.

The network end of FedLab's split: this module moves tensors and counts bytes; what the bytes
mean (upload rows, reward payloads, round statistics) is :mod:`fedfair.runtime.wire`'s, and
what to do with them is the server's and the agents'. torch.distributed counts no bytes, so
every byte is counted here, where it is sent:

Agent i lives on rank ``host(i)`` (:mod:`fedfair.runtime.placement`; rank i when every agent
has its own rank). Every message of agent i carries the tag i, so a rank hosting many agents
still sends each agent's messages separately and the ledger counts each agent's own bytes:

- upload: agent i sends one fixed-size float32 row; the server receives all rows with irecv
  (from host(i), tag i) straight into one preallocated N x row tensor (the buffer fixes the
  size: no header). Uploads are never batched, so no header is shared between agents.
- reward: the server sends agent i a size header, then agent i's own payload (tag i). Nobody
  else's payload ever goes to agent i, and its host decodes it into agent i's vector only.
- stats: after every round each agent sends its round statistics, counted as control bytes.

Absent agents (``run.participation`` < 1) send no upload and get no reward that round.

No collective carries model data: all_gather would hand every upload to every agent.

Every wait has a deadline: the server waits at most ``comm.timeout_s`` for all agents of a
phase together (``Work.wait(timeout)``, which gloo honours for p2p receives), and raises
:class:`PeerFailure` naming the agent that did not deliver; an agent waits at most twice
that for its reward (the server, which sees every rank, is the one that reports).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable, Literal

import torch
import torch.distributed as dist

from .wire import SIZE_HEADER_DTYPE, STATS_SIZE, WIRE_DTYPE

EXPIRY_SLACK_S = 0.05
"""A wait that fails this close to its deadline has expired (torch rounds the timeout to ms)."""


class PeerFailure(RuntimeError):
    """A peer that did not deliver: ``timeout`` (silent until the deadline) or ``closed`` (gone).

    torch raises the same ``RuntimeError`` for both under gloo, so the kind is read off the
    wait itself: failing to post, or a wait that fails before its deadline, means the peer's
    connection closed; a wait that fails at its deadline means the peer was silent.
    """

    def __init__(self, rank: int, what: str, kind: Literal["timeout", "closed"], detail: str,
                 agent: int | None = None) -> None:
        self.rank = rank
        self.agent = rank if agent is None else agent  # the agent whose message failed (its host: rank)
        self.what = what
        self.kind = kind
        super().__init__(f"rank {rank}: {what}: {detail.splitlines()[0] if detail else ''}")


class RunAborted(RuntimeError):
    """The job stops because a rank failed; the message names the rank and the round.

    ``quiet``: this rank only lost its peer, which reports the cause itself (no message here).
    """

    def __init__(self, message: str, quiet: bool = False) -> None:
        super().__init__(message)
        self.quiet = quiet


Request = dist.Work


def _post(op: Callable[..., Request], tensor: torch.Tensor, peer: int, what: str, tag: int = 0) -> Request:
    """dist.isend / dist.irecv; posting fails at once when the peer's connection is already closed."""
    try:
        return op(tensor, peer, tag=tag)
    except RuntimeError as e:
        raise PeerFailure(peer, what, "closed", str(e), agent=tag or None) from None


def _wait(req: Request, peer: int, what: str, deadline: float | None, agent: int | None = None) -> None:
    """Wait for ``req`` until the ``time.monotonic()`` deadline (None: for ever)."""
    try:
        if deadline is None:
            req.wait()
        else:
            req.wait(timedelta(seconds=max(deadline - time.monotonic(), 1e-3)))
    except RuntimeError as e:
        expired = deadline is not None and time.monotonic() >= deadline - EXPIRY_SLACK_S
        raise PeerFailure(peer, what, "timeout" if expired else "closed", str(e), agent=agent) from None


def _deadline(timeout_s: float | None) -> float | None:
    return None if timeout_s is None else time.monotonic() + timeout_s


def _wait_all(reqs: list[tuple[int, int, Request]], what: str, timeout_s: float | None,
              on_done: Callable[[int], None] | None = None) -> None:
    """Wait for every (agent, rank, request) with one shared deadline; ``on_done(agent)`` after each."""
    deadline = _deadline(timeout_s)
    for agent, peer, req in reqs:
        _wait(req, peer, what, deadline, agent)
        if on_done is not None:
            on_done(agent)


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


@dataclass
class Ledger:
    """Bytes put on the wire in the current round, per agent and direction (headers included)."""
    agents: int
    up: list[int] = field(default_factory=list)
    down: list[int] = field(default_factory=list)
    ctrl: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.up = [0] * self.agents
        self.down = [0] * self.agents
        self.ctrl = [0] * self.agents


CPU = torch.device("cpu")


def wire_device(device: torch.device) -> torch.device:
    """Where tensors must sit to be sent: gloo carries host tensors, NCCL the rank's own GPU."""
    return torch.device("cpu") if dist.get_backend() == "gloo" else device


def _staged(t: torch.Tensor, wire: torch.device) -> torch.Tensor:
    """Stage a tensor onto the wire's device (CUDA tensors go through the host for gloo)."""
    return t if t.device == wire else t.to(wire)


class ServerTransport:
    """The server's end: receive uploads into one buffer, send each agent its own reward.

    ``hosts[i - 1]`` is the rank of agent i (``placement.host_ranks``; default: rank i).
    """

    def __init__(self, agents: int, row_size: int, device: torch.device, timeout_s: float | None = None,
                 hosts: list[int] | None = None) -> None:
        self.agents = agents
        self.hosts = hosts or list(range(1, agents + 1))
        self.timeout_s = timeout_s
        self.ledger = Ledger(agents)
        self.device = device
        self.wire = wire = wire_device(device)
        self.uploads = torch.empty(agents, row_size, dtype=WIRE_DTYPE, device=wire)
        self.stats = torch.empty(agents, STATS_SIZE, dtype=torch.float64, device=wire)

    def _receive_rows(self, buffer: torch.Tensor, what: str, counter: list[int],
                      present: list[int] | None = None) -> torch.Tensor:
        """Row i - 1 of ``buffer`` from agent i (for i in ``present``, default all), concurrently;
        counted into ``counter``. Rows of agents not present are left as they are."""
        agents = present if present is not None else range(1, self.agents + 1)
        reqs = [(i, self.hosts[i - 1], _post(dist.irecv, buffer[i - 1], self.hosts[i - 1], what, tag=i))
                for i in agents]

        def count(agent: int) -> None:
            counter[agent - 1] += nbytes(buffer[agent - 1])

        _wait_all(reqs, what, self.timeout_s, count)
        return buffer.cpu()  # the server works on the host (a no-op for gloo)

    def receive_uploads(self, present: list[int] | None = None) -> torch.Tensor:
        """The upload rows of the present agents (default all), received concurrently into the
        preallocated N x row tensor; the rows of absent agents are zero."""
        if present is not None and len(present) < self.agents:
            self.uploads.zero_()
        return self._receive_rows(self.uploads, "upload", self.ledger.up, present)

    def send_rewards(self, payloads: list[torch.Tensor | None]) -> None:
        """Agent i gets a size header and then payloads[i - 1] (uint8), nothing else (None: nothing)."""
        reqs = []
        for i, payload in enumerate(payloads, start=1):
            if payload is None:
                continue
            host = self.hosts[i - 1]
            header = torch.tensor([payload.numel()], dtype=SIZE_HEADER_DTYPE, device=self.wire)
            payload = _staged(payload, self.wire).contiguous()
            reqs.append((i, host, _post(dist.isend, header, host, "reward", tag=i)))
            reqs.append((i, host, _post(dist.isend, payload, host, "reward", tag=i)))
            self.ledger.down[i - 1] += nbytes(header) + nbytes(payload)
        _wait_all(reqs, "reward", self.timeout_s)

    def receive_stats(self) -> torch.Tensor:
        """Every agent's round statistics (N x STATS_SIZE float64), absent agents' too."""
        return self._receive_rows(self.stats, "round statistics", self.ledger.ctrl)


class AgentTransport:
    """Agent i's end (on its host rank): send its upload and stats to the server, receive its own
    reward; every message tagged i. Counts the bytes agent i sent and received."""

    def __init__(self, timeout_s: float | None = None, device: torch.device = CPU,
                 agent: int = 0) -> None:
        self.wire = wire_device(device)
        self.agent = agent
        self.sent = 0
        self.received = 0
        # the reward comes after every agent's training and the server's step: allow twice the timeout
        self.timeout_s = None if timeout_s is None else 2 * timeout_s

    def _exchange(self, op: Callable[..., Request], tensor: torch.Tensor, what: str) -> None:
        _wait(_post(op, tensor, 0, what, tag=self.agent), 0, what, _deadline(self.timeout_s), self.agent)

    def send_upload(self, row: torch.Tensor) -> None:
        row = _staged(row, self.wire).contiguous()
        self._exchange(dist.isend, row, "upload")
        self.sent += nbytes(row)

    def receive_reward(self) -> torch.Tensor:
        header = torch.empty(1, dtype=SIZE_HEADER_DTYPE, device=self.wire)
        self._exchange(dist.irecv, header, "reward")
        payload = torch.empty(int(header.item()), dtype=torch.uint8, device=self.wire)
        self._exchange(dist.irecv, payload, "reward")
        self.received += nbytes(header) + nbytes(payload)
        return payload.cpu()  # codecs decode on the host

    def send_stats(self, stats: torch.Tensor) -> None:
        stats = _staged(stats.to(torch.float64), self.wire).contiguous()
        self._exchange(dist.isend, stats, "round statistics")
