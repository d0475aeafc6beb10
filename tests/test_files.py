"""Each party's own data files (data.dataset = files) under the real runtime (gloo, one process per rank).

Breast cancer split by hand into 4 party files and a test file; CGSV with the built-in mlp. Each
agent rank must have read only its own party file (data_files.json, written from the ranks' own
reports), the shard sizes and class counts the server used are those of the files, and one seed
gives one run.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hospital_sites import AGENTS, breast_cancer_sites

from fedfair.config import load_config
from fedfair.data.party_files import FileProblem, load_party_data, read_file
from fedfair.experiments.reference import fill_rho
from fedfair.runtime.local import run_local

ROUNDS = 4


def files_config(tmp: Path, sites: dict, name: str, *extra: str):
    return load_config(None, [
        "data.dataset=files", f"data.agents={AGENTS}", f"data.agent_files={sites['template']}",
        f"data.test_file={sites['test']}", "train.model=mlp", "train.model_args={hidden=[16]}", "train.lr=0.05",
        f"run.name={name}", f"run.out_dir={tmp}", f"run.rounds={ROUNDS}", "run.eval_every=2", "run.progress=false",
        *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("files")
    sites = breast_cancer_sites(tmp / "sites")
    first = run_local(files_config(tmp, sites, "a"))
    second = run_local(files_config(tmp, sites, "b"))
    return tmp, sites, first, second


def test_each_agent_rank_read_only_its_own_file(runs):
    tmp, sites, _, _ = runs
    record = json.loads((tmp / "a" / "data_files.json").read_text())
    assert record["opened_by_rank"]["0"] == [sites["test"]]  # the server: the test file, no party's file
    for agent in range(1, AGENTS + 1):
        own = sites["template"].replace("{agent}", str(agent))
        assert record["opened_by_rank"][str(agent)] == [sites["test"], own]
        x, y = sites["sites"][agent]
        entry = record["agents"][str(agent)]
        assert entry["rank"] == agent and entry["file"] == own and entry["samples"] == len(y)
        assert entry["class_counts"] == [int((y == 0).sum()), int((y == 1).sum())]
    assert record["num_classes"] == 2 and record["test_file"]["samples"] == 100


def test_files_run_learns_and_is_deterministic(runs):
    tmp, _, (server, *agents), (server2, *agents2) = runs
    assert np.array_equal(server["w"], server2["w"])
    for a, b in zip(agents, agents2):
        assert np.array_equal(a["w"], b["w"])
    rows = {k: [r for r in csv.DictReader(open(tmp / k / "agents.csv"))] for k in ("a", "b")}
    keep = ("round", "agent", "psi", "r", "q", "density", "bytes_up", "bytes_down", "test_acc")
    assert [[r[k] for k in keep] for r in rows["a"]] == [[r[k] for k in keep] for r in rows["b"]]
    assert load_config(tmp / "a" / "config.toml").train.model_args == {"hidden": [16]}  # round-trips
    summary = json.loads((tmp / "a" / "summary.json").read_text())
    assert summary["dataset"] == "files" and len(summary["final_acc"]) == AGENTS
    assert min(summary["final_acc"]) > 0.8  # breast cancer is easy: the federated mlp is well above chance (0.63)


def test_a_rank_opens_only_its_agents_files(tmp_path):
    sites = breast_cancer_sites(tmp_path)
    party = load_party_data(sites["template"], sites["test"], AGENTS, [3], rank=3)
    assert party.opened == [sites["test"], sites["template"].replace("{agent}", "3")]
    x, y = sites["sites"][3]
    assert [len(s) for s in party.shards] == [0, 0, len(y), 0]
    assert np.array_equal(party.shards[2].labels, y)
    assert np.array_equal(party.task.train_x[party.shards[2].indices].numpy(), x)
    server = load_party_data(sites["template"], sites["test"], AGENTS, [], rank=0, server=True)
    assert server.opened == [sites["test"]] and server.task.num_train == 0


def test_csv_and_npz_read_the_same(tmp_path):
    x = np.array([[1.5, -2.0], [0.25, 3.0], [4.0, 5.0]])
    y = np.array([1, 0, 2])
    np.savez(tmp_path / "a.npz", x=x, y=y)
    (tmp_path / "a.csv").write_text("f0,target,f1\n1.5,1,-2.0\n0.25,0,3.0\n4.0,2,5.0\n")
    a, b = read_file(str(tmp_path / "a.npz"), "t"), read_file(str(tmp_path / "a.csv"), "t", "target")
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and b.x.dtype == np.float64
    with pytest.raises(FileProblem, match="line 2 holds 'abc', not a number"):
        (tmp_path / "b.csv").write_text("f0,label\nabc,1\n")
        read_file(str(tmp_path / "b.csv"), "t")


def test_a_party_csv_with_its_columns_in_another_order_is_matched_by_header(tmp_path):
    """A party that exports the test file's columns in another order trains on the same features, in the
    test file's order (matched by header name, not by position)."""
    (tmp_path / "test.csv").write_text("f0,f1,f2,label\n1,2,3,0\n4,5,6,1\n")
    (tmp_path / "site_1.csv").write_text("f0,f1,f2,label\n0.5,1.5,2.5,1\n")
    (tmp_path / "site_2.csv").write_text("label,f2,f0,f1\n1,2.5,0.5,1.5\n0,9,7,8\n")
    party = load_party_data(str(tmp_path / "site_{agent}.csv"), str(tmp_path / "test.csv"), 2, [1, 2])
    x = party.task.train_x.numpy()
    assert x[party.shards[0].indices].tolist() == [[0.5, 1.5, 2.5]]
    assert x[party.shards[1].indices].tolist() == [[0.5, 1.5, 2.5], [7, 8, 9]]
    assert party.shards[1].labels.tolist() == [1, 0]


