"""Run outputs: logs/<run name>/{config.toml, agents.csv, server.csv, summary.json}.

The server hands this module one row per agent and one for itself every round, and its run
totals at the end; here they become files, the summary's numbers of this run alone (ρ_r, the
audit's τ, its ``reference_key``) and the table printed at the end of a run. ρ compares the run
with another one (its Standalone reference): that is the experiment layer's
(``fedfair.experiments.reference``), which writes it into summary.json after the run.
"""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..config import Config, run_identity, to_toml
from ..methods import valued
from ..metrics import kendall_tau, pearson100
from .live import TensorBoardLog

AGENT_COLUMNS = ["round", "agent", "psi", "r", "cgsv_r", "q", "upload_norm", "density", "k", "encoding", "bytes_up",
                 "bytes_down", "bytes_recv", "valid", "present", "test_acc", "test_loss", "local_acc", "local_loss",
                 "train_loss", "shard_loss", "dist_to_server", "train_s", "audit"]
SERVER_COLUMNS = ["round", "test_acc", "test_loss", "mechanism_s", "train_s", "round_s", "bytes_up",
                  "bytes_down", "bytes_down_dense", "rejected", "valuation_s", "cosine_s"]

TIMING = frozenset({"mechanism_s", "train_s", "round_s", "valuation_s", "cosine_s", "wall_s", "overhead_ratio"})
"""Columns and summary keys that measure time: the only outputs that differ between runs of a fixed seed."""


def atomic_write_text(path: Path, text: str, durable: bool = False) -> None:
    """Write ``text`` to ``path`` so a reader sees the old or the new file, never half of one.
    The temporary name carries the pid because several ranks may write in one folder; ``durable``
    also fsyncs before the rename, for files a restart must be able to trust (checkpoint markers)."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        if durable:
            f.flush()
            os.fsync(f.fileno())
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
        self._files: dict[str, IO[str]] = {}
        self._writers: dict[str, csv.DictWriter] = {}
        for name, cols in (("agents", AGENT_COLUMNS), ("server", SERVER_COLUMNS)):
            path = self.dir / f"{name}.csv"
            fresh = not (append and path.exists())
            f = open(path, "w" if fresh else "a", newline="")
            w = csv.DictWriter(f, fieldnames=cols)
            if fresh:
                w.writeheader()
            self._files[name], self._writers[name] = f, w
        self.live = TensorBoardLog(self.dir) if cfg.run.tensorboard else None
        """Live view of the same rows (run.tensorboard); the CSV files stay the record."""

    def agent_row(self, row: dict[str, Any]) -> None:
        self._writers["agents"].writerow({k: _fmt(v) for k, v in row.items()})
        if self.live is not None:
            self.live.agent_row(row)

    def server_row(self, row: dict[str, Any]) -> None:
        self._writers["server"].writerow({k: _fmt(v) for k, v in row.items()})
        for f in self._files.values():
            f.flush()
        if self.live is not None:
            self.live.server_row(row)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        if self.live is not None:
            self.live.close()


def reference_key(cfg: Config) -> str:
    """What must match for a standalone run to serve as another run's fairness reference: the
    data, the local training, seed, rounds, and the step standalone takes (Γ, its schedule, the
    normaliser and its ε). Settings added later are named only when not at their old default
    (``run_identity``), so keys recorded before they existed still match; Standalone's step keeps
    the name it had before it moved to [mechanism.standalone] (``standalone_step``) for the same reason.
    """
    ident = run_identity(cfg)
    key = {"data": ident["data"], "train": ident["train"], "seed": cfg.run.seed, "rounds": cfg.run.rounds,
           "grad_norm": cfg.mechanism.grad_norm, "standalone_step": cfg.mechanism.standalone.step}
    key.update({k: ident["mechanism"][k] for k in ("normalize", "eps", "grad_norm_decay") if k in ident["mechanism"]})
    return json.dumps(key, sort_keys=True)


DATA_RECORD = "data_files.json"
"""What a files run records of the files it read (fedfair.runtime.datafiles), sha256 of each included."""


def recorded_reference_key(cfg: Config) -> str:
    """``reference_key`` plus, for a run on the parties' own files, the sha256 of every file it read
    (from ``data_files.json`` in its run folder): a file edited in place is other data, so a
    standalone run on its old contents must not serve as the reference. What summary.json records."""
    key = reference_key(cfg)
    if cfg.data.dataset != "files":
        return key
    try:
        record = json.loads((cfg.run_dir / DATA_RECORD).read_text())
    except (OSError, ValueError):
        return key
    sha = {"test": record["test_file"]["sha256"], **{a: e["sha256"] for a, e in record["agents"].items()}}
    return json.dumps({**json.loads(key), "data_sha256": sha}, sort_keys=True)


@dataclass
class Totals:
    """What summary.json adds up over the rounds (checkpointed, so a resumed run continues them)."""
    mechanism_s: float = 0.0       # the strategy's step plus encoding, on the server
    train_s: float = 0.0           # per round, the slowest rank's local training (its agents in turn)
    bytes_up: int = 0
    bytes_down: int = 0
    bytes_down_dense: int = 0      # what bytes_down would be with every reward dense
    bytes_ctrl: int = 0            # round statistics
    validation_passes: int = 0     # passes over the server's validation set by the method and valuation
    bytes_up_by_agent: list[int] = field(default_factory=list)    # agent i's uploads, i = 1..N
    bytes_down_by_agent: list[int] = field(default_factory=list)  # agent i's rewards as sent to it
    valuation_s: float = 0.0       # of mechanism_s: the valuation's ψ (methods that value by one)
    cosine_s: float = 0.0          # the paper's cosine ψ on the same uploads, in the same run
    audit_passes: int = 0          # validation passes of the live audit (not in mechanism_s)
    audit_value_by_agent: list[float] = field(default_factory=list)  # cumulative audit value per agent

    def add_audit(self, values: list[float]) -> None:
        """Add one audit round's Shapley values to each agent's cumulative audit value."""
        if len(self.audit_value_by_agent) != len(values):
            self.audit_value_by_agent = [0.0] * len(values)
        self.audit_value_by_agent = [a + float(b) for a, b in zip(self.audit_value_by_agent, values)]

    def add_agent_bytes(self, up: list[int], down: list[int]) -> None:
        """Add one round's per-agent ledger (a checkpoint from before these fields starts at 0)."""
        if len(self.bytes_up_by_agent) != len(up):
            self.bytes_up_by_agent, self.bytes_down_by_agent = [0] * len(up), [0] * len(down)
        self.bytes_up_by_agent = [a + int(b) for a, b in zip(self.bytes_up_by_agent, up)]
        self.bytes_down_by_agent = [a + int(b) for a, b in zip(self.bytes_down_by_agent, down)]


