"""Entry point that torchrun starts: ``python -m fedfair.run --config FILE [section.key=value ...]``.

Rank 0 is the server; ranks 1..P-1 host the agents (``run.ranks`` = P, 0 = N + 1: rank i is
agent i; see ``fedfair.runtime.placement``). Everything that can be wrong with the
input (config, world size, data files) is checked on every rank *before* the process group
exists, so a bad job stops at once with one line instead of a hung rendezvous.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..config import Config, ConfigError, load_config
from ..data import Shard, TaskData, load_task, make_shards
from ..data.party_files import FileProblem, PartyData, load_party_data
from ..models import build_model as build_network
from ..models import default_model_for
from ..strategies import ServerContext, Strategy, build_strategy, default_val_size, needs_validation
from ..strategies.valuing import check_valuation
from . import datafiles, live, runfolder
from .agent import Agent
from .checkpoint import Checkpointer, CheckpointError, resume_requested
from .host import Host
from .logs import RunLog, agent_table
from .placement import host_ranks, hosted_agents, world_size_for
from .runfolder import RunFolderError
from .server import Server
from .training import ValidationSet, layer_sizes
from .transport import AgentTransport, RunAborted, ServerTransport
from .wire import upload_size


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


def prepare(cfg: Config, rank: int | None = None, world_size: int | None = None) -> Setup:
    """Load the data set, cut the agents' shards, name the model; same result on every rank.
    With data.dataset = files a rank reads only its own files (``rank`` None: all of them)."""
    model_name = cfg.train.model or default_model_for(cfg.data.dataset)
    if cfg.data.dataset == "files":
        party = datafiles.load(cfg, rank, world_size)
        return Setup(party.task, party.shards, party.val_indices, model_name, party)
    task = load_task(cfg.data.dataset, cfg.data.data_dir or None, seed=cfg.run.seed,
                     test_fraction=cfg.data.test_fraction, image_pad=cfg.data.image_pad)
    resolve_val_size(cfg, task.num_train)
    shards, val = make_shards(task, partition=cfg.data.partition, agents=cfg.data.agents, seed=cfg.run.seed,
                              pool_size=cfg.data.pool_size or None, shard_size=cfg.data.shard_size or None,
                              label_noise=cfg.data.label_noise, val_size=cfg.data.val_size,
                              cla_pool=cfg.data.cla_pool, feature_noise=cfg.data.feature_noise,
                              copy_of=cfg.data.copy_of, repeats=cfg.data.repeats)
    return Setup(task, shards, val, model_name)


def resolve_val_size(cfg: Config, num_train: int) -> None:
    """cffl and eci need a validation set: with data.val_size = 0 they get the documented default
    (``fedfair.strategies.default_val_size``: 10% of the training data, at most 1000), written
    into cfg so that config.toml and the fairness reference key record what was used."""
    if cfg.data.val_size == 0 and needs_validation(cfg.mechanism.method):
        cfg.data.val_size = default_val_size(num_train)


def build_model(cfg: Config, setup: Setup) -> torch.nn.Module:
    """The common initial model w_0: identical on every rank because the seed is."""
    torch.manual_seed(cfg.run.seed)
    model = build_network(setup.model_name, setup.task, cfg.train.model_args, cfg.train.output)
    # float64: the same initial values (drawn in float32, then widened), trained in float64
    return model.to(torch.float64) if cfg.train.dtype == "float64" else model


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


def run_rank(cfg: Config, rank: int, world_size: int, store: dist.Store | None = None,
             setup: Setup | None = None) -> dict[str, Any]:
    """Run one rank of the job to the end.

    Returns, on the server: the summary, the final server model ``w`` and the server's copy of
    every agent's model; on an agent: its final model ``w`` and the bytes it received.
    """
    check_world_size(cfg, world_size)
    torch.set_num_threads(cfg.run.threads)
    setup = setup or prepare(cfg, rank, world_size)
    model = build_model(cfg, setup)
    if rank == 0:  # the server writes the run folder: never over another run by accident
        claim_run_folder(cfg)
    sizes = layer_sizes(model)
    timeout = timedelta(seconds=cfg.comm.timeout_s)
    backend = choose_backend(cfg)
    if store is None:
        store = elastic_store(world_size, rank, timeout)
    device = choose_device(backend)
    if backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
    try:
        # the server's validation set exists before the strategy: nothing in its context changes later
        validation = validation_set(cfg, setup) if rank == 0 and cfg.mechanism.needs_validation() else None
        shard_sizes = [len(s.indices) for s in setup.shards] if setup.files is None else \
            datafiles.exchange(cfg, setup.files, rank, device)  # the parties' sizes, from their summaries
        ctx = ServerContext(agents=cfg.data.agents, dim=sum(sizes), layer_sizes=sizes, shard_sizes=shard_sizes,
                            validation_accuracy=None if validation is None else validation.accuracy,
                            validation_gradient=None if validation is None else validation.loss_gradient,
                            num_classes=setup.task.num_classes)
        strategy = build_strategy(cfg, ctx)
        # every rank: the newest checkpoint complete on all ranks, if this is a resume (collective)
        ckpt = Checkpointer(cfg, rank, hosted_agents(cfg.data.agents, rank, world_size))
        start, state = ckpt.agree(resume_requested(cfg))
        if setup.files is not None:  # a resumed run must read the files it started with; then the record
            datafiles.record(cfg, setup.files, rank, device, resumed=start > 0)
        if rank == 0:
            return serve(cfg, setup, model, strategy, validation, ckpt, start, state, device)
        return work(cfg, rank, setup, model, strategy, ckpt, start, state, device)
    finally:
        dist.destroy_process_group()


def claim_run_folder(cfg: Config) -> None:
    """The run folder is free, or this job continues it (run.resume, a torchrun restart) or replaces
    it (run.overwrite: the old records go now), and it can be written."""
    resuming = resume_requested(cfg)
    runfolder.check_free(cfg, resuming)
    if cfg.run.overwrite and not resuming:
        runfolder.clear(cfg)
    runfolder.check_writable(cfg)


def serve(cfg: Config, setup: Setup, model: torch.nn.Module, strategy: Strategy, validation: ValidationSet | None,
          ckpt: Checkpointer, start: int, state: dict[str, Any] | None, device: torch.device) -> dict[str, Any]:
    """Rank 0: the server's rounds after round ``start``, then the summary and the end-of-run table."""
    log = RunLog(cfg, resume_after=start)
    transport = ServerTransport(cfg.data.agents, upload_size(strategy.ctx.dim, strategy.extras), device,
                                 timeout_s=cfg.comm.timeout_s,
                                 hosts=host_ranks(cfg.data.agents, dist.get_world_size()))
    server = Server(cfg, setup.task, model, strategy, transport, log, validation=validation, checkpointer=ckpt)
    if state is not None:
        server.load_state_dict(state)
    try:
        summary = server.run(start_round=start + 1)
    finally:
        log.close()
    print(agent_table(summary), flush=True)
    return {"summary": summary, "w": server.w.clone(), "agent_models": server.agent_models}


