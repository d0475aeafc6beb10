"""The one interface every reward method implements.

The round loop is written once (``fedfair.runtime.server`` and ``fedfair.runtime.agent``); a
strategy only decides, from the round's uploads, how the server model moves and what each agent
receives. It sees the mechanism's settings (``MechanismConfig``; its own table of them as
``Strategy.settings``), the static facts of the job
(``ServerContext``) and a seed, nothing of the run, the data or the network.
A reward is always a *delta* added to the agent's own model, so sparse rewards (cgsv, dw, eu,
cffl, eci) and model replacement (fedavg, rr, qffl: delta = new model - the agent's model) go
through the same wire format and the same byte ledger.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from ..config import MechanismConfig
from ..mechanism import Reward, grad_norm_at, unit_scales
from ..methods import MethodInfo, info


@dataclass
class RoundInput:
    """Everything the server knows at the end of round t's upload phase."""
    round: int
    updates: torch.Tensor          # N x D raw uploads (rows of rejected uploads are zero)
    extras: torch.Tensor           # N x E extra scalars per upload (Strategy.extras)
    valid: torch.Tensor            # N bool: False for uploads rejected as non-finite
    server_model: torch.Tensor     # D, the server's w before this round
    agent_models: torch.Tensor     # N x D, the server's exact copy of each agent's model
    lr: float                      # this round's learning rate
    present: torch.Tensor | None = None
    """N bool: the agents sampled this round (run.participation); None = everyone. Rows of absent
    agents in ``updates`` are zero; a strategy that supports partial participation gives them no
    weight and no reward (``None`` in ``ServerStep.rewards``)."""

    @property
    def partial(self) -> bool:
        """True when some agent is absent this round."""
        return self.present is not None and not bool(self.present.all())

    def contributing(self) -> torch.Tensor:
        """N bool: uploads that count this round (valid, and present)."""
        return self.valid if not self.partial else self.valid & self.present


@dataclass
class ServerStep:
    """A strategy's decision for one round."""
    server_delta: torch.Tensor | None   # w <- w + server_delta (None: w unchanged)
    rewards: list[Reward | None]        # None: nothing for that agent (absent this round)
    psi: torch.Tensor | None = None     # per-agent round value (method-specific), logged
    r: torch.Tensor | None = None       # per-agent importance / reputation, logged
    q: torch.Tensor | None = None       # per-agent reward fraction, logged
    valuation_s: float = math.nan       # seconds the valuation's ψ took (methods that value by one)
    cosine_s: float = math.nan          # seconds the paper's cosine ψ took on the same uploads


@dataclass(frozen=True)
class ServerContext:
    """Static facts a strategy may use, all known before it is built (frozen: none changes later)."""
    agents: int
    dim: int
    layer_sizes: list[int]
    shard_sizes: list[int]
    validation_accuracy: Callable[[torch.Tensor], float] | None = None
    """Flat model -> accuracy on the server's held-out validation set (None without one)."""
    validation_gradient: Callable[[torch.Tensor], torch.Tensor] | None = None
    """Flat model -> ∇ of the mean validation loss at it, flat (None without a validation set)."""
    num_classes: int = 0
    """C, the number of classes (the output layer's rows, for the class-wise valuation)."""


