#!/usr/bin/env bash
# One machine: work out the world size from the config (run.ranks, or N + 1 when 0) and start the
# job with torchrun: rank 0 is the server, ranks 1..P-1 host the agents in contiguous blocks.
#   launch/local.sh [CONFIG] [section.key=value ...]     (no arguments: configs/default.toml)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
config="${here}/configs/default.toml"
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then config="$1"; shift; fi
py="${FEDFAIR_PYTHON:-${here}/.venv/bin/python}"; [ -x "$py" ] || py=python3
# Validates the config, every data file (all ranks run here), the model's output and the run folder,
# prints the world size; a bad input stops here with one line and exit code 2.
world=$("$py" -m fedfair.run --config "$config" --world-size --all-files "$@")
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# torchrun through fedfair.runtime.torchrun: torchrun's own report goes to <run folder>/torchrun.log, so a
# failed job ends with the rank's one fedfair line and its exit code (2 = bad input).
"$py" -m fedfair.runtime.torchrun --standalone --nnodes 1 --nproc_per_node "$world" \
  -m fedfair.run --config "$config" "$@" || exit $?
# rho (the run against its Standalone reference) is the experiment layer's: filled in once both have finished.
exec "$py" -m fedfair rho --config "$config" "$@"
