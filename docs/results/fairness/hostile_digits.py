"""The default job with hostile agents, once per valuation: what a free-rider takes home.

The run of tests/test_reliability_adversarial.py (configs/default.toml, UNI shards, 6 agents,
60 rounds: agents 1-3 honest, 4 a free-rider uploading noise of an honest norm, 5 a
sign-flipper, 6 NaN), with mechanism.valuation set. Prints each agent's final r, reward density
and mean psi over the run.

    OMP_NUM_THREADS=1 python docs/results/fairness/hostile_digits.py logs/hostile cosine classwise loo_classwise
    OMP_NUM_THREADS=1 python docs/results/fairness/hostile_digits.py logs/hostile --seeds 1,2 cosine classwise
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from fedfair.config import load_config
from fedfair.runtime.local import run_local

ROOT = Path(__file__).resolve().parents[3]
BEHAVIOURS = ["honest", "honest", "honest", "free_rider", "sign_flipper", "nan"]


def run(out: str, valuation: str, seed: int) -> None:
    name = f"hostile_{valuation}" + (f"_s{seed}" if seed else "")
    cfg = load_config(ROOT / "configs" / "default.toml", [
        f"run.name={name}", f"run.out_dir={out}", f"run.seed={seed}", "run.rounds=60", "run.eval_every=60",
        "run.progress=false", "run.overwrite=true", "data.partition=uni", f"data.agents={len(BEHAVIOURS)}",
        f"adversary.behaviours={BEHAVIOURS!r}", f"mechanism.valuation={valuation}"])
    summary = run_local(cfg)[0]["summary"]
    psi = pd.read_csv(Path(out) / name / "agents.csv").pivot_table(index="round", columns="agent", values="psi")
    print(f"{valuation} seed {seed}: r {[round(x, 3) for x in summary['final_r']]} "
          f"density {[round(x, 2) for x in summary['final_density']]} "
          f"mean psi {[round(float(x), 3) for x in psi.mean()]}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder for the run folders")
    parser.add_argument("valuations", nargs="+", help="mechanism.valuation values, e.g. cosine classwise")
    parser.add_argument("--seeds", default="0", help="comma-separated run.seed values (default 0)")
    args = parser.parse_args()
    for seed in [int(s) for s in args.seeds.split(",")]:
        for valuation in args.valuations:
            run(args.out, valuation, seed)
