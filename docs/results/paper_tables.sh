#!/usr/bin/env bash
# Issue 13 item 5: the paper's MNIST tables, re-run with the current code in the configuration the
# training-regime ablation kept (docs/results/regimes/README.md, last section: the paper configs as
# shipped, Table 4 regime, rescale with eps = 1e-7), 60 rounds, seed 0, float32.
#   docs/results/paper_tables.sh [STAGE ...]   (default: every stage below, in order)
# Runs go to logs/mnist{5,10,20}[-eci]/ (a finished run is skipped, so re-running resumes); one
# torchrun job at a time. MNIST-10 and MNIST-20 host their agents on 2 ranks (run.ranks=3:
# bit-identical to one rank per agent, tests/test_hosting.py), which is faster on 2 cores.
set -uo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
py=.venv/bin/python
# data.val_size=1000: every method holds out the slice CFFL and ECI validate on, so all share the
# Standalone reference; run.eval_every=60: evaluate only at the end (evaluation dominates a round).
fixed="data.val_size=1000 run.eval_every=60 run.progress=false comm.timeout_s=600"
cfg() { echo "configs/mnist_$1_uni.toml configs/mnist_$1_pow.toml configs/mnist_$1_cla.toml"; }

stage() {
  echo "== $(date +%T) $1"
  case "$1" in
    m5) $py -m fedfair sweep --config $(cfg 5) --grid mechanism.method=standalone,fedavg,cgsv \
          --grid mechanism.beta=1,2 --out-dir logs/mnist5 $fixed ;;
    m20) $py -m fedfair sweep --config $(cfg 20) --grid mechanism.method=standalone,fedavg,cgsv \
          --grid mechanism.beta=1,2 --out-dir logs/mnist20 $fixed run.ranks=3 ;;
    # MNIST-10, every method at beta = 1, CLA first (where r matters most for Tables 7/8); the beta
    # sweep (1.2, 1.5, 2) is stage m10-beta, ECI m10-eci (all three: about 2 h 30 min on 2 cores).
    m10) $py -m fedfair sweep --config configs/mnist_10_{cla,pow,uni}.toml \
          --grid mechanism.method=standalone,fedavg,dw,eu,rr,qffl,cffl,cgsv \
          --out-dir logs/mnist10 $fixed run.ranks=3 ;;
    m10-beta) $py -m fedfair sweep --config $(cfg 10) --grid mechanism.method=cgsv \
          --grid mechanism.beta=1.2,1.5,2 --out-dir logs/mnist10 $fixed run.ranks=3 ;;
    m10-eci) $py -m fedfair sweep --config $(cfg 10) --grid mechanism.method=eci \
          --out-dir logs/mnist10-eci $fixed run.ranks=3 mechanism.eci.permutations=1 ;;
    # Reports, one per setting (run each once its runs are in)
    report-m5) $py -m fedfair report logs/mnist5 --out docs/results/mnist5 --title "MNIST, 5 agents" ;;
    report-m20) $py -m fedfair report logs/mnist20 --out docs/results/mnist20 --title "MNIST, 20 agents" ;;
    report-m10) $py -m fedfair report logs/mnist10 logs/mnist10-eci --out docs/results/mnist10 \
        --fig1 docs/results/fig1_psi_vs_exact.csv ;;
    # A finished run's records (not its checkpoints) into docs: logs/ is not committed
    keep) for sj in logs/mnist5/*/summary.json logs/mnist20/*/summary.json logs/mnist10/*/summary.json \
                    logs/mnist10-eci/*/summary.json; do
            [ -f "$sj" ] || continue; d=$(dirname "$sj"); grp=${d#logs/}; grp=${grp%%/*}
            case $grp in mnist10*) dst=docs/results/mnist10/rerun-2026-12-01/runs/${d#logs/} ;;
                         *) dst=docs/results/$grp/runs/$(basename "$d") ;; esac
            docs/results/keep_run.sh "$d" "$dst"; done ;;
    *) echo "unknown stage $1" >&2; return 2 ;;
  esac
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(m5 m20 m10 m10-beta m10-eci keep report-m5 report-m20 report-m10)
for st in "${stages[@]}"; do stage "$st"; done
echo "== $(date +%T) done"
