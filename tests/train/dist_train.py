"""Train a tiny goat-adapted classifier a few steps with GoatTrainer; write the logged losses as JSON.

Run directly (one process) or under ``torchrun --nproc-per-node=2`` (gloo, CPU), with or without
DeepSpeed: the per-step losses must agree for the same global batch.
Usage: python dist_train.py OUT.json PER_DEVICE_BATCH [DEEPSPEED_JSON]
"""

import json
import sys

import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

import goat
from goat.train.trainer import GoatTrainer

out_path, per_device = sys.argv[1], int(sys.argv[2])
deepspeed_config = sys.argv[3] if len(sys.argv) > 3 else None
torch.manual_seed(0)
base = BertForSequenceClassification(
    BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
               max_position_embeddings=32, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
)
config = goat.GoatConfig(r=8, num_experts=4, top_k=2, lora_dropout=0.0, modules_to_save=["classifier", "pooler"],
                         target_modules=["query", "key", "value", "dense"])
model = goat.get_goat_model(base, config)
gen = torch.Generator().manual_seed(1)
data = Dataset.from_dict({
    "input_ids": torch.randint(1, 64, (32, 12), generator=gen).tolist(),
    "labels": torch.randint(0, 3, (32,), generator=gen).tolist(),
})
args = TrainingArguments(
    output_dir=out_path + ".run", per_device_train_batch_size=per_device, learning_rate=1e-2, max_steps=4,
    logging_steps=1, save_strategy="no", report_to=[], seed=0, data_seed=0, use_cpu=True,
    deepspeed=deepspeed_config, disable_tqdm=True, lr_scheduler_type="constant", warmup_steps=0,
)
trainer = GoatTrainer(model=model, args=args, train_dataset=data, aux_loss_coef=0.0)
trainer.train()
if trainer.is_world_process_zero():
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    json.dump({"losses": losses}, open(out_path, "w"))
