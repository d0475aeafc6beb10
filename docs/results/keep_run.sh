#!/usr/bin/env bash
# Copy a finished run's records (not its checkpoints) from RUN_DIR into DEST_DIR: logs/ is not committed,
# so the results folders keep these four files of every run they report.
#   docs/results/keep_run.sh RUN_DIR DEST_DIR
set -euo pipefail
mkdir -p "$2"
for f in config.toml summary.json agents.csv server.csv; do
  [ -f "$1/$f" ] && cp "$1/$f" "$2/"
done
exit 0
