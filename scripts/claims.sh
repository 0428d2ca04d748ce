#!/usr/bin/env bash
# The claims ledger (issue 18): a learning curve chooses each task's regime (section 0), then each of the
# paper's claims runs as a small controlled experiment there: bracketing learning-rate searches, seeds,
# paired tests and verdicts against the paper's own effect sizes. Writes docs/claims.md and docs/claims/.
# Resumable: every finished run is in docs/claims/runs.jsonl and is not trained again, so rerun after an
# interruption. PLAN=1: print the runs left and their estimated time, train nothing.
# SMOKE=1: tiny grid into results/claims-smoke (a check of the code path, not evidence).
# WORKERS: training processes in parallel (default 2, one torch thread each).
set -euo pipefail
SMOKE="${SMOKE:-0}"                   # 1: a tiny grid into results/claims-smoke
PLAN="${PLAN:-0}"                     # 1: print the runs left and their estimated time, train nothing
CLAIMS="${CLAIMS:-0 1 2 3 4 5 6 7 8}" # the sections to run
WORKERS="${WORKERS:-2}"               # training processes in parallel

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
source scripts/common.sh
FLAGS=(--claims $CLAIMS --workers "$WORKERS")
[ "$SMOKE" = 1 ] && FLAGS+=(--smoke)
[ "$PLAN" = 1 ] && FLAGS+=(--plan)
goat_run "$PYTHON" -m goat.claims "${FLAGS[@]}"
