"""The bad-input suite's cases that need a real job (issue 30): what a user did, and that it ends with ONE
line 'fedfair: error: ...' and exit code 2 through the launcher, losing nothing.

- re-running a run name with run.overwrite = true replaces the old run (without it: tests/test_bad_input.py);
- resuming after a party's file changed stops, naming the file, in the launcher's pre-check and in the job;
- an error raised inside torchrun (a party's file missing on a rank's machine) ends with fedfair's line last,
  exit code 2, torchrun's own report in <run folder>/torchrun.log; the launcher's pre-check catches a bad
  model before torchrun starts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hospital_sites import AGENTS, breast_cancer_sites

from fedfair.config import load_config
from fedfair.runtime.local import run_local

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "configs" / "default.toml"
E = "fedfair: error: "


def files_args(sites: dict, out: Path, name: str, *extra: str) -> list[str]:
    return ["data.dataset=files", f"data.agents={AGENTS}", f"data.agent_files={sites['template']}",
            f"data.test_file={sites['test']}", "train.model=mlp", "train.model_args={hidden=[8]}", f"run.name={name}",
            f"run.out_dir={out}", "run.rounds=2", "run.eval_every=2", "run.progress=false", "data.val_size=0",
            "mechanism.audit=none", *extra]  # the default job's audit set does not apply to files


def launch(*args: str, script: str = "launch/local.sh") -> subprocess.CompletedProcess:
    """The user's command: the launcher with this venv's python (FEDFAIR_PYTHON), tests/ importable."""
    env = dict(os.environ, OMP_NUM_THREADS="1", FEDFAIR_PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    cmd = ["bash", script, *args] if script.endswith(".sh") else [sys.executable, "-m", script, *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    return breast_cancer_sites(tmp_path_factory.mktemp("sites"))


def test_rerunning_a_name_with_overwrite_replaces_the_old_run(tmp_path):
    old = tmp_path / "x"
    (old / "ckpt" / "round_00000009").mkdir(parents=True)
    (old / "ckpt" / "round_00000009" / "server.pt").write_bytes(b"old")
    (old / "summary.json").write_text('{"old": true}\n')
    (old / "agents.csv").write_text("old\n")
    cfg = load_config(DEFAULT, [
        f"run.out_dir={tmp_path}", "run.name=x", "run.overwrite=true", "data.agents=2", "run.rounds=2",
        "run.eval_every=2", "run.progress=false", "run.checkpoint_every=1"])
    run_local(cfg)
    assert not (old / "ckpt" / "round_00000009").exists()
    assert json.loads((old / "summary.json").read_text())["rounds"] == 2
    assert (old / "agents.csv").read_text().startswith("round,agent,")
    assert sorted(p.name for p in (old / "ckpt").iterdir()) == ["round_00000001", "round_00000002"]


def test_resuming_after_a_party_file_changed_stops_naming_the_file(sites, tmp_path):
    run_local(load_config(DEFAULT, files_args(sites, tmp_path, "f", "run.checkpoint_every=1", "run.rounds=1")))
    record = (tmp_path / "f" / "data_files.json").read_text()
    path = sites["template"].replace("{agent}", "2")
    x, y = sites["sites"][2]
    np.savez(path, x=x[:-10], y=y[:-10])  # party 2 re-exported its file
    try:
        expected = (f"data.agent_files: agent 2: '{path}' changed since the run started (sha256 "
                    f"{json.loads(record)['agents']['2']['sha256'][:12]}... in {tmp_path}/f/data_files.json, now ")
        # the launcher's pre-check reads every file (one machine) and stops before torchrun starts
        p = launch("configs/default.toml", *files_args(sites, tmp_path, "f", "run.resume=true"))
        assert p.returncode == 2 and len(p.stderr.splitlines()) == 1, p.stderr
        assert p.stderr.startswith(E + expected) and p.stderr.rstrip().endswith(
            "resuming would train on two data sets; restore the file, or start the run again (run.overwrite = true, "
            "or another run.name)")
        # the job itself checks too (the parties' files are on their own machines in a real consortium)
        with pytest.raises(RuntimeError, match="FileProblem: " + expected.replace("(", r"\(").replace(")", r"\)")
                           .replace(".", r"\.").replace("[", r"\[")):
            run_local(load_config(DEFAULT, files_args(sites, tmp_path, "f", "run.resume=true")))
        assert (tmp_path / "f" / "data_files.json").read_text() == record  # the run's record still says what it read
    finally:
        np.savez(path, x=x, y=y)


def test_a_missing_party_file_inside_torchrun_ends_with_one_line_and_exit_2(sites, tmp_path):
    """What multinode.sh's pre-check cannot see (another machine's file) fails inside the job: fedfair's line
    is the last and only line on stderr, the exit code is 2, torchrun's report is in the run folder."""
    missing = tmp_path / "sites"
    missing.mkdir()
    for f in Path(sites["test"]).parent.iterdir():
        if f.name != "site_3.npz":
            (missing / f.name).write_bytes(f.read_bytes())
    args = files_args({"template": str(missing / "site_{agent}.npz"), "test": str(missing / "test.npz")}, tmp_path, "t")
    p = launch("--standalone", "--nproc_per_node", str(AGENTS + 1), "-m", "fedfair.run",
               "--config", "configs/default.toml", *args, script="fedfair.runtime.torchrun")
    assert p.returncode == 2
    assert p.stderr.splitlines() == [E + f"data.agent_files: agent 3: data file '{missing}/site_3.npz' not found"]
    assert "exitcode: 2" in (tmp_path / "t" / "torchrun.log").read_text()
    # launch/local.sh's pre-check reads every file on this machine: the same line, before torchrun starts
    p = launch("configs/default.toml", *args)
    assert (p.returncode, p.stderr.splitlines()) == (2, [E + f"data.agent_files: agent 3: data file "
                                                             f"'{missing}/site_3.npz' not found"])


