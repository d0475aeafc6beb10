"""The paper's networks (the spec's "Models" section, the authors' reference code) and fedfair's
small digits CNN for the zero-download default. All end in log_softmax (training uses the NLL loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DigitsCNN(nn.Module):
    """1x8x8 -> Conv(1->16,3,pad 1) -> ReLU -> pool -> Conv(16->32,3,pad 1) -> ReLU -> pool
    -> Linear(128->C). 6,090 parameters for C = 10: small enough that N+1 copies and the exact
    Shapley audit stay cheap, big enough for >90% test accuracy in a few hundred SGD steps."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 2 * 2, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.log_softmax(self.fc(x.flatten(1)), dim=1)


class MnistCNN(nn.Module):
    """Reference MNIST CNN, D = 104,242. Inputs smaller than 32x32 (MNIST's 28x28) are
    zero-padded symmetrically to 32x32 inside forward, so the data stays 28x28 in memory
    (data.image_pad = data pads the pixels before standardising instead: 32x32 passes unpadded)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3)
        self.conv2 = nn.Conv2d(64, 16, 7)
        self.fc1 = nn.Linear(16 * 4 * 4, 200)
        self.fc2 = nn.Linear(200, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2], x.shape[-1]
        if h != 32 or w != 32:
            if h > 32 or w > 32:
                raise ValueError(f"mnist_cnn takes images up to 32x32, got {h}x{w}")
            top, left = (32 - h) // 2, (32 - w) // 2
            x = F.pad(x, (left, 32 - w - left, top, 32 - h - top))
        x = F.max_pool2d(torch.tanh(self.conv1(x)), 2)
        x = F.max_pool2d(torch.tanh(self.conv2(x)), 2)
        x = torch.tanh(self.fc1(x.flatten(1)))
        return F.log_softmax(self.fc2(x), dim=1)


class CifarCNN(nn.Module):
    """Reference CIFAR-10 CNN (LeNet-5 style) for 3x32x32, D = 121,182."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 5)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.fc1 = nn.Linear(32 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


class TextCNN(nn.Module):
    """Kim-style CNN: Embedding(V, 300) from scratch -> three Conv2d(1->128, (3, 300)) -> ReLU
    -> max over time -> concat 384 -> Dropout 0.5 -> Linear(384 -> C).

    The spec (and reference code) gives all three convolutions height 3; we follow it rather
    than Kim's 3/4/5. Input: int64 [B, L] token ids, pad id 0. Sequences shorter than the
    kernel are right-padded with the pad id to the kernel height so every batch is valid.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embed_dim: int = 300,
        channels: int = 128,
        kernel_heights: tuple[int, ...] = (3, 3, 3),
        dropout: float = 0.5,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(
            [nn.Conv2d(1, channels, (k, embed_dim)) for k in kernel_heights]
        )
        self.min_len = max(kernel_heights)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * len(kernel_heights), num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.shape[1] < self.min_len:
            tokens = F.pad(tokens, (0, self.min_len - tokens.shape[1]), value=0)
        e = self.embedding(tokens).unsqueeze(1)  # [B, 1, L, E]
        pooled = [F.relu(conv(e)).squeeze(3).amax(dim=2) for conv in self.convs]
        x = self.dropout(torch.cat(pooled, dim=1))
        return F.log_softmax(self.fc(x), dim=1)
