"""The fairness suite (issue 29, item 2): every (valuation x scenario x seed) cell with the
Standalone and FedAvg runs it is measured against, and the scoreboard that says which cells hold.

    python -m fedfair suite run --out logs/suite --seeds 0 [--valuations all|auto|a,b]
        [--scenarios x,y] [--dataset mnist|digits] [--rounds R] [--launcher torchrun|local] [--dry-run]
    python -m fedfair suite report logs/suite --out docs/results/fairness [--keep]
    python -m fedfair suite keep logs/suite --out docs/results/fairness

scenarios (the scenarios, data sets and plan as data), measures (τ over distinct-truth pairs,
gains, the holds rule), scoreboard (CSV, markdown, figure, rule 5, keep), runner (resumable,
pausable runs; failures as data) and cli. The specification is docs/notes of issue 29
(suite_spec.md): its numbers are the constants of measures.py.
"""
from .measures import CellResult, auto_valuations, judge, tau_distinct
from .runner import Runner, find_run, run_cell, suite_config
from .scenarios import PROFILES, SCENARIOS, VALUATIONS, Scenario, SuiteError, SuiteRun, plan

__all__ = ["CellResult", "PROFILES", "Runner", "SCENARIOS", "Scenario", "SuiteError", "SuiteRun", "VALUATIONS",
           "auto_valuations", "find_run", "judge", "plan", "run_cell", "suite_config", "tau_distinct"]
