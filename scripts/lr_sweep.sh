#!/usr/bin/env bash
# Table 6 (learning rates): MoLoRA, HydraLoRA and GOAT at 1e-5, 2e-5, 5e-5. Paper setting: LLaMA-2-7B
# trained on MetaMathQA, scored on GSM8K (configs/math.yaml).
# SMOKE=1 bash scripts/lr_sweep.sh: the embedded default on CPU (molora, goat at 2e-4, 1e-3; grid variables ignored).
# Output: <RESULTS_DIR>/studies/lr_sweep[-smoke]/table6.{csv,md}, lr_sweep.png.
set -euo pipefail
SMOKE="${SMOKE:-0}"           # 1: the embedded default on CPU instead of the grid below
FAMILY=math
TASKS="gsm8k"                 # trains on MetaMathQA, scores GSM8K (configs/math.yaml)
MODEL=""                      # empty: configs/$FAMILY.yaml's model
SEEDS="0"
METHODS="molora hydralora goat"
LEARNING_RATES="1e-5 2e-5 5e-5"
RESULTS_DIR=results
OUT_DIR=outputs
EXTRA_ARGS=""                 # e.g. --set bf16=true deepspeed=configs/deepspeed/zero2.json

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
source scripts/common.sh
if [ "$SMOKE" = 1 ]; then
  GRID=(--smoke)
else
  GRID=(--family "$FAMILY" --tasks $TASKS --methods $METHODS --learning_rates $LEARNING_RATES ${MODEL:+--model_name_or_path "$MODEL"})
fi
goat_run "$PYTHON" -m goat.studies.lr_sweep "${GRID[@]}" \
  --seeds $SEEDS --results_dir "$RESULTS_DIR" --output_dir "$OUT_DIR" $EXTRA_ARGS
