"""The paper-style results table (``python -m goat.report``) and the paper's published numbers."""
