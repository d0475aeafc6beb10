"""Models, selected by name from the config (``train.model``): the paper's networks
(:mod:`.networks`), the built-in ``mlp`` and your own ``nn.Module`` by import path (:mod:`.own`).
All return log-probabilities (use the NLL loss), or logits wrapped in log_softmax.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from fedfair.data.base import TaskData

from .networks import CifarCNN, DigitsCNN, MnistCNN, TextCNN
from .own import MLP, LogSoftmaxOutput, build_mlp, build_own_model, check_output, import_model_class

__all__ = ["MODELS", "build_model", "default_model_for", "CifarCNN", "DigitsCNN", "MnistCNN", "TextCNN", "MLP",
           "LogSoftmaxOutput", "build_mlp", "build_own_model", "check_output", "import_model_class"]

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
