"""Model zoo, selected by name from the config. All models end in log_softmax (use NLL loss).

The MNIST, CIFAR-10 and text CNNs follow the spec's "Models" section (the authors' reference
code); the digits CNN is fedfair's own small model for the zero-download default.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fedfair.data.base import TaskData
from fedfair.own_models import LogSoftmaxOutput, build_mlp, build_own_model, check_output

MODELS = ("digits_cnn", "mnist_cnn", "cifar_cnn", "text_cnn", "mlp")

_DEFAULTS = {
    "digits": "digits_cnn",
    "mnist": "mnist_cnn",
    "fashion_mnist": "mnist_cnn",  # same 1x28x28 geometry as MNIST
    "cifar10": "cifar_cnn",
    "mr": "text_cnn",
    "sst5": "text_cnn",
    "files": "mlp",  # the parties' own files: numeric features (give train.model for anything else)
}


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


def default_model_for(dataset: str) -> str:
    """The model the paper (or, for digits, fedfair) pairs with a data set."""
    from fedfair.data.tasks import canonical_name

    return _DEFAULTS["files" if dataset == "files" else canonical_name(dataset)]


def build_model(name: str, task: TaskData, args: dict[str, Any] | None = None,
                output: str = "log_probs") -> nn.Module:
    """Build a model for ``task`` (built-in by name, or your own class from "package.module:ClassName" with
    ``args`` as its keyword arguments) and check its output with one forward pass (size, and
    log-probabilities unless ``output`` = "logits" (train.output), which appends log_softmax).
    Parameters come from torch's global RNG, so call torch.manual_seed(seed) first on every rank to get
    the same w_0 everywhere."""
    args = dict(args or {})
    if ":" in name:
        model = build_own_model(name.strip(), args)
    elif name.strip().lower() == "mlp":
        model = build_mlp(task, args)
    elif args:
        raise ValueError(f"train.model_args = {args!r} is invalid: only mlp and your own models "
                         f"('package.module:ClassName') take arguments, not {name}")
    else:
        model = _build_builtin(name, task)
    check_output(model, task, name, output)  # what forward itself returns
    return LogSoftmaxOutput(model) if output == "logits" else model


def _build_builtin(name: str, task: TaskData) -> nn.Module:
    key = name.strip().lower()
    if key == "text_cnn":
        if task.kind != "text" or not task.vocab_size:
            raise ValueError(f"text_cnn needs a text task with a vocabulary; {task.name} is {task.kind}")
        return TextCNN(task.vocab_size, task.num_classes)
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}, or your own "
                         "as 'package.module:ClassName'")
    if task.kind != "image":
        raise ValueError(f"{key} needs an image task; {task.name} is {task.kind}")
    c, h, w = (int(s) for s in task.train_x.shape[1:])
    if key == "digits_cnn":
        if (h, w) != (8, 8):
            raise ValueError(f"digits_cnn takes 8x8 images; {task.name} has {h}x{w}")
        return DigitsCNN(task.num_classes, c)
    if key == "mnist_cnn":
        if h > 32 or w > 32:
            raise ValueError(f"mnist_cnn takes images up to 32x32; {task.name} has {h}x{w}")
        return MnistCNN(task.num_classes, c)
    if (h, w) != (32, 32):
        raise ValueError(f"cifar_cnn takes 32x32 images; {task.name} has {h}x{w}")
    return CifarCNN(task.num_classes, c)