def _no_nan(v: Any) -> Any:
    """JSON has no NaN: undefined values (e.g. standalone's r and q) are null."""
    if isinstance(v, list):
        return [_no_nan(x) for x in v]
    return None if isinstance(v, float) and math.isnan(v) else v


def summarize(cfg: Config, last_eval: dict[str, Any], totals: Totals, wall_s: float) -> dict[str, Any]:
    """summary.json from the last evaluation round's rows and the run totals: this run's facts.

    ρ_r correlates the final r (and CGSV's r beside a baseline, the paper's appendix) with
    accuracy and with −(own shard loss); ``reference_key`` is what a Standalone run must share to
    be this run's fairness reference (ρ is added by the experiment layer, which compares runs).
    """
    agents = last_eval["agents"]
    final_acc = [r["test_acc"] for r in agents]
    final_r = [r["r"] for r in agents]
    final_cgsv_r = [r["cgsv_r"] for r in agents]
    neg_loss = [-r["shard_loss"] for r in agents]
    key = recorded_reference_key(cfg)
    t = totals
    summary = {
        "method": cfg.mechanism.method, "dataset": cfg.data.dataset,
        "partition": None if cfg.data.dataset == "files" else cfg.data.partition,  # the parties' own split
        "agents": cfg.data.agents, "rounds": cfg.run.rounds, "seed": cfg.run.seed,
        "beta": cfg.mechanism.beta if math.isfinite(cfg.mechanism.beta) else "inf",
        "final_acc": final_acc,
        "final_local_acc": [r["local_acc"] for r in agents],
        "final_r": final_r, "final_cgsv_r": final_cgsv_r, "final_q": [r["q"] for r in agents],
        "final_density": [r["density"] for r in agents],
        "final_shard_loss": [r["shard_loss"] for r in agents],
        "mean_acc": sum(final_acc) / len(final_acc), "max_acc": max(final_acc),
        "server_acc": last_eval["server"]["test_acc"],
        "rho_r": pearson100(final_r, final_acc),
        "rho_r_loss": pearson100(final_r, neg_loss),
        "rho_r_cgsv": pearson100(final_cgsv_r, final_acc),
        "rho_r_loss_cgsv": pearson100(final_cgsv_r, neg_loss),
        "mechanism_s": t.mechanism_s, "train_s": t.train_s,
        "valuation": cfg.mechanism.valuation if valued(cfg.mechanism.method) else None,
        "valuation_s": t.valuation_s if valued(cfg.mechanism.method) else None,
        "cosine_s": t.cosine_s if valued(cfg.mechanism.method) else None,
        "validation_passes": int(t.validation_passes),
        "audit_tau": (audit_tau(final_r if valued(cfg.mechanism.method) else final_cgsv_r, t.audit_value_by_agent)
                      if t.audit_value_by_agent else None),
        "audit_value_by_agent": list(t.audit_value_by_agent) if t.audit_value_by_agent else None,
        "audit_passes": int(t.audit_passes),
        "overhead_ratio": t.mechanism_s / t.train_s if t.train_s > 0 else None,
        "bytes_up": int(t.bytes_up), "bytes_down": int(t.bytes_down),
        "bytes_down_dense": int(t.bytes_down_dense), "bytes_ctrl": int(t.bytes_ctrl),
        "bytes_up_by_agent": list(t.bytes_up_by_agent), "bytes_down_by_agent": list(t.bytes_down_by_agent),
        "wall_s": wall_s,
        "reference_key": key,
    }
    return {k: _no_nan(v) for k, v in summary.items()}