def test_a_model_that_returns_logits_stops_in_the_launchers_precheck(sites, tmp_path):
    p = launch("configs/default.toml", *files_args(sites, tmp_path, "m", "train.model=own_model:LogitNet",
                                                   "train.model_args={features=30, classes=2}"))
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1, p.stderr
    assert p.stderr.startswith(E + "train.model = 'own_model:LogitNet': forward on 8 test samples returned values "
                               "whose logsumexp over the classes is ")
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_a_job_started_by_the_launcher_gets_rho_once_its_standalone_reference_has_finished(sites, tmp_path):
    """The outside contract: once a Standalone reference for the same data and seed exists, summary.json
    has rho. The job writes only its own facts; launch/local.sh then runs `python -m fedfair rho`, so the
    order of the two jobs does not matter (here the CGSV job finishes first)."""
    first = launch("configs/default.toml", *files_args(sites, tmp_path, "cg"))
    assert first.returncode == 0, first.stderr[-2000:]
    assert "rho" not in json.loads((tmp_path / "cg" / "summary.json").read_text())  # no reference yet
    second = launch("configs/default.toml", *files_args(sites, tmp_path, "alone", "mechanism.method=standalone"))
    assert second.returncode == 0, second.stderr[-2000:]
    cg = json.loads((tmp_path / "cg" / "summary.json").read_text())
    alone = json.loads((tmp_path / "alone" / "summary.json").read_text())
    a, b = np.asarray(alone["final_acc"]), np.asarray(cg["final_acc"])
    by_hand = None if a.std() == 0 or b.std() == 0 else 100 * float(np.corrcoef(a, b)[0, 1])
    assert cg["rho_available"] is True and alone["rho"] == pytest.approx(100.0)
    assert cg["rho"] == (None if by_hand is None else pytest.approx(by_hand))
