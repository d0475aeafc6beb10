#!/bin/bash
# Usage: reportcheck.sh TREE OUT  -- regenerate committed tables from committed run folders with the code in TREE
TREE=$1; OUT=$2
PY=${PY:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/python}  # the repo's venv unless PY is set
cd $TREE
export PYTHONPATH=$TREE OMP_NUM_THREADS=1 MPLBACKEND=Agg
rm -rf $OUT; mkdir -p $OUT
nice -n 10 $PY -m fedfair report docs/results/mnist5/runs --out $OUT/mnist5 --title "MNIST, 5 agents" > $OUT/mnist5.log 2>&1
nice -n 10 $PY -m fedfair report docs/results/mnist20/runs --out $OUT/mnist20 --title "MNIST, 20 agents" > $OUT/mnist20.log 2>&1
nice -n 10 $PY -m fedfair suite report docs/results/fairness/runs --out $OUT/fairness > $OUT/fairness.log 2>&1
for d in mnist5 mnist20 fairness; do
  for f in $OUT/$d/*.md $OUT/$d/*.csv; do
    [ -f "$f" ] || continue
    b=$(basename $f)
    if [ -f docs/results/$d/$b ]; then cmp -s $f docs/results/$d/$b && echo "SAME $d/$b" || echo "DIFF $d/$b"; else echo "NEW  $d/$b"; fi
  done
done
