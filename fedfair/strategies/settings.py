"""Each method's own settings: one typed table per method that has settings ([mechanism.standalone],
[mechanism.qffl], [mechanism.cffl], [mechanism.eci]), next to the strategies that read them.

This module imports no torch and nothing of fedfair but the config's checks, so the config (which
builds these tables from TOML and validates them before any process group exists) and the command
line tools read it without loading the strategies. A method's table is the [mechanism] field named
after the method (``MechanismConfig.settings_of``); its strategy declares it (``settings: QFFLSettings``)
and sees it as ``Strategy.settings``. Method names are written in the registry and the method's own
module only (tests/test_methods.py), so this module names none.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..config.checks import _check, _check_choices


@dataclass
class StandaloneSettings:
    """``[mechanism.standalone]``: the step an agent of the Standalone reference takes alone."""

    step: Literal["gamma", "sgd"] = "gamma"
    """gamma (apply Gamma * dw/|dw| under mechanism.normalize, eps and the Gamma schedule: the step the
    mechanism would take for an agent alone, the paper's numbers) or sgd (keep the locally trained
    model). Part of the reference key other runs match on."""

    def __post_init__(self) -> None:
        _check_choices(self, "mechanism.standalone")


@dataclass
class QFFLSettings:
    """``[mechanism.qffl]``: q-FFL's fairness exponent (Li et al., ICLR 2020)."""

    q: float = 1.0
    """q of q-FedAvg: agents with a higher loss weigh F_k^q more (0 = uniform FedAvg)."""

    def __post_init__(self) -> None:
        _check(self.q >= 0 and math.isfinite(self.q), "mechanism.qffl.q", self.q, "must be a finite number >= 0")


@dataclass
class CFFLSettings:
    """``[mechanism.cffl]``: CFFL's reputations (Lyu et al., 2020)."""

    threshold: float = 0.0
    """Reputation below which an agent is dropped for good (0 = 1/(3N), Lyu et al.'s choice)."""
    alpha: float = 5.0
    """Sharpening: reputations pass through sinh(alpha * c) before renormalising."""

    def __post_init__(self) -> None:
        _check(self.threshold >= 0 and math.isfinite(self.threshold), "mechanism.cffl.threshold", self.threshold,
               "must be a finite number >= 0 (0 = 1/(3N))")
        _check(self.alpha > 0 and math.isfinite(self.alpha), "mechanism.cffl.alpha", self.alpha,
               "must be a finite number > 0")


@dataclass
class ECISettings:
    """``[mechanism.eci]``: ECI's Shapley sampling (Song et al., 2019)."""

    permutations: int = 50
    """Permutations sampled per round when N > 8 (exact Shapley over all coalitions below): at most
    permutations * N validation passes a round."""

    def __post_init__(self) -> None:
        _check(self.permutations >= 1, "mechanism.eci.permutations", self.permutations, "must be >= 1")

