#!/usr/bin/env bash
# One machine: work out N + 1 from the config and start the job with torchrun.
#   launch/local.sh [CONFIG] [section.key=value ...]     (no arguments: configs/default.toml)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
config="${here}/configs/default.toml"
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then config="$1"; shift; fi
py="${here}/.venv/bin/python"; [ -x "$py" ] || py=python3
# Validates the config and the data, prints N + 1; a bad input stops here with one line.
world=$("$py" -m fedfair.run --config "$config" --world-size "$@")
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$py" -m torch.distributed.run --standalone --nnodes 1 --nproc_per_node "$world" \
  -m fedfair.run --config "$config" "$@"
