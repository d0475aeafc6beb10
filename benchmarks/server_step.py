"""fedfair's full server step against a faithful re-implementation of the reference code's step.

The step (one round, after the uploads arrived): normalise every upload to norm Γ, aggregate
with the importance coefficients r, value every agent by ψ_i = cos(u_i, u_N), update r, compute
the reward fractions q, cut every agent's reward from the aggregate, and make it sendable.

- fedfair: ``fedfair.strategies.CGSV.server_step`` plus the per-agent wire encoding, exactly
  what ``fedfair.runtime.server.Server.round`` times as ``mechanism_s`` (mask_scope "layer", the
  reference code's per-parameter-tensor top-k). Input: the N×D float32 upload matrix the
  transport receives into.
- reference: the released code's server step as it is written (utils.py and the CGSV main
  loop): per agent, flatten the per-layer update, divide by its norm and unflatten a
  normalised copy; aggregate layer by layer (``add_gradient_updates``); flatten the aggregate;
  ``F.cosine_similarity`` per agent on a re-flattened copy; r and q as tensors; then per agent
  ``mask_grad_update_by_order(mode='layer')``: a deep copy of the aggregate, and per layer a
  ``torch.topk`` and a dense boolean mask that zeroes the rest. Input: each agent's update as
  the list of per-layer tensors it arrives as in that code (here: views of the same uploads).
  Each agent's dense reward is dropped right after it is made (the reference applies it to the
  agent's model and moves on), which only flatters the reference.

Both run in the same process, interleaved, on the same uploads; the minimum of the repeats is
reported for each. Before timing, both are checked to hand every agent the same reward.

The layer split is a real model's: D ≈ 1e5 is the paper's MNIST CNN (104,242 parameters in 8
tensors), D ≈ 1e6 the paper's text CNN with a 2,180-word vocabulary (1,000,754 in 9 tensors).

Hardware bound, measured in the same run: a plain copy of the N×D float32 uploads into a
preallocated buffer (``copy_``: one read and one write of every element). fedfair must at
least read every upload once, so "copies" (fedfair time / copy time) says how close to the
memory bandwidth the step runs.

Target: fedfair ≥ 10× faster than the reference step at N = 100, D = 1e6.

Usage: python benchmarks/server_step.py [--agents 5 10 20 100] [--dims 1e5 1e6]
                                        [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    ALPHA,
    BETA,
    GAMMA,
    MODELS,
    describe_split,
    footer,
    interleaved,
    machine_header,
    make_round,
    model_shapes,
)

from fedfair.config import Config, MechanismConfig  # noqa: E402
from fedfair.runtime.wire import WIRE_DTYPE, decode, encode, encode_reward  # noqa: E402
from fedfair.strategies import REGISTRY, RoundInput, ServerContext  # noqa: E402

# ---------------------------------------------------------------- fedfair


class FedfairStep:
    """fedfair's server step for cgsv: the strategy's step, then one encoded payload per agent.

    The encoding loop is the one in ``Server.encode`` (choose the smallest encoding for k,
    encode); the pair is what the runtime times as ``mechanism_s``.
    """

    def __init__(self, updates: torch.Tensor, r: torch.Tensor, sizes: list[int], scope: str = "layer") -> None:
        n, dim = updates.shape
        self.cfg = Config(mechanism=MechanismConfig(method="cgsv", alpha=ALPHA, beta=BETA, grad_norm=GAMMA,
                                                    mask_scope=scope))
        ctx = ServerContext(agents=n, dim=dim, layer_sizes=sizes, shard_sizes=[600] * n)
        self.strategy = REGISTRY["cgsv"](self.cfg.mechanism, ctx)
        self.r = r.clone()
        self.dim = dim
        self.inp = RoundInput(round=11, updates=updates, extras=updates[:, dim:], valid=torch.ones(n, dtype=torch.bool),
                              server_model=torch.zeros(dim), agent_models=None, lr=0.1)

    def __call__(self) -> list[torch.Tensor]:
        self.strategy.load_state_dict({"r": self.r})  # every call does the same round's work
        step = self.strategy.server_step(self.inp)
        payloads = []
        for rw in step.rewards:  # as in Server.encode
            payloads.append(encode_reward(rw.indices, rw.values.to(WIRE_DTYPE), self.dim, self.cfg.comm.encoding)[0])
        return payloads


# ---------------------------------------------------------------- the reference code, as written


def ref_flatten(grad_update):
    return torch.cat([update.data.view(-1) for update in grad_update])


def ref_unflatten(flattened, normal_shape):
    grad_update = []
    for param in normal_shape:
        n_params = len(param.view(-1))
        grad_update.append(torch.as_tensor(flattened[:n_params]).reshape(param.size()))
        flattened = flattened[n_params:]
    return grad_update


def ref_add_gradient_updates(grad_update_1, grad_update_2, weight=1.0):
    assert len(grad_update_1) == len(grad_update_2), "Lengths of the two grad_updates not equal"
    for param_1, param_2 in zip(grad_update_1, grad_update_2):
        param_1.data += param_2.data * weight


def ref_mask_grad_update_by_order_layer(grad_update, mask_percentile):
    """``mask_grad_update_by_order(grad_update, mask_percentile=q, mode='layer')``."""
    grad_update = copy.deepcopy(grad_update)
    mask_percentile = max(0, mask_percentile)
    for i, layer in enumerate(grad_update):
        layer_mod = layer.data.view(-1).abs()
        mask_order = math.ceil(len(layer_mod) * mask_percentile)
        if mask_order == 0:
            grad_update[i].data = torch.zeros(layer.data.shape, device=layer.device)
        else:
            topk, indices = torch.topk(layer_mod, min(mask_order, len(layer_mod) - 1))
            grad_update[i].data[layer.data.abs() < topk[-1]] = 0
    return grad_update


def reference_step(gradients_raw, shapes, rs, weights, gamma=GAMMA, alpha=ALPHA, beta=BETA, sink=None):
    """One server round of the reference code (CGSV main loop), from the per-layer uploads."""
    gradients = []
    for gradient in gradients_raw:
        flattened = ref_flatten(gradient)
        norm_value = torch.linalg.norm(flattened) + 1e-7
        gradient = ref_unflatten(torch.multiply(torch.tensor(gamma), torch.div(flattened, norm_value)), gradient)
        gradients.append(gradient)

    aggregated_gradient = [torch.zeros(shape) for shape in shapes]
    for gradient, weight in zip(gradients, weights):
        ref_add_gradient_updates(aggregated_gradient, gradient, weight=weight)

    flat_aggre_grad = ref_flatten(aggregated_gradient)
    phis = torch.tensor([F.cosine_similarity(ref_flatten(gradient), flat_aggre_grad, 0, 1e-10)
                         for gradient in gradients])

    rs = alpha * rs + (1 - alpha) * phis
    rs = torch.clamp(rs, min=1e-3)
    rs = torch.div(rs, rs.sum())
    q_ratios = torch.tanh(beta * rs)
    q_ratios = torch.div(q_ratios, torch.max(q_ratios))

    for i in range(len(gradients)):
        reward_gradient = ref_mask_grad_update_by_order_layer(aggregated_gradient, mask_percentile=q_ratios[i])
        if sink is not None:
            sink(reward_gradient)
    return aggregated_gradient, rs


def per_layer_views(updates: torch.Tensor, shapes: list[torch.Size]) -> list[list[torch.Tensor]]:
    """Each agent's upload as the reference code holds it: a list of per-layer tensors (views)."""
    sizes = [int(torch.Size(s).numel()) for s in shapes]
    return [[piece.view(shape) for piece, shape in zip(row.split(sizes), shapes)] for row in updates]


