"""The paper's Fig. 1: ψ_i = cos(u_i, u_N) and permutation sampling at ψ's budget against the exact CGSV φ_i.

How close each estimate comes to φ, and at what cost.

For every number of agents N and dimension D, ``--trials`` random rounds of uploads are drawn
(``--vectors``):

- ``iid`` (default, the paper's setting): every entry of every upload is i.i.d. N(0, 1);
- ``correlated`` (a harder case for ψ, this benchmark's only setting before): a shared
  direction plus agent-specific Gaussian noise whose strength grows with the agent index (from
  0.2 to 3 times the direction's scale), so agents' contributions differ as in a non-IID round.

The aggregation weights are uniform (a_i = 1/N, the first round) or, with ``--weights
importance``, the importance r after ten rounds of the mechanism's moving average. For each round:

- ψ = ``fedfair.mechanism.cgsv_approx`` (one matrix-vector product, O(N·D));
- φ = ``fedfair.mechanism.exact_cgsv`` on the normalised uploads (Gram matrix + subset DP
  over all 2^N coalitions);
- φ̂ = ``fedfair.mechanism.sampled_cgsv`` (Maleki et al. permutation sampling, seeded) with K
  permutations at ψ's budget (below);
- for reference, φ the way the definition reads (``fedfair.mechanism.exact_shapley`` over the
  game ν(S) = cos(Σ_{i∈S} a_i u_i, u_N), each coalition summed from the uploads: O(2^N·N·D),
  the cost the paper's Fig. 1 timings show), while 2^N·N·D ≤ ``--naive-budget``;
- the normalised ℓ1 and ℓ2 errors ``normalised_error(ψ, φ)`` and ``normalised_error(φ̂, φ)``
  (each vector normalised to sum 1, as in the paper), and the wall time of each valuation
  (best of ``--repeats``; the by-definition one once when it is expensive).

The matched budget is a count of coalition evaluations, not wall time. ψ evaluates N
coalitions: each singleton {i}, as ν({i}) = cos(u_i, u_N) (a_i > 0). One permutation evaluates
N coalitions too: its N prefixes. So K = ``--budget`` permutations (default 1) costs
``--budget`` times ψ's evaluations, for every N. (Counted in D-long vector operations it is
about the same: ψ is u_N and N cosines against it; a permutation by the definition is u_N, N
running sums and N cosines.) Wall time is not the unit because it is not deterministic on a
shared machine (K would change from run to run, and the errors with it), and because it
depends on the implementation: ``sampled_cgsv`` first forms the O(N²·D) Gram matrix, O(N)
times ψ's O(N·D) on its own, and then costs O(N²) per permutation. Its recorded time includes
that Gram matrix; K is recorded in every row. A large ``--budget`` makes φ̂ converge to φ.

Writes one CSV row per (N, D, trial), with the vector variant in every row, and a PNG (ℓ1
error, ℓ2 error and time against N; one colour per D, one line style per estimator).

Usage:
    python benchmarks/fig1_psi_vs_exact.py [--vectors iid|correlated] [--agents 2 4 ... 14]
        [--dims 1000 100000] [--trials 5] [--repeats 3] [--weights uniform|importance]
        [--budget 1] [--seed 0] [--naive-budget 3e10]
        [--out docs/results/fig1_psi_vs_exact]      (writes OUT.csv and OUT.png)
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

import torch

from fedfair.mechanism import (
    cgsv_approx,
    exact_cgsv,
    exact_shapley,
    normalised_error,
    sampled_cgsv,
    unit_scales,
    update_importance,
)

GAMMA = 0.5  # MNIST's Γ (the valuation is scale-free in Γ; it only sets the uploads' common norm)
ALPHA = 0.95
VECTORS = ("iid", "correlated")
COLUMNS = ["vectors", "weights", "n", "dim", "trial", "l1", "l2", "psi_s", "exact_s", "naive_s", "max_abs_diff",
           "sampling_k", "sampling_l1", "sampling_l2", "sampling_s"]
# The sampler's generator is seeded apart from the uploads' (seeds below 2^32 are the rounds').
SAMPLING_SEED_OFFSET = 1 << 32

T = TypeVar("T")


def matched_permutations(n: int, budget: int) -> int:
    """K: permutations whose coalition evaluations are ``budget`` times ψ's (see the docstring)."""
    psi_evaluations = n  # ν({i}) = cos(u_i, u_N) for every agent i
    per_permutation = n  # ν of each of the permutation's n prefixes
    return max(1, -(-budget * psi_evaluations // per_permutation))


def draw_uploads(n: int, dim: int, g: torch.Generator, vectors: str) -> torch.Tensor:
    """N uploads: i.i.d. N(0, 1) entries, or a shared direction under noise growing with the agent index."""
    if vectors == "iid":
        return torch.randn(n, dim, generator=g)
    if vectors == "correlated":
        direction = torch.randn(dim, generator=g)
        noise = torch.linspace(0.2, 3.0, n)
        return torch.randn(n, dim, generator=g).mul_(noise[:, None]).add_(direction)
    raise ValueError(f"vectors must be one of {VECTORS}, got {vectors!r}")


def make_round(n: int, dim: int, seed: int, weights: str, vectors: str = "iid") -> tuple[torch.Tensor, torch.Tensor]:
    """One round's uploads and aggregation weights (uniform, or r after ten mechanism rounds)."""
    g = torch.Generator().manual_seed(seed)
    updates = draw_uploads(n, dim, g, vectors)
    a = torch.full((n,), 1.0 / n, dtype=torch.float64)
    if weights == "importance":
        r = torch.zeros(n, dtype=torch.float64)
        for _ in range(10):
            _, psi = cgsv_approx(updates, a if r.sum() == 0 else r, GAMMA)
            r = update_importance(r, psi, ALPHA)
        a = r
    return updates, a.to(torch.float32)


def round_seed(n: int, trial: int, seed: int) -> int:
    """The uploads' seed; seed 0 gives the seeds of earlier versions (1000·N + trial)."""
    return seed * 1_000_000 + 1000 * n + trial


def best_time(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Minimum wall time over the repeats (the least disturbed run) and fn's last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out  # type: ignore[return-value]


def normalise(updates: torch.Tensor) -> torch.Tensor:
    """u_i rescaled to norm Γ, as the mechanism uploads them."""
    return updates * unit_scales(updates, GAMMA).to(updates.dtype)[:, None]


def naive_cgsv(unit: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """φ by the definition: every coalition's upload summed and its cosine with u_N taken (O(2^N·N·D))."""
    weighted = (a.to(unit.dtype)[:, None] * unit)
    total = weighted.sum(dim=0)

    def value(coalition: frozenset) -> float:
        if not coalition:
            return 0.0
        u = weighted[sorted(coalition)].sum(dim=0)
        return float(torch.nn.functional.cosine_similarity(u, total, dim=0, eps=1e-12))

    return exact_shapley(value, unit.shape[0])


def measure(n: int, dim: int, trial: int, repeats: int, weights: str, naive_budget: float,
            vectors: str = "iid", budget: int = 1, seed: int = 0) -> dict[str, float | int | str | None]:
    """One CSV row: ψ's and the sampler's errors against exact φ, and every valuation's time."""
    rseed = round_seed(n, trial, seed)
    updates, a = make_round(n, dim, rseed, weights, vectors)
    psi_s, (_, psi) = best_time(lambda: cgsv_approx(updates, a, GAMMA), repeats)
    exact_s, phi = best_time(lambda: exact_cgsv(normalise(updates), a), repeats)
    k = matched_permutations(n, budget)
    # a fresh generator with the same seed in every repeat: every repeat returns the same φ̂
    sampling_s, phi_hat = best_time(
        lambda: sampled_cgsv(normalise(updates), a, k, torch.Generator().manual_seed(SAMPLING_SEED_OFFSET + rseed)),
        repeats)
    naive_s = None
    if (1 << n) * n * dim <= naive_budget:
        unit = normalise(updates)
        naive_repeats = repeats if (1 << n) * n * dim <= naive_budget / 20 else 1
        naive_s, phi_naive = best_time(lambda: naive_cgsv(unit, a), naive_repeats)
        if float((phi_naive - phi).abs().max()) > 1e-4:
            raise AssertionError(f"exact_cgsv and the by-definition CGSV disagree at N={n}, D={dim}")
    l1, l2 = normalised_error(psi, phi)
    sampling_l1, sampling_l2 = normalised_error(phi_hat, phi)
    diff = float((psi / psi.sum() - phi / phi.sum()).abs().max())
    return {"vectors": vectors, "weights": weights, "n": n, "dim": dim, "trial": trial, "l1": l1, "l2": l2,
            "psi_s": psi_s, "exact_s": exact_s, "naive_s": naive_s, "max_abs_diff": diff, "sampling_k": k,
            "sampling_l1": sampling_l1, "sampling_l2": sampling_l2, "sampling_s": sampling_s}


def plot(rows: list[dict], path: Path) -> bool:
    try:
        import matplotlib  # noqa: F401

        from fedfair.experiments.report import plot_fig1
    except ImportError:
        print("fig1: matplotlib is not installed; PNG skipped", file=sys.stderr)
        return False
    plot_fig1(rows, path)
    return True


def summary_line(rs: list[dict]) -> str:
    """Means over the trials of one (N, D): both estimators' errors and all the times."""
    def mean(key: str) -> float:
        return sum(r[key] for r in rs) / len(rs)

    r0 = rs[0]
    return (f"N={r0['n']:>3} D={r0['dim']:>8}: psi l1 {mean('l1'):.4f} l2 {mean('l2'):.4f} | "
            f"sampling K={r0['sampling_k']} l1 {mean('sampling_l1'):.4f} l2 {mean('sampling_l2'):.4f} | "
            f"psi {1e3 * mean('psi_s'):8.3f} ms  sampling {1e3 * mean('sampling_s'):8.3f} ms  "
            f"exact {1e3 * mean('exact_s'):8.3f} ms  "
            + (f"by definition {1e3 * mean('naive_s'):9.1f} ms" if r0["naive_s"] is not None
               else "by definition (skipped)"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vectors", choices=VECTORS, default="iid",
                   help="iid: i.i.d. N(0,1) uploads (the paper's setting); "
                        "correlated: shared direction + growing noise")
    p.add_argument("--agents", type=int, nargs="+", default=[2, 4, 6, 8, 10, 12, 14])
    p.add_argument("--dims", type=int, nargs="+", default=[1000, 100000])
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--weights", choices=["uniform", "importance"], default="uniform")
    p.add_argument("--budget", type=int, default=1,
                   help="sampling budget in multiples of psi's N coalition evaluations: K = BUDGET permutations")
    p.add_argument("--seed", type=int, default=0, help="base seed of the uploads and of the sampler")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--naive-budget", type=float, default=3e10,
                   help="time the by-definition CGSV only while 2^N * N * D is at most this")
    p.add_argument("--out", type=Path, default=Path("docs/results/fig1_psi_vs_exact"),
                   help="output stem: writes STEM.csv and STEM.png")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"vectors {args.vectors}, weights {args.weights}, sampling at {args.budget} x psi's coalition evaluations "
          f"(K = {args.budget} permutation(s) per valuation), seed {args.seed}")
    rows = []
    for dim in args.dims:
        for n in args.agents:
            for trial in range(args.trials):
                rows.append(measure(n, dim, trial, args.repeats, args.weights, args.naive_budget,
                                    args.vectors, args.budget, args.seed))
            print(summary_line(rows[-args.trials:]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    csv_path = args.out.with_suffix(".csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    made = plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {csv_path}" + (f" and {args.out.with_suffix('.png')}" if made else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
