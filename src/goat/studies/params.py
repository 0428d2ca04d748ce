"""``python -m goat.studies.params``: the "# Params (%)" of Tables 1-4, counted and checked (App. F.1).

For each backbone of App. F.1 (RoBERTa-large, CLIP ViT-B/32 vision tower, LLaMA-2-7B) the model is
built from a typed-in config on the ``meta`` device (shapes only: no weights, no hub access) and
adapted with exactly the modules ``get_goat_model`` creates — through the injection path that
``load_goat_model`` uses, which builds the layers without computing their (SVD) initial values.
The trainable parameters of that adapted model are then compared with

* ``formula``: App. F.1's closed forms, ``r·Σ(n+m) + e·Σn + …`` per layer, with the sums Σn, Σm
  written from the config's dimensions (for RoBERTa-large Σ(n+m) = 18H, Σn = Σm = 9H, i.e. the
  paper's ``(18Hr + 9He)L``) — these must match the built count exactly;
* ``paper``: the closed form as App. F.1 prints it, and its printed proportion. The proportions
  use App. F.1's full fine-tuning formula as denominator (``% paper FFT``); ``% base`` divides by
  the built base model's own parameter count instead.

App. F.1 states e = 2 in its headers, but its printed proportions are reproduced with e = 8 (the
2-in-8 setting of every experiment), which is what we use.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    CLIPVisionConfig,
    LlamaConfig,
    PretrainedConfig,
    RobertaConfig,
)

from goat.adapters.config import GoatConfig
from goat.adapters.model import attach_uninitialised_adapters

# Methods of App. F.1, in its order; "lora" stands for LoRA/PiSSA/MiLoRA/rsLoRA, "goat" for
# MoLoRA/GOAT (identical shapes; both are built to show it).
METHODS = ("full", "full_moe", "lora", "dora", "molora", "goat", "hydralora", "adamole")


@dataclass(frozen=True)
class Linear:
    """One adapted linear of a transformer layer: ``in_features`` n, ``out_features`` m, bias."""

    n: int
    m: int
    bias: bool


@dataclass(frozen=True)
class Backbone:
    """A model of App. F.1: config, adapted linears per layer, r / num_experts and the paper's numbers."""

    name: str
    config: Callable[[int | None], PretrainedConfig]  # layers override -> config
    model_class: type
    target_modules: tuple[str, ...]
    layer_linears: Callable[[PretrainedConfig], list[Linear]]
    r: int
    num_experts: int
    extra_lora_r: tuple[int, ...]  # App. F.1's LoRA rows at other ranks r
    paper_count: Callable[[str, PretrainedConfig, int, int], float | None]  # (method, config, r, e)
    paper_percent: dict[str, float]  # printed in App. F.1; "lora@16" = LoRA at rank 16


@dataclass(frozen=True)
class Row:
    backbone: str
    method: str
    r: int
    num_experts: int  # E of the MoE methods; 1 for single-adapter methods and full fine-tuning
    trainable: int
    formula: int
    base_total: int
    paper_count: float | None
    percent_of_base: float
    percent_of_paper_fft: float
    paper_percent: float | None

    @property
    def matches_formula(self) -> bool:
        return self.trainable == self.formula


# ---------------------------------------------------------------- backbone configs
def roberta_large_config(layers: int | None = None) -> RobertaConfig:
    """RoBERTa-large: H = 1024, L = 24, V = 50265, MLP 4H (App. F.1)."""
    return RobertaConfig(
        vocab_size=50265,
        hidden_size=1024,
        num_hidden_layers=layers or 24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=514,
        type_vocab_size=1,
    )


def clip_vit_b32_config(layers: int | None = None) -> CLIPVisionConfig:
    """CLIP ViT-B/32 vision tower: H = 768, L = 12, P = 32, C = 3, 224-pixel images (App. F.1)."""
    return CLIPVisionConfig(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=layers or 12,
        num_attention_heads=12,
        num_channels=3,
        image_size=224,
        patch_size=32,
    )


