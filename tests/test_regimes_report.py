"""The regime ablation's report on hand-made run folders: pairing, ρ, τ and the IR gaps by hand."""
from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from fedfair.config import load_config, to_toml
from fedfair.runtime.logs import reference_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "results" / "regimes"))
import regimes  # noqa: E402  (the study script, next to its results)


def fake(root, name, method, acc, r, *overrides):
    cfg = load_config(None, [f"run.name={name}", f"mechanism.method={method}", "data.agents=3",
                             "data.partition=cla", *overrides])
    d = root / "m3cla" / name
    d.mkdir(parents=True)
    (d / "config.toml").write_text(to_toml(cfg))
    (d / "summary.json").write_text(json.dumps({
        "method": method, "seed": cfg.run.seed, "rounds": 2, "final_acc": acc, "final_r": r, "server_acc": max(acc),
        "rho": None, "rho_r": None, "reference_key": reference_key(cfg), "wall_s": 1.0}))
    with open(d / "agents.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "agent", "r"])
        for t in (1, 2):
            for i, x in enumerate(r):
                w.writerow([t, i + 1, x])


def test_regimes_table_by_hand(tmp_path):
    fake(tmp_path, "sa", "standalone", [0.5, 0.7, 0.9], [math.nan] * 3, "mechanism.normalize=clip")
    fake(tmp_path, "cg", "cgsv", [0.8, 0.85, 0.88], [0.2, 0.5, 0.3], "mechanism.normalize=clip")
    # a rescale run has no standalone reference here (its key differs): no ρ, no gains
    fake(tmp_path, "cg2", "cgsv", [0.8, 0.8, 0.9], [0.1, 0.2, 0.7], "mechanism.eps=0")
    t = regimes.table(regimes.load_runs([tmp_path])).set_index("run")
    clip, exact = t.loc["cg"], t.loc["cg2"]
    assert clip["aggregation"] == "clip at Γ" and exact["aggregation"] == "rescale ε=0"
    assert clip["r_order"] == "1<3<2" and exact["r_order"] == "1<2<3"
    # Kendall's tau of r against the CLA contribution order 1 < 2 < 3: pairs (1,2) +, (1,3) +, (2,3) -
    assert clip["tau_r"] == pytest.approx(1 / 3) and exact["tau_r"] == pytest.approx(1.0)
    a, b = [0.5, 0.7, 0.9], [0.8, 0.85, 0.88]
    ma, mb = sum(a) / 3, sum(b) / 3
    want = 100 * sum((x - ma) * (y - mb) for x, y in zip(a, b)) / math.sqrt(
        sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    assert clip["rho"] == pytest.approx(want)
    assert clip["best_gain"] == pytest.approx(-2.0) and clip["worst_gain"] == pytest.approx(-2.0)
    assert math.isnan(exact["rho"]) and math.isnan(exact["best_gain"])  # pandas holds None as NaN
    assert pd.isna(clip["fedavg_server"])  # no FedAvg run yet
    # FedAvg of the same data and training (its aggregation settings do not matter: raw mean)
    fake(tmp_path, "fa", "fedavg", [0.93, 0.93, 0.93], [1 / 3] * 3, "mechanism.eps=0.5")
    t = regimes.table(regimes.load_runs([tmp_path])).set_index("run")
    assert t.loc["cg", "fedavg_server"] == pytest.approx(93.0) and t.loc["cg2", "fedavg_server"] == pytest.approx(93.0)
    assert regimes.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "regimes.md").read_text()
    assert "| 0.15 (0.977) | clip at Γ | float32 | full | 0 | 80.0 / 85.0 / 88.0 | 88.0 | 93.0 |" in md
    # a run without a standalone reference shows dashes, not "nan"
    assert "| 0.15 (0.977) | rescale ε=0 | float32 | full | 0 | 80.0 / 80.0 / 90.0 | 90.0 | 93.0 | – |" in md
    assert "nan" not in md


def test_contribution_order_with_label_noise():
    row = {"agents": 5, "label_noise": [0.2, 0.4, 0.6]}
    assert regimes.contribution(row) == pytest.approx([0.8, 0.6, 0.4, 1.0, 1.0])
    # by hand: pairs with agent 1, 2 or 3 against 4 or 5 agree (6), the pairs among 1..3 disagree (3),
    # (4, 5) is tied on both sides: tau_b = (6 - 3) / sqrt(9 * 9)
    assert regimes.kendall_tau([0.1, 0.2, 0.3, 0.4, 0.4], [0.8, 0.6, 0.4, 1.0, 1.0]) == pytest.approx(1 / 3)
    assert regimes.kendall_tau([1.0, 1.0], [0.0, 1.0]) is None


def test_norm_figure_only_for_runs_that_logged_upload_norms(tmp_path):
    fake(tmp_path, "old", "cgsv", [0.8, 0.8, 0.9], [0.1, 0.2, 0.7])
    fake(tmp_path, "new", "cgsv", [0.8, 0.85, 0.88], [0.2, 0.5, 0.3], "mechanism.normalize=clip")
    with open(tmp_path / "m3cla" / "new" / "agents.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "agent", "psi", "r", "upload_norm"])
        for t in (1, 2):
            for i in range(3):
                w.writerow([t, i + 1, 0.1 * i, 0.3, 10.0 ** -(t + i)])
    runs = regimes.load_runs([tmp_path]).set_index("run", drop=False)
    assert not regimes.norm_figure(runs.loc["old"], tmp_path / "old.png") and not (tmp_path / "old.png").exists()
    pytest.importorskip("matplotlib")
    assert regimes.norm_figure(runs.loc["new"], tmp_path / "new.png") and (tmp_path / "new.png").stat().st_size > 0
    assert regimes.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert [p.name for p in (tmp_path / "out").glob("fig_norms_*")] == ["fig_norms_m3cla_lr0.15_clipatG_s0.png"]
    # the same run in float64 gets its own figure instead of overwriting the float32 one
    fake(tmp_path, "new64", "cgsv", [0.8, 0.85, 0.88], [0.2, 0.5, 0.3], "mechanism.normalize=clip",
         "train.dtype=float64")
    (tmp_path / "m3cla" / "new64" / "agents.csv").write_text((tmp_path / "m3cla" / "new" / "agents.csv").read_text())
    assert regimes.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("fig_norms_*")) == [
        "fig_norms_m3cla_lr0.15_clipatG_s0.png", "fig_norms_m3cla_lr0.15_clipatG_s0_float64.png"]


def test_over_seeds_mean_and_sd_by_hand(tmp_path):
    # two seeds of one configuration, each paired with its own seed's standalone; one single-seed run
    for seed, acc, r in ((0, [0.8, 0.85, 0.88], [0.2, 0.5, 0.3]), (1, [0.7, 0.8, 0.95], [0.1, 0.2, 0.7])):
        fake(tmp_path, f"sa{seed}", "standalone", [0.5, 0.7, 0.9], [math.nan] * 3, "mechanism.normalize=clip",
             f"run.seed={seed}")
        fake(tmp_path, f"cg{seed}", "cgsv", acc, r, "mechanism.normalize=clip", f"run.seed={seed}")
    fake(tmp_path, "cg-exact", "cgsv", [0.8, 0.8, 0.9], [0.1, 0.2, 0.7], "mechanism.eps=0")
    s = regimes.over_seeds(regimes.table(regimes.load_runs([tmp_path])))
    assert len(s) == 1  # the single-seed configuration is not summarised
    row = s.iloc[0]
    assert row["seeds"] == "0,1" and row["r_orders"] == "1<3<2 ; 1<2<3"
    # server accuracy = max(acc) in the fakes: 88 and 95 -> mean 91.5, sd |88 - 95| / sqrt(2)
    assert row["server_acc"] == pytest.approx(91.5) and row["server_acc_sd"] == pytest.approx(7 / math.sqrt(2))
    # tau: 1/3 (seed 0, see above) and 1 (seed 1); best gain: 88 - 90 = -2 and 95 - 90 = +5
    assert row["tau_r"] == pytest.approx(2 / 3) and row["best_gain"] == pytest.approx(1.5)
    # worst gain: min(80-50, 85-70, 88-90) = -2 and min(70-50, 80-70, 95-90) = +5
    assert row["worst_gain"] == pytest.approx(1.5) and row["worst_gain_sd"] == pytest.approx(7 / math.sqrt(2))
    assert math.isnan(row["rho_r"]) and row["rho_r_n"] == 0
    assert regimes.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "regimes.md").read_text()
    assert "| m3cla | 0.15 (0.977) | clip at Γ | float32 | full | 0,1 | 91.5 ± 4.9 | – |" in md


