"""How big the ledger is: data sizes, seeds and grids of the full ledger and of its smoke check.

The full scale is planned to finish in about two hours on 2 CPU cores (``python -m goat.claims
--plan`` prints the run count and the estimate from ``Scale.seconds_per_run``); every number here is
a choice of this repository, not the paper's (whose runs are 7B models on GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """Sizes and grids of one ledger."""

    name: str
    # classifier claims 1-6: packaged MiniLM on the packaged tweets (glue:tweet_sentiment)
    seeds: tuple[int, ...]
    sweep_seeds: int  # the baselines' learning-rate sweep uses the first this-many seeds
    lrs: tuple[float, ...]
    common_lr: float  # the equal-learning-rate comparison (the embedded default's lr)
    train_samples: int
    eval_samples: int
    baselines: tuple[str, ...]  # claim 1
    inits: tuple[str, ...]  # claim 2, against goat's spread (O)
    ranks: tuple[int, ...]  # claim 5, besides the total rank 8 of claims 1-4
    experts: tuple[int, ...]  # claim 5, besides E = 8 (k = 2, total rank 8)
    aux_coefs: tuple[float, ...]  # claim 6, besides 1e-3
    # claim 7: training step cost, benchmarks/step_cost.py's measurement
    step_model: str
    step_rounds: int
    step_batch: int
    step_seq_len: int
    step_steps: int
    # claim 8: packaged SmolLM2-135M-Instruct on the packaged tweets as answers (commonsense:tweet_sentiment)
    causal_methods: tuple[str, ...]
    causal_seeds: tuple[int, ...]  # the learning-rate sweep uses the first; the best rate then runs on all
    causal_lrs: tuple[float, ...]
    causal_train_samples: int
    causal_eval_samples: int
    # measured here (2 shared CPU cores): seconds per run, for --plan's estimate
    seconds_per_run: dict[str, float]  # family -> one training run with its evaluation
    seconds_per_step_child: float  # claim 7: one method in one round (fresh process, model build, warm-up + timed steps)


FULL = Scale(
    name="full",
    seeds=(0, 1, 2, 3, 4),
    sweep_seeds=3,
    lrs=(2e-4, 5e-4, 1.25e-3),
    common_lr=5e-4,
    train_samples=640,
    eval_samples=1000,
    baselines=("lora", "pissa", "milora", "molora", "hydralora", "adamole"),
    inits=("principal", "minor", "random", "zero"),
    ranks=(32,),
    experts=(4,),
    aux_coefs=(0.0, 1e-2),
    step_model="embedded",
    step_rounds=5,
    step_batch=16,
    step_seq_len=64,
    step_steps=5,
    causal_methods=("goat", "lora", "molora"),
    causal_seeds=(0, 1, 2),
    causal_lrs=(5e-4, 2e-3),
    causal_train_samples=192,
    causal_eval_samples=128,
    seconds_per_run={"glue": 33.0, "commonsense": 160.0},
    seconds_per_step_child=10.0,
)

SMOKE = Scale(
    name="smoke",
    seeds=(0, 1),
    sweep_seeds=1,
    lrs=(1e-3,),
    common_lr=1e-3,
    train_samples=32,
    eval_samples=32,
    baselines=("lora",),
    inits=("zero",),
    ranks=(),
    experts=(),
    aux_coefs=(0.0,),
    step_model="smoke",
    step_rounds=2,
    step_batch=2,
    step_seq_len=16,
    step_steps=2,
    causal_methods=("lora", "molora"),
    causal_seeds=(0, 1),
    causal_lrs=(1e-3,),
    causal_train_samples=4,
    causal_eval_samples=4,
    seconds_per_run={"glue": 4.0, "commonsense": 15.0},
    seconds_per_step_child=2.0,
)
