"""Your own model by import path, the built-in mlp, and dict-valued config fields (train.model_args)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedfair.config import ConfigError, load_config, to_toml
from fedfair.data import load_task
from fedfair.models import MLP, build_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    return load_task("digits")


def test_model_args_parse_from_override_file_and_round_trip(tmp_path):
    cfg = load_config(None, ["train.model=mlp", "train.model_args={hidden=[64,32]}"])
    assert cfg.train.model_args == {"hidden": [64, 32]}
    path = tmp_path / "c.toml"
    path.write_text('[train]\nmodel = "own_model:TinyNet"\nmodel_args = {features = 64, classes = 10, '
                    '"odd key" = {a = 1.5, b = "x"}}\n')
    cfg = load_config(path)
    assert cfg.train.model_args == {"features": 64, "classes": 10, "odd key": {"a": 1.5, "b": "x"}}
    again = tmp_path / "again.toml"
    again.write_text(to_toml(cfg))
    assert load_config(again) == cfg
    assert load_config(None).train.model_args == {}


def test_model_args_must_be_a_table():
    with pytest.raises(ConfigError, match=r"train.model_args = 3 is invalid: expected a table"):
        load_config(None, ["train.model_args=3"])


def test_own_model_from_an_import_path_gets_exactly_the_kwargs(digits):
    torch.manual_seed(0)
    model = build_model("own_model:TinyNet", digits, {"features": 64, "classes": 10, "scale": 2.0})
    assert type(model).__name__ == "TinyNet" and type(model).__module__ == "own_model"
    assert model.scale == 2.0 and model.fc.in_features == 64 and model.fc.out_features == 10
    torch.manual_seed(0)
    same = build_model("own_model:TinyNet", digits, {"features": 64, "classes": 10, "scale": 2.0})
    assert torch.equal(model.fc.weight, same.fc.weight)  # w_0 from the seed, like the built-ins
    x, _ = digits.batch("test", torch.arange(5))
    out = model(x)
    assert torch.allclose(out.exp().sum(1), torch.ones(5), atol=1e-5)


def test_mlp_takes_sizes_from_the_data_and_hidden_from_args(digits):
    model = build_model("mlp", digits, {"hidden": [16, 8]})
    assert isinstance(model, MLP)
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(16, 64), (16,), (8, 16), (8,), (10, 8), (10,)]
    assert [tuple(p.shape) for p in build_model("mlp", digits).parameters()][0] == (64, 64)  # default [64, 32]


@pytest.mark.parametrize("name,args,message", [
    ("no_such_module_xyz:Net", {}, "train.model = 'no_such_module_xyz:Net': module 'no_such_module_xyz' not found"),
    ("own_model:Nope", {}, "train.model = 'own_model:Nope': module 'own_model' has no 'Nope'"),
    ("own_model:Plain", {}, "train.model = 'own_model:Plain': Plain is not a torch.nn.Module subclass"),
    ("own_model:TinyNet", {"features": 64}, "train.model_args = {'features': 64} do not fit own_model:TinyNet"),
    ("own_model:TinyNet", {"features": 64, "classes": 10, "depth": 3}, "do not fit own_model:TinyNet"),
    ("own_model:TinyNet", {"features": 64, "classes": 3},
     "train.model = 'own_model:TinyNet': output size 3 != number of classes 10 of digits"),
    ("own_model:TinyNet", {"features": 50, "classes": 10}, "train.model = 'own_model:TinyNet': forward on a batch"),
    ("mlp", {"hidden": [0]}, "train.model_args.hidden = [0] is invalid"),
    ("mlp", {"width": 3}, "mlp takes only hidden"),
    ("digits_cnn", {"hidden": [3]}, "only mlp and your own models"),
])
def test_model_errors_are_one_line(digits, name, args, message):
    with pytest.raises(ValueError) as e:
        build_model(name, digits, args)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_model_that_returns_logits_gets_log_softmax_with_train_output_logits(digits):
    """train.output = "logits": fedfair appends log_softmax, so the loss sees log-probabilities; without it
    the same model stops before training (tests/test_bad_input.py, "own model returns logits")."""
    torch.manual_seed(0)
    model = build_model("own_model:LogitNet", digits, {"features": 64, "classes": 10}, output="logits")
    x, _ = digits.batch("test", torch.arange(5))
    out = model(x)
    assert torch.allclose(torch.logsumexp(out, dim=1), torch.zeros(5), atol=1e-6)
    torch.manual_seed(0)
    raw = build_model("own_model:TinyNet", digits, {"features": 64, "classes": 10})  # same Linear, same seed
    assert [p.shape for p in model.parameters()] == [p.shape for p in raw.parameters()]
    with pytest.raises(ValueError, match=r"logsumexp over the classes is .*, not 0: not log-probabilities"):
        build_model("own_model:LogitNet", digits, {"features": 64, "classes": 10})


def test_every_built_in_model_returns_log_probabilities(digits):
    for name in ("digits_cnn", "mlp"):
        build_model(name, digits)  # the check passes (it raises otherwise)
