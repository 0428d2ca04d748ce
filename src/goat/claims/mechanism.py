"""Theorem 3.5's mechanism measured directly: GOAT's equivalent gradient against full fine-tuning's, at init.

For one expert i of an adapted layer, Lemma 2.2 (eq. 6) gives the equivalent gradient, the direction
in which one SGD step on (A_i, B_i) moves the expert's equivalent weight ``W̃_i = W + s B_i A_i``:

    g̃_i = s² (B_i B_iᵀ g_i + g_i A_iᵀ A_i) = s (B_i G_A + G_B A_i)

with ``G_A``, ``G_B`` the autograd gradients of the loss with respect to A_i and B_i. Full
fine-tuning of the same MoE (Full FT MoE, the target of Theorems 3.2 and 3.5) would instead take
the step ``η g_i`` with ``g_i = ∂L/∂W_i = Σ_t w_i(x_t) δy_t x_tᵀ`` (the tokens routed to expert i,
weighted by the router, δy the gradient at the layer output). Theorem 3.5 picks
``s = √(3 n η / d)`` so that g̃_i ≈ η g_i for zero-initialised B (its setting). Measured here on the
real layers of MiniLM and SmolLM2 at initialisation, on one batch of real tweets:

* ``norm ratio`` ``‖g̃_i‖ / ‖η g_i‖`` (1 = the magnitude full fine-tuning would take);
* ``cosine`` between g̃_i and g_i (1 = the same direction);
* ``best factor`` ``c* = ⟨g̃_i, η g_i⟩ / ‖g̃_i‖²``: the factor that would bring g̃_i closest to η g_i
  in Frobenius norm (1 = the scaling is already least-squares optimal).

Each is the median over the experts of the layers with the same input width n, per scaling rule
(``theory`` = Theorem 3.5, ``alpha`` = α/d) and per init (``zero``: Theorem 3.5's own setting;
``spread``: GOAT's SVD segments).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

RULES = ("theory", "alpha")
INITS = ("zero", "spread")


@dataclass(frozen=True)
class ExpertAlignment:
    """One expert's equivalent gradient against the full fine-tuning gradient of the same routed tokens."""

    layer: str
    n: int
    m: int
    expert: int
    scaling: float
    norm_ratio: float
    cosine: float
    best_factor: float


@contextmanager
def captured(model: nn.Module) -> Iterator[dict[str, dict[str, torch.Tensor]]]:
    """Per LoRA-expert adapter: its input tokens, router gates and the gradient at its output (after backward)."""
    from goat.adapters.layers import LoraExperts

    store: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
    handles = []
    for name, module in model.named_modules():
        if not isinstance(module, LoraExperts):
            continue

        def on_router(_module: nn.Module, _inputs: Any, gates: torch.Tensor, name: str = name) -> None:
            store[name]["gates"] = gates.detach().float()

        def on_adapter(_module: nn.Module, inputs: Any, output: torch.Tensor, name: str = name) -> None:
            store[name]["x"] = inputs[0].detach().float()
            output.register_hook(lambda grad, name=name: store[name].__setitem__("dy", grad.detach().float()))

        handles += [module.router.register_forward_hook(on_router), module.register_forward_hook(on_adapter)]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def expert_alignments(model: nn.Module, store: dict[str, dict[str, torch.Tensor]], eta: float) -> list[ExpertAlignment]:
    """After backward: every expert's g̃_i = s (B_i G_A + G_B A_i) against η g_i = η Σ_t w_i δy_t x_tᵀ."""
    from goat.adapters.layers import LoraExperts

    rows = []
    for name, module in model.named_modules():
        if not isinstance(module, LoraExperts) or name not in store or "dy" not in store[name]:
            continue
        x, gates, dy = store[name]["x"], store[name]["gates"], store[name]["dy"]
        A, B = module.lora_A.detach(), module.lora_B.detach()  # [E, d, n], [E, d, m]
        GA, GB = module.lora_A.grad, module.lora_B.grad
        for i, s in enumerate(module.scalings.tolist()):
            routed = gates[:, i] > 0
            if not routed.any():
                continue
            g = (dy[routed] * gates[routed, i : i + 1]).T @ x[routed]  # [m, n]: ∂L/∂W_i of Full FT MoE
            equivalent = s * (B[i].T @ GA[i] + GB[i].T @ A[i])  # [m, n]: Lemma 2.2
            target = eta * g
            g_norm, e_norm = target.norm().item(), equivalent.norm().item()
            if g_norm == 0 or e_norm == 0:
                continue
            inner = (equivalent * target).sum().item()
            rows.append(
                ExpertAlignment(
                    name,
                    module.in_features,
                    module.out_features,
                    i,
                    s,
                    e_norm / g_norm,
                    inner / (e_norm * g_norm),
                    inner / e_norm**2,
                )
            )
    return rows


