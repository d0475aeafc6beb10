"""Experiment tools on top of the runtime: the regime ablation report."""
