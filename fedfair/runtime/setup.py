"""What every rank sets up before the rounds, the same way on every rank: the data (load, cut the
shards, the validation-size default for methods that need one), the initial model w_0, the
server's validation set, and the backend (gloo/NCCL, the device, torchrun's store). Every check
that can fail runs here, before any process group exists.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from ..config import Config
from ..data import SettingError, Shard, TaskData, load_task, make_shards, validation_size
from ..data.party_files import PartyData
from ..methods import needs_validation
from ..models import build_model as build_network
from ..models import default_model_for
from . import datafiles, live
from .placement import world_size_for
from .training import ValidationSet


class SetupError(ValueError):
    """Bad input found before training (world size, data): one clear line for the user."""


@dataclass
class Setup:
    """What every rank derives identically from the config and seed."""
    task: TaskData
    shards: list[Shard]
    val_indices: np.ndarray
    model_name: str
    files: PartyData | None = None
    """data.dataset = files: what this rank read (its own agents' files only); shards of others are empty."""
    config: Config | None = None
    """The config the run uses: the one given, with data.val_size resolved to the size held out (a new
    object: the loaded config is never changed); config.toml and the reference key record it."""


def prepare(cfg: Config, rank: int | None = None, world_size: int | None = None) -> Setup:
    """Load the data set, cut the agents' shards, name the model; same result on every rank.
    With data.dataset = files a rank reads only its own files (``rank`` None: all of them)."""
    model_name = cfg.train.model or default_model_for(cfg.data.dataset)
    if cfg.data.dataset == "files":
        party = datafiles.load(cfg, rank, world_size)
        return Setup(party.task, party.shards, party.val_indices, model_name, party, config=cfg)
    task = load_task(cfg.data.dataset, cfg.data.data_dir or None, seed=cfg.run.seed,
                     test_fraction=cfg.data.test_fraction, image_pad=cfg.data.image_pad)
    # the data split's policy (fedfair.data.shards): cffl and eci get a default slice when val_size is 0
    val_size = validation_size(cfg.data.val_size, needs_validation(cfg.mechanism.method), task.num_train)
    if val_size != cfg.data.val_size:
        cfg = replace(cfg, data=replace(cfg.data, val_size=val_size))
    try:
        shards, val = make_shards(task, partition=cfg.data.partition, agents=cfg.data.agents, seed=cfg.run.seed,
                                  pool_size=cfg.data.pool_size or None, shard_size=cfg.data.shard_size or None,
                                  label_noise=cfg.data.label_noise, val_size=cfg.data.val_size,
                                  cla_pool=cfg.data.cla_pool, feature_noise=cfg.data.feature_noise,
                                  copy_of=cfg.data.copy_of, repeats=cfg.data.repeats)
    except SettingError as e:  # each of make_shards' settings is the data.* field of the same name
        raise SetupError(e.named(f"data.{e.setting}")) from None
    return Setup(task, shards, val, model_name, config=cfg)


def build_model(cfg: Config, setup: Setup) -> torch.nn.Module:
    """The common initial model w_0: identical on every rank because the seed is."""
    torch.manual_seed(cfg.run.seed)
    model = build_network(setup.model_name, setup.task, cfg.train.model_args, cfg.train.output)
    # float64: the same initial values (drawn in float32, then widened), trained in float64
    return model.to(torch.float64) if cfg.train.dtype == "float64" else model


def validation_set(cfg: Config, setup: Setup) -> ValidationSet:
    """The server's held-out validation slice (cffl, eci, the validation-based valuations, the audit),
    evaluated through a probe model."""
    if len(setup.val_indices) == 0:
        where = "data.val_file" if cfg.data.dataset == "files" else "data.val_size > 0"
        raise SetupError(f"mechanism.method = {cfg.mechanism.method!r} needs a validation set: set {where}")
    return ValidationSet(build_model(cfg, setup), setup.task, setup.val_indices)


def check_world_size(cfg: Config, world_size: int) -> None:
    """The job's world size must be run.ranks (N + 1 when 0), as launch/*.sh start it."""
    n, want = cfg.data.agents, world_size_for(cfg.data.agents, cfg.run.ranks)
    if world_size == want:
        return
    if cfg.run.ranks == 0:
        raise SetupError(f"world size {world_size} does not fit data.agents = {n}: a run needs N + 1 = {n + 1} "
                         f"ranks (rank 0 = server), e.g. torchrun --nproc_per_node {n + 1} -m fedfair.run ...")
    raise SetupError(f"world size {world_size} does not fit run.ranks = {want}: start {want} ranks (rank 0 = "
                     f"server), e.g. torchrun --nproc_per_node {want} -m fedfair.run ..., or set run.ranks")


def check_runnable(cfg: Config) -> None:
    """What the config cannot know alone: the devices a backend needs, the packages an option needs."""
    if cfg.run.tensorboard:
        live.require()
    if cfg.comm.backend == "nccl":
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus < local_world:
            raise SetupError(f"comm.backend = 'nccl' needs one CUDA device per rank: this node has {gpus} for "
                             f"{local_world} local ranks; use comm.backend = 'gloo' or 'auto'")


def choose_backend(cfg: Config) -> str:
    if cfg.comm.backend != "auto":
        return cfg.comm.backend
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if torch.cuda.is_available() and torch.cuda.device_count() >= local_world:
        return "nccl"
    return "gloo"


def choose_device(backend: str) -> torch.device:
    """NCCL: each rank its own GPU (LOCAL_RANK). gloo: agents train on a GPU when there is one
    (ranks may share it) and tensors are staged through the host for the wire; else the CPU.
    The server's mechanism always runs on the host (its top-k and codecs are numpy)."""
    if backend == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return torch.device("cpu")


def elastic_store(world_size: int, rank: int, timeout: timedelta) -> dist.Store:
    """torchrun's store, under a prefix fresh for every restart.

    torch 2.13 reuses the agent's TCPStore across ``--max-restarts`` without a per-attempt
    prefix, so a restarted gloo group would read the dead attempt's keys and fail to rejoin:
    with that shared store, keys go under ``attempt_<TORCHELASTIC_RESTART_COUNT>``. That count is
    per node, and a node restarted only because another node failed keeps its count, so
    multi-node jobs run with ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` (launch/multinode.sh):
    then every rendezvous round gets a new MASTER_PORT, rank 0 hosts a fresh store and no
    prefix is needed.
    """
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    base = dist.TCPStore(host, port, world_size, is_master=(rank == 0 and not agent_store), timeout=timeout)
    if not agent_store:
        return base
    if rank == 0 and int(os.environ.get("GROUP_WORLD_SIZE", "1")) > 1 and \
            int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0:
        print("fedfair: warning: multi-node restarts need TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in torchrun's "
              "environment (launch/multinode.sh sets it)", file=sys.stderr, flush=True)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"fedfair/attempt_{attempt}", base)
