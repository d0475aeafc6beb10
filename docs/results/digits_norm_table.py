"""The digits normalisation grid (docs/results/digits_norm.sh) as one Markdown table: per partition,
normalisation and method. Usage: .venv/bin/python docs/results/digits_norm_table.py [logs/digits-norm]"""
import json
import sys
from pathlib import Path

import numpy as np

from fedfair.metrics import kendall_tau


def fmt(v: float | None, d: int = 1) -> str:
    return "–" if v is None else f"{v:.{d}f}"


root = Path(sys.argv[1] if len(sys.argv) > 1 else "logs/digits-norm")
print("| partition | normalize | method | mean acc | min / max acc | server | ρ | ρ_r | τ(r, standalone acc) | r |")
print("|---|---|---|---|---|---|---|---|---|---|")
for p in ("uni", "pow", "cla"):
    alone = None
    for n in ("rescale", "clip"):
        d = root / f"{p}-{n}"
        for m in ("standalone", "fedavg", "dw", "eu", "cffl", "cgsv"):
            f = d / m / "summary.json"
            if not f.exists():
                continue
            s = json.loads(f.read_text())
            acc = s["final_acc"]
            if m == "standalone":
                alone = acc
            r = s["final_r"]
            tau = None if m == "standalone" or alone is None else kendall_tau(r, alone)
            print(f"| {p} | {n} | {m} | {100*np.mean(acc):.1f} | {100*min(acc):.1f} / {100*max(acc):.1f} | "
                  f"{fmt(None if s.get('server_acc') is None else 100*s['server_acc'])} | {fmt(s.get('rho'))} | "
                  f"{fmt(s.get('rho_r'))} | {fmt(tau, 2)} | "
                  f"{' / '.join(f'{x:.2f}' for x in r) if m != 'standalone' else '–'} |")
