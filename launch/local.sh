#!/usr/bin/env bash
# One machine: work out the world size from the config (run.ranks, or N + 1 when 0) and start the
# job with torchrun: rank 0 is the server, ranks 1..P-1 host the agents in contiguous blocks.
#   launch/local.sh [CONFIG] [section.key=value ...]     (no arguments: configs/default.toml)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
config="${here}/configs/default.toml"
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then config="$1"; shift; fi
py="${here}/.venv/bin/python"; [ -x "$py" ] || py=python3
# Validates the config and the data, prints the world size; a bad input stops here with one line.
world=$("$py" -m fedfair.run --config "$config" --world-size "$@")
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$py" -m torch.distributed.run --standalone --nnodes 1 --nproc_per_node "$world" \
  -m fedfair.run --config "$config" "$@"
