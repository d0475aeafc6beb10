"""The valuation seam: how CGSV's round value ψ_i is computed (``mechanism.valuation``).

Each class wraps one pure function of :mod:`fedfair.mechanism.valuations` with what it needs
across rounds (FedCE's running mean, GTG's sampler); everything after ψ is CGSV's and lives in
:mod:`fedfair.strategies.cgsv`. What a valuation is (its name, the work it follows, whether it
needs the server's validation set) is the registry ``fedfair/valuations.py``; a valuation that
needs the model's utility takes it from the ``ServerContext`` callables the runtime supplies.

The same coalition game also serves the live audit (:class:`ShapleyAudit`): the value of a
coalition S of the round's uploads is the validation accuracy of w + the FedAvg of S's
normalised uploads (GTG-Shapley's coalition model, weighted by shard sizes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..config import MechanismConfig
from ..mechanism import MAX_EXACT_AGENTS
from ..mechanism.valuations import (
    Utility,
    classwise_cosines,
    coalition_step,
    descent_cosines,
    exact_utility_shapley,
    fedce_combine,
    fedce_gradient_scores,
    gtg_shapley,
    loo_classwise_cosines,
    loo_cosines,
    output_layer,
    shares,
)
from ..methods import valued
from ..valuations import info
from .base import RoundInput, ServerContext, Strategy

AUDIT_EXACT_AGENTS = 12
"""Up to this many contributing uploads the audit is exact (2^12 validation passes); GTG-Shapley above."""


@dataclass
class RoundValues:
    """One round as a valuation sees it, after CGSV's normalisation and aggregation."""
    inp: RoundInput
    norms: torch.Tensor          # ‖Δw_i‖ (float64, N)
    scales: torch.Tensor         # s_i with u_i = s_i Δw_i (float64, N)
    coefficients: torch.Tensor   # c_i = a_i s_i, so u_N = Σ c_i Δw_i (float64, N)
    aggregate: torch.Tensor      # u_N (D)
    cosine: torch.Tensor         # the paper's ψ_i = cos(u_i, u_N) (float64, N)
    counted: torch.Tensor        # N bool: valid, present and in bounds: the uploads that count


class Valuation:
    """ψ for one round; stateless unless a subclass keeps something across rounds (checkpointed)."""

    name: ClassVar[str]
    needs_validation: bool = False

    def __init__(self, mechanism: MechanismConfig, ctx: ServerContext, seed: int = 0) -> None:
        self.mechanism = mechanism
        self.ctx = ctx
        self.seed = seed

    def values(self, rv: RoundValues) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Cosine(Valuation):
    """The paper's ψ_i = cos(u_i, u_N), already computed by the aggregation step."""
    name = "cosine"

    def values(self, rv: RoundValues) -> torch.Tensor:
        return rv.cosine


class LeaveOneOutCosine(Valuation):
    """ψ_i = cos(u_i, u_N − a_i u_i): agreement with the others, not with an aggregate i is part of."""
    name = "loo_cosine"

    def values(self, rv: RoundValues) -> torch.Tensor:
        return loo_cosines(rv.inp.updates, rv.norms, rv.coefficients, rv.aggregate)


class Classwise(Valuation):
    """ShapFed's class-wise cosine over the output layer's rows (weights with their bias)."""
    name = "classwise"

    def __init__(self, mechanism: MechanismConfig, ctx: ServerContext, seed: int = 0) -> None:
        super().__init__(mechanism, ctx, seed)
        self.layer = output_layer(ctx.layer_sizes, ctx.num_classes)

    def values(self, rv: RoundValues) -> torch.Tensor:
        return classwise_cosines(rv.inp.updates, rv.aggregate, self.layer)


class LeaveOneOutClasswise(Classwise):
    """The class-wise cosine against the others' aggregate: a free-rider's noise no longer agrees
    with the part of the aggregate that is its own."""
    name = "loo_classwise"

    def values(self, rv: RoundValues) -> torch.Tensor:
        return loo_classwise_cosines(rv.inp.updates, rv.coefficients, rv.aggregate, self.layer)


