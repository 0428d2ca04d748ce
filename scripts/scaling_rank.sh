#!/usr/bin/env bash
# Figure 2 (scaling s and rank r): SVD-initialised LoRA (PiSSA) per rank:scaling pair; training loss
# and the Lemma 2.2 equivalent-gradient norm per step. Paper setting: CLIP ViT-B/32 (dataset not
# named; EuroSAT here).
# SMOKE=1 bash scripts/scaling_rank.sh: the embedded default on CPU (8:2 8:16 1:2).
# Output: <RESULTS_DIR>/studies/scaling_rank[-smoke]/figure2.png, figure2_steps.csv, figure2.csv.
set -euo pipefail
SMOKE="${SMOKE:-0}"           # 1: the embedded default on CPU instead of the grid below
FAMILY=vision
TASKS="eurosat"
MODEL=""                      # empty: configs/$FAMILY.yaml's model
SEEDS="0"
CONFIGS="8:2 8:4 8:8 8:16 1:2 64:2 1:16"   # rank:scaling
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
goat_run "$PYTHON" -m goat.studies.scaling_rank "${GRID[@]}" \
  --seeds $SEEDS --results_dir "$RESULTS_DIR" --output_dir "$OUT_DIR" $EXTRA_ARGS
