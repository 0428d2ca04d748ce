#!/usr/bin/env bash
# GLUE with RoBERTa-large (paper Table 4; settings of Table 11).
# Every setting comes from src/goat/configs/glue.yaml (the paper's table); the variables below are the sweep
# the paper runs, each overridable from the environment, and any `python -m goat.train glue` flag can follow:
#   METHOD=lora SEEDS="0 1 2" GPUS=4 bash glue.sh --learning_rate 5e-4
# `python -m goat.train glue --help` lists the settings with their defaults. After a crash or preemption,
# rerun the same command with --resume (each run continues from its newest checkpoint).
set -euo pipefail

METHOD="${METHOD:-goat}"        # goat goat_plus molora hydralora adamole full_moe lora rslora dora pissa milora kasa full
TASKS="${TASKS:-mrpc rte cola sst2 qnli mnli qqp}"   # space-separated; one run per task and seed
SEEDS="${SEEDS:-0}"                   # space-separated, e.g. "0 1 2"
OUTPUT_DIR="${OUTPUT_DIR:-outputs}"   # run folders: <OUTPUT_DIR>/<family>/<run name>/
RESULTS_DIR="${RESULTS_DIR:-results}" # rows: <RESULTS_DIR>/<family>/results.{csv,jsonl}
# GPUS, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT, DEEPSPEED: see scripts/launch.sh; DRY_RUN, --help: scripts/common.sh

cd "$(dirname "$0")"
source scripts/launch.sh

goat_sweep glue "$@"   # one run per task and seed (scripts/launch.sh)
goat_report python -m goat.report --family glue --results_dir "$RESULTS_DIR"
