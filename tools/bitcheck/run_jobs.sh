#!/bin/bash
# Usage: run_jobs.sh TREE OUT old|new [REGEX]   (REGEX: run only the jobs whose name matches)
# Runs the bit-identity jobs with the code in TREE into OUT (one folder per job).
# old: the moved settings are given by their old keys (mechanism.qffl_q, ...); new: by the new ones.
set -u
TREE=$1; OUT=$2; MODE=$3; ONLY=${4:-.}
PY=${PY:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/python}  # the repo's venv unless PY is set
cd "$TREE"
export PYTHONPATH=$TREE OMP_NUM_THREADS=1
mkdir -p "$OUT"
if [ "$MODE" = old ]; then
  STEP=mechanism.standalone_step=sgd; Q=mechanism.qffl_q=2.5; TH=mechanism.cffl_threshold=0.15
  AL=mechanism.cffl_alpha=2; PERM=mechanism.eci_permutations=7
  BEH="mechanism.behaviours=['honest','free_rider','sign_flipper','scaled','nan']"
else
  STEP=mechanism.standalone.step=sgd; Q=mechanism.qffl.q=2.5; TH=mechanism.cffl.threshold=0.15
  AL=mechanism.cffl.alpha=2; PERM=mechanism.eci.permutations=7
  BEH="adversary.behaviours=['honest','free_rider','sign_flipper','scaled','nan']"
fi
job() {  # name, nproc, overrides...
  local name=$1 nproc=$2; shift 2
  [[ $name =~ $ONLY ]] || return 0
  rm -rf "$OUT/$name"
  if nice -n 10 $PY -m fedfair.runtime.torchrun --standalone --nnodes 1 --nproc_per_node $nproc \
      -m fedfair.run --config configs/default.toml run.progress=false run.out_dir="$OUT" run.name=$name "$@" \
      > "$OUT/$name.log" 2>&1; then echo "ok   $name"; else echo "FAIL $name (see $OUT/$name.log)"; fi
}
job default 6
for m in standalone fedavg dw eu rr qffl cffl eci cgsv; do job m-$m 6 run.rounds=40 mechanism.method=$m; done
job set-standalone-step 6 run.rounds=40 mechanism.method=standalone $STEP
job set-qffl-q 6 run.rounds=40 mechanism.method=qffl $Q
job set-cffl-threshold 6 run.rounds=40 mechanism.method=cffl $TH
job set-cffl-alpha 6 run.rounds=40 mechanism.method=cffl $AL
job set-eci-permutations 10 run.rounds=10 mechanism.method=eci data.agents=9 mechanism.audit=none $PERM
job set-behaviours 6 run.rounds=40 mechanism.method=cgsv "$BEH"
