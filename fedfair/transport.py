"""Point-to-point transport between the server (rank 0) and agents (ranks 1..N), with a byte ledger.

torch.distributed counts no bytes, so every byte is counted here, where it is sent:

- upload: agent i sends its raw update as one fixed-size float32 row (D values plus the
  strategy's extra scalars); the server receives all rows with irecv straight into one
  preallocated N x (D + extras) tensor. The size is fixed by the receive buffer, so no header.
- reward: the server sends agent i an 8-byte int64 size header, then agent i's own encoded
  payload (see ``fedfair.mechanism.codecs``). Nobody else's payload ever goes to agent i.
- stats: after every round each agent sends a small float64 vector (timings, metrics);
  counted separately as control bytes.

No collective carries model data: all_gather would hand every upload to every agent.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist

SIZE_HEADER_BYTES = 8


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


def _cpu(t: torch.Tensor) -> torch.Tensor:
    """gloo carries CPU tensors only: stage CUDA tensors through the host."""
    return t.cpu() if t.is_cuda and dist.get_backend() == "gloo" else t


class ServerTransport:
    """The server's end: receive uploads into one buffer, send each agent its own reward."""

    def __init__(self, agents: int, row_size: int, stats_size: int, device: torch.device) -> None:
        self.agents = agents
        self.ledger = Ledger(agents)
        self.device = device
        wire = device if dist.get_backend() != "gloo" else torch.device("cpu")
        self.uploads = torch.empty(agents, row_size, dtype=torch.float32, device=wire)
        self.stats = torch.empty(agents, stats_size, dtype=torch.float64, device=wire)

    def receive_uploads(self) -> torch.Tensor:
        """All agents' upload rows, received concurrently into the preallocated N x row tensor."""
        reqs = [dist.irecv(self.uploads[i], src=i + 1) for i in range(self.agents)]
        for i, req in enumerate(reqs):
            req.wait()
            self.ledger.up[i] += nbytes(self.uploads[i])
        return self.uploads

    def send_rewards(self, payloads: list[torch.Tensor]) -> None:
        """Agent i gets a size header and then payloads[i] (uint8), nothing else."""
        headers = [torch.tensor([p.numel()], dtype=torch.int64) for p in payloads]
        reqs = []
        for i, (h, p) in enumerate(zip(headers, payloads)):
            p = _cpu(p).contiguous()
            reqs.append(dist.isend(h, dst=i + 1))
            reqs.append(dist.isend(p, dst=i + 1))
            self.ledger.down[i] += nbytes(h) + nbytes(p)
        for r in reqs:
            r.wait()

    def receive_stats(self) -> torch.Tensor:
        reqs = [dist.irecv(self.stats[i], src=i + 1) for i in range(self.agents)]
        for i, req in enumerate(reqs):
            req.wait()
            self.ledger.ctrl[i] += nbytes(self.stats[i])
        return self.stats


class AgentTransport:
    """An agent's end: send its upload and stats to the server, receive its own reward."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0

    def send_upload(self, row: torch.Tensor) -> None:
        row = _cpu(row).contiguous()
        dist.send(row, dst=0)
        self.sent += nbytes(row)

    def receive_reward(self) -> torch.Tensor:
        header = torch.empty(1, dtype=torch.int64)
        dist.recv(header, src=0)
        payload = torch.empty(int(header.item()), dtype=torch.uint8)
        dist.recv(payload, src=0)
        self.received += nbytes(header) + nbytes(payload)
        return payload

    def send_stats(self, stats: torch.Tensor) -> None:
        dist.send(stats.to(torch.float64).contiguous(), dst=0)
