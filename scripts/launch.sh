# Sourced by the task drivers (glue.sh, vit.sh, math.sh, ...): the one place that chooses the launcher.
#   goat_train GPUS DEEPSPEED_CONFIG FAMILY [FLAGS...]
# runs `python -m goat.train FAMILY FLAGS` on one device, or, when GPUS > 1,
# `torchrun --standalone --nproc-per-node=GPUS -m goat.train FAMILY FLAGS --deepspeed DEEPSPEED_CONFIG`.
goat_train() {
  local gpus="$1" deepspeed="$2"
  shift 2
  if [ "$gpus" -gt 1 ]; then
    torchrun --standalone --nproc-per-node="$gpus" -m goat.train "$@" --deepspeed "$deepspeed"
  else
    python -m goat.train "$@"
  fi
}
