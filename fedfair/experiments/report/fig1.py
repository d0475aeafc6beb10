"""Fig. 1 from the benchmark's CSV (benchmarks/fig1_psi_vs_exact.py): ψ and permutation sampling
against the exact CGSV, as a markdown table and a figure."""
from __future__ import annotations

import csv
from functools import partial
from pathlib import Path
from typing import Any

from .figures import pyplot
from .runs import mean

FIG1_TEXT_COLUMNS = ("vectors", "weights")  # the benchmark's variant labels; every other column is a number


def read_fig1(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return [{k: (v if k in FIG1_TEXT_COLUMNS else float(v) if v not in ("", None) else None)
                 for k, v in row.items()} for row in csv.DictReader(f)]


def _mean_defined(values: list[float | None]) -> float | None:
    defined = [v for v in values if isinstance(v, (int, float))]
    return mean(defined) if defined else None


_VECTOR_LABELS = {"iid": "i.i.d. N(0,1) uploads", "correlated": "correlated uploads (shared direction + growing noise)"}


def fig1_variant(rows: list[dict[str, Any]]) -> str:
    """The uploads and weights the rows were drawn with; older CSVs lack the columns (they were correlated)."""
    parts = []
    for key, labels in (("vectors", _VECTOR_LABELS), ("weights", {})):
        values = sorted({str(r[key]) for r in rows if r.get(key)})
        if values:
            parts.append(", ".join(labels.get(v, f"{v} {key}") for v in values))
    return "; ".join(parts) or "variant not recorded"


def fig1_table(rows: list[dict[str, Any]]) -> str:
    """Mean normalised ℓ1/ℓ2 error (ψ, and sampling when recorded) and mean times per (N, D)."""
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((int(r["n"]), int(r["dim"])), []).append(r)
    sampling = any(r.get("sampling_l1") is not None for r in rows)
    head = "| N | D | ℓ1 error | ℓ2 error |"
    if sampling:
        head += " sampling K | sampling ℓ1 | sampling ℓ2 | sampling (ms) |"
    head += " ψ (ms) | exact CGSV, Gram + subset DP (ms) | exact CGSV by definition (ms) |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for (n, d), rs in sorted(groups.items()):
        naive = _mean_defined([r.get("naive_s") for r in rs])
        line = f"| {n} | {d:,} | {mean([r['l1'] for r in rs]):.4f} | {mean([r['l2'] for r in rs]):.4f} |"
        if sampling:
            line += (f" {int(rs[0]['sampling_k'])} | {mean([r['sampling_l1'] for r in rs]):.4f} | "
                     f"{mean([r['sampling_l2'] for r in rs]):.4f} | "
                     f"{1e3 * mean([r['sampling_s'] for r in rs]):.3f} |")
        line += f" {1e3 * mean([r['psi_s'] for r in rs]):.3f} | {1e3 * mean([r['exact_s'] for r in rs]):.3f} |"
        lines.append(line + f" {'not run' if naive is None else f'{1e3 * naive:.1f}'} |")
    return "\n".join(lines)


def fig1_series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(N, mean of ``key`` over trials) of one D's rows; a log axis cannot show 0 (ψ is exact at N = 2),
    so such points are left out."""
    ns = sorted({int(r["n"]) for r in rows})
    points = [(n, _mean_defined([r.get(key) for r in rows if int(r["n"]) == n])) for n in ns]
    return [n for n, v in points if v], [v for _, v in points if v]


def plot_fig1(rows: list[dict[str, Any]], path: Path) -> None:
    """ℓ1 error, ℓ2 error and time against N: one colour per D, one line style per estimator."""
    plt = pyplot()
    dims = sorted({int(r["dim"]) for r in rows})
    ks = sorted({int(r["sampling_k"]) for r in rows if r.get("sampling_k") is not None})
    k_text = f"K = {ks[0]}" if len(ks) == 1 else "K = " + "/".join(map(str, ks))
    fig, (ax_l1, ax_l2, ax_t) = plt.subplots(1, 3, figsize=(15, 4.4))
    for d in dims:
        series = partial(fig1_series, [r for r in rows if int(r["dim"]) == d])
        color = None
        for ax, key in ((ax_l1, "l1"), (ax_l2, "l2")):
            line, = ax.plot(*series(key), marker="o", ms=3, color=color, label=f"ψ (cosine), D={d:,}")
            color = line.get_color()
            if ks:
                ax.plot(*series(f"sampling_{key}"), marker="v", ms=3, ls="--", color=color,
                        label=f"permutation sampling, {k_text}, D={d:,}")
        ax_t.plot(*series("exact_s"), marker="o", ms=3, color=color, label=f"exact CGSV (Gram + DP), D={d:,}")
        ax_t.plot(*series("psi_s"), marker="s", ms=3, ls=(0, (1, 1)), color=color, label=f"ψ (cosine), D={d:,}")
        if ks:
            ax_t.plot(*series("sampling_s"), marker="v", ms=3, ls="--", color=color,
                      label=f"permutation sampling, {k_text}, D={d:,}")
        naive_n, naive_t = series("naive_s")
        if naive_n:
            ax_t.plot(naive_n, naive_t, marker="^", ms=3, ls="-.", color=color,
                      label=f"exact CGSV by definition, D={d:,}")
    for ax, metric in ((ax_l1, "ℓ1"), (ax_l2, "ℓ2")):
        ax.set_xlabel("number of agents N")
        ax.set_ylabel(f"normalised {metric} error vs exact CGSV")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax_t.set_xlabel("number of agents N")
    ax_t.set_ylabel("time per valuation (s)")
    ax_t.set_yscale("log")
    ax_t.legend(fontsize=7)
    budget = f", and permutation sampling at ψ's budget ({k_text})" if ks else ""
    fig.suptitle(f"Fig. 1: ψ = cos(u_i, u_N){budget} against the exact CGSV\n{fig1_variant(rows)}; "
                 "mean over trials", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
