#!/usr/bin/env bash
# CLIP ViT-B/32 on seven image datasets (paper Table 1). Edit the variables, then: bash vit.sh
# Defaults for everything not set here come from configs/vision.yaml (paper Table 10: batch 512,
# lr 1e-4, warmup 100, per-task epochs); `python -m goat.train vision --help` lists every flag,
# EXTRA_ARGS passes any of them. Offline check of the code path (a smoke run, not a reproduction):
# TASKS=digits MODEL=smoke REPORT_TO=none.
set -euo pipefail

METHOD=goat                          # goat goat_plus molora hydralora adamole full_moe lora rslora dora pissa milora kasa full
BACKBONE=hf                          # hf (transformers, as the authors ran) | open_clip
MODEL=openai/clip-vit-base-patch32   # hf: hub id or local folder; open_clip: architecture, e.g. ViT-B-32
PRETRAINED=openai                    # open_clip weights: tag or checkpoint file (ignored by hf)
HEAD=linear                          # linear (trained) | zeroshot (frozen class-name prompts; open_clip)
RANK=8                               # total rank (Table 10)
ALPHA=16
EXPERTS=8
K=2
AUX_LOSS_COEF=1e-3
TASKS="cars dtd eurosat gtsrb resisc45 sun397 svhn"
SEEDS="0"
GPUS=1                               # >1: torchrun + DeepSpeed ZeRO-2 (the authors: 4 GPUs x 64 x 2 steps = 512)
DEEPSPEED=configs/deepspeed/zero2.json   # used when GPUS > 1 (zero3.json also works)
DATA_DIR=""                          # empty: hub mirrors; else <DATA_DIR>/<task>/{train,test}/<class>/<image>
OUT_DIR=outputs
RESULTS_DIR=results
REPORT_TO=wandb                      # wandb (offline automatically without network) | tensorboard | none
EXTRA_ARGS=""

cd "$(dirname "$0")"
source scripts/launch.sh
DATA=()
if [ -n "$DATA_DIR" ]; then DATA=(--data-dir "$DATA_DIR"); fi

for TASK in $TASKS; do
  for SEED in $SEEDS; do
    goat_train "$GPUS" "$DEEPSPEED" vision --task "$TASK" --method "$METHOD" --backbone "$BACKBONE" --model "$MODEL" \
      --pretrained "$PRETRAINED" --head "$HEAD" --rank "$RANK" --alpha "$ALPHA" --experts "$EXPERTS" --top-k "$K" \
      --aux-loss-coef "$AUX_LOSS_COEF" --seed "$SEED" --output-dir "$OUT_DIR" --results-dir "$RESULTS_DIR" \
      --report-to "$REPORT_TO" "${DATA[@]}" $EXTRA_ARGS
  done
done
python -m goat.report --family vision --results-dir "$RESULTS_DIR"
