"""`GoatTrainer`: transformers.Trainer + the MoE balance loss, per-epoch evaluation and results rows.

The one place where the auxiliary loss is added, for every task family:
``loss = task_loss + aux_loss_coef * goat.balance_loss(model)`` (App. B; coefficient 1e-3 per the
authors' rebuttal). The authors' GLUE trainer never added it; ours always does unless coef = 0.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from accelerate.utils.deepspeed import DeepSpeedSchedulerWrapper  # accelerate.utils exports it only with deepspeed
from torch import nn
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerCallback
from transformers.trainer import SCHEDULER_NAME
from transformers.utils import can_return_loss, find_labels

import goat
from goat.adapters import aux_loss
from goat.adapters.model import GoatModel
from goat.train.bundle import Evaluator
from goat.train.console import QuietPrinter, QuietProgress, report_layer_loads
from goat.train.results import ResultRow, append_result

logger = logging.getLogger(__name__)


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient norm; the run is stopped and is not a result."""


CHECKPOINT_ADAPTER = "adapter"  # checkpoint-N/adapter/: the adapter as save_pretrained writes it


class GoatTrainer(Trainer):
    """transformers.Trainer plus the MoE balance loss, divergence detection and adapter-only checkpoints.

    * ``loss = task_loss + aux_loss_coef * L_b``: the model adds the term to its own loss
      (:mod:`goat.adapters.aux_loss`, the one implementation every trainer uses); this trainer tells it the
      accumulation steps, so the balance loss enters every optimiser step with exactly
      ``aux_loss_coef`` whatever the gradient accumulation and world size (see :meth:`compute_loss`).
      The logged ``task_loss``/``aux_loss`` are per-step means over the logging window and all
      processes, like Trainer's ``loss``.
    * A non-finite loss or gradient norm raises :class:`DivergenceError` before anything is logged or
      saved for that step (Trainer itself would log the NaN away as ``loss 0``).
    * A checkpoint holds the adapter in ``checkpoint-N/adapter/`` (the frozen base weights are rebuilt
      from the base model on resume), next to Trainer's optimiser, scheduler, RNG and trainer state.
    """

    def __init__(self, *args: Any, aux_loss_coef: float | None = None, **kwargs: Any):
        """``aux_loss_coef``: sets the active adapter's ``GoatConfig.aux_loss_coef`` (saved with it); None keeps it."""
        super().__init__(*args, **kwargs)
        if aux_loss_coef is not None:
            config = self.model.goat_config
            self.model.adapter_configs[self.model.active_adapter] = dataclasses.replace(
                config, aux_loss_coef=aux_loss_coef
            )
            aux_loss.mirror_into_model_config(self.model.get_base_model(), self.model.goat_config)
        base = self.model.get_base_model() if isinstance(self.model, GoatModel) else self.model
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
        self.model_accepts_loss_kwargs = getattr(
            base, "accepts_loss_kwargs", type(base).__name__.endswith("ForCausalLM")
        )
        self._reset_loss_sums()
        self._last_logged_step = 0
        for noisy in (ProgressCallback, PrinterCallback):  # they print a dict per logging step
            self.pop_callback(noisy)
        self.add_callback(QuietPrinter if self.args.disable_tqdm else QuietProgress)
        # Trainer sets this for each accumulation group while training; before that, the configured GA.
        self.current_gradient_accumulation_steps = self.args.gradient_accumulation_steps

    # ------------------------------------------------------------------ loss
    def _reset_loss_sums(self) -> None:
        self._task_sum = torch.zeros(())
        self._aux_sum = torch.zeros(())
        self._nonfinite_loss = torch.zeros((), dtype=torch.bool)

    def _task_loss_is_step_share(self, num_items_in_batch: torch.Tensor | int | None) -> bool:
        """True when the task loss already is this micro-batch's share of the step (Trainer will not divide it by GA).

        The same test as ``Trainer.training_step``: a causal LM normalising by the step's token count.
        """
        if self.loss_is_scaled_for_ga is not None:
            return self.loss_is_scaled_for_ga
        return (self.model_accepts_loss_kwargs and num_items_in_batch is not None) or self.compute_loss_func is not None

    def _process_loss_scale(self, num_items_in_batch: torch.Tensor | int | None) -> int:
        """The factor Trainer.compute_loss multiplies a loss normalised by all processes' token count by."""
        if (
            self.args.average_tokens_across_devices
            and self.model_accepts_loss_kwargs
            and num_items_in_batch is not None
        ):
            return self.accelerator.num_processes // self.get_tp_size()
        return 1

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Task loss plus this micro-batch's share of ``aux_loss_coef * L_b`` (App. B), as the model adds it.

        Trainer divides a micro-batch's loss by the accumulation steps GA, except for a causal LM whose
        loss is already normalised by the whole step's token count (and multiplied by the number of
        processes that share that count). The auxiliary term is a per-micro-batch mean in both cases,
        so for the causal LM the model divides it by GA (times that process factor) on being told so
        here: the step's gradient then holds ``coef x mean(L_b)``, never ``GA x coef``. A loss the model
        did not compute (``compute_loss_func``) gets the same term through :func:`goat.adapters.aux_loss.add_aux_loss`'s record.
        """
        ga = self.current_gradient_accumulation_steps
        step_share = self._task_loss_is_step_share(num_items_in_batch)
        scale = self._process_loss_scale(num_items_in_batch)
        with aux_loss.accumulation_steps(ga * scale):
            loss, outputs = super().compute_loss(
                model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
            )
        if model.training:
            hook = aux_loss.find_hook(self.model)  # ``model`` may be DDP's or DeepSpeed's wrapper of it
            aux, added = hook.last  # the forward with gradients (a TRL parent may run a second one under no_grad)
            if added is None:  # the model computed no loss of its own
                added = aux.to(loss.device) / ga if step_share else aux.to(loss.device)
                if getattr(outputs, "aux_loss", None) is None:  # else a TRL parent weighted outputs.aux_loss already
                    loss = loss + added
                scale = 1
            task_loss = loss - added * scale
            # What this micro-batch adds to the step's loss once Trainer has divided by GA.
            task_part = task_loss.detach().float() if step_share else task_loss.detach().float() / ga
            self._task_sum = self._task_sum.to(task_part.device) + task_part
            self._aux_sum = self._aux_sum.to(task_part.device) + aux.detach().float() / ga
            finite = torch.isfinite(loss.detach()).all()
            self._nonfinite_loss = self._nonfinite_loss.to(finite.device) | ~finite
        return (loss, outputs) if return_outputs else loss

    # ------------------------------------------------------------- divergence
    def _maybe_log_save_evaluate(self, tr_loss: torch.Tensor, grad_norm: Any, *args: Any, **kwargs: Any) -> None:
        """Stop with :class:`DivergenceError` before a non-finite step is logged or saved."""
        self._check_finite(grad_norm)
        super()._maybe_log_save_evaluate(tr_loss, grad_norm, *args, **kwargs)

    def _check_finite(self, grad_norm: torch.Tensor | float | None) -> None:
        """Raise on every process together: the flags are reduced over processes, so no process waits alone."""
        # the flags are gathered on the CPU (grad_norm is a tensor on the training device)
        norm = torch.as_tensor(float("nan") if grad_norm is None else grad_norm, dtype=torch.float32, device="cpu")
        norm = norm.reshape(())
        flags = torch.stack([self._nonfinite_loss.cpu(), ~torch.isfinite(norm) & (grad_norm is not None)]).float()
        if self.args.world_size > 1:
            flags = self.accelerator.reduce(flags.to(self.args.device), reduction="sum").cpu()
        self._nonfinite_loss = torch.zeros((), dtype=torch.bool)
        if not flags.any():
            return
        what = "loss" if flags[0] else f"gradient norm ({norm.item()})"
        for callback in self.callback_handler.callbacks:  # end the progress bar's line before the error's
            if isinstance(callback, ProgressCallback) and callback.training_bar is not None:
                callback.training_bar.close()
                callback.training_bar = None
        rate = self._get_learning_rate() if self.lr_scheduler is not None else self.args.learning_rate
        raise DivergenceError(
            f"training diverged at step {self.state.global_step} (epoch {self.state.epoch or 0:.2f}): non-finite {what} "
            f"at learning rate {rate:.3g} (peak {self.args.learning_rate:.3g}). Nothing was saved as "
            "a result; start a new run with a lower learning rate (or more warmup steps)."
        )

    # ---------------------------------------------------------------- logging
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            steps = max(1, self.state.global_step - self._last_logged_step)
            self._last_logged_step = self.state.global_step
            sums = torch.stack([self._task_sum.float().cpu(), self._aux_sum.float().cpu()])
            if self.args.world_size > 1:  # Trainer logs on every process at the same step
                sums = self.accelerator.reduce(sums.to(self.args.device), reduction="mean").cpu()
            logs["task_loss"] = round(sums[0].item() / steps, 6)
            logs["aux_loss"] = round(sums[1].item() / steps, 8)
            self._task_sum, self._aux_sum = torch.zeros(()), torch.zeros(())
            stats = goat.routing_stats(self.model, reset=True)
            logs.update(load_summary(stats))
            super().log(logs, start_time)
            if self.is_world_process_zero():
                report_layer_loads(self.callback_handler.callbacks, stats, self.state.global_step)
            return
        super().log(logs, start_time)

    # ------------------------------------------------------------ checkpoints
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Trainer's checkpoints (``_internal_call``) keep the adapter in ``checkpoint-N/adapter/``."""
        if _internal_call and output_dir is not None:
            output_dir = os.path.join(output_dir, CHECKPOINT_ADAPTER)
        super().save_model(output_dir, _internal_call=_internal_call)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Save the adapter (``adapter_config.json`` + ``adapter_model.safetensors``) and the tokenizer.

        ``state_dict`` is what DeepSpeed gathered (ZeRO-3's live parameters are shards); it is used when given.
        """
        if not self.args.should_save:
            return
        output = Path(output_dir or self.args.output_dir)
        self.model.save_pretrained(output, state_dict=state_dict)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        """Resume: the checkpoint's adapter into the freshly built model (optimiser etc. are Trainer's)."""
        self.model.load_trained_state(Path(resume_from_checkpoint) / CHECKPOINT_ADAPTER)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        """Under DeepSpeed, checkpoint the trainable parameters only (Trainer does so only for peft models).

        The frozen weights are rebuilt from the base model at resume; saving them would write a whole
        copy of a 7B model into every checkpoint.
        """
        if not self.is_deepspeed_enabled:
            return super()._save_optimizer_and_scheduler(output_dir)
        self.model_wrapped.save_checkpoint(output_dir, exclude_frozen_parameters=True)
        if self.args.should_save and not isinstance(self.lr_scheduler, DeepSpeedSchedulerWrapper):
            torch.save(self.lr_scheduler.state_dict(), os.path.join(output_dir, SCHEDULER_NAME))

    def _prepare_for_training(self, max_steps: int, train_dataloader: Any, resume_from_checkpoint: str | None) -> Any:
        """Under DeepSpeed, resume without the frozen weights (``load_module_strict=False``; Trainer does so only for peft)."""
        if not (self.is_deepspeed_enabled and resume_from_checkpoint):
            return super()._prepare_for_training(max_steps, train_dataloader, resume_from_checkpoint)
        model, train_dataloader = super()._prepare_for_training(max_steps, train_dataloader, None)
        load_path, _ = self.model_wrapped.load_checkpoint(
            resume_from_checkpoint, load_module_strict=False, load_optimizer_states=True, load_lr_scheduler_states=True
        )
        if load_path is None:
            raise ValueError(f"DeepSpeed found no checkpoint to resume in {resume_from_checkpoint}.")
        self._load_optimizer_and_scheduler(resume_from_checkpoint)
        self._load_scaler(resume_from_checkpoint)
        return model, train_dataloader


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


HISTORY_NAME = "epoch_history.json"  # in each checkpoint, written last: the epochs evaluated so far


class EpochEvaluation(TrainerCallback):
    """After every epoch: evaluate in eval mode, log, write one results row, track the best epoch.

    Each row's ``status`` says what the number is: ``complete`` (the run's last epoch), ``incomplete``
    (an earlier epoch: the run had not finished when it was written), ``pending`` (the metric awaits an
    outside judge, e.g. MT-Bench) or ``diverged`` (see :meth:`record_divergence`). A row is written once
    per (run, epoch): a resumed run that repeats an epoch whose row exists does not write it again.
    The history is saved into every checkpoint (``epoch_history.json``) and restored on resume.
    Routing statistics of the evaluation pass go to ``routing_epoch<N>.json`` in the run folder
    (expert-load heatmaps, paper Fig. 7).
    """

    def __init__(
        self,
        evaluate: Evaluator,
        primary_metric: str,
        row_template: dict[str, Any],
        results_root: str,
        eval_on_start: bool = False,
    ):
        self.evaluate = evaluate
        self.primary_metric = primary_metric
        self.row_template = row_template
        self.results_root = results_root
        self.trainer: GoatTrainer | None = None
        self.history: list[dict[str, float]] = []
        self.eval_on_start = eval_on_start

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001 (transformers signature)
        """``--eval_on_start``: score the model before any step, as epoch 0 (a fresh run only, never a resumed one)."""
        if self.eval_on_start and state.global_step == 0 and not any(h["epoch"] == 0 for h in self.history):
            self._evaluate_and_record(args, state, 0.0)
        return control

    def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001 (transformers signature)
        self._evaluate_and_record(args, state, round(state.epoch or 0.0, 4))
        return control

    def _evaluate_and_record(self, args, state, epoch: float) -> None:  # noqa: ANN001 (transformers types)
        trainer = self.trainer
        assert trainer is not None, "EpochEvaluation.trainer must be set before training"
        goat.routing_stats(trainer.model, reset=True)
        trainer.model.eval()
        with torch.no_grad():
            metrics = self.evaluate(trainer)
        trainer.model.train()
        routing = goat.routing_stats(trainer.model, reset=True)
        value = metrics[self.primary_metric]
        if epoch > 0 and math.isfinite(value) and (state.best_metric is None or value > state.best_metric):
            state.best_metric, state.best_global_step = value, state.global_step  # kept by checkpoint rotation
        self.history.append({"epoch": epoch, **metrics})
        trainer.log({f"eval_{k}": v for k, v in metrics.items()})
        if state.is_world_process_zero:
            out = Path(args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            if routing:
                (out / f"routing_epoch{int(round(epoch))}.json").write_text(json.dumps(routing))
            status = (
                "pending"
                if not math.isfinite(value)
                else "complete"
                if state.global_step >= state.max_steps
                else "incomplete"
            )
            self._append(epoch, value, metrics, status)

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001 (transformers signature)
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            (checkpoint / HISTORY_NAME).write_text(json.dumps(self.history))
        return control

    def restore(self, checkpoint: str | Path) -> None:
        """The history of the epochs a checkpoint had evaluated (resuming)."""
        self.history = json.loads((Path(checkpoint) / HISTORY_NAME).read_text())

    def record_divergence(self, error: DivergenceError, epoch: float) -> None:
        """One ``diverged`` row (value NaN): the run's earlier rows are no result (goat.report lists it apart)."""
        self._append(round(epoch, 4), math.nan, {"error": str(error)}, "diverged")

    def _append(self, epoch: float, value: float, metrics: dict[str, Any], status: str) -> None:
        row = ResultRow(
            **self.row_template,
            epoch=epoch,
            metric=self.primary_metric,
            value=value,
            metrics=metrics,
            status=status,
            time=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        append_result(self.results_root, row, once_per_epoch=True)

    def best(self) -> dict[str, float]:
        """The trained epoch with the highest primary metric (the paper reports the best epoch); the last if none is finite.

        Epoch 0 (``--eval_on_start``, the model before training) is a reference, never the run's result.
        """
        trained = [h for h in self.history if h["epoch"] > 0]
        finite = [h for h in trained if math.isfinite(h[self.primary_metric])]
        return max(finite, key=lambda h: h[self.primary_metric]) if finite else trained[-1]
