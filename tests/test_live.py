"""run.tensorboard = true: the server's rows as TensorBoard events, read back and compared with the CSVs."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from fedfair.config import load_config
from fedfair.run import main
from fedfair.runtime.local import run_local

ROOT = Path(__file__).resolve().parents[1]
AGENTS, ROUNDS = 2, 4


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    pytest.importorskip("tensorboard")
    tmp = tmp_path_factory.mktemp("tb")
    cfg = load_config(ROOT / "configs" / "default.toml", [
        "run.name=tb", f"run.out_dir={tmp}", f"run.rounds={ROUNDS}", "run.eval_every=2", "run.progress=false",
        f"data.agents={AGENTS}", "run.tensorboard=true"])
    run_local(cfg)
    return tmp / "tb"


def test_events_hold_the_csv_values(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for i in range(1, AGENTS + 1):
        assert {f"{m}/agent_{i}" for m in ("r", "q", "density", "bytes_up", "bytes_down", "test_acc")} <= tags
    assert "server/test_acc" in tags

    def series(tag):
        return {e.step: e.value for e in events.Scalars(tag)}

    agents = list(csv.DictReader(open(run_dir / "agents.csv")))
    for row in agents:
        i, t = row["agent"], int(row["round"])
        for m in ("r", "q", "density", "bytes_up", "bytes_down"):
            assert series(f"{m}/agent_{i}")[t] == pytest.approx(float(row[m]), rel=1e-5)
        if row["test_acc"]:
            assert series(f"test_acc/agent_{i}")[t] == pytest.approx(float(row["test_acc"]), rel=1e-5)
    # accuracy only on evaluation rounds (2 and 4), every round for the rest
    assert sorted(series("test_acc/agent_1")) == [2, 4] and sorted(series("r/agent_1")) == [1, 2, 3, 4]
    server = list(csv.DictReader(open(run_dir / "server.csv")))
    acc = series("server/test_acc")
    assert {int(r["round"]): pytest.approx(float(r["test_acc"]), rel=1e-5) for r in server if r["test_acc"]} == acc


def test_missing_tensorboard_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were not installed
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "6")
    with pytest.raises(SystemExit) as e:
        main(["--config", str(ROOT / "configs" / "default.toml"), "run.tensorboard=true"])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "fedfair: error: run.tensorboard = true needs the tensorboard package: pip install tensorboard "
        "(or pip install 'fedfair[tensorboard]'), or set run.tensorboard = false"]
