#!/usr/bin/env bash
# GLUE with RoBERTa-large (paper Table 4). Edit the variables, then: bash glue.sh
# Defaults for everything not set here come from configs/glue.yaml (paper Table 11);
# `python -m goat.train glue --help` lists every flag, EXTRA_ARGS passes any of them.
set -euo pipefail

METHOD=goat                      # goat goat_plus molora hydralora adamole full_moe lora rslora dora pissa milora kasa full
MODEL=FacebookAI/roberta-large   # hub id or local folder
RANK=8                           # Table 11: 8 (the authors' glue.sh ran 32 with ALPHA=64)
ALPHA=16
EXPERTS=8
K=2
AUX_LOSS_COEF=1e-3
TASKS="mrpc rte cola sst2 qnli mnli qqp"
SEEDS="0"
GPUS=1                           # >1: torchrun + DeepSpeed ZeRO-2
DEEPSPEED=configs/deepspeed/zero2.json   # used when GPUS > 1 (zero3.json also works)
OUT_DIR=outputs
RESULTS_DIR=results
REPORT_TO=wandb                  # wandb (offline automatically without network) | tensorboard | none
EXTRA_ARGS=""

cd "$(dirname "$0")"
source scripts/launch.sh

for TASK in $TASKS; do
  for SEED in $SEEDS; do
    goat_train "$GPUS" "$DEEPSPEED" glue --task "$TASK" --method "$METHOD" --model "$MODEL" \
      --rank "$RANK" --alpha "$ALPHA" --experts "$EXPERTS" --top-k "$K" --aux-loss-coef "$AUX_LOSS_COEF" \
      --seed "$SEED" --output-dir "$OUT_DIR" --results-dir "$RESULTS_DIR" --report-to "$REPORT_TO" \
      $EXTRA_ARGS
  done
done
python -m goat.report --family glue --results-dir "$RESULTS_DIR"
