"""What a sweep will run: grid syntax, run names, the order (each reference group's standalone
run first, so a reader sees references before the runs they serve) and the check of
run folders that already finished. Shared by ``sweep`` and ``compare`` so both agree on them."""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import NOT_FOR_FILES, Config, ConfigError, load_config, load_recorded
from ..methods import METHODS, REFERENCE, needs_validation, uses_beta
from ..runtime.logs import reference_key

NAMED_KEYS = ("data.dataset", "mechanism.method", "mechanism.beta", "data.partition", "data.agents", "run.seed")
"""Grid keys that always appear in a run's name; other grid keys are appended as -{key}{value}."""

IGNORED_FIELDS = {("run", "progress"), ("run", "resume"), ("run", "overwrite"), ("run", "checkpoint_every"),
                  ("run", "threads"), ("run", "out_dir"), ("comm", "backend"), ("comm", "timeout_s")}
"""Saved-config fields that do not change a run's results: a finished run still counts as complete
when only these differ from the planned config."""


class SweepError(ValueError):
    """A bad sweep specification (grid syntax, clashing names): one line for the user."""


@dataclass
class PlannedRun:
    """One run of a sweep, its launch command and what became of it (written to the manifest)."""
    name: str
    config_path: str | None
    overrides: list[str]   # everything passed to fedfair.run after --config (run.name and run.out_dir included)
    cfg: Config
    group: str             # reference_key: runs sharing it share one standalone reference
    status: str = "pending"  # pending | complete | done | failed | conflict | running | interrupted
    seconds: float | None = None
    error: str | None = None
    command: list[str] = field(default_factory=list)
    result: Any = field(default=None, repr=False)  # what the launcher returned (run_local: per-rank results)

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config_path, "overrides": self.overrides,
                "method": self.cfg.mechanism.method, "status": self.status, "seconds": self.seconds,
                "error": self.error, "command": self.command, "run_dir": str(self.run_dir)}


def planned_run(config_path: str | None, overrides: list[str], name: str, out_dir: str) -> PlannedRun:
    """The run ``name`` in ``out_dir``: ``config_path`` with ``overrides``, validated."""
    overrides = [*overrides, f"run.name={name}", f"run.out_dir={out_dir}"]
    cfg = load_config(config_path, overrides)
    return PlannedRun(name, config_path, overrides, cfg, reference_key(cfg))


# ------------------------------------------------------------------ grids and names


def split_values(text: str) -> list[str]:
    """Split a grid's comma-separated values, keeping commas inside [...] lists (label_noise=[0,0.5],[0,0])."""
    values, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            values.append(cur.strip())
            cur = ""
        else:
            cur += ch
    values.append(cur.strip())
    if any(v == "" for v in values) or depth != 0:
        raise SweepError(f"grid values {text!r} are invalid: expected v1,v2,... with no empty value")
    return values


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """``--grid section.key=v1,v2`` (or ``section.table.key=...``, e.g. a method's own setting
    mechanism.qffl.q) items as (key, values), in the order given; a key may appear once."""
    grid: list[tuple[str, list[str]]] = []
    for item in items:
        if "=" not in item:
            raise SweepError(f"--grid {item!r} is invalid: expected section.key=v1,v2,...")
        key, text = item.split("=", 1)
        key = key.strip()
        if key.count(".") not in (1, 2) or not all(key.split(".")):
            raise SweepError(f"--grid key {key!r} is invalid: expected section.key (e.g. mechanism.beta) or "
                             "section.table.key (e.g. mechanism.qffl.q)")
        if key in (k for k, _ in grid):
            raise SweepError(f"--grid key {key!r} given twice: put all its values in one --grid")
        if key in ("run.name", "run.out_dir"):
            raise SweepError(f"--grid key {key!r} is set by the sweep itself")
        grid.append((key, split_values(text)))
    return grid


def _fmt_number(v: float) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:g}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_=-]+", "_", text).strip("_") or "x"


def run_name(cfg: Config, extra: list[tuple[str, str]]) -> str:
    """``{dataset}-{method}[-b{beta}]-{partition}-a{agents}-s{seed}[-{key}{value}...]``."""
    m = cfg.mechanism
    parts = [cfg.data.dataset, m.method]
    if uses_beta(m.method):
        parts.append(f"b{_fmt_number(m.beta)}")
    parts += [cfg.data.partition, f"a{cfg.data.agents}", f"s{cfg.run.seed}"]
    parts += [_slug(f"{key.split('.', 1)[1]}{value}") for key, value in extra]
    return "-".join(parts)


def comparable(cfg: Config) -> dict[str, dict[str, Any]]:
    """The config as a dict without the fields that do not change results (IGNORED_FIELDS, and for a files
    run the [data] keys that do not apply to it)."""
    d = cfg.to_dict()
    for sec, key in IGNORED_FIELDS:
        d.get(sec, {}).pop(key, None)
    if cfg.data.dataset == "files":  # config.toml leaves them out: they do not apply
        for key in NOT_FOR_FILES:
            d["data"].pop(key, None)
    return d


