"""Breast-cancer party files for the tests, split by hand (not by python -m fedfair prepare, which is tested apart)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

AGENTS = 4


def breast_cancer_sites(folder: Path, noisy_agent: int = 4) -> dict[str, object]:
    """test.npz (100 samples) and site_1..4.npz with 60/80/100/229 samples, standardised; the labels of
    ``noisy_agent`` half flipped. Returns paths and the arrays each file holds."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    order = np.random.default_rng(7).permutation(len(y))
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "test.npz", x=x[order[:100]], y=y[order[:100]])
    sites, start = {}, 100
    for agent, n in enumerate((60, 80, 100, len(y) - 340), start=1):
        idx = order[start:start + n]
        start += n
        labels = y[idx].copy()
        if agent == noisy_agent:
            labels[::2] = 1 - labels[::2]
        np.savez(folder / f"site_{agent}.npz", x=x[idx], y=labels)
        sites[agent] = (x[idx], labels)
    return {"template": str(folder / "site_{agent}.npz"), "test": str(folder / "test.npz"), "sites": sites,
            "test_y": y[order[:100]]}