def llama2_7b_config(layers: int | None = None) -> LlamaConfig:
    """LLaMA-2-7B: H = 4096, L = 32, V = 32000, MLP 11008, 32 key/value heads (no GQA at 7B)."""
    return LlamaConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=layers or 32,
        num_attention_heads=32,
        num_key_value_heads=32,
    )


def _encoder_linears(config: PretrainedConfig) -> list[Linear]:
    """q, k, v, attention-out (H -> H), MLP in (H -> I), MLP out (I -> H), all with bias."""
    H, I = config.hidden_size, config.intermediate_size
    return [Linear(H, H, True)] * 4 + [Linear(H, I, True), Linear(I, H, True)]


def _llama_linears(config: PretrainedConfig) -> list[Linear]:
    """q (H -> H), k, v (H -> kv heads x head dim), up (H -> I), down (I -> H); bias-free."""
    H, I = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * H // config.num_attention_heads
    return [Linear(H, H, False), Linear(H, kv, False), Linear(H, kv, False), Linear(H, I, False), Linear(I, H, False)]


def _paper_adapter(method: str, H: int, r: int, e: int, L: int, io: float, n: float, m: float) -> float | None:
    """App. F.1's adapter rows with its per-layer coefficients: Σ(n+m) = io·H, Σn = n·H, Σm = m·H.

    (io, n, m) = (18, 9, 9) for RoBERTa/ViT; App. F.1 writes (11.58, 6.66, 4.91) for LLaMA-2-7B,
    where 4.91 multiplies HydraLoRA's B heads (Σm) and ``+5``/``+6`` is its DoRA term.
    """
    per_layer = {
        "lora": io * H * r,
        "dora": io * H * r + (6 if io == 18 else 5),
        "goat": io * H * r + n * H * e,
        "hydralora": m * H * r + n * H * r / e + n * H * e,
        "adamole": io * H * r + n * H * e + n * H,
    }
    return per_layer[method] * L if method in per_layer else None


def roberta_paper_count(method: str, c: PretrainedConfig, r: int, e: int) -> float | None:
    """App. F.1, RoBERTa-large: FFT ``(12H² + 13H)L + VH``; Full FT MoE ``(12eH² + 2H + 9He)L + VH``."""
    H, L, V = c.hidden_size, c.num_hidden_layers, c.vocab_size
    if method == "full":
        return (12 * H * H + 13 * H) * L + V * H
    if method == "full_moe":
        return (12 * e * H * H + 2 * H + 9 * H * e) * L + V * H
    return _paper_adapter(method, H, r, e, L, 18, 9, 9)


def vit_paper_count(method: str, c: PretrainedConfig, r: int, e: int) -> float | None:
    """App. F.1, ViT-base: FFT ``(C+1)P²H + (12H² + 2H)L + 3H + PH + H²``; MoE with ``12eH² + 2H + 9He``."""
    H, L, P, C = c.hidden_size, c.num_hidden_layers, c.patch_size, c.num_channels
    stem = (C + 1) * P * P * H + 3 * H + P * H + H * H
    if method == "full":
        return stem + (12 * H * H + 2 * H) * L
    if method == "full_moe":
        return stem + (12 * e * H * H + 2 * H + 9 * H * e) * L
    return _paper_adapter(method, H, r, e, L, 18, 9, 9)


def llama_paper_count(method: str, c: PretrainedConfig, r: int, e: int) -> float | None:
    """App. F.1, LLaMA-2-7B: FFT ``(10.25H² + 2H)L + H + 2VH``; no Full FT MoE row."""
    H, L, V = c.hidden_size, c.num_hidden_layers, c.vocab_size
    if method == "full":
        return (10.25 * H * H + 2 * H) * L + H + 2 * V * H
    if method == "full_moe":
        return None
    return _paper_adapter(method, H, r, e, L, 11.58, 6.66, 4.91)


