"""The claims ledger: the paper's claims as small controlled experiments on the embedded defaults.

``python -m goat.claims`` (or ``bash scripts/claims.sh``) runs each claim with seeds, learning-rate
sweeps and paired tests and writes ``docs/claims.md`` with ``docs/claims/*.csv`` and ``*.png``.

==============  ================================================================
module          job
==============  ================================================================
``scale``       data sizes, seeds and grids (full ledger and ``--smoke``)
``ledger``      configurations, their run settings, the resumable record file
``arms``        a configuration over seeds and learning rates; tuned / equal-lr
``stats``       mean ± t interval, paired t-test, the written verdict rules
``claims``      the eight claims
``plots``       figures and CSV helpers
``document``    docs/claims.md
==============  ================================================================
"""
