"""How a planned run is started: one torchrun job (its output in a log file) or every rank as a
local process. A launcher raises on failure and returns what the run returned (or None)."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, Callable

from ..runtime.placement import world_size_for
from .plan import PlannedRun

LOG_DIR = "sweep-logs"

Launcher = Callable[[PlannedRun, Path, float], Any]


class LaunchFailed(RuntimeError):
    """A torchrun job that ended badly, with what a caller records of it: the exit status
    (None when it timed out) and the job's last error line."""

    def __init__(self, message: str, returncode: int | None, last_line: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.last_line = last_line


def torchrun_command(run: PlannedRun, python: str = sys.executable) -> list[str]:
    """The torchrun command line of one run on this machine: ``run.ranks`` processes (N + 1 when 0)."""
    ranks = world_size_for(run.cfg.data.agents, run.cfg.run.ranks)
    cmd = [python, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc_per_node", str(ranks), "-m", "fedfair.run"]
    if run.config_path is not None:
        cmd += ["--config", str(run.config_path)]
    return cmd + run.overrides


def local_command(run: PlannedRun) -> list[str]:
    """What the manifest records for a local run (there is no command line: run_local is a call)."""
    return ["fedfair.runtime.local.run_local", *(["--config", run.config_path] if run.config_path else []),
            *run.overrides]


def launch_torchrun(run: PlannedRun, out_dir: Path, timeout_s: float) -> None:
    """Run one torchrun job; its output goes to <out_dir>/sweep-logs/<name>.log. Raises LaunchFailed on failure."""
    log_dir = out_dir / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{run.name}.log"
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(run.command) + "\n")
        log.flush()
        returncode = run_job(run.command, log, env, timeout_s)
    if returncode is None:
        raise LaunchFailed(f"timed out after {timeout_s:.0f} s (see {log_path})", None, _last_error_line(log_path))
    if returncode != 0:
        last = _last_error_line(log_path)
        raise LaunchFailed(f"exit status {returncode}: {last} (see {log_path})", returncode, last)


def run_job(command: list[str], log: IO[str], env: dict[str, str], timeout_s: float) -> int | None:
    """Run a job in its own process group; returns its exit status, None on timeout.

    On a timeout, Ctrl-C or SIGTERM to the sweep, the whole group (torchrun and its ranks) gets
    SIGTERM, then SIGKILL 15 s later, so no rank outlives the sweep.
    """
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        return None
    except BaseException:
        _stop_group(proc)
        raise


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _last_error_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    for ln in reversed(lines):  # the run's own one-line message, else the last exception line
        if ln.startswith("fedfair: error:"):
            return ln
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln):
            return ln
    return lines[-1] if lines else "no output"


def launch_local(run: PlannedRun, out_dir: Path, timeout_s: float) -> list[Any]:
    """Run every rank as a local process (fedfair.runtime.local.run_local); returns its per-rank results."""
    from ..runtime.local import run_local

    return run_local(run.cfg, timeout_s=timeout_s)


LAUNCHERS: dict[str, Launcher] = {"torchrun": launch_torchrun, "local": launch_local}
COMMANDS: dict[str, Callable[[PlannedRun], list[str]]] = {"torchrun": torchrun_command, "local": local_command}
