"""The registry of reward methods: the one place that says what a method is.

Name, label in tables, row order, and the facts the config, the sweep, the report and the
runtime ask about a method live here and nowhere else. This module is pure data with no torch
import: the config validates ``mechanism.method`` and the report labels its rows without loading
the strategies (``fedfair.strategies`` imports each class from ``MethodInfo.strategy``).

Adding a method: its module in ``fedfair/strategies/`` and one line in ``METHODS``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    """One reward method."""

    name: str
    """The value of ``mechanism.method``."""
    label: str
    """Row label in tables and figures; methods that use β get " β=<beta>" appended."""
    order: int
    """Row order in tables: the fairness reference first, the paper's method last."""
    uses_beta: bool = False
    """``mechanism.beta`` changes what it does: sweeps name and multiply it by β, tables give one row per β."""
    needs_validation: bool = False
    """The server values uploads on a held-out validation set (``data.val_size``)."""
    communicates: bool = True
    """False: no uploads and no rewards (each agent trains alone)."""
    partial: bool = False
    """Defines what a round with absent agents does (``run.participation`` < 1, docs/participation.md)."""
    valued: bool = False
    """Computes ψ by ``mechanism.valuation`` and keeps CGSV's importance r (cgsv and the methods built on it)."""


METHODS: tuple[MethodInfo, ...] = (
    MethodInfo("cgsv", "CGSV", 8, uses_beta=True, partial=True, valued=True),
    MethodInfo("standalone", "Standalone", 0, communicates=False, partial=True),
    MethodInfo("fedavg", "FedAvg", 1, partial=True),
    MethodInfo("dw", "DW", 2, valued=True),
    MethodInfo("eu", "EU", 3, valued=True),
    MethodInfo("rr", "RR", 4),
    MethodInfo("qffl", "q-FFL", 5),
    MethodInfo("cffl", "CFFL", 6, needs_validation=True),
    MethodInfo("eci", "ECI", 7, needs_validation=True),
)
"""Every method, in the order messages list them (the paper's first, then the baselines)."""

BY_NAME: dict[str, MethodInfo] = {m.name: m for m in METHODS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
PARTIAL_METHODS: tuple[str, ...] = tuple(m.name for m in METHODS if m.partial)
REFERENCE = "standalone"
"""The fairness reference: ρ correlates every method's accuracies with this method's, so sweeps run it first."""
ACCURACY_REFERENCE = "fedavg"
"""The accuracy reference of the paper's first claim (CGSV's accuracy "near FedAvg's")."""


def info(name: str) -> MethodInfo:
    """The registry entry of ``name``; a KeyError names the registered methods."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(NAMES)}") from None


def uses_beta(name: str) -> bool:
    """Whether β matters to ``name`` (False for a name the registry does not know, e.g. an old run's)."""
    return name in BY_NAME and BY_NAME[name].uses_beta


def needs_validation(name: str) -> bool:
    """Whether ``name`` needs the server's held-out validation set."""
    return info(name).needs_validation


def valued(name: str) -> bool:
    """Whether ``name`` computes ψ by ``mechanism.valuation`` (cgsv, dw, eu)."""
    return name in BY_NAME and BY_NAME[name].valued


def supports_partial(name: str) -> bool:
    """Whether ``name`` defines rounds in which only some agents take part (``run.participation`` < 1)."""
    return name in BY_NAME and BY_NAME[name].partial


def table_rank(name: str) -> int:
    """Row position of ``name`` in tables; a name the registry does not know sorts after every method."""
    return BY_NAME[name].order if name in BY_NAME else len(METHODS)


def row_label(name: str, beta: float | None = None) -> str:
    """A table row's label: the method's label, plus " β=<beta>" when the method uses β and β is given."""
    label = BY_NAME[name].label if name in BY_NAME else name
    if beta is not None and uses_beta(name):
        label += f" β={'∞' if math.isinf(beta) else f'{beta:g}'}"
    return label
