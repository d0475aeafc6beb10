"""A model with buffers (BatchNorm's running statistics) gives the same results for any run.ranks.

Each agent keeps its own buffers (not uploaded; saved in its checkpoint), so agents hosted on one rank
never share them: a BatchNorm model on one rank per agent (P = N + 1) and on two ranks (P = 2, stopped
half-way and resumed from the checkpoint) must give bit-identical logs, models and buffers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_hosting import AGENTS, ROUNDS, config, rows, summary

from fedfair.runtime.local import run_local

BN = ["train.model=own_model:BNNet", "train.model_args={features=64, classes=10, hidden=16}"]


def final_buffers(run_dir: Path) -> list[list[torch.Tensor]]:
    d = run_dir / "ckpt" / f"round_{ROUNDS:08d}"
    return [torch.load(d / f"agent_{i:04d}.pt", weights_only=True)["buffers"] for i in range(1, AGENTS + 1)]


@pytest.fixture(scope="module")
def bn_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bn")
    out = {"one": run_local(config(tmp, "one", *BN))}
    run_local(config(tmp, "two", "run.ranks=2", f"run.rounds={ROUNDS // 2}", *BN))
    out["two"] = run_local(config(tmp, "two", "run.ranks=2", "run.resume=true", *BN))
    return tmp, out


def test_a_batchnorm_model_on_two_ranks_resumed_matches_one_rank_per_agent_bit_for_bit(bn_runs):
    tmp, out = bn_runs
    for log in ("agents.csv", "server.csv"):
        assert rows(tmp / "two" / log) == rows(tmp / "one" / log), log
    assert summary(tmp / "two" / "summary.json") == summary(tmp / "one" / "summary.json")
    (server, *agents), (ref_server, *ref_agents) = out["two"], out["one"]
    np.testing.assert_array_equal(server["w"], ref_server["w"])
    for a, b in zip(agents, ref_agents):
        np.testing.assert_array_equal(a["w"], b["w"])
    one, two = final_buffers(tmp / "one"), final_buffers(tmp / "two")
    for mine, ref in zip(two, one):
        assert len(mine) == 3  # running_mean, running_var, num_batches_tracked
        for a, b in zip(mine, ref):
            assert torch.equal(a, b)
    # the agents' statistics differ (each trained on its own shard), so sharing them would show
    assert not torch.equal(one[0][0], one[1][0])
    assert int(one[0][2]) == 3 * ROUNDS  # 3 local steps a round, each one batch through BatchNorm