class FedCE(Valuation):
    """FedCE: novelty against the others' consensus (running mean over the rounds an agent took
    part in), combined with a data-space score; ψ is FedCE's normalised contribution weight.

    FedCE's data-space score is computed by each client on its own validation data; here the
    server scores agent i by how much the aggregate loses on the server's validation set
    without i: U(w + u_N) − U(w + (u_N − a_i u_i)/(1 − a_i)) (FedCE's minus model, in update space).
    """
    name = "fedce"

    def __init__(self, mechanism: MechanismConfig, ctx: ServerContext, seed: int = 0) -> None:
        super().__init__(mechanism, ctx, seed)
        self.mean_cos = torch.zeros(ctx.agents, dtype=torch.float64)
        self.counts = torch.zeros(ctx.agents, dtype=torch.float64)

    def values(self, rv: RoundValues) -> torch.Tensor:
        settings = self.mechanism.fedce
        sim = loo_cosines(rv.inp.updates, rv.norms, rv.coefficients, rv.aggregate)
        took_part = rv.counted
        self.counts = self.counts + took_part.to(torch.float64)
        step = torch.where(took_part, (sim - self.mean_cos) / self.counts.clamp_min(1.0), torch.zeros_like(sim))
        self.mean_cos = self.mean_cos + step
        gradient = fedce_gradient_scores(self.mean_cos)
        data = None if settings.mode == "gradient" else self.data_scores(rv)
        weights = torch.zeros(self.ctx.agents, dtype=torch.float64)
        idx = took_part.nonzero().flatten()
        if idx.numel():
            weights[idx] = fedce_combine(gradient[idx], None if data is None else data[idx], settings.mode,
                                         settings.epsilon)
        return weights

    def data_scores(self, rv: RoundValues) -> torch.Tensor:
        accuracy = _validation(self.ctx, "fedce").validation_accuracy
        w, updates = rv.inp.server_model, rv.inp.updates
        full = accuracy(w + rv.aggregate)
        a = rv.coefficients / torch.where(rv.scales > 0, rv.scales, torch.ones_like(rv.scales))  # a_i
        out = torch.zeros(self.ctx.agents, dtype=torch.float64)
        for i in rv.counted.nonzero().flatten().tolist():
            rest = 1.0 - float(a[i])
            minus = (rv.aggregate - float(rv.coefficients[i]) * updates[i]) / rest if rest > 0 else None
            out[i] = full - (accuracy(w + minus) if minus is not None else accuracy(w))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"mean_cos": self.mean_cos.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean_cos, self.counts = state["mean_cos"].clone(), state["counts"].clone()


class ValidationGradient(Valuation):
    """ψ_i = cos(Δw_i, −∇L_val(w)): one backward pass over the server's validation set a round."""
    name = "val_gradient"

    def values(self, rv: RoundValues) -> torch.Tensor:
        gradient = _validation(self.ctx, "val_gradient").validation_gradient(rv.inp.server_model)
        return descent_cosines(rv.inp.updates, rv.norms, gradient)


class GTGShapley(Valuation):
    """GTG-Shapley of the round's validation accuracy; ψ = the round's Shapley values as shares."""
    name = "gtg_shapley"

    def __init__(self, mechanism: MechanismConfig, ctx: ServerContext, seed: int = 0) -> None:
        super().__init__(mechanism, ctx, seed)
        self.generator = torch.Generator().manual_seed(seed * 1_000_003 + 7)

    def values(self, rv: RoundValues) -> torch.Tensor:
        players = rv.counted.nonzero().flatten().tolist()
        phi = torch.zeros(self.ctx.agents, dtype=torch.float64)
        if players:
            utility = round_utility(self.ctx, rv.inp, rv.scales, players)
            g = self.mechanism.gtg
            values, _ = gtg_shapley(utility, len(players), self.generator, eps=g.eps,
                                    round_threshold=g.round_threshold, min_permutations=g.min_permutations,
                                    last_k=g.last_k, tolerance=g.tolerance, max_evals=g.max_evals)
            phi[players] = values
        return shares(phi)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