def work(cfg: Config, rank: int, setup: Setup, model: torch.nn.Module, strategy: Strategy, ckpt: Checkpointer,
         start: int, state: dict[str, Any] | None, device: torch.device) -> dict[str, Any]:
    """Rank r > 0: the rounds after round ``start`` of the agents it hosts, one shared model."""
    model = model.to(device)
    agents = [Agent(cfg, index, setup.task, setup.shards[index - 1], model, strategy,
                    AgentTransport(cfg.comm.timeout_s, device, agent=index))
              for index in hosted_agents(cfg.data.agents, rank, dist.get_world_size())]
    host = Host(cfg, rank, agents, checkpointer=ckpt)
    if state is not None:
        host.load_state_dict(state["agents"])
    host.run(start_round=start + 1)
    return {"agents": {a.index: {"w": a.w.cpu().clone(), "received": a.transport.received} for a in agents}}


def validation_set(cfg: Config, setup: Setup) -> ValidationSet:
    """The server's held-out validation slice (cffl, eci, the validation-based valuations, the audit),
    evaluated through a probe model."""
    if len(setup.val_indices) == 0:
        where = "data.val_file" if cfg.data.dataset == "files" else "data.val_size > 0"
        raise SetupError(f"mechanism.method = {cfg.mechanism.method!r} needs a validation set: set {where}")
    return ValidationSet(build_model(cfg, setup), setup.task, setup.val_indices)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fedfair.run", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="TOML config file (default: built-in defaults)")
    p.add_argument("--world-size", action="store_true",
                   help="validate the config and data, print the world size (run.ranks, or N + 1 when 0) and exit "
                        "(used by launch/*.sh)")
    p.add_argument("--all-files", action="store_true",
                   help="with --world-size and data.dataset = files: check every party's file (the whole job runs on "
                        "this machine); without it only the common test file")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. mechanism.beta=1.5")
    return p.parse_args(argv)


