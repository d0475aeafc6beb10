"""Each method's own settings table ([mechanism.standalone|qffl|cffl|eci]) and the [adversary] section:
typed and validated, seen by the strategy as ``settings``, old keys one clear error, old run folders
still read, checkpoint identities unchanged, and the config and tools still free of torch."""
from __future__ import annotations

import shutil
import subprocess
import sys
import typing
from dataclasses import replace
from pathlib import Path

import pytest

from fedfair.config import MOVED, ConfigError, MechanismConfig, load_config, load_recorded, run_identity
from fedfair.experiments.plan import finished_status
from fedfair.strategies import STRATEGIES, ServerContext, build_strategy
from fedfair.strategies.settings import CFFLSettings, ECISettings, QFFLSettings, StandaloneSettings

ROOT = Path(__file__).resolve().parents[1]
OLD_RUN = ROOT / "docs" / "results" / "mnist5" / "runs" / "mnist-standalone-cla-a5-s0"
"""A run folder recorded before the keys moved (its config.toml has mechanism.standalone_step, ...)."""


def strategy(method: str, *overrides: str):
    cfg = load_config(None, [f"mechanism.method={method}", "data.agents=3", *overrides])
    return build_strategy(cfg, ServerContext(agents=3, dim=6, layer_sizes=[4, 2], shard_sizes=[1, 2, 1]))


@pytest.mark.parametrize("method, override, want", [
    ("standalone", "mechanism.standalone.step=sgd", StandaloneSettings(step="sgd")),
    ("qffl", "mechanism.qffl.q=2.5", QFFLSettings(q=2.5)),
    ("cffl", "mechanism.cffl.alpha=2", CFFLSettings(alpha=2.0)),
    ("eci", "mechanism.eci.permutations=7", ECISettings(permutations=7)),
])
def test_a_strategy_sees_its_own_table(method, override, want):
    assert strategy(method, override).settings == want


def test_a_method_without_settings_has_none():
    assert strategy("fedavg").settings is None and strategy("cgsv").settings is None


def test_each_strategy_declares_the_table_the_config_holds_for_it():
    tables = typing.get_type_hints(MechanismConfig)
    declared = {cls.name: typing.get_type_hints(cls).get("settings") for cls in STRATEGIES}
    assert declared == {cls.name: tables.get(cls.name) for cls in STRATEGIES}
    assert {k: v for k, v in declared.items() if v} == {
        "standalone": StandaloneSettings, "qffl": QFFLSettings, "cffl": CFFLSettings, "eci": ECISettings}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_key_is_one_line_naming_its_new_place(old, tmp_path):
    new = MOVED[old]
    table, leaf = new.rsplit(".", 1)
    want = f"config key {old} has moved to {new} (in a config file: [{table}] {leaf} = ...)"
    value = "['honest']" if old.endswith("behaviours") else ('"sgd"' if old.endswith("step") else "2")
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"{old}={value}"])
    assert str(e.value) == want
    section, key = old.split(".")
    path = tmp_path / "old.toml"
    path.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == want


def test_an_old_run_folder_reads_with_its_keys_moved(tmp_path):
    old = load_recorded(OLD_RUN / "config.toml")
    assert old.mechanism.standalone == StandaloneSettings() and old.adversary.behaviours == []
    text = (OLD_RUN / "config.toml").read_text().replace("qffl_q = 1.0", "qffl_q = 3.0")
    (tmp_path / "config.toml").write_text(text.replace("behaviours = []", "behaviours = ['nan']"))
    moved = load_recorded(tmp_path / "config.toml")
    assert moved.mechanism.qffl.q == 3.0 and moved.adversary.behaviours == ["nan"]


def test_the_planner_takes_an_old_finished_run_as_complete(tmp_path):
    """A sweep or compare with --reuse finds runs recorded before the keys moved complete, not in conflict."""
    shutil.copytree(OLD_RUN, tmp_path / OLD_RUN.name)
    cfg = load_recorded(OLD_RUN / "config.toml")
    planned = replace(cfg, run=replace(cfg.run, name=OLD_RUN.name, out_dir=str(tmp_path)))
    assert finished_status(planned) == ("complete", None)


def test_the_identity_keeps_the_old_layout():
    """Checkpoints (and reference keys) written before the keys moved still fit: the identity names the
    moved settings at their old, flat places."""
    ident = run_identity(load_config(None, ["mechanism.qffl.q=2", "adversary.behaviours=['nan']"]))
    assert ident["mechanism"]["qffl_q"] == 2.0 and ident["mechanism"]["behaviours"] == ["nan"]
    assert ident["mechanism"]["standalone_step"] == "gamma" and ident["mechanism"]["eci_permutations"] == 50
    assert "adversary" not in ident and not {"standalone", "qffl", "cffl", "eci"} & set(ident["mechanism"])


def test_config_and_tools_import_without_torch():
    """The config, each method's settings and the command-line tools load without torch, whichever comes first."""
    for first in ("fedfair.strategies.settings", "fedfair.config", "fedfair.experiments.plan"):
        code = (f"import sys, {first}, fedfair.config, fedfair.experiments.sweep, fedfair.experiments.compare, "
                "fedfair.experiments.report, fedfair.experiments.suite.cli, fedfair.__main__; "
                "print('torch' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                             env={"PYTHONPATH": str(ROOT), "PATH": ""})
        assert (out.returncode, out.stdout.strip()) == (0, "False"), out.stderr
