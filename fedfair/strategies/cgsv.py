"""CGSV: the paper's mechanism (Xu et al., NeurIPS 2021, Algorithm 1).

Each round: normalise uploads to norm Gamma (or clip them at Gamma, or keep them raw:
``mechanism.normalize``; Gamma may follow a schedule), aggregate with the importance coefficients of
the previous round (data-size weights in round 1), value each agent by the cosine of its
upload with the aggregate, update the moving-average importance r, and send agent i the
top q_i share of the aggregate, q_i = tanh(beta r_i) / max_j tanh(beta r_j).

With absent agents (run.participation < 1; docs/participation.md): the aggregate is a convex
combination of the present uploads (r renormalised over the present), only the present move
their r (absent r carried), and q is computed over the present (max over present j).

ψ is the paper's cosine unless ``mechanism.valuation`` picks another measure
(:mod:`fedfair.strategies.valuing`). With ``mechanism.norm_bound = "schedule"`` the round's bound
B_t (the first round's median upload norm, shrunk with the learning rate) caps the
magnitude-keeping rules, and an upload above outlier_factor · B_t gets no weight and ψ = −1
(the worst value) under every rule.
"""
from __future__ import annotations

import math
import time

import torch

from ..config import MechanismConfig
from ..mechanism import (
    aggregate_uploads,
    median_norm,
    out_of_bounds,
    reward_fractions,
    reward_masks,
    scheduled_bound,
    update_importance,
    upload_norms,
    upload_scales,
)
from ..mechanism.valuations import cosine_values
from .base import Reward, RoundInput, ServerContext, ServerStep, Strategy, normalisation
from .valuing import RoundValues, Valuation, build_valuation


class CGSV(Strategy):
    name = "cgsv"
    values_by_cgsv = True

    def __init__(self, mechanism: MechanismConfig, ctx: ServerContext, seed: int = 0) -> None:
        super().__init__(mechanism, ctx, seed)
        self.r = torch.zeros(ctx.agents, dtype=torch.float64)
        sizes = torch.tensor(ctx.shard_sizes, dtype=torch.float64)
        self.size_weights = sizes / sizes.sum()
        self.valuation: Valuation = build_valuation(mechanism, ctx, seed)
        self.last: RoundValues | None = None
        """The last round as the valuation saw it (the live audit reads its scales and counted uploads)."""
        self.timing = (math.nan, math.nan)
        """The last round's (valuation_s, cosine_s)."""
        self.reference: tuple[float, float] | None = None
        """(median upload norm, learning rate) of the first round with a non-zero upload: the norm bound's base."""

    def aggregation_weights(self, inp: RoundInput) -> torch.Tensor:
        """Round 1: a_i = |D_i| / sum |D|; later a_i = r_i. Rejected uploads weigh 0. With absent
        agents: a_i = r_i / sum over present j of r_j (sizes likewise) for the present, 0 for the
        absent: a convex combination of the present uploads."""
        a = self.size_weights if inp.round == 1 else self.r
        if inp.partial:
            a = torch.where(inp.present, a, torch.zeros_like(a))
            a = a / a.sum() if bool(a.sum() > 0) else inp.present.to(a.dtype) / int(inp.present.sum())
        return torch.where(inp.valid, a, torch.zeros_like(a))

    def fractions(self, psi: torch.Tensor, inp: RoundInput, aggregate: torch.Tensor) -> torch.Tensor:
        """The share q_i of the aggregate that agent i receives (DW and EU override this)."""
        return reward_fractions(self.r, self.mechanism.beta, inp.present)

    def value(self, inp: RoundInput) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 1-4 of the round: the aggregate u_N and ψ, and r moved by ψ (returns u_N, ψ)."""
        m = self.mechanism
        norms = upload_norms(inp.updates)
        bound, out = self.norm_bound(norms, inp)
        weights = self.aggregation_weights(inp)
        if bool(out.any()):
            weights = torch.where(out, torch.zeros_like(weights), weights)
        settings = normalisation(m, inp.round)
        aggregate, coefficients, norms = aggregate_uploads(inp.updates, weights.to(inp.updates.dtype), norms=norms,
                                                           cap=bound, **settings)
        started = time.perf_counter()
        cosine = cosine_values(inp.updates, norms, aggregate)
        cosine_s = time.perf_counter() - started
        scales = upload_scales(norms, cap=bound, **settings)
        counted = inp.contributing() & ~out
        self.last = RoundValues(inp, norms, scales, coefficients, aggregate, cosine, counted)
        started = time.perf_counter()
        psi = self.valuation.values(self.last)
        self.timing = (time.perf_counter() - started + (cosine_s if self.valuation.name == "cosine" else 0.0),
                       cosine_s)
        psi = torch.where(inp.valid, psi.to(torch.float64), torch.zeros((), dtype=torch.float64))
        psi = torch.where(out, torch.full_like(psi, -1.0), psi)
        self.r = update_importance(self.r, psi, m.alpha, m.r_min, inp.present)
        return aggregate, psi

    def server_step(self, inp: RoundInput) -> ServerStep:
        m = self.mechanism
        aggregate, psi = self.value(inp)
        q = self.fractions(psi, inp, aggregate)
        here = range(self.ctx.agents) if not inp.partial else inp.present.nonzero().flatten().tolist()
        if math.isinf(m.beta):  # no sparsification: everyone (present) gets the full aggregate
            sent = [Reward(None, aggregate) for _ in here]
        else:
            sent = reward_masks(aggregate, q[list(here)] if inp.partial else q, m.mask_scope, self.ctx.layer_sizes)
        rewards: list[Reward | None] = [None] * self.ctx.agents
        for i, rw in zip(here, sent):
            rewards[i] = rw
        return ServerStep(server_delta=aggregate, rewards=rewards, psi=psi, r=self.r.clone(), q=q,
                          valuation_s=self.timing[0], cosine_s=self.timing[1])

    def norm_bound(self, norms: torch.Tensor, inp: RoundInput) -> tuple[float | None, torch.Tensor]:
        """This round's bound B_t (None when mechanism.norm_bound is off) and the uploads out of it."""
        if self.mechanism.norm_bound == "off":
            return None, torch.zeros(norms.shape, dtype=torch.bool)
        if self.reference is None:
            counted = torch.where(inp.contributing(), norms, torch.zeros_like(norms))
            if bool((counted > 0).any()):
                self.reference = (median_norm(counted), inp.lr)
        if self.reference is None:
            return None, torch.zeros(norms.shape, dtype=torch.bool)
        bound = scheduled_bound(*self.reference, inp.lr)
        return bound, out_of_bounds(norms, bound, self.mechanism.outlier_factor)

    def audit_inputs(self, inp: RoundInput) -> tuple[torch.Tensor, torch.Tensor]:
        """The round's own normalisation (with its norm bound) and counted uploads, as valued."""
        assert self.last is not None and self.last.inp is inp, "audit_inputs follows server_step of the same round"
        return self.last.scales, self.last.counted

    def state_dict(self) -> dict:
        return {"r": self.r.clone(), "valuation": self.valuation.state_dict(), "reference": self.reference}

    def load_state_dict(self, state: dict) -> None:
        self.r = state["r"].clone()
        self.valuation.load_state_dict(state.get("valuation", {}))
        self.reference = state.get("reference")
