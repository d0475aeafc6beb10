"""Crash and resume, hung ranks, mixed checkpoints, extending a finished run (real gloo groups).

One uninterrupted reference run (local launcher) is compared bit for bit with:
- a torchrun job (``--standalone``, ``--max-restarts 2``) whose agent rank 2 is SIGKILLed in
  round 5 and, in the restarted attempt, whose server (rank 0) is SIGKILLed in round 7;
- a run whose agent hangs in round 3 (stopped after ``comm.timeout_s`` with one message), then
  resumed with ``run.resume=true`` next to a planted, half-written round-4 checkpoint;
- a 4-round run extended to 8 rounds with ``run.resume=true``.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fedfair.config import load_config
from fedfair.runtime.checkpoint import MARKER, Checkpointer
from fedfair.runtime.local import run_local
from fedfair.runtime.logs import TIMING  # every timing column and summary key

ROOT = Path(__file__).resolve().parents[1]
AGENTS, ROUNDS, EVERY = 3, 8, 2
COMMON = [f"run.rounds={ROUNDS}", "run.eval_every=2", "run.progress=false", f"data.agents={AGENTS}",
          f"run.checkpoint_every={EVERY}"]


def config(tmp: Path, name: str, *extra: str):
    return load_config(ROOT / "configs" / "default.toml", [f"run.name={name}", f"run.out_dir={tmp}", *COMMON, *extra])


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def final_models(run_dir: Path) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """(w, server's agent models, each agent's own model) from the run's last checkpoint."""
    d = run_dir / "ckpt" / f"round_{ROUNDS:08d}"
    assert (d / MARKER).is_file()
    server = torch.load(d / "server.pt", weights_only=True)
    agents = [torch.load(d / f"agent_{i:04d}.pt", weights_only=True)["w"] for i in range(1, AGENTS + 1)]
    return server["w"], server["agent_models"], agents


def assert_same_run(ref_dir: Path, ref: list, run_dir: Path, results: list | None = None) -> None:
    """Final metrics, models and logs of run_dir equal the uninterrupted reference."""
    import json

    s_ref = ref[0]["summary"]
    s = json.loads((run_dir / "summary.json").read_text())
    for key in ("final_acc", "final_r", "final_q", "final_density", "server_acc", "bytes_up", "bytes_down",
                "bytes_down_dense", "bytes_ctrl"):
        assert s[key] == s_ref[key], key
    w, agent_models, own = final_models(run_dir)
    np.testing.assert_array_equal(w.numpy(), ref[0]["w"])
    np.testing.assert_array_equal(agent_models.numpy(), ref[0]["agent_models"])
    for i in range(AGENTS):
        np.testing.assert_array_equal(own[i].numpy(), ref[i + 1]["w"])
    if results is not None:
        for i in range(AGENTS):
            np.testing.assert_array_equal(results[i + 1]["w"], ref[i + 1]["w"])
            assert results[i + 1]["received"] == ref[i + 1]["received"]
    # each round exactly once, and the same rows as the uninterrupted run (timing columns aside)
    assert rows(run_dir / "agents.csv") == rows(ref_dir / "agents.csv")
    assert rows(run_dir / "server.csv") == rows(ref_dir / "server.csv")
    assert [int(r["round"]) for r in rows(run_dir / "server.csv")] == list(range(1, ROUNDS + 1))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    return tmp / "ref", run_local(config(tmp, "ref"))


def test_checkpoints_are_written_atomically_and_pruned(reference):
    ref_dir, _ = reference
    ckpt = ref_dir / "ckpt"
    # the two newest complete rounds are kept, each with N + 1 files and the marker, and no temporaries
    assert sorted(p.name for p in ckpt.iterdir()) == [f"round_{ROUNDS - EVERY:08d}", f"round_{ROUNDS:08d}"]
    for d in ckpt.iterdir():
        assert sorted(p.name for p in d.iterdir()) == sorted(
            [MARKER, "server.pt"] + [f"agent_{i:04d}.pt" for i in range(1, AGENTS + 1)])


