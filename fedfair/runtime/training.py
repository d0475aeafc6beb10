"""Local training and evaluation, shared by agents (their own models) and the server (w).

A model's parameters are re-pointed into one flat vector, so the agent's model *is* a
D-vector: w_before is one clone, the update one subtraction, a reward one add, and the
optimizer (whose state persists across rounds) keeps working on the same parameter objects.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import RunConfig, TrainConfig
from ..data import TaskData


def lr_at(train: TrainConfig, round: int) -> float:
    """η_t = η·γ^(t−1): the learning rate of round t, for the agents' optimizers and q-FFL's server step."""
    return train.lr * train.lr_decay ** (round - 1)


def is_eval_round(run: RunConfig, round: int) -> bool:
    """Every ``run.eval_every`` rounds and the last: when agents and server evaluate their models."""
    return round % run.eval_every == 0 or round == run.rounds


def flatten_parameters(model: nn.Module) -> torch.Tensor:
    """Move all parameters into one contiguous vector and make each parameter a view of it."""
    params = list(model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params]).clone()
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat[offset:offset + n].view_as(p)
        offset += n
    return flat


def point_parameters(model: nn.Module, flat: torch.Tensor) -> None:
    """Make each parameter of ``model`` a view of ``flat`` (same layout as :func:`flatten_parameters`):
    a rank's one model becomes agent i's by pointing it at agent i's vector, nothing copied."""
    offset = 0
    for p in model.parameters():
        n = p.numel()
        p.data = flat[offset:offset + n].view_as(p)
        offset += n


def point_buffers(model: nn.Module, buffers: list[torch.Tensor]) -> None:
    """Make each buffer of ``model`` (BatchNorm's running statistics, ...) a view of the given tensors:
    an agent's own buffers, so agents hosted on one rank never share them (buffers are not uploaded)."""
    for b, mine in zip(model.buffers(), buffers):
        b.data = mine


