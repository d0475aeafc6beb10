"""fedfair.experiments.reference: which Standalone run is a run's reference, and ρ against it,
on hand-written run folders (ρ by hand: 100·pearson)."""
from __future__ import annotations

import json
import math

import pytest

from fedfair.experiments.reference import NO_REFERENCE, UNDEFINED, fill_rho, references, rho_of
from fedfair.experiments.runs import find_runs


def pearson100(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return 100 * cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def fake(root, name, method, acc, key="k"):
    d = root / name
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"method": method, "final_acc": acc, "server_acc": 0.5,
                                                "rho_r": None, "reference_key": key}))
    return d


def summary(d):
    return json.loads((d / "summary.json").read_text())


def test_fill_rho_does_not_depend_on_which_run_finished_first(tmp_path):
    cg = fake(tmp_path, "b-cgsv", "cgsv", [0.8, 0.85, 0.9])
    other = fake(tmp_path, "c-other", "cgsv", [0.8, 0.85, 0.9], key="other data")
    assert fill_rho(tmp_path) == []  # no reference yet: nothing written, no rho key
    assert "rho" not in summary(cg)
    alone = fake(tmp_path, "a-alone", "standalone", [0.5, 0.7, 0.6])
    assert fill_rho(tmp_path) == [alone, cg]
    s = summary(cg)
    assert s["rho"] == pytest.approx(pearson100([0.5, 0.7, 0.6], [0.8, 0.85, 0.9])) and s["rho_available"]
    assert list(s)[list(s).index("server_acc") + 1: list(s).index("server_acc") + 3] == ["rho", "rho_available"]
    assert summary(alone)["rho"] == pytest.approx(100.0)  # a Standalone run is its own reference
    assert "rho" not in summary(other)
    assert fill_rho(tmp_path) == []  # written once


def test_rho_states(tmp_path):
    fake(tmp_path, "alone", "standalone", [0.5, 0.7, 0.6])
    fake(tmp_path, "flat", "fedavg", [0.8, 0.8, 0.8])
    fake(tmp_path, "lost", "cgsv", [0.8, 0.7, 0.6], key="no standalone")
    runs = {r.name: r for r in find_runs([tmp_path])}
    by_ref = references(list(runs.values()))
    assert rho_of(runs["flat"], by_ref) == (None, UNDEFINED)
    assert rho_of(runs["lost"], by_ref) == (None, NO_REFERENCE)
    assert rho_of(runs["alone"], {}) == (pytest.approx(100.0), "ok")
