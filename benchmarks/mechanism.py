"""Benchmark of the mechanism layer: one full server step, and exact CGSV.

(a) A full server step — normalise and aggregate the N uploads, value them (ψ), update the
    importance r, compute reward fractions q, cut every agent's top-k reward and encode it
    for the wire — for N = 10 and 100 agents at D = 1e6, against a straightforward
    implementation (normalised N×D copy, F.cosine_similarity per agent, torch.topk per
    agent, dense masked rewards), printed as a speed-up ratio. Target: >= 5x at N = 100.
(b) exact_cgsv (Gram matrix + subset DP over all 2^N coalitions) at N = 10, 15, 20 and
    D = 1e5. Target: N = 20 under one second.

Usage: python benchmarks/mechanism.py [--threads T] [--repeats R] [--dim D]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ALPHA, BETA, GAMMA, best_time, footer, interleaved, machine_header, make_round  # noqa: E402

from fedfair.mechanism import (  # noqa: E402
    cgsv_approx,
    decode,
    encode,
    exact_cgsv,
    reward_fractions,
    reward_masks,
    update_importance,
)


def fedfair_step(updates: torch.Tensor, weights: torch.Tensor, r: torch.Tensor) -> list[torch.Tensor]:
    """The server step as fedfair's runtime does it."""
    aggregate, psi = cgsv_approx(updates, weights, GAMMA)
    r = update_importance(r, psi, ALPHA)
    q = reward_fractions(r, BETA)
    rewards = reward_masks(aggregate, q, "global")
    return [encode(indices, values, aggregate.numel()) for indices, values in rewards]


def naive_step(updates: torch.Tensor, weights: torch.Tensor, r: torch.Tensor) -> list[torch.Tensor]:
    """The textbook step: normalised copies, one cosine and one top-k per agent, dense rewards."""
    n, dim = updates.shape
    unit = torch.stack([GAMMA * u / (u.norm() + 1e-7) for u in updates])
    aggregate = (weights[:, None] * unit).sum(dim=0)
    psi = torch.stack([F.cosine_similarity(unit[i], aggregate, dim=0) for i in range(n)]).double()
    r = (ALPHA * r + (1 - ALPHA) * psi).clamp_min(1e-3)
    r = r / r.sum()
    q = torch.tanh(BETA * r) / torch.tanh(BETA * r).max()
    rewards = []
    for i in range(n):
        k = int(dim * float(q[i]))
        _, top = torch.topk(aggregate.abs(), k)
        mask = torch.zeros(dim)
        mask[top] = 1.0
        rewards.append(aggregate * mask)
    return rewards


def stage_times(updates: torch.Tensor, weights: torch.Tensor, r: torch.Tensor) -> tuple[dict[str, float], float, int]:
    """Where fedfair's step spends its time (one run), the mean reward density, the wire bytes."""
    t: dict[str, float] = {}
    start = time.perf_counter()
    aggregate, psi = cgsv_approx(updates, weights, GAMMA)
    t["value"] = time.perf_counter() - start
    start = time.perf_counter()
    q = reward_fractions(update_importance(r, psi, ALPHA), BETA)
    t["importance"] = time.perf_counter() - start
    start = time.perf_counter()
    rewards = reward_masks(aggregate, q, "global")
    t["masks"] = time.perf_counter() - start
    start = time.perf_counter()
    payloads = [encode(indices, values, aggregate.numel()) for indices, values in rewards]
    t["encode"] = time.perf_counter() - start
    return t, sum(i.numel() for i, _ in rewards) / (len(rewards) * aggregate.numel()), sum(p.numel() for p in payloads)


def check_agreement(updates: torch.Tensor, weights: torch.Tensor, r: torch.Tensor) -> None:
    """Both implementations must hand every agent the same number of entries of u_N."""
    ours = fedfair_step(updates, weights, r)
    naive = naive_step(updates, weights, r)
    for payload, dense in zip(ours, naive):
        mine = decode(payload)
        assert int((mine != 0).sum()) == int((dense != 0).sum()), "reward sizes differ"
        torch.testing.assert_close(mine, dense, rtol=1e-4, atol=1e-6 * float(dense.abs().max()))
    assert len(ours) == len(naive)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch.set_num_threads (default: all cores)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement; the minimum is reported")
    parser.add_argument("--dim", type=int, default=1_000_000, help="D for the server step")
    parser.add_argument("--exact-dim", type=int, default=100_000, help="D for exact_cgsv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_header())
    print(f"repeats {args.repeats} (min reported)")

    small_updates, small_r = make_round(5, 10_000)
    check_agreement(small_updates, torch.full((5,), 0.2), small_r)  # also warms up both paths

    print(f"\n(a) full server step at D = {args.dim:,} (value, importance, fractions, top-k rewards, encode)")
    print(f"{'N':>5} {'fedfair s':>10} {'naive s':>10} {'speed-up':>9} {'cpu-time speed-up':>18}"
          "   fedfair stages (wall)")
    for n in (10, 100):
        updates, r = make_round(n, args.dim, seed=n)
        weights = torch.full((n,), 1.0 / n)
        times = interleaved({"fedfair": functools.partial(fedfair_step, updates, weights, r),
                             "naive": functools.partial(naive_step, updates, weights, r)},
                            args.repeats, {"naive": max(1, args.repeats - 1)})
        (ours, ours_cpu), (naive, naive_cpu) = times["fedfair"], times["naive"]
        stages, density, wire_bytes = stage_times(updates, weights, r)
        detail = ", ".join(f"{name} {seconds:.3f}s" for name, seconds in stages.items())
        print(
            f"{n:>5} {ours:>10.3f} {naive:>10.3f} {naive / ours:>8.1f}x {naive_cpu / ours_cpu:>17.1f}x   {detail}; "
            f"mean density {density:.2f}, wire {wire_bytes / 1e6:.0f} MB (naive dense {n * 4 * args.dim / 1e6:.0f} MB)"
        )
        del updates

    print(f"\n(b) exact_cgsv at D = {args.exact_dim:,} (Gram matrix + subset DP over 2^N coalitions)")
    print(f"{'N':>5} {'wall s':>10} {'cpu s':>10}")
    g = torch.Generator().manual_seed(0)
    for n in (10, 15, 20):
        unit = torch.randn(n, args.exact_dim, generator=g)
        unit = GAMMA * unit / unit.norm(dim=1, keepdim=True)
        weights = torch.rand(n, generator=g)
        weights /= weights.sum()
        wall, cpu = best_time(functools.partial(exact_cgsv, unit, weights), args.repeats)
        print(f"{n:>5} {wall:>10.3f} {cpu:>10.3f}")
    print("\n" + footer())


if __name__ == "__main__":
    main()
