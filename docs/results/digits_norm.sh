#!/usr/bin/env bash
# Issue 13: what the normalisation does across partitions and to the baselines that normalise (DW, EU,
# CFFL beside CGSV), on the built-in digits job (configs/default.toml: 5 agents, Γ = 1, lr 0.3,
# 200 rounds, seed 0, float32). FedAvg averages raw updates, so it runs once per partition.
# Run from the repo root; results: docs/results/regimes/README.md ("Across partitions and baselines").
set -u
export OMP_NUM_THREADS=1
for p in uni pow cla; do for n in rescale clip; do
  m=standalone,dw,eu,cffl,cgsv; [ $n = rescale ] && m=standalone,fedavg,dw,eu,cffl,cgsv
  nice -n 19 .venv/bin/python -m fedfair compare --config configs/default.toml --methods $m \
    --out-dir logs/digits-norm/$p-$n --reuse data.partition=$p mechanism.normalize=$n comm.timeout_s=900 run.progress=false
done; done
.venv/bin/python docs/results/digits_norm_table.py logs/digits-norm
