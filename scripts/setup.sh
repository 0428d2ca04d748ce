#!/usr/bin/env bash
# Create .venv in the repo root and install the pinned requirements and this package (editable).
# Safe to re-run: it only installs what is missing. Needs Python >= 3.10 (PYTHON=python3.11 to choose).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first: packages built from source (deepspeed) import it at build time.
.venv/bin/python -m pip install --quiet "$(grep '^torch==' requirements.txt)" "$(grep '^torchvision==' requirements.txt)"
.venv/bin/python -m pip install --quiet -r requirements.txt
.venv/bin/python -m pip install --quiet --no-deps -r requirements-no-deps.txt
.venv/bin/python -m pip install --quiet --no-deps -e .
.venv/bin/python -c "import torch, torchvision, transformers, peft, goat; print('goat', goat.__version__, '| torch', torch.__version__, '| cuda', torch.cuda.is_available())"
