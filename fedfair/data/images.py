"""Image data sets: 8x8 digits (zero download), MNIST, Fashion-MNIST, CIFAR-10 readers."""

from __future__ import annotations

import numpy as np
import torch

from .base import DataError, TaskData, stratified_split


def _standardise(x: np.ndarray, mean, std) -> torch.Tensor:
    """float32 [n, C, H, W] (values in [0, 1]) -> (x - mean) / std per channel."""
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return torch.from_numpy(((x.astype(np.float32) - m) / s).astype(np.float32))


def load_digits_task(seed: int = 0, test_fraction: float = 0.2) -> TaskData:
    """scikit-learn's 1,797 8x8 digits: pixels /16 into [0, 1], standardised with the TRAIN
    split's scalar mean/std (so no test statistics leak), stratified test split by seed."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    tr, te = stratified_split(y, test_fraction, seed)
    mean, std = float(x[tr].mean()), float(x[tr].std())
    xt = _standardise(x, [mean], [std])
    return TaskData(
        name="digits",
        kind="image",
        train_x=xt[torch.from_numpy(tr)].contiguous(),
        train_y=torch.from_numpy(y[tr]),
        test_x=xt[torch.from_numpy(te)].contiguous(),
        test_y=torch.from_numpy(y[te]),
        num_classes=10,
        source="sklearn.datasets.load_digits (bundled with scikit-learn)",
    )
