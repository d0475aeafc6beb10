"""The paper's tables and figures from run folders (``python -m fedfair report``).

runs (reading run folders into table cells), tables, figures, fig1 (the benchmark's figure),
paper (the paper's numbers, from paper.toml) and document (report.md, the CSVs, the command line).
"""
from ..runs import Run, find_runs
from .document import Written, main, report
from .fig1 import plot_fig1

__all__ = ["Run", "Written", "find_runs", "main", "plot_fig1", "report"]
