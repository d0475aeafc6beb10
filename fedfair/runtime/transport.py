"""Point-to-point transport between the server (rank 0) and agents (ranks 1..N), with a byte ledger.

torch.distributed counts no bytes, so every byte is counted here, where it is sent:

- upload: agent i sends its raw update as one fixed-size float32 row (D values plus the
  strategy's extra scalars); the server receives all rows with irecv straight into one
  preallocated N x (D + extras) tensor. The size is fixed by the receive buffer, so no header.
- reward: the server sends agent i an 8-byte int64 size header, then agent i's own encoded
  payload (see ``fedfair.runtime.wire``). Nobody else's payload ever goes to agent i.
- stats: after every round each agent sends a small float64 vector (timings, metrics);
  counted separately as control bytes.

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

import torch
import torch.distributed as dist

from .wire import SIZE_HEADER_BYTES


class PeerFailure(RuntimeError):
    """A peer that did not deliver: ``timeout`` (silent) or ``closed`` (its process went away)."""

    def __init__(self, rank: int, what: str, detail: str) -> None:
        self.rank = rank
        self.what = what
        self.kind = "timeout" if "timed out" in detail.lower() else "closed"
        super().__init__(f"rank {rank}: {what}: {detail.splitlines()[0] if detail else ''}")


class RunAborted(RuntimeError):
    """The job stops because a rank failed; the message names the rank and the round.

    ``quiet``: this rank only lost its peer, which reports the cause itself (no message here).
    """

    def __init__(self, message: str, quiet: bool = False) -> None:
        super().__init__(message)
        self.quiet = quiet


def _post(op, tensor: torch.Tensor, peer: int, rank: int, what: str):
    """dist.isend / dist.irecv; posting fails at once when the peer's connection is already closed."""
    try:
        return op(tensor, peer)
    except RuntimeError as e:
        raise PeerFailure(rank, what, str(e)) from None


def _wait(req, rank: int, what: str, timeout_s: float | None) -> None:
    try:
        if timeout_s is None:
            req.wait()
        else:
            req.wait(timedelta(seconds=max(timeout_s, 1e-3)))
    except RuntimeError as e:
        raise PeerFailure(rank, what, str(e)) from None


def _wait_all(reqs, what: str, timeout_s: float | None, on_done=None) -> None:
    """Wait for reqs[i] (from/to agent i + 1) with one shared deadline."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    for i, req in enumerate(reqs):
        _wait(req, i + 1, what, None if deadline is None else deadline - time.monotonic())
        if on_done is not None:
            on_done(i)


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


def wire_device(device: torch.device) -> torch.device:
    """Where tensors must sit to be sent: gloo carries host tensors, NCCL the rank's own GPU."""
    return torch.device("cpu") if dist.get_backend() == "gloo" else device


def _staged(t: torch.Tensor, wire: torch.device) -> torch.Tensor:
    """Stage a tensor onto the wire's device (CUDA tensors go through the host for gloo)."""
    return t if t.device == wire else t.to(wire)


class ServerTransport:
    """The server's end: receive uploads into one buffer, send each agent its own reward."""

    def __init__(self, agents: int, row_size: int, stats_size: int, device: torch.device,
                 timeout_s: float | None = None) -> None:
        self.agents = agents
        self.timeout_s = timeout_s
        self.ledger = Ledger(agents)
        self.device = device
        self.wire = wire = wire_device(device)
        self.uploads = torch.empty(agents, row_size, dtype=torch.float32, device=wire)
        self.stats = torch.empty(agents, stats_size, dtype=torch.float64, device=wire)

    def receive_uploads(self) -> torch.Tensor:
        """All agents' upload rows, received concurrently into the preallocated N x row tensor."""
        reqs = [_post(dist.irecv, self.uploads[i], i + 1, i + 1, "upload") for i in range(self.agents)]

        def count(i: int) -> None:
            self.ledger.up[i] += nbytes(self.uploads[i])

        _wait_all(reqs, "upload", self.timeout_s, count)
        return self.uploads.cpu()  # the mechanism works on the host (a no-op for gloo)

    def send_rewards(self, payloads: list[torch.Tensor]) -> None:
        """Agent i gets a size header and then payloads[i] (uint8), nothing else."""
        headers = [torch.tensor([p.numel()], dtype=torch.int64, device=self.wire) for p in payloads]
        reqs = []
        for i, (h, p) in enumerate(zip(headers, payloads)):
            p = _staged(p, self.wire).contiguous()
            reqs.append((i + 1, _post(dist.isend, h, i + 1, i + 1, "reward")))
            reqs.append((i + 1, _post(dist.isend, p, i + 1, i + 1, "reward")))
            self.ledger.down[i] += nbytes(h) + nbytes(p)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        for rank, r in reqs:
            _wait(r, rank, "reward", None if deadline is None else deadline - time.monotonic())

    def receive_stats(self) -> torch.Tensor:
        reqs = [_post(dist.irecv, self.stats[i], i + 1, i + 1, "round statistics") for i in range(self.agents)]

        def count(i: int) -> None:
            self.ledger.ctrl[i] += nbytes(self.stats[i])

        _wait_all(reqs, "round statistics", self.timeout_s, count)
        return self.stats.cpu()


class AgentTransport:
    """An agent's end: send its upload and stats to the server, receive its own reward."""

    def __init__(self, timeout_s: float | None = None, device: torch.device = torch.device("cpu")) -> None:
        self.wire = wire_device(device)
        self.sent = 0
        self.received = 0
        # the reward comes after every agent's training and the server's step: allow twice the timeout
        self.timeout_s = None if timeout_s is None else 2 * timeout_s

    def send_upload(self, row: torch.Tensor) -> None:
        row = _staged(row, self.wire).contiguous()
        _wait(_post(dist.isend, row, 0, 0, "upload"), 0, "upload", self.timeout_s)
        self.sent += nbytes(row)

    def receive_reward(self) -> torch.Tensor:
        header = torch.empty(1, dtype=torch.int64, device=self.wire)
        _wait(_post(dist.irecv, header, 0, 0, "reward"), 0, "reward", self.timeout_s)
        payload = torch.empty(int(header.item()), dtype=torch.uint8, device=self.wire)
        _wait(_post(dist.irecv, payload, 0, 0, "reward"), 0, "reward", self.timeout_s)
        self.received += nbytes(header) + nbytes(payload)
        return payload.cpu()  # codecs decode on the host

    def send_stats(self, stats: torch.Tensor) -> None:
        stats = _staged(stats.to(torch.float64), self.wire).contiguous()
        _wait(_post(dist.isend, stats, 0, 0, "round statistics"), 0, "round statistics", self.timeout_s)
