"""The CGSV fair reward mechanism (Xu et al., NeurIPS 2021) as pure tensor functions.

No process groups, no I/O: the runtime and the strategies call these.

- :mod:`.valuation` — normalise, aggregate, value (ψ = cos(u_i, u_N)), importance r,
  reward fractions q, entry counts k.
- :mod:`.masks` — each agent's sparse reward: the top-k magnitudes of the aggregate.
- :mod:`.shapley` — exact and sampled Shapley values of the CGSV game (to audit ψ) and of
  generic games (for other methods).
- :mod:`.valuations` — the field's other measures of ψ (leave-one-out and class-wise cosines,
  FedCE, validation-descent cosine, GTG-Shapley), selected by ``mechanism.valuation``.
"""

from .masks import (
    SCOPES,
    Reward,
    layer_top_k_rewards,
    magnitude_order,
    reward_masks,
    top_k_rewards,
)
from .shapley import (
    MAX_EXACT_AGENTS,
    exact_cgsv,
    exact_shapley,
    normalised_error,
    permutations_for,
    sampled_cgsv,
    sampled_shapley,
)
from .valuation import (
    Normalize,
    aggregate_uploads,
    cgsv_approx,
    cosines,
    finite_rows,
    global_k,
    grad_norm_at,
    layer_k_rows,
    median_norm,
    out_of_bounds,
    reward_fractions,
    scheduled_bound,
    unit_scales,
    update_importance,
    upload_norms,
    upload_scales,
)

__all__ = [
    # valuation
    "aggregate_uploads",
    "median_norm",
    "scheduled_bound",
    "out_of_bounds",
    "upload_norms",
    "cgsv_approx",
    "finite_rows",
    "unit_scales",
    "upload_scales",
    "grad_norm_at",
    "Normalize",
    "update_importance",
    "reward_fractions",
    "global_k",
    "layer_k_rows",
    "cosines",
    # masks
    "SCOPES",
    "Reward",
    "magnitude_order",
    "top_k_rewards",
    "layer_top_k_rewards",
    "reward_masks",
    # shapley
    "MAX_EXACT_AGENTS",
    "exact_cgsv",
    "sampled_cgsv",
    "permutations_for",
    "exact_shapley",
    "sampled_shapley",
    "normalised_error",
]
