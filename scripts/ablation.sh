#!/usr/bin/env bash
# Table 5 (ablation): goat with expert init O/P/M/R/zero, with and without MoE scaling, and a single
# LoRA with the O segments. Paper setting: CLIP ViT-B/32 on the seven image datasets of Table 1.
# SMOKE=1 bash scripts/ablation.sh: the embedded default on CPU (MiniLM + tweets, small grid); the
# grid variables below are then ignored. Output: <RESULTS_DIR>/studies/ablation[-smoke]/table5.{csv,md}.
set -euo pipefail
SMOKE="${SMOKE:-0}"           # 1: the embedded default on CPU instead of the grid below
FAMILY=vision
TASKS="cars dtd eurosat gtsrb resisc45 sun397 svhn"
MODEL=""                                  # empty: configs/$FAMILY.yaml's model
SEEDS="0"
INITS="spread principal minor random zero"  # O P M R zero (App. E.3)
MS_SCALING=theory                         # "with MS": Thm 3.5
PLAIN_SCALING=alpha                       # "w/o MS": alpha/d, MoLoRA's rule (or a number, e.g. 2 = alpha/r)
RESULTS_DIR=results
OUT_DIR=outputs
EXTRA_ARGS=""                             # e.g. --set bf16=true report_to=wandb

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
source scripts/common.sh
if [ "$SMOKE" = 1 ]; then
  GRID=(--smoke)
else
  GRID=(--family "$FAMILY" --tasks $TASKS --inits $INITS ${MODEL:+--model_name_or_path "$MODEL"})
fi
goat_run "$PYTHON" -m goat.studies.ablation "${GRID[@]}" --ms-scaling "$MS_SCALING" --plain-scaling "$PLAIN_SCALING" \
  --seeds $SEEDS --results_dir "$RESULTS_DIR" --output_dir "$OUT_DIR" $EXTRA_ARGS
