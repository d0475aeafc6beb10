"""The strategy registry: every method's class, looked up by ``mechanism.method``, and how one is built."""
from __future__ import annotations

import dataclasses

from ..config import Config
from ..methods import NAMES
from .base import ServerContext, Strategy
from .cffl import CFFL
from .cgsv import CGSV
from .dw import DW
from .eci import ECI
from .eu import EU
from .fedavg import FedAvg
from .qffl import QFFL
from .rr import RoundRobin
from .standalone import Standalone

STRATEGIES: tuple[type[Strategy], ...] = (CGSV, Standalone, FedAvg, DW, EU, RoundRobin, QFFL, CFFL, ECI)
"""Every method's class, in the registry's order (fedfair.methods.METHODS)."""

REGISTRY: dict[str, type[Strategy]] = {cls.name: cls for cls in STRATEGIES}
if tuple(REGISTRY) != NAMES:
    raise TypeError(f"fedfair.strategies.STRATEGIES names {tuple(REGISTRY)}, the registry {NAMES}")


def build_strategy(cfg: Config, ctx: ServerContext) -> Strategy:
    """The strategy of ``mechanism.method``, given only what a strategy may see: the mechanism's
    settings, the job's static facts and the seed."""
    return REGISTRY[cfg.mechanism.method](cfg.mechanism, ctx, seed=cfg.run.seed)


def importance_audit(strategy: Strategy) -> CGSV | None:
    """CGSV's valuation run alongside a method that has its own (or no) coefficient.

    The paper's appendix (Tables 7, 8) computes ρ_r for every method from CGSV's moving-average
    r on that method's uploads (with the paper's cosine ψ); this instance only values
    (``CGSV.value``), it never rewards.
    None where the method's r already is CGSV's, or where nothing is uploaded.
    """
    if not strategy.communicates or strategy.values_by_cgsv:
        return None
    return CGSV(dataclasses.replace(strategy.mechanism, valuation="cosine"), strategy.ctx, strategy.seed)