def test_sigkilled_agent_and_server_under_torchrun_resume_identically(reference, tmp_path):
    ref_dir, ref = reference
    env = dict(os.environ, OMP_NUM_THREADS="1",
               # agent rank 2 dies at the start of round 5 (attempt 0); the server dies in round 7 (attempt 1)
               FEDFAIR_FAULT="rank=2,round=5;rank=0,round=7,attempt=1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc-per-node", str(AGENTS + 1), "--max-restarts", "2", "--monitor-interval", "0.2",
           "-m", "fedfair.run", "--config", "configs/default.toml", "run.name=killed", f"run.out_dir={tmp_path}",
           *COMMON]
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
    assert p.returncode == 0, p.stderr[-3000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("fedfair: error:")]
    # the agent's death is reported once, by the server, naming the rank and the round
    assert errors == [f"fedfair: error: agent 2 (rank 2) died in round 5: its connection closed while the server "
                      "waited for its upload; last complete checkpoint: round 4 "
                      f"({tmp_path}/killed/ckpt/round_00000004)"]
    resumes = [line for line in p.stderr.splitlines() if line.startswith("fedfair: resuming")]
    assert resumes == [f"fedfair: resuming after round 4 from {tmp_path}/killed/ckpt/round_00000004",
                       f"fedfair: resuming after round 6 from {tmp_path}/killed/ckpt/round_00000006"]
    assert_same_run(ref_dir, ref, tmp_path / "killed")
    print(f"torchrun with 2 faults: {time.monotonic() - t0:.1f} s")


def test_hung_agent_stops_the_job_with_one_message_then_resume_skips_a_half_written_checkpoint(
        reference, tmp_path, monkeypatch):
    ref_dir, ref = reference
    monkeypatch.setenv("FEDFAIR_FAULT", "rank=2,round=3,hang")
    t0 = time.monotonic()
    with pytest.raises(RuntimeError) as err:
        run_local(config(tmp_path, "hung", "comm.timeout_s=15"), grace_s=2.0)
    elapsed = time.monotonic() - t0
    run_dir = tmp_path / "hung"
    ckpt = Checkpointer(config(tmp_path, "hung"), 0)
    assert str(err.value) == (f"rank 0 failed: agent 2 (rank 2) stopped responding in round 3: no upload within "
                              "comm.timeout_s = 15 s (hung or dead, or just slower: "
                              "on a loaded machine raise comm.timeout_s); "
                              f"last complete checkpoint: round 2 ({ckpt.round_dir(2)})")
    assert elapsed < 120
    # the last checkpoint is intact: marker and N + 1 loadable files of round 2
    assert ckpt.own_rounds() == [2]
    for i in range(AGENTS + 1):
        assert Checkpointer(config(tmp_path, "hung"), i)._load(2) is not None
    monkeypatch.delenv("FEDFAIR_FAULT")

    # a crash in the middle of writing round 4: the server's marker and files of ranks 0-2 are there
    # (claiming round 4), agent 3's file is torn. No rank may resume from it alone.
    src, dst = ckpt.round_dir(2), ckpt.round_dir(4)
    dst.mkdir()
    for name in ["server.pt", "agent_0001.pt", "agent_0002.pt"]:
        state = torch.load(src / name, weights_only=True)
        state["round"] = 4
        torch.save(state, dst / name)
    (dst / "agent_0003.pt").write_bytes((src / "agent_0003.pt").read_bytes()[:100])
    shutil.copy(src / MARKER, dst / MARKER)

    resumed = run_local(config(tmp_path, "hung", "run.resume=true"))
    assert_same_run(ref_dir, ref, run_dir, resumed)


