"""Train a tiny goat-adapted classifier a few steps with GoatTrainer; write the logged losses as JSON.

Run directly (one process) or under ``torchrun --nproc-per-node=2`` (gloo, CPU), with or without
DeepSpeed: the per-step loss, task loss and balance loss must agree for the same global batch.
Usage: python dist_train.py OUT.json PER_DEVICE_BATCH GRADIENT_ACCUMULATION [DEEPSPEED_JSON]
"""

import json
import sys

import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

import goat
from goat.train.trainer import GoatTrainer

out_path, per_device, accumulation = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deepspeed_config = sys.argv[4] if len(sys.argv) > 4 else None
torch.manual_seed(0)
base = BertForSequenceClassification(
    BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
)
config = goat.GoatConfig(
    r=8,
    num_experts=4,
    top_k=2,
    lora_dropout=0.0,
    modules_to_save=["classifier", "pooler"],
    target_modules=["query", "key", "value", "dense"],
)
model = goat.get_goat_model(base, config)
# Copies of one example: every micro-batch routes the same tokens whatever the split over processes and
# accumulation steps, so the balance loss (a per-micro-batch statistic, App. B) must agree too.
gen = torch.Generator().manual_seed(1)
example = torch.randint(1, 64, (12,), generator=gen).tolist()
data = Dataset.from_dict({"input_ids": [example] * 32, "labels": [1] * 32})
args = TrainingArguments(
    output_dir=out_path + ".run",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    learning_rate=1e-2,
    max_steps=4,
    logging_steps=1,
    save_strategy="no",
    report_to=[],
    seed=0,
    data_seed=0,
    use_cpu=True,
    deepspeed=deepspeed_config,
    disable_tqdm=True,
    lr_scheduler_type="constant",
    warmup_steps=0,
)
trainer = GoatTrainer(model=model, args=args, train_dataset=data, aux_loss_coef=0.01)
trainer.train()
if trainer.is_world_process_zero():
    logged = [h for h in trainer.state.log_history if "loss" in h]
    json.dump({key: [h[key] for h in logged] for key in ("loss", "task_loss", "aux_loss")}, open(out_path, "w"))
trainer.accelerator.end_training()  # as the CLI: without it gloo's threads can abort the process at exit (SIGABRT)
