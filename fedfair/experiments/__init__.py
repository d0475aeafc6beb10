"""Experiment tools on top of the runtime: sweep (grids of runs), compare (a sweep over methods plus
a table), report (the paper's tables and figures from run folders) and suite (the fairness suite).
Their command line is ``python -m fedfair <command>`` (fedfair/__main__.py)."""
