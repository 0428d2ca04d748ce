#!/usr/bin/env bash
# Chat (paper Table 2, MT-Bench): LLaMA-2-7B on a WizardLM subset; after every epoch the answers to the
# 80 MT-Bench questions go to <run>/mt_bench/model_answer/<run>-epoch<N>.jsonl (FastChat's format).
# Needs the questions: bash chat.sh --eval_data <FastChat>/fastchat/llm_judge/data/mt_bench/question.jsonl
# The score needs FastChat's GPT-4 judge, run by you (see the end).
# Every setting comes from src/goat/configs/chat.yaml (the paper's table); the variables below are the sweep
# the paper runs, each overridable from the environment, and any `python -m goat.train chat` flag can follow:
#   METHOD=lora SEEDS="0 1 2" GPUS=4 bash chat.sh --learning_rate 5e-4
# `python -m goat.train chat --help` lists the settings with their defaults. After a crash or preemption,
# rerun the same command with --resume (each run continues from its newest checkpoint).
set -euo pipefail

METHOD="${METHOD:-goat}"        # goat goat_plus molora hydralora adamole full_moe lora rslora dora pissa milora kasa full
TASKS="${TASKS:-mtbench}"   # space-separated; one run per task and seed
SEEDS="${SEEDS:-0}"                   # space-separated, e.g. "0 1 2"
OUTPUT_DIR="${OUTPUT_DIR:-outputs}"   # run folders: <OUTPUT_DIR>/<family>/<run name>/
RESULTS_DIR="${RESULTS_DIR:-results}" # rows: <RESULTS_DIR>/<family>/results.{csv,jsonl}
# GPUS, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT, DEEPSPEED: see scripts/launch.sh; DRY_RUN, --help: scripts/common.sh

cd "$(dirname "$0")"
source scripts/launch.sh

goat_sweep chat "$@"   # one run per task and seed (scripts/launch.sh)
echo "MT-Bench answers: $OUTPUT_DIR/chat/*/mt_bench/model_answer/*.jsonl. To score them, copy them to FastChat's"
echo "fastchat/llm_judge/data/mt_bench/model_answer/ and run there: python gen_judgment.py --model-list <file stems>"
echo "(GPT-4 judge, needs OPENAI_API_KEY), then: python show_result.py"
