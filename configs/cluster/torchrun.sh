#!/bin/bash
# depthlab with torchrun (no scheduler, or one that only starts a command per node):
#   node 0:  NODE_RANK=0 MASTER_ADDR=<node 0 address> bash configs/cluster/torchrun.sh configs/kitti.yaml
#   node 1:  NODE_RANK=1 MASTER_ADDR=<node 0 address> bash configs/cluster/torchrun.sh configs/kitti.yaml
# torchrun sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every process it starts;
# Lightning's TorchElasticEnvironment reads them. NNODES x GPUS_PER_NODE processes in all.
set -euo pipefail
CONFIG=${1:-configs/kitti.yaml}
NNODES=${NNODES:-2}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
torchrun --nnodes "$NNODES" --nproc_per_node "$GPUS_PER_NODE" --node_rank "${NODE_RANK:-0}" \
  --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}" \
  -m depthlab.cli fit --config "$CONFIG" \
  --trainer.accelerator gpu --trainer.devices "$GPUS_PER_NODE" --trainer.num_nodes "$NNODES" \
  --trainer.strategy ddp --trainer.sync_batchnorm true
