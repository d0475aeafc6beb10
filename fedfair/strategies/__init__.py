"""Reward methods, one module each, behind ``Strategy``; looked up by ``mechanism.method``.

Which methods exist, and what each is, is ``fedfair.methods`` (pure data, no torch: the config
and the command line read it without loading these classes); ``STRATEGIES`` (``registry.py``)
lists the classes, each of which takes its facts from that registry by its ``name``. Each
method's own settings are ``settings.py``, torch-free, which the config imports: so this package
loads its classes (and torch) only when one of the names below is first asked for.
"""
from __future__ import annotations

import importlib
from typing import Any

from .. import config as _config  # noqa: F401  (the config imports .settings: loaded first, either entry works)

_HOMES = {"Reward": "base", "RoundInput": "base", "ServerContext": "base", "ServerStep": "base", "Strategy": "base",
          "REGISTRY": "registry", "STRATEGIES": "registry", "build_strategy": "registry",
          "importance_audit": "registry"}
"""Public name -> the submodule that defines it (imported on first use)."""

__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
