"""One rank of a job, to the end: the set-up every rank shares (process group, strategy,
checkpoint agreement), then its role: rank 0 the server (``serve``), ranks 1..P-1 the hosts of
the agents (``work``).
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from ..config import Config
from ..strategies import ServerContext, Strategy, build_strategy
from . import datafiles, runfolder
from .agent import Agent
from .checkpoint import Checkpointer, resume_requested
from .host import Host
from .logs import RunLog, agent_table
from .placement import host_ranks, hosted_agents
from .server import Server
from .setup import (
    Setup,
    build_model,
    check_world_size,
    choose_backend,
    choose_device,
    elastic_store,
    prepare,
    validation_set,
)
from .training import ValidationSet, layer_sizes
from .transport import AgentTransport, ServerTransport
from .wire import upload_size


def run_rank(cfg: Config, rank: int, world_size: int, store: dist.Store | None = None,
             setup: Setup | None = None) -> dict[str, Any]:
    """Run one rank of the job to the end.

    Returns, on the server: the summary, the final server model ``w`` and the server's copy of
    every agent's model; on an agent: its final model ``w`` and the bytes it received.
    """
    check_world_size(cfg, world_size)
    torch.set_num_threads(cfg.run.threads)
    setup = setup or prepare(cfg, rank, world_size)
    cfg = setup.config or cfg  # data.val_size as held out, which config.toml and the reference key record
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
