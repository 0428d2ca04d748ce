#!/usr/bin/env bash
# The claims ledger's training code, as a git worktree beside this checkout.
#
# Every run in docs/claims/runs.jsonl was trained by the layers and trainer of commit 8753698. The layers
# changed after it at the rounding level (W_res joined the experts' product), so a run trained by this
# checkout's code would put two code versions into one comparison. This builds the checkout the ledger runs
# from: commit 8753698, plus from this checkout's HEAD the ledger itself (src/goat/claims: what it runs and
# how it judges) and the drug-review task (its loader and YAML block came after 8753698 and touch no layer
# and no trainer). It commits them there, so the commit named in docs/claims.md's header is this checkout.
#
#   bash scripts/ledger_worktree.sh [FOLDER]    # default ../ledger; then run the command it prints
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN="$(pwd)"
FOLDER="${1:-../ledger}"
TRAINING_COMMIT=8753698
FROM_HEAD=(src/goat/claims src/goat/tasks/drug_reviews.py src/goat/tasks/glue.py src/goat/train/glue.py src/goat/configs/glue.yaml)

if [ -e "$FOLDER" ]; then
  echo "error: $FOLDER already exists; reuse it, or remove it first (git worktree remove --force $FOLDER)." >&2
  exit 1
fi
if ! git cat-file -e "$TRAINING_COMMIT^{commit}" 2>/dev/null; then
  echo "error: commit $TRAINING_COMMIT is not in this clone; fetch the full history (git fetch --unshallow)." >&2
  exit 1
fi
git worktree add --quiet --detach "$FOLDER" "$TRAINING_COMMIT"
rm -rf "$FOLDER/src/goat/claims"
git archive HEAD "${FROM_HEAD[@]}" | tar -x -C "$FOLDER"
git -C "$FOLDER" add -A src
git -C "$FOLDER" commit --quiet -m "Ledger: training code of $TRAINING_COMMIT; ledger and drug-review task of $(git rev-parse --short HEAD)"
FOLDER="$(cd "$FOLDER" && pwd)"
echo "ledger checkout: $FOLDER ($(git -C "$FOLDER" rev-parse --short HEAD))"
echo "run (resumable; writes $MAIN/docs/claims.md and appends to $MAIN/docs/claims/runs.jsonl):"
echo "  cd $FOLDER && PYTHONPATH=$FOLDER/src nice -n 5 $MAIN/.venv/bin/python -m goat.claims --out $MAIN/docs --results_dir $FOLDER/results/claims --output_dir $FOLDER/outputs/claims"