def expand(configs: list[str | None], grid: list[tuple[str, list[str]]], fixed: list[str],
           out_dir: str) -> list[PlannedRun]:
    """Every config × grid combination as a validated, named, ordered list of runs."""
    runs: list[PlannedRun] = []
    by_name: dict[str, PlannedRun] = {}
    keys = [k for k, _ in grid]
    for config_path in configs:
        for combo in itertools.product(*(values for _, values in grid)):
            chosen = dict(zip(keys, combo))
            base = list(fixed) + [f"{k}={v}" for k, v in chosen.items()]
            try:
                cfg = load_config(config_path, base)
            except ConfigError as e:
                raise SweepError(f"{config_path or 'defaults'} with {' '.join(base) or 'no overrides'}: {e}") from None
            if not uses_beta(cfg.mechanism.method) and "mechanism.beta" in chosen:
                base = [o for o in base if o != f"mechanism.beta={chosen['mechanism.beta']}"]
                cfg = load_config(config_path, base)  # beta does not matter here: keep the config's
            extra = [(k, v) for k, v in chosen.items() if k not in NAMED_KEYS]
            run = planned_run(config_path, base, run_name(cfg, extra), out_dir)
            if run.name in by_name:
                if comparable(by_name[run.name].cfg) != comparable(run.cfg):
                    raise SweepError(f"two different runs would both be named {run.name!r} "
                                     f"({by_name[run.name].config_path} and {config_path}): put the key that "
                                     "differs in a --grid, or sweep them into separate --out-dir folders")
                continue  # the same run reached twice (e.g. a beta value for a method without beta)
            by_name[run.name] = run
            runs.append(run)
    return order_runs(runs)


def order_runs(runs: list[PlannedRun]) -> list[PlannedRun]:
    """Groups in order of first appearance; within each group the reference (standalone) first, else as given."""
    groups: dict[str, list[PlannedRun]] = {}
    for r in runs:
        groups.setdefault(r.group, []).append(r)
    ordered: list[PlannedRun] = []
    for members in groups.values():
        ordered += [r for r in members if r.cfg.mechanism.method == REFERENCE]
        ordered += [r for r in members if r.cfg.mechanism.method != REFERENCE]
    return ordered


# ------------------------------------------------------------------ finished runs and references


def finished_status(cfg: Config) -> tuple[str, str | None]:
    """complete (summary.json and a matching config), conflict (finished with another config) or pending."""
    if not (cfg.run_dir / "summary.json").is_file():
        return "pending", None
    try:
        old = load_recorded(cfg.run_dir / "config.toml")  # also one recorded before keys moved
    except (ConfigError, OSError) as e:
        return "conflict", f"finished run folder has an unreadable config.toml ({e})"
    a, b = comparable(old), comparable(cfg)
    if b["data"].get("val_size") == 0 and needs_validation(cfg.mechanism.method):
        b["data"]["val_size"] = a["data"]["val_size"]  # the run resolved 0 to its default (fedfair.run)
    if a != b:
        diffs = [f"{s}.{k}: {a[s].get(k)!r} (saved) vs {b[s].get(k)!r} (planned)"
                 for s in b for k in b[s] if a.get(s, {}).get(k) != b[s][k]]
        return "conflict", "finished with a different config: " + "; ".join(diffs[:3])
    return "complete", None


def existing_status(run: PlannedRun) -> tuple[str, str | None]:
    """``finished_status`` of a planned run."""
    return finished_status(run.cfg)


def take_over(run: PlannedRun, replace: bool) -> str | None:
    """A pending run whose folder already holds records (an interrupted run, or with ``replace`` any
    earlier run) gets run.resume = true (continue it from its checkpoint) or run.overwrite = true
    (``replace``: compare without --reuse runs every method again); the run folder check of
    fedfair.run would stop it otherwise. Returns the override added (None: the folder is free)."""
    from ..runtime.runfolder import existing_records

    if not existing_records(run.run_dir):
        return None
    extra = "run.overwrite=true" if replace else "run.resume=true"
    run.overrides = [o for o in run.overrides if not o.startswith(("run.resume=", "run.overwrite="))] + [extra]
    run.cfg = load_config(run.config_path, run.overrides)
    return extra


def validation_methods() -> str:
    return "/".join(m.name for m in METHODS if m.needs_validation)


def reference_warnings(runs: list[PlannedRun]) -> list[str]:
    """Runs that will find no standalone reference in this sweep (so their rho stays n/a)."""
    groups = {r.group for r in runs if r.cfg.mechanism.method == REFERENCE}
    if not groups:
        return []
    out = []
    if any(needs_validation(r.cfg.mechanism.method) and r.cfg.data.val_size == 0 for r in runs):
        out.append(f"{validation_methods()} hold out a validation slice (data.val_size = 0 resolves to a default "
                   "inside the run), which changes their data and so their fairness reference: give a fixed "
                   "data.val_size=... to the whole sweep so that standalone shares it")
    missing = sorted({r.name for r in runs if r.group not in groups and not needs_validation(r.cfg.mechanism.method)})
    if missing:
        out.append(f"no standalone run in this sweep shares data, training, seed and rounds with: {', '.join(missing)}")
    return out


def shared_val_size(cfg: Config, methods: list[str]) -> list[str]:
    """``[data.val_size=<n>]`` when a method needs a validation set and cfg leaves the size to the run.

    The run would resolve 0 to this default itself (fedfair.run), but only the runs of validation
    methods would, so they would train on other shards than the rest; fixed for every run, all
    methods share the data and the standalone reference. Empty when nothing needs fixing. The size
    is the data split's policy (``fedfair.data.shards``), computed from the config; only a text data
    set, whose size depends on which of its source files are found, is read to count its samples.
    """
    if cfg.data.val_size != 0 or cfg.data.dataset == "files" or not any(needs_validation(m) for m in methods):
        return []
    from ..data import default_val_size, load_task, planned_validation_size

    d = cfg.data
    size = planned_validation_size(d.dataset, d.test_fraction, 0, True)
    if size is None:
        task = load_task(d.dataset, d.data_dir or None, seed=cfg.run.seed, test_fraction=d.test_fraction,
                         image_pad=d.image_pad)
        size = default_val_size(task.num_train)
    return [f"data.val_size={size}"]
