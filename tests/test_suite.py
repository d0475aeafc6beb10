"""The fairness suite (issue 29, item 2): τ over distinct-truth pairs, the holds rule, the plan,
``--valuations auto``, the runner (failures as data, resume, pause protocol) and the scoreboard
on hand-written run folders whose numbers are worked out here by hand.

The suite names config fields that other work adds (mechanism.valuation, data.feature_noise, ...):
nothing here runs a valuation; runs that need those fields are only planned, never loaded.
"""
from __future__ import annotations

import csv
import itertools
import json
import math
import random
import threading
import time
from pathlib import Path

import pytest
from scipy.stats import kendalltau

from fedfair.config import load_config
from fedfair.data.partitions import cla_class_counts, pow_sizes
from fedfair.experiments.launch import LaunchFailed
from fedfair.experiments.suite import cli
from fedfair.experiments.suite.measures import CellResult, auto_valuations, judge, tau_distinct
from fedfair.experiments.suite.runner import Runner, find_run, make_runner, suite_config
from fedfair.experiments.suite.scenarios import (
    PROFILES,
    SCENARIO_BY_NAME,
    SCENARIOS,
    VALUATIONS,
    SuiteError,
    SuiteRun,
    parse_run_name,
    plan,
)
from fedfair.experiments.suite.scoreboard import keep, report
from fedfair.methods import ACCURACY_REFERENCE, REFERENCE

MNIST = PROFILES["mnist"]
DIGITS = PROFILES["digits"]
ALL = [s.name for s in SCENARIOS]


# ------------------------------------------------------------------ τ over the pairs whose truth differs


def tau_b(x: list[float], y: list[float]) -> float:
    """Kendall's τ-b by its definition: (nc - nd) / sqrt((n0 - ties in x) (n0 - ties in y))."""
    nc = nd = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tx += 1
        elif dy == 0:
            ty += 1
        elif dx * dy > 0:
            nc += 1
        else:
            nd += 1
    return (nc - nd) / math.sqrt((nc + nd + tx) * (nc + nd + ty))


def test_tau_counts_concordant_minus_discordant_pairs_by_hand():
    # pairs (1,2) +1, (1,3) +1, (2,3) -1 -> 1/3
    assert tau_distinct([0.1, 0.3, 0.2], [1, 2, 3]) == pytest.approx(1 / 3)
    assert tau_distinct([0.1, 0.2, 0.3], [3, 2, 1]) == pytest.approx(-1.0)
    # a tie in r counts 0: (1,2) 0, (1,3) +1, (2,3) +1 over 3 pairs
    assert tau_distinct([0.2, 0.2, 0.5], [1, 2, 3]) == pytest.approx(2 / 3)
    # no pair's truth differs, or r missing: undefined, never 0
    assert tau_distinct([0.1, 0.2], [1, 1]) is None
    assert tau_distinct([0.1, float("nan")], [1, 2]) is None
    assert tau_distinct([0.1, 0.2], [1, 2, 3]) is None


def test_tau_with_a_strict_truth_is_tau_b():
    rng = random.Random(7)
    for n in (3, 5, 10):
        for _ in range(20):
            r = [rng.random() for _ in range(n)]
            truth = rng.sample(range(100), n)  # strict: no tied truth
            want = tau_b(r, truth)
            assert tau_distinct(r, truth) == pytest.approx(want)
            assert want == pytest.approx(kendalltau(r, truth).statistic)


def test_tied_truth_counts_only_the_pairs_whose_truth_differs():
    truth = (1, 1, 2, 2, 2)  # replication5: agents 1 and 2 share one shard
    # agent 1 above all of 3-5 (3 discordant), agent 2 below all of them (3 concordant)
    assert tau_distinct([0.5, 0.1, 0.2, 0.3, 0.4], truth) == 0.0
    # every distinct-truth pair concordant: 1, where τ-b cannot reach 1 with tied truth
    r = [0.1, 0.2, 0.3, 0.35, 0.9]
    assert tau_distinct(r, truth) == 1.0 and tau_b(r, list(truth)) < 0.9
    # adversaries6: 9 honest-adversary pairs; one adversary above one honest agent -> (8 - 1) / 9
    assert tau_distinct([0.3, 0.3, 0.2, 0.001, 0.25, 0.001], (1, 1, 1, 0, 0, 0)) == pytest.approx(7 / 9)


# ------------------------------------------------------------------ the holds rule


