"""The paper's Fig. 1: how well ψ_i = cos(u_i, u_N) approximates the exact CGSV φ_i, and at what cost.

For every number of agents N and dimension D, ``--trials`` random rounds of uploads are drawn:
a shared direction plus agent-specific Gaussian noise whose strength grows with the agent
index (from 0.2 to 3 times the direction's scale), so agents' contributions differ as in a
real non-IID round; the aggregation weights are uniform (a_i = 1/N, the first round) or, with
``--weights importance``, the importance r after ten rounds of the mechanism's moving average.
For each round:

- ψ = ``fedfair.mechanism.cgsv_approx`` (one matrix-vector product, O(N·D));
- φ = ``fedfair.mechanism.exact_cgsv`` on the normalised uploads (Gram matrix + subset DP
  over all 2^N coalitions);
- for reference, the same φ the way the definition reads (``fedfair.mechanism.exact_shapley``
  over the game ν(S) = cos(Σ_{i∈S} a_i u_i, u_N), each coalition summed from the uploads:
  O(2^N·N·D), the cost the paper's Fig. 1 timings show), while 2^N·N·D ≤ ``--naive-budget``;
- the normalised ℓ1 and ℓ2 errors ``fedfair.mechanism.normalised_error(ψ, φ)`` (each vector
  normalised to sum 1, as in the paper), and the wall time of each valuation (best of
  ``--repeats``; the by-definition one once when it is expensive).

Writes one CSV row per (N, D, trial) and a PNG (error and time against N, one line per D).

Usage:
    python benchmarks/fig1_psi_vs_exact.py [--agents 2 4 6 8 10 12 14] [--dims 1000 100000]
        [--trials 5] [--repeats 3] [--weights uniform|importance] [--naive-budget 3e10]
        [--out docs/results/fig1_psi_vs_exact]      (writes OUT.csv and OUT.png)
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

from fedfair.mechanism import (cgsv_approx, exact_cgsv, exact_shapley, normalised_error, unit_scales,
                               update_importance)

GAMMA = 0.5  # MNIST's Γ (the valuation is scale-free in Γ; it only sets the uploads' common norm)
ALPHA = 0.95
COLUMNS = ["n", "dim", "trial", "l1", "l2", "psi_s", "exact_s", "naive_s", "max_abs_diff"]


def make_round(n: int, dim: int, seed: int, weights: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Uploads sharing one direction under agent-specific noise, and aggregation weights."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(dim, generator=g)
    noise = torch.linspace(0.2, 3.0, n)
    updates = torch.randn(n, dim, generator=g).mul_(noise[:, None]).add_(direction)
    a = torch.full((n,), 1.0 / n, dtype=torch.float64)
    if weights == "importance":
        r = torch.zeros(n, dtype=torch.float64)
        for _ in range(10):
            _, psi = cgsv_approx(updates, a if r.sum() == 0 else r, GAMMA)
            r = update_importance(r, psi, ALPHA)
        a = r
    return updates, a.to(torch.float32)


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


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


def measure(n: int, dim: int, trial: int, repeats: int, weights: str, naive_budget: float) -> dict[str, float]:
    updates, a = make_round(n, dim, seed=1000 * n + trial, weights=weights)
    psi_s, (_, psi) = best_time(lambda: cgsv_approx(updates, a, GAMMA), repeats)

    def exact():
        unit = updates * unit_scales(updates, GAMMA).to(updates.dtype)[:, None]
        return exact_cgsv(unit, a)

    exact_s, phi = best_time(exact, repeats)
    naive_s = None
    if (1 << n) * n * dim <= naive_budget:
        unit = updates * unit_scales(updates, GAMMA).to(updates.dtype)[:, None]
        naive_repeats = repeats if (1 << n) * n * dim <= naive_budget / 20 else 1
        naive_s, phi_naive = best_time(lambda: naive_cgsv(unit, a), naive_repeats)
        if float((phi_naive - phi).abs().max()) > 1e-4:
            raise AssertionError(f"exact_cgsv and the by-definition CGSV disagree at N={n}, D={dim}")
    l1, l2 = normalised_error(psi, phi)
    diff = float((psi / psi.sum() - phi / phi.sum()).abs().max())
    return {"n": n, "dim": dim, "trial": trial, "l1": l1, "l2": l2, "psi_s": psi_s, "exact_s": exact_s,
            "naive_s": naive_s, "max_abs_diff": diff}


def plot(rows: list[dict[str, float]], path: Path) -> bool:
    try:
        from fedfair.report import plot_fig1
        import matplotlib  # noqa: F401
    except ImportError:
        print("fig1: matplotlib is not installed; PNG skipped", file=sys.stderr)
        return False
    plot_fig1(rows, path)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, nargs="+", default=[2, 4, 6, 8, 10, 12, 14])
    p.add_argument("--dims", type=int, nargs="+", default=[1000, 100000])
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--weights", choices=["uniform", "importance"], default="uniform")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--naive-budget", type=float, default=3e10,
                   help="time the by-definition CGSV only while 2^N * N * D is at most this")
    p.add_argument("--out", type=Path, default=Path("docs/results/fig1_psi_vs_exact"),
                   help="output stem: writes STEM.csv and STEM.png")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for dim in args.dims:
        for n in args.agents:
            for trial in range(args.trials):
                rows.append(measure(n, dim, trial, args.repeats, args.weights, args.naive_budget))
            rs = rows[-args.trials:]
            print(f"N={n:>3} D={dim:>8}: l1 {sum(r['l1'] for r in rs) / len(rs):.4f}  "
                  f"l2 {sum(r['l2'] for r in rs) / len(rs):.4f}  "
                  f"psi {1e3 * sum(r['psi_s'] for r in rs) / len(rs):8.3f} ms  "
                  f"exact {1e3 * sum(r['exact_s'] for r in rs) / len(rs):8.3f} ms  "
                  + (f"by definition {1e3 * sum(r['naive_s'] for r in rs) / len(rs):9.1f} ms"
                     if rs[0]["naive_s"] is not None else "by definition (skipped)"), flush=True)
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