class Strategy(ABC):
    """A reward method. Built on every rank; server_step runs on the server only."""

    name: ClassVar[str]
    info: ClassVar[MethodInfo]
    """The method's entry in ``fedfair.methods``, where what a method is (label, table order, β) lives."""
    communicates: ClassVar[bool] = True
    """False: no uploads, no rewards (copied from ``info`` for the round loop)."""
    needs_validation: ClassVar[bool] = False
    """True when the server needs a held-out validation set (copied from ``info``)."""
    extras: ClassVar[int] = 0
    """Extra float scalars each agent appends to its upload (e.g. q-FFL's loss F_k)."""
    values_by_cgsv: ClassVar[bool] = False
    """True when the logged r IS CGSV's moving-average importance (cgsv, dw, eu); for the other
    communicating methods the server computes that r alongside, from the same uploads, for ρ_r."""

    def __init__(self, mechanism: MechanismConfig, ctx: ServerContext, seed: int = 0) -> None:
        self.mechanism = mechanism
        self.settings: Any = mechanism.settings_of(self.name)
        """The method's own settings table ([mechanism.<name>], ``fedfair.strategies.settings``;
        None for a method without one): a strategy reads its own settings here, no other method's."""
        self.ctx = ctx
        self.seed = seed  # run.seed, for methods that sample (eci)

    @abstractmethod
    def server_step(self, inp: RoundInput) -> ServerStep:
        """Value the uploads, move the server model, decide each agent's reward."""

    # --- agent-side hooks (defaults: an honest agent of a communicating method) ---
    def agent_extras(self, shard_loss: Callable[[], float]) -> list[float]:
        """Extra scalars to append to this agent's upload."""
        return []

    def local_apply(self, w_before: torch.Tensor, delta: torch.Tensor, round: int) -> torch.Tensor:
        """Non-communicating methods: the agent's new model from its own update in round ``round``."""
        raise NotImplementedError(f"{self.name} communicates; local_apply is for standalone methods")

    def audit_inputs(self, inp: RoundInput) -> tuple[torch.Tensor, torch.Tensor]:
        """For the live audit: (s_i with u_i = s_i Δw_i, N bool of the uploads that count) this round."""
        return unit_scales(inp.updates, **normalisation(self.mechanism, inp.round)), inp.contributing()

    # --- checkpointing ---
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: B027 (a stateless strategy has nothing to load)
        pass

    # --- the registry ---
    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A class that names a method takes its facts from the registry, so they are written once."""
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            cls.info = info(cls.name)
            cls.communicates, cls.needs_validation = cls.info.communicates, cls.info.needs_validation
            cls.values_by_cgsv = cls.info.valued


# ---------------------------------------------------------------- helpers shared by the baselines

def normalisation(m: MechanismConfig, round: int) -> dict[str, Any]:
    """The normaliser's settings in round t, as keywords of ``cgsv_approx`` / ``unit_scales``:
    the step Γ_t = Γ·decay^(t−1), the ε and the mode (rescale, clip, none)."""
    return {"grad_norm": grad_norm_at(m.grad_norm, m.grad_norm_decay, round), "eps": m.eps,
            "normalize": m.normalize}


def normalised_rows(inp: RoundInput, m: MechanismConfig) -> torch.Tensor:
    """u_i = s_i·Δw_i for every upload (rescaled, clipped or raw; zero and rejected rows stay zero), N x D."""
    scales = unit_scales(inp.updates, **normalisation(m, inp.round)).to(inp.updates.dtype)
    return inp.updates * scales[:, None]


def size_weights(ctx: ServerContext, valid: torch.Tensor) -> torch.Tensor:
    """|D_i| / sum over valid agents of |D_j| (float64); rejected uploads weigh 0."""
    sizes = torch.tensor(ctx.shard_sizes, dtype=torch.float64) * valid.to(torch.float64)
    total = sizes.sum()
    return sizes / total if total > 0 else sizes


def model_rewards(inp: RoundInput, steps: torch.Tensor | list[torch.Tensor]) -> list[Reward | None]:
    """Dense rewards that move agent i to w + steps[i] (w = the server model before the round).

    The reward is "the new model minus yours", written as steps[i] + (w - w_i): when agent i
    already holds w (FedAvg, q-FFL: always, with everyone present), the second term is exactly zero
    and the agent ends bit-for-bit on the server's new model w + step, as the server does. Agents
    that hold w and are given the same step object share one Reward object, so the reward is built
    once (and the server encodes it once) per distinct model version, not once per agent.
    """
    rewards: list[Reward | None] = []
    shared: dict[int, Reward] = {}  # id(step) -> the reward of the agents that already hold w
    for i in range(inp.agent_models.shape[0]):
        if inp.partial and not bool(inp.present[i]):
            rewards.append(None)  # absent: receives nothing; its gap is closed when it is next present
            continue
        gap = inp.server_model - inp.agent_models[i]
        step = steps[i]
        if bool(gap.any()):
            rewards.append(Reward(None, step + gap))
            continue
        if id(step) not in shared:
            shared[id(step)] = Reward(None, step.clone())
        rewards.append(shared[id(step)])
    return rewards