ROBERTA = Backbone(
    name="roberta-large",
    config=roberta_large_config,
    model_class=AutoModel,
    # "output.dense" matches both the attention output and the MLP output linear (144 layers in all).
    target_modules=("query", "key", "value", "output.dense", "intermediate.dense"),
    layer_linears=_encoder_linears,
    r=32,
    num_experts=8,
    extra_lora_r=(),
    paper_count=roberta_paper_count,
    paper_percent={"full_moe": 698, "lora": 4.00, "dora": 4.00, "goat": 4.50, "hydralora": 2.75, "adamole": 4.56},
)

VIT = Backbone(
    name="clip-vit-b32",
    config=clip_vit_b32_config,
    model_class=AutoModel,
    target_modules=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
    layer_linears=_encoder_linears,
    r=8,
    num_experts=8,
    extra_lora_r=(16, 32),
    paper_count=vit_paper_count,
    paper_percent={
        "full_moe": 770,
        "lora": 1.49,
        "lora@16": 2.99,
        "lora@32": 5.98,
        "dora": 1.49,
        "goat": 2.24,
        "hydralora": 1.58,
        "adamole": 2.33,
    },
)

LLAMA = Backbone(
    name="llama-2-7b",
    config=llama2_7b_config,
    model_class=AutoModelForCausalLM,
    target_modules=("q_proj", "k_proj", "v_proj", "up_proj", "down_proj"),
    layer_linears=_llama_linears,
    r=32,
    num_experts=8,
    extra_lora_r=(),
    paper_count=llama_paper_count,
    paper_percent={"lora": 0.84, "dora": 0.84, "goat": 0.96, "hydralora": 0.84, "adamole": 0.97},
)

BACKBONES = {b.name: b for b in (ROBERTA, VIT, LLAMA)}


