"""A quiet console: one progress bar with the numbers that matter, per-layer expert loads to the loggers only.

transformers prints every logging step as a dict (with one key per adapted layer, ~224 for
LLaMA-2-7B). Here the bar's postfix shows loss, balance loss, learning rate and the largest expert
share; evaluation results are one line per epoch; each layer's largest expert share goes to W&B
and TensorBoard as a histogram per logging step (never to stdout).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import ProgressCallback, TrainerCallback
from transformers.integrations import TensorBoardCallback, WandbCallback

POSTFIX = {"loss": "loss", "aux_loss": "aux", "learning_rate": "lr", "expert_load_max": "load"}
LAYER_LOAD_TAG = "train/expert_load_per_layer"


def _format(logs: dict[str, Any]) -> dict[str, str]:
    return {short: f"{logs[key]:.3g}" for key, short in POSTFIX.items() if isinstance(logs.get(key), (int, float))}


def _evaluation_line(state: Any, logs: dict[str, Any]) -> str | None:
    metrics = {k.removeprefix("eval_"): v for k, v in logs.items() if k.startswith("eval_")}
    if not metrics:
        return None
    shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
    return f"epoch {round(state.epoch or 0)}: {shown}"


class QuietProgress(ProgressCallback):
    """transformers' progress bar, with the training numbers in its postfix instead of printed dicts."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001 (transformers signature)
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        if "loss" in logs:
            self.training_bar.set_postfix(_format(logs), refresh=False)
        line = _evaluation_line(state, logs)
        if line:
            self.training_bar.write(line)


class QuietPrinter(TrainerCallback):
    """With ``disable_tqdm``: one short line per logging step and per evaluation."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001 (transformers signature)
        if not state.is_world_process_zero or not logs:
            return
        if "loss" in logs:
            print(f"step {state.global_step}: " + " ".join(f"{k} {v}" for k, v in _format(logs).items()), flush=True)
        line = _evaluation_line(state, logs)
        if line:
            print(line, flush=True)


def report_layer_loads(callbacks: list[TrainerCallback], loads: dict[str, list[float]], step: int) -> None:
    """Each MoE layer's largest expert share (1/E when balanced, Fig. 7) as one histogram per logging step."""
    shares = [max(v) for v in loads.values() if sum(v) > 0]
    if not shares:
        return
    for callback in callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.tb_writer is not None:
            callback.tb_writer.add_histogram(LAYER_LOAD_TAG, torch.tensor(shares), step)
        elif isinstance(callback, WandbCallback) and callback._initialized and callback._wandb is not None:
            wandb = callback._wandb
            wandb.log({LAYER_LOAD_TAG: wandb.Histogram(shares), "train/global_step": step})
