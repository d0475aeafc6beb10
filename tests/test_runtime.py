"""The distributed runtime on real gloo process groups (one process per rank, FileStore, no ports).

Launches are few and shared across assertions: one cgsv run (run twice for determinism) and
one beta = inf run.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fedfair.config import load_config
from fedfair.runtime.local import run_local
from fedfair.runtime.wire import SIZE_HEADER_BYTES, encoded_size

ROOT = Path(__file__).resolve().parents[1]
AGENTS = 3
ROUNDS = 6


def small_config(tmp: Path, name: str, *extra: str):
    return load_config(ROOT / "configs" / "default.toml", [
        f"run.name={name}", f"run.out_dir={tmp}", f"run.rounds={ROUNDS}", "run.eval_every=3",
        "run.progress=false", f"data.agents={AGENTS}", *extra])


@pytest.fixture(scope="module")
def cgsv_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    first = run_local(small_config(tmp, "a"))
    second = run_local(small_config(tmp, "b"))
    return tmp, first, second


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dense")
    return tmp, run_local(small_config(tmp, "inf", "mechanism.beta=inf"))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_outputs_exist_with_the_contracted_columns(cgsv_runs):
    tmp, _, _ = cgsv_runs
    run = tmp / "a"
    for name in ("config.toml", "agents.csv", "server.csv", "summary.json"):
        assert (run / name).is_file(), name
    agents = read_csv(run / "agents.csv")
    assert len(agents) == ROUNDS * AGENTS
    for col in ("round", "agent", "psi", "r", "q", "density", "bytes_up", "bytes_down", "encoding", "test_acc",
                "test_loss", "dist_to_server", "local_acc"):
        assert col in agents[0], col
    server = read_csv(run / "server.csv")
    assert [int(r["round"]) for r in server] == list(range(1, ROUNDS + 1))
    for col in ("test_acc", "test_loss", "mechanism_s", "train_s", "round_s"):
        assert col in server[0]
    summary = json.loads((run / "summary.json").read_text())
    for key in ("method", "dataset", "partition", "agents", "rounds", "final_acc", "mean_acc", "max_acc", "rho_r",
                "overhead_ratio", "bytes_up", "bytes_down", "bytes_down_dense", "wall_s"):
        assert key in summary, key
    assert len(summary["final_acc"]) == AGENTS
    # the resolved config round-trips
    assert load_config(run / "config.toml").data.agents == AGENTS


def test_logged_bytes_equal_encoded_sizes(cgsv_runs):
    tmp, (server, *agents), _ = cgsv_runs
    dim = server["w"].size
    rows = read_csv(tmp / "a" / "agents.csv")
    total_down = 0
    for row in rows:
        k = int(row["k"])
        expected = SIZE_HEADER_BYTES + encoded_size(row["encoding"], k, dim)
        assert int(row["bytes_down"]) == expected
        # auto picks the smallest encoding for that k
        assert expected == SIZE_HEADER_BYTES + min(encoded_size(e, k, dim) for e in ("dense", "index", "bitmap"))
        assert int(row["bytes_up"]) == 4 * dim  # one float32 row, size fixed by the receive buffer
        total_down += expected
    assert server["summary"]["bytes_down"] == total_down
    dense_reward_bytes = SIZE_HEADER_BYTES + encoded_size("dense", dim, dim)
    assert server["summary"]["bytes_down_dense"] == ROUNDS * AGENTS * dense_reward_bytes


def test_each_agent_received_exactly_its_own_rewards(cgsv_runs):
    tmp, (server, *agents), _ = cgsv_runs
    rows = read_csv(tmp / "a" / "agents.csv")
    for i, agent in enumerate(agents):
        sent_to_i = sum(int(r["bytes_down"]) for r in rows if int(r["agent"]) == i + 1)
        assert agent["received"] == sent_to_i  # nothing more arrived at agent i than its own payloads
        # and what arrived was its own reward: its model equals the server's record of rewards sent to it
        np.testing.assert_array_equal(agent["w"], server["agent_models"][i])
    # the rewards differ between agents (so the check above tells them apart)
    q_last = [float(r["q"]) for r in rows if int(r["round"]) == ROUNDS]
    assert len(set(q_last)) == AGENTS and max(q_last) == 1.0
    dens = [float(r["density"]) for r in rows if int(r["round"]) == ROUNDS]
    assert min(dens) < 0.9


def test_same_seed_same_results(cgsv_runs):
    tmp, first, second = cgsv_runs
    for a, b in zip(first[1:], second[1:]):
        np.testing.assert_array_equal(a["w"], b["w"])
    s1, s2 = first[0]["summary"], second[0]["summary"]
    for key in ("final_acc", "final_r", "final_q", "bytes_down", "bytes_up", "mean_acc", "rho_r"):
        assert s1[key] == s2[key], key
    strip = ("train_s",)
    r1 = [{k: v for k, v in r.items() if k not in strip} for r in read_csv(tmp / "a" / "agents.csv")]
    r2 = [{k: v for k, v in r.items() if k not in strip} for r in read_csv(tmp / "b" / "agents.csv")]
    assert r1 == r2


def test_beta_inf_gives_dense_downloads_and_the_server_model(dense_run):
    tmp, (server, *agents) = dense_run
    rows = read_csv(tmp / "inf" / "agents.csv")
    dim = server["w"].size
    assert all(float(r["density"]) == 1.0 and r["encoding"] == "dense" for r in rows)
    assert all(int(r["bytes_down"]) == SIZE_HEADER_BYTES + encoded_size("dense", dim, dim) for r in rows)
    for agent in agents:  # every agent holds exactly the server's model: importance-weighted FedAvg
        np.testing.assert_array_equal(agent["w"], server["w"])
    assert all(float(r["dist_to_server"]) == 0.0 for r in rows)


def _cli(*args: str, world_size: int = 4) -> subprocess.CompletedProcess:
    env = dict(os.environ, RANK="0", WORLD_SIZE=str(world_size), LOCAL_RANK="0")
    return subprocess.run([sys.executable, "-m", "fedfair.run", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_wrong_world_size_stops_with_one_clear_line():
    p = _cli("--config", "configs/default.toml", world_size=3)
    assert p.returncode == 2
    assert p.stderr.strip() == ("fedfair: error: world size 3 does not fit data.agents = 5: a run needs N + 1 = 6 "
                                "ranks (rank 0 = server), e.g. torchrun --nproc_per_node 6 -m fedfair.run ...")


def test_bad_config_key_stops_with_one_clear_line():
    p = _cli("--config", "configs/default.toml", "mechanism.betta=2")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedfair: error: unknown config key mechanism.betta")


def test_world_size_probe_prints_n_plus_one():
    p = _cli("--config", "configs/default.toml", "--world-size", "data.agents=3")
    assert p.returncode == 0 and p.stdout.strip() == "4"
