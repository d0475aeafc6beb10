"""Data sets, partitions and the text pipeline for fedfair.

Public API: :func:`load_task` -> :class:`TaskData`; :func:`make_shards` -> list of
:class:`Shard` plus validation indices; :class:`DataError` for missing/corrupt files,
:class:`SettingError` for a bad value of one of make_shards' settings (it names the setting).
"""

from .base import DataError, SettingError, TaskData, pad_batch, stratified_split
from .holding import FeatureNoise
from .shards import (
    Shard,
    default_pool_size,
    default_shard_size,
    default_val_size,
    make_shards,
    planned_validation_size,
    train_samples,
    validation_size,
)
from .tasks import TASKS, canonical_name, load_task

__all__ = [
    "DataError",
    "SettingError",
    "FeatureNoise",
    "TaskData",
    "Shard",
    "TASKS",
    "canonical_name",
    "default_pool_size",
    "default_shard_size",
    "default_val_size",
    "load_task",
    "make_shards",
    "planned_validation_size",
    "train_samples",
    "validation_size",
    "pad_batch",
    "stratified_split",
]
