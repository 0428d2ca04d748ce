#!/usr/bin/env bash
# Create .venv in the repo root and install the pinned requirements and this package (editable).
# Safe to re-run: it only installs what is missing. Needs Python >= 3.10 (PYTHON=python3.11 to choose).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
# The HumanEval sandbox's seccomp filter loads libseccomp.so.2 (Debian/Ubuntu package libseccomp2).
if ! ldconfig -p 2>/dev/null | grep 'libseccomp\.so\.2' >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq libseccomp2
  else
    echo "note: libseccomp.so.2 not found; install libseccomp2, or the HumanEval sandbox refuses to run samples" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first: packages built from source (deepspeed) import it at build time.
.venv/bin/python -m pip install --quiet "$(grep '^torch==' requirements.txt)" "$(grep '^torchvision==' requirements.txt)"
.venv/bin/python -m pip install --quiet -r requirements.txt
.venv/bin/python -m pip install --quiet --no-deps -r requirements-no-deps.txt
.venv/bin/python -m pip install --quiet --no-deps -e .
# --help answers from ~/.cache/goat/help once stored (building it imports transformers, ~7 s): store each family's now.
.venv/bin/python -m goat.train.help_cache
.venv/bin/python -c "import torch, torchvision, transformers, peft, goat; print('goat', goat.__version__, '| torch', torch.__version__, '| cuda', torch.cuda.is_available())"
