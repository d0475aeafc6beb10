"""python -m fedfair sweep and report: a tiny real grid through the local launcher, and the rest on fakes.

One real sweep (digits, 2 agents, 2 rounds: standalone and cgsv β = 1, two runs) is
shared by the tests that need real run folders; failure, conflict, torchrun command lines and
ρ's states are checked with fake launchers and hand-written run folders.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from fedfair.config import load_config, to_toml
from fedfair.experiments import report as rep
from fedfair.experiments import sweep
from fedfair.experiments.report.figures import row_style
from fedfair.runtime.logs import reference_key

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "default.toml")
FIXED = ["data.agents=2", "run.rounds=2", "run.eval_every=1"]
GRID = ["--grid", "mechanism.method=standalone,cgsv", "--grid", "mechanism.beta=1"]
NAMES = ["digits-standalone-cla-a2-s0", "digits-cgsv-b1-cla-a2-s0"]


def sweep_args(out: Path, *extra: str) -> list[str]:
    return ["--config", CONFIG, *GRID, "--out-dir", str(out), "--launcher", "local", *extra, *FIXED]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summaries(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/summary.json")}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "grid"
    rc = sweep.main(sweep_args(out))
    return out, rc


@pytest.fixture(scope="module")
def reported(swept, tmp_path_factory):
    out, _ = swept
    dest = tmp_path_factory.mktemp("report")
    written = rep.report([out], dest)
    return out, dest, written


# ------------------------------------------------------------------ sweep, for real


def test_sweep_runs_every_run_standalone_first_beta_only_for_cgsv(swept):
    out, rc = swept
    assert rc == 0
    manifest = json.loads((out / "sweep.json").read_text())
    assert [r["name"] for r in manifest["runs"]] == NAMES  # standalone is not multiplied by beta, and runs first
    assert [r["status"] for r in manifest["runs"]] == ["done"] * 2
    assert manifest["launcher"] == "local" and manifest["grid"]["mechanism.beta"] == ["1"]
    s = summaries(out)
    assert sorted(s) == sorted(NAMES)
    assert s["digits-cgsv-b1-cla-a2-s0"]["beta"] == 1.0 and s["digits-cgsv-b1-cla-a2-s0"]["rounds"] == 2
    for name in NAMES[1:]:  # the standalone reference was there when they finished
        assert s[name]["rho_available"] is True


def test_rerunning_the_same_command_skips_complete_runs(swept, monkeypatch, capsys):
    out, _ = swept

    def must_not_run(*args, **kwargs):
        raise AssertionError("a complete run was launched again")

    monkeypatch.setitem(sweep.LAUNCHERS, "local", must_not_run)
    assert sweep.main(sweep_args(out)) == 0
    manifest = json.loads((out / "sweep.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["complete"] * 2
    assert "complete, skipped" in capsys.readouterr().out


# ------------------------------------------------------------------ report, on the real runs


def test_report_tables_match_the_summaries(reported):
    out, dest, written = reported
    s = summaries(out)
    md = (dest / "report.md").read_text()
    assert "`test_acc`" in md and "`local_acc`" in md
    t1 = {r["label"]: r for r in read_csv(dest / "table1_accuracy.csv")}
    t1l = {r["label"]: r for r in read_csv(dest / "table1_local_accuracy.csv")}
    t2 = {r["label"]: r for r in read_csv(dest / "table2_rho.csv")}
    t7 = {r["label"]: r for r in read_csv(dest / "table7_rho_r.csv")}
    t8 = {r["label"]: r for r in read_csv(dest / "table8_rho_r_loss.csv")}
    t3 = {r["label"]: r for r in read_csv(dest / "table3_overhead.csv")}
    labels = {"digits-standalone-cla-a2-s0": "Standalone", "digits-cgsv-b1-cla-a2-s0": "CGSV β=1"}
    assert set(t1) == set(labels.values())
    assert set(t2) == {"CGSV β=1"}  # no rho row for standalone against itself
    for name, label in labels.items():
        sm = s[name]
        row = t1[label]
        assert row["partition"] == "cla" and row["seeds"] == "0"
        assert float(row["mean_acc"]) == pytest.approx(100 * sm["mean_acc"])
        assert float(row["max_acc"]) == pytest.approx(100 * sm["max_acc"])
        cell = f"{100 * sm['mean_acc']:.1f} ({100 * sm['max_acc']:.1f})"
        assert row["cell"] == cell and f"| {label} | {cell} |" in md
        local = sm["final_local_acc"]
        assert float(t1l[label]["mean_local_acc"]) == pytest.approx(100 * sum(local) / len(local))
        assert float(t1l[label]["max_local_acc"]) == pytest.approx(100 * max(local))
        assert float(t3[label]["mechanism_s"]) == pytest.approx(sm["mechanism_s"], abs=1e-6)
        assert float(t3[label]["overhead_ratio"]) == pytest.approx(sm["overhead_ratio"], abs=1e-6)
        if name == NAMES[0]:
            continue
        def shown(want):
            return "undefined" if want is None else f"{want:.2f}"

        for table, keys in ((t2, ("rho",)), (t7, ("rho_r_cgsv", "rho_r")), (t8, ("rho_r_loss_cgsv", "rho_r_loss"))):
            for key in keys:
                want = sm[key]
                if want is None:
                    assert table[label][key] == ""
                else:
                    assert float(table[label][key]) == pytest.approx(want, abs=1e-6)
            cell = shown(sm[keys[0]]) if len(keys) == 1 else f"{shown(sm[keys[0]])} (own {shown(sm[keys[1]])})"
            assert table[label]["cell"] == cell
        # cgsv's own r is CGSV's r: the two columns agree
        assert sm["rho_r_cgsv"] == sm["rho_r"] and sm["final_cgsv_r"] == sm["final_r"]
    runs = {r["run"]: r for r in read_csv(dest / "runs.csv")}
    assert set(runs) == set(NAMES)


def test_report_figures_or_notice(reported):
    _, dest, written = reported
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert written.figures == [] and any("matplotlib" in n for n in written.notes)
        return
    names = {p.name for p in written.figures}
    for stem in ("fig_r_", "fig_density_", "fig_dist_to_server_", "fig_final_acc_", "fig_loss_vs_beta_"):
        assert any(n.startswith(stem) for n in names), stem
    for p in written.figures:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_without_matplotlib_still_writes_the_tables(swept, tmp_path, monkeypatch, capsys):
    out, _ = swept
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert rep.main([str(out), "--out", str(tmp_path)]) == 0
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert (tmp_path / "table1_accuracy.csv").is_file() and not list(tmp_path.glob("*.png"))
    assert "matplotlib is not installed" in (tmp_path / "report.md").read_text()


# ------------------------------------------------------------------ sweep, with fakes


def fake_launcher(fail: set[str], calls: list[str]):
    """Writes a finished run folder (config.toml + summary.json) unless the run's name is in ``fail``."""

    def launch(run: sweep.PlannedRun, out_dir: Path, timeout_s: float) -> None:
        calls.append(run.name)
        if run.name in fail:
            raise RuntimeError(f"rank 1 failed: boom in {run.name}")
        run.run_dir.mkdir(parents=True, exist_ok=True)
        (run.run_dir / "config.toml").write_text(to_toml(run.cfg))
        (run.run_dir / "summary.json").write_text(json.dumps({"method": run.cfg.mechanism.method, "mean_acc": 0.5,
                                                              "max_acc": 0.6, "rho_available": False}))

    return launch


