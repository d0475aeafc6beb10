"""The agent's round loop (the spec's "One round, agent i").

1. Remember w_before, train locally on the own shard.
2. Upload Δw_i = w_after − w_before, then restore w = w_before: the agent keeps nothing of its
   own update, it only gets what the server hands back.
3. Receive its own reward v_i and set w ← w + v_i.
Then, on evaluation rounds, evaluate the own model on the common test set, and send the
server its round statistics (a few scalars, never the model).
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch

from ..config import Config
from ..data import Shard, TaskData
from ..strategies import Strategy
from .checkpoint import Checkpointer
from .faults import maybe_fail
from .training import LocalTrainer, evaluate, flatten_parameters, is_eval_round
from .transport import AgentTransport, PeerFailure, RunAborted
from .wire import RoundStats, decode, upload_row


class Agent:
    def __init__(self, cfg: Config, index: int, task: TaskData, shard: Shard, model: torch.nn.Module,
                 strategy: Strategy, transport: AgentTransport, checkpointer: Checkpointer | None = None) -> None:
        self.cfg = cfg
        self.index = index  # 1..N
        self.task = task
        self.model = model
        self.w = flatten_parameters(model)
        self.strategy = strategy
        self.transport = transport
        self.checkpointer = checkpointer
        self.generator = torch.Generator().manual_seed(cfg.run.seed * 1_000_003 + index)
        self.trainer = LocalTrainer(model, task, shard.indices, shard.labels, cfg.train, self.generator)
        behaviours = cfg.mechanism.behaviours
        self.behaviour = behaviours[index - 1] if index - 1 < len(behaviours) else "honest"
        self.last_reward = torch.zeros_like(self.w)

    def round(self, t: int) -> RoundStats:
        """One round, agent i: train, upload and take the reward (or step alone), report."""
        maybe_fail(self.index, t)
        evaluating = is_eval_round(self.cfg.run, t)
        extras = self.strategy.agent_extras(self.trainer.shard_loss) if self.strategy.communicates else []
        w_before = self.w.clone()
        started = time.perf_counter()
        train_loss = self.trainer.train_round(t)
        train_s = time.perf_counter() - started
        delta = self.w - w_before
        local_loss, local_acc = self.evaluate(evaluating)  # right after local training
        if self.strategy.communicates:
            self.exchange(w_before, delta, extras)
        else:
            self.w.copy_(self.strategy.local_apply(w_before, delta, t))
        test_loss, test_acc = self.evaluate(evaluating)
        shard_loss = self.trainer.shard_loss() if evaluating else math.nan
        stats = RoundStats(train_s, train_loss, local_acc, local_loss, test_acc, test_loss, shard_loss,
                           float(self.transport.received))
        if self.checkpointer is not None and self.checkpointer.due(t):
            # before the stats: the server marks round t complete only after every agent's stats
            self.checkpointer.save(t, self.state_dict())
        self.transport.send_stats(stats.to_tensor())
        return stats

    def exchange(self, w_before: torch.Tensor, delta: torch.Tensor, extras: list[float]) -> None:
        """Upload the update and go back to w_before: the agent's new model is w_before + its reward."""
        upload = self.disguise(delta)
        self.w.copy_(w_before)
        self.transport.send_upload(upload_row(upload, extras))
        reward = decode(self.transport.receive_reward()).to(self.w.device, self.w.dtype)
        self.w.add_(reward)
        if self.behaviour == "replayer":
            self.last_reward = reward

    def evaluate(self, now: bool) -> tuple[float, float]:
        """(loss, accuracy) of the own model on the common test set, or NaNs when not evaluating."""
        return evaluate(self.model, self.task, "test") if now else (math.nan, math.nan)

    def disguise(self, delta: torch.Tensor) -> torch.Tensor:
        """What a (possibly dishonest) agent uploads instead of its true update, for experiments."""
        b = self.behaviour
        if b == "honest":
            return delta
        if b == "free_rider":  # random noise with the norm an honest update would have
            noise = torch.randn(delta.shape, generator=self.generator, dtype=delta.dtype).to(delta.device)
            return noise * (delta.norm() / (noise.norm() + 1e-12))
        if b == "sign_flipper":
            return -delta
        if b == "scaled":
            return delta * 1e4
        if b == "replayer":
            return self.last_reward.clone()
        if b == "nan":
            return torch.full_like(delta, math.nan)
        raise ValueError(f"unknown behaviour {b!r}")

    def run(self, start_round: int = 1) -> None:
        for t in range(start_round, self.cfg.run.rounds + 1):
            try:
                self.round(t)
            except PeerFailure as e:
                if e.kind == "closed":  # the server went away; it (or the launcher) reports why
                    raise RunAborted(f"agent {self.index}: lost the server in round {t}", quiet=True) from None
                # a silent server: every agent times out alike; agent 1 speaks for them
                quiet = self.index != 1
                raise RunAborted(f"the server (rank 0) stopped responding in round {t}: agent {self.index}'s "
                                 f"{e.what} did not complete within 2 x comm.timeout_s = {2 * self.cfg.comm.timeout_s:g} s",
                                 quiet=quiet) from None

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.clone(), "optimizer": self.trainer.optimizer.state_dict(),
                "generator": self.generator.get_state(), "last_reward": self.last_reward.clone(),
                "torch_rng": torch.get_rng_state(), "received": self.transport.received, "sent": self.transport.sent}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w.copy_(state["w"])
        self.trainer.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.last_reward = state["last_reward"].clone()
        torch.set_rng_state(state["torch_rng"])
        self.transport.received = int(state["received"])
        self.transport.sent = int(state["sent"])