def passing(scenario: str, rounds: int = 200) -> CellResult:
    sc = SCENARIO_BY_NAME[scenario]
    cell = CellResult(scenario, "cosine", 0, f"{scenario}_cosine_s0", rounds=rounds, worst_gain=-0.5, server_gap=-1.0)
    if sc.truth is not None:
        cell.tau = {50: 0.0, 100: 0.8, 200: 0.8}  # tau at round 50 is reported, not judged
    if sc.kind == "symmetry":
        cell.spread, cell.worst_gain = {100: 3.0, 200: 3.0}, 10.0
    if sc.adversaries:
        cell.adversary_r = {t: [0.002, 0.001, 0.0009] for t in (50, 100, 200)}
        cell.adversary_share = [0.1, 0.0, 0.05]
    return cell


@pytest.mark.parametrize("scenario", ["cla5", "adversaries6", "symmetry5"])
def test_a_cell_at_every_threshold_holds(scenario):
    assert judge(passing(scenario), SCENARIO_BY_NAME[scenario]) == []


@pytest.mark.parametrize("scenario,change,failed", [
    ("cla5", lambda c: c.tau.update({100: 0.79}), ["tau100"]),
    ("cla5", lambda c: c.tau.update({200: 0.79}), ["tau200"]),
    ("cla5", lambda c: setattr(c, "worst_gain", -0.51), ["gain"]),
    ("cla5", lambda c: setattr(c, "server_gap", -1.01), ["server"]),
    ("cla5", lambda c: c.tau.update({100: None}), ["tau100:n/a"]),
    ("cla5", lambda c: setattr(c, "worst_gain", None), ["gain:n/a"]),
    ("cla5", lambda c: setattr(c, "server_gap", None), ["server:n/a"]),
    ("adversaries6", lambda c: c.adversary_r.update({50: [0.001, 0.0021, 0.001]}), ["floor"]),
    ("adversaries6", lambda c: c.adversary_r.update({200: [0.001, 0.001, 0.3]}), ["floor"]),
    ("adversaries6", lambda c: c.adversary_r.update({100: None}), ["floor:n/a"]),
    ("adversaries6", lambda c: setattr(c, "adversary_share", [0.0, 0.101, 0.0]), ["receives"]),
    ("adversaries6", lambda c: setattr(c, "adversary_share", None), ["receives:n/a"]),
    ("adversaries6", lambda c: c.tau.update({200: 0.5}), ["tau200"]),
    ("symmetry5", lambda c: c.spread.update({100: 3.01}), ["spread"]),
    ("symmetry5", lambda c: c.spread.update({200: 4.0}), ["spread"]),
    ("symmetry5", lambda c: setattr(c, "worst_gain", 9.9), ["gain"]),
    ("symmetry5", lambda c: setattr(c, "server_gap", -2.0), ["server"]),
])
def test_each_criterion_fails_alone_and_is_named(scenario, change, failed):
    cell = passing(scenario)
    change(cell)
    assert judge(cell, SCENARIO_BY_NAME[scenario]) == failed


def test_the_checkpoints_follow_the_number_of_rounds():
    cell = passing("cla5", rounds=8)
    cell.tau = {2: -1.0, 4: 0.9, 8: 0.7}
    assert judge(cell, SCENARIO_BY_NAME["cla5"]) == ["tau8"]


# ------------------------------------------------------------------ the plan


def test_the_seed0_plan_is_72_runs_in_the_specified_order():
    runs = plan(MNIST, [0], list(SCENARIOS), list(VALUATIONS))
    assert len(runs) == 8 * 7 + 16 == 72
    block = [REFERENCE, ACCURACY_REFERENCE, "cosine", "loo_cosine", "classwise", "loo_classwise", "fedce",
             "val_gradient", "gtg_shapley"]
    assert [r.name for r in runs[:9]] == [f"cla5_{w}_s0" for w in block]
    assert [r.name for r in runs[::9]] == [f"{s}_{REFERENCE}_s0" for s in ALL]
    assert ALL == ["cla5", "cla10", "pow5", "labelnoise5", "featurenoise5", "replication5", "adversaries6", "symmetry5"]
    for i, sc in enumerate(ALL):
        chunk = runs[9 * i:9 * i + 9]
        assert [r.what for r in chunk] == block and {r.scenario.name for r in chunk} == {sc}
    for r in runs:
        assert parse_run_name(r.name) == (r.scenario.name, r.what, 0)
        method = [o for o in r.overrides if o.startswith("mechanism.method=")]
        if r.what in (REFERENCE, ACCURACY_REFERENCE):
            assert method == [f"mechanism.method={r.what}"] and not any("valuation" in o for o in r.overrides)
        else:
            assert method == ["mechanism.method=cgsv"] and f"mechanism.valuation={r.what}" in r.overrides


