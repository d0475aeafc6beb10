"""Checkpoints: every ``run.checkpoint_every`` rounds (and at the last round), each rank writes its
own state under ``<run dir>/ckpt/round_<t>/``, atomically (temporary file, fsync, ``os.replace``).

- agent i writes ``agent_<i>.pt`` (model, optimizer, RNGs incl. its batch-order generator, last
  reward, byte counters) *before* it sends the server its round statistics; a rank hosting
  several agents writes one file per agent, so the files do not depend on ``run.ranks``;
- the server, once it has every agent's statistics for round t (so every agent file of round t
  is on disk), writes ``server.pt`` (w, its copies of the agents' models, the strategy state,
  totals, last evaluation, RNGs) and then the marker ``COMPLETE``.

A round counts only when the marker exists on the server and *every* rank can load its own file
of that round: on start every rank lists the rounds it can load, and one all-reduce (MIN over a
small integer vector, no model data) gives the newest round complete on all ranks. So a
crash in the middle of writing never yields a mixed checkpoint, and no shared file system is
needed (each rank only reads its own files; multi-node jobs keep agent files on their nodes).
The same all-reduce decides whether to resume at all (``run.resume`` on any rank, or a torchrun
restart on any node: membership restarts do not raise ``TORCHELASTIC_RESTART_COUNT`` on every
node), so every rank takes the same decision. Only the two newest complete rounds are kept.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..config import Config, run_identity
from .logs import atomic_write_text

SERVER_FILE = "server.pt"
MARKER = "COMPLETE"
KEEP = 2
_ROUND_DIR = re.compile(r"^round_(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (e.g. written by a differently configured run)."""


def compat_config(cfg: Config) -> dict[str, Any]:
    """What must be equal for a checkpoint to continue this run (run length, evaluation, comm may change)."""
    d = run_identity(cfg)  # a checkpoint written before later settings existed still fits
    out = {"seed": cfg.run.seed, "data": d["data"], "train": d["train"], "mechanism": d["mechanism"]}
    if cfg.run.participation != 1.0:  # absent before partial participation existed: = 1
        out["participation"] = cfg.run.participation
    return out


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            name = f"{path}.{k}" if path else k
            if k not in a or k not in b:
                return name
            diff = _first_difference(a[k], b[k], name)
            if diff:
                return diff
        return None
    return None if a == b else f"{path} ({a!r} in the checkpoint, {b!r} now)"


def atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def agent_file(index: int) -> str:
    return f"agent_{index:04d}.pt"


