"""Sparse rewards: each agent receives the largest-magnitude share of the aggregate u_N.

Agent i with reward fraction q_i gets v_i = mask(u_N, q_i): exactly k_i entries of u_N, those
of largest magnitude, and zeros elsewhere (the paper, eq. 5). Ties in magnitude are broken by
the lower index, so the reward is a deterministic function of (u_N, k_i).

Because all agents rank the SAME vector by the SAME key (−|u_N[j]|, j), agent i's kept set is
a prefix of one shared order. One partial sort, up to k_max = max_i k_i, therefore serves
every agent, and a more important agent's reward always contains a less important one's.

A reward is a :class:`Reward` ``(indices, values)``: int64 indices in ascending order (the order
the wire codecs and scatter-adds want) and the matching entries of u_N; the same type carries a
dense reward (``indices`` None) for the methods that send whole vectors.

The server does this work on the CPU: selection and index bookkeeping run in numpy on views
of the tensors (single-threaded, SIMD integer sorts), so the aggregate must be a CPU tensor.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Sequence, get_args

import numpy as np
import torch
from torch import Tensor

from .valuation import global_k, layer_k_rows

__all__ = [
    "Reward",
    "magnitude_order",
    "top_k_rewards",
    "layer_top_k_rewards",
    "reward_masks",
    "SCOPES",
]

MaskScope = Literal["global", "layer"]
SCOPES: tuple[str, ...] = get_args(MaskScope)



class Reward(NamedTuple):
    """What agent i downloads: ``values`` at ascending int64 ``indices``, or, with ``indices``
    None, a dense D-vector. A tuple, so ``indices, values = reward`` reads as the paper's mask."""
    indices: Tensor | None
    values: Tensor

    def density(self, dim: int) -> float:
        return 1.0 if self.indices is None else self.indices.numel() / dim


# Below k < dim / _SORT_PREFIX_BELOW, sorting an agent's k indices beats one pass over all dim
# positions (measured: sorting int64 costs several times a compare-and-compact pass per entry).
_SORT_PREFIX_BELOW = 8

_SAME_WIDTH_INT = {8: torch.int64, 4: torch.int32, 2: torch.int16}


def _magnitude_keys(magnitude: Tensor) -> np.ndarray:
    """|x| as integers with the same order: the IEEE bit pattern of a non-negative float.

    Integer keys make selection and sorting exact and fast (numpy's SIMD int sort), and work
    for float16 and bfloat16 too, which numpy cannot sort as floats.
    """
    return magnitude.contiguous().view(_SAME_WIDTH_INT[magnitude.element_size()]).numpy()


def magnitude_order(x: Tensor, k: int) -> Tensor:
    """Positions of the k largest |x| in order of the key (−|x_j|, j): a partial stable sort.

    A selection finds the k-th largest magnitude t. Everything strictly above t is in; of
    the entries equal to t, the lowest-indexed fill the remaining places (this is where a
    plain ``torch.topk`` would choose arbitrarily). The k candidates are then sorted by
    (−|x_j|, j), packed into one int64 key per entry — (complemented magnitude bits) above
    (index bits) — so that a single plain sort of distinct keys applies the tie rule.
    """
    dim = x.numel()
    if not 0 <= k <= dim:
        raise ValueError(f"k must lie in [0, {dim}], got {k}")
    if k == 0:
        return torch.empty(0, dtype=torch.int64)
    keys = _magnitude_keys(x.detach().cpu().abs())
    if k < dim:
        threshold = np.partition(keys, dim - k)[dim - k]  # the k-th largest magnitude
        above = np.flatnonzero(keys > threshold)
        tied = np.flatnonzero(keys == threshold)[: k - above.size]
        candidates = np.concatenate([above, tied])
    else:
        candidates = np.arange(dim, dtype=np.int64)
    magnitude_bits = 8 * keys.itemsize - 1  # the sign bit of |x| is always 0
    index_bits = max(1, (dim - 1).bit_length())
    descending = np.int64(np.iinfo(keys.dtype).max) - keys[candidates].astype(np.int64)
    if magnitude_bits + index_bits <= 63:
        packed = (descending << index_bits) | candidates
        packed.sort()
        order = packed & ((1 << index_bits) - 1)
    else:  # float64 magnitudes leave no room for the index: two-key stable sort instead
        order = candidates[np.lexsort((candidates, descending))]
    return torch.from_numpy(order)


def _prefix_index_sets(order: Tensor, ks: Sequence[int], dim: int) -> list[Tensor]:
    """For each k, the first k positions of ``order`` in ascending index order.

    Small prefixes are sorted directly; large ones are read off a rank vector with one
    compare-and-compact pass over the dim positions, which keeps ascending order for free.
    """
    ranked = order.numpy()
    rank: np.ndarray | None = None
    sets = []
    for k in ks:
        if k * _SORT_PREFIX_BELOW < dim:
            sets.append(torch.from_numpy(np.sort(ranked[:k])))
        else:
            if rank is None:
                rank = np.full(dim, dim, dtype=np.int32 if dim < 2**31 else np.int64)
                rank[ranked] = np.arange(ranked.size, dtype=rank.dtype)
            sets.append(torch.from_numpy(np.flatnonzero(rank < k)))
    return sets


