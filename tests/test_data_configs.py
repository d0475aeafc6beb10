"""The paper-setting configs: they parse with the runtime's schema, carry the spec's
hyperparameters, and their data settings give the spec's shard sizes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fedfair.data import TaskData, load_task, make_shards
from fedfair.data.partitions import pow_sizes
from fedfair.models import default_model_for

config = pytest.importorskip("fedfair.config")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAPER_SETTINGS = (
    [f"mnist_{n}_{p}" for n in (5, 10, 20) for p in ("uni", "pow", "cla")]
    + [f"cifar10_{n}_{p}" for n in (5, 10) for p in ("uni", "pow", "cla")]
    + [f"fashion_mnist_10_{p}" for p in ("uni", "pow", "cla")]
    + ["mr_5_pow", "sst5_5_pow", "mnist_5_noise"]
)
# dataset -> (batch, lr for N <= 5, lr for N > 5, rounds, Gamma, optimizer): spec table
SPEC = {
    "mnist": (32, 0.15, 0.25, 60, 0.5, "sgd"),
    "cifar10": (128, 0.015, 0.025, 200, 0.15, "sgd"),
    "mr": (128, 5e-5, 5e-5, 100, 1.0, "adam"),
    "sst5": (256, 1e-5, 1e-5, 100, 1.0, "adam"),
    "fashion_mnist": (32, 0.15, 0.25, 60, 0.5, "sgd"),  # fedfair's choice: MNIST model + settings
}


def fake_task(name: str, n: int) -> TaskData:
    """Only labels matter to make_shards; avoid loading 60k images per config."""
    y = torch.arange(n) % 10
    return TaskData(name, "image", torch.empty(0), y, torch.empty(0), y[:10], 10)


@pytest.mark.parametrize("stem", PAPER_SETTINGS)
def test_config_parses_with_spec_hyperparameters(stem):
    cfg = config.load_config(CONFIGS / f"{stem}.toml")
    d, t, m = cfg.data, cfg.train, cfg.mechanism
    assert cfg.run.name == stem and stem.startswith(d.dataset)
    assert t.model == default_model_for(d.dataset)
    batch, lr_small, lr_big, rounds, gamma, opt = SPEC[d.dataset]
    assert (t.batch_size, cfg.run.rounds, m.grad_norm, t.optimizer) == (batch, rounds, gamma, opt)
    assert math.isclose(t.lr, lr_small if d.agents <= 5 else lr_big)
    assert (t.lr_decay, m.alpha, t.local_steps, m.method) == (0.977, 0.95, 3, "cgsv")


@pytest.mark.parametrize("stem", [s for s in PAPER_SETTINGS if not s.startswith(("mr", "sst5"))])
def test_image_config_shard_sizes(stem):
    cfg = config.load_config(CONFIGS / f"{stem}.toml")
    d = cfg.data
    n_train = 50_000 if d.dataset == "cifar10" else 60_000
    shards, val = make_shards(fake_task(d.dataset, n_train), partition=d.partition, agents=d.agents,
                              seed=0, pool_size=d.pool_size or None, shard_size=d.shard_size or None,
                              label_noise=d.label_noise, val_size=d.val_size, cla_pool=d.cla_pool)
    sizes = [len(s) for s in shards]
    per = {"mnist": 600, "cifar10": 2000, "fashion_mnist": 2000}[d.dataset]
    pool = {"mnist": 600 * d.agents}.get(d.dataset, 10_000 if d.agents <= 5 else 20_000)
    if d.partition == "uni":
        assert sizes == [pool // d.agents] * d.agents
    elif d.partition == "pow":
        want = pow_sizes(pool, d.agents)
        assert sizes[:-1] == want[:-1] and sizes[-1] == pool - sum(want[:-1])
    else:
        assert sizes == [per] * d.agents


def test_noise_config_is_fig2():
    d = config.load_config(CONFIGS / "mnist_5_noise.toml").data
    assert (d.partition, d.agents, d.pool_size) == ("uni", 5, 3000)
    assert d.label_noise[:3] == [0.2, 0.4, 0.6] and not any(d.label_noise[3:])
    shards, _ = make_shards(fake_task("mnist", 60_000), partition="uni", agents=5, seed=0,
                            pool_size=3000, label_noise=d.label_noise)
    y = np.arange(60_000) % 10
    wrong = [float((s.labels != y[s.indices]).mean()) for s in shards]
    assert [len(s) for s in shards] == [600] * 5
    assert 0.1 < wrong[0] < wrong[1] < wrong[2] < 0.6 and wrong[3] == wrong[4] == 0


@pytest.mark.parametrize("stem", ["mr_5_pow", "sst5_5_pow"])
def test_text_configs_run_on_packaged_standin(stem):
    cfg = config.load_config(CONFIGS / f"{stem}.toml")
    d = cfg.data
    task = load_task(d.dataset, d.data_dir or None, seed=cfg.run.seed, test_fraction=d.test_fraction,
                     image_pad=d.image_pad)
    assert "stand-in" in task.source
    shards, _ = make_shards(task, partition=d.partition, agents=d.agents, seed=cfg.run.seed,
                            pool_size=d.pool_size or None, cla_pool=d.cla_pool)
    # pool = all training data; POW's sizes cover floor(pool/N)*N plus ceiling overshoot
    assert sum(len(s) for s in shards) == min(task.num_train, sum(pow_sizes(task.num_train, d.agents)))
    assert [len(s) for s in shards] == sorted(len(s) for s in shards)


# ----------------------------------------------------------------------------- cla_pool / image_pad


def test_paper_configs_keep_the_defaults():
    for stem in PAPER_SETTINGS:
        d = config.load_config(CONFIGS / f"{stem}.toml").data
        assert (d.cla_pool, d.image_pad) == ("full", "model")


def test_choice_fields_from_overrides_and_files(tmp_path):
    cfg = config.load_config(None, ["data.cla_pool=capped", 'data.image_pad="data"', "data.dataset=mnist"])
    assert (cfg.data.cla_pool, cfg.data.image_pad) == ("capped", "data")
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(cfg))
    assert config.load_config(path) == cfg  # round-trips through config.toml
    with pytest.raises(config.ConfigError, match=r"^data.cla_pool = 'Capped' is invalid: one of full, capped$"):
        config.DataConfig(cla_pool="Capped")


def test_reference_key_and_checkpoints_include_the_new_fields():
    import dataclasses
    import json

    from fedfair.runtime.checkpoint import compat_config
    from fedfair.runtime.logs import reference_key

    def key(*overrides):
        return reference_key(config.load_config(None, ["data.dataset=mnist", *overrides]))

    cfg = config.load_config(None, ["data.dataset=mnist"])
    later = ("cla_pool", "image_pad", "agent_files", "test_file", "val_file", "label_column", "num_classes",
             "feature_noise", "copy_of", "repeats")
    old_data = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k not in later}
    # at the defaults: exactly the key runs recorded before the fields existed
    assert json.loads(key())["data"] == old_data
    assert key("data.cla_pool=full", "data.image_pad=model") == key()
    assert "model_args" not in json.loads(key())["train"]  # issue 16's own models: absent at the default {}
    assert key("train.model=mlp", "train.model_args={hidden=[8]}") != key("train.model=mlp")
    assert key("data.cla_pool=capped") != key()  # a capped-pool CGSV run never meets a full-pool standalone
    assert key("data.image_pad=data") != key()
    # issue 29's data scenarios: absent at their defaults, part of the key when set
    for setting in ("data.feature_noise=[1.0]", "data.copy_of=[0,1]", "data.repeats=[1,2]", "data.partition=disjoint"):
        assert key(setting) != key()
    assert key("data.image_pad=data", "data.cla_pool=capped") not in (key("data.image_pad=data"),
                                                                     key("data.cla_pool=capped"))
    # UNI/POW ignore cla_pool (identical shards), so their references are shared
    assert key("data.partition=uni", "data.cla_pool=capped") == key("data.partition=uni")
    # a checkpoint written before the fields existed (data without them) still fits a default run
    assert compat_config(cfg)["data"] == old_data
    assert compat_config(config.load_config(None, ["data.dataset=mnist", "data.cla_pool=capped"]))["data"] != old_data


def test_old_run_folder_without_the_new_keys(tmp_path):
    """A config.toml written before cla_pool/image_pad existed reads as the defaults; compare's
    --reuse still recognises the finished run."""
    from fedfair.experiments.compare import finished

    cfg = config.load_config(None, [f"run.out_dir={tmp_path}", "run.name=old"])
    cfg.run_dir.mkdir(parents=True)
    text = "\n".join(line for line in config.to_toml(cfg).splitlines()
                     if not line.startswith(("cla_pool", "image_pad")))
    (cfg.run_dir / "config.toml").write_text(text)
    (cfg.run_dir / "summary.json").write_text("{}")
    old = config.load_config(cfg.run_dir / "config.toml")
    assert (old.data.cla_pool, old.data.image_pad) == ("full", "model") and old == cfg
    assert finished(cfg)
    assert not finished(config.load_config(None, [f"run.out_dir={tmp_path}", "run.name=old", "data.cla_pool=capped"]))


def test_prepare_threads_both_fields(tmp_path):
    """fedfair.run.prepare (what every rank runs) passes cla_pool to make_shards, image_pad to load_task."""
    from test_data_images import tiny_mnist, write_idx_set

    from fedfair.runtime.setup import prepare

    cfg = config.load_config(None, ["data.cla_pool=capped", "data.pool_size=300", "data.shard_size=2000"])
    setup = prepare(cfg)
    assert np.unique(np.concatenate([s.indices for s in setup.shards])).size == 300
    write_idx_set(tmp_path, tiny_mnist(np.random.default_rng(0)), gz=False)
    cfg = config.load_config(None, ["data.dataset=mnist", f"data.data_dir={tmp_path}", "data.image_pad=data",
                                    "data.partition=uni", "data.agents=2", "data.pool_size=20", "train.model="])
    setup = prepare(cfg)
    assert setup.task.train_x.shape[1:] == (1, 32, 32) and setup.model_name == "mnist_cnn"


# ----------------------------------------------------------------------------- reference regime

REFERENCE_SETTINGS = [f"mnist_{n}_{p}" for n in (5, 10, 20) for p in ("uni", "pow", "cla")] + ["mnist_5_noise"]


@pytest.mark.parametrize("stem", REFERENCE_SETTINGS)
def test_reference_configs_are_the_released_codes_settings(stem):
    """configs/reference/: lr 1e-3, gamma 0.955, 200 rounds, 3 steps of 32, Gamma 0.5 with eps 1e-7,
    alpha 0.95, layer masks, the capped CLA pool, pixels padded before standardising; the same
    partition and agents as the paper-setting config of the same name."""
    cfg = config.load_config(CONFIGS / "reference" / f"{stem}.toml")
    paper = config.load_config(CONFIGS / f"{stem}.toml")
    d, t, m = cfg.data, cfg.train, cfg.mechanism
    assert cfg.run.name == f"ref_{stem}"
    assert (d.dataset, d.partition, d.agents, d.pool_size, d.shard_size, d.label_noise) == (
        paper.data.dataset, paper.data.partition, paper.data.agents, paper.data.pool_size, paper.data.shard_size,
        paper.data.label_noise)
    assert (t.lr, t.lr_decay, cfg.run.rounds, t.local_steps, t.local_epochs, t.batch_size, t.optimizer, t.dtype) == (
        0.001, 0.955, 200, 3, 0, 32, "sgd", "float32")
    assert (m.grad_norm, m.normalize, m.eps, m.grad_norm_decay, m.alpha, m.mask_scope, m.r_min) == (
        0.5, "rescale", 1e-7, 1.0, 0.95, "layer", 1e-3)
    assert d.image_pad == "data" and d.cla_pool == ("capped" if d.partition == "cla" else "full")
    header = (CONFIGS / "reference" / f"{stem}.toml").read_text().split("[run]")[0]
    assert "Reproduces:" in header and "Does NOT reproduce:" in header


def test_reference_key_names_the_normaliser_only_when_changed():
    from fedfair.runtime.logs import reference_key

    def key(*overrides):
        return json.loads(reference_key(config.load_config(None, list(overrides))))

    assert not {"normalize", "eps", "grad_norm_decay"} & set(key())  # the key runs recorded before
    assert "dtype" not in key()["train"] and key("train.dtype=float64")["train"]["dtype"] == "float64"
    assert key("mechanism.normalize=clip")["normalize"] == "clip"
    assert key("mechanism.eps=0")["eps"] == 0.0
    assert key("mechanism.grad_norm_decay=0.99")["grad_norm_decay"] == 0.99
    assert key("mechanism.beta=2") == key()  # beta does not change standalone's step
