"""An agent's round (the spec's "One round, agent i"), in two phases so a rank can host many.

1. ``upload``: remember w_before, train locally on the own shard; upload Δw_i = w_after − w_before,
   then restore w = w_before: the agent keeps nothing of its own update, it only gets what the
   server hands back.
2. ``finish``: receive its own reward v_i and set w ← w + v_i; then, on evaluation rounds,
   evaluate the own model on the common test set, and send the server its round statistics
   (a few scalars, never the model).

A rank runs phase 1 for each of its agents, then phase 2 for each (``fedfair.runtime.host``).
All of a rank's agents share one ``nn.Module``: :meth:`Agent.activate` points its parameters at
the agent's own flat vector and its buffers (BatchNorm's running statistics) at the agent's own,
and restores the agent's global torch RNG (dropout), so each agent keeps its own parameters,
buffers, optimizer state, RNGs, shard and byte counters. Buffers are not uploaded: each agent's
move only by its own training (forward passes in training mode). An agent absent from
a round (``run.participation`` < 1) neither trains, uploads nor receives: it only reports.
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch

from ..config import Config
from ..data import Shard, TaskData
from ..strategies import Strategy
from .training import LocalTrainer, evaluate, flatten_parameters, is_eval_round, point_buffers, point_parameters
from .transport import AgentTransport
from .wire import RoundStats, decode, upload_row


class Agent:
    def __init__(self, cfg: Config, index: int, task: TaskData, shard: Shard, model: torch.nn.Module,
                 strategy: Strategy, transport: AgentTransport) -> None:
        self.cfg = cfg
        self.index = index  # 1..N
        self.task = task
        self.model = model
        self.w = flatten_parameters(model)  # a fresh vector of its own; the model points at it until the next agent's
        # buffers (BatchNorm's running statistics): the agent's own, never uploaded, start as w_0's
        self.buffers = [b.detach().clone() for b in model.buffers()]
        self.strategy = strategy
        self.transport = transport
        self.generator = torch.Generator().manual_seed(cfg.run.seed * 1_000_003 + index)
        # dropout and other global-RNG use: distinct per agent, saved and restored around its work
        self.torch_rng = seeded_rng_state(cfg.run.seed * 7919 + index)
        # its own noisy copy of its inputs (data.feature_noise), drawn here: only the hosting rank holds it
        self.trainer = LocalTrainer(model, task, shard.indices, shard.labels, cfg.train, self.generator,
                                    inputs=shard.inputs(task))
        behaviours = cfg.adversary.behaviours
        self.behaviour = behaviours[index - 1] if index - 1 < len(behaviours) else "honest"
        self.last_reward = torch.zeros_like(self.w) if self.behaviour == "replayer" else torch.zeros(0)
        self.pending: tuple[float, float, float, float] = (0.0, math.nan, math.nan, math.nan)
        """This round's (train_s, train_loss, local_loss, local_acc), from phase 1 to phase 2."""
        self.present = True

    def activate(self) -> None:
        """Make the rank's shared model this agent's: its parameters view self.w, its buffers are the
        agent's own, the global RNG is its own."""
        point_parameters(self.model, self.w)
        point_buffers(self.model, self.buffers)
        torch.set_rng_state(self.torch_rng)

    def deactivate(self) -> None:
        self.torch_rng = torch.get_rng_state()

    def upload(self, t: int, present: bool = True) -> None:
        """Phase 1 of round t: train, then upload the update (or step alone); nothing when absent."""
        self.present = present
        self.pending = (0.0, math.nan, math.nan, math.nan)
        if not present:
            return
        self.activate()
        evaluating = is_eval_round(self.cfg.run, t)
        extras = self.strategy.agent_extras(self.trainer.shard_loss) if self.strategy.communicates else []
        w_before = self.w.clone()
        started = time.perf_counter()
        train_loss = self.trainer.train_round(t)
        train_s = time.perf_counter() - started
        delta = self.w - w_before
        local_loss, local_acc = self.evaluate(evaluating)  # right after local training
        self.pending = (train_s, train_loss, local_loss, local_acc)
        if self.strategy.communicates:
            upload = self.disguise(delta)
            self.w.copy_(w_before)
            self.transport.send_upload(upload_row(upload, extras))
        else:
            self.w.copy_(self.strategy.local_apply(w_before, delta, t))
        self.deactivate()

    def finish(self, t: int) -> RoundStats:
        """Phase 2 of round t: take the own reward (when present), evaluate; returns the round
        statistics, which the host sends (:meth:`report`) once all its agents are checkpointed."""
        self.activate()
        evaluating = is_eval_round(self.cfg.run, t)
        if self.present and self.strategy.communicates:
            reward = decode(self.transport.receive_reward()).to(self.w.device, self.w.dtype)
            self.w.add_(reward)
            if self.behaviour == "replayer":
                self.last_reward = reward
        test_loss, test_acc = self.evaluate(evaluating)
        shard_loss = self.trainer.shard_loss() if evaluating else math.nan
        train_s, train_loss, local_loss, local_acc = self.pending
        self.deactivate()
        return RoundStats(train_s, train_loss, local_acc, local_loss, test_acc, test_loss, shard_loss,
                          float(self.transport.received))

    def report(self, stats: RoundStats) -> None:
        self.transport.send_stats(stats.to_tensor())

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

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.clone(), "optimizer": self.trainer.optimizer.state_dict(),
                "generator": self.generator.get_state(), "last_reward": self.last_reward.clone(),
                "torch_rng": self.torch_rng.clone(), "received": self.transport.received, "sent": self.transport.sent,
                "buffers": [b.clone() for b in self.buffers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w.copy_(state["w"])
        self.trainer.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.last_reward = state["last_reward"].clone()
        self.torch_rng = state["torch_rng"].clone()
        self.transport.received = int(state["received"])
        self.transport.sent = int(state["sent"])
        for mine, saved in zip(self.buffers, state.get("buffers", [])):  # absent in checkpoints before buffers
            mine.copy_(saved)


def seeded_rng_state(seed: int) -> torch.Tensor:
    """The global torch RNG state that ``torch.manual_seed(seed)`` gives, without changing the current one."""
    return torch.Generator().manual_seed(seed).get_state()
