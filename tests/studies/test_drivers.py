"""Every study runs end to end in smoke mode (tiny BERT, 32 tweets) and writes its PNG/CSV and results rows."""

from __future__ import annotations

import csv
import math

import pytest

from goat.studies import ablation, experts_sweep, loss_curves, lr_sweep, rank_sweep, routing, scaling_rank, segments


def read_csv(path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_ablation_table5(flags, tmp_path, rows_of):
    assert ablation.main([*flags, "--inits", "zero"]) == 0
    table = read_csv(tmp_path / "study" / "table5.csv")
    assert [r["row"] for r in table] == ["zero", "single"]
    assert table[0]["paper_avg_ms"] == "81.06" and table[1]["paper_avg_no_ms"] == "77.62"
    assert table[1]["avg_ms"] == "" and float(table[1]["avg_no_ms"]) >= 0  # the single LoRA has no MS column
    runs = {r["run_name"]: r for r in read_csv(tmp_path / "study" / "runs.csv")}
    assert len(runs) == 3
    hparams = {r["run_name"]: r["hparams"] for r in rows_of()}
    assert {h["study"] for h in hparams.values()} == {"ablation"}
    assert {(h["method"], h["init"], h["scaling"], h["segment"]) for h in hparams.values()} == {
        ("goat", "zero", "theory", None),
        ("goat", "zero", "alpha", None),
        ("pissa", "spread", "alpha", "spread"),
    }


def test_lr_sweep_table6(flags, tmp_path):
    assert lr_sweep.main([*flags, "--methods", "goat", "--learning_rates", "1e-5"]) == 0
    (row,) = read_csv(tmp_path / "study" / "table6.csv")
    assert float(row["learning_rate"]) == 1e-5 and row["paper_goat"] == "58.74" and float(row["goat"]) >= 0
    assert (tmp_path / "study" / "lr_sweep.png").stat().st_size > 0


def test_segments_figure1_runs_every_segment(flags, tmp_path, rows_of):
    assert segments.main([*flags, "--r_values", "16"]) == 0  # h = 32: segments 0 and 1, found from the first run
    table = read_csv(tmp_path / "study" / "figure1.csv")
    assert [int(r["segment"]) for r in table] == [0, 1]
    assert sorted(float(r["normalised"]) for r in table) in ([0.0, 1.0], [0.5, 0.5])
    assert sorted(r["hparams"]["segment"] for r in rows_of()) == [0, 1]
    assert (tmp_path / "study" / "figure1.png").exists()


def test_scaling_rank_figure2_gradient_grows_with_s(flags, tmp_path):
    assert scaling_rank.main([*flags, "--configs", "8:2", "8:16"]) == 0
    steps = read_csv(tmp_path / "study" / "figure2_steps.csv")
    first = {r["config"]: float(r["equivalent_grad_norm"]) for r in steps if r["step"] == "1"}
    # Same equivalent weight and batch at step 1, so g̃ = s (U Uᵀ g + g V Vᵀ) scales exactly with s (eq. 8).
    assert first["r=8,s=16"] / first["r=8,s=2"] == pytest.approx(8.0, rel=1e-3)
    assert (
        all(math.isfinite(float(r["task_loss"])) for r in steps) and len(steps) == 2
    )  # 16 tweets = one step of batch 16
    assert (tmp_path / "study" / "figure2.png").exists()


def test_loss_curves_figure4(flags, tmp_path):
    assert loss_curves.main([*flags, "--methods", "goat"]) == 0
    steps = read_csv(tmp_path / "study" / "figure4_steps.csv")
    assert [r["method"] for r in steps] == ["goat"]  # one step: 16 tweets, batch 16
    assert all(
        float(r["loss"]) >= float(r["task_loss"]) - 1e-6 for r in steps
    )  # the balance loss is left out of the curve
    assert (tmp_path / "study" / "figure4.png").exists()


def test_rank_sweep_figure5(flags, tmp_path, rows_of):
    assert rank_sweep.main([*flags, "--methods", "goat", "--r_values", "16"]) == 0
    table = read_csv(tmp_path / "study" / "figure5.csv")
    assert [(r["method"], r["r"]) for r in table] == [("goat", "16")]
    assert [(r["hparams"]["r"], r["hparams"]["lora_alpha"]) for r in rows_of()] == [(16, 32.0)]  # lora_alpha = 2r


def test_experts_sweep_figure6(flags, tmp_path, rows_of):
    assert experts_sweep.main([*flags, "--configs", "1in4", "--methods", "goat", "--r", "16"]) == 0
    assert [r["config"] for r in read_csv(tmp_path / "study" / "figure6.csv")] == ["1in4"]
    (hparams,) = [r["hparams"] for r in rows_of()]
    assert (hparams["num_experts"], hparams["top_k"], hparams["r"]) == (4, 1, 16)
    assert experts_sweep.main([*flags, "--configs", "2of8"]) == 2


def test_routing_figure7_with_and_without_balance_loss(flags, tmp_path):
    assert routing.main(flags) == 0
    layers = read_csv(tmp_path / "study" / "figure7_layers.csv")
    assert {r["aux_loss_coef"] for r in layers} == {"0.001", "0.0"}
    for coef in ("0.001", "0.0"):
        per_layer: dict[str, float] = {}
        for r in layers:
            if r["aux_loss_coef"] == coef:
                per_layer[r["layer"]] = per_layer.get(r["layer"], 0.0) + float(r["fraction"])
        assert len(per_layer) == 12 and all(total == pytest.approx(1.0, abs=1e-4) for total in per_layer.values())
    summary = read_csv(tmp_path / "study" / "figure7.csv")
    assert len(summary) == 2 and all(
        sum(float(r[f"e{j}"]) for j in range(1, 9)) == pytest.approx(1.0, abs=1e-3) for r in summary
    )
    assert (tmp_path / "study" / "figure7.png").exists() and (
        tmp_path / "study" / "figure7_layers_tweet_sentiment.png"
    ).exists()