def test_a_finished_run_is_extended_with_run_resume(reference, tmp_path):
    ref_dir, ref = reference
    run_local(config(tmp_path, "short", f"run.rounds={ROUNDS // 2}"))
    extended = run_local(config(tmp_path, "short", "run.resume=true"))
    assert_same_run(ref_dir, ref, tmp_path / "short", extended)


def test_resume_with_other_settings_is_refused(reference, tmp_path):
    ref_dir, _ = reference
    shutil.copytree(ref_dir, tmp_path / "ref")
    with pytest.raises(RuntimeError, match=r"run.resume: the checkpoints in .* were written by a run with other "
                                           r"settings \(round 8: mechanism.beta \(1.0 in the checkpoint, 2.0 now\)\)"):
        run_local(config(tmp_path, "ref", "run.resume=true", "mechanism.beta=2"))


def test_resuming_next_to_truncated_checkpoints_says_which_file_and_round(reference, tmp_path, capfd):
    """A truncated server checkpoint is reported (file, round) and the resume takes the round before; with
    every server checkpoint truncated the resume says why it starts from round 1. Both end as the reference."""
    ref_dir, ref = reference
    run_dir = tmp_path / "ref"
    shutil.copytree(ref_dir, run_dir)
    ckpt = Checkpointer(config(tmp_path, "ref"), 0)

    def truncate(t: int) -> Path:
        path = ckpt.round_dir(t) / "server.pt"
        path.write_bytes(path.read_bytes()[:100])
        return path

    newest = truncate(ROUNDS)
    capfd.readouterr()
    resumed = run_local(config(tmp_path, "ref", "run.resume=true"))
    err = [line for line in capfd.readouterr().err.splitlines() if line.startswith("fedfair:")]
    assert err[0].startswith(f"fedfair: warning: checkpoint {newest} (round {ROUNDS}) cannot be read (truncated or "
                             "corrupt? ") and err[0].endswith("): that round does not count")
    assert err[1:] == [f"fedfair: resuming after round {ROUNDS - EVERY} from {ckpt.round_dir(ROUNDS - EVERY)}"]
    assert_same_run(ref_dir, ref, run_dir, resumed)

    for t in (ROUNDS, ROUNDS - EVERY):
        truncate(t)
    resumed = run_local(config(tmp_path, "ref", "run.resume=true"))
    err = [line for line in capfd.readouterr().err.splitlines() if line.startswith("fedfair:")]
    assert [line.split(" (round ")[0] for line in err[:2]] == [
        f"fedfair: warning: checkpoint {ckpt.round_dir(t)}/server.pt" for t in (ROUNDS, ROUNDS - EVERY)]
    assert err[2:] == [f"fedfair: no checkpoint in {run_dir}/ckpt is complete and readable on every rank (round(s) "
                       f"{ROUNDS}, {ROUNDS - EVERY} on disk; the warnings above say which files failed): starting "
                       "from round 1"]
    assert_same_run(ref_dir, ref, run_dir, resumed)


def test_fault_specs_parse():
    from fedfair.runtime.faults import Fault, parse

    assert parse("rank=2,round=5;rank=0,round=7,attempt=1") == [Fault(2, 5), Fault(0, 7, attempt=1)]
    assert parse("rank=2,round=3,hang") == [Fault(2, 3, hang=True)]
    assert parse("rank=2,round=5,once=/tmp/x") == [Fault(2, 5, attempt=None, once="/tmp/x")]
    with pytest.raises(ValueError, match="FEDFAIR_FAULT='round=3' is invalid"):
        parse("round=3")


def test_resumed_logs_keep_each_round_once(tmp_path):
    from fedfair.runtime.logs import truncate_rounds

    path = tmp_path / "server.csv"
    path.write_text("round,test_acc\n1,0.1\n2,0.2\n3,0.3\n4,0.4\n5,0.")  # round 5 torn by the crash
    truncate_rounds(path, 3)
    assert path.read_text() == "round,test_acc\n1,0.1\n2,0.2\n3,0.3\n"