# ---------------------------------------------------------------- checks and timing


def check_agreement(updates: torch.Tensor, r: torch.Tensor, shapes: list[torch.Size]) -> None:
    """Both steps must give every agent the same reward (same support, same values)."""
    sizes = [int(torch.Size(s).numel()) for s in shapes]
    ours = [decode(p) for p in FedfairStep(updates, r, sizes)()]
    theirs: list[torch.Tensor] = []
    reference_step(per_layer_views(updates, shapes), shapes, r.float(), r.float(),
                   sink=lambda g: theirs.append(torch.cat([t.reshape(-1) for t in g])))
    for i, (mine, dense) in enumerate(zip(ours, theirs)):
        nnz_mine, nnz_ref = int((mine != 0).sum()), int((dense != 0).sum())
        # r and q: float64 in fedfair, float32 in the reference; a layer's ceil(n q) may differ by one
        assert abs(nnz_mine - nnz_ref) <= len(shapes), f"agent {i}: {nnz_mine} vs {nnz_ref} entries"
        both = (mine != 0) & (dense != 0)
        assert int(both.sum()) >= min(nnz_mine, nnz_ref) - len(shapes)
        torch.testing.assert_close(mine[both], dense[both], rtol=1e-4, atol=1e-6 * float(dense.abs().max()))
    assert len(ours) == len(theirs) == updates.shape[0]


