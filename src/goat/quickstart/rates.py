"""The quickstart's per-method learning rates: read from ``configs/quickstart.yaml``, found by ``--tune``.

Each method runs at its own rate, the bracketed best of a search in the quickstart's own setting
(2000 training tweets, 1 epoch, 1000 held-out tweets, total rank 8), so no method is favoured by a
rate that happens to suit it (GOAT's larger effective step at a shared rate). The search is the
claims ledger's (:func:`goat.claims.arms.tune`: a ×2 log grid extended until the best mean has a
worse neighbour on both sides) on seeds 1 and 2, never the reported seed 0. ``--tune`` is resumable:
its runs are recorded in ``<out>/runs.jsonl`` and are not trained again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

TUNE_SEEDS = (1, 2)
START_LEARNING_RATES = (5e-4, 1e-3, 2e-3)
TUNE_COMMAND = "python -m goat.quickstart --tune"


@dataclass(frozen=True)
class Rates:
    """Per-method learning rates and where they came from."""

    learning_rate: dict[str, float]
    found_by: str
    date: str


def rates_file() -> Path:
    return Path(str(resources.files("goat") / "configs" / "quickstart.yaml"))


def read_rates(path: Path | None = None) -> Rates:
    """The stored rates (empty when the file has none yet)."""
    path = path or rates_file()
    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    data = data or {}
    return Rates(
        {k: float(v) for k, v in (data.get("learning_rate") or {}).items()},
        data.get("found_by", ""),
        str(data.get("date", "")),
    )


def write_rates(rates: dict[str, float], searches: dict[str, str], path: Path | None = None) -> Path:
    """Store ``rates`` with the command that found them and each search's outcome."""
    path = path or rates_file()
    lines = [
        "# Per-method learning rates of `python -m goat.quickstart`: each the bracketed best of its own search",
        "# in the quickstart's setting (2000 training tweets, 1 epoch, 1000 held-out, r 8), on seeds "
        f"{', '.join(map(str, TUNE_SEEDS))} (the reported seed is 0).",
        "# Searches: " + "; ".join(f"{m}: {s}" for m, s in searches.items()),
        f"found_by: {TUNE_COMMAND}",
        f"date: '{time.strftime('%Y-%m-%d')}'",
        "learning_rate:",
        *(f"  {method}: {rate:g}" for method, rate in rates.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def tune(
    methods: list[str],
    r: int,
    out: Path,
    workers: int,
    *,
    max_train_samples: int,
    max_eval_samples: int,
    num_train_epochs: float,
) -> dict[str, str]:
    """Run each method's bracketing search (rounds until decided); write the rates; return each search's outcome."""
    from goat.claims import arms
    from goat.claims.executor import Workers, train_requested
    from goat.claims.ledger import Config, Ledger

    ledger = Ledger(out / "runs.jsonl")
    workers_ = Workers(workers, 1, out / "results", out / "runs")
    while True:
        ledger.requested.clear()
        found = {
            m: arms.tune(
                ledger,
                m,
                Config(
                    "glue",
                    "tweet_sentiment",
                    m,
                    START_LEARNING_RATES[0],
                    TUNE_SEEDS[0],
                    r=r,
                    max_train_samples=max_train_samples,
                    num_train_epochs=num_train_epochs,
                    max_eval_samples=max_eval_samples,
                ),
                START_LEARNING_RATES,
                TUNE_SEEDS,
            )
            for m in methods
        }
        if not ledger.requested:
            break
        train_requested(ledger, workers_)
    outcome = {
        m: f"{a.status()}, mean {arms.sweep_means(a.curve, TUNE_SEEDS)[a.best_learning_rate]:.2f}"
        if a.best_learning_rate
        else a.status()
        for m, a in found.items()
    }
    bracketed = {m: a.best_learning_rate for m, a in found.items() if a.bracketed and a.best_learning_rate is not None}
    write_rates(bracketed, outcome)
    return outcome
