"""Valuations and the Shapley audit in real jobs (digits, gloo, local processes): outputs,
resumes of the stateful valuations, and the audit's numbers against the validation set."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from fedfair.config import load_config
from fedfair.metrics import kendall_tau
from fedfair.runtime.local import run_local
from fedfair.runtime.logs import TIMING
from fedfair.valuations import NAMES

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 4


def config(tmp: Path, name: str, *extra: str):
    return load_config(ROOT / "configs" / "default.toml", [
        f"run.name={name}", f"run.out_dir={tmp}", f"run.rounds={ROUNDS}", "run.eval_every=2", "run.progress=false",
        "data.agents=4", "data.val_size=100", "run.ranks=2", "mechanism.audit=shapley", "mechanism.audit_every=2",
        *extra])


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("valuations")
    for v in NAMES:
        run_local(config(tmp, v, f"mechanism.valuation={v}"))
    run_local(config(tmp, "fedavg", "mechanism.method=fedavg"))  # the audit beside a method without a valuation
    return tmp


@pytest.mark.parametrize("valuation", NAMES)
def test_each_valuation_runs_and_logs_its_time_beside_cosines(runs, valuation):
    s = json.loads((runs / valuation / "summary.json").read_text())
    assert s["valuation"] == valuation
    assert s["valuation_s"] >= 0 and s["cosine_s"] > 0
    assert math.isclose(sum(s["final_r"]), 1.0, rel_tol=1e-4)
    server = rows(runs / valuation / "server.csv")
    assert all(float(r["valuation_s"]) >= 0 and float(r["cosine_s"]) > 0 for r in server)
    # the valuation's validation passes are counted apart from the audit's
    assert s["validation_passes"] > 0 if valuation in ("fedce", "val_gradient", "gtg_shapley") else \
        s["validation_passes"] == 0
    assert s["audit_passes"] == 2 * 2 ** 4  # two audit rounds, every coalition of four uploads


def test_the_audit_column_is_filled_on_audit_rounds_and_its_tau_is_in_the_summary(runs):
    agents = rows(runs / "cosine" / "agents.csv")
    s = json.loads((runs / "cosine" / "summary.json").read_text())
    cumulative = [0.0] * 4
    for r in agents:
        if int(r["round"]) % 2 == 0:
            cumulative[int(r["agent"]) - 1] += float(r["audit"])
        else:
            assert r["audit"] == ""
    assert s["audit_value_by_agent"] == pytest.approx(cumulative, abs=1e-5)
    assert s["audit_tau"] == pytest.approx(kendall_tau(s["final_r"], s["audit_value_by_agent"]))


def test_the_audit_runs_beside_a_baseline_and_its_tau_uses_cgsvs_r(runs):
    s = json.loads((runs / "fedavg" / "summary.json").read_text())
    assert s["valuation"] is None and s["audit_passes"] == 2 * 2 ** 4
    assert s["audit_tau"] == pytest.approx(kendall_tau(s["final_cgsv_r"], s["audit_value_by_agent"]))


def test_the_audit_is_efficient_against_the_validation_accuracy_of_the_round(runs):
    """Σ_i φ_i = U(everyone) − U(w) each audit round, with U the accuracy on the 100 held-out
    images: so the sum of a round's audit column is a difference of two accuracies, a multiple
    of 1/100 (and at most 1 in size)."""
    by_round: dict[int, float] = {}
    for r in rows(runs / "cosine" / "agents.csv"):
        if r["audit"]:
            by_round[int(r["round"])] = by_round.get(int(r["round"]), 0.0) + float(r["audit"])
    assert sorted(by_round) == [2, 4]
    for total in by_round.values():
        assert abs(total) <= 1.0
        assert total * 100 == pytest.approx(round(total * 100), abs=1e-3)


@pytest.mark.parametrize("valuation", ["fedce", "gtg_shapley"])
def test_a_stateful_valuation_resumes_bit_identically(tmp_path, valuation):
    extra = [f"mechanism.valuation={valuation}", "run.checkpoint_every=1"]
    run_local(config(tmp_path, "whole", *extra))
    run_local(config(tmp_path, "halves", *extra, f"run.rounds={ROUNDS // 2}"))
    run_local(config(tmp_path, "halves", *extra, "run.resume=true"))
    for log in ("agents.csv", "server.csv"):
        strip = [{k: v for k, v in r.items() if k not in TIMING} for r in rows(tmp_path / "whole" / log)]
        assert [{k: v for k, v in r.items() if k not in TIMING} for r in rows(tmp_path / "halves" / log)] == strip


def test_classwise_with_a_model_without_a_linear_output_layer_stops_with_one_line(tmp_path):
    import subprocess
    import sys
    model = tmp_path / "nolinear.py"
    model.write_text("import torch\nfrom torch import nn\n"
                     "class M(nn.Module):\n"
                     "    def __init__(self):\n"
                     "        super().__init__()\n"
                     "        self.w = nn.Parameter(torch.zeros(64, 10))\n"
                     "    def forward(self, x):\n"
                     "        return torch.log_softmax(x.flatten(1) @ self.w, dim=1)\n")
    p = subprocess.run([sys.executable, "-m", "fedfair.run", "--config", str(ROOT / "configs" / "default.toml"),
                        "--world-size", "mechanism.valuation=classwise", "train.model=nolinear:M"],
                       capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": f"{tmp_path}:{ROOT}",
                                                                          "PATH": "/usr/bin:/bin"})
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert lines == ["fedfair: error: mechanism.valuation = 'classwise' needs a model whose last layer is a Linear "
                     "with bias onto the 10 classes (last parameter sizes [640])"]
