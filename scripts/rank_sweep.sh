#!/usr/bin/env bash
# Figure 5 (rank): GOAT, MoLoRA, HydraLoRA at total rank 8..128 (alpha = 2r), Full FT MoE as a
# reference line. Paper setting: CLIP ViT-B/32 on the CV datasets, averaged.
# SMOKE=1 bash scripts/rank_sweep.sh: the embedded default on CPU (goat molora at ranks 8 32).
# Output: <RESULTS_DIR>/studies/rank_sweep[-smoke]/figure5.{png,csv}.
set -euo pipefail
SMOKE="${SMOKE:-0}"           # 1: the embedded default on CPU instead of the grid below
FAMILY=vision
TASKS="cars dtd eurosat gtsrb resisc45 sun397 svhn"
MODEL=""                      # empty: configs/$FAMILY.yaml's model
SEEDS="0"
METHODS="goat molora hydralora full_moe"
R_VALUES="8 16 32 64 128"
RESULTS_DIR=results
OUT_DIR=outputs
EXTRA_ARGS=""

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
source scripts/common.sh
if [ "$SMOKE" = 1 ]; then
  GRID=(--smoke)
else
  GRID=(--family "$FAMILY" --tasks $TASKS --methods $METHODS --r_values $R_VALUES ${MODEL:+--model_name_or_path "$MODEL"})
fi
goat_run "$PYTHON" -m goat.studies.rank_sweep "${GRID[@]}" \
  --seeds $SEEDS --results_dir "$RESULTS_DIR" --output_dir "$OUT_DIR" $EXTRA_ARGS
