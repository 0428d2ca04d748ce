# Sourced by the task drivers (glue.sh, vit.sh, math.sh, ...): the one place that chooses the launcher.
#   goat_train FAMILY [FLAGS...]
# runs `python -m goat.train FAMILY FLAGS` on one process; with more (GPUS per node > 1, or NNODES > 1)
# `torchrun ... -m goat.train FAMILY --deepspeed $DEEPSPEED FLAGS` (a --deepspeed among FLAGS wins):
#   one node:     torchrun --standalone --nproc-per-node=$GPUS
#   several:      torchrun --nnodes=$NNODES --node-rank=$NODE_RANK --master-addr=$MASTER_ADDR
#                          --master-port=$MASTER_PORT --nproc-per-node=$GPUS   (static rendezvous)
# Every variable can be set from the environment: GPUS=8 NNODES=2 NODE_RANK=1 MASTER_ADDR=node0 bash math.sh
GPUS="${GPUS:-1}"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
DEEPSPEED="${DEEPSPEED:-zero2}"   # zero2 | zero3 (the packaged configs) | a DeepSpeed JSON file

goat_train() {
  local family="$1"
  shift
  if [ "$NNODES" -gt 1 ]; then
    torchrun --nnodes="$NNODES" --node-rank="$NODE_RANK" --master-addr="$MASTER_ADDR" --master-port="$MASTER_PORT" \
      --nproc-per-node="$GPUS" -m goat.train "$family" --deepspeed "$DEEPSPEED" "$@"
  elif [ "$GPUS" -gt 1 ]; then
    torchrun --standalone --nproc-per-node="$GPUS" -m goat.train "$family" --deepspeed "$DEEPSPEED" "$@"
  else
    python -m goat.train "$family" "$@"
  fi
}
