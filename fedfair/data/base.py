"""Core data containers shared by every loader: the task, the error type, split helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor


class SettingError(ValueError):
    """A bad value of one of the data split's settings (an argument of ``make_shards``: pool_size,
    shard_size, val_size, label_noise, feature_noise, copy_of, repeats, partition).

    ``setting`` names it as the data layer does and the message begins with that name, so the
    caller, which knows where the value came from, names it as its user knows it (:meth:`named`:
    the run says data.pool_size, ``fedfair.runtime.setup``).
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting

    def named(self, name: str) -> str:
        """The message with the setting called ``name`` where it begins (e.g. data.pool_size=5000 must be ...)."""
        text = str(self)
        return name + text[len(self.setting):] if text.startswith(self.setting) else f"{name}: {text}"


class DataError(ValueError):
    """Data files missing or unreadable.

    Raised with ONE message that says what is missing, every place looked, and how to get it,
    so a failed run can be fixed without reading the loader's code.
    """


def pad_batch(seqs: Sequence[Tensor], pad_id: int = 0, min_len: int = 1) -> Tensor:
    """Stack 1-D int64 token tensors into [B, L], L = longest in the batch (at least min_len).

    Padding per batch (not to a global fixed length) keeps short batches cheap; min_len >= 1
    so an all-empty batch still yields a valid tensor.
    """
    length = max([min_len] + [int(s.numel()) for s in seqs])
    out = torch.full((len(seqs), length), pad_id, dtype=torch.int64)
    for row, s in enumerate(seqs):
        n = int(s.numel())
        if n:
            out[row, :n] = s.to(torch.int64)
    return out


def _as_index_array(idx: Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
    if isinstance(idx, Tensor):
        idx = idx.detach().cpu().numpy()
    return np.asarray(idx, dtype=np.int64).reshape(-1)


@dataclass
class TaskData:
    """One data set, already split into train/test and normalised, ready for partitioning.

    Images: ``train_x`` is float32 [n, C, H, W]. Tabular (the parties' own files, python -m fedfair prepare's
    scikit-learn sets): float32 [n, features]. Text: a list of 1-D int64 token-id tensors (pad id 0,
    unknown id 1), padded per batch by :meth:`batch`.
    """

    name: str
    kind: str  # "image", "tabular" or "text"
    train_x: Tensor | list[Tensor]
    train_y: Tensor
    test_x: Tensor | list[Tensor]
    test_y: Tensor
    num_classes: int
    vocab_size: int | None = None
    source: str = ""

    @property
    def num_train(self) -> int:
        return int(self.train_y.shape[0])

    @property
    def num_test(self) -> int:
        return int(self.test_y.shape[0])

    def batch(
        self,
        split: str,
        idx: Tensor | np.ndarray,
        labels: Tensor | np.ndarray | None = None,
    ) -> tuple[Tensor, Tensor]:
        """x, y for the given indices of 'train' or 'test'.

        Text is padded to the longest sequence of this batch (pad id 0). If ``labels`` is
        given (an agent's possibly-corrupted labels aligned with ``idx``) it is returned as
        y, so label noise lives in the shard, never in the shared task.
        """
        if split == "train":
            xs, ys = self.train_x, self.train_y
        elif split == "test":
            xs, ys = self.test_x, self.test_y
        else:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        ix = _as_index_array(idx)
        if self.kind == "text":
            x = pad_batch([xs[int(i)] for i in ix])
        else:
            x = xs[torch.from_numpy(ix)]
        if labels is None:
            y = ys[torch.from_numpy(ix)]
        else:
            y = torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)
            if y.shape[0] != ix.shape[0]:
                raise ValueError(
                    f"labels has {y.shape[0]} entries but idx has {ix.shape[0]}; they must align"
                )
        return x, y

    def class_counts(self, split: str = "train") -> list[int]:
        """Samples per class, for logs and the data report."""
        y = self.train_y if split == "train" else self.test_y
        return torch.bincount(y, minlength=self.num_classes).tolist()


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices with each class split in the same proportion, deterministic by seed.

    Used where a data set ships no test set (digits, MR, the stand-in TSV); stratifying avoids
    the reference code's MR test split that held only one class.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        idx, test_size=test_fraction, random_state=seed, stratify=labels, shuffle=True
    )
    return np.sort(train_idx).astype(np.int64), np.sort(test_idx).astype(np.int64)
