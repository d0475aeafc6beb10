"""The parties' own data files in a run: who reads what, the start-up exchange, the run's record.

Before the process group exists every rank reads only its own files (fedfair.data.party_files; the
server: the test and validation files) and checks them against the test file. Once the group
exists, the ranks all-reduce one fixed-size int64 summary row per agent (sample shape, dtype,
label range, class counts, sha256 of the file and of the party's test file, the file's name):
never data, and no pickled objects. Every rank checks every row the same way, so a party whose
file does not fit stops the whole job with one line from rank 0; the server takes the shard
sizes from the rows and, once the ranks agreed where the run starts, records in
``<run folder>/data_files.json`` which files each rank opened (:func:`record`). A run resumed from
a checkpoint must read the files it started with: their sha256 against that record, or one line
naming the changed file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..config import Config
from ..data.party_files import (
    COUNTS,
    PRESENT,
    RANK,
    SAMPLES,
    SHA,
    TEST_SHA,
    FileProblem,
    PartyData,
    agent_path,
    check_summary,
    load_party_data,
    summary_path,
)
from .logs import DATA_RECORD, atomic_write_text
from .placement import hosted_agents


def load(cfg: Config, rank: int | None, world_size: int | None) -> PartyData:
    """The files this rank may open: the server (rank 0) the test and validation files, an agent
    rank its hosted agents' files and the test file; rank None (one process, tools) every file."""
    d = cfg.data
    if rank is None or world_size is None:
        hosted, server = list(range(1, d.agents + 1)), True
    else:
        hosted, server = hosted_agents(d.agents, rank, world_size), rank == 0
    return load_party_data(d.agent_files, d.test_file, d.agents, hosted, val_file=d.val_file if server else "",
                           label_column=d.label_column, num_classes=d.num_classes, rank=rank or 0, server=server)


def exchange(cfg: Config, party: PartyData, rank: int, device: torch.device) -> list[int]:
    """All-reduce the agents' summaries and check every one (kept in ``party.rows`` for :func:`record`);
    returns the shard sizes."""
    n, classes = cfg.data.agents, party.num_classes
    table = torch.zeros(n, COUNTS + classes, dtype=torch.int64)
    for agent, row in party.summaries.items():
        table[agent - 1] = torch.from_numpy(row)
    table = table.to(device)
    dist.all_reduce(table)
    rows = table.cpu().numpy()
    for agent in range(1, n + 1):
        row = rows[agent - 1]
        if row[PRESENT] != 1:
            raise FileProblem(f"data.agent_files: agent {agent}'s file {agent_path(cfg.data.agent_files, agent)!r} "
                              f"was read by {int(row[PRESENT])} ranks, expected exactly one", local=False)
        check_summary(row, party.test_summary, f"data.agent_files: agent {agent}", cfg.data.test_file, classes,
                      local=False)
    party.rows = rows
    return [int(r[SAMPLES]) for r in rows]


def record(cfg: Config, party: PartyData, rank: int, device: torch.device, resumed: bool) -> None:
    """Collective, after the checkpoint agreement: on a resumed run (``resumed``: it continues from a
    checkpoint) the files must be those the run recorded, else every rank stops (rank 0 says which
    file changed); then rank 0 writes data_files.json."""
    changed = changed_file(cfg, party) if rank == 0 and resumed else None
    flag = torch.tensor([int(changed is not None)], dtype=torch.int64).to(device)
    dist.all_reduce(flag)
    if int(flag.item()):
        raise FileProblem(changed or "a party's file changed since the run started (rank 0 names it)", local=False)
    if rank == 0:
        write_record(cfg, party, party.rows)


def changed_file(cfg: Config, party: PartyData) -> str | None:
    """The first file whose sha256 differs from the run's data_files.json, as one line (None: all same,
    or no record to compare with)."""
    try:
        old = json.loads((cfg.run_dir / DATA_RECORD).read_text())
        before = {"test": old["test_file"]["sha256"], **{a: e["sha256"] for a, e in old["agents"].items()}}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    now = {"test": _hex(party.test_summary, SHA),
           **{str(agent): _hex(row, SHA) for agent, row in enumerate(party.rows, start=1)}}
    for key in before:
        if key in now and now[key] != before[key]:
            who, path = (("data.test_file", cfg.data.test_file) if key == "test" else
                         (f"data.agent_files: agent {key}", summary_path(party.rows[int(key) - 1])))
            return (f"{who}: {path!r} changed since the run started (sha256 {before[key][:12]}... in "
                    f"{cfg.run_dir / DATA_RECORD}, now {now[key][:12]}...): resuming would train on two data sets; "
                    "restore the file, or start the run again (run.overwrite = true, or another run.name)")
    return None


def _hex(row: np.ndarray, at: int) -> str:
    return bytes(row[at:at + 32].astype(np.uint8)).hex()


def write_record(cfg: Config, party: PartyData, rows: np.ndarray) -> Path:
    """``data_files.json``: every rank's opened files (as it reported them), each agent's file summary."""
    opened: dict[str, list[str]] = {"0": list(party.opened)}
    agents: dict[str, dict[str, Any]] = {}
    for agent, row in enumerate(rows, start=1):
        rank = str(int(row[RANK]))
        if rank not in opened:
            opened[rank] = [cfg.data.test_file] if row[TEST_SHA:TEST_SHA + 32].any() else []
        opened[rank].append(summary_path(row))
        agents[str(agent)] = {"rank": int(row[RANK]), "file": summary_path(row), "sha256": _hex(row, SHA),
                              "samples": int(row[SAMPLES]), "class_counts": [int(c) for c in row[COUNTS:]]}
    record = {"num_classes": party.num_classes,
              "test_file": {"file": cfg.data.test_file, "sha256": _hex(party.test_summary, SHA),
                            "samples": int(party.test_summary[SAMPLES])},
              "opened_by_rank": dict(sorted(opened.items(), key=lambda kv: int(kv[0]))), "agents": agents}
    path = cfg.run_dir / DATA_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path
