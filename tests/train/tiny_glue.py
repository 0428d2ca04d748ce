"""The tiny GLUE run the console and reporter tests launch through the CLI (RTE folder, tiny BERT, one epoch)."""

from __future__ import annotations

from goat.train.__main__ import main


def run_tiny_glue(tiny_model_dir, rte_dir, tmp_path, *extra: str) -> int:
    """``python -m goat.train glue`` on the tiny model and RTE folder; ``extra`` flags come last and override."""
    return main(
        [
            "glue",
            "--task",
            "rte",
            "--model_name_or_path",
            str(tiny_model_dir),
            "--data_dir",
            str(rte_dir),
            "--num_experts",
            "4",
            "--num_train_epochs",
            "1",
            "--global_batch_size",
            "8",
            "--per_device_train_batch_size",
            "8",
            "--logging_steps",
            "1",
            "--warmup_steps",
            "0",
            "--output_dir",
            str(tmp_path / "out"),
            "--results_dir",
            str(tmp_path / "res"),
            *extra,
        ]
    )
