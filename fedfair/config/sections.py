"""Typed run configuration: one dataclass per section, validated in ``__post_init__``.

Every field has a default and a docstring (the string literal under it). Validation happens in
``__post_init__`` so that a bad value stops the job before any process group exists, with one
line naming the field, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import valuations
from ..methods import PARTIAL_METHODS, needs_validation, supports_partial, valued
from .checks import _check, _check_choices
from .mechanism import FedCESettings, GTGSettings, MechanismConfig

Dataset = Literal["digits", "mnist", "fashion_mnist", "cifar10", "mr", "sst5", "files"]
Partition = Literal["uni", "pow", "cla", "disjoint"]
"""The simulator's partitions, written once (fedfair.data.shards.PARTITIONS and the tools read them from here)."""
ClaPool = Literal["full", "capped"]
Encoding = Literal["auto", "dense", "index", "bitmap"]
"""Reward wire encodings: auto plus ``fedfair.runtime.wire.ENCODINGS`` (checked by tests/test_choices.py)."""
PAD_DATASETS = ("mnist", "fashion_mnist")
"""Data sets whose 28x28 images data.image_pad = "data" pads to 32x32."""
NOT_FOR_FILES = ("partition", "pool_size", "shard_size", "label_noise", "val_size", "test_fraction", "cla_pool",
                 "image_pad")
"""[data] keys that do not apply to dataset = "files" (the data is what the parties hold): a files run's
config.toml and summary.json leave them out."""
TEXT_DATASETS = ("mr", "sst5")
"""Data sets of token ids (no standardised inputs for data.feature_noise)."""


