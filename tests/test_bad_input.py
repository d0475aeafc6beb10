"""Bad input stops the job before any process group exists: exit code 2 and ONE line
'fedfair: error: ...' naming the field, the value and what is allowed.

Table-driven through the entry point ``fedfair.run.main`` (in-process: fast), plus a few real
``python -m fedfair.run`` processes to check what a user sees.
"""
from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedfair.run import main

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = str(ROOT / "configs" / "default.toml")
WITHOUT_AUDIT = ["data.val_size=0", "mechanism.audit=none"]
"""The default job holds 100 images out for its Shapley audit; cases on other data leave both out."""
E = "fedfair: error: "
MECH_KEYS = ("method, alpha, beta, grad_norm, normalize, eps, grad_norm_decay, mask_scope, r_min, valuation, "
             "norm_bound, outlier_factor, audit, audit_every, fedce, gtg, standalone, qffl, cffl, eci")

# (id, overrides, expected message after 'fedfair: error: '); world size = data.agents + 1 unless given
OVERRIDES = [
    ("agents<1", ["data.agents=0"], "data.agents = 0 is invalid: must be >= 1"),
    ("agents negative", ["data.agents=-3"], "data.agents = -3 is invalid: must be >= 1"),
    ("beta<1", ["mechanism.beta=0.5"], "mechanism.beta = 0.5 is invalid: must be >= 1 (inf = no sparsification)"),
    ("beta nan", ["mechanism.beta=nan"], "mechanism.beta = nan is invalid: must be >= 1 (inf = no sparsification)"),
    ("alpha=1", ["mechanism.alpha=1"], "mechanism.alpha = 1.0 is invalid: must be in [0, 1)"),
    ("alpha<0", ["mechanism.alpha=-0.1"], "mechanism.alpha = -0.1 is invalid: must be in [0, 1)"),
    ("gamma=0", ["mechanism.grad_norm=0"], "mechanism.grad_norm = 0.0 is invalid: must be a finite number > 0"),
    ("gamma<0", ["mechanism.grad_norm=-1"], "mechanism.grad_norm = -1.0 is invalid: must be a finite number > 0"),
    ("gamma inf", ["mechanism.grad_norm=inf"], "mechanism.grad_norm = inf is invalid: must be a finite number > 0"),
    ("unknown method", ["mechanism.method=fedprox"],
     "mechanism.method = 'fedprox' is invalid: one of cgsv, standalone, fedavg, dw, eu, rr, qffl, cffl, eci"),
    ("unknown key", ["mechanism.betta=2"], f"unknown config key mechanism.betta: [mechanism] has {MECH_KEYS}"),
    ("unknown section", ["nosuch.key=1"],
     "unknown config section [nosuch]: expected one of run, data, train, mechanism, comm, adversary"),
    ("a key that moved", ["mechanism.qffl_q=2"],
     "config key mechanism.qffl_q has moved to mechanism.qffl.q (in a config file: [mechanism.qffl] q = ...)"),
    ("behaviours' old place", ["mechanism.behaviours=['honest']"],
     "config key mechanism.behaviours has moved to adversary.behaviours (in a config file: [adversary] behaviours = "
     "...)"),
    ("q < 0", ["mechanism.qffl.q=-1"], "mechanism.qffl.q = -1.0 is invalid: must be a finite number >= 0"),
    ("cffl alpha 0", ["mechanism.cffl.alpha=0"], "mechanism.cffl.alpha = 0.0 is invalid: must be a finite number > 0"),
    ("eci permutations 0", ["mechanism.eci.permutations=0"],
     "mechanism.eci.permutations = 0 is invalid: must be >= 1"),
    ("unknown standalone step", ["mechanism.standalone.step=adam"],
     "mechanism.standalone.step = 'adam' is invalid: one of gamma, sgd"),
    ("int as float", ["run.rounds=1.5"], "run.rounds = 1.5 is invalid: expected an integer"),
    ("int as word", ["run.rounds=ten"], "run.rounds = 'ten' is invalid: expected an integer"),
    ("bool as word", ["run.resume=maybe"], "run.resume = 'maybe' is invalid: expected true or false"),
    ("float as word", ["mechanism.beta=high"], "mechanism.beta = 'high' is invalid: expected a number"),
    ("list as scalar", ["data.label_noise=0.1"], "data.label_noise = 0.1 is invalid: expected a list"),
    ("string agents", ['data.agents="five"'], "data.agents = 'five' is invalid: expected an integer"),
    ("unknown partition", ["data.partition=dirichlet"],
     "data.partition = 'dirichlet' is invalid: one of uni, pow, cla, disjoint"),
    ("unknown dataset", ["data.dataset=imagenet"],
     "data.dataset = 'imagenet' is invalid: one of digits, mnist, fashion_mnist, cifar10, mr, sst5, files"),
    ("pool larger than data", ["data.partition=uni", "data.pool_size=5000"],
     "data.pool_size=5000 must be in [1, 1337]: digits has 1437 training samples, 100 held out for validation"),
    ("validation larger than data", ["data.val_size=5000"],
     "data.val_size=5000 must be in [0, 1436]: the training data has 1437 samples"),
    ("more agents than samples", ["data.partition=uni", "data.agents=3", "data.pool_size=2"],
     "data.pool_size=2 is smaller than agents=3: UNI shards would be empty"),
    ("unknown cla_pool", ["data.cla_pool=small"], "data.cla_pool = 'small' is invalid: one of full, capped"),
    ("cla_pool not a word", ["data.cla_pool=2"], "data.cla_pool = '2' is invalid: one of full, capped"),
    ("capped pool larger than data", ["data.cla_pool=capped", "data.pool_size=5000"],
     "data.pool_size=5000 must be in [1, 1337]: digits has 1437 training samples, 100 held out for validation"),
    ("disjoint shard larger than a class", ["data.partition=disjoint", "data.shard_size=300", "data.val_size=100"],
     "data.shard_size=300 needs 150 samples of class 0 for agent 1 (partition disjoint, drawn without replacement), "
     "but the data holds 129 outside the validation set"),  # digits' 142 of class 0, 13 of them in the 100 held out
    ("disjoint with more agents than classes", ["data.partition=disjoint", "data.agents=11"],
     "data.partition=disjoint gives every agent its own classes, so agents=11 must be at most the 10 classes of the "
     "data"),
    ("feature noise < 0", ["data.feature_noise=[-1]"],
     "data.feature_noise = [-1.0] is invalid: standard deviations must be finite numbers >= 0"),
    ("copy of itself", ["data.copy_of=[1]"],
     "data.copy_of = [1] is invalid: agent 1: entries must be 0 (own shard) or another agent 1..5"),
    ("repeats 0", ["data.repeats=[0]"], "data.repeats = [0] is invalid: counts must be integers >= 1"),
    ("unknown image_pad", ["data.image_pad=edge"], "data.image_pad = 'edge' is invalid: one of model, data"),
    ("image_pad data on digits", ["data.image_pad=data"],
     "data.image_pad = 'data' is invalid: 'data' pads 28x28 images to 32x32, so only for mnist or fashion_mnist "
     "(data.dataset is 'digits')"),
    ("image_pad data on cifar10", ["data.dataset=cifar10", "data.image_pad=data"],
     "data.image_pad = 'data' is invalid: 'data' pads 28x28 images to 32x32, so only for mnist or fashion_mnist "
     "(data.dataset is 'cifar10')"),
    ("label noise > 1", ["data.label_noise=[1.5]"], "data.label_noise = [1.5] is invalid: fractions must be in [0, 1]"),
    ("label noise too long", ["data.agents=1", "data.label_noise=[0.1, 0.2]"],
     "data.label_noise = [0.1, 0.2] is invalid: at most one fraction per agent (1)"),
    ("unknown behaviour", ["adversary.behaviours=['honest', 'evil']"],
     "adversary.behaviours = ['honest', 'evil'] is invalid: entries must be one of honest, free_rider, sign_flipper, "
     "scaled, replayer, nan"),
    ("too many behaviours", ["data.agents=1", "adversary.behaviours=['honest', 'nan']"],
     "adversary.behaviours = ['honest', 'nan'] is invalid: at most one behaviour per agent (1)"),
    ("timeout 0", ["comm.timeout_s=0"], "comm.timeout_s = 0.0 is invalid: must be a number of seconds in (0, 1e6)"),
    ("timeout inf", ["comm.timeout_s=inf"], "comm.timeout_s = inf is invalid: must be a number of seconds in (0, 1e6)"),
    ("unknown backend", ["comm.backend=mpi"], "comm.backend = 'mpi' is invalid: one of auto, gloo, nccl"),
    ("nccl without GPUs", ["comm.backend=nccl"],
     "comm.backend = 'nccl' needs one CUDA device per rank: this node has 0 for 1 local ranks; "
     "use comm.backend = 'gloo' or 'auto'"),
    ("unknown encoding", ["comm.encoding=zip"], "comm.encoding = 'zip' is invalid: one of auto, dense, index, bitmap"),
    ("lr 0", ["train.lr=0"], "train.lr = 0.0 is invalid: must be a finite number > 0"),
    ("lr decay > 1", ["train.lr_decay=1.5"], "train.lr_decay = 1.5 is invalid: must be in (0, 1]"),
    ("unknown optimizer", ["train.optimizer=rmsprop"], "train.optimizer = 'rmsprop' is invalid: one of sgd, adam"),
    ("no local work", ["train.local_steps=0"],
     "train.local_steps = 0 is invalid: local_steps or local_epochs must be > 0"),
    ("batch 0", ["train.batch_size=0"], "train.batch_size = 0 is invalid: must be >= 1"),
    ("unknown mask scope", ["mechanism.mask_scope=row"],
     "mechanism.mask_scope = 'row' is invalid: one of layer, global"),
    ("r_min 1", ["mechanism.r_min=1"], "mechanism.r_min = 1.0 is invalid: must be in [0, 1)"),
    ("eval_every 0", ["run.eval_every=0"], "run.eval_every = 0 is invalid: must be >= 1"),
    ("checkpoint_every<0", ["run.checkpoint_every=-1"], "run.checkpoint_every = -1 is invalid: must be >= 0"),
    ("rounds 0", ["run.rounds=0"], "run.rounds = 0 is invalid: must be >= 1"),
    ("name with slash", ["run.name=a/b"],
     "run.name = 'a/b' is invalid: a plain folder name: not empty, no '/' or '\\', not '.' or '..'"),
    ("run name is the parent folder", ["run.name=.."],
     "run.name = '..' is invalid: a plain folder name: not empty, no '/' or '\\', not '.' or '..'"),
    ("resume and overwrite together", ["run.resume=true", "run.overwrite=true"],
     "run.overwrite = True is invalid: run.resume = true continues the run, run.overwrite = true replaces it: set "
     "one of them"),
    ("unknown model output", ["train.output=probs"], "train.output = 'probs' is invalid: one of log_probs, logits"),
    ("test fraction 1", ["data.test_fraction=1"], "data.test_fraction = 1.0 is invalid: must be in (0, 1)"),
    ("override without =", ["mechanism"], "override 'mechanism' is invalid: expected section.key=value"),
    ("override too deep", ["a.b.c.d=1"],
     "override key 'a.b.c.d' is invalid: expected section.key (e.g. mechanism.beta) "
     "or section.table.key (e.g. mechanism.gtg.max_evals)"),
    ("override an unknown table", ["mechanism.foo.bar=1"],
     f"unknown config key mechanism.foo: [mechanism] has {MECH_KEYS}"),
    ("override a key as a table", ["mechanism.beta.x=1"],
     "override 'mechanism.beta.x': [mechanism.beta] is not a table"),
    ("override a section", ["data=1"], "override key 'data' is invalid: expected section.key (e.g. mechanism.beta) "
     "or section.table.key (e.g. mechanism.gtg.max_evals)"),
    ("model does not fit data", [*WITHOUT_AUDIT, "data.dataset=mnist", "data.data_dir={mnist}"],
     "digits_cnn takes 8x8 images; mnist has 28x28"),
    ("wrong world size", ["@world=3"],
     "world size 3 does not fit data.agents = 5: a run needs N + 1 = 6 ranks (rank 0 = server), e.g. torchrun "
     "--nproc_per_node 6 -m fedfair.run ..."),
    ("world size for other N", ["data.agents=2", "@world=6"],
     "world size 6 does not fit data.agents = 2: a run needs N + 1 = 3 ranks (rank 0 = server), e.g. torchrun "
     "--nproc_per_node 3 -m fedfair.run ..."),
    ("missing MNIST files", ["data.dataset=mnist", "data.data_dir={partial}", "train.model="],
     "incomplete idx files in {partial}: found ['train-images-idx3-ubyte'], missing ['train-labels-idx1-ubyte', "
     "'t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'] (raw or .gz)"),
    ("corrupt MNIST pickle", ["data.dataset=mnist", "data.data_dir={notgz}", "train.model="],
     "cannot read {notgz} as mnist.pkl.gz (gzip pickle of (train, valid, test) (x, y) pairs): BadGzipFile: Not a "
     "gzipped file (b'no')"),
    ("truncated MNIST pickle", ["data.dataset=mnist", "data.data_dir={truncgz}", "train.model="],
     "cannot read {truncgz} as mnist.pkl.gz (gzip pickle of (train, valid, test) (x, y) pairs): UnpicklingError: "
     "invalid load key, 'x'."),
    ("missing CIFAR-10", ["data.dataset=cifar10", "data.data_dir={empty}", "train.model="],
     "CIFAR-10 (cifar-10-batches-py: data_batch_1..5, test_batch) not found. Looked in: {empty}/cifar-10-batches-py; "
     "{empty}; {empty}/cifar-10-python.tar.gz. To fix: "),
]