def measure(n: int, shapes: list[torch.Size], repeats: int, ref_repeats: int, seed: int = 0) -> dict[str, float]:
    """One (N, model) cell: min wall/CPU times of fedfair, the reference and the copy bound."""
    sizes = [int(torch.Size(s).numel()) for s in shapes]
    dim = sum(sizes)
    updates, r = make_round(n, dim, seed=seed + n)
    ours = FedfairStep(updates, r, sizes)
    layered = per_layer_views(updates, shapes)
    r32 = r.float()
    scratch = torch.empty_like(updates)
    times = interleaved(
        {
            "copy": lambda: scratch.copy_(updates),
            "fedfair": ours,
            "reference": lambda: reference_step(layered, shapes, r32, r32),
        },
        repeats,
        {"reference": ref_repeats},
    )
    payload_bytes = sum(p.numel() for p in ours())
    return {
        "n": n, "dim": dim,
        "fedfair": times["fedfair"][0], "fedfair_cpu": times["fedfair"][1],
        "reference": times["reference"][0], "reference_cpu": times["reference"][1],
        "copy": times["copy"][0],
        "wire_mb": payload_bytes / 1e6,
    }


def stage_profile(n: int, shapes: list[torch.Size], seed: int = 0) -> str:
    """Where fedfair's step spends its time, one run, by stage."""
    from fedfair.mechanism import cgsv_approx, reward_fractions, reward_masks, update_importance

    sizes = [int(torch.Size(s).numel()) for s in shapes]
    dim = sum(sizes)
    updates, r = make_round(n, dim, seed=seed + n)
    t = {}
    start = time.perf_counter()
    aggregate, psi = cgsv_approx(updates, r.float(), GAMMA)
    t["value"] = time.perf_counter() - start
    start = time.perf_counter()
    q = reward_fractions(update_importance(r, psi, ALPHA), BETA)
    t["importance"] = time.perf_counter() - start
    start = time.perf_counter()
    rewards = reward_masks(aggregate, q, "layer", sizes)
    t["masks"] = time.perf_counter() - start
    start = time.perf_counter()
    for idx, val in rewards:
        encode(idx, val, dim)
    t["encode"] = time.perf_counter() - start
    return ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in t.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[5, 10, 20, 100])
    parser.add_argument("--dims", nargs="+", default=["1e5", "1e6"], choices=sorted(MODELS),
                        help="which realistic model split (1e5: MNIST CNN, 1e6: text CNN)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of fedfair and the copy (min reported)")
    parser.add_argument("--ref-repeats", type=int, default=2, help="timed runs of the reference step (min reported)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the runtime's run.threads default for the server rank)")
    parser.add_argument("--profile", action="store_true", help="also print fedfair's time by stage")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_header())
    print(f"repeats: fedfair/copy {args.repeats}, reference {args.ref_repeats}, interleaved, min reported")

    for key in args.dims:
        shapes = model_shapes(MODELS[key])
        small = make_round(5, sum(int(torch.Size(s).numel()) for s in shapes), seed=99)
        check_agreement(*small, shapes)  # also warms both paths up
        dim = sum(int(torch.Size(s).numel()) for s in shapes)
        print(f"\nD = {dim:,} ({MODELS[key]}: {describe_split(shapes)}); rewards agree with the reference")
        print(f"{'N':>4} {'fedfair ms':>10} {'(cpu)':>7} {'ref ms':>9} {'(cpu)':>8} {'speed-up':>8} "
              f"{'cpu speed-up':>12} "
              f"{'copy ms':>8} {'fedfair ns/elt':>14} {'copy ns/elt':>11} {'copies':>7} {'ref copies':>10} "
              f"{'wire MB':>8}")
        for n in args.agents:
            m = measure(n, shapes, args.repeats, args.ref_repeats)
            elements = n * m["dim"]
            print(f"{n:>4} {m['fedfair'] * 1e3:>10.1f} {m['fedfair_cpu'] * 1e3:>7.1f} {m['reference'] * 1e3:>9.1f} "
                  f"{m['reference_cpu'] * 1e3:>8.1f} "
                  f"{m['reference'] / m['fedfair']:>7.1f}x {m['reference_cpu'] / m['fedfair_cpu']:>11.1f}x "
                  f"{m['copy'] * 1e3:>8.1f} {m['fedfair'] / elements * 1e9:>14.2f} {m['copy'] / elements * 1e9:>11.2f} "
                  f"{m['fedfair'] / m['copy']:>7.1f} {m['reference'] / m['copy']:>10.1f} {m['wire_mb']:>8.1f}",
                  flush=True)
            if args.profile:
                print(f"     fedfair stages: {stage_profile(n, shapes)}")
    print("\n" + footer())


if __name__ == "__main__":
    main()
