"""Compare two bit-identity output folders run by run_jobs.sh (old code vs new code).

summary.json: every key except timing ones (ending in _s, containing 'wall', overhead_ratio = mechanism_s/train_s)
and rho/rho_available (written by a later tool, not by the job); agents.csv and server.csv: every column except
timing ones (ending in _s), cell for cell as text; config.toml: equal once read by the new code's load_recorded
(the old one has the old key layout), run.out_dir aside. Run with PYTHONPATH at the new tree:
    PYTHONPATH=/work/wt31 python compare.py out-old out-new
"""
import csv
import json
import sys
from pathlib import Path

from fedfair.config import load_recorded


def timing(key: str) -> bool:
    return key.endswith("_s") or "wall" in key or key == "overhead_ratio"


def table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if not timing(k)} for row in csv.DictReader(f)]


def main(old_root: str, new_root: str) -> int:
    bad = 0
    names = sorted(p.name for p in Path(old_root).iterdir() if p.is_dir())
    for name in names:
        old, new = Path(old_root) / name, Path(new_root) / name
        problems = []
        if not (new / "summary.json").is_file() or not (old / "summary.json").is_file():
            print(f"MISSING {name}")
            bad += 1
            continue
        so, sn = (json.loads((d / "summary.json").read_text()) for d in (old, new))
        keep = lambda s: {k: v for k, v in s.items() if not timing(k) and k not in ("rho", "rho_available")}  # noqa: E731
        if keep(so) != keep(sn):
            diff = [k for k in set(keep(so)) | set(keep(sn)) if keep(so).get(k) != keep(sn).get(k)]
            problems.append(f"summary.json differs in {sorted(diff)}")
        for f in ("agents.csv", "server.csv"):
            a, b = table(old / f), table(new / f)
            if a != b:
                problems.append(f"{f} differs ({len(a)} vs {len(b)} rows)")
        co, cn = (load_recorded(d / "config.toml").to_dict() for d in (old, new))
        co["run"].pop("out_dir"), cn["run"].pop("out_dir")  # the two output folders
        if co != cn:
            problems.append("config.toml differs once read")
        compared = len(keep(so))
        print(("SAME " if not problems else "DIFF ") + f"{name}: summary keys compared {compared}, "
              f"agents rows {len(table(new / 'agents.csv'))}, server rows {len(table(new / 'server.csv'))}"
              + ("" if not problems else " -- " + "; ".join(problems)))
        bad += bool(problems)
    print(f"{len(names) - bad} of {len(names)} runs identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