def test_seeds_run_one_after_another_and_selected_valuations_keep_their_order():
    runs = plan(MNIST, [1, 2], [SCENARIO_BY_NAME["pow5"], SCENARIO_BY_NAME["cla5"]], ["gtg_shapley", "cosine"])
    assert [r.name for r in runs] == [f"{sc}_{w}_s{s}" for s in (1, 2) for sc in ("pow5", "cla5")
                                      for w in (REFERENCE, ACCURACY_REFERENCE, "cosine", "gtg_shapley")]


def test_run_names_parse_back_and_other_names_do_not():
    assert parse_run_name("cla5_loo_cosine_s12") == ("cla5", "loo_cosine", 12)
    assert parse_run_name(f"symmetry5_{ACCURACY_REFERENCE}_s0") == ("symmetry5", ACCURACY_REFERENCE, 0)
    for bad in ("cla5_cosine", "cla7_cosine_s0", "cla5_bogus_s0", "mnist-cgsv-b1-cla-a5-s0", "cla5_cosine_sx"):
        assert parse_run_name(bad) is None


def overrides(run: SuiteRun) -> dict[str, str]:
    return dict(o.split("=", 1) for o in run.overrides)


def test_scenario_overrides_give_the_specified_data_sizes_and_lr():
    mnist = {r.scenario.name: overrides(r) for r in plan(MNIST, [0], list(SCENARIOS), [])}
    assert mnist["cla5"]["data.shard_size"] == mnist["cla10"]["data.shard_size"] == "600"
    assert mnist["symmetry5"]["data.shard_size"] == "600" and mnist["symmetry5"]["data.partition"] == "disjoint"
    uni_pow = ("pow5", "labelnoise5", "featurenoise5", "replication5")
    assert [mnist[s]["data.pool_size"] for s in uni_pow] == ["3000"] * 4
    assert mnist["adversaries6"]["data.pool_size"] == "3600" and mnist["adversaries6"]["data.agents"] == "6"
    assert mnist["cla10"]["train.lr"] == "0.25" and "train.lr" not in mnist["cla5"]
    rep = mnist["replication5"]
    assert rep["data.copy_of"] == "[0,1,0,0,0]" and rep["data.repeats"] == "[1,1,1,1,2]"
    assert mnist["featurenoise5"]["data.feature_noise"] == "[0.5,1,2,0,0]"
    assert {(m["run.rounds"], m["run.eval_every"]) for m in mnist.values()} == {("200", "200")}
    digits = {r.scenario.name: overrides(r) for r in plan(DIGITS, [0], list(SCENARIOS), [], rounds=8)}
    assert digits["cla5"]["data.shard_size"] == "200" and digits["adversaries6"]["data.pool_size"] == "1200"
    assert "train.lr" not in digits["cla10"] and digits["pow5"]["run.eval_every"] == "8"