def test_a_failed_run_is_reported_and_the_sweep_goes_on_then_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "s"
    args = ["--grid", "mechanism.method=standalone,fedavg,cgsv", "--grid", "mechanism.beta=1,2",
            "--grid", "data.partition=uni,cla", "--out-dir", str(out), "--launcher", "local", "data.agents=3"]
    calls: list[str] = []
    monkeypatch.setitem(sweep.LAUNCHERS, "local", fake_launcher({"digits-cgsv-b1-uni-a3-s0"}, calls))
    assert sweep.main(args) == 1
    assert calls == ["digits-standalone-uni-a3-s0", "digits-fedavg-uni-a3-s0", "digits-cgsv-b1-uni-a3-s0",
                     "digits-cgsv-b2-uni-a3-s0", "digits-standalone-cla-a3-s0", "digits-fedavg-cla-a3-s0",
                     "digits-cgsv-b1-cla-a3-s0", "digits-cgsv-b2-cla-a3-s0"]
    err = capsys.readouterr().err
    assert "digits-cgsv-b1-uni-a3-s0: FAILED" in err and "boom" in err
    manifest = json.loads((out / "sweep.json").read_text())
    status = {r["name"]: r["status"] for r in manifest["runs"]}
    assert status.pop("digits-cgsv-b1-uni-a3-s0") == "failed" and set(status.values()) == {"done"}
    assert "boom" in next(r["error"] for r in manifest["runs"] if r["status"] == "failed")

    calls.clear()  # resume: only the failed run is launched again
    monkeypatch.setitem(sweep.LAUNCHERS, "local", fake_launcher(set(), calls))
    assert sweep.main(args) == 0
    assert calls == ["digits-cgsv-b1-uni-a3-s0"]

    calls.clear()  # a finished run with another config is a conflict, never overwritten
    assert sweep.main(args + ["run.rounds=7"]) == 1
    assert calls == []
    manifest = json.loads((out / "sweep.json").read_text())
    assert {r["status"] for r in manifest["runs"]} == {"conflict"}
    assert "run.rounds" in manifest["runs"][0]["error"]


