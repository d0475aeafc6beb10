"""Reward methods, one module each, behind ``Strategy``; looked up by ``mechanism.method``.

Which methods exist, and what each is, is ``fedfair.methods``: the classes are imported from
the ``module:Class`` paths it lists, so adding a method never touches this file.
"""
from __future__ import annotations

import dataclasses
from importlib import import_module

from ..config import Config
from ..methods import METHODS, MethodInfo, needs_validation
from .base import Reward, RoundInput, ServerContext, ServerStep, Strategy, default_val_size
from .cgsv import CGSV


def _strategy_class(m: MethodInfo) -> type[Strategy]:
    module, name = m.strategy.split(":")
    cls = getattr(import_module(f"{__name__}.{module}"), name)
    if cls.name != m.name:
        raise TypeError(f"{m.strategy} is named {cls.name!r}, but the registry lists it as {m.name!r}")
    return cls


REGISTRY: dict[str, type[Strategy]] = {m.name: _strategy_class(m) for m in METHODS}


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


__all__ = ["Reward", "RoundInput", "ServerContext", "ServerStep", "Strategy", "REGISTRY", "build_strategy",
           "importance_audit", "needs_validation", "default_val_size"]