def write_rounds(run_dir, acc_by_round, r_by_round, server_by_round=None):
    """agents.csv with test_acc at evaluated rounds (and an unevaluated round 1), plus server.csv."""
    with open(run_dir / "agents.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "agent", "r", "test_acc"])
        for i in range(3):
            w.writerow([1, i + 1, 1 / 3, ""])
        for t in sorted(acc_by_round):
            for i, (a, x) in enumerate(zip(acc_by_round[t], r_by_round[t])):
                w.writerow([t, i + 1, x, a])
    if server_by_round is not None:
        with open(run_dir / "server.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["round", "test_acc"])
            w.writerow([1, ""])
            for t, a in sorted(server_by_round.items()):
                w.writerow([t, a])


def test_every_evaluated_round_by_hand(tmp_path):
    fake(tmp_path, "sa", "standalone", [0.5, 0.7, 0.9], [math.nan] * 3, "mechanism.normalize=clip")
    fake(tmp_path, "cg", "cgsv", [0.8, 0.85, 0.88], [0.2, 0.5, 0.3], "mechanism.normalize=clip")
    write_rounds(tmp_path / "m3cla" / "sa", {2: [0.4, 0.6, 0.8], 4: [0.5, 0.7, 0.9]}, {2: [0.0] * 3, 4: [0.0] * 3})
    # round 2: r ordered (tau 1), every agent above alone; round 4: agent 3 below alone, tau 1/3
    write_rounds(tmp_path / "m3cla" / "cg", {2: [0.6, 0.7, 0.85], 4: [0.8, 0.85, 0.88]},
                 {2: [0.1, 0.3, 0.6], 4: [0.2, 0.5, 0.3]}, {2: 0.86, 4: 0.89})
    e = regimes.eval_rounds(regimes.load_runs([tmp_path]))
    assert e["round"].tolist() == [2, 4]  # round 1 was not evaluated
    r2, r4 = e.iloc[0], e.iloc[1]
    assert r2["server_acc"] == pytest.approx(86.0) and r4["server_acc"] == pytest.approx(89.0)
    assert r2["mean_acc"] == pytest.approx(215 / 3) and r2["tau_r"] == pytest.approx(1.0)
    assert r4["tau_r"] == pytest.approx(1 / 3)
    # gains at round 2: 20, 10, 5 (best = agent 3: +5, worst +5); at round 4: 30, 15, -2
    assert r2["best_gain"] == pytest.approx(5.0) and r2["worst_gain"] == pytest.approx(5.0)
    assert r4["best_gain"] == pytest.approx(-2.0) and r4["worst_gain"] == pytest.approx(-2.0)
    assert regimes.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "rounds.md").read_text()
    assert "| 0.15 (0.977) | clip at Γ | float32 | full | 0 | 2 | 86.0 | 71.7 | 1.00 | 5.0 | 5.0 |" in md
    assert "| 0.15 (0.977) | clip at Γ | float32 | full | 0 | 4 | 89.0 | 84.3 | 0.33 | -2.0 | -2.0 |" in md


def test_committed_rows_kept_and_completed_by_a_later_standalone(tmp_path):
    import shutil
    logs, out = tmp_path / "logs", tmp_path / "out"
    fake(logs, "cg", "cgsv", [0.8, 0.85, 0.8812], [0.2, 0.3, 0.5], "mechanism.normalize=clip")
    write_rounds(logs / "m3cla" / "cg", {2: [0.8, 0.85, 0.8812]}, {2: [0.2, 0.3, 0.5]}, {2: 0.9})
    assert regimes.main([str(logs), "--out", str(out)]) == 0
    first = pd.read_csv(out / "regimes.csv")
    assert first.loc[0, "acc"] == "80.0 / 85.0 / 88.1" and pd.isna(first.loc[0, "standalone"])
    # regenerating with every run at hand replaces every committed row: the same table
    assert regimes.main([str(logs), "--committed", str(out), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "regimes.csv").read_text() == (out / "regimes.csv").read_text()
    # the CGSV folder is lost; its Standalone and another CGSV run are made later
    shutil.rmtree(logs / "m3cla" / "cg")
    fake(logs, "sa", "standalone", [0.5, 0.7, 0.87], [math.nan] * 3, "mechanism.normalize=clip")
    fake(logs, "cg2", "cgsv", [0.8, 0.8, 0.9], [0.1, 0.2, 0.7], "mechanism.eps=0")
    assert regimes.main([str(logs), "--committed", str(out), "--out", str(out)]) == 0
    t = pd.read_csv(out / "regimes.csv").set_index("run")
    assert sorted(t.index) == ["cg", "cg2"]
    cg = t.loc["cg"]
    assert cg["standalone"] == "50.0 / 70.0 / 87.0" and cg["r_order"] == "1<2<3"
    # gains from the committed (rounded) accuracies: 80.0 - 50, 85.0 - 70, 88.1 - 87
    assert cg["best_gain"] == pytest.approx(1.1) and cg["worst_gain"] == pytest.approx(1.1)
    a, b = [50.0, 70.0, 87.0], [80.0, 85.0, 88.1]
    ma, mb = sum(a) / 3, sum(b) / 3
    assert cg["rho"] == pytest.approx(100 * sum((x - ma) * (y - mb) for x, y in zip(a, b)) / math.sqrt(
        sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b)))
    md = (out / "regimes.md").read_text()
    assert "--committed" in md and "Standalone references added" in md and "`cg`" in md
    # the lost run's evaluated rounds stay in rounds.csv
    rounds = pd.read_csv(out / "rounds.csv")
    assert rounds["run"].tolist() == ["cg"] and rounds.loc[0, "server_acc"] == pytest.approx(90.0)
    # a missing committed table is one clear error
    assert regimes.main([str(logs), "--committed", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