class Checkpointer:
    """One rank's view of the run's checkpoints (rank 0 = server; other ranks: the files of the
    agents they host, ``agents``, by default agent ``rank``)."""

    def __init__(self, cfg: Config, rank: int, agents: list[int] | None = None) -> None:
        self.cfg = cfg
        self.rank = rank
        self.root = cfg.run_dir / "ckpt"
        self.every = cfg.run.checkpoint_every
        self.agents = [] if rank == 0 else (agents if agents is not None else [rank])
        self.files = [SERVER_FILE] if rank == 0 else [agent_file(i) for i in self.agents]
        self.problems: list[str] = []
        """Checkpoint files of this rank that could not be used, one line each (file, round, why)."""

    def round_dir(self, t: int) -> Path:
        return self.root / f"round_{t:08d}"

    def due(self, t: int) -> bool:
        return self.every > 0 and (t % self.every == 0 or t == self.cfg.run.rounds)

    # ------------------------------------------------------------------ writing
    def save(self, t: int, state: dict[str, Any]) -> None:
        """The server's state for round t, then the marker that makes the round complete."""
        d = self.round_dir(t)
        d.mkdir(parents=True, exist_ok=True)
        atomic_save({"round": t, "rank": self.rank, "config": compat_config(self.cfg), **state}, d / SERVER_FILE)
        files = [SERVER_FILE] + [agent_file(i) for i in range(1, self.cfg.data.agents + 1)]
        atomic_write_text(d / MARKER, json.dumps({"round": t, "files": files}) + "\n", durable=True)
        self.prune()

    def save_agents(self, t: int, states: dict[int, dict[str, Any]]) -> None:
        """Each hosted agent's state for round t, one file per agent."""
        d = self.round_dir(t)
        d.mkdir(parents=True, exist_ok=True)
        config = compat_config(self.cfg)
        for index, state in states.items():
            atomic_save({"round": t, "rank": self.rank, "agent": index, "config": config, **state},
                        d / agent_file(index))
        self.prune()

    def _remove(self, t: int) -> None:
        d = self.round_dir(t)
        if self.rank == 0:
            _unlink(d / MARKER)  # first: the round stops counting before any file goes
        for name in self.files:
            _unlink(d / name)
        try:
            d.rmdir()  # the last rank to leave removes the folder (shared file systems)
        except OSError:
            pass

    def prune(self) -> None:
        for t in self.own_rounds()[KEEP:]:
            self._remove(t)

    def clear(self, after: int = 0) -> None:
        """Delete this rank's files of every round > ``after`` (a fresh start clears all)."""
        for t in self.own_rounds():
            if t > after:
                self._remove(t)

    # ------------------------------------------------------------------ reading
    def own_rounds(self) -> list[int]:
        """Rounds for which all this rank's files (and, on the server, the marker) exist, newest first."""
        if not self.root.is_dir():
            return []
        out = []
        for d in self.root.iterdir():
            m = _ROUND_DIR.match(d.name)
            if m and all((d / name).is_file() for name in self.files) and \
                    (self.rank != 0 or (d / MARKER).is_file()):
                out.append(int(m.group(1)))
        return sorted(out, reverse=True)

    def last_complete(self) -> int:
        """The newest round the server has marked complete (0 = none)."""
        rounds = self.own_rounds() if self.rank == 0 else []
        return rounds[0] if rounds else 0

    def describe_last(self) -> str:
        t = self.last_complete()
        if t == 0:
            return ("no checkpoint yet" if self.every > 0 else "no checkpoints (run.checkpoint_every = 0)")
        return f"last complete checkpoint: round {t} ({self.round_dir(t)})"

    def _load_file(self, t: int, name: str) -> dict[str, Any] | None:
        """A checkpoint file of round t, or None (unreadable, truncated, another round's): that round
        does not count, and the problem is kept in ``problems`` to be reported."""
        path = self.round_dir(t) / name
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            why = f"{type(e).__name__}: {e}".splitlines()[0][:200]
            self.problems.append(f"checkpoint {path} (round {t}) cannot be read (truncated or corrupt? {why})")
            return None
        if not isinstance(state, dict) or state.get("round") != t:
            held = state.get("round") if isinstance(state, dict) else type(state).__name__
            self.problems.append(f"checkpoint {path} (round {t}) holds round {held!r}")
            return None
        return state

    def _load(self, t: int) -> dict[str, Any] | None:
        """The server's state of round t, or on a hosting rank {"round", "config", "agents": {i: state}}
        (None unless every hosted agent's file loads and all were written with one config)."""
        if self.rank == 0:
            return self._load_file(t, SERVER_FILE)
        agents = {}
        for index, name in zip(self.agents, self.files):
            state = self._load_file(t, name)
            if state is None:
                return None
            agents[index] = state
        configs = [s.get("config") for s in agents.values()]
        if any(c != configs[0] for c in configs):
            return None
        return {"round": t, "config": configs[0], "agents": agents}

    def agree(self, want_resume: bool) -> tuple[int, dict[str, Any] | None]:
        """Collective (every rank calls it once, after init_process_group): the round to start after.

        Returns (0, None) for a fresh start (this rank's old checkpoint files are removed) or
        (t, this rank's state of round t).
        """
        rounds = self.cfg.run.rounds
        mine = compat_config(self.cfg)
        states: dict[int, dict[str, Any]] = {}
        differs = None
        # every rank offers its rounds, even one that does not itself want to resume: on a node
        # restarted only because another failed, TORCHELASTIC_RESTART_COUNT is still 0
        for t in [t for t in self.own_rounds() if t <= rounds][:KEEP + 1]:
            state = self._load(t)
            if state is None:
                continue
            diff = _first_difference(state.get("config"), mine)
            if diff:
                differs = differs or (t, diff)
                continue
            states[t] = state
        vec = torch.zeros(rounds + 3, dtype=torch.int64)
        vec[0] = -int(want_resume)
        vec[1] = -int(differs is not None)
        for t in states:
            vec[2 + t] = 1
        if dist.get_backend() == "nccl":
            vec = vec.cuda()
        dist.all_reduce(vec, op=dist.ReduceOp.MIN)
        vec = vec.cpu()
        resume, incompatible = bool(vec[0] < 0), bool(vec[1] < 0)
        if not resume:
            self.clear(after=0)
            return 0, None
        for problem in self.problems:  # each rank its own files: which file, which round, why
            print(f"fedfair: warning: {problem}: that round does not count", file=sys.stderr, flush=True)
        if incompatible:
            where = f"{self.root}"
            detail = (f" (round {differs[0]}: {differs[1]})" if differs else "")
            raise CheckpointError(f"run.resume: the checkpoints in {where} were written by a run with other "
                                  f"settings{detail}; use the same settings or another run.name")
        complete = [t for t in range(1, rounds + 1) if vec[2 + t] == 1]
        start = complete[-1] if complete else 0
        note = self.resume_note(start) if self.rank == 0 else ""  # before clearing: what was on disk
        self.clear(after=start)
        if note:
            print(f"fedfair: {note}", file=sys.stderr, flush=True)
        return start, states.get(start)


    def resume_note(self, start: int) -> str:
        """What a resume does, and why when it starts from round 1 although checkpoints were there."""
        if start:
            return f"resuming after round {start} from {self.round_dir(start)}"
        on_disk = sorted({int(m.group(1)) for d in (self.root.iterdir() if self.root.is_dir() else [])
                          if (m := _ROUND_DIR.match(d.name))}, reverse=True)
        if not on_disk:
            return f"no checkpoint in {self.root}: starting from round 1"
        return (f"no checkpoint in {self.root} is complete and readable on every rank (round(s) "
                f"{', '.join(map(str, on_disk))} on disk; the warnings above say which files failed): starting "
                "from round 1")


def resume_requested(cfg: Config) -> bool:
    """run.resume, or this process is a torchrun restart."""
    return cfg.run.resume or int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0
