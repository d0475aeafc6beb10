"""Standalone: every agent trains alone for T rounds with the same local work; nothing is sent.

The fairness reference ρ compares every method's final accuracies with these (see
``fedfair.experiments.reference``: a Standalone run in the same output folder with the same
``reference_key``).

Choices (``mechanism.standalone.step``, :class:`~fedfair.strategies.settings.StandaloneSettings`):

- ``gamma`` (default): after its local work the agent applies its own normalised update,
  w_i ← w_before + Γ·Δw_i / (‖Δw_i‖₂ + ε) (a zero update stays zero): the step the
  mechanism would take if the agent were alone, under the same ``mechanism.normalize``,
  ``eps`` and Γ schedule as the communicating methods (``normalize = "none"`` is plain SGD). This is
  what matches the paper's Standalone rows (baselines.md).
- ``sgd``: plain local SGD, the agent keeps its locally trained model (w_before + Δw_i).

It does not communicate (``communicates = False`` in ``fedfair.methods``): the server receives no
upload and sends no reward, so bytes_up and bytes_down are 0 and mechanism_s is 0; only the
per-round metrics travel (bytes_ctrl).
Which step produced a result is recorded in config.toml (``[mechanism.standalone] step``) and
is part of the reference key that other runs match on.
"""
from __future__ import annotations

import torch

from ..mechanism import unit_scales
from .base import RoundInput, ServerStep, Strategy, normalisation
from .settings import StandaloneSettings


class Standalone(Strategy):
    name = "standalone"
    settings: StandaloneSettings

    def server_step(self, inp: RoundInput | None) -> ServerStep:
        """The empty decision: the server model stays, nobody receives anything (there are no uploads)."""
        return ServerStep(server_delta=None, rewards=[None] * self.ctx.agents)

    def local_apply(self, w_before: torch.Tensor, delta: torch.Tensor, round: int) -> torch.Tensor:
        if self.settings.step == "sgd":
            return w_before + delta
        scale = unit_scales(delta.reshape(1, -1), **normalisation(self.mechanism, round))[0].to(delta.dtype)
        return w_before + scale * delta
