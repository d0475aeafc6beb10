"""The regime ablation's figures: r over rounds per setting, and one run's upload norms, ψ and r.

Both read the run folders' agents.csv; a run row comes from ``regimes.load_runs`` (with its
``aggregation`` label), so this module needs nothing else from the table code.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd


def r_figure(runs: pd.DataFrame, setting: str, path: Path) -> bool:
    """r over rounds, one panel per CGSV run of ``setting`` (seed 0), agents as lines."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sel = runs[(runs["setting"] == setting) & (runs["method"] == "cgsv") & (runs["seed"] == 0)].copy()
    if sel.empty:
        return False
    sel = sel.sort_values(["lr", "dtype", "cla_pool", "aggregation"])
    cols = 5
    rows = math.ceil(len(sel) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=True)
    for ax, (_, run) in zip(axes.flat, sel.iterrows()):
        agents = pd.read_csv(Path(run["dir"]) / "agents.csv", usecols=["round", "agent", "r"])
        for agent, g in agents.groupby("agent"):
            ax.plot(g["round"], g["r"], lw=1, label=f"agent {agent}")
        extra = "" if run["dtype"] == "float32" else f", {run['dtype']}"
        extra += "" if run["cla_pool"] == "full" else f", {run['cla_pool']} pool"
        ax.set_title(f"lr {run['lr']:g}: {run['aggregation']}{extra}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(sel):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(f"{setting}: importance r over rounds (CGSV β=1, seed 0)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def norm_figure(run: pd.Series, path: Path) -> bool:
    """For a CGSV run that logged upload norms: ‖Δw_i‖ (log scale), ψ_i and r_i over rounds, one line
    per agent, so a diagnosis of what moves r ("whose updates are large") can be checked."""
    agents_csv = Path(run["dir"]) / "agents.csv"
    with agents_csv.open() as f:
        if "upload_norm" not in f.readline().strip().split(","):
            return False
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    agents = pd.read_csv(agents_csv, usecols=["round", "agent", "upload_norm", "psi", "r"])
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for agent, g in agents.groupby("agent"):
        psi = g["psi"].rolling(10, min_periods=1).mean()  # ψ is noisy round to round
        for ax, y in zip(axes, (g["upload_norm"], psi, g["r"])):
            ax.plot(g["round"], y, lw=1, label=f"agent {agent}")
    axes[0].set_yscale("log")
    for ax, title in zip(axes, ("‖Δw_i‖ as uploaded", "ψ_i (10-round mean)", "r_i")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("round", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"{run['setting']}: lr {run['lr']:g}, {run['aggregation']} (CGSV β=1, seed {run['seed']})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
