#!/usr/bin/env bash
# Commonsense reasoning (paper Table 3): LLaMA-2-7B fine-tuned on Commonsense170K, accuracy on the 8 test sets
# (answer label read from the generated text) after every epoch. Edit the variables, then: bash commonsense.sh
# Everything not set here comes from configs/commonsense.yaml (paper Table 9: batch 16, lr 1e-4, 3 epochs);
# `python -m goat.train commonsense --help` lists every flag, EXTRA_ARGS passes any of them.
set -euo pipefail

METHOD=goat                      # goat goat_plus molora hydralora adamole full_moe lora rslora dora pissa milora kasa full
MODEL=meta-llama/Llama-2-7b-hf   # hub id or local folder of any causal LM
RANK=32                          # Table 9
ALPHA=64
EXPERTS=8
K=2
AUX_LOSS_COEF=1e-3
SEEDS="0"
TRAIN_FILE=""                    # local commonsense_170k.json (empty: hub zwhe99/commonsense_170k)
EVAL_DATA=dataset                # LLM-Adapters dataset/ folder with <set>/test.json for the 8 sets (required)
GPUS=1                           # >1: torchrun + DeepSpeed
PER_DEVICE_BATCH=4               # GPUS x PER_DEVICE_BATCH must divide the total batch 16
DEEPSPEED=configs/deepspeed/zero2.json   # or zero3.json
OUT_DIR=outputs
RESULTS_DIR=results
REPORT_TO=wandb                  # wandb (offline automatically without network) | tensorboard | none
EXTRA_ARGS=""

cd "$(dirname "$0")"
source scripts/launch.sh

for SEED in $SEEDS; do
  goat_train "$GPUS" "$DEEPSPEED" commonsense --task commonsense --method "$METHOD" --model "$MODEL" \
    --rank "$RANK" --alpha "$ALPHA" --experts "$EXPERTS" --top-k "$K" --aux-loss-coef "$AUX_LOSS_COEF" \
    --per-device-batch "$PER_DEVICE_BATCH" --seed "$SEED" \
    ${TRAIN_FILE:+--train-file "$TRAIN_FILE"} --eval-data "$EVAL_DATA" \
    --output-dir "$OUT_DIR" --results-dir "$RESULTS_DIR" --report-to "$REPORT_TO" $EXTRA_ARGS
done
python -m goat.report --family commonsense --results-dir "$RESULTS_DIR"
