"""Exact CGSV against the permutation-sampling estimator, N = 10..20 (the paper's Fig. 1, extended).

For every N, one round of uploads (``_common.make_round``: a shared direction under
agent-specific noise, aggregation weights = the importance r after ten warm-up rounds), at D
(default 1e5). Timed, single-threaded, minimum of the repeats:

- ``exact_cgsv``: Gram matrix (O(N²·D)) + subset DP over all 2^N coalitions;
- ``sampled_cgsv`` (Maleki et al. permutation sampling, same Gram matrix, O(N²) per
  permutation) at two matching budgets:
  * "evaluations": K = ⌈2^N / N⌉ permutations, i.e. as many coalition values as the exact
    method computes;
  * "time": as many permutations as fit in the exact method's own time (calibrated on a
    pilot run of the estimator);
  and, for reference, the Hoeffding count K(ε = 0.05, δ = 0.05) = ``permutations_for``.
- ψ = cos(u_i, u_N) (``cgsv_approx``, one matrix-vector product): the paper's approximation.

Errors against the exact φ (which sums to ν(N) = 1): ℓ1 after normalising both to sum 1 (the
paper's Fig. 1 metric, ``normalised_error``) and the largest absolute error max_i |φ̂_i − φ_i|
(ψ normalised to sum 1 first); the sampled ones are means over ``--trials`` seeds.

Usage: python benchmarks/shapley.py [--agents 10 12 14 16 18 20] [--dim 100000] [--trials 3]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import GAMMA, best_time, footer, machine_header, make_round  # noqa: E402

from fedfair.mechanism import cgsv_approx, exact_cgsv, normalised_error, permutations_for, sampled_cgsv  # noqa: E402


def unit_round(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(raw uploads, normalised uploads u_i, aggregation weights a = r) for one round."""
    updates, r = make_round(n, dim, seed=seed)
    unit = GAMMA * updates / updates.norm(dim=1, keepdim=True)
    return updates, unit, r.float()


def errors(estimate: torch.Tensor, exact: torch.Tensor) -> tuple[float, float]:
    l1, _ = normalised_error(estimate, exact)
    return l1, float((estimate.double() - exact).abs().max())


def sampled_stats(unit: torch.Tensor, a: torch.Tensor, exact: torch.Tensor, k: int,
                  trials: int) -> tuple[float, float, float]:
    """Mean normalised ℓ1, mean max-abs error and min wall time of sampled_cgsv with k permutations."""
    l1s, maxs, times = [], [], []
    for trial in range(trials):
        g = torch.Generator().manual_seed(1000 + trial)
        start = time.perf_counter()
        phi = sampled_cgsv(unit, a, k, g)
        times.append(time.perf_counter() - start)
        l1, mx = errors(phi, exact)
        l1s.append(l1)
        maxs.append(mx)
    return sum(l1s) / trials, sum(maxs) / trials, min(times)


def measure(n: int, dim: int, trials: int, repeats: int) -> dict:
    updates, unit, a = unit_round(n, dim, seed=n)
    exact_s, _ = best_time(lambda: exact_cgsv(unit, a), repeats)
    exact = exact_cgsv(unit, a)
    psi_s, _ = best_time(lambda: cgsv_approx(updates, a, GAMMA), repeats)
    _, psi = cgsv_approx(updates, a, GAMMA)
    psi_l1, psi_max = errors(psi / psi.sum(), exact)  # ψ is a cosine: compare it normalised to sum 1, as φ
    # calibrate the estimator's cost per permutation (Gram matrix included once)
    pilot = 4096
    pilot_s, _ = best_time(lambda: sampled_cgsv(unit, a, pilot, torch.Generator().manual_seed(0)), repeats)
    gram_s, _ = best_time(lambda: sampled_cgsv(unit, a, 1, torch.Generator().manual_seed(0)), repeats)
    per_perm = max(pilot_s - gram_s, 1e-9) / pilot
    k_eval = math.ceil(2**n / n)
    k_time = max(1, int((exact_s - gram_s) / per_perm))
    k_hoeff = permutations_for(0.05, 0.05)
    out = {"n": n, "exact_s": exact_s, "psi_s": psi_s, "psi_l1": psi_l1, "psi_max": psi_max,
           "phi_sum": float(exact.sum()), "k": {}}
    for label, k in (("evaluations", k_eval), ("time", k_time), ("hoeffding", k_hoeff)):
        out["k"][label] = (k, *sampled_stats(unit, a, exact, k, trials))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=list(range(10, 21, 2)))
    parser.add_argument("--dim", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=3, help="seeds of the sampled estimator (errors averaged)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (min reported)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_header())
    print(f"D = {args.dim:,}; sampled errors are means over {args.trials} seeds; times are the min of "
          f"{args.repeats} runs (sampled: of the trials)")
    print(f"{'N':>3} {'exact s':>8} {'sum phi':>8} | {'psi s':>8} {'psi l1':>7} {'psi max':>8} | "
          f"{'budget':>11} {'K':>8} {'sampled s':>9} {'l1':>7} {'max err':>8}")
    for n in args.agents:
        m = measure(n, args.dim, args.trials, args.repeats)
        first = True
        for label, (k, l1, mx, secs) in m["k"].items():
            head = (f"{n:>3} {m['exact_s']:>8.3f} {m['phi_sum']:>8.4f} | {m['psi_s']:>8.4f} {m['psi_l1']:>7.4f} "
                    f"{m['psi_max']:>8.4f} |") if first else f"{'':>3} {'':>8} {'':>8} | {'':>8} {'':>7} {'':>8} |"
            print(f"{head} {label:>11} {k:>8,} {secs:>9.3f} {l1:>7.4f} {mx:>8.5f}", flush=True)
            first = False
    print(footer())


if __name__ == "__main__":
    main()
