"""App. F.1 parameter counts: adapted models built on the meta device vs the closed-form formulas.

The three backbones keep their real widths; depth is cut to 2 layers for speed (every count is
per layer times L). Percentages use full depth and only formulas.
"""

from __future__ import annotations

import math

import pytest

from goat.studies import params

ADAPTER_METHODS = ("lora", "dora", "goat", "molora", "hydralora", "adamole", "full_moe")


@pytest.mark.parametrize("backbone", list(params.BACKBONES.values()), ids=list(params.BACKBONES))
@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_built_count_matches_formula(backbone: params.Backbone, method: str) -> None:
    config = backbone.config(2)
    trainable, _ = params.built_count(backbone, method, backbone.r, layers=2)
    linears = backbone.layer_linears(config)
    assert trainable == params.formula_count(method, linears, 2, backbone.r, backbone.num_experts)


@pytest.mark.parametrize("backbone", [params.ROBERTA, params.VIT], ids=["roberta-large", "clip-vit-b32"])
@pytest.mark.parametrize("method", ("lora", "goat", "hydralora", "adamole"))
def test_paper_closed_form_is_exact_for_encoders(backbone: params.Backbone, method: str) -> None:
    """For RoBERTa/ViT, App. F.1's (18Hr + 9He)L etc. are exactly the per-shape sums."""
    config = backbone.config(None)
    linears = backbone.layer_linears(config)
    exact = params.formula_count(method, linears, config.num_hidden_layers, backbone.r, backbone.num_experts)
    assert backbone.paper_count(method, config, backbone.r, backbone.num_experts) == exact


@pytest.mark.parametrize(
    "backbone, method, rank, printed",
    [
        (params.ROBERTA, "lora", 32, 4.00),
        (params.ROBERTA, "goat", 32, 4.50),
        (params.ROBERTA, "hydralora", 32, 2.75),
        (params.ROBERTA, "adamole", 32, 4.56),
        (params.VIT, "lora", 8, 1.49),
        (params.VIT, "lora", 16, 2.99),
        (params.VIT, "lora", 32, 5.98),
        (params.VIT, "goat", 8, 2.24),
        (params.VIT, "hydralora", 8, 1.58),
        (params.VIT, "adamole", 8, 2.33),
    ],
)
def test_paper_percentages_use_e8_and_the_fft_formula(backbone, method, rank, printed) -> None:
    """App. F.1's printed % = count / its FFT formula with e = 8, truncated to two decimals."""
    config = backbone.config(None)
    linears = backbone.layer_linears(config)
    count = params.formula_count(method, linears, config.num_hidden_layers, rank, backbone.num_experts)
    percent = 100 * count / backbone.paper_count("full", config, rank, backbone.num_experts)
    assert math.floor(percent * 100) / 100 == pytest.approx(printed)


def test_llama_counts_use_its_real_shapes() -> None:
    """LLaMA-2-7B has k/v of width H and an 11008-wide MLP: LoRA is (8H + 2I) r L, not 11.58 H r L."""
    H, I, r, L, e = 4096, 11008, 32, 32, 8
    config = params.LLAMA.config(None)
    linears = params.LLAMA.layer_linears(config)
    assert params.formula_count("lora", linears, L, r, e) == (8 * H + 2 * I) * r * L
    assert params.formula_count("goat", linears, L, r, e) == ((8 * H + 2 * I) * r + (4 * H + I) * e) * L


def test_table_rows_and_csv(tmp_path) -> None:
    rows = params.table(params.VIT, layers=2, methods=("full", "lora", "goat"))
    assert [(r.method, r.r) for r in rows] == [("full", 8), ("lora", 8), ("goat", 8), ("lora", 16), ("lora", 32)]
    assert all(r.matches_formula for r in rows)
    params.write_csv(rows, tmp_path / "p.csv")
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 1 + len(rows)