def summarise(rows: list[ExpertAlignment]) -> list[dict[str, Any]]:
    """Median norm ratio, cosine and best factor per input width n (over every expert of those layers)."""
    by_n: dict[int, list[ExpertAlignment]] = defaultdict(list)
    for row in rows:
        by_n[row.n].append(row)
    return [
        {
            "n": n,
            "experts": len(group),
            "scaling": statistics.median(r.scaling for r in group),
            "norm_ratio": statistics.median(r.norm_ratio for r in group),
            "cosine": statistics.median(r.cosine for r in group),
            "best_factor": statistics.median(r.best_factor for r in group),
            "log10_norm_ratio_sd": statistics.pstdev(math.log10(r.norm_ratio) for r in group),
        }
        for n, group in sorted(by_n.items())
    ]


# ---------------------------------------------------------------------------------------- models
def measure_model(which: str, rule: str, init: str, batch: int, seed: int = 0) -> list[dict[str, Any]]:
    """Build ``which`` (minilm, smollm2 or tiny) with GOAT under ``rule``/``init``, take one batch's gradient, summarise."""
    import goat

    torch.manual_seed(seed)
    model, inputs, targets = _model_and_batch(which, batch)
    config = goat.GoatConfig(
        method="goat",
        r=8,
        lora_alpha=16,
        num_experts=8,
        top_k=2,
        scaling=rule,
        init=init,
        lora_dropout=0.0,
        target_modules=targets,
        seed=seed,
    )
    model = goat.get_goat_model(model, config)
    model.eval()  # no dropout; gradients still flow
    with captured(model) as store:
        loss = model(**inputs).loss
        loss.backward()
        rows = expert_alignments(model, store, eta=config.eta)
    return [{"model": which, "scaling_rule": rule, "init": init, **row} for row in summarise(rows)]


def _model_and_batch(which: str, batch: int) -> tuple[nn.Module, dict[str, torch.Tensor], list[str]]:
    """The base model, one batch of real tweets with labels, and GOAT's target modules for it."""
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
    )

    from goat.tasks.embedded import resolve_causal_model_path, resolve_model_path
    from goat.tasks.sentiment import load_tweet_sentiment

    tweets = load_tweet_sentiment(max_train_samples=batch, max_eval_samples=1, seed=0)["train"]
    if which == "smollm2":
        from goat.tasks.causal_lm import CausalLMCollator
        from goat.tasks.tweet_answers import encode_training, tweet_train_records

        path = resolve_causal_model_path("embedded")
        tokenizer = AutoTokenizer.from_pretrained(path)
        encoded = encode_training(tokenizer, tweet_train_records(batch, 0), 160)
        inputs = CausalLMCollator(pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)(
            [encoded[i] for i in range(len(encoded))]
        )
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        return model, dict(inputs), ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]
    if which == "minilm":
        path = resolve_model_path("embedded")
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3)
    elif which == "tiny":
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded"))
        model = BertForSequenceClassification(
            BertConfig(
                vocab_size=tokenizer.vocab_size,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
                num_labels=3,
            )
        )
    else:
        raise ValueError(f"unknown model {which!r}: minilm, smollm2 or tiny")
    encoded = tokenizer(list(tweets["text"]), padding=True, truncation=True, max_length=64, return_tensors="pt")
    inputs = {**encoded, "labels": torch.tensor(tweets["label"])}
    return model, inputs, ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
