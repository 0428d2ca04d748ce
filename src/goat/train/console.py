"""A quiet console: one progress bar with the numbers that matter, per-layer expert loads to the loggers only.

transformers prints every logging step as a dict (with one key per adapted layer, ~224 for
LLaMA-2-7B). Here the bar's postfix shows loss, balance loss, learning rate and the largest expert
share; evaluation results are one line per epoch; each layer's largest expert share goes to W&B
and TensorBoard as a histogram per logging step (never to stdout). A W&B run carries the run's
settings under their names and is grouped by configuration (:class:`GoatWandbCallback`).
"""

from __future__ import annotations

import os
from pathlib import Path
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


class GoatWandbCallback(WandbCallback):
    """transformers' W&B callback, with runs a researcher can slice.

    * The run config holds every setting under its one name (``method``, ``r``, ``num_experts``,
      ``top_k``, ``task``, ``model_name_or_path``, ``learning_rate``, ...: ``RunConfig.settings()``) and
      the ``config_hash``, over transformers' own entries (its TrainingArguments and the model config).
    * ``group``: one per configuration (task, method and config hash), so its seeds group together;
      ``job_type``: the task. The run's name is the run folder's.
    * W&B's folder (``wandb/``, offline runs included) lies in the run folder, not in the working directory.
    * Evaluation goes under ``eval/``: the metrics (logged as ``eval_<metric>``) and the prediction passes'
      own numbers (``<split>_loss``, ``<split>_runtime``, ...), which transformers would put under ``train/``.

    ``WANDB_RUN_GROUP``, ``WANDB_JOB_TYPE`` and ``WANDB_DIR``, when set, win. The run begun here ends with training.
    """

    def __init__(self, settings: dict[str, Any], *, group: str, job_type: str, run_dir: str | Path):
        super().__init__()
        self.settings, self.group, self.job_type, self.run_dir = dict(settings), group, job_type, Path(run_dir)
        self._began = False

    def init_arguments(self, args: Any) -> dict[str, Any]:
        """``wandb.init``'s arguments: transformers' project and name, and this run's group, job type and folder."""
        return {
            "project": os.getenv("WANDB_PROJECT", "huggingface"),
            "name": args.run_name,
            "group": os.getenv("WANDB_RUN_GROUP") or self.group,
            "job_type": os.getenv("WANDB_JOB_TYPE") or self.job_type,
            "dir": os.getenv("WANDB_DIR") or str(self.run_dir),
        }

    def setup(self, args, state, model, **kwargs):  # noqa: ANN001 (transformers signature)
        if self._wandb is None:
            return
        if state.is_world_process_zero and self._wandb.run is None:  # transformers' setup adds to a begun run
            Path(self.init_arguments(args)["dir"]).mkdir(parents=True, exist_ok=True)
            self._wandb.init(**self.init_arguments(args))
            self._began = True
        super().setup(args, state, model, **kwargs)
        if state.is_world_process_zero:
            self._wandb.config.update(self.settings, allow_val_change=True)

    def on_predict(self, args, state, control, metrics, **kwargs):  # noqa: ANN001 (transformers signature)
        if self._wandb is None:
            return
        if not self._initialized:
            self.setup(args, state, **kwargs)
        if state.is_world_process_zero:
            logs = {f"eval/{key.removeprefix('eval_')}": value for key, value in metrics.items()}
            self._wandb.log({**logs, "train/global_step": state.global_step})

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001 (transformers signature)
        super().on_train_end(args, state, control, **kwargs)
        if self._began and self._wandb is not None and self._wandb.run is not None:
            self._wandb.finish()  # the next run of this process begins its own
            self._began, self._initialized = False, False


def track_in_wandb(
    callbacks: list[TrainerCallback], settings: dict[str, Any], *, group: str, job_type: str, run_dir: str | Path
) -> None:
    """Put :class:`GoatWandbCallback` in the place of the ``WandbCallback`` that ``report_to wandb`` added."""
    for index, callback in enumerate(callbacks):
        if type(callback) is WandbCallback:
            callbacks[index] = GoatWandbCallback(settings, group=group, job_type=job_type, run_dir=run_dir)
