"""Running the suite's plan: one job at a time through the sweep's launchers, resumable, pausable.

- A run whose folder holds summary.json is skipped (the sweep's finished-run check; one finished
  with another config is reported as a conflict and never overwritten). A partial folder is run
  again from the start (with run.overwrite = true: the runtime never replaces a run folder unasked).
- Pause protocol: before starting a run, wait while the pause file exists; while a run executes,
  the running file holds its name (removed after), so a timing measurement can wait for an idle box.
- A run that fails is recorded in ``<out>/failures.csv`` (name, exit status, last error line) and
  the suite goes on: the report marks its cell as failed to run.
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from ...config import Config, ConfigError, load_config
from ...runtime.logs import atomic_write_text
from ..launch import COMMANDS, LAUNCHERS, Launcher, LaunchFailed
from ..plan import PlannedRun, finished_status, planned_run, take_over
from .measures import FAILURES, Failure, read_failures, write_failures
from .scenarios import PROFILES, SCENARIO_BY_NAME, VALUATIONS, SuiteError, SuiteRun, parse_run_name, plan
from .scoreboard import MANIFEST

POLL_S = 5.0


def suite_config(run: SuiteRun, dataset: str, out_dir: str | Path, extra: tuple[str, ...] = ()) -> Config:
    """The validated Config of one run (raises ConfigError naming a field today's config lacks);
    ``extra`` overrides come last (e.g. run.ranks=2 for a cheaper smoke)."""
    return load_config(PROFILES[dataset].config,
                       [*run.overrides, *extra, f"run.name={run.name}", f"run.out_dir={out_dir}"])


def find_run(name: str, dataset: str = "digits", rounds: int | None = None) -> SuiteRun:
    """The plan's run called ``name`` (``<scenario>_<valuation|standalone|fedavg>_s<seed>``)."""
    key = parse_run_name(name)
    if key is None:
        raise SuiteError(f"run name {name!r} is invalid: expected <scenario>_<valuation|baseline>_s<seed>")
    scenario, what, seed = key
    (run,) = [r for r in plan(PROFILES[dataset], [seed], [SCENARIO_BY_NAME[scenario]], list(VALUATIONS), rounds)
              if r.name == name]
    return run


def run_cell(name: str, out_dir: str | Path, dataset: str = "digits", rounds: int | None = 8,
             timeout_s: float = 600.0, extra: tuple[str, ...] = ()) -> list[Any]:
    """Run one plan run in-process (every rank a local process, fedfair.runtime.local.run_local);
    what the smoke test calls. Returns run_local's per-rank results."""
    from ...runtime.local import run_local

    return run_local(suite_config(find_run(name, dataset, rounds), dataset, out_dir, extra), timeout_s=timeout_s)


@dataclass
class Runner:
    """Runs a plan one job at a time; ``say`` takes its progress lines."""
    runs: list[SuiteRun]
    dataset: str
    out_dir: Path
    launcher: str = "torchrun"
    timeout_s: float = 24 * 3600.0
    pause_file: Path | None = None
    running_file: Path | None = None
    poll_s: float = POLL_S
    log: TextIO | None = None   # None: sys.stdout at the time of writing
    failures: dict[str, Failure] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pause_file = self.pause_file or self.out_dir / "PAUSE"
        self.running_file = self.running_file or self.out_dir / "RUNNING"
        self.failures = read_failures(self.out_dir / FAILURES)

    def say(self, text: str) -> None:
        print(text, file=self.log or sys.stdout, flush=True)

    def status(self, run: SuiteRun) -> tuple[str, str | None]:
        """complete, conflict or pending (the sweep's check when today's config can read the run)."""
        if not (self.out_dir / run.name / "summary.json").is_file():
            return "pending", None
        try:
            return finished_status(suite_config(run, self.dataset, self.out_dir))
        except ConfigError:
            return "complete", None  # its config names fields this checkout lacks: trust summary.json

    def dry_run(self) -> int:
        n = len(self.runs)
        self.say(f"fedfair.suite: dry run, {n} runs in {self.out_dir} ({self.dataset}, {self.launcher}); "
                 "nothing is started or written")
        config = PROFILES[self.dataset].config
        if config.is_relative_to(Path.cwd()):
            config = config.relative_to(Path.cwd())
        for i, run in enumerate(self.runs, 1):
            state, err = self.status(run)
            what = {"pending": "would run", "complete": "complete, would skip", "conflict": f"CONFLICT: {err}"}[state]
            self.say(f"[{i}/{n}] {run.name}: {what}")
            self.say("    --config " + shlex.join([str(config), *run.overrides]))
        return 0

    def record_command(self, argv: list[str]) -> None:
        """Append the command line to <out>/suite.json (the report prints how its runs were made)."""
        path = self.out_dir / MANIFEST
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            manifest = {"commands": []}
        manifest["commands"] = [*manifest.get("commands", []), shlex.join(argv)]
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")

    def wait_while_paused(self) -> None:
        assert self.pause_file is not None
        if self.pause_file.exists():
            self.say(f"fedfair.suite: paused while {self.pause_file} exists")
            while self.pause_file.exists():
                time.sleep(self.poll_s)
            self.say("fedfair.suite: resumed")

    def run(self, launch: Launcher | None = None) -> int:
        """Run every pending run in order; returns 1 when a run failed or is in conflict, else 0."""
        launch = launch or LAUNCHERS[self.launcher]
        n, bad = len(self.runs), 0
        self.say(f"fedfair.suite: {n} runs in {self.out_dir} ({self.dataset}, {self.launcher})")
        for i, run in enumerate(self.runs, 1):
            head = f"[{i}/{n}] {run.name}"
            state, err = self.status(run)
            if state == "complete":
                self.say(f"{head}: complete, skipped")
                continue
            if state == "conflict":
                self.say(f"{head}: CONFLICT, not run: {err}")
                bad += 1
                continue
            bad += not self.run_one(head, run, launch)
        self.say(f"fedfair.suite: {n - bad}/{n} runs finished; {bad} failed or in conflict"
                 + (f" (see {self.out_dir / FAILURES})" if self.failures else ""))
        return 1 if bad else 0

    def run_one(self, head: str, run: SuiteRun, launch: Launcher) -> bool:
        """Launch one run (after any pause); a failure is recorded, not raised. True when it finished."""
        self.wait_while_paused()
        assert self.running_file is not None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.running_file, run.name + "\n")
        t0 = time.perf_counter()
        self.say(f"{head}: running")
        try:
            planned = self.planned(run)
            launch(planned, self.out_dir, self.timeout_s)
            if not (self.out_dir / run.name / "summary.json").is_file():
                raise RuntimeError(f"finished without writing {self.out_dir / run.name / 'summary.json'}")
        except KeyboardInterrupt:
            raise
        except Exception as e:  # failures are data: recorded, and the suite goes on
            code, line = (e.returncode, e.last_line) if isinstance(e, LaunchFailed) else (None, _first_line(e))
            self.failures[run.name] = Failure(run.name, code, line, time.perf_counter() - t0,
                                              time.strftime("%Y-%m-%dT%H:%M:%S"))
            write_failures(self.out_dir / FAILURES, self.failures)
            self.say(f"{head}: FAILED after {time.perf_counter() - t0:.1f} s: {line}")
            return False
        finally:
            self.running_file.unlink(missing_ok=True)
        if self.failures.pop(run.name, None) is not None:
            write_failures(self.out_dir / FAILURES, self.failures)
        self.say(f"{head}: done in {time.perf_counter() - t0:.1f} s")
        return True

    def planned(self, run: SuiteRun) -> PlannedRun:
        """The sweep's PlannedRun of a suite run (validated: a ConfigError names the field). Finished runs
        were skipped before, so a folder with records here is an interrupted run: it is run again from
        the start (run.overwrite = true), as the sweep's ``take_over`` does for ``compare``."""
        p = planned_run(str(PROFILES[self.dataset].config), list(run.overrides), run.name, str(self.out_dir))
        take_over(p, replace=True)
        p.command = COMMANDS[self.launcher](p)
        return p


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:400]


def make_runner(out_dir: Path, dataset: str, seeds: list[int], scenarios: list[str], valuations: list[str] | str,
                rounds: int | None, select: Callable[[Path], list[str]] | None = None, **kw: Any) -> Runner:
    """The Runner of a plan; ``valuations == "auto"`` asks ``select`` (the seed-0 scoreboard) which to run."""
    if valuations == "auto":
        if 0 in seeds:
            raise SuiteError("--valuations auto picks from the seed-0 runs: run seed 0 with every valuation first, "
                             "then --seeds 1,2 --valuations auto")
        assert select is not None
        valuations = select(out_dir)
    runs = plan(PROFILES[dataset], seeds, [SCENARIO_BY_NAME[s] for s in scenarios], list(valuations), rounds)
    return Runner(runs, dataset, out_dir, **kw)