def test_runs_on_todays_fields_load_with_the_base_regime(tmp_path):
    """Baselines of the scenarios that need no new field load into the specified Table 4 regime."""
    cases = (("cla5", 5, 0.15), ("cla10", 10, 0.25), ("labelnoise5", 5, 0.15), ("adversaries6", 6, 0.15))
    for name, agents, lr in cases:
        cfg = suite_config(find_run(f"{name}_{REFERENCE}_s1", "mnist"), "mnist", tmp_path)
        t, m, d = cfg.train, cfg.mechanism, cfg.data
        assert (d.dataset, d.agents, d.val_size, cfg.run.seed, cfg.run.rounds, cfg.run.eval_every) == \
            ("mnist", agents, 1000, 1, 200, 200)  # accuracies once, at the end
        assert (t.model, t.batch_size, t.local_steps, t.optimizer, t.lr, t.lr_decay, t.dtype) == \
            ("mnist_cnn", 32, 3, "sgd", lr, 0.977, "float32")
        assert (m.method, m.grad_norm, m.alpha, m.beta, m.mask_scope, m.r_min, m.normalize, m.eps) == \
            (REFERENCE, 0.5, 0.95, 1.0, "layer", 1e-3, "rescale", 1e-7)
        assert (cfg.run.ranks, cfg.comm.timeout_s, cfg.run.progress) == (3, 600.0, False)
        assert cfg.run_dir == tmp_path / f"{name}_{REFERENCE}_s1"
    noisy = suite_config(find_run(f"labelnoise5_{ACCURACY_REFERENCE}_s0", "mnist"), "mnist", tmp_path)
    assert noisy.data.label_noise == [0.2, 0.4, 0.6, 0.0, 0.0]
    adv = suite_config(find_run(f"adversaries6_{REFERENCE}_s0", "mnist"), "mnist", tmp_path).adversary
    assert adv.behaviours == ["honest", "honest", "honest", "free_rider", "scaled", "sign_flipper"]
    for v in VALUATIONS:  # a valuation run is CGSV valuing by it, on the same data as its baselines
        cfg = suite_config(find_run(f"cla10_{v}_s0", "mnist"), "mnist", tmp_path)
        alone = suite_config(find_run(f"cla10_{REFERENCE}_s0", "mnist"), "mnist", tmp_path)
        assert (cfg.mechanism.method, cfg.mechanism.valuation, cfg.train.lr) == ("cgsv", v, 0.25)
        assert cfg.data == alone.data and cfg.train == alone.train
    digits = suite_config(find_run(f"cla5_{REFERENCE}_s0", "digits", rounds=8), "digits", tmp_path)
    assert (digits.train.model, digits.train.lr, digits.mechanism.grad_norm, digits.data.val_size,
            digits.run.rounds, digits.run.eval_every) == ("digits_cnn", 0.3, 1.0, 100, 8, 8)


def test_the_truths_are_the_partitions_orders():
    assert SCENARIO_BY_NAME["cla5"].truth == tuple(cla_class_counts(5, 10))
    assert SCENARIO_BY_NAME["cla10"].truth == tuple(cla_class_counts(10, 10))
    for pool in (3000, 1000):  # pow: shard sizes grow strictly with the agent index (MNIST, digits)
        sizes = pow_sizes(pool, 5)
        assert all(a < b for a, b in zip(sizes, sizes[1:]))
    assert SCENARIO_BY_NAME["adversaries6"].honest == (1, 2, 3)
    assert SCENARIO_BY_NAME["cla10"].honest == tuple(range(1, 11))


def cell(valuation: str, scenario: str, seed: int, holds: bool | None, status: str = "ok") -> CellResult:
    return CellResult(scenario, valuation, seed, f"{scenario}_{valuation}_s{seed}", status=status, holds=holds)


def test_auto_picks_cosine_and_every_valuation_holding_at_least_as_many_seed0_cells():
    held = {"cosine": 3, "loo_cosine": 2, "classwise": 3, "fedce": 5, "val_gradient": 0, "gtg_shapley": 4}
    rows = [cell(v, ALL[i], 0, i < k) for v, k in held.items() for i in range(8)]
    rows += [cell("loo_cosine", s, 1, True) for s in ALL]      # other seeds do not count
    rows[8 * 5 + 7] = cell("gtg_shapley", ALL[7], 0, None, status="failed")  # failed to run: not held
    assert auto_valuations(rows) == ["cosine", "classwise", "fedce", "gtg_shapley"]
    rows = [r for r in rows if r.valuation != "cosine"]
    with pytest.raises(SuiteError, match="no seed-0 cosine run"):
        auto_valuations(rows)
    with pytest.raises(SuiteError, match="--valuations auto"):
        make_runner(Path("x"), "mnist", [0, 1], ALL, "auto", None, select=lambda out: ["cosine"])
    runner = make_runner(Path("x"), "mnist", [1, 2], ["cla5"], "auto", None, select=lambda out: ["cosine", "fedce"])
    assert [r.name for r in runner.runs] == [f"cla5_{w}_s{s}" for s in (1, 2)
                                             for w in (REFERENCE, ACCURACY_REFERENCE, "cosine", "fedce")]


# ------------------------------------------------------------------ the runner


