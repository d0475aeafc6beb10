"""Run outputs: logs/<run name>/{config.toml, agents.csv, server.csv, summary.json}."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from ..config import Config, run_identity, to_toml

AGENT_COLUMNS = ["round", "agent", "psi", "r", "cgsv_r", "q", "density", "k", "encoding", "bytes_up", "bytes_down",
                 "bytes_recv", "valid", "test_acc", "test_loss", "local_acc", "local_loss", "train_loss",
                 "shard_loss", "dist_to_server", "train_s"]
SERVER_COLUMNS = ["round", "test_acc", "test_loss", "mechanism_s", "train_s", "round_s", "bytes_up",
                  "bytes_down", "bytes_down_dense", "rejected"]


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def truncate_rounds(path: Path, through: int) -> None:
    """Keep the header and the rows of rounds <= ``through`` (a resumed run rewrites the later ones)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1]
    for line in lines[1:]:
        head = line.split(",", 1)[0]
        if head.isdigit() and int(head) <= through and line.endswith("\n"):
            keep.append(line)
    atomic_write_text(path, "".join(keep))


class RunLog:
    """CSV writers for the per-round logs; rows are flushed as they come, so a killed run leaves its history.

    ``resume_after = t`` (a run resumed from the checkpoint of round t) keeps the rows of rounds
    <= t and appends after them, so a resumed run's CSVs hold each round exactly once.
    """

    def __init__(self, cfg: Config, append: bool = False, resume_after: int | None = None) -> None:
        self.dir = cfg.run_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.dir / "config.toml", to_toml(cfg))
        if resume_after:
            append = True
            for name in ("agents", "server"):
                truncate_rounds(self.dir / f"{name}.csv", resume_after)
        self._files = {}
        self._writers = {}
        for name, cols in (("agents", AGENT_COLUMNS), ("server", SERVER_COLUMNS)):
            path = self.dir / f"{name}.csv"
            fresh = not (append and path.exists())
            f = open(path, "w" if fresh else "a", newline="")
            w = csv.DictWriter(f, fieldnames=cols)
            if fresh:
                w.writeheader()
            self._files[name], self._writers[name] = f, w

    def agent_row(self, row: dict[str, Any]) -> None:
        self._writers["agents"].writerow({k: _fmt(v) for k, v in row.items()})

    def server_row(self, row: dict[str, Any]) -> None:
        self._writers["server"].writerow({k: _fmt(v) for k, v in row.items()})
        for f in self._files.values():
            f.flush()

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")

    def close(self) -> None:
        for f in self._files.values():
            f.close()


def reference_key(cfg: Config) -> str:
    """What must match for a standalone run to serve as another run's fairness reference: the
    data, the local training, seed, rounds, and the step standalone takes (Γ, its schedule, the
    normaliser and its ε). Settings added later are named only when not at their old default
    (``run_identity``), so keys recorded before they existed still match.
    """
    ident = run_identity(cfg)
    key = {"data": ident["data"], "train": ident["train"], "seed": cfg.run.seed, "rounds": cfg.run.rounds,
           "grad_norm": cfg.mechanism.grad_norm, "standalone_step": cfg.mechanism.standalone_step}
    key.update({k: ident["mechanism"][k] for k in ("normalize", "eps", "grad_norm_decay") if k in ident["mechanism"]})
    return json.dumps(key, sort_keys=True)


def find_standalone_reference(cfg: Config) -> list[float] | None:
    """Final accuracies of a finished standalone run with the same data, training, seed and rounds."""
    root = Path(cfg.run.out_dir)
    if not root.is_dir():
        return None
    key = reference_key(cfg)
    for path in sorted(root.glob("*/summary.json")):
        try:
            s = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if s.get("method") == "standalone" and s.get("reference_key") == key:
            return s.get("final_acc")
    return None