CLASSES: dict[str, type[Valuation]] = {cls.name: cls for cls in (Cosine, LeaveOneOutCosine, Classwise,
                                                                   LeaveOneOutClasswise, FedCE, ValidationGradient,
                                                                   GTGShapley)}


def build_valuation(mechanism: MechanismConfig, ctx: ServerContext, seed: int = 0) -> Valuation:
    """The valuation of ``mechanism.valuation`` (its class is the registry's ``impl``)."""
    cls = CLASSES[mechanism.valuation]
    if cls.__name__ != info(mechanism.valuation).impl:
        raise TypeError(f"{cls.__name__} is not the registry's {info(mechanism.valuation).impl}")
    return cls(mechanism, ctx, seed)


def check_valuation(mechanism: MechanismConfig, layer_sizes: list[int], num_classes: int) -> None:
    """What the config alone cannot know: the model a valuation reads (one line, before any rank starts).
    A method that does not value uploads ignores the valuation, and so does this check."""
    if mechanism.valuation in ("classwise", "loo_classwise") and valued(mechanism.method):
        try:
            output_layer(layer_sizes, num_classes)
        except ValueError as e:
            raise ValueError(f"mechanism.valuation = {mechanism.valuation!r} {e}") from None


def _validation(ctx: ServerContext, who: str) -> ServerContext:
    if ctx.validation_accuracy is None or ctx.validation_gradient is None:
        raise RuntimeError(f"{who} needs the server's validation set, and the runtime supplied none")
    return ctx


def round_utility(ctx: ServerContext, inp: RoundInput, scales: torch.Tensor, players: list[int]) -> Utility:
    """The coalition game of one round: U(S) = validation accuracy of w + coalition_step(S),
    with S's uploads weighted by shard sizes (GTG-Shapley's FedAvg of a coalition's models)."""
    accuracy = _validation(ctx, "the coalition game").validation_accuracy
    sizes = torch.tensor(ctx.shard_sizes, dtype=torch.float64)
    w = inp.server_model

    def utility(coalition: tuple[int, ...]) -> float:
        members = [players[k] for k in coalition]
        return accuracy(w + coalition_step(inp.updates, scales, sizes, members))

    return utility


class ShapleyAudit:
    """``mechanism.audit = "shapley"``: in every ``audit_every``-th round, each agent's
    Shapley value of the round's coalition game (:func:`round_utility`), exact up to
    AUDIT_EXACT_AGENTS counted uploads and GTG-Shapley above. Efficiency: the values sum to
    U(everyone) − U(w). The server logs them beside ψ and r, so a consortium can read on its own
    run whether its rewards follow contributions."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.every = strategy.mechanism.audit_every
        self.generator = torch.Generator().manual_seed(strategy.seed * 1_000_003 + 11)

    def due(self, round: int) -> bool:
        return round % self.every == 0

    def values(self, inp: RoundInput) -> torch.Tensor:
        ctx = self.strategy.ctx
        scales, counted = self.strategy.audit_inputs(inp)
        players = counted.nonzero().flatten().tolist()
        phi = torch.zeros(ctx.agents, dtype=torch.float64)
        if not players:
            return phi
        utility = round_utility(ctx, inp, scales, players)
        if len(players) <= min(AUDIT_EXACT_AGENTS, MAX_EXACT_AGENTS):
            phi[players] = exact_utility_shapley(utility, len(players))
        else:
            g = self.strategy.mechanism.gtg
            phi[players] = gtg_shapley(utility, len(players), self.generator, eps=g.eps, round_threshold=0.0,
                                       min_permutations=g.min_permutations, last_k=g.last_k,
                                       tolerance=g.tolerance, max_evals=g.max_evals)[0]
        return phi

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
