"""Fairness and performance metrics (the paper's Sec. 4), and what "undefined" means for them.

Each statistic over agents is defined here once; every reader of runs (the report, compare, the
fairness suite, the study scripts) uses these, so they agree on a number and on when it is
undefined (None: written as null, printed as "undefined", never as 0).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np


def pearson100(x: Sequence[float], y: Sequence[float]) -> float | None:
    """100 x Pearson correlation; None (never 0) when undefined: zero variance or non-finite input."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.size != b.size or a.size < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    da, db = a - a.mean(), b - b.mean()
    sa, sb = math.sqrt(float(da @ da)), math.sqrt(float(db @ db))
    if sa <= 1e-12 * max(1.0, float(np.abs(a).max())) or sb <= 1e-12 * max(1.0, float(np.abs(b).max())):
        return None
    return 100.0 * float(da @ db) / (sa * sb)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's τ-b (ties in either order corrected); None when undefined (fewer than two
    values, a non-finite value, or every value tied in x or in y)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.size != b.size or a.size < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    i, j = np.triu_indices(a.size, k=1)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    untied_a, untied_b = float(np.count_nonzero(sa)), float(np.count_nonzero(sb))
    if untied_a == 0 or untied_b == 0:
        return None
    return float((sa * sb).sum()) / math.sqrt(untied_a * untied_b)


def num(x: Any) -> float | None:
    """A finite number, or None (undefined: missing, null, non-numeric, NaN or infinite)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def agent_mean(values: Sequence[Any]) -> float | None:
    """Mean over agents; undefined when there are none or any agent's value is undefined (an
    average over the agents that happen to have a value would be another statistic)."""
    xs = [num(v) for v in values]
    if not xs or any(x is None for x in xs):
        return None
    return sum(xs) / len(xs)  # type: ignore[arg-type]


def agent_max(values: Sequence[Any]) -> float | None:
    """Max over agents; undefined under the same rule as :func:`agent_mean`."""
    xs = [num(v) for v in values]
    if not xs or any(x is None for x in xs):
        return None
    return max(xs)  # type: ignore[type-var]
