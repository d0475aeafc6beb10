"""Many agents per rank (run.ranks): the placement rule, and results that do not depend on it.

The same small digits job runs with one rank per agent (P = N + 1), with P = 3 and, stopped
half-way and resumed from its checkpoint, with P = 2: agents.csv, server.csv and summary.json
(timing aside) and every agent's final model and received bytes must be bit-identical.
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

from fedfair.config import ConfigError, load_config
from fedfair.runtime.local import run_local
from fedfair.runtime.logs import TIMING  # every timing column and summary key
from fedfair.runtime.placement import host_rank, host_ranks, hosted_agents, world_size_for

ROOT = Path(__file__).resolve().parents[1]
AGENTS = 4
ROUNDS = 4


# ---------------------------------------------------------------- the placement rule

@pytest.mark.parametrize("n", range(1, 13))
def test_hosted_agents_are_contiguous_balanced_blocks_covering_every_agent(n):
    for world in range(2, n + 2):
        blocks = [hosted_agents(n, r, world) for r in range(1, world)]
        assert hosted_agents(n, 0, world) == []
        assert [i for b in blocks for i in b] == list(range(1, n + 1))  # contiguous, in order, each once
        sizes = [len(b) for b in blocks]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)  # larger blocks first
        for r, block in enumerate(blocks, start=1):
            assert all(host_rank(n, i, world) == r for i in block)
        assert host_ranks(n, world) == [host_rank(n, i, world) for i in range(1, n + 1)]
    assert [hosted_agents(n, r, n + 1) for r in range(1, n + 1)] == [[r] for r in range(1, n + 1)]


def test_hosted_agents_examples_and_bounds():
    assert [hosted_agents(10, r, 4) for r in range(1, 4)] == [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10]]
    assert world_size_for(10, 0) == 11 and world_size_for(10, 3) == 3
    with pytest.raises(ValueError, match="2 to N \\+ 1 = 4"):
        hosted_agents(3, 1, 5)


def test_run_ranks_is_validated_with_one_line():
    with pytest.raises(ConfigError, match=r"^run.ranks = 7 is invalid: at most data.agents \+ 1 = 6"):
        load_config(ROOT / "configs" / "default.toml", ["run.ranks=7"])
    with pytest.raises(ConfigError, match=r"^run.ranks = 1 is invalid"):
        load_config(ROOT / "configs" / "default.toml", ["run.ranks=1"])


# ---------------------------------------------------------------- results do not depend on P

def config(tmp: Path, name: str, *extra: str):
    return load_config(ROOT / "configs" / "default.toml", [
        f"run.name={name}", f"run.out_dir={tmp}", f"run.rounds={ROUNDS}", "run.eval_every=2", "run.progress=false",
        f"data.agents={AGENTS}", "run.checkpoint_every=1", *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hosting")
    out = {"one": run_local(config(tmp, "one")), "three": run_local(config(tmp, "three", "run.ranks=3"))}
    run_local(config(tmp, "two", "run.ranks=2", f"run.rounds={ROUNDS // 2}"))
    out["two"] = run_local(config(tmp, "two", "run.ranks=2", "run.resume=true"))  # the second half, resumed
    return tmp, out


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def summary(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMING}


@pytest.mark.parametrize("name", ["three", "two"])
def test_results_are_bit_identical_for_any_number_of_ranks(runs, name):
    tmp, out = runs
    for log in ("agents.csv", "server.csv"):
        assert rows(tmp / name / log) == rows(tmp / "one" / log), log
    assert summary(tmp / name / "summary.json") == summary(tmp / "one" / "summary.json")
    (server, *agents), (ref_server, *ref_agents) = out[name], out["one"]
    assert len(agents) == AGENTS
    np.testing.assert_array_equal(server["w"], ref_server["w"])
    for a, b in zip(agents, ref_agents):
        np.testing.assert_array_equal(a["w"], b["w"])


@pytest.mark.parametrize("name", ["one", "three"])
def test_hosted_agents_receive_exactly_their_own_rewards(runs, name):
    """The privacy test of test_runtime, with several agents on one rank: agent i's bytes are the
    ledger's bytes_down of agent i, and its model is the server's record of what it was sent."""
    tmp, out = runs
    server, *agents = out[name]
    logged = rows(tmp / name / "agents.csv")
    dim = server["w"].size
    for i, agent in enumerate(agents, start=1):
        mine = [r for r in logged if int(r["agent"]) == i]
        assert agent["received"] == sum(int(r["bytes_down"]) for r in mine)
        assert all(int(r["bytes_up"]) == 4 * dim for r in mine)
        np.testing.assert_array_equal(agent["w"], server["agent_models"][i - 1])
    s = json.loads((tmp / name / "summary.json").read_text())  # per-agent bytes in the summary, too
    assert s["bytes_down_by_agent"] == [agent["received"] for agent in agents]
    assert s["bytes_up_by_agent"] == [ROUNDS * 4 * dim] * AGENTS
    assert sum(s["bytes_down_by_agent"]) == s["bytes_down"] and sum(s["bytes_up_by_agent"]) == s["bytes_up"]
    last = [r for r in logged if int(r["round"]) == ROUNDS]
    assert len({r["q"] for r in last}) == AGENTS  # the rewards differ, so the check tells agents apart


def test_training_time_is_the_slowest_ranks_sum_of_its_agents(runs):
    """With several agents per rank they train one after another, so a round's training time (the
    denominator of overhead_ratio) is the largest per-rank sum of agents.csv's train_s, not the
    slowest agent's."""
    tmp, _ = runs
    hosts = host_ranks(AGENTS, 3)
    agents = list(csv.DictReader(open(tmp / "three" / "agents.csv")))
    server = list(csv.DictReader(open(tmp / "three" / "server.csv")))
    assert len(set(hosts)) == 2 and len(hosts) > 2  # a rank hosts more than one agent
    total = 0.0
    for row in server:
        per_rank = {}
        for a in agents:
            if a["round"] == row["round"]:
                host = hosts[int(a["agent"]) - 1]
                per_rank[host] = per_rank.get(host, 0.0) + float(a["train_s"])
        assert float(row["train_s"]) == pytest.approx(max(per_rank.values()), rel=1e-4)
        total += float(row["train_s"])
    assert json.loads((tmp / "three" / "summary.json").read_text())["train_s"] == pytest.approx(total, rel=1e-4)


def _cli(*args: str, world_size: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, RANK="0", WORLD_SIZE=str(world_size), LOCAL_RANK="0")
    return subprocess.run([sys.executable, "-m", "fedfair.run", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_launchers_read_the_world_size_and_a_wrong_one_stops_with_one_line():
    p = _cli("--config", "configs/default.toml", "--world-size", "data.agents=1000", "run.ranks=3", world_size=1)
    assert p.returncode == 0 and p.stdout.strip() == "3"
    p = _cli("--config", "configs/default.toml", "data.agents=10", "run.ranks=3", world_size=4)
    assert p.returncode == 2
    assert p.stderr.strip() == ("fedfair: error: world size 4 does not fit run.ranks = 3: start 3 ranks (rank 0 = "
                                "server), e.g. torchrun --nproc_per_node 3 -m fedfair.run ..., or set run.ranks")