def test_dry_run_prints_the_torchrun_command_lines_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "never"
    grid = ["--grid", "mechanism.method=standalone,cgsv", "--grid", "mechanism.beta=1,2"]
    assert sweep.main(["--config", CONFIG, *grid, "--out-dir", str(out), "--dry-run", "data.agents=4"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    lines = [ln.strip() for ln in text.splitlines() if "torch.distributed.run" in ln]
    assert len(lines) == 3
    assert lines[0].startswith(f"{sys.executable} -m torch.distributed.run --standalone --nnodes 1 "
                               f"--nproc_per_node 5 -m fedfair.run --config {CONFIG} ")
    assert "mechanism.method=standalone" in lines[0] and f"run.out_dir={out}" in lines[0]
    assert lines[2].endswith(f"mechanism.method=cgsv mechanism.beta=2 run.name=digits-cgsv-b2-cla-a4-s0 "
                             f"run.out_dir={out}")
    # the planned command is what fedfair.run accepts: its overrides load into the planned config
    plan = sweep.build(sweep.parse_args(["--config", CONFIG, *grid, "--out-dir", str(out), "data.agents=4"]), [])
    cmd = sweep.torchrun_command(plan.runs[2])
    cfg = load_config(cmd[cmd.index("--config") + 1], cmd[cmd.index("--config") + 2:])
    assert cfg.run.name == "digits-cgsv-b2-cla-a4-s0" and cfg.mechanism.beta == 2.0 and cfg.data.agents == 4


def test_torchrun_command_starts_run_ranks_processes(tmp_path):
    """run.ranks = P hosts the N agents on P - 1 ranks: the sweep must start P processes, not N + 1."""
    for ranks, nproc in ((0, "5"), (3, "3"), (2, "2")):
        args = ["--config", CONFIG, "--out-dir", str(tmp_path), "data.agents=4", f"run.ranks={ranks}"]
        cmd = sweep.torchrun_command(sweep.build(sweep.parse_args(args), []).runs[0])
        assert cmd[cmd.index("--nproc_per_node") + 1] == nproc


def test_grid_syntax():
    assert sweep.split_values("[0,0.5],[0.1,0]") == ["[0,0.5]", "[0.1,0]"]
    assert sweep.parse_grid(["mechanism.beta=1,inf"]) == [("mechanism.beta", ["1", "inf"])]
    assert sweep.parse_grid(["mechanism.qffl.q=0,2"]) == [("mechanism.qffl.q", ["0", "2"])]  # a method's own table
    for bad in (["beta=1"], ["a.b.c.d=1"], ["mechanism..q=1"],
                ["mechanism.beta=1,,2"], ["mechanism.beta=1", "mechanism.beta=2"], ["run.name=a,b"]):
        with pytest.raises(sweep.SweepError):
            sweep.parse_grid(bad)
    assert sweep.main(["--grid", "mechanism.bogus=1", "--out-dir", "x", "--dry-run"]) == 2
    assert sweep.main(["--grid", "mechanism.qffl_q=1", "--out-dir", "x", "--dry-run"]) == 2  # moved: one line


def test_a_grid_over_a_methods_own_setting(tmp_path):
    runs = sweep.build(sweep.parse_args(["--grid", "mechanism.method=qffl", "--grid", "mechanism.qffl.q=0,2",
                                         "--out-dir", str(tmp_path)]), [])
    assert [(r.name, r.cfg.mechanism.qffl.q) for r in runs.runs] == [
        ("digits-qffl-cla-a5-s0-qffl.q0", 0.0), ("digits-qffl-cla-a5-s0-qffl.q2", 2.0)]


# ------------------------------------------------------------------ report: ρ's states, on hand-made runs


def fake_run(root: Path, name: str, method: str, final_acc: list[float], **summary) -> None:
    cfg = load_config(None, [f"run.name={name}", f"mechanism.method={method}", f"data.agents={len(final_acc)}",
                             f"run.out_dir={root}"])
    d = root / name
    d.mkdir(parents=True)
    (d / "config.toml").write_text(to_toml(cfg))
    with open(d / "agents.csv", "w") as f:
        f.write("round,agent,r,density,dist_to_server\n")
    base = {"method": method, "dataset": "digits", "partition": "cla", "agents": len(final_acc), "rounds": 30,
            "seed": 0, "beta": 1.0, "final_acc": final_acc, "final_local_acc": final_acc,
            "mean_acc": sum(final_acc) / len(final_acc), "max_acc": max(final_acc), "rho": None,
            "rho_available": False, "rho_r": None, "rho_r_loss": None, "mechanism_s": 0.1, "train_s": 1.0,
            "overhead_ratio": 0.1, "bytes_up": 1, "bytes_down": 1, "bytes_down_dense": 2, "wall_s": 1.0,
            "reference_key": reference_key(cfg)}
    base.update(summary)
    (d / "summary.json").write_text(json.dumps(base))


def test_rho_undefined_is_never_zero_and_missing_references_are_computed(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "sa", "standalone", [0.5, 0.7, 0.9], rho=100.0, rho_available=True)
    # finished before the standalone run: the report computes rho from it
    fake_run(runs, "late", "fedavg", [0.6, 0.7, 0.95])
    # zero variance: undefined, written as null with rho_available true
    fake_run(runs, "flat", "cgsv", [0.8, 0.8, 0.8], rho_available=True, rho_r=None, rho_r_loss=-12.5,
             rho_r_cgsv=None, rho_r_loss_cgsv=-12.5)
    # another seed's data: no reference at all
    fake_run(runs, "alone", "dw", [0.6, 0.7, 0.8], seed=1, reference_key="other")
    written = rep.report([runs], tmp_path / "rep", figures=False)
    t2 = {r["label"]: r for r in read_csv(tmp_path / "rep" / "table2_rho.csv")}
    a, b = [0.5, 0.7, 0.9], [0.6, 0.7, 0.95]
    ma, mb = sum(a) / 3, sum(b) / 3
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    want = 100 * cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    assert float(t2["FedAvg"]["rho"]) == pytest.approx(want, abs=1e-4) and t2["FedAvg"]["cell"] == f"{want:.2f}"
    assert t2["CGSV β=1"]["cell"] == "undefined" and t2["CGSV β=1"]["rho"] == ""
    assert t2["DW"]["cell"] == "n/a"
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| CGSV β=1 | undefined (own undefined) |" in md and "| CGSV β=1 | -12.50 (own -12.50) |" in md
    table2 = md.split("**Table 2")[1].split("**Table 7")[0]
    assert "0.00" not in table2 and "| 0 |" not in table2
    assert any("late" in n and "computed by the report" in n for n in written.notes)


# ------------------------------------------------------------------ Fig. 1 benchmark


def test_fig1_benchmark_and_its_report_section(tmp_path):
    spec = importlib.util.spec_from_file_location("fig1", ROOT / "benchmarks" / "fig1_psi_vs_exact.py")
    fig1 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fig1)
    stem = tmp_path / "fig1"
    assert fig1.main(["--agents", "2", "5", "--dims", "200", "--trials", "2", "--repeats", "1",
                      "--out", str(stem)]) == 0
    rows = read_csv(stem.with_suffix(".csv"))
    assert [(r["n"], r["trial"]) for r in rows] == [("2", "0"), ("2", "1"), ("5", "0"), ("5", "1")]
    assert all(float(r["l1"]) >= float(r["l2"]) >= 0 for r in rows)
    assert float(rows[0]["l1"]) < 1e-6  # two agents: ψ is exact up to normalisation
    assert all(r["naive_s"] != "" for r in rows)  # small enough to time by the definition too
    runs = tmp_path / "runs"
    fake_run(runs, "x", "cgsv", [0.5, 0.6])
    rep.report([runs], tmp_path / "rep", fig1=stem.with_suffix(".csv"), figures=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Fig. 1" in md and "| 5 | 200 |" in md


def test_a_validation_size_resolved_inside_the_run_is_not_a_conflict(tmp_path):
    plan = sweep.build(sweep.parse_args(["--grid", "mechanism.method=cffl,cgsv", "--out-dir", str(tmp_path)]), [])
    for run in plan.runs:
        saved = load_config(None, run.overrides + ["data.val_size=150"])  # what fedfair.run writes for cffl
        run.run_dir.mkdir(parents=True)
        (run.run_dir / "config.toml").write_text(to_toml(saved))
        (run.run_dir / "summary.json").write_text("{}")
    status = {r.cfg.mechanism.method: sweep.existing_status(r)[0] for r in plan.runs}
    assert status == {"cffl": "complete", "cgsv": "conflict"}  # cgsv never resolves val_size itself


def test_the_papers_numbers_stand_beside_ours_and_large_gaps_are_flagged(tmp_path):
    runs = tmp_path / "runs"
    acc = [0.1 * (i + 1) for i in range(10)]  # mean 55, max 100: 2 points from the paper's CLA standalone
    fake_run(runs, "sa", "standalone", acc, dataset="mnist", rho=100.0, rho_available=True)
    fake_run(runs, "cg", "cgsv", [0.5] * 10, dataset="mnist", rho_available=True)  # 50 vs the paper's 74
    rep.report([runs], tmp_path / "rep", figures=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    t1 = md.split("**Table 1: mean")[1].split("**Table 1, local")[0]
    assert "| Standalone | 55.0 (100.0) |" in t1 and "| Standalone (paper) | 53 (92) |" in t1
    assert "| CGSV β=1 | 50.0 (50.0) † |" in t1 and "| CGSV β=1 (paper) | 74 (95) |" in t1
    t2 = md.split("**Table 2")[1].split("**Table 7")[0]
    assert "| CGSV β=1 | undefined |" in t2 and "| CGSV β=1 (paper) | 94.54 |" in t2
    rows = read_csv(tmp_path / "rep" / "table1_accuracy.csv")
    assert {r["source"] for r in rows} == {"fedfair", "paper"}


def test_every_table_row_keeps_one_distinct_style_in_all_figure_panels():
    """A method's line must look the same in every partition's panel, and differ from the others'."""
    styles = [tuple(sorted(row_style(i).items())) for i in range(60)]
    assert len(set(styles)) == 60


@pytest.mark.parametrize("fraction", [0.2, 0.1, 0.33])
def test_the_planner_sizes_the_validation_set_from_the_config_without_loading_data(fraction, monkeypatch):
    """The data split's policy (fedfair.data.shards) gives the planner the size the run will hold out;
    for digits and the image sets it is computed from the config, no data set is loaded."""
    import fedfair.data as data
    from fedfair.experiments.plan import shared_val_size

    loaded = data.load_task("digits", seed=0, test_fraction=fraction)
    want = data.validation_size(0, True, loaded.num_train)
    monkeypatch.setattr(data, "load_task", lambda *a, **k: pytest.fail("the planner loaded the data set"))
    cfg = load_config(None, [f"data.test_fraction={fraction}"])
    assert shared_val_size(cfg, ["cgsv", "cffl"]) == [f"data.val_size={want}"]
    assert shared_val_size(load_config(None, ["data.dataset=mnist"]), ["eci"]) == ["data.val_size=1000"]
    assert shared_val_size(cfg, ["cgsv", "fedavg"]) == []
