# Sourced by the task drivers (glue.sh, vit.sh, math.sh, ...): the one place that chooses the launcher.
#   goat_train FAMILY [FLAGS...]
# runs `python -m goat.train FAMILY FLAGS` on one process; with more (GPUS per node > 1, or NNODES > 1)
# `torchrun ... -m goat.train FAMILY --deepspeed $DEEPSPEED FLAGS` (a --deepspeed among FLAGS wins):
#   one node:     torchrun --standalone --nproc-per-node=$GPUS
#   several:      torchrun --nnodes=$NNODES --node-rank=$NODE_RANK --master-addr=$MASTER_ADDR
#                          --master-port=$MASTER_PORT --nproc-per-node=$GPUS   (static rendezvous)
# Every variable can be set from the environment: GPUS=8 NNODES=2 NODE_RANK=1 MASTER_ADDR=node0 bash math.sh
# DRY_RUN=1 and --help come from scripts/common.sh, sourced at the end.
GPUS="${GPUS:-1}"                 # processes (GPUs) per node; > 1 launches torchrun with DeepSpeed
NNODES="${NNODES:-1}"             # nodes; > 1: static rendezvous at MASTER_ADDR:MASTER_PORT
NODE_RANK="${NODE_RANK:-0}"       # this node's rank, 0 .. NNODES-1
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"   # address of node 0 (NNODES > 1)
MASTER_PORT="${MASTER_PORT:-29500}"       # port on node 0 (NNODES > 1)
DEEPSPEED="${DEEPSPEED:-zero2}"   # zero2 | zero3 (the packaged configs) | a DeepSpeed JSON file; with > 1 process

# goat_sweep FAMILY FLAG...: one goat_train per task in $TASKS and seed in $SEEDS, with the driver's METHOD,
# OUTPUT_DIR and RESULTS_DIR; FLAG... (the driver's own arguments) come last, so they override.
goat_sweep() {
  local family="$1" task seed
  shift
  for task in $TASKS; do
    for seed in $SEEDS; do
      goat_train "$family" --task "$task" --method "$METHOD" --seed "$seed" --output_dir "$OUTPUT_DIR" \
        --results_dir "$RESULTS_DIR" "$@"
    done
  done
}

goat_train() {
  local family="$1"
  shift
  if [ "$NNODES" -gt 1 ]; then
    goat_run torchrun --nnodes="$NNODES" --node-rank="$NODE_RANK" --master-addr="$MASTER_ADDR" \
      --master-port="$MASTER_PORT" --nproc-per-node="$GPUS" -m goat.train "$family" --deepspeed "$DEEPSPEED" "$@"
  elif [ "$GPUS" -gt 1 ]; then
    goat_run torchrun --standalone --nproc-per-node="$GPUS" -m goat.train "$family" --deepspeed "$DEEPSPEED" "$@"
  else
    goat_run python -m goat.train "$family" "$@"
  fi
}

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
