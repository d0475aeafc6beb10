#!/usr/bin/env bash
# docs/results/adversarial.md's job again with clip and none (issue 13: a scaled upload is no longer
# neutralised once magnitudes are kept). Run from the repo root.
set -u
export OMP_NUM_THREADS=1
B="['honest','honest','honest','honest','free_rider','sign_flipper','scaled','replayer','nan']"
# A run that already finished is kept (fedfair.run stops on an existing run folder): delete its folder to redo it.
for n in clip none; do
  [ -f logs/adversarial-regimes/adversarial_9_$n/summary.json ] ||
  nice -n 19 launch/local.sh configs/default.toml data.partition=uni data.agents=9 "adversary.behaviours=$B" \
    mechanism.normalize=$n run.rounds=100 run.eval_every=10 run.name=adversarial_9_$n \
    run.out_dir=logs/adversarial-regimes comm.timeout_s=900 run.progress=false
  [ -f logs/adversarial-regimes/honest_9_$n/summary.json ] ||
  nice -n 19 launch/local.sh configs/default.toml data.partition=uni data.agents=9 \
    mechanism.normalize=$n run.rounds=100 run.eval_every=10 run.name=honest_9_$n \
    run.out_dir=logs/adversarial-regimes comm.timeout_s=900 run.progress=false
done
# The three normalisations across partitions and the baselines that normalise (digits, 5 agents, default config)
for p in uni pow cla; do for n in rescale clip none; do
  nice -n 19 .venv/bin/python -m fedfair compare --config configs/default.toml --methods standalone,fedavg,dw,eu,cffl,cgsv \
    --out-dir logs/digits-norm/$p-$n --reuse data.partition=$p mechanism.normalize=$n comm.timeout_s=900 run.progress=false
done; done
