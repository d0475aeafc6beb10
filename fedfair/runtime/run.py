"""Entry point that torchrun starts: ``python -m fedfair.run --config FILE [section.key=value ...]``.

Rank 0 is the server; ranks 1..P-1 host the agents (``run.ranks`` = P, 0 = N + 1: rank i is
agent i; see ``fedfair.runtime.placement``). Everything that can be wrong with the
input (config, world size, data files) is checked on every rank *before* the process group
exists, so a bad job stops at once with one line instead of a hung rendezvous. The set-up is
``fedfair.runtime.setup``'s, the ranks' roles are ``fedfair.runtime.roles``.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from ..config import Config, ConfigError, load_config
from ..data.party_files import FileProblem, load_party_data
from ..models import default_model_for
from ..strategies.valuing import check_valuation
from . import datafiles, runfolder
from .checkpoint import CheckpointError, resume_requested
from .placement import world_size_for
from .roles import run_rank
from .runfolder import RunFolderError
from .setup import Setup, SetupError, build_model, check_runnable, check_world_size, prepare
from .training import layer_sizes
from .transport import RunAborted


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


def one_line(message: str) -> str:
    """Bad-input messages are one line (each names its config field where it is raised: a data-layer
    setting by ``fedfair.runtime.setup.prepare``, which knows which data.* field it came from)."""
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


def fail(message: str, rank: int = 0, code: int = 2) -> None:
    if rank == 0:
        print(f"fedfair: error: {one_line(message)}", file=sys.stderr, flush=True)
    sys.exit(code)


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