def to_model(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """An input batch on the model's device, and in its precision if the batch is floating point
    (images; token ids stay integers)."""
    return x.to(like.device, like.dtype) if x.is_floating_point() else x.to(like.device)


def layer_sizes(model: nn.Module) -> list[int]:
    return [p.numel() for p in model.parameters()]


class LocalTrainer:
    """An agent's local work: optimizer with persistent state, per-round exponential lr decay.

    ``inputs`` (data.feature_noise) is the agent's own noisy copy of its samples, aligned with
    ``indices``; without it the agent reads the shared task's clean inputs.
    """

    def __init__(self, model: nn.Module, task: TaskData, indices: np.ndarray, labels: np.ndarray, cfg: TrainConfig,
                 generator: torch.Generator, inputs: torch.Tensor | None = None) -> None:
        self.model = model
        self.task = task
        self.indices = torch.as_tensor(indices, dtype=torch.int64)
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        if inputs is not None and len(inputs) != len(self.indices):
            raise ValueError(f"inputs has {len(inputs)} rows but the shard {len(self.indices)}; they must align")
        self.inputs = inputs
        self.cfg = cfg
        self.generator = generator
        params = list(model.parameters())
        self.device = params[0].device
        self.model_param = params[0]  # device and precision of the inputs
        if cfg.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(params, lr=cfg.lr)
        else:
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr)

    def _batches(self) -> list[torch.Tensor]:
        """Positions into the shard for this round's mini-batches."""
        n, b = len(self.indices), self.cfg.batch_size
        if self.cfg.local_epochs > 0:
            out = []
            for _ in range(self.cfg.local_epochs):
                perm = torch.randperm(n, generator=self.generator)
                out += list(perm.split(b))
            return out
        return [torch.randperm(n, generator=self.generator)[:b] for _ in range(self.cfg.local_steps)]

    def train_round(self, round: int) -> float:
        """Run this round's local work; returns the mean mini-batch loss."""
        for g in self.optimizer.param_groups:
            g["lr"] = lr_at(self.cfg, round)
        self.model.train()
        losses = []
        for pos in self._batches():
            x, y = self._batch(pos)
            x, y = to_model(x, self.model_param), y.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss = F.nll_loss(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses)) if losses else math.nan

    def _batch(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x, y of the shard's positions ``pos``: the agent's own inputs when it has them."""
        if self.inputs is None:
            return self.task.batch("train", self.indices[pos], self.labels[pos])
        return self.inputs[pos], self.labels[pos]

    def shard_loss(self, limit: int = 4096) -> float:
        """Loss of the current model on (up to ``limit`` samples of) the agent's own shard."""
        inputs = None if self.inputs is None else self.inputs[:limit]
        return evaluate(self.model, self.task, "train", self.indices[:limit], self.labels[:limit], inputs=inputs)[0]


@torch.no_grad()
def evaluate(model: nn.Module, task: TaskData, split: str, indices: np.ndarray | torch.Tensor | None = None,
             labels: np.ndarray | torch.Tensor | None = None, batch_size: int = 1000,
             inputs: torch.Tensor | None = None) -> tuple[float, float]:
    """(mean NLL loss, accuracy) of ``model`` on a split, or on the given indices of it; ``inputs``
    (aligned with ``indices``, with ``labels``) replaces the task's inputs: an agent's noisy copy."""
    was_training = model.training
    model.eval()
    if indices is None:
        n = task.num_train if split == "train" else len(task.test_y)
        indices = torch.arange(n)
    indices = torch.as_tensor(indices, dtype=torch.int64)
    labels = None if labels is None else torch.as_tensor(labels, dtype=torch.int64)
    if inputs is not None and labels is None:
        raise ValueError("evaluate: inputs need their labels")
    total_loss, correct = 0.0, 0
    for start in range(0, len(indices), batch_size):
        idx = indices[start:start + batch_size]
        lab = None if labels is None else labels[start:start + batch_size]
        if inputs is None:
            x, y = task.batch(split, idx, lab)
        else:
            x, y = inputs[start:start + batch_size], lab
        param = next(model.parameters())
        x, y = to_model(x, param), y.to(param.device)
        out = model(x)
        total_loss += F.nll_loss(out, y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
    model.train(was_training)
    n = max(len(indices), 1)
    return total_loss / n, correct / n


class ValidationSet:
    """The server's held-out validation slice (cffl, eci and the validation-based valuations value
    agents on it; the live audit plays its coalition game on it).

    ``accuracy(w)`` evaluates a flat model through one probe network, ``loss_gradient(w)`` is
    ∇ of the mean NLL at w (one backward pass); every call is server work, and ``passes``
    counts them for summary.json.
    """

    def __init__(self, probe: nn.Module, task: TaskData, indices: np.ndarray) -> None:
        self.probe = probe
        self.flat = flatten_parameters(probe)
        self.task = task
        self.indices = indices
        self.labels = task.train_y[torch.as_tensor(indices)]
        self.passes = 0

    def accuracy(self, w: torch.Tensor) -> float:
        self.passes += 1
        self.flat.copy_(w)
        return evaluate(self.probe, self.task, "train", self.indices, self.labels)[1]

    def loss_gradient(self, w: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """∇_w of the mean validation NLL at the flat model w, as a flat vector (eval mode: no dropout)."""
        self.passes += 1
        self.flat.copy_(w)
        params = list(self.probe.parameters())
        for p in params:
            p.grad = None
        was_training = self.probe.training
        self.probe.eval()
        n = len(self.indices)
        for start in range(0, n, batch_size):
            idx = torch.as_tensor(self.indices[start:start + batch_size], dtype=torch.int64)
            x, y = self.task.batch("train", idx, self.labels[start:start + batch_size])
            x, y = to_model(x, self.flat), y.to(self.flat.device)
            (F.nll_loss(self.probe(x), y, reduction="sum") / n).backward()
        self.probe.train(was_training)
        grad = torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype)
                          for p in params])
        for p in params:
            p.grad = None
        return grad