def test_the_exchange_checks_every_row(tmp_path):
    """The start-up exchange on a real (one-rank) gloo group: an agent no rank read stops the job; a
    party whose copy of the test file differs from the server's is named."""
    import torch
    import torch.distributed as dist

    from fedfair.data.party_files import TEST_SHA, check_summary
    from fedfair.runtime import datafiles

    sites = breast_cancer_sites(tmp_path / "sites")
    cfg = files_config(tmp_path, sites, "x")
    party = load_party_data(sites["template"], sites["test"], AGENTS, [1, 2, 3], rank=0)  # agent 4 missing
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        with pytest.raises(FileProblem, match=r"^data.agent_files: agent 4's file '.*site_4.npz' was read by 0 "
                                              r"ranks, expected exactly one$"):
            datafiles.exchange(cfg, party, 0, torch.device("cpu"))
        party = load_party_data(sites["template"], sites["test"], AGENTS, [1, 2, 3, 4], rank=0)
        assert datafiles.exchange(cfg, party, 0, torch.device("cpu")) == [60, 80, 100, 229]
    finally:
        dist.destroy_process_group()
    row = party.summaries[2].copy()
    row[TEST_SHA] ^= 1
    with pytest.raises(FileProblem, match="agent 2: its copy of the test file .* differs from the server's"):
        check_summary(row, party.test_summary, "agent 2", sites["test"], 2, local=False)


def test_a_file_edited_in_place_is_other_data_for_the_fairness_reference(tmp_path):
    """rho needs a standalone run on the same data: the same file paths with other contents are not."""
    sites = breast_cancer_sites(tmp_path / "sites")
    short = "run.rounds=2"
    run_local(files_config(tmp_path, sites, "alone", "mechanism.method=standalone", short))
    run_local(files_config(tmp_path, sites, "cgsv", short))
    assert fill_rho(tmp_path) == [tmp_path / "alone", tmp_path / "cgsv"]  # the experiment layer adds rho
    alone = json.loads((tmp_path / "alone" / "summary.json").read_text())
    same = json.loads((tmp_path / "cgsv" / "summary.json").read_text())
    record = json.loads((tmp_path / "alone" / "data_files.json").read_text())
    key = json.loads(alone["reference_key"])
    assert key["data_sha256"] == {"test": record["test_file"]["sha256"],
                                  **{a: e["sha256"] for a, e in record["agents"].items()}}
    assert same["reference_key"] == alone["reference_key"] and same["rho_available"]
    # party 2 drops its last ten rows, keeping its file's name
    path = Path(sites["template"].replace("{agent}", "2"))
    x, y = sites["sites"][2]
    np.savez(path, x=x[:-10], y=y[:-10])
    run_local(files_config(tmp_path, sites, "edited", short))
    assert fill_rho(tmp_path) == []
    edited = json.loads((tmp_path / "edited" / "summary.json").read_text())
    assert edited["reference_key"] != alone["reference_key"]
    assert not edited.get("rho_available") and edited.get("rho") is None
    new_key = json.loads(edited["reference_key"])
    assert new_key["data_sha256"]["2"] != key["data_sha256"]["2"]
    assert new_key["data_sha256"]["1"] == key["data_sha256"]["1"]


def test_a_files_runs_config_leaves_out_what_does_not_apply_and_still_counts_as_finished(tmp_path):
    """config.toml of a files run has no partition, test_fraction, cla_pool, image_pad (they do not apply);
    it loads back as the same config, and the sweep's finished check still matches it."""
    from fedfair.config import NOT_FOR_FILES, to_toml
    from fedfair.experiments.plan import finished_status

    cfg = load_config(None, ["data.dataset=files", "data.agent_files=s_{agent}.npz", "data.test_file=t.npz",
                             "data.partition=pow", f"run.out_dir={tmp_path}", "run.name=f"])
    text = to_toml(cfg)
    data = text.split("[data]\n", 1)[1].split("\n\n", 1)[0]
    assert not any(line.split(" = ")[0] in NOT_FOR_FILES for line in data.splitlines())
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "config.toml").write_text(text)
    (tmp_path / "f" / "summary.json").write_text("{}")
    assert finished_status(cfg) == ("complete", None)
    assert load_config(tmp_path / "f" / "config.toml").train == cfg.train
