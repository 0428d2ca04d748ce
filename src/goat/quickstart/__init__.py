"""The embedded default (``python -m goat.quickstart``), its per-method learning rates and its figure."""
