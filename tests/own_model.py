"""Tiny models imported by path in the tests (``train.model = "own_model:TinyNet"``): not fedfair's code."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class TinyNet(nn.Module):
    """Flatten -> Linear(features, classes) -> log_softmax; sizes given in train.model_args."""

    def __init__(self, features: int, classes: int, scale: float = 1.0) -> None:
        super().__init__()
        self.fc = nn.Linear(features, classes)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(self.scale * self.fc(x.flatten(1)), dim=1)


NOT_A_MODULE = 3


class Plain:
    """A class that is not an nn.Module."""


class LogitNet(nn.Module):
    """Flatten -> Linear(features, classes): returns logits (no log_softmax), as many models do."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(features, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.flatten(1))


class ProbNet(LogitNet):
    """Returns probabilities (softmax): neither log-probabilities nor logits."""

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(self.fc(x.flatten(1)), dim=1)


class BNNet(nn.Module):
    """Flatten -> Linear -> BatchNorm1d -> ReLU -> Linear -> log_softmax: a model with buffers
    (running mean and variance, batches tracked) that differ per agent."""

    def __init__(self, features: int, classes: int, hidden: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(self.fc2(F.relu(self.bn(self.fc1(x.flatten(1))))), dim=1)