# ---------------------------------------------------------------------- formulas
def formula_count(method: str, linears: list[Linear], layers: int, r: int, e: int) -> int:
    """Trainable parameters of ``method`` over ``layers`` layers of ``linears`` (App. F.1, exact).

    With per-layer sums Σn (inputs), Σm (outputs), Σ(n+m):

    - lora (= PiSSA/MiLoRA/rsLoRA): ``r Σ(n+m)``;  dora: ``+ Σm`` (one magnitude per output row)
    - molora/goat: ``r Σ(n+m) + e Σn`` (rank-r/e experts plus a bias-free e-way router)
    - hydralora: ``(r/e) Σn + r Σm + e Σn`` (one shared A, e B heads)
    - adamole: molora ``+ Σn`` (the bias-free threshold layer)
    - full_moe: ``e Σ(nm + m·bias) + e Σn`` (e trainable copies of each linear, plus the router)
    """
    sum_n = sum(lin.n for lin in linears)
    sum_m = sum(lin.m for lin in linears)
    if method == "lora":
        per_layer = r * (sum_n + sum_m)
    elif method == "dora":
        per_layer = r * (sum_n + sum_m) + sum_m
    elif method in ("molora", "goat", "goat_plus"):
        per_layer = r * (sum_n + sum_m) + e * sum_n
    elif method == "hydralora":
        per_layer = (r // e) * sum_n + r * sum_m + e * sum_n
    elif method == "adamole":
        per_layer = r * (sum_n + sum_m) + e * sum_n + sum_n
    elif method == "full_moe":
        per_layer = e * sum(lin.n * lin.m + (lin.m if lin.bias else 0) for lin in linears) + e * sum_n
    else:
        raise ValueError(f"no adapter formula for method={method!r}.")
    return per_layer * layers


# ------------------------------------------------------------------ built counts
def build_on_meta(backbone: Backbone, layers: int | None = None) -> tuple[nn.Module, PretrainedConfig]:
    """The backbone with shapes only (``meta`` device): nothing is allocated or downloaded."""
    config = backbone.config(layers)
    with torch.device("meta"):
        model = backbone.model_class.from_config(config)
    return model, config


def built_count(backbone: Backbone, method: str, r: int, layers: int | None = None) -> tuple[int, int]:
    """(trainable parameters of the adapted model, parameters of the base model), built on meta.

    The adapter layers are the ones ``get_goat_model`` creates; their initial values (an SVD for
    goat/pissa) are skipped, which leaves every shape — hence the count — unchanged.
    """
    model, _ = build_on_meta(backbone, layers)
    base_total = sum(p.numel() for p in model.parameters())
    if method == "full":
        return base_total, base_total
    config = GoatConfig(
        method=method, r=r, num_experts=backbone.num_experts, top_k=2, target_modules=list(backbone.target_modules)
    )
    trainable, _ = attach_uninitialised_adapters(model, config).trainable_parameter_count()
    return trainable, base_total


def table(backbone: Backbone, layers: int | None = None, methods: tuple[str, ...] = METHODS) -> list[Row]:
    """One :class:`Row` per method (plus App. F.1's extra LoRA ranks) for ``backbone``."""
    config = backbone.config(layers)
    L, e = config.num_hidden_layers, backbone.num_experts
    linears = backbone.layer_linears(config)
    runs = [(m, backbone.r) for m in methods] + [("lora", r) for r in backbone.extra_lora_r if "lora" in methods]
    rows = []
    for method, rank in tqdm(runs, desc=backbone.name, leave=False):
        trainable, base_total = built_count(backbone, method, rank, layers)
        formula = base_total if method == "full" else formula_count(method, linears, L, rank, e)
        key = method if rank == backbone.r else f"{method}@{rank}"
        paper_key = "goat" if key == "molora" else key
        fft = backbone.paper_count("full", config, rank, e)
        rows.append(
            Row(
                backbone=backbone.name,
                method=method,
                r=rank,
                num_experts=e if method not in ("lora", "dora", "full") else 1,
                trainable=trainable,
                formula=formula,
                base_total=base_total,
                paper_count=backbone.paper_count("goat" if method == "molora" else method, config, rank, e),
                percent_of_base=100.0 * trainable / base_total,
                percent_of_paper_fft=100.0 * trainable / fft,
                paper_percent=100.0 if method == "full" else backbone.paper_percent.get(paper_key),
            )
        )
    return rows


# ------------------------------------------------------------------------- output
def format_rows(rows: list[Row]) -> str:
    header = (
        f"{'backbone':<14} {'method':<10} {'r':>3} {'e':>2} {'trainable':>14} {'= formula':>9} "
        f"{'paper formula':>14} {'% base':>8} {'% paper FFT':>11} {'paper %':>8}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        paper = "-" if row.paper_count is None else f"{row.paper_count:,.0f}"
        printed = "-" if row.paper_percent is None else f"{row.paper_percent:g}"
        lines.append(
            f"{row.backbone:<14} {row.method:<10} {row.r:>3} {row.num_experts:>2} {row.trainable:>14,} "
            f"{'yes' if row.matches_formula else 'NO':>9} {paper:>14} {row.percent_of_base:>8.2f} "
            f"{row.percent_of_paper_fft:>11.2f} {printed:>8}"
        )
    return "\n".join(lines)


def write_csv(rows: list[Row], path: str | Path) -> None:
    fields = list(asdict(rows[0])) + ["matches_formula"]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({**asdict(row), "matches_formula": row.matches_formula})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Trainable-parameter % of App. F.1, built on the meta device.")
    parser.add_argument("--backbones", nargs="+", choices=list(BACKBONES), default=list(BACKBONES))
    parser.add_argument("--csv", default="results/param_counts.csv", help="Where to write the table as CSV.")
    args = parser.parse_args(argv)
    rows = [row for name in args.backbones for row in table(BACKBONES[name])]
    print(format_rows(rows))
    print(
        "\n% base: of the built base model; % paper FFT: of App. F.1's full-FT formula (the paper's "
        "denominator); paper %: as printed in App. F.1."
    )
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.csv)
    print(f"wrote {args.csv}")
    return 0 if all(row.matches_formula for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
