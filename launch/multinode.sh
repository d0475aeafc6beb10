#!/usr/bin/env bash
# One fedfair job over several nodes with torchrun's c10d rendezvous. Run it on EVERY node with the
# same config and overrides; only NODE_RANK differs:
#
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 launch/multinode.sh [CONFIG] [section.key=value ...]
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=node0 launch/multinode.sh [CONFIG] [section.key=value ...]
#
# Environment:
#   NNODES          number of nodes (required)
#   NODE_RANK       this node's index 0..NNODES-1 (required; node 0 hosts the rendezvous store)
#   MASTER_ADDR     address of node 0, reachable from every node (required)
#   MASTER_PORT     rendezvous port on node 0 (default 29400)
#   NPROC_PER_NODE  ranks on this node (default: the job's run.ranks ranks (N + 1 when 0) spread evenly, the first
#                   nodes taking one more when it does not divide); nodes may differ
#   RDZV_ID         job id shared by all nodes (default fedfair-<config name>-<MASTER_PORT>)
#   LOCAL_ADDR      address this node announces (default: its host name); 127.0.0.1 for tests
#   MAX_RESTARTS    torchrun restarts after a failure (default 3): the job resumes from its last
#                   checkpoint, so set run.checkpoint_every (e.g. run.checkpoint_every=10)
#   FEDFAIR_PYTHON  python to use (default: .venv/bin/python of this checkout)
# gloo picks the interface that resolves the host name; set GLOO_SOCKET_IFNAME (e.g. eth0) when
# that is wrong. Checkpoints are written by each rank on its own node (no shared disk needed).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
: "${NNODES:?set NNODES (number of nodes)}"
: "${NODE_RANK:?set NODE_RANK (0..NNODES-1)}"
: "${MASTER_ADDR:?set MASTER_ADDR (address of node 0)}"
port="${MASTER_PORT:-29400}"
config="${here}/configs/default.toml"
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then config="$1"; shift; fi
py="${FEDFAIR_PYTHON:-${here}/.venv/bin/python}"; [ -x "$py" ] || py=python3
# Validates the config, the data on this node (party files: the common test file), the model's output and
# the run folder on this node, prints the world size (run.ranks, or N + 1 when 0).
# Ranks are numbered node by node, so node 0 holds the server and the first agent blocks
# (fedfair.runtime.placement): run.ranks=9 on 2 nodes puts the server and agent ranks 1..4 on node 0.
world=$("$py" -m fedfair.run --config "$config" --world-size "$@")
if [ -z "${NPROC_PER_NODE:-}" ]; then
  NPROC_PER_NODE=$(( world / NNODES + (NODE_RANK < world % NNODES ? 1 : 0) ))
fi
if [ "$NPROC_PER_NODE" -lt 1 ]; then
  echo "fedfair: error: $NNODES nodes are too many for a job of $world ranks" >&2; exit 2
fi
is_host=$([ "$NODE_RANK" = 0 ] && echo 1 || echo 0)
name=$(basename "$config" .toml)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# A fresh store per rendezvous round: restart counts differ between nodes (a node restarted only
# because another failed keeps its count), so ranks must not key the store by that count.
export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
args=(--nnodes "$NNODES" --nproc-per-node "$NPROC_PER_NODE" --max-restarts "${MAX_RESTARTS:-3}"
      --rdzv-backend c10d --rdzv-endpoint "${MASTER_ADDR}:${port}" --rdzv-id "${RDZV_ID:-fedfair-${name}-${port}}"
      --rdzv-conf "is_host=${is_host}")
[ -n "${LOCAL_ADDR:-}" ] && args+=(--local-addr "$LOCAL_ADDR")
# fedfair.runtime.torchrun = torchrun whose own report goes to <run folder>/torchrun.log (fedfair's line last)
"$py" -m fedfair.runtime.torchrun "${args[@]}" -m fedfair.run --config "$config" "$@" || exit $?
# rho against the Standalone reference, on the node that holds the run folder (the server's, node 0)
if [ "$NODE_RANK" = 0 ]; then exec "$py" -m fedfair rho --config "$config" "$@"; fi
