#!/usr/bin/env bash
# The claims ledger (issue 14): each of the paper's claims as a small controlled experiment on the
# embedded defaults, with seeds, learning-rate sweeps, paired tests and rule-based verdicts.
# Writes docs/claims.md, docs/claims/*.csv and *.png; planned at about two hours on 2 CPU cores.
# Resumable: every finished run is in docs/claims/runs.jsonl and is not trained again, so rerun
# after an interruption. PLAN=1: print the runs left and their estimated time, train nothing.
# SMOKE=1: tiny grid into results/claims-smoke (a check of the code path, not evidence).
set -euo pipefail
SMOKE="${SMOKE:-0}"
PLAN="${PLAN:-0}"
CLAIMS="${CLAIMS:-1 2 3 4 5 6 7 8}"

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
FLAGS=(--claims $CLAIMS)
[ "$SMOKE" = 1 ] && FLAGS+=(--smoke)
[ "$PLAN" = 1 ] && FLAGS+=(--plan)
"$PYTHON" -m goat.claims "${FLAGS[@]}"
