"""The claims ledger: the paper's claims as small controlled experiments on the embedded defaults.

``python -m goat.claims`` (or ``bash scripts/claims.sh``) chooses each task's regime from a learning
curve, runs each claim with bracketing learning-rate searches, seeds and paired tests, and writes
``docs/claims.md`` with ``docs/claims/*.csv`` and ``*.png``.

==============  ================================================================
module          job
==============  ================================================================
``scale``       tasks, learning-curve budgets, grids, seeds, the paper's effects δ
``ledger``      configurations, their run settings, the resumable record file
``executor``    trains the requested runs in parallel worker processes
``arms``        a configuration over seeds; the bracketing search; seed growth
``curve``       the learning curve and the rule that picks the regime (section 0)
``mechanism``   Theorem 3.5's equivalent gradient against full fine-tuning's (claim 4)
``stats``       mean ± t interval, paired t-test, MDE, the verdict rules against δ
``section``     a section of the document and its paired comparisons
``claims``      the sections: regime (0) and claims 1-8
``planning``    ``--plan``: the runs left, simulated to the end
``plots``       figures and CSV helpers
``document``    docs/claims.md
==============  ================================================================
"""
