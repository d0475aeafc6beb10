"""What each agent holds beyond the shard drawn for it: Gaussian feature noise, a copy of another
agent's shard, or its shard held several times (data.feature_noise, data.copy_of, data.repeats).

These are the fairness suite's contribution scenarios with a known order: noisier inputs,
redundant (copied or repeated) data. They apply after the partition and label noise
(:func:`fedfair.data.make_shards`), so every agent's own draws, and every other agent's shard,
stay what they were without them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .base import SettingError

if TYPE_CHECKING:
    from .shards import Shard


@dataclass(frozen=True)
class FeatureNoise:
    """Gaussian noise of standard deviation ``sigma`` (the task's standardised units) that one
    agent adds once to its own copy of its inputs (data.feature_noise).

    Kept as a recipe, not as numbers: only the rank that hosts the agent draws it
    (:meth:`fedfair.data.Shard.inputs`), so the other ranks spend no memory on it. ``rows``
    values are drawn from ``seed``; a shard held k times (data.repeats) repeats them, and a copy
    (data.copy_of) shares the recipe, so it holds the very same values.
    """

    sigma: float
    seed: np.random.SeedSequence
    rows: int

    def draw(self, sample_shape: tuple[int, ...]) -> np.ndarray:
        """The ``rows`` noise values, float32 [rows, *sample_shape]; the same on every call."""
        z = np.random.default_rng(self.seed).standard_normal((self.rows, *sample_shape), dtype=np.float32)
        return z * np.float32(self.sigma)


def _per_agent(name: str, values: Sequence[Any], agents: int, missing: Any) -> list[Any]:
    values = list(values)
    if len(values) > agents:
        raise SettingError(name, f"{name}={values} has {len(values)} entries but there are only agents={agents}")
    return values + [missing] * (agents - len(values))


@dataclass(frozen=True)
class Holding:
    """Per agent (all N entries filled in): sigma of its feature noise, the agent whose shard it
    holds (0 = its own) and how many times it holds it."""

    feature_noise: tuple[float, ...]
    copy_of: tuple[int, ...]
    repeats: tuple[int, ...]

    @classmethod
    def checked(cls, agents: int, task_kind: str, feature_noise: Sequence[float] = (),
                copy_of: Sequence[int] = (), repeats: Sequence[int] = (),
                label_noise: Sequence[float] = ()) -> Holding:
        """The settings, validated: each problem raises one line naming the setting."""
        sigmas = [float(v) for v in _per_agent("feature_noise", feature_noise, agents, 0.0)]
        sources = _per_agent("copy_of", copy_of, agents, 0)
        times = _per_agent("repeats", repeats, agents, 1)
        fractions = [float(v) for v in _per_agent("label_noise", label_noise, agents, 0.0)]
        for i, v in enumerate(sigmas):
            if not (math.isfinite(v) and v >= 0):
                raise SettingError("feature_noise",
                                   f"feature_noise[{i}]={v} must be a finite number >= 0 (a standard deviation)")
        if task_kind == "text" and any(sigmas):
            raise SettingError("feature_noise",
                               f"feature_noise={list(feature_noise)} applies to image and tabular inputs, not to "
                               "text (token ids)")
        for i, k in enumerate(times):
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise SettingError("repeats",
                                   f"repeats[{i}]={k!r} must be an integer >= 1 (times agent {i + 1} holds its shard)")
        for i, j in enumerate(sources):
            agent = i + 1
            if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j <= agents or j == agent:
                raise SettingError("copy_of",
                                   f"copy_of[{i}]={j!r} must be 0 (agent {agent}'s own shard) or another agent "
                                   f"1..{agents}")
            if j and sources[j - 1]:
                raise SettingError("copy_of",
                                   f"copy_of[{i}]={j}: agent {j} is itself a copy (of agent {sources[j - 1]}); "
                                   f"let agent {agent} copy agent {sources[j - 1]}")
            if j and (sigmas[i] or fractions[i]):
                raise SettingError("copy_of",
                                   f"copy_of[{i}]={j}: agent {agent} holds agent {j}'s shard as agent {j} holds it "
                                   f"(labels and feature noise included), so its own label_noise and feature_noise "
                                   "must be 0")
        return cls(tuple(sigmas), tuple(int(j) for j in sources), tuple(int(k) for k in times))

    def hold(self, shards: list[Shard], seeds: Sequence[np.random.SeedSequence]) -> list[Shard]:
        """What each agent holds, from the shards drawn for them (one noise seed per agent).

        An agent's own shard gets its feature noise, then is tiled ``repeats`` times; a copy is
        its source's shard exactly as the source holds it (noise and repeats included), then
        tiled by the copy's own ``repeats``.
        """
        own = []
        for i, shard in enumerate(shards):
            sigma = self.feature_noise[i]
            if sigma > 0 and len(shard) > 0:
                shard = dataclasses.replace(shard, noise=FeatureNoise(sigma, seeds[i], len(shard)))
            own.append(tiled(shard, self.repeats[i]) if not self.copy_of[i] else shard)
        return [tiled(own[j - 1], self.repeats[i], copy=True) if j else own[i] for i, j in enumerate(self.copy_of)]


def tiled(shard: Shard, times: int, copy: bool = False) -> Shard:
    """The shard held ``times`` times: indices and labels repeated (the noise recipe repeats its rows)."""
    if times == 1 and not copy:
        return shard
    return dataclasses.replace(shard, indices=np.tile(shard.indices, times), labels=np.tile(shard.labels, times))