# (id, config file text, expected message); {path} is the file's path
FILES = [
    ("missing config file", None, "config file '{path}' not found"),
    ("invalid TOML", "[run]\nrounds = = 3\n",
     "config file '{path}' is not valid TOML: Invalid value (at line 2, column 10)"),
    ("section not a table", "run = 3\n", "[run] must be a table of keys"),
    ("wrong type in file", "[run]\nrounds = \"ten\"\n", "run.rounds = 'ten' is invalid: expected an integer"),
    ("unknown key in file", "[data]\nagent = 5\n",
     "unknown config key data.agent: [data] has dataset, data_dir, partition, agents, pool_size, shard_size, "
     "label_noise, feature_noise, copy_of, repeats, val_size, test_fraction, cla_pool, image_pad, agent_files, "
     "test_file, val_file, label_column, "
     "num_classes"),
    ("choice not a string in file", "[data]\ncla_pool = 3\n", "data.cla_pool = 3 is invalid: one of full, capped"),
    ("choice with wrong case in file", "[data]\nimage_pad = \"Data\"\n",
     "data.image_pad = 'Data' is invalid: one of model, data"),
    ("bool where a number is", "[mechanism]\nbeta = true\n", "mechanism.beta = True is invalid: expected a number"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    (d / "partial").mkdir()
    (d / "partial" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + bytes(12))
    (d / "notgz").write_bytes(b"no")
    (d / "truncgz").write_bytes(gzip.compress(b"x" * 1000)[:20])
    (d / "empty").mkdir()
    mnist = d / "mnist"  # a tiny valid MNIST (idx files) so that only the model is wrong
    mnist.mkdir()
    for name, magic, shape in (("train-images-idx3-ubyte", 3, (20, 28, 28)), ("train-labels-idx1-ubyte", 1, (20,)),
                               ("t10k-images-idx3-ubyte", 3, (10, 28, 28)), ("t10k-labels-idx1-ubyte", 1, (10,))):
        n = 1
        for s in shape:
            n *= s
        head = bytes([0, 0, 8, magic]) + b"".join(s.to_bytes(4, "big") for s in shape)
        body = bytes((i % 10) for i in range(n))
        (mnist / name).write_bytes(head + body)
    return {"partial": str(d / "partial"), "notgz": str(d / "notgz"), "truncgz": str(d / "truncgz"),
            "empty": str(d / "empty"), "mnist": str(mnist)}


def run_main(monkeypatch, capsys, args: list[str], world: int) -> tuple[int, list[str]]:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(args)
    return exit_.value.code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("overrides,expected", [c[1:] for c in OVERRIDES], ids=[c[0] for c in OVERRIDES])
def test_bad_override(overrides, expected, files, monkeypatch, capsys):
    args = [o.format(**files) for o in overrides if not o.startswith("@")]
    agents = [int(a.split("=")[1]) for a in args
              if a.startswith("data.agents=") and a.split("=")[1].lstrip("-").isdigit()]
    world = next((int(o[7:]) for o in overrides if o.startswith("@world=")), (agents[-1] if agents else 5) + 1)
    code, err = run_main(monkeypatch, capsys, ["--config", DEFAULT, *args], world)
    assert code == 2
    assert len(err) == 1, err
    message = expected.format(**files)
    if message.endswith("To fix: "):  # the how-to text is the data layer's; the line must say what and where
        assert err[0].startswith(E + message)
    else:
        assert err[0] == E + message


@pytest.mark.parametrize("text,expected", [c[1:] for c in FILES], ids=[c[0] for c in FILES])
def test_bad_config_file(text, expected, tmp_path, monkeypatch, capsys):
    path = tmp_path / "bad.toml"
    if text is not None:
        path.write_text(text)
    code, err = run_main(monkeypatch, capsys, ["--config", str(path)], 6)
    assert code == 2
    assert err == [E + expected.format(path=path)]


def test_at_least_forty_bad_inputs_are_tried():
    assert len(OVERRIDES) + len(FILES) >= 40


def _cli(*args: str, world_size: int = 6) -> subprocess.CompletedProcess:
    env = dict(os.environ, RANK="0", WORLD_SIZE=str(world_size), LOCAL_RANK="0", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "fedfair.run", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_the_real_command_prints_one_line_and_exits_2(files):
    for args, expected in ((["mechanism.alpha=1"], "mechanism.alpha = 1.0 is invalid: must be in [0, 1)"),
                           (["data.dataset=mnist", f"data.data_dir={files['notgz']}", "train.model="],
                            f"cannot read {files['notgz']} as mnist.pkl.gz (gzip pickle of (train, valid, test) (x, y) "
                            "pairs): BadGzipFile: Not a gzipped file (b'no')")):
        p = _cli("--config", DEFAULT, *args)
        assert p.returncode == 2
        assert p.stderr.splitlines() == [E + expected]
    # an agent rank says nothing (rank 0 speaks for the job) but stops the same way
    env = dict(os.environ, RANK="3", WORLD_SIZE="6", OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "fedfair.run", "--config", DEFAULT, "mechanism.beta=0"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert p.returncode == 2 and p.stderr == ""


# data.dataset = files (issue 16): (id, rank that reads the bad file, overrides, expected); 4 agents, world 5.
# {good} holds fine party files (tests/hospital_sites.py), {d} the bad variants; a party's file is checked by the
# rank that hosts it, before any process group exists, and that rank reports it (rank 0 never opens it).
def _party(template: str = "{good}/site_{{agent}}.npz", test: str = "{good}/test.npz") -> list[str]:
    return ["data.dataset=files", "data.agents=4", f"data.agent_files={template}", f"data.test_file={test}",
            "train.model=mlp", *WITHOUT_AUDIT]


PARTY = [
    ("party file missing", 2, _party("{d}/missing/site_{{agent}}.npz"),
     "data.agent_files: agent 2: data file '{d}/missing/site_2.npz' not found"),
    ("party labels wrong shape", 1, _party("{d}/shape/site_{{agent}}.npz"),
     "data.agent_files: agent 1: '{d}/shape/site_1.npz' holds y of shape [60, 1] for 60 samples: expected [60]"),
    ("party label out of range", 3, _party("{d}/range/site_{{agent}}.npz"),
     "data.agent_files: agent 3: '{d}/range/site_3.npz' holds label 2, out of range 0..1 (2 classes: "
     "data.num_classes, or the test file's largest label + 1)"),
    ("party feature count differs", 2, _party("{d}/features/site_{{agent}}.npz"),
     "data.agent_files: agent 2: '{d}/features/site_2.npz' has samples of shape [29], the test file "
     "'{good}/test.npz' has [30]: every party needs the same features"),
    ("party CSV without label column", 1, _party("{d}/csv/site_{{agent}}.csv"),
     "data.agent_files: agent 1: '{d}/csv/site_1.csv' has no label column 'label' (data.label_column); "
     "its columns: f0, f1, target"),
    ("party file corrupt", 4, _party("{d}/corrupt/site_{{agent}}.npz"),
     "data.agent_files: agent 4: cannot read '{d}/corrupt/site_4.npz' as .npz with arrays x and y: "),
    ("party npz without y", 3, _party("{d}/noy/site_{{agent}}.npz"),
     "data.agent_files: agent 3: '{d}/noy/site_3.npz' has no array y (it has x): expected arrays x and y"),
    ("party dtype differs", 1, _party("{d}/dtype/site_{{agent}}.npz"),
     "data.agent_files: agent 1: '{d}/dtype/site_1.npz' holds x of dtype float64, the test file '{good}/test.npz' "
     "float32"),
    ("party num_classes below labels", 0, [*_party(), "data.num_classes=1"],
     "data.test_file: '{good}/test.npz' holds label 1, out of range 0..0 (data.num_classes)"),
    ("test file missing", 0, _party(test="{d}/nope.npz"), "data.test_file: data file '{d}/nope.npz' not found"),
    ("test file missing on a party", 2, _party(test="{d}/nope.npz"),
     "data.test_file: data file '{d}/nope.npz' not found"),
    ("bad import path", 0, [*_party(), "train.model=no_such_pkg.mod:Net"],
     "train.model = 'no_such_pkg.mod:Net': module 'no_such_pkg.mod' not found (No module named 'no_such_pkg'); "
     "is it installed or on PYTHONPATH?"),
    ("class not in module", 0, [*_party(), "train.model=own_model:Missing"],
     "train.model = 'own_model:Missing': module 'own_model' has no 'Missing'"),
    ("model output size wrong", 0, [*_party(), "train.model=own_model:TinyNet",
                                    "train.model_args={{features=30, classes=3}}"],
     "train.model = 'own_model:TinyNet': output size 3 != number of classes 2 of files"),
    ("model kwargs wrong", 0, [*_party(), "train.model=own_model:TinyNet", "train.model_args={{width=30}}"],
     "train.model_args = {{'width': 30}} do not fit own_model:TinyNet(features, classes, scale=1.0): "
     "missing a required argument: 'features'"),
    ("files without a test file", 0, ["data.dataset=files", "data.agent_files=s_{{agent}}.npz"],
     "data.test_file = '' is invalid: dataset = 'files' needs the common test set, e.g. 'sites/test.npz'"),
    ("files template without {agent}", 0, ["data.dataset=files", "data.agent_files=site.npz", "data.test_file=t.npz"],
     "data.agent_files = 'site.npz' is invalid: dataset = 'files' needs a path template with {{agent}}, e.g. "
     "'sites/site_{{agent}}.npz'"),
    ("label noise on party files", 0, [*_party(), "data.label_noise=[0.1]"],
     "data.label_noise = [0.1] is invalid: does not apply to dataset = 'files' (the data is what the parties hold; "
     "python -m fedfair prepare splits a data set into such files)"),
    ("validation method without val_file", 0, [*_party(), "mechanism.method=cffl"],
     "data.val_file = '' is invalid: mechanism.method = 'cffl' values uploads on the server's validation set: give "
     "data.val_file (python -m fedfair prepare --val-size N writes one)"),
    ("own model returns logits", 0, [*_party(), "train.model=own_model:LogitNet",
                                     "train.model_args={{features=30, classes=2}}"],
     "train.model = 'own_model:LogitNet': forward on 8 test samples returned values whose logsumexp over the classes "
     "is ..."),
    ("own model returns probabilities", 0, [*_party(), "train.model=own_model:ProbNet",
                                            "train.model_args={{features=30, classes=2}}", "train.output=logits"],
     "train.model = 'own_model:ProbNet': forward on 8 test samples returned probabilities (rows >= 0 summing to 1): "
     "return log-probabilities (end forward in log_softmax) or logits (and set train.output = 'logits')"),
    ("party CSV lacks a column of the test file", 2, _party("{d}/columns/site_{{agent}}.csv", "{d}/columns/test.csv"),
     "data.agent_files: agent 2: '{d}/columns/site_2.csv' does not have the test file '{d}/columns/test.csv''s feature "
     "columns: missing 'f2'; extra 'g2' (CSV columns are matched by header name)"),
    ("party CSV with a column twice", 1, _party("{d}/columns/site_{{agent}}.csv", "{d}/columns/test.csv"),
     "data.agent_files: agent 1: '{d}/columns/site_1.csv' has column(s) 'f0' more than once in its header"),
    ("party value beyond float32", 3, _party("{d}/big/site_{{agent}}.npz", "{d}/big/test.npz"),
     "data.agent_files: agent 3: '{d}/big/site_3.npz' holds 1e+39 at x[5, 4] (sample 5, feature 4), beyond "
     "float32's range (training casts features to float32); 1 such value(s) in the file"),
    ("party CSV value beyond float32", 3, _party("{d}/columns/site_{{agent}}.csv", "{d}/columns/test.csv"),
     "data.agent_files: agent 3: '{d}/columns/site_3.csv' holds -5e+38 at line 3, column 'f1', beyond float32's range "
     "(training casts features to float32); 1 such value(s) in the file"),
    ("party files on a built-in data set", 0, ["data.test_file=t.npz"],
     "data.test_file = 't.npz' is invalid: only read when data.dataset = 'files' (data.dataset is 'digits')"),
]


@pytest.fixture(scope="module")
def party_dirs(tmp_path_factory):
    import shutil

    import numpy as np
    from hospital_sites import breast_cancer_sites

    d = tmp_path_factory.mktemp("parties")
    good = d / "good"
    breast_cancer_sites(good)

    def variant(name: str) -> Path:
        shutil.copytree(good, d / name)
        return d / name

    (variant("missing") / "site_2.npz").unlink()
    site = np.load(good / "site_1.npz")
    np.savez(variant("shape") / "site_1.npz", x=site["x"], y=site["y"].reshape(-1, 1))
    three = np.load(good / "site_3.npz")
    np.savez(variant("range") / "site_3.npz", x=three["x"], y=np.where(np.arange(len(three["y"])) == 5, 2, three["y"]))
    two = np.load(good / "site_2.npz")
    np.savez(variant("features") / "site_2.npz", x=two["x"][:, :29], y=two["y"])
    (d / "csv").mkdir()
    (d / "csv" / "site_1.csv").write_text("f0,f1,target\n0.5,1.0,1\n")
    (variant("corrupt") / "site_4.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.savez(variant("noy") / "site_3.npz", x=three["x"])
    np.savez(variant("dtype") / "site_1.npz", x=site["x"].astype(np.float64), y=site["y"])
    big = d / "big"  # every file float64 (so the dtypes agree); party 3 holds one value float32 cannot
    big.mkdir()
    for name in ("test", "site_1", "site_2", "site_3", "site_4"):
        f = np.load(good / f"{name}.npz")
        x = f["x"].astype(np.float64)
        if name == "site_3":
            x[5, 4] = 1e39
        np.savez(big / f"{name}.npz", x=x, y=f["y"])
    columns = d / "columns"  # CSV: the test file's header f0,f1,f2,label; each party's own problem
    columns.mkdir()
    (columns / "test.csv").write_text("f0,f1,f2,label\n0.5,1.0,2.0,1\n1.5,0.0,1.0,0\n")
    (columns / "site_1.csv").write_text("f0,f1,f0,label\n0.5,1.0,2.0,1\n")
    (columns / "site_2.csv").write_text("f0,f1,g2,label\n0.5,1.0,2.0,1\n")
    (columns / "site_3.csv").write_text("label,f2,f1,f0\n1,0.5,1.0,2.0\n0,0.5,-5e38,2.0\n")
    (columns / "site_4.csv").write_text("f2,label,f0,f1\n0.5,1,1.0,2.0\n")
    return {"good": str(good), "d": str(d)}


@pytest.mark.parametrize("rank,overrides,expected", [c[1:] for c in PARTY], ids=[c[0] for c in PARTY])
def test_bad_party_files_and_models(rank, overrides, expected, party_dirs, monkeypatch, capsys):
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "5")
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["--config", DEFAULT, *WITHOUT_AUDIT, *[o.format(**party_dirs) for o in overrides]])
    err = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2
    assert len(err) == 1, err
    message = E + expected.format(**party_dirs)
    if message.endswith("..."):  # a number that depends on the model's initial weights follows
        assert err[0].startswith(message[:-3]) and err[0].endswith(
            "not 0: not log-probabilities (train.output = 'log_probs'); end forward in log_softmax, or set "
            "train.output = 'logits' if it returns logits"), err[0]
    else:
        assert err[0].startswith(message) if message.endswith(": ") else err[0] == message


def test_at_least_eight_bad_party_inputs():
    assert len(PARTY) >= 8


# The run folder (issue 30): an existing run is never overwritten by accident, and an unwritable out_dir is one
# line. (id, files already in <out_dir>/x, expected); {root} is out_dir.
FOLDERS = [
    ("rerun a finished run's name", {"summary.json": "{}\n", "agents.csv": "round\n", "config.toml": ""},
     "run.name = 'x': {root}/x already holds a finished run (summary.json); set run.resume = true to continue it, "
     "run.overwrite = true to replace it, or choose another run.name"),
    ("rerun an interrupted run's name", {"agents.csv": "round\n", "ckpt/round_00000002/server.pt": ""},
     "run.name = 'x': {root}/x already holds an unfinished run (agents.csv, ckpt/; no summary.json); set run.resume = "
     "true to continue it, run.overwrite = true to replace it, or choose another run.name"),
    ("out_dir under a file", {"../../afile": ""},
     "run.out_dir = '{root}/afile/logs': cannot write the run folder {root}/afile/logs/x (NotADirectoryError: Not a "
     "directory)"),
]


def _plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = (root / "x" / rel).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("files,expected", [c[1:] for c in FOLDERS], ids=[c[0] for c in FOLDERS])
def test_run_folder_problems_stop_with_one_line_and_lose_nothing(files, expected, tmp_path, monkeypatch, capsys):
    out = tmp_path / "afile" / "logs" if "../../afile" in files else tmp_path
    _plant(tmp_path / "a" if "../../afile" in files else tmp_path, files)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, err = run_main(monkeypatch, capsys, ["--config", DEFAULT, f"run.out_dir={out}", "run.name=x"], 6)
    assert code == 2
    assert err == [E + expected.format(root=tmp_path)]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing touched


def test_the_launchers_precheck_refuses_an_existing_run_and_allows_resume_or_overwrite(tmp_path):
    _plant(tmp_path, FOLDERS[0][1])
    args = ("--config", DEFAULT, "--world-size", f"run.out_dir={tmp_path}", "run.name=x")
    p = _cli(*args)
    assert (p.returncode, p.stdout, p.stderr.splitlines()) == (2, "", [E + FOLDERS[0][2].format(root=tmp_path)])
    for choice in ("run.resume=true", "run.overwrite=true"):
        p = _cli(*args, choice)
        assert (p.returncode, p.stdout.strip(), p.stderr) == (0, "6", "")
    assert (tmp_path / "x" / "summary.json").read_text() == "{}\n"  # the pre-check only checks


def test_the_docs_count_of_bad_inputs_is_this_suites():
    text = " ".join((ROOT / "docs" / "reliability.md").read_text().split())
    total = len(OVERRIDES) + len(FILES) + len(PARTY) + len(FOLDERS)
    assert (f"tries {total} bad inputs ({len(OVERRIDES)} overrides, {len(FILES)} config files, {len(PARTY)} party "
            f"files and models, {len(FOLDERS)} run folders)") in text
