"""Reward methods, one module each, behind ``Strategy``; looked up by ``mechanism.method``."""
from __future__ import annotations

from .base import Reward, RoundInput, ServerContext, ServerStep, Strategy
from .cgsv import CGSV

REGISTRY: dict[str, type[Strategy]] = {cls.name: cls for cls in (CGSV,)}


def build_strategy(cfg, ctx: ServerContext) -> Strategy:
    method = cfg.mechanism.method
    if method not in REGISTRY:
        raise ValueError(f"mechanism.method = {method!r} is not implemented yet; available: {', '.join(REGISTRY)}")
    return REGISTRY[method](cfg, ctx)


__all__ = ["Reward", "RoundInput", "ServerContext", "ServerStep", "Strategy", "REGISTRY", "build_strategy"]
