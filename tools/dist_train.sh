#!/usr/bin/env bash
# Distributed training with torchrun: dist_train.sh CONFIG NPROC [train.py args]
# NNODES, NODE_RANK, MASTER_ADDR and PORT select a multi-node setup.
set -euo pipefail
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHONPATH="$HERE/..:${PYTHONPATH:-}" exec "${PYTHON:-python3}" -m torch.distributed.run \
  --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
  --nproc_per_node="$NPROC" --master_port="$PORT" \
  "$HERE/train.py" "$CONFIG" --launcher pytorch "${@:3}"
