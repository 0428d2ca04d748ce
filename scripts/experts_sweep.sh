#!/usr/bin/env bash
# Figure 6 (experts and activation): GOAT and MoLoRA for k-in-E configurations at total rank 32.
# Paper setting: CLIP ViT-B/32 on the CV datasets, averaged.
# SMOKE=1 bash scripts/experts_sweep.sh: the embedded default on CPU (1in8 2in8).
# Output: <RESULTS_DIR>/studies/experts_sweep[-smoke]/figure6.{png,csv}.
set -euo pipefail
SMOKE="${SMOKE:-0}"           # 1: the embedded default on CPU instead of the grid below
FAMILY=vision
TASKS="cars dtd eurosat gtsrb resisc45 sun397 svhn"
MODEL=""                      # empty: configs/$FAMILY.yaml's model
SEEDS="0"
METHODS="goat molora"
CONFIGS="1in8 2in8 4in8 8in8 4in16 8in32"   # k in E
RANK=32
RESULTS_DIR=results
OUT_DIR=outputs
EXTRA_ARGS=""

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
source scripts/common.sh
if [ "$SMOKE" = 1 ]; then
  GRID=(--smoke)
else
  GRID=(--family "$FAMILY" --tasks $TASKS --configs $CONFIGS ${MODEL:+--model_name_or_path "$MODEL"})
fi
goat_run "$PYTHON" -m goat.studies.experts_sweep "${GRID[@]}" --methods $METHODS --r "$RANK" \
  --seeds $SEEDS --results_dir "$RESULTS_DIR" --output_dir "$OUT_DIR" $EXTRA_ARGS
