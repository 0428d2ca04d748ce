#!/usr/bin/env bash
# Figure 4 (convergence): training-loss curves (balance loss excluded) of PiSSA, the LoRA-MoE
# baselines, GOAT and Full FT MoE. Paper setting: Cars (CLIP ViT-B/32) and MetaMathQA (LLaMA-2-7B).
# SMOKE=1 bash scripts/loss_curves.sh: the embedded default on CPU (pissa molora goat).
# Output: <RESULTS_DIR>/studies/loss_curves[-smoke]/figure4.png, figure4_steps.csv.
set -euo pipefail
SMOKE="${SMOKE:-0}"           # 1: the embedded default on CPU instead of the grid below
TASKS="vision:cars math:gsm8k"   # family:task (math:gsm8k trains on MetaMathQA)
MODEL=""                      # empty: each family's configs/<family>.yaml model
SEEDS="0"
METHODS="pissa molora hydralora adamole goat full_moe"   # full_moe on LLaMA-2-7B needs >= 640 GB (Table 7)
RESULTS_DIR=results
OUT_DIR=outputs
EXTRA_ARGS=""

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
source scripts/common.sh
if [ "$SMOKE" = 1 ]; then
  GRID=(--smoke)
else
  GRID=(--tasks $TASKS --methods $METHODS ${MODEL:+--model_name_or_path "$MODEL"})
fi
goat_run "$PYTHON" -m goat.studies.loss_curves "${GRID[@]}" \
  --seeds $SEEDS --results_dir "$RESULTS_DIR" --output_dir "$OUT_DIR" $EXTRA_ARGS
