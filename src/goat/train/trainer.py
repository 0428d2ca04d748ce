"""`GoatTrainer`: transformers.Trainer + the MoE balance loss, per-epoch evaluation and results rows.

The one place where the auxiliary loss is added, for every task family:
``loss = task_loss + aux_loss_coef * goat.balance_loss(model)`` (App. B; coefficient 1e-3 per the
authors' rebuttal). The authors' GLUE trainer never added it; ours always does unless coef = 0.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.utils import can_return_loss, find_labels

import goat
from goat.model import GoatModel
from goat.train.results import ResultRow, append_result

logger = logging.getLogger(__name__)
Evaluator = Callable[["GoatTrainer"], dict[str, float]]


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient norm; the run is stopped and is not a result."""


class GoatTrainer(Trainer):
    """Adds ``aux_loss_coef * balance_loss`` to the task loss and logs both, plus expert load."""

    def __init__(self, *args: Any, aux_loss_coef: float = 1e-3, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.aux_loss_coef = aux_loss_coef
        self._running = {"task_loss": 0.0, "aux_loss": 0.0, "count": 0}
        base = self.model.base_model if isinstance(self.model, GoatModel) else self.model
        # The wrapper's forward(*args, **kwargs) hides the base model's signature from Trainer,
        # which reads label names, loss support and dataset columns from it.
        if self.args.label_names is None:
            self.label_names = find_labels(type(base))
        self.can_return_loss = can_return_loss(type(base))
        forward = inspect.signature(base.forward).parameters
        self._signature_columns = list(forward) + ["label", "label_ids", *self.label_names]
        # Trainer rescales the loss by the world size when it believes the model normalises by the
        # global token count. Only causal-LM losses do; a classifier's **kwargs does not mean that
        # (plain Trainer would double a 2-process classification loss and its gradient).
        self.model_accepts_loss_kwargs = getattr(base, "accepts_loss_kwargs", type(base).__name__.endswith("ForCausalLM"))

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        task_loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        loss = task_loss
        if model.training:
            aux = goat.auxiliary_loss(model, self.aux_loss_coef).to(task_loss.device)
            loss = task_loss + aux
            self._running["task_loss"] += task_loss.detach().float().item()
            self._running["aux_loss"] += aux.detach().float().item()
            self._running["count"] += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._running["count"]:
            n = self._running["count"]
            logs["task_loss"] = round(self._running["task_loss"] / n, 6)
            logs["aux_loss"] = round(self._running["aux_loss"] / n, 8)
            self._running = {"task_loss": 0.0, "aux_loss": 0.0, "count": 0}
            stats = goat.routing_stats(self.model, reset=True)
            logs.update(load_summary(stats))
            logs.update(per_layer_load(stats))
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Checkpoints hold the adapter only (adapter_config.json + adapter_model.safetensors).

        ``state_dict`` is what DeepSpeed gathered (ZeRO-3's live parameters are shards); it is used when given.
        """
        if not isinstance(self.model, GoatModel) or self.model.goat_config.method == "full":
            return super()._save(output_dir, state_dict)
        if not self.args.should_save:
            return
        output = Path(output_dir or self.args.output_dir)
        self.model.save_pretrained(output, state_dict=state_dict)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output)


def load_summary(stats: dict[str, list[float]]) -> dict[str, float]:
    """Scalars for the logger: the most loaded expert's share and the load's coefficient of variation."""
    if not stats:
        return {}
    loads = torch.tensor(list(stats.values()))
    if loads.sum() == 0:
        return {}
    return {
        "expert_load_max": round(loads.max(dim=1).values.mean().item(), 4),
        "expert_load_cv": round((loads.std(dim=1) / loads.mean(dim=1)).mean().item(), 4),
    }


def per_layer_load(stats: dict[str, list[float]]) -> dict[str, float]:
    """``expert_load/<layer>``: each MoE layer's most loaded expert share (1/E when balanced, Fig. 7)."""
    return {f"expert_load/{layer}": round(max(loads), 4) for layer, loads in stats.items() if sum(loads) > 0}


class EpochEvaluation(TrainerCallback):
    """After every epoch: evaluate in eval mode, log, write a results row, track the best epoch.

    Routing statistics of the evaluation pass are written to ``routing_epoch<N>.json`` beside the
    checkpoints, so expert-load heatmaps (paper Fig. 7) can be drawn from any run.
    """

    def __init__(self, evaluate: Evaluator, primary_metric: str, row_template: dict[str, Any], results_root: str):
        self.evaluate = evaluate
        self.primary_metric = primary_metric
        self.row_template = row_template
        self.results_root = results_root
        self.trainer: GoatTrainer | None = None
        self.history: list[dict[str, float]] = []

    def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001 (transformers signature)
        trainer = self.trainer
        assert trainer is not None, "EpochEvaluation.trainer must be set before training"
        goat.routing_stats(trainer.model, reset=True)
        trainer.model.eval()
        with torch.no_grad():
            metrics = self.evaluate(trainer)
        trainer.model.train()
        routing = goat.routing_stats(trainer.model, reset=True)
        epoch = round(state.epoch or 0.0, 4)
        self.history.append({"epoch": epoch, **metrics})
        trainer.log({f"eval_{k}": v for k, v in metrics.items()})
        if state.is_world_process_zero:
            out = Path(args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            if routing:
                (out / f"routing_epoch{int(round(epoch))}.json").write_text(json.dumps(routing))
            row = ResultRow(
                **self.row_template,
                epoch=epoch,
                metric=self.primary_metric,
                value=metrics[self.primary_metric],
                metrics=metrics,
                time=time.strftime("%Y-%m-%dT%H:%M:%S"),
            )
            append_result(self.results_root, row)
            logger.info("epoch %s: %s = %.4f", epoch, self.primary_metric, metrics[self.primary_metric])
        return control

    def best(self) -> dict[str, float]:
        """The epoch with the highest primary metric (the paper reports the best epoch)."""
        return max(self.history, key=lambda h: h[self.primary_metric])
