"""The registry of valuations: the one place that says what each ``mechanism.valuation`` is.

A valuation decides how the server computes an agent's round value ψ_i; everything after ψ
(r's moving average, q = tanh(βr)/max, the sparsified rewards, aggregation by r) is CGSV's.
This module is pure data with no torch import, so the config validates the name and says
which valuations need the server's validation set without loading any strategy code
(``fedfair.strategies.valuing`` holds the implementations, named here by ``impl``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


def _always(mechanism: Any) -> bool:
    return True


def _never(mechanism: Any) -> bool:
    return False


def _fedce_data_space(mechanism: Any) -> bool:
    return mechanism.fedce.mode != "gradient"


@dataclass(frozen=True)
class ValuationInfo:
    """One valuation."""

    name: str
    """The value of ``mechanism.valuation``."""
    label: str
    """Its name in tables and figures."""
    follows: str
    """The paper and code it follows."""
    impl: str
    """Its class as ``Class`` in ``fedfair.strategies.valuing``."""
    needs_validation: Callable[[Any], bool] = _never
    """Given the MechanismConfig: whether the server needs a held-out validation set."""


VALUATIONS: tuple[ValuationInfo, ...] = (
    ValuationInfo("cosine", "cosine", "Xu et al., NeurIPS 2021: ψ_i = cos(u_i, u_N)", "Cosine"),
    ValuationInfo("loo_cosine", "LOO cosine", "leave-one-out: ψ_i = cos(u_i, u_N − a_i u_i)", "LeaveOneOutCosine"),
    ValuationInfo("classwise", "class-wise", "ShapFed (Tastan et al., IJCAI 2024; tnurbek/shapfed): per-class "
                  "cosine over the output layer's rows", "Classwise"),
    ValuationInfo("loo_classwise", "LOO class-wise", "ShapFed's class-wise cosine against the others' aggregate "
                  "(leave-one-out, as loo_cosine)", "LeaveOneOutClasswise"),
    ValuationInfo("fedce", "FedCE", "FedCE (Jiang et al., CVPR 2023; NVFlare app_opt/pt/fedce.py)", "FedCE",
                  _fedce_data_space),
    ValuationInfo("val_gradient", "val. gradient", "cos(u_i, −∇L_val(w)), the server's validation descent",
                  "ValidationGradient", _always),
    ValuationInfo("gtg_shapley", "GTG-Shapley", "GTG-Shapley (Liu et al., ACM TIST 2022; liuzelei13/GTG-Shapley)",
                  "GTGShapley", _always),
)
"""Every valuation, cosine (the paper's) first."""

BY_NAME: dict[str, ValuationInfo] = {v.name: v for v in VALUATIONS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
DEFAULT = "cosine"
"""The MechanismConfig default: the paper's valuation (configs say when they choose another)."""


def info(name: str) -> ValuationInfo:
    """The registry entry of ``name``; a KeyError names the registered valuations."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown valuation {name!r}; registered: {', '.join(NAMES)}") from None


def needs_validation(mechanism: Any) -> bool:
    """Whether ``mechanism.valuation`` (with its settings) needs the server's validation set."""
    return info(mechanism.valuation).needs_validation(mechanism)


def label(name: str) -> str:
    return BY_NAME[name].label if name in BY_NAME else name
