"""Run the code pipeline (HumanEval eval) under DeepSpeed ZeRO-3 through the real runner; report on rank 0.

Usage (2 processes, gloo, CPU): torchrun --nproc-per-node=2 zero3_causal.py OUT_DIR MODEL TRAIN_FILE DS_JSON
Writes OUT_DIR/report.json and OUT_DIR/expected_adapter.safetensors (the trained adapter, gathered).
"""

import json
import sys
from pathlib import Path

import deepspeed
import torch
from safetensors.torch import save_file

from goat.train.runner import prepare, train
from goat.train.settings import resolve

torch.set_num_threads(1)
out, model_dir, train_file, ds_config = Path(sys.argv[1]), *sys.argv[2:5]
prepared = prepare(
    resolve(
        "code",
        [
            "--model_name_or_path",
            model_dir,
            "--train_file",
            train_file,
            "--deepspeed",
            ds_config,
            "--num_train_epochs",
            "1",
            "--max_train_samples",
            "8",
            "--global_batch_size",
            "4",
            "--per_device_train_batch_size",
            "2",
            "--warmup_steps",
            "0",
            "--learning_rate",
            "1e-2",
            "--max_new_tokens",
            "8",
            "--per_device_eval_batch_size",
            "2",
            "--max_eval_samples",
            "3",
            "--bf16",
            "false",
            "--report_to",
            "none",
            "--num_experts",
            "4",
            "--output_dir",
            str(out / "runs"),
            "--results_dir",
            str(out / "results"),
            "--svd_cache_dir",
            str(out / "svd"),
        ],
    )
)
model = prepared.trainer.model
# Adapters were built (SVD, W <- W - W_res) on full weights, before DeepSpeed existed.
built = {name: p.detach().clone() for name, p in model.named_parameters()}
summary = train(prepared)

params = dict(model.named_parameters())
partitioned = all(p.numel() == 0 for p in params.values())  # ZeRO-3 holds only shards between forwards
with deepspeed.zero.GatheredParameters(list(params.values())):
    frozen_kept = all(torch.equal(p, built[n]) for n, p in params.items() if not p.requires_grad)
    adapters_trained = any(not torch.equal(p, built[n]) for n, p in params.items() if p.requires_grad)
    expected = model.adapter_state_dict()
if prepared.trainer.is_world_process_zero():
    save_file(expected, str(out / "expected_adapter.safetensors"))
    report = {
        "partitioned": partitioned,
        "frozen_kept": frozen_kept,
        "adapters_trained": adapters_trained,
        "global_step": prepared.trainer.state.global_step,
        "run": str(prepared.output_dir),
        "best": summary["best"],
    }
    (out / "report.json").write_text(json.dumps(report))
