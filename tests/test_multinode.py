"""Two torchrun "nodes" on this machine (loopback, c10d rendezvous, --nnodes 2) complete a short run
through launch/multinode.sh, survive a SIGKILLed agent (both nodes restart, the job resumes from
its checkpoint), and give the same result as the same job, uninterrupted, on one node."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from fedfair.config import load_config
from fedfair.runtime.local import run_local

ROOT = Path(__file__).resolve().parents[1]
AGENTS, ROUNDS = 3, 4
OVERRIDES = [f"data.agents={AGENTS}", f"run.rounds={ROUNDS}", "run.eval_every=2", "run.progress=false",
             "run.checkpoint_every=2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_loopback_complete_a_run_through_a_killed_agent(tmp_path):
    port = free_port()
    # rank 2 dies once, in round 3, wherever it runs: the node that hosts it restarts (its restart count
    # becomes 1), the other node restarts with count 0 (a membership change), and all ranks resume
    # from the round-2 checkpoint
    env = dict(os.environ, NNODES="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_ADDR="127.0.0.1",
               RDZV_ID=f"test-{port}", FEDFAIR_PYTHON=sys.executable, OMP_NUM_THREADS="1", MAX_RESTARTS="1",
               FEDFAIR_FAULT=f"rank=2,round=3,once={tmp_path / 'fault-fired'}")
    args = ["bash", str(ROOT / "launch" / "multinode.sh"), "configs/default.toml", "run.name=two_nodes",
            f"run.out_dir={tmp_path}", *OVERRIDES]
    nodes = [subprocess.Popen(args, cwd=ROOT, env=dict(env, NODE_RANK=str(r)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = []
    try:
        for p in nodes:
            outs.append(p.communicate(timeout=400))
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(nodes, outs):
        assert p.returncode == 0, err[-3000:]
    assert (tmp_path / "fault-fired").exists()
    errors = [line for _, err in outs for line in err.splitlines() if line.startswith("fedfair: error:")]
    assert len(errors) == 1 and errors[0].startswith("fedfair: error: agent 2 (rank 2) died in round 3")
    assert sum("fedfair: resuming after round 2" in err for _, err in outs) == 1
    # the server's table is printed by exactly one node
    assert sum("mean acc" in out for out, _ in outs) == 1
    summary = json.loads((tmp_path / "two_nodes" / "summary.json").read_text())
    assert summary["rounds"] == ROUNDS and len(summary["final_acc"]) == AGENTS
    # each node ran two of the four ranks, and the result is the one-node result
    ref = run_local(load_config(ROOT / "configs" / "default.toml",
                                ["run.name=one_node", f"run.out_dir={tmp_path}", *OVERRIDES]))[0]["summary"]
    for key in ("final_acc", "final_r", "final_q", "bytes_down", "bytes_up"):
        assert summary[key] == ref[key], key
