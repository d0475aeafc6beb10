"""Reward methods, one module each, behind ``Strategy``; looked up by ``mechanism.method``."""
from __future__ import annotations

from ..config import Config
from .base import Reward, RoundInput, ServerContext, ServerStep, Strategy, default_val_size
from .cffl import CFFL
from .cgsv import CGSV
from .dw import DW
from .eci import ECI
from .eu import EU
from .fedavg import FedAvg
from .qffl import QFFL
from .rr import RoundRobin
from .standalone import Standalone

REGISTRY: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (CGSV, Standalone, FedAvg, DW, EU, RoundRobin, QFFL, CFFL, ECI)}


def build_strategy(cfg: Config, ctx: ServerContext) -> Strategy:
    """The strategy of ``mechanism.method``, given only what a strategy may see: the mechanism's
    settings, the job's static facts and the seed."""
    method = cfg.mechanism.method
    if method not in REGISTRY:
        raise ValueError(f"mechanism.method = {method!r} is not implemented yet; available: {', '.join(REGISTRY)}")
    return REGISTRY[method](cfg.mechanism, ctx, seed=cfg.run.seed)


def importance_audit(strategy: Strategy) -> CGSV | None:
    """CGSV's valuation run alongside a method that has its own (or no) coefficient.

    The paper's appendix (Tables 7, 8) computes ρ_r for every method from CGSV's moving-average
    r on that method's uploads; this instance only values (``CGSV.value``), it never rewards.
    None where the method's r already is CGSV's, or where nothing is uploaded.
    """
    if not strategy.communicates or strategy.values_by_cgsv:
        return None
    return CGSV(strategy.mechanism, strategy.ctx, strategy.seed)


def needs_validation(method: str) -> bool:
    """Whether ``method`` needs the server's held-out validation set (cffl, eci)."""
    return REGISTRY[method].needs_validation


__all__ = ["Reward", "RoundInput", "ServerContext", "ServerStep", "Strategy", "REGISTRY", "build_strategy",
           "importance_audit", "needs_validation", "default_val_size"]