DATA_ARGS = ("pool_size", "shard_size", "val_size", "label_noise", "feature_noise", "copy_of", "repeats", "partition")
"""make_shards' arguments that are data.* fields: its messages name them as ``arg=value``."""


def one_line(message: str) -> str:
    """Bad-input messages are one line, and name config fields as the config does."""
    text = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
    return re.sub(rf"(?<![.\w])({'|'.join(DATA_ARGS)})(?=[=\[])", r"data.\1", text)


def fail(message: str, rank: int = 0, code: int = 2) -> None:
    if rank == 0:
        print(f"fedfair: error: {one_line(message)}", file=sys.stderr, flush=True)
    sys.exit(code)


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


def precheck(cfg: Config, all_files: bool) -> None:
    """What the launchers run before torchrun (``--world-size``): the config, the devices and packages,
    the data, the model's output and the run folder, so bad input is one line before any rank starts.
    Party files: every one with ``all_files`` (the whole job runs on this machine: launch/local.sh),
    else the common test file only (the others are on the parties' machines)."""
    check_runnable(cfg)
    if cfg.data.dataset == "files" and not all_files:
        d = cfg.data
        party = load_party_data(d.agent_files, d.test_file, d.agents, [], label_column=d.label_column,
                                num_classes=d.num_classes)
        setup = Setup(party.task, party.shards, party.val_indices, cfg.train.model or default_model_for("files"), party)
    else:
        setup = prepare(cfg)
    check_valuation(cfg.mechanism, layer_sizes(build_model(cfg, setup)), setup.task.num_classes)
    runfolder.check_free(cfg, resume_requested(cfg))
    runfolder.check_writable(cfg)
    if setup.files is not None and setup.files.summaries and resume_requested(cfg) and \
            any((cfg.run_dir / "ckpt").glob("round_*")):  # a resume from a checkpoint: the files it started with
        setup.files.rows = np.stack([setup.files.summaries[i] for i in range(1, cfg.data.agents + 1)])
        changed = datafiles.changed_file(cfg, setup.files)
        if changed:
            raise SetupError(changed)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        cfg = load_config(args.config, args.overrides)
        if args.world_size:
            precheck(cfg, args.all_files)
            print(world_size_for(cfg.data.agents, cfg.run.ranks))
            return
        check_world_size(cfg, world_size)
        check_runnable(cfg)
        setup = prepare(cfg, rank, world_size)
        model = build_model(cfg, setup)  # a model that does not fit the data stops here, not in every rank
        check_valuation(cfg.mechanism, layer_sizes(model), setup.task.num_classes)
    except (ConfigError, SetupError, ValueError, OSError) as e:
        fail(str(e), 0 if getattr(e, "local", False) else rank)  # a party's own file: the rank that read it speaks
        return
    try:
        run_rank(cfg, rank, world_size, setup=setup)
    except (CheckpointError, FileProblem, RunFolderError) as e:
        fail(str(e), rank)
    except RunAborted as e:
        # one line from the rank that saw the failure; ranks that only lost their peer stay quiet
        if not e.quiet:
            print(f"fedfair: error: {one_line(str(e))}", file=sys.stderr, flush=True)
        sys.stderr.flush()
        os._exit(1)  # do not wait on a broken process group


if __name__ == "__main__":
    main()
