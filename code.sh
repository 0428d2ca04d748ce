#!/usr/bin/env bash
# Code (paper Table 2, HumanEval): LLaMA-2-7B fine-tuned on a Code-Feedback subset, HumanEval pass@1
# after every epoch (generated code runs sandboxed, one process per sample). Edit the variables, then: bash code.sh
# Everything not set here comes from configs/code.yaml (paper Table 12: batch 32, lr 2e-5, 5 epochs);
# `python -m goat.train code --help` lists every flag, EXTRA_ARGS passes any of them.
set -euo pipefail

METHOD=goat                      # goat goat_plus molora hydralora adamole full_moe lora rslora dora pissa milora kasa full
MODEL=meta-llama/Llama-2-7b-hf   # hub id or local folder of any causal LM
RANK=8                           # Table 12
ALPHA=16
EXPERTS=8
K=2
AUX_LOSS_COEF=1e-3
SEEDS="0"
MAX_TRAIN_SAMPLES=100000         # the paper's 100k subset
TRAIN_FILE=""                    # local CodeFeedback jsonl (empty: hub m-a-p/CodeFeedback-Filtered-Instruction)
GPUS=1                           # >1: torchrun + DeepSpeed
PER_DEVICE_BATCH=4               # GPUS x PER_DEVICE_BATCH must divide the total batch 32
DEEPSPEED=configs/deepspeed/zero2.json   # or zero3.json
OUT_DIR=outputs
RESULTS_DIR=results
REPORT_TO=wandb                  # wandb (offline automatically without network) | tensorboard | none
EXTRA_ARGS=""

cd "$(dirname "$0")"
source scripts/launch.sh

for SEED in $SEEDS; do
  goat_train "$GPUS" "$DEEPSPEED" code --task humaneval --method "$METHOD" --model "$MODEL" \
    --rank "$RANK" --alpha "$ALPHA" --experts "$EXPERTS" --top-k "$K" --aux-loss-coef "$AUX_LOSS_COEF" \
    --max-train-samples "$MAX_TRAIN_SAMPLES" --per-device-batch "$PER_DEVICE_BATCH" --seed "$SEED" \
    ${TRAIN_FILE:+--train-file "$TRAIN_FILE"} \
    --output-dir "$OUT_DIR" --results-dir "$RESULTS_DIR" --report-to "$REPORT_TO" $EXTRA_ARGS
done
python -m goat.report --family code --results-dir "$RESULTS_DIR"
