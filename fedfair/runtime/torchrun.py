"""torchrun, with fedfair's line last: ``python -m fedfair.runtime.torchrun [torchrun options] -m fedfair.run ...``.

What launch/local.sh and launch/multinode.sh start instead of ``python -m torch.distributed.run``
(same options). When a rank stops the job, it prints one ``fedfair: error: ...`` line; plain torchrun
then adds its own report (~65 lines: warnings, a traceback, a ChildFailedError table) after it and
exits 1. Here torchrun's own messages go to ``<run folder>/torchrun.log`` (appended; a temporary
file if the run folder cannot be written) and the exit code is the ranks': 2 when a rank stopped on
bad input, else the failed rank's code. A failure that printed no fedfair line (a crash) gets one
line naming the rank, its exit code and the log.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

LOG_NAME = "torchrun.log"


def job_args(argv: list[str]) -> list[str]:
    """The arguments after ``-m fedfair.run`` (or the script), i.e. what fedfair.run parses."""
    for i, a in enumerate(argv):
        if a == "-m" and i + 1 < len(argv):
            return argv[i + 2:]
    return []


def log_path(argv: list[str]) -> Path | None:
    """``<run folder>/torchrun.log`` of the job, from its config and overrides (None if they do not load:
    the ranks then report the config error themselves)."""
    from ..config import load_config
    from .run import parse_args

    try:
        args = parse_args(job_args(argv))
        return load_config(args.config, args.overrides).run_dir / LOG_NAME
    except (ValueError, OSError, SystemExit):
        return None


def open_log(path: Path | None) -> tuple[IO[str], Path]:
    """The log file, appended to; a temporary one when the run folder cannot be written."""
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return open(path, "a"), path
        except OSError:
            pass
    fd, name = tempfile.mkstemp(prefix="fedfair-torchrun-", suffix=".log")
    return os.fdopen(fd, "a"), Path(name)


def redirect_logging(log: IO[str]) -> None:
    """Every log handler that writes to stderr (torch installs one on many of its loggers, torchrun's
    among them) writes to ``log`` instead; the ranks' own output is untouched."""
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for lg in loggers:
        for h in lg.handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stderr, sys.__stderr__):
                h.setStream(log)


def exit_code(failures: dict) -> tuple[int, int, int]:
    """(code, rank, rank's exit code): 2 when any rank stopped on bad input, else the first failure's code."""
    ranks = sorted(failures)
    for rank in ranks:
        if failures[rank].exitcode == 2:
            return 2, rank, 2
    rank = ranks[0]
    code = failures[rank].exitcode
    return (code if code and code > 0 else 1), rank, code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    log, path = open_log(log_path(argv))
    log.write(f"\n{time.strftime('%Y-%m-%d %H:%M:%S')} $ torchrun {' '.join(argv)}\n")
    log.flush()
    redirect_logging(log)
    try:
        torchrun.run(torchrun.parse_args(argv))
    except ChildFailedError as e:
        log.write(f"{e.format_msg()}\n")
        log.flush()
        code, rank, raw = exit_code(e.failures)
        if code != 2 and raw != 1:  # 1 = a rank's own fedfair line (RunAborted); anything else: a crash
            print(f"fedfair: error: rank {rank} ended with exit code {raw}; torchrun's log: {path}",
                  file=sys.stderr, flush=True)
        return code
    finally:
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
