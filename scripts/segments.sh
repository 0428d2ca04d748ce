#!/usr/bin/env bash
# Figure 1 (SVD segments): a single LoRA initialised from segment i = 0..h/r-1, the rest frozen, at
# ranks 32 and 128; min-max normalised per dataset. Paper setting: CLIP ViT-B/32 on the CV datasets.
# SMOKE=1 bash scripts/segments.sh: the embedded default on CPU, rank 128 (3 segments of MiniLM).
# Output: <RESULTS_DIR>/studies/segments[-smoke]/figure1.{png,csv}.
set -euo pipefail
SMOKE="${SMOKE:-0}"           # 1: the embedded default on CPU instead of the grid below
FAMILY=vision
TASKS="cars dtd eurosat gtsrb resisc45 sun397 svhn"
MODEL=""                      # empty: configs/$FAMILY.yaml's model
SEEDS="0"
R_VALUES="32 128"
SEGMENTS=""                   # empty: every segment
RESULTS_DIR=results
OUT_DIR=outputs
EXTRA_ARGS=""

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
source scripts/common.sh
if [ "$SMOKE" = 1 ]; then
  GRID=(--smoke)
else
  GRID=(--family "$FAMILY" --tasks $TASKS --r_values $R_VALUES ${SEGMENTS:+--segments $SEGMENTS} ${MODEL:+--model_name_or_path "$MODEL"})
fi
goat_run "$PYTHON" -m goat.studies.segments "${GRID[@]}" \
  --seeds $SEEDS --results_dir "$RESULTS_DIR" --output_dir "$OUT_DIR" $EXTRA_ARGS