def _check_aggregate(aggregate: Tensor) -> None:
    if aggregate.dim() != 1:
        raise ValueError(f"the aggregate must be a flat D-vector, got shape {tuple(aggregate.shape)}")
    if bool(torch.isnan(aggregate).any()):
        raise ValueError("the aggregate contains NaN; magnitudes cannot be ranked")


def top_k_rewards(aggregate: Tensor, k: Sequence[int]) -> list[Reward]:
    """Agent i's reward: the k[i] largest-magnitude entries of the aggregate (ties: lower index).

    One shared partial sort up to max(k); each agent's set is a prefix of that order.
    Returns per agent ``Reward(indices ascending int64, aggregate[indices])``.
    """
    _check_aggregate(aggregate)
    dim = aggregate.numel()
    ks = [int(ki) for ki in k]
    bad = [ki for ki in ks if not 0 <= ki <= dim]
    if bad:
        raise ValueError(f"every k must lie in [0, {dim}], got {bad}")
    order = magnitude_order(aggregate, max(ks, default=0))
    sets = _prefix_index_sets(order, ks, dim)
    return [Reward(indices, aggregate.index_select(0, indices)) for indices in sets]


def _threshold_members(keys: np.ndarray, ascending: np.ndarray, k: int, out: np.ndarray) -> None:
    """out[j] = whether entry j is among the k largest keys (ties: the lower indices), in place.

    ``ascending`` is ``keys`` sorted. The k-th largest key t = ascending[n − k] splits the
    entries into those above t (all kept), equal to t (the lowest-indexed ones fill the
    remaining places) and below. When the key just under t's place is smaller than t, every
    entry equal to t fits, and one compare pass (keys ≥ t) is the answer; only ties straddling
    the boundary need a binary search and a second pass.
    """
    n = keys.size
    if k <= 0:
        out[:] = False
        return
    if k >= n:
        out[:] = True
        return
    t = ascending[n - k]
    if ascending[n - k - 1] < t:  # no entry equal to t is left out
        np.greater_equal(keys, t, out=out)
        return
    above = n - int(ascending.searchsorted(t, side="right"))
    np.greater(keys, t, out=out)
    out[np.flatnonzero(keys == t)[: k - above]] = True


def layer_top_k_rewards(aggregate: Tensor, layer_sizes: Sequence[int], q: Tensor) -> list[Reward]:
    """The reference code's reward: each parameter tensor keeps its own top entries.

    The aggregate is the concatenation of the model's flattened parameter tensors, of sizes
    ``layer_sizes`` in order. In tensor l, agent i keeps ``layer_k_rows(layer_sizes, q)[i][l]``
    entries (ceil(n_l·q_i), capped at n_l − 1), the largest magnitudes, ties broken by the lower index.
    Indices are global (offset by the tensor's start) and ascending.

    Each tensor's magnitudes are sorted once (as integer keys, no index bookkeeping), which
    gives every agent's threshold by lookup. Agent i's membership is then one compare per
    tensor into a reused D-sized mask and a single ``flatnonzero`` over it, which yields
    global ascending indices directly.
    """
    _check_aggregate(aggregate)
    sizes = [int(n) for n in layer_sizes]
    dim = aggregate.numel()
    if any(n < 0 for n in sizes) or sum(sizes) != dim:
        raise ValueError(
            f"layer_sizes must be non-negative and sum to the aggregate's length "
            f"{dim}, got sum {sum(sizes)}"
        )
    ks_per_agent = layer_k_rows(sizes, q)
    if not ks_per_agent:
        return []
    keys = _magnitude_keys(aggregate.detach().cpu().abs())
    layers = []
    start = 0
    for n in sizes:
        layer_keys = keys[start : start + n]
        layers.append((start, start + n, layer_keys, np.sort(layer_keys)))
        start += n
    members = np.empty(dim, dtype=np.bool_)
    rewards = []
    for ks in ks_per_agent:
        for (lo, hi, layer_keys, ascending), k in zip(layers, ks):
            _threshold_members(layer_keys, ascending, k, members[lo:hi])
        indices = torch.from_numpy(np.flatnonzero(members))
        rewards.append(Reward(indices, aggregate.index_select(0, indices)))
    return rewards


def reward_masks(
    aggregate: Tensor, q: Tensor, scope: str, layer_sizes: Sequence[int] | None = None
) -> list[Reward]:
    """Every agent's sparse reward for reward fractions q, under ``scope`` "global" or "layer"."""
    if scope == "global":
        return top_k_rewards(aggregate, global_k(aggregate.numel(), q))
    if scope == "layer":
        if layer_sizes is None:
            raise ValueError('mask scope "layer" needs the layer_sizes of the flattened model')
        return layer_top_k_rewards(aggregate, layer_sizes, q)
    raise ValueError(f"unknown mask scope {scope!r}; expected one of {SCOPES}")