def audit_tau(r: list[float], audit_value: list[float]) -> float | None:
    """Kendall's τ-b of the final importance r against each agent's cumulative audit value: do the
    rewards follow what the audit says each agent brought? ``summarize`` passes the method's own r
    for the methods that value uploads (cgsv, dw, eu) and CGSV's r computed beside it for the others
    (FedAvg's r is its equal aggregation weights, Standalone has none)."""
    return kendall_tau(r, audit_value)


TABLE_AGENTS = 20
"""Above this many agents the end-of-run table is a summary (min, median, max over agents), not one row each."""


def agent_table(summary: dict[str, Any]) -> str:
    """The per-agent table printed at the end of a run; above TABLE_AGENTS agents a summary of the same
    columns (every agent's values are in summary.json and agents.csv)."""
    def f(x: float | None, w: int, p: int) -> str:
        return f"{'-':>{w}}" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:>{w}.{p}f}"

    columns = (("test_acc", "final_acc", 8, 3), ("local_acc", "final_local_acc", 9, 3), ("r", "final_r", 7, 4),
               ("q", "final_q", 6, 3), ("density", "final_density", 7, 3))
    n = len(summary["final_acc"])
    if n <= TABLE_AGENTS:
        lines = [f"{'agent':>5} " + " ".join(f"{name:>{w}}" for name, _, w, _ in columns)]
        for i in range(n):
            lines.append(f"{i + 1:>5} " + " ".join(f(summary[key][i], w, p) for _, key, w, p in columns))
    else:
        lines = [f"{n} agents (more than {TABLE_AGENTS}: a summary over agents; every agent's values are in "
                 "summary.json and agents.csv)", f"{'':>6} " + " ".join(f"{name:>{w}}" for name, _, w, _ in columns)]
        for stat in ("min", "median", "max"):
            lines.append(f"{stat:>6} " + " ".join(f(_stat(summary[key], stat), w, p) for _, key, w, p in columns))

    def g(x: float | None) -> str:
        return "undefined" if x is None else f"{x:.2f}"

    lines.append(f"mean acc {summary['mean_acc']:.3f}  max acc {summary['max_acc']:.3f}  "
                 f"rho_r {g(summary['rho_r'])}")
    ratio = summary["overhead_ratio"]
    lines.append(f"overhead_ratio {'n/a' if ratio is None else f'{ratio:.4f}'}  "
                 f"bytes_down {summary['bytes_down']:,} (dense {summary['bytes_down_dense']:,})  "
                 f"wall {summary['wall_s']:.1f} s")
    return "\n".join(lines)


def _stat(values: list[float | None], stat: str) -> float | None:
    """min, median (the lower middle value) or max over agents, ignoring undefined (None) values."""
    xs = sorted(v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v)))
    if not xs:
        return None
    return {"min": xs[0], "median": xs[(len(xs) - 1) // 2], "max": xs[-1]}[stat]
