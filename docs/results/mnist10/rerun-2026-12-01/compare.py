"""The 2026-11-25 MNIST-10 grid (Intel Xeon, 11 ranks) against its 2026-12-01 re-run (AMD EPYC, 3 ranks).

Reads the old runs.csv from git (commit 42d5bf1, the last one before report.md was regenerated) and the
regenerated docs/results/mnist10/runs.csv; prints one markdown row per run:
    .venv/bin/python docs/results/mnist10/rerun-2026-12-01/compare.py
"""
import csv
import io
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
OLD_REV = "42d5bf1"


def rows(text: str) -> dict[str, dict[str, str]]:
    return {r["run"]: r for r in csv.DictReader(io.StringIO(text))}


def pct(x: str) -> str:
    return f"{100 * float(x):.2f}" if x else "–"


def num(x: str) -> str:
    return f"{float(x):.2f}" if x else "undefined"


old = rows(subprocess.run(["git", "show", f"{OLD_REV}:docs/results/mnist10/runs.csv"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout)
new = rows((ROOT / "docs/results/mnist10/runs.csv").read_text())
print("| run | 11-25 mean (max) | 12-01 mean (max) | Δ mean | 11-25 ρ | 12-01 ρ "
      "| 12-01 ρ_r from CGSV's r (own) | 12-01 wall s |")
print("|---|---|---|---|---|---|---|---|")
for name in sorted(new, key=lambda n: (new[n]["partition"], n)):
    n, o = new[name], old.get(name)
    d = f"{100 * (float(n['mean_acc']) - float(o['mean_acc'])):+.2f}" if o else "–"
    print(f"| {name} | {pct(o['mean_acc']) + ' (' + pct(o['max_acc']) + ')' if o else 'not run'} "
          f"| {pct(n['mean_acc'])} ({pct(n['max_acc'])}) | {d} | {num(o['rho']) if o else '–'} | {num(n['rho'])} "
          f"| {num(n.get('rho_r_cgsv', ''))} ({num(n['rho_r'])}) | {float(n['wall_s']):.0f} |")