def finishing_launcher(calls: list[str], fail: dict[str, Exception], running: Path | None = None):
    """Writes a finished run folder (config.toml, summary.json), or raises ``fail[name]``."""
    def launch(run, out_dir: Path, timeout_s: float) -> None:
        calls.append(run.name)
        if running is not None:
            assert running.read_text().strip() == run.name  # the running file names the run while it runs
        if run.name in fail:
            raise fail[run.name]
        run.run_dir.mkdir(parents=True, exist_ok=True)
        from fedfair.config import to_toml
        (run.run_dir / "config.toml").write_text(to_toml(run.cfg))
        (run.run_dir / "summary.json").write_text("{}")
    return launch


def baselines(seed: int = 0) -> list[SuiteRun]:
    return plan(DIGITS, [seed], [SCENARIO_BY_NAME[s] for s in ("cla5", "pow5")], [], rounds=2)


def test_failures_are_recorded_the_suite_goes_on_and_a_rerun_resumes(tmp_path):
    runs = baselines()
    names = [r.name for r in runs]
    never = SuiteRun(SCENARIO_BY_NAME["cla5"], "cosine", 0, ("data.agents=0",))  # a config that cannot load
    calls: list[str] = []
    fail = {names[1]: LaunchFailed("exit status 3: x", 3, "fedfair: error: boom"),
            names[2]: RuntimeError("rank 2 failed: ValueError: bad\nTraceback ...")}
    runner = Runner([*runs, never], "digits", tmp_path, launcher="local")
    assert runner.run(finishing_launcher(calls, fail, tmp_path / "RUNNING")) == 1
    assert calls == names  # the run that cannot load is never launched
    with open(tmp_path / "failures.csv", newline="") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert set(rows) == {names[1], names[2], never.name}
    assert (rows[names[1]]["exit_code"], rows[names[1]]["last_line"]) == ("3", "fedfair: error: boom")
    assert (rows[names[2]]["exit_code"], rows[names[2]]["last_line"]) == ("", "rank 2 failed: ValueError: bad")
    assert rows[never.name]["exit_code"] == "" and "data.agents" in rows[never.name]["last_line"]
    assert not (tmp_path / "RUNNING").exists()

    calls.clear()  # resume: only what failed runs again; a success drops its failure row
    runner = Runner(runs, "digits", tmp_path, launcher="local")
    assert runner.run(finishing_launcher(calls, {})) == 0
    assert calls == [names[1], names[2]]
    with open(tmp_path / "failures.csv", newline="") as f:
        assert [r["name"] for r in csv.DictReader(f)] == [never.name]

    calls.clear()  # a finished run planned with another config is a conflict, never overwritten
    other = plan(DIGITS, [0], [SCENARIO_BY_NAME["cla5"]], [], rounds=3)
    assert Runner(other, "digits", tmp_path, launcher="local").run(finishing_launcher(calls, {})) == 1
    assert calls == []


def test_an_interrupted_run_is_run_again_with_overwrite_and_a_free_one_without(tmp_path):
    """The runtime stops a job whose folder holds another run's records; the suite's re-run of an
    interrupted run (records, no summary.json) asks for run.overwrite = true, a fresh run does not."""
    first, second = baselines()[:2]
    (tmp_path / first.name).mkdir(parents=True)
    (tmp_path / first.name / "agents.csv").write_text("round,agent\n1,1\n")  # interrupted after round 1
    seen: dict[str, list[str]] = {}

    def launch(run, out_dir: Path, timeout_s: float) -> None:
        seen[run.name] = list(run.overrides)
        finishing_launcher([], {})(run, out_dir, timeout_s)

    assert Runner([first, second], "digits", tmp_path, launcher="local").run(launch) == 0
    assert "run.overwrite=true" in seen[first.name]
    assert not any(o.startswith(("run.overwrite=", "run.resume=")) for o in seen[second.name])


def test_the_runner_waits_while_the_pause_file_exists(tmp_path):
    pause, running = tmp_path / "suite.pause", tmp_path / "suite.running"
    pause.touch()
    calls: list[str] = []
    runner = Runner(baselines()[:2], "digits", tmp_path / "out", launcher="local", pause_file=pause,
                    running_file=running, poll_s=0.02)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(runner.run(finishing_launcher(calls, {}, running))))
    thread.start()
    time.sleep(0.3)
    assert calls == [] and not running.exists() and thread.is_alive()
    pause.unlink()
    thread.join(10)
    assert result == [0] and len(calls) == 2 and not running.exists()


