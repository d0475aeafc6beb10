"""``python -m fedfair <command> [options]``: fedfair's tools, one front door.

    sweep     run a grid of jobs one after another (fedfair.experiments.sweep)
    compare   a sweep over methods plus one table (fedfair.experiments.compare)
    report    the paper's tables and figures from run folders (fedfair.experiments.report)
    prepare   per-party data files for a data.dataset = "files" run (fedfair.data.prepare)
    suite     the fairness suite: run, report, keep (fedfair.experiments.suite)
    rho       write rho into finished runs whose Standalone reference has finished (launch/*.sh run it)

``python -m fedfair <command> --help`` gives a command's options. One job is started by torchrun,
not from here: ``torchrun --nproc_per_node N+1 -m fedfair.run --config FILE [key=value ...]``.
A command's module is imported only when it is chosen, so ``--help`` and a typo cost no torch import.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "sweep": "fedfair.experiments.sweep",
    "compare": "fedfair.experiments.compare",
    "report": "fedfair.experiments.report",
    "prepare": "fedfair.data.prepare",
    "suite": "fedfair.experiments.suite.cli",
    "rho": "fedfair.experiments.reference",
}
"""Command name -> the module whose ``main(argv) -> int`` runs it."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().replace("``", ""))
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"fedfair: error: unknown command {command!r}: one of {', '.join(COMMANDS)} "
              "(python -m fedfair --help)", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[command]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