def _is_int(value: Any) -> bool:
    """An integer, not a bool (a config built in code skips the TOML coercion)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class RunConfig:
    name: str = "default"
    """Run name; outputs go to ``<out_dir>/<name>/``."""
    seed: int = 0
    """Seed for model initialisation, partitions and batch order (same on every rank)."""
    rounds: int = 30
    """Number of communication rounds T."""
    out_dir: str = "logs"
    """Folder that holds the run folders."""
    eval_every: int = 5
    """Evaluate every agent's and the server's model every this many rounds (and always at the end)."""
    checkpoint_every: int = 0
    """Write a checkpoint every this many rounds (0 = never)."""
    resume: bool = False
    """Continue the run in the run folder from its newest complete checkpoint (from round 1 if there is none)."""
    overwrite: bool = False
    """Replace a run folder that already holds a run (finished or not): its logs, summary and checkpoints
    are deleted at the start. Without it (or run.resume) an existing run folder stops the job: nothing is
    overwritten by accident."""
    progress: bool = True
    """Show a progress bar on the server."""
    threads: int = 1
    """torch intra-op threads per rank (ranks share the machine's cores)."""
    tensorboard: bool = False
    """Also write TensorBoard event files from the server into ``<run folder>/tb`` (server accuracy; per agent
    r, q, density, bytes, accuracy), to watch a long run live; needs ``pip install tensorboard``. The CSV
    files stay the source of truth."""
    ranks: int = 0
    """World size P of the job, 2..N + 1: rank 0 is the server and ranks 1..P-1 host the agents in
    contiguous balanced blocks (``fedfair.runtime.placement``); 0 = N + 1, one rank per agent.
    Results do not depend on it: many agents per rank only saves processes and memory."""
    participation: float = 1.0
    """Fraction of agents sampled each round, in (0, 1]: round(participation * N) of them (at least
    1), drawn from a generator seeded by run.seed and the round, the same on every rank. Absent agents
    neither train, upload nor receive that round (docs/participation.md says what happens to r, q, ρ)."""

    def __post_init__(self) -> None:
        _check(bool(self.name) and not any(c in self.name for c in "/\\\0") and self.name not in (".", ".."),
               "run.name", self.name, "a plain folder name: not empty, no '/' or '\\', not '.' or '..'")
        _check(not (self.resume and self.overwrite), "run.overwrite", self.overwrite,
               "run.resume = true continues the run, run.overwrite = true replaces it: set one of them")
        _check(self.rounds >= 1, "run.rounds", self.rounds, "must be >= 1")
        _check(self.eval_every >= 1, "run.eval_every", self.eval_every, "must be >= 1")
        _check(self.checkpoint_every >= 0, "run.checkpoint_every", self.checkpoint_every, "must be >= 0")
        _check(self.threads >= 1, "run.threads", self.threads, "must be >= 1")
        _check(self.ranks == 0 or self.ranks >= 2, "run.ranks", self.ranks,
               "0 (= data.agents + 1) or a world size >= 2 (the server and at least one agent rank)")
        _check(0.0 < self.participation <= 1.0, "run.participation", self.participation, "must be in (0, 1]")


@dataclass
class DataConfig:
    dataset: Dataset = "digits"
    """One of digits, mnist, fashion_mnist, cifar10, mr, sst5, or files (each party's own data files:
    agent_files, test_file; partitions and label noise then do not apply)."""
    data_dir: str = ""
    """Where the data files are ("" = the data set's default places)."""
    partition: Partition = "cla"
    """How the pool is split among agents: uni, pow or cla (see the spec), or disjoint (agent i owns the
    i-th of N contiguous, near-equal blocks of the C classes, needs N <= C, and gets shard_size samples of
    them, even over its classes, drawn without replacement: equal contributions of exclusive classes)."""
    agents: int = 5
    """Number of agents N; the job's world size is run.ranks (N + 1 when 0)."""
    pool_size: int = 0
    """Samples split among agents for uni/pow, and CLA's pool when cla_pool = capped (0 = the data
    set's default: 600*N for MNIST)."""
    shard_size: int = 0
    """CLA and disjoint samples per agent S (0 = the data set's default: 600 for MNIST, 2,000 for CIFAR-10
    and Fashion-MNIST, else the training data not held out / N)."""
    label_noise: list[float] = field(default_factory=list)
    """Per-agent fraction of labels replaced by random classes (missing entries = 0)."""
    feature_noise: list[float] = field(default_factory=list)
    """Per-agent standard deviation of Gaussian noise added once to the agent's own copy of its training
    inputs, in the data's standardised units (missing entries = 0; image and tabular data, not text). Its
    draws come from their own seed stream: the shards, labels and the other agents' data do not change."""
    copy_of: list[int] = field(default_factory=list)
    """Per-agent: 0 = its own shard; j = agent j's shard exactly as agent j holds it (indices, labels with
    their noise, feature noise, repeats), a redundant contributor. j is another agent and not itself a
    copy; the copy's own label_noise and feature_noise entries must be 0 (missing entries = 0)."""
    repeats: list[int] = field(default_factory=list)
    """Per-agent k >= 1: the agent holds its shard k times (samples, labels and noisy inputs tiled), so its
    size |D_i| (size-weighted aggregation, shard sizes in the logs) is k times larger (missing = 1)."""
    val_size: int = 0
    """Held-out validation samples no agent owns (used by CFFL and ECI; 0 = none, but cffl and eci then
    hold out 10% of the training data, at most 1000, recorded in the run's config.toml)."""
    test_fraction: float = 0.2
    """Stratified test fraction for data sets without a test split."""
    cla_pool: ClaPool = "full"
    """Where CLA draws its shards from: full (all training data not held out) or capped (first a
    random pool of pool_size samples, as the reference code's sample_size_cap = 600*N on MNIST, so
    agents share many samples). No effect on uni/pow, which always draw a pool of pool_size."""
    image_pad: Literal["model", "data"] = "model"
    """28x28 images (mnist, fashion_mnist): model (standardise, the model zero-pads to 32x32, so the
    border is 0 against a negative background) or data (zero-pad raw pixels to 32x32, then
    standardise with the padded training images' mean/std, as the reference code: border = background)."""
    agent_files: str = ""
    """dataset = files: path template of the parties' training files, ``{agent}`` = 1..N (e.g.
    "sites/site_{agent}.npz"); .npz with arrays x and y, or .csv with numeric features and a label column.
    A rank opens only the files of the agents it hosts."""
    test_file: str = ""
    """dataset = files: the common test set (.npz or .csv), on the server and on every party."""
    val_file: str = ""
    """dataset = files: the server's validation set for cffl and eci ("" = none); only the server opens it."""
    label_column: str = "label"
    """dataset = files: the label column of .csv files (the other columns are the features)."""
    num_classes: int = 0
    """dataset = files: number of classes C, labels 0..C-1 (0 = the largest label in the test file + 1)."""

    def __post_init__(self) -> None:
        _check_choices(self, "data")
        files = self.dataset == "files"
        for key in ("agent_files", "test_file", "val_file", "num_classes"):
            _check(files or not getattr(self, key), f"data.{key}", getattr(self, key),
                   f"only read when data.dataset = 'files' (data.dataset is {self.dataset!r})")
        _check(not files or "{agent}" in self.agent_files, "data.agent_files", self.agent_files,
               "dataset = 'files' needs a path template with {agent}, e.g. 'sites/site_{agent}.npz'")
        _check(not files or bool(self.test_file), "data.test_file", self.test_file,
               "dataset = 'files' needs the common test set, e.g. 'sites/test.npz'")
        _check(self.num_classes >= 0, "data.num_classes", self.num_classes, "must be >= 0")
        for key in ("label_noise", "val_size", "pool_size", "shard_size", "feature_noise", "copy_of", "repeats"):
            _check(not (files and getattr(self, key)), f"data.{key}", getattr(self, key),
                   "does not apply to dataset = 'files' (the data is what the parties hold; "
                   "python -m fedfair prepare splits a data set into such files)")
        _check(self.image_pad == "model" or self.dataset in PAD_DATASETS, "data.image_pad", self.image_pad,
               f"'data' pads 28x28 images to 32x32, so only for {' or '.join(PAD_DATASETS)} "
               f"(data.dataset is {self.dataset!r})")
        _check(self.agents >= 1, "data.agents", self.agents, "must be >= 1")
        _check(self.pool_size >= 0, "data.pool_size", self.pool_size, "must be >= 0")
        _check(self.shard_size >= 0, "data.shard_size", self.shard_size, "must be >= 0")
        _check(self.val_size >= 0, "data.val_size", self.val_size, "must be >= 0")
        _check(0.0 < self.test_fraction < 1.0, "data.test_fraction", self.test_fraction, "must be in (0, 1)")
        _check(len(self.label_noise) <= self.agents, "data.label_noise", self.label_noise,
               f"at most one fraction per agent ({self.agents})")
        for p in self.label_noise:
            _check(0.0 <= p <= 1.0, "data.label_noise", self.label_noise, "fractions must be in [0, 1]")
        self._check_holding()

    def _check_holding(self) -> None:
        """data.feature_noise, copy_of and repeats: at most one entry per agent, values in range, copies
        of non-copies that add nothing of their own."""
        n = self.agents
        for key, what in (("feature_noise", "standard deviation"), ("copy_of", "source"), ("repeats", "count")):
            value = getattr(self, key)
            _check(len(value) <= n, f"data.{key}", value, f"at most one {what} per agent ({n})")
        _check(all(math.isfinite(v) and v >= 0 for v in self.feature_noise), "data.feature_noise", self.feature_noise,
               "standard deviations must be finite numbers >= 0")
        _check(self.dataset not in TEXT_DATASETS or not any(self.feature_noise), "data.feature_noise",
               self.feature_noise, f"Gaussian input noise applies to image and tabular data, not to text "
               f"(data.dataset is {self.dataset!r})")
        _check(all(_is_int(k) and k >= 1 for k in self.repeats), "data.repeats", self.repeats,
               "counts must be integers >= 1")
        label_noise, sigmas = list(self.label_noise), list(self.feature_noise)
        for i, j in enumerate(self.copy_of, start=1):
            _check(_is_int(j) and 0 <= j <= n and j != i, "data.copy_of", self.copy_of,
                   f"agent {i}: entries must be 0 (own shard) or another agent 1..{n}")
            if j:
                source = self.copy_of[j - 1] if j <= len(self.copy_of) else 0
                _check(source == 0, "data.copy_of", self.copy_of,
                       f"agent {i} copies agent {j}, which is itself a copy (of agent {source}): copy agent {source}")
                own = [f"data.{k}" for k, v in (("label_noise", label_noise), ("feature_noise", sigmas))
                       if i <= len(v) and v[i - 1]]
                _check(not own, "data.copy_of", self.copy_of, f"agent {i} holds agent {j}'s shard as agent {j} "
                       f"holds it (labels and noise included), so its own {' and '.join(own)} entry must be 0")


@dataclass
class TrainConfig:
    model: str = ""
    """Model: a built-in name (digits_cnn, mnist_cnn, cifar_cnn, text_cnn, mlp; "" = the data set's default)
    or your own ``nn.Module`` as "package.module:ClassName", whose forward returns log-probabilities
    [batch, C] (end in log_softmax: the loss is NLL)."""
    model_args: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the model (a TOML inline table): for your own class exactly its constructor's
    arguments; for mlp {hidden = [64, 32]} (its input and output sizes come from the data)."""
    batch_size: int = 32
    """Mini-batch size B."""
    lr: float = 0.15
    """Initial learning rate eta."""
    lr_decay: float = 0.977
    """Learning rate multiplied by this once per round (exponential schedule gamma)."""
    optimizer: Literal["sgd", "adam"] = "sgd"
    """Optimizer of the local work; its state persists across rounds."""
    output: Literal["log_probs", "logits"] = "log_probs"
    """What the model's forward returns: log_probs (log-probabilities, as every built-in model: training
    uses the NLL loss) or logits (fedfair applies log_softmax after forward). Checked before training on a
    test batch: log_probs must have logsumexp 0 over the classes."""
    dtype: Literal["float32", "float64"] = "float32"
    """Precision of the agents' models, optimizer and Δw, and of the server's normalisation and
    aggregation. float64 removes the float32 rounding of tiny optimizer steps (lr·γ^t ~ 1e-7);
    uploads and rewards still travel as float32 (Δw is formed in float64 first, and float32
    holds it to 7 digits), so the bytes on the wire are the same."""
    local_steps: int = 3
    """Mini-batch steps per round (used when local_epochs = 0)."""
    local_epochs: int = 0
    """Full passes over the shard per round (0 = use local_steps)."""

    def __post_init__(self) -> None:
        _check_choices(self, "train")
        _check(self.batch_size >= 1, "train.batch_size", self.batch_size, "must be >= 1")
        _check(self.lr > 0 and math.isfinite(self.lr), "train.lr", self.lr, "must be a finite number > 0")
        _check(0 < self.lr_decay <= 1, "train.lr_decay", self.lr_decay, "must be in (0, 1]")
        _check(self.local_steps >= 0, "train.local_steps", self.local_steps, "must be >= 0")
        _check(self.local_epochs >= 0, "train.local_epochs", self.local_epochs, "must be >= 0")
        _check(self.local_steps > 0 or self.local_epochs > 0, "train.local_steps", self.local_steps,
               "local_steps or local_epochs must be > 0")


@dataclass
class CommConfig:
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """auto (NCCL when every rank has its own CUDA device, else gloo), gloo or nccl."""
    timeout_s: float = 120.0
    """Timeout of every collective and point-to-point operation; a silent rank is reported after this."""
    encoding: Encoding = "auto"
    """Reward wire encoding: auto (smallest per message), dense, index or bitmap."""

    def __post_init__(self) -> None:
        _check_choices(self, "comm")
        _check(0 < self.timeout_s < 1e6, "comm.timeout_s", self.timeout_s, "must be a number of seconds in (0, 1e6)")


Behaviour = Literal["honest", "free_rider", "sign_flipper", "scaled", "replayer", "nan"]
"""What an agent does with its update, for experiments (adversary.behaviours)."""


@dataclass
class AdversaryConfig:
    """``[adversary]``: agents that do not play by the rules, injected for experiments (what a reward
    mechanism must withstand). Its own section, not the mechanism's: it is a property of the agents,
    and every method meets the same adversaries. (Process crashes for the reliability tests are
    another thing: the FEDFAIR_FAULT variable of fedfair.runtime.faults.)"""

    behaviours: list[Behaviour] = field(default_factory=list)
    """Per-agent behaviour (missing entries = honest): honest; free_rider (uploads noise of an honest
    norm); sign_flipper (uploads -dw); scaled (uploads 1e4 dw); replayer (uploads its last reward);
    nan (uploads NaN, rejected by the server)."""

    def __post_init__(self) -> None:
        _check_choices(self, "adversary")


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mechanism: MechanismConfig = field(default_factory=MechanismConfig)
    comm: CommConfig = field(default_factory=CommConfig)
    adversary: AdversaryConfig = field(default_factory=AdversaryConfig)

    def __post_init__(self) -> None:
        n = self.data.agents
        _check(self.run.ranks <= n + 1, "run.ranks", self.run.ranks,
               f"at most data.agents + 1 = {n + 1} (one rank per agent), or 0 for that")
        _check(self.run.participation == 1.0 or supports_partial(self.mechanism.method), "run.participation",
               self.run.participation, f"mechanism.method = {self.mechanism.method!r} does not define partial "
               f"participation; use 1 or one of {', '.join(PARTIAL_METHODS)}")
        _check(len(self.adversary.behaviours) <= n, "adversary.behaviours", self.adversary.behaviours,
               f"at most one behaviour per agent ({n})")
        _check(self.data.dataset != "files" or bool(self.data.val_file) or not needs_validation(self.mechanism.method),
               "data.val_file", self.data.val_file, f"mechanism.method = {self.mechanism.method!r} values uploads on "
               "the server's validation set: give data.val_file (python -m fedfair prepare --val-size N writes one)")
        m = self.mechanism
        wants = ([f"mechanism.valuation = {m.valuation!r}"] if valued(m.method) and valuations.needs_validation(m)
                 else [])
        wants += [f"mechanism.audit = {m.audit!r}"] if m.audit != "none" else []
        if wants and not needs_validation(m.method):
            files = self.data.dataset == "files"
            have = bool(self.data.val_file) if files else self.data.val_size > 0
            _check(have, "data.val_file" if files else "data.val_size",
                   self.data.val_file if files else self.data.val_size,
                   f"{' and '.join(wants)} needs the server's validation set: set "
                   + ("data.val_file (python -m fedfair prepare --val-size N writes one)" if files
                      else "data.val_size > 0 (e.g. 1000 held-out samples no agent owns)"))

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out_dir) / self.run.name

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


#: Fields added after runs were recorded, and the value every run made before them had.
LATER_FIELDS: dict[tuple[str, str], Any] = {
    ("data", "cla_pool"): "full", ("data", "image_pad"): "model", ("train", "dtype"): "float32",
    ("mechanism", "normalize"): "rescale", ("mechanism", "eps"): 1e-7, ("mechanism", "grad_norm_decay"): 1.0,
    ("data", "agent_files"): "", ("data", "test_file"): "", ("data", "val_file"): "", ("data", "label_column"): "label",
    ("data", "num_classes"): 0, ("train", "model_args"): {}, ("run", "tensorboard"): False,
    ("mechanism", "valuation"): "cosine", ("mechanism", "norm_bound"): "off", ("mechanism", "outlier_factor"): 100.0,
    ("mechanism", "audit"): "none", ("mechanism", "audit_every"): 10,
    ("mechanism", "fedce"): dataclasses.asdict(FedCESettings()),
    ("mechanism", "gtg"): dataclasses.asdict(GTGSettings()),
    ("train", "output"): "log_probs", ("run", "overwrite"): False,
    ("data", "feature_noise"): [], ("data", "copy_of"): [], ("data", "repeats"): []}


MOVED: dict[str, str] = {
    "mechanism.standalone_step": "mechanism.standalone.step", "mechanism.qffl_q": "mechanism.qffl.q",
    "mechanism.cffl_threshold": "mechanism.cffl.threshold", "mechanism.cffl_alpha": "mechanism.cffl.alpha",
    "mechanism.eci_permutations": "mechanism.eci.permutations", "mechanism.behaviours": "adversary.behaviours"}
"""Keys that moved to a table or section of their own: old dotted key -> new dotted key. A config
giving an old key is an error naming the new place; run folders recorded before the move are read
with their keys moved (``fedfair.config.loading.load_recorded``)."""


def _pop(d: dict[str, Any], dotted: str) -> Any:
    *tables, key = dotted.split(".")
    for t in tables:
        d = d[t]
    return d.pop(key)


def _put(d: dict[str, Any], dotted: str, value: Any) -> None:
    *tables, key = dotted.split(".")
    for t in tables:
        d = d.setdefault(t, {})
    d[key] = value


def run_identity(cfg: Config) -> dict[str, dict[str, Any]]:
    """The config as part of a run's identity (fairness reference key, checkpoints).

    Fields of LATER_FIELDS are left out at their old value, so keys and checkpoints written
    before the fields existed still match (a missing key = the default); cla_pool counts as full
    outside CLA, where it changes nothing. MOVED keys are written at their old place, so a
    checkpoint written before they moved still fits.
    """
    d = cfg.to_dict()
    for old, new in MOVED.items():
        _put(d, old, _pop(d, new))
    for table in {new.rsplit(".", 1)[0] for new in MOVED.values()}:  # the emptied tables and sections
        *parents, name = table.split(".")
        holder = d
        for t in parents:
            holder = holder[t]
        if not holder[name]:
            del holder[name]
    if cfg.data.partition != "cla":
        d["data"]["cla_pool"] = LATER_FIELDS[("data", "cla_pool")]
    for (sec, key), old in LATER_FIELDS.items():
        if d[sec][key] == old:
            del d[sec][key]
    return d


