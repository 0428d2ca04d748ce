#!/usr/bin/env bash
# Figure 7 (routing): per-task and per-layer expert load of trained GOAT models (E=8, k=2), with the
# balance loss (1e-3) and without it (0). Paper setting: nine tasks across CV, GLUE, GSM8K, HumanEval.
# SMOKE=1 bash scripts/routing.sh: the embedded default on CPU.
# Output: <RESULTS_DIR>/studies/routing[-smoke]/figure7.png, figure7_layers_<task>.png, figure7*.csv.
set -euo pipefail
SMOKE="${SMOKE:-0}"           # 1: the embedded default on CPU instead of the grid below
TASKS="vision:cars vision:dtd vision:eurosat vision:gtsrb glue:cola glue:sst2 glue:rte math:gsm8k code:humaneval"
MODEL=""                      # empty: each family's configs/<family>.yaml model
SEEDS="0"
AUX_LOSS_COEFS="1e-3 0"
RESULTS_DIR=results
OUT_DIR=outputs
EXTRA_ARGS=""

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
source scripts/common.sh
if [ "$SMOKE" = 1 ]; then
  GRID=(--smoke)
else
  GRID=(--tasks $TASKS ${MODEL:+--model_name_or_path "$MODEL"})
fi
goat_run "$PYTHON" -m goat.studies.routing "${GRID[@]}" --aux_loss_coefs $AUX_LOSS_COEFS \
  --seeds $SEEDS --results_dir "$RESULTS_DIR" --output_dir "$OUT_DIR" $EXTRA_ARGS
