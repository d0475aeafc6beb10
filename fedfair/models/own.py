"""Models that are not the paper's: the built-in ``mlp`` for tabular data, and your own class.

``train.model = "package.module:ClassName"`` imports any ``torch.nn.Module`` subclass and calls it
with exactly ``train.model_args`` as keyword arguments, so a party's model needs no change to
fedfair's source. Like the built-in models, its forward must return log-probabilities of shape
[batch, C] (end in ``log_softmax``): training uses the NLL loss and evaluation its argmax; or it
returns logits and ``train.output = "logits"`` makes fedfair apply log_softmax.
Every way this can go wrong is one line (ValueError) raised before any process group exists;
the output size is checked with one forward pass on a few samples of the data.
"""
from __future__ import annotations

import importlib
import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fedfair.data.base import TaskData


class MLP(nn.Module):
    """Flatten -> (Linear -> ReLU) per hidden size -> Linear(C) -> log_softmax: a small model for
    tabular data whose input and output sizes come from the data, the hidden sizes from model_args."""

    def __init__(self, in_features: int, num_classes: int, hidden: list[int] | tuple[int, ...] = (64, 32)) -> None:
        super().__init__()
        sizes = [in_features, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = F.relu(layer(x))
        return F.log_softmax(self.out(x), dim=1)


def build_mlp(task: TaskData, args: dict[str, Any]) -> MLP:
    """The built-in mlp: sizes from the data, ``hidden`` (a list of positive ints) from train.model_args."""
    unknown = sorted(set(args) - {"hidden"})
    if unknown:
        raise ValueError(f"train.model_args = {args!r} is invalid: mlp takes only hidden (a list of layer sizes), "
                         f"not {', '.join(unknown)}")
    hidden = args.get("hidden", [64, 32])
    if not isinstance(hidden, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1
                                               for h in hidden):
        raise ValueError(f"train.model_args.hidden = {hidden!r} is invalid: expected a list of layer sizes >= 1, "
                         "e.g. [64, 32]")
    if task.kind == "text":
        raise ValueError(f"mlp needs fixed-size numeric inputs; {task.name} is text (use text_cnn)")
    features = math.prod(int(s) for s in task.train_x.shape[1:]) if task.num_train else \
        math.prod(int(s) for s in task.test_x.shape[1:])
    return MLP(features, task.num_classes, hidden)


def import_model_class(spec: str) -> type[nn.Module]:
    """The class named by "package.module:ClassName"; one line for each way the import can fail."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name or ":" in class_name:
        raise ValueError(f"train.model = {spec!r} is invalid: expected a built-in name or 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ValueError(f"train.model = {spec!r}: module {module_name!r} not found ({e}); "
                         "is it installed or on PYTHONPATH?") from None
    except Exception as e:  # the module itself raised while importing
        raise ValueError(f"train.model = {spec!r}: importing {module_name!r} failed: {type(e).__name__}: {e}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"train.model = {spec!r}: module {module_name!r} has no {class_name!r}")
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise ValueError(f"train.model = {spec!r}: {class_name} is not a torch.nn.Module subclass")
    return cls


def build_own_model(spec: str, args: dict[str, Any]) -> nn.Module:
    """Import the class and call it with exactly ``args`` as keyword arguments."""
    cls = import_model_class(spec)
    signature = inspect.signature(cls)
    try:
        signature.bind(**args)
    except TypeError as e:
        shown = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}"
                          for p in signature.parameters.values())
        raise ValueError(f"train.model_args = {args!r} do not fit {spec}({shown}): {e}") from None
    try:
        return cls(**args)
    except Exception as e:
        raise ValueError(f"train.model = {spec!r}: {cls.__name__}(**{args!r}) failed: "
                         f"{type(e).__name__}: {e}") from None


class LogSoftmaxOutput(nn.Module):
    """A model that returns logits, followed by log_softmax (train.output = "logits"): the runtime's loss
    is NLL on log-probabilities. Its parameters are the wrapped model's, in the same order."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(self.net(x), dim=1)


PROBE = 8
"""Test samples of the one forward pass that checks a model's output before training."""
LOGSUMEXP_TOL = 1e-3
"""How far logsumexp over the classes may be from 0 for an output to count as log-probabilities
(log_softmax in float32 is within 1e-6; a model that returns logits or probabilities is far off)."""


def check_output(model: nn.Module, task: TaskData, name: str, output: str = "log_probs") -> None:
    """One forward pass on a few test samples: the output must be [batch, C], finite, and (with
    ``output`` = "log_probs", i.e. train.output) log-probabilities, logsumexp over the classes = 0:
    a model that returns logits or probabilities would otherwise train on a meaningless NLL loss."""
    n = min(PROBE, task.num_test)
    if n == 0:
        return
    x, _ = task.batch("test", torch.arange(n))
    x = x.to(next(iter(model.parameters()), torch.empty(0)).dtype) if x.is_floating_point() else x
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as e:
        raise ValueError(f"train.model = {name!r}: forward on a batch of {task.name} (shape "
                         f"{list(x.shape)}) failed: {type(e).__name__}: {e}") from None
    finally:
        model.train()
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != n:
        shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"train.model = {name!r}: forward returned {shape}, expected log-probabilities of "
                         f"shape [batch, {task.num_classes}]")
    if out.shape[1] != task.num_classes:
        raise ValueError(f"train.model = {name!r}: output size {out.shape[1]} != number of classes "
                         f"{task.num_classes} of {task.name}")
    _check_values(out.detach().double(), name, output)


def _check_values(out: Tensor, name: str, output: str) -> None:
    """log_probs: logsumexp = 0 per row; logits: anything finite except rows of probabilities."""
    where = f"train.model = {name!r}: forward on {out.shape[0]} test samples returned"
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{where} NaN or infinite values")
    probabilities = bool((out >= 0).all()) and bool(((out.sum(1) - 1).abs() <= LOGSUMEXP_TOL).all())
    if probabilities:
        raise ValueError(f"{where} probabilities (rows >= 0 summing to 1): return log-probabilities (end forward "
                         "in log_softmax) or logits (and set train.output = 'logits')")
    if output == "logits":
        return
    lse = torch.logsumexp(out, dim=1)
    worst = float(lse.abs().max())
    if worst > LOGSUMEXP_TOL:
        raise ValueError(f"{where} values whose logsumexp over the classes is {float(lse[lse.abs().argmax()]):.4g}, "
                         "not 0: not log-probabilities (train.output = 'log_probs'); end forward in log_softmax, "
                         "or set train.output = 'logits' if it returns logits")
