#!/usr/bin/env bash
# Chat (paper Table 2, MT-Bench): LLaMA-2-7B fine-tuned on a WizardLM subset; after every epoch the answers
# to the 80 MT-Bench questions go to <run>/mt_bench/model_answer/<run>-epoch<N>.jsonl (FastChat's format).
# The score needs FastChat's GPT-4 judge, run by you (see the end). Edit the variables, then: bash chat.sh
# Everything not set here comes from configs/chat.yaml (paper Table 12: batch 32, lr 2e-5, 5 epochs);
# `python -m goat.train chat --help` lists every flag, EXTRA_ARGS passes any of them.
set -euo pipefail

METHOD=goat                      # goat goat_plus molora hydralora adamole full_moe lora rslora dora pissa milora kasa full
MODEL=meta-llama/Llama-2-7b-hf   # hub id or local folder of any causal LM
RANK=8                           # Table 12
ALPHA=16
EXPERTS=8
K=2
AUX_LOSS_COEF=1e-3
SEEDS="0"
MAX_TRAIN_SAMPLES=52000          # the paper's 52k subset
TRAIN_FILE=""                    # local alpaca_evol_instruct_70k.json (empty: hub WizardLMTeam/WizardLM_evol_instruct_70k)
EVAL_DATA=question.jsonl         # FastChat: fastchat/llm_judge/data/mt_bench/question.jsonl (required)
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
  goat_train "$GPUS" "$DEEPSPEED" chat --task mtbench --method "$METHOD" --model "$MODEL" \
    --rank "$RANK" --alpha "$ALPHA" --experts "$EXPERTS" --top-k "$K" --aux-loss-coef "$AUX_LOSS_COEF" \
    --max-train-samples "$MAX_TRAIN_SAMPLES" --per-device-batch "$PER_DEVICE_BATCH" --seed "$SEED" \
    ${TRAIN_FILE:+--train-file "$TRAIN_FILE"} --eval-data "$EVAL_DATA" \
    --output-dir "$OUT_DIR" --results-dir "$RESULTS_DIR" --report-to "$REPORT_TO" $EXTRA_ARGS
done
echo "MT-Bench answers: $OUT_DIR/chat/*/mt_bench/model_answer/*.jsonl. To score them, copy them to FastChat's"
echo "fastchat/llm_judge/data/mt_bench/model_answer/ and run there: python gen_judgment.py --model-list <file stems>"
echo "(GPT-4 judge, needs OPENAI_API_KEY), then: python show_result.py"