def test_bad_options_are_one_line_naming_the_option(tmp_path, capsys):
    for argv, option in ((["--scenarios", "cla7"], "--scenarios"), (["--valuations", "cosine,shap"], "--valuations"),
                         (["--seeds", "0,0"], "--seeds"), (["--rounds", "0"], "--rounds")):
        assert cli.main(["run", "--out", str(tmp_path / "o"), "--dry-run", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and option in err and err.startswith("fedfair.suite: error:")
    with pytest.raises(SystemExit) as stop:  # argparse's own checks: one line too
        cli.main(["run", "--out", str(tmp_path / "o"), "--dataset", "cifar"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "--dataset" in err
    assert cli.main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "suite"
    assert cli.main(["run", "--out", str(out), "--dry-run", "--dataset", "digits", "--rounds", "8",
                     "--scenarios", "pow5", "--valuations", "classwise"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("fedfair.suite: dry run, 3 runs")
    assert [ln.split(":")[0] for ln in lines[1::2]] == [f"[{i}/3] pow5_{w}_s0" for i, w in
                                                        enumerate((REFERENCE, ACCURACY_REFERENCE, "classwise"), 1)]
    assert "run.rounds=8 run.eval_every=8 data.partition=pow data.agents=5 data.pool_size=1000" in lines[2]
    assert not out.exists()


def test_the_base_configs_are_the_specified_regimes():
    mnist, digits = load_config(MNIST.config), load_config(DIGITS.config)
    assert (mnist.run.rounds, mnist.run.eval_every, mnist.data.val_size, mnist.train.lr, mnist.mechanism.grad_norm) == \
        (200, 200, 1000, 0.15, 0.5)
    assert (digits.data.val_size, digits.train.lr, digits.mechanism.grad_norm, digits.train.model) == \
        (100, 0.3, 1.0, "digits_cnn")
    # the digits version is the MNIST regime but for the data set's own settings: it follows the base's choices
    for key in ("method", "valuation", "alpha", "beta", "normalize", "eps", "mask_scope", "r_min", "norm_bound",
                "outlier_factor"):
        assert getattr(digits.mechanism, key) == getattr(mnist.mechanism, key), key
    assert mnist.run.eval_every == mnist.run.rounds and digits.run.eval_every == digits.run.rounds


# ------------------------------------------------------------------ the scoreboard, on hand-written run folders

CONFIG_TOML = """[run]
rounds = 4
[data]
dataset = "mnist"
partition = "{partition}"
agents = {agents}
shard_size = 600
pool_size = {pool}
val_size = 1000
[train]
model = "mnist_cnn"
dtype = "float32"
[mechanism]
r_min = 0.001
"""


def write_run(root: Path, name: str, final_acc: list[float], server_acc: float, wall_s: float,
              r: dict[int, list[float]] | None = None, server_extra: dict[str, list[float]] | None = None,
              density: dict[int, list[float]] | None = None, **summary) -> None:
    """A finished run folder as the runtime writes it (the columns the suite reads): 4 rounds."""
    scenario, what, seed = parse_run_name(name)
    sc = SCENARIO_BY_NAME[scenario]
    d = root / name
    d.mkdir(parents=True)
    (d / "config.toml").write_text(CONFIG_TOML.format(partition=sc.partition, agents=sc.agents, pool=600 * sc.agents))
    with open(d / "agents.csv", "w") as f:
        f.write("round,agent,r,density,test_acc\n")
        for t in range(1, 5):
            for i in range(sc.agents):
                f.write(f"{t},{i + 1},{'' if r is None else r[t][i]},{'' if density is None else density[t][i]},\n")
    with open(d / "server.csv", "w") as f:
        extra = server_extra or {}
        f.write(",".join(["round", "test_acc", *extra]) + "\n")
        for t in range(1, 5):
            f.write(",".join([str(t), "", *(str(v[t - 1]) for v in extra.values())]) + "\n")
    method = what if what in (REFERENCE, ACCURACY_REFERENCE) else "cgsv"
    (d / "summary.json").write_text(json.dumps({
        "method": method, "dataset": "mnist", "partition": sc.partition, "agents": sc.agents, "rounds": 4,
        "seed": seed, "final_acc": final_acc, "server_acc": server_acc, "wall_s": wall_s, "rho": None,
        "rho_available": False, "reference_key": f"{scenario}-{seed}", **summary}))


def pearson(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return 100 * cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


CLA5_ALONE = [0.20, 0.40, 0.60, 0.70, 0.90]
CLA5_COSINE = [0.25, 0.45, 0.62, 0.72, 0.88]
CLA5_CLASSWISE = [0.21, 0.41, 0.61, 0.71, 0.91]


@pytest.fixture
def suite_runs(tmp_path) -> Path:
    root = tmp_path / "suite"
    up = [0.1, 0.15, 0.2, 0.25, 0.3]
    for seed in (0, 1):
        write_run(root, f"cla5_{REFERENCE}_s{seed}", CLA5_ALONE, 0.5, 10.0)
        write_run(root, f"cla5_{ACCURACY_REFERENCE}_s{seed}", [0.85] * 5, 0.85, 12.0)
    # tau: round 1 (3 ties in r, 2 discordant, 5 concordant) 0.3; round 2 1.0; round 4 (4,5 swapped) 0.8
    cos_r = {1: [0.1, 0.2, 0.3, 0.2, 0.2], 2: up, 3: up, 4: [0.1, 0.15, 0.2, 0.3, 0.25]}
    write_run(root, "cla5_cosine_s0", CLA5_COSINE, 0.86, 20.0, cos_r, valuation_s=2.0, cosine_s=2.0)
    write_run(root, "cla5_cosine_s1", CLA5_CLASSWISE, 0.86, 20.0, {t: up for t in range(1, 5)})
    write_run(root, "cla5_classwise_s0", CLA5_CLASSWISE, 0.845, 30.0, {1: [0.2] * 5, 2: up, 3: up, 4: up},
              server_extra={"valuation_s": [1.0, 1.0, 0.5, 0.5], "cosine_s": [0.25] * 4})
    (root / "failures.csv").write_text("name,exit_code,last_line,seconds,when\n"
                                       "cla5_loo_cosine_s0,1,fedfair: error: boom,3.0,2026-12-03T00:00:00\n"
                                       f"symmetry5_{ACCURACY_REFERENCE}_s0,,timed out,9.0,2026-12-03T00:00:00\n")
    write_run(root, f"adversaries6_{REFERENCE}_s0", [0.8, 0.8, 0.8, 0.5, 0.5, 0.5], 0.5, 10.0)
    write_run(root, f"adversaries6_{ACCURACY_REFERENCE}_s0", [0.1] * 6, 0.10, 10.0)
    adv = [0.33, 0.33, 0.33, 0.001, 0.002, 0.001]
    # densities: honest agents average 0.8; the adversaries 0.04 (0.16 in round 1 only), 0 and 0.02
    dens = {1: [1.0, 0.6, 0.8, 0.16, 0.0, 0.02], 2: [0.6, 1.0, 0.8, 0.0, 0.0, 0.02],
            3: [1.0, 0.6, 0.8, 0.0, 0.0, 0.02], 4: [0.6, 1.0, 0.8, 0.0, 0.0, 0.02]}
    write_run(root, "adversaries6_cosine_s0", [0.85, 0.796, 0.9, 0.1, 0.1, 0.1], 0.9, 20.0,
              {1: adv, 2: adv[:4] + [0.0021, 0.001], 3: adv, 4: adv}, density=dens)
    write_run(root, f"symmetry5_{REFERENCE}_s0", [0.2] * 5, 0.2, 10.0)
    write_run(root, "symmetry5_cosine_s0", [0.35] * 5, 0.9, 20.0,
              {1: [0.2] * 5, 2: [0.1, 0.2, 0.3, 0.2, 0.2], 3: [0.2] * 5, 4: [0.1, 0.1, 0.1, 0.1, 0.5]})
    return root


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {r["run"]: r for r in csv.DictReader(f)}


def test_the_scoreboard_gives_the_hand_computed_numbers(suite_runs, tmp_path):
    out = tmp_path / "report"
    written = report([suite_runs], out, "python -m fedfair suite report suite --out report")
    rows = read_rows(out / "scoreboard.csv")
    assert list(rows) == ["cla5_cosine_s0", "cla5_loo_cosine_s0", "cla5_classwise_s0", "adversaries6_cosine_s0",
                          "symmetry5_cosine_s0", "cla5_cosine_s1"]  # seed, scenario, valuation order
    c = rows["cla5_cosine_s0"]
    assert [float(c[k]) for k in ("tau1", "tau2", "tau4")] == pytest.approx([0.3, 1.0, 0.8])
    assert float(c["worst_gain"]) == pytest.approx(-2.0)   # agent 5: 88 against 90 alone
    assert float(c["server_gap"]) == pytest.approx(1.0)    # 86 against FedAvg's 85
    assert float(c["rho"]) == pytest.approx(pearson(CLA5_ALONE, CLA5_COSINE), abs=1e-4)
    assert (c["valuation_time_ratio"], c["wall_ratio"], c["wall_s_per_round"]) == ("1", "1", "5")
    assert c["round_time_ratio"] == "1"  # 20 s / (20 - 2 + 2)
    assert (c["holds"], c["failed"]) == ("false", "gain")
    w = rows["cla5_classwise_s0"]
    assert [float(w[k]) for k in ("tau1", "tau2", "tau4")] == [0.0, 1.0, 1.0]
    assert float(w["worst_gain"]) == pytest.approx(1.0) and float(w["server_gap"]) == pytest.approx(-0.5)
    assert float(w["valuation_time_ratio"]) == pytest.approx(3.0)  # from server.csv: 3.0 s over 1.0 s
    assert float(w["wall_ratio"]) == pytest.approx(1.5) and (w["holds"], w["failed"]) == ("true", "")
    # rule 5's cost is the same run's: 30 s / (30 - 3 + 1), not 30 s over another run's 20 s
    assert float(w["round_time_ratio"]) == pytest.approx(30 / 28, abs=1e-5)
    f = rows["cla5_loo_cosine_s0"]
    assert (f["status"], f["error"], f["holds"]) == ("failed", "exit status 1: fedfair: error: boom", "")
    a = rows["adversaries6_cosine_s0"]
    assert float(a["tau4"]) == 1.0 and float(a["worst_gain"]) == pytest.approx(-0.4)
    assert float(a["server_gap"]) == pytest.approx(80.0) and a["adv_r2"] == "0.001 0.0021 0.001"
    assert [float(x) for x in a["adv_share"].split()] == pytest.approx([0.05, 0.0, 0.025])  # 0.04, 0, 0.02 / 0.8
    assert (a["holds"], a["failed"]) == ("false", "floor")
    s = rows["symmetry5_cosine_s0"]
    assert (s["tau4"], float(s["spread2"]), float(s["spread4"])) == ("", 3.0, 5.0)
    assert float(s["worst_gain"]) == pytest.approx(15.0)
    assert (s["server_gap"], s["failed"]) == ("", "spread server:n/a")  # its FedAvg failed to run
    assert rows["cla5_cosine_s1"]["holds"] == "true"

    md = (out / "scoreboard.md").read_text()
    assert md.splitlines()[5] == "python -m fedfair suite report suite --out report"
    assert "precision float32" in md and "600 training samples per agent" in md and "validation set 1000" in md
    assert "seeds by valuation: cosine: 0, 1; loo_cosine, classwise: 0." in md
    assert "| cosine | ✗ gain (1/2) | ✗ floor | ✗ spread server:n/a | 0/3 | 1/4 | 1.00 | 1.00 |" in md
    assert "| classwise | ✓ | – | – | 1/1 | 1/1 | 3.00 | 1.07 |" in md
    assert "| loo_cosine | failed to run | – | – | 0/1 | 0/1 |  |  |" in md
    assert "- classwise: 1 cells held against cosine's 0 (1 cells, seeds 0), round time 1.07x cosine's" in md
    assert "**Beat cosine: classwise.**" in md
    assert f"symmetry5_{ACCURACY_REFERENCE}_s0: timed out" in md
    assert "| cla5_cosine_s0 |" not in md and "| cosine | 0 | 0.30 | 1.00 | 0.80 | -2.0 | 1.0 |" in md
    assert (out / "tau_over_rounds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" or not written["figure"]


def test_kept_records_regenerate_the_same_scoreboard(suite_runs, tmp_path):
    first = tmp_path / "a"
    report([suite_runs], first, "cmd")
    kept = keep([suite_runs], tmp_path / "docs")
    assert len(kept) == 12
    for d in kept:
        assert sorted(p.name for p in d.iterdir()) == ["agents.csv", "config.toml", "server.csv", "summary.json"]
    assert (tmp_path / "docs" / "runs" / "failures.csv").is_file()
    second = tmp_path / "b"
    report([tmp_path / "docs" / "runs"], second, "cmd")
    assert (first / "scoreboard.csv").read_text() == (second / "scoreboard.csv").read_text()
    assert (first / "scoreboard.md").read_text() == (second / "scoreboard.md").read_text()
