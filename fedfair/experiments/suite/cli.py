"""``python -m fedfair suite run|report|keep``: the command line of the fairness suite."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import NoReturn

from ...config import ConfigError
from ..launch import LAUNCHERS
from ..sweep import sigterm_interrupts
from .measures import auto_valuations, cells, load
from .runner import POLL_S, make_runner
from .scenarios import PROFILES, SCENARIO_BY_NAME, VALUATIONS, SuiteError, parse_seeds, pick
from .scoreboard import keep, report

PROG = "python -m fedfair suite"


class OneLineParser(argparse.ArgumentParser):
    """Bad options end with one line naming the option (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"fedfair.suite: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    r = sub.add_parser("run", help="run the plan (resumable: runs with summary.json are skipped)")
    r.add_argument("--out", required=True, type=Path, help="folder for the run folders, failures.csv and suite.json")
    r.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    r.add_argument("--valuations", default="all",
                   help=f"all (default), auto (seeds 1,2: cosine plus every valuation holding at least as many "
                        f"seed-0 cells as cosine), or a comma-separated list of {', '.join(VALUATIONS)}")
    r.add_argument("--scenarios", default="all", help=f"all (default) or some of {', '.join(SCENARIO_BY_NAME)}")
    r.add_argument("--dataset", choices=sorted(PROFILES), default="mnist",
                   help="mnist (default: configs/suite/mnist.toml, 200 rounds) or digits (the smoke version)")
    r.add_argument("--rounds", type=int, default=None, help="rounds per run (default: 200 mnist, 8 digits); "
                   "accuracies evaluated once, at the end")
    r.add_argument("--launcher", choices=sorted(LAUNCHERS), default="torchrun",
                   help="torchrun (default): one torchrun job per run; local: fedfair.runtime.local.run_local")
    r.add_argument("--timeout", type=float, default=24 * 3600.0, help="seconds allowed per run")
    r.add_argument("--pause-file", type=Path, default=None,
                   help="before each run, wait while this file exists (default <out>/PAUSE)")
    r.add_argument("--running-file", type=Path, default=None,
                   help="holds the running run's name while it runs (default <out>/RUNNING)")
    r.add_argument("--poll", type=float, default=POLL_S, help="seconds between checks of the pause file")
    r.add_argument("--dry-run", action="store_true", help="print the plan (names, overrides, status); run nothing")
    for name, what in (("report", "write scoreboard.csv, scoreboard.md and tau_over_rounds.png"),
                       ("keep", "copy each run's config.toml, summary.json, agents.csv, server.csv to <out>/runs/")):
        q = sub.add_parser(name, help=what)
        q.add_argument("paths", nargs="+", type=Path, help="suite run folders (e.g. logs/suite) or kept records")
        q.add_argument("--out", required=True, type=Path, help="the report's folder (e.g. docs/results/fairness)")
        if name == "report":
            q.add_argument("--keep", action="store_true", help="also keep the runs' records in <out>/runs/ first")
    return p


def check(args: argparse.Namespace) -> None:
    if args.rounds is not None and args.rounds < 1:
        raise SuiteError(f"--rounds {args.rounds} is invalid: must be >= 1")
    if args.timeout <= 0:
        raise SuiteError(f"--timeout {args.timeout:g} is invalid: must be > 0 seconds")
    if args.poll <= 0:
        raise SuiteError(f"--poll {args.poll:g} is invalid: must be > 0 seconds")


def select(out: Path) -> list[str]:
    """``--valuations auto``: from the seed-0 cells present under ``out``."""
    if not out.is_dir():
        raise SuiteError(f"--valuations auto: {out} does not exist: run --seeds 0 first")
    return auto_valuations([c for c in cells(load([out])) if c.seed == 0])


def run_command(args: argparse.Namespace, argv: list[str]) -> int:
    check(args)
    seeds = parse_seeds(args.seeds)
    scenarios = pick(args.scenarios, tuple(SCENARIO_BY_NAME), "--scenarios")
    valuations = "auto" if args.valuations.strip() == "auto" else pick(args.valuations, VALUATIONS, "--valuations")
    runner = make_runner(args.out, args.dataset, seeds, scenarios, valuations, args.rounds, select=select,
                         launcher=args.launcher, timeout_s=args.timeout, pause_file=args.pause_file,
                         running_file=args.running_file, poll_s=args.poll)
    if args.dry_run:
        return runner.dry_run()
    runner.record_command([*PROG.split(), *argv])
    with sigterm_interrupts():
        try:
            return runner.run()
        except KeyboardInterrupt:
            print("fedfair.suite: interrupted; re-run the same command to resume", file=sys.stderr)
            return 130


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        if args.command == "run":
            return run_command(args, argv)
        if args.command == "keep" or args.keep:
            kept = keep(args.paths, args.out)
            print(f"fedfair.suite: kept {len(kept)} runs' records in {args.out / 'runs'}")
        if args.command == "report":
            written = report(args.paths, args.out, f"{PROG} {shlex.join(argv)}")
            held = sum(bool(c.holds) for c in written["cells"])
            print(f"fedfair.suite: {len(written['cells'])} cells, {held} held: {args.out / 'scoreboard.md'}"
                  + ("" if written["figure"] else " (no figure: matplotlib is not installed)"))
        return 0
    except (SuiteError, ConfigError) as e:
        print(f"fedfair.suite: error: {e}", file=sys.stderr)
        return 2
