"""fedfair.methods is the one source of what a method is: the config, the strategies, the sweep,
compare and the report all take names, labels, order and the method facts from it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fedfair import methods
from fedfair.config import ConfigError, load_config
from fedfair.experiments.compare import parse_args as compare_args
from fedfair.experiments.plan import run_name
from fedfair.experiments.report.runs import grids
from fedfair.experiments.runs import Run
from fedfair.methods import METHODS, NAMES, REFERENCE
from fedfair.strategies import REGISTRY

ROOT = Path(__file__).resolve().parents[1]


def test_every_method_has_its_facts_and_a_distinct_table_position():
    for m in METHODS:
        assert m.name and m.label and isinstance(m.order, int)
        assert all(isinstance(v, bool) for v in (m.uses_beta, m.needs_validation, m.communicates))
    assert sorted(m.order for m in METHODS) == list(range(len(METHODS)))
    assert methods.info(REFERENCE).order == 0 and not methods.info(REFERENCE).communicates
    with pytest.raises(KeyError, match="registered: cgsv"):
        methods.info("fedprox")


def test_the_strategies_are_the_registered_classes_with_the_registered_facts():
    assert list(REGISTRY) == list(NAMES)
    for m in METHODS:
        cls = REGISTRY[m.name]
        assert cls.name == m.name and cls.info is m
        assert (cls.communicates, cls.needs_validation) == (m.communicates, m.needs_validation)


def test_the_config_accepts_exactly_the_registered_names():
    for name in NAMES:
        assert load_config(None, [f"mechanism.method={name}"]).mechanism.method == name
    with pytest.raises(ConfigError, match="one of " + ", ".join(NAMES)):
        load_config(None, ["mechanism.method=fedprox"])


def fake_run(method: str, beta: float) -> Run:
    summary = {"method": method, "beta": beta, "dataset": "digits", "agents": 3, "rounds": 2, "partition": "cla",
               "seed": 0}
    return Run(Path(f"/nonexistent/{method}-{beta:g}"), summary, {})


def test_report_rows_follow_the_registry_order_and_labels():
    runs = [fake_run(m.name, b) for m in reversed(METHODS) for b in ((2.0, 1.0) if m.uses_beta else (1.0,))]
    (grid,) = grids(runs, [])
    want = [(m.label + (f" β={b:g}" if m.uses_beta else "")) for m in sorted(METHODS, key=lambda m: m.order)
            for b in ((1.0, 2.0) if m.uses_beta else (1.0,))]
    assert [row.label for row in grid.rows] == want
    assert grid.rows[0].method == REFERENCE


def test_sweep_names_and_compare_defaults_come_from_the_registry():
    for m in METHODS:
        name = run_name(load_config(None, [f"mechanism.method={m.name}", "mechanism.beta=2"]), [])
        assert ("-b2-" in name) == m.uses_beta
    order = [m.name for m in sorted(METHODS, key=lambda m: m.order)]
    assert compare_args([]).methods.split(",") == order


def quoted_names(path: Path) -> set[str]:
    """Method names that appear as a whole string literal in a module."""
    tree = ast.parse(path.read_text())
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in NAMES}


def test_a_baseline_is_named_only_in_the_registry_and_its_own_module():
    """Adding a method names it in its module and fedfair/methods.py only (fedfair.strategies lists
    its class, not its name). (cgsv, the config's
    default, and the standalone reference, which the runtime looks for, are named elsewhere too.)"""
    baselines = {m.name: ROOT / Path(*REGISTRY[m.name].__module__.split(".")).with_suffix(".py")
                 for m in METHODS if m.name not in ("cgsv", REFERENCE)}
    for path in sorted((ROOT / "fedfair").rglob("*.py")):
        for name in quoted_names(path) & set(baselines):
            assert path in (ROOT / "fedfair" / "methods.py", baselines[name]), f"{name!r} is named in {path}"
