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
