"""The [mechanism] section: the reward method, CGSV's settings, the valuation and its tables.

Per-valuation settings are tables of their own ([mechanism.fedce], [mechanism.gtg]), and so are
per-method settings ([mechanism.standalone], [mechanism.qffl], [mechanism.cffl], [mechanism.eci]:
declared next to the strategies, in the torch-free ``fedfair.strategies.settings``); what each
method and valuation is lives in the registries ``fedfair.methods`` and ``fedfair.valuations``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import valuations
from ..methods import NAMES as METHOD_NAMES
from ..methods import needs_validation, valued
from ..strategies.settings import CFFLSettings, ECISettings, QFFLSettings, StandaloneSettings
from .checks import _check, _check_choices

Normalize = Literal["rescale", "clip", "none"]
"""How an upload becomes u_i; the same choices as ``fedfair.mechanism.valuation.Normalize`` (the
mechanism imports no config, so tests/test_choices.py checks the two agree)."""
MaskScope = Literal["layer", "global"]
"""Top-k scope of rewards; the same choices as ``fedfair.mechanism.masks.SCOPES`` (checked likewise)."""


@dataclass
class FedCESettings:
    """``[mechanism.fedce]``: FedCE's valuation (Jiang et al., CVPR 2023; NVFlare's FedCEModelAggregator)."""

    mode: Literal["plus", "times", "gradient"] = "plus"
    """How the gradient-space score (novelty: 1 - running mean of cos(u_i, the others' consensus)) is
    combined with the data-space score (validation accuracy of the aggregate minus that of the
    aggregate without agent i, on the server's validation set): plus or times (FedCE's modes, each
    score normalised first), or gradient (the gradient-space score alone; no validation set)."""
    epsilon: float = 1e-6
    """FedCE's floor: scores are clipped below at this before normalising."""

    def __post_init__(self) -> None:
        _check_choices(self, "mechanism.fedce")
        _check(self.epsilon > 0 and math.isfinite(self.epsilon), "mechanism.fedce.epsilon", self.epsilon,
               "must be a finite number > 0")


@dataclass
class GTGSettings:
    """``[mechanism.gtg]``: GTG-Shapley's sampling (Liu et al., ACM TIST 2022; defaults as its SV_algs/GTG.py)."""

    eps: float = 0.001
    """Within-round truncation: once a permutation's prefix is this close to U(all), later agents add 0."""
    round_threshold: float = 0.01
    """Between-round truncation: a round that moves the validation utility by at most this is worth 0 to all."""
    min_permutations: int = 30
    """Permutations sampled before the convergence test is applied."""
    last_k: int = 10
    """The convergence test compares the last this many running means."""
    tolerance: float = 0.05
    """Converged when their largest mean relative deviation from the newest is at most this."""
    max_evals: int = 64
    """Budget: coalitions evaluated on the validation set per round, at most (0 = no cap; N <= 6 has
    at most 64 coalitions, so the cap only binds above that)."""

    def __post_init__(self) -> None:
        for key in ("eps", "round_threshold", "tolerance"):
            v = getattr(self, key)
            _check(v >= 0 and math.isfinite(v), f"mechanism.gtg.{key}", v, "must be a finite number >= 0")
        _check(self.min_permutations >= 1, "mechanism.gtg.min_permutations", self.min_permutations, "must be >= 1")
        _check(self.last_k >= 1, "mechanism.gtg.last_k", self.last_k, "must be >= 1")
        _check(self.max_evals == 0 or self.max_evals >= 2, "mechanism.gtg.max_evals", self.max_evals,
               "must be 0 (no cap) or >= 2 (U of nobody and of everyone)")


@dataclass
class MechanismConfig:
    method: str = "cgsv"
    """Reward method: a name in the registry ``fedfair.methods`` (cgsv, the paper's, or a baseline)."""
    alpha: float = 0.95
    """Moving-average weight of the old importance coefficients, in [0, 1)."""
    beta: float = 1.0
    """Altruism degree beta >= 1; inf = no sparsification (every agent gets the full aggregate)."""
    grad_norm: float = 0.5
    """Gamma: every upload is rescaled to this L2 norm before aggregation (see normalize)."""
    normalize: Normalize = "rescale"
    """How an upload becomes u_i: rescale (the paper: u_i = Gamma dw_i / (|dw_i| + eps)), clip
    (u_i = dw_i min(1, Gamma / |dw_i|): magnitude kept up to Gamma) or none (raw dw_i)."""
    eps: float = 1e-7
    """The epsilon of the rescale normaliser (reference code 1e-7; 0 = exact rescaling)."""
    grad_norm_decay: float = 1.0
    """Server step schedule Gamma_t = Gamma * grad_norm_decay^(t-1) (1 = constant Gamma, the paper)."""
    mask_scope: MaskScope = "layer"
    """Top-k scope of rewards: layer (reference code, per parameter tensor) or global (paper eq. 5)."""
    r_min: float = 1e-3
    """Lower clamp of the importance coefficients before renormalising (reference code)."""
    valuation: str = valuations.DEFAULT
    """How psi_i is computed each round (cgsv, dw, eu): cosine (the paper), loo_cosine, classwise,
    loo_classwise, fedce, val_gradient or gtg_shapley; ``fedfair/valuations.py`` says what each is and which
    need the server's validation set (data.val_size). The other methods ignore it, as they ignore beta (summary.json's
    valuation is then null), so one config, e.g. configs/default.toml, serves a comparison of methods."""
    norm_bound: Literal["off", "schedule"] = "off"
    """Per-round upload norm bound B_t: off, or schedule (the median upload norm of the first round, when every
    agent starts from the same model, times lr_t / lr_1: an honest step shrinks with the learning rate). With
    schedule, clip and none cap every upload at B_t (scaling an upload up buys nothing), and under every
    normalize rule an upload longer than outlier_factor * B_t is out of bounds: no weight, psi = -1."""
    outlier_factor: float = 100.0
    """With norm_bound = schedule: uploads longer than this multiple of B_t are out of bounds (0 = never)."""
    audit: Literal["none", "shapley"] = "none"
    """A live audit of the rewards: shapley logs, every audit_every rounds, each agent's exact Shapley value
    of the round's validation accuracy over coalitions of that round's uploads (GTG-Shapley above 12 agents)
    in agents.csv's audit column, and summary.json's audit_tau = Kendall tau of final r (CGSV's r
    beside a method that does not value uploads) against the cumulative audit value. Needs the
    server's validation set (data.val_size); not counted in mechanism_s."""
    audit_every: int = 10
    """The audit runs in rounds audit_every, 2 audit_every, ... (not tied to the last round, so a run extended
    by a resume audits the same rounds as one run straight through)."""
    fedce: FedCESettings = field(default_factory=FedCESettings)
    """FedCE's settings (mechanism.valuation = fedce)."""
    gtg: GTGSettings = field(default_factory=GTGSettings)
    """GTG-Shapley's settings (mechanism.valuation = gtg_shapley, and the audit above 12 agents)."""
    standalone: StandaloneSettings = field(default_factory=StandaloneSettings)
    """Standalone's step (mechanism.method = standalone; part of every run's reference key)."""
    qffl: QFFLSettings = field(default_factory=QFFLSettings)
    """q-FFL's q (mechanism.method = qffl)."""
    cffl: CFFLSettings = field(default_factory=CFFLSettings)
    """CFFL's reputation threshold and sharpening (mechanism.method = cffl)."""
    eci: ECISettings = field(default_factory=ECISettings)
    """ECI's permutation samples (mechanism.method = eci)."""

    def __post_init__(self) -> None:
        _check_choices(self, "mechanism")
        _check(self.method in METHOD_NAMES, "mechanism.method", self.method, f"one of {', '.join(METHOD_NAMES)}")
        _check(0.0 <= self.alpha < 1.0, "mechanism.alpha", self.alpha, "must be in [0, 1)")
        _check(self.beta >= 1.0, "mechanism.beta", self.beta, "must be >= 1 (inf = no sparsification)")
        _check(self.grad_norm > 0 and math.isfinite(self.grad_norm), "mechanism.grad_norm", self.grad_norm,
               "must be a finite number > 0")
        _check(self.eps >= 0 and math.isfinite(self.eps), "mechanism.eps", self.eps, "must be a finite number >= 0")
        _check(0 < self.grad_norm_decay <= 1, "mechanism.grad_norm_decay", self.grad_norm_decay, "must be in (0, 1]")
        _check(0.0 <= self.r_min < 1.0, "mechanism.r_min", self.r_min, "must be in [0, 1)")
        _check(self.valuation in valuations.NAMES, "mechanism.valuation", self.valuation,
               f"one of {', '.join(valuations.NAMES)}")
        _check(self.outlier_factor >= 0 and math.isfinite(self.outlier_factor), "mechanism.outlier_factor",
               self.outlier_factor, "must be a finite number >= 0 (0 = never out of bounds)")
        _check(self.audit_every >= 1, "mechanism.audit_every", self.audit_every, "must be >= 1")

    def settings_of(self, method: str) -> Any:
        """The settings table of ``method`` (the [mechanism.<method>] table), None for a method without one."""
        table = getattr(self, method, None)
        return table if dataclasses.is_dataclass(table) else None

    def needs_validation(self) -> bool:
        """Whether the server needs its held-out validation set: for the method, the valuation or the audit."""
        return (needs_validation(self.method) or (valued(self.method) and valuations.needs_validation(self))
                or self.audit != "none")
