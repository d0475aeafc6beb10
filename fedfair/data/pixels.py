"""Pixels -> model inputs: standardising, and the reference code's pad-before-standardise order.

Kept apart from the file readers in :mod:`fedfair.data.images`: these are the choices that change
what the model sees (data.image_pad), the readers only decide where the bytes come from.
"""

from __future__ import annotations

import numpy as np
import torch

#: data.image_pad values: "model" = standardise 28x28, the model zero-pads; "data" = pad first.
IMAGE_PADS = ("model", "data")
#: Side of the padded images (the reference MNIST CNN's input size).
PAD_SIZE = 32


def standardise(x: np.ndarray, mean, std) -> torch.Tensor:
    """float32 [n, C, H, W] (values in [0, 1]) -> (x - mean) / std per channel."""
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    # in place on one float32 copy (the same float32 arithmetic as (x - m) / s, without temporaries:
    # every rank of a job loads the data, so a temporary per step multiplies across ranks)
    out = np.array(x, dtype=np.float32, copy=True)
    out -= m
    out /= s
    return torch.from_numpy(out)


def _as_nchw(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x[:, None] if x.ndim == 3 else x


def padded_stats(x: np.ndarray, size: int = PAD_SIZE) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of pixels/255 over images zero-padded to size x size.

    What the reference code standardises with (FastMNIST: data.sub_(data.mean()).div_(data.std())
    after ZeroPad2d(2)); computed in float64 over row chunks, without building the padded array.
    """
    x = _as_nchw(x)
    n, c, h, w = x.shape
    s1, s2 = np.zeros(c), np.zeros(c)
    for start in range(0, n, 4096):
        part = x[start : start + 4096].astype(np.float64) / 255.0
        s1 += part.sum(axis=(0, 2, 3))
        s2 += np.square(part).sum(axis=(0, 2, 3))
    count = n * size * size  # the border adds zeros: they count, but add nothing to the sums
    mean = s1 / count
    std = np.sqrt(np.maximum(s2 / count - mean**2, 0.0))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def pad_standardise(x: np.ndarray, mean, std, size: int = PAD_SIZE) -> torch.Tensor:
    """uint8 [n, (C,) H, W] -> float32 [n, C, size, size]: pixels/255 centred in a zero border
    (ZeroPad2d's placement), then (x - mean) / std, so the border equals a black background."""
    x = _as_nchw(x)
    n, c, h, w = x.shape
    if h > size or w > size:
        raise ValueError(f"cannot pad {h}x{w} images to {size}x{size}")
    top, left = (size - h) // 2, (size - w) // 2
    out = np.zeros((n, c, size, size), dtype=np.float32)
    inner = out[:, :, top : top + h, left : left + w]
    inner[...] = x  # one float32 array, filled and scaled in place (every rank loads the data)
    inner /= np.float32(255.0)
    out -= np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    out /= np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return torch.from_numpy(out)
