"""The run folder ``<run.out_dir>/<run.name>/``: never overwritten by accident.

A folder that already holds a run's records (finished: summary.json; or not: logs, checkpoints)
stops a new job with one line, unless ``run.resume = true`` (continue it) or ``run.overwrite = true``
(replace it: its records are deleted when the job starts, before anything is written). A torchrun
restart is a resume. The same check runs in the launchers' pre-check (``python -m fedfair.run
--world-size``) and on the server rank before the process group exists; the pre-check also makes
sure the folder can be written, so an unwritable ``run.out_dir`` is one line, not a traceback.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..config import Config

RECORDS = ("summary.json", "agents.csv", "server.csv", "config.toml", "data_files.json", "ckpt", "tb")
"""What a run leaves in its folder (docs/outputs.md); a folder holding none of them is free."""


class RunFolderError(ValueError):
    """The run folder holds another run, or cannot be written: one line for the user."""


def existing_records(run_dir: Path) -> list[str]:
    """The run records present in ``run_dir``, in RECORDS order (none: the folder is free)."""
    return [name for name in RECORDS if (run_dir / name).exists()]


def describe(run_dir: Path, records: list[str]) -> str:
    """'a finished run (summary.json)' or 'an unfinished run (agents.csv, ckpt/; no summary.json)'."""
    shown = ", ".join(f"{r}/" if (run_dir / r).is_dir() else r for r in records)
    if "summary.json" in records:
        return "a finished run (summary.json)"
    return f"an unfinished run ({shown}; no summary.json)"


def check_free(cfg: Config, resuming: bool) -> None:
    """Stop unless the run folder is free, or the job continues (``resuming``) or replaces (run.overwrite) it."""
    run_dir = cfg.run_dir
    if resuming or cfg.run.overwrite or not run_dir.is_dir():
        return
    records = existing_records(run_dir)
    if records:
        raise RunFolderError(f"run.name = {cfg.run.name!r}: {run_dir} already holds {describe(run_dir, records)}; "
                             "set run.resume = true to continue it, run.overwrite = true to replace it, or choose "
                             "another run.name")


def check_writable(cfg: Config) -> None:
    """Create the run folder if needed and write a probe file in it (removed again)."""
    run_dir = cfg.run_dir
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise RunFolderError(f"run.out_dir = {cfg.run.out_dir!r}: cannot write the run folder {run_dir} "
                             f"({type(e).__name__}: {e.strerror or e})") from None


def clear(cfg: Config) -> list[str]:
    """run.overwrite on a fresh start: delete the old run's records (summary.json first, so a
    half-cleared folder never looks finished); returns what was deleted."""
    run_dir = cfg.run_dir
    records = existing_records(run_dir) if run_dir.is_dir() else []
    try:
        for name in records:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    except OSError as e:
        raise RunFolderError(f"run.overwrite: cannot delete the old run in {run_dir} "
                             f"({type(e).__name__}: {e.strerror or e})") from None
    return records
