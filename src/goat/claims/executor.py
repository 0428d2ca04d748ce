"""Train the configurations the claims requested, in parallel worker processes, recording each as it finishes.

On the 2-core machine this ledger was built on, two worker processes with one torch thread each
train about 1.4× more steps per second than one process with two threads (measured with
``benchmarks/step_cost.py --threads 1`` twice in parallel against ``--threads 2``), so that is the
default (``--workers 2 --threads_per_worker 1``). Each worker is a fresh ``spawn`` process that
imports the training stack once and then trains one configuration at a time; the parent appends
each record to the ledger as soon as it arrives, so killing the ledger loses at most the runs in
flight. A run's result does not depend on which worker trained it (every run seeds itself).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from goat.claims.ledger import Config, Ledger, Record, train


@dataclass(frozen=True)
class Workers:
    """How runs are trained: worker processes, torch threads in each, and where runs write."""

    count: int
    threads: int
    results_dir: Path
    output_dir: Path
    smoke: bool = False


def _initialise(threads: int) -> None:
    """Worker start: die with the parent (Linux), quiet logs and ``threads`` torch threads (set before any torch work)."""
    import ctypes
    import logging
    import signal
    import sys

    import torch
    import transformers

    if sys.platform.startswith("linux"):  # a killed ledger leaves no orphan worker training on
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    transformers.logging.set_verbosity_error()
    os.environ.setdefault("TQDM_DISABLE", "1")


def _train(config: Config, results_dir: Path, output_dir: Path, smoke: bool) -> Record:
    return train(config, results_dir, output_dir, smoke=smoke)


def train_requested(ledger: Ledger, workers: Workers, order: Sequence[Config] | None = None) -> int:
    """Train every configuration ``ledger`` has requested (cheapest first), adding each record as it comes. Returns the count."""
    configs = list(order if order is not None else ledger.requested.values())
    if not configs:
        return 0
    configs.sort(key=lambda c: (c.family != "glue", c.max_train_samples * c.num_train_epochs))
    bar = tqdm(total=len(configs), desc="claims runs", unit="run")
    if workers.count <= 1:
        _initialise(workers.threads)
        for config in configs:
            ledger.add(_train(config, workers.results_dir, workers.output_dir, workers.smoke))
            bar.update()
        bar.close()
        return len(configs)
    context = mp.get_context("spawn")
    with ProcessPoolExecutor(
        workers.count, mp_context=context, initializer=_initialise, initargs=(workers.threads,)
    ) as pool:
        pending: dict[Future, Config] = {
            pool.submit(_train, c, workers.results_dir, workers.output_dir, workers.smoke): c for c in configs
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                pending.pop(future)
                ledger.add(future.result())
                bar.update()
    bar.close()
    return len(configs)
