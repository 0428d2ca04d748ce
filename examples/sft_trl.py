"""Fine-tune the embedded SmolLM2-135M-Instruct with TRL's SFTTrainer and a GOAT adapter, on CPU, in minutes.

The task is the packaged tweet sentiment set (goat.tasks.sentiment) as prompt/completion chat pairs:
the user gives a tweet, the assistant answers negative, neutral or positive. SFTTrainer trains only
the completion, and it applies GOAT's balance loss by itself (App. B): the adapted model states its
routers as transformers' MoE settings (``router_aux_loss_coef`` = ``GoatConfig.aux_loss_coef``) and
returns ``aux_loss`` = L_b, which TRL weights as it does Mixtral's (goat.adapters.aux_loss).

    python examples/sft_trl.py                          # 30 steps of 4 tweets, CPU float32
    python examples/sft_trl.py --max_steps 2 --max_eval_samples 8   # a smoke run

Speed: on a 2-core machine that was shared with other jobs (load average 10) a step took about 60 s;
on an idle machine of that size expect several times faster. Fewer --max_steps and --max_eval_samples run shorter.

It prints the accuracy of greedy answers on held-out tweets before and after, and saves the adapter.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

import goat
from goat.tasks.embedded import resolve_causal_model_path
from goat.tasks.sentiment import LABELS, load_tweet_sentiment

QUESTION = "Is the sentiment of this tweet negative, neutral or positive? Answer with one word.\n\n{text}"


def pairs(split: Dataset) -> Dataset:
    """TRL's conversational prompt/completion format: the loss is on the completion only."""
    return Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": QUESTION.format(text=text)}] for text in split["text"]],
            "completion": [[{"role": "assistant", "content": LABELS[label]}] for label in split["label"]],
        }
    )


def accuracy(model: torch.nn.Module, tokenizer, split: Dataset) -> float:
    """Share of held-out tweets whose greedy answer starts with the right label."""
    model.eval()
    right = 0
    for text, label in zip(split["text"], split["label"]):
        messages = [{"role": "user", "content": QUESTION.format(text=text)}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        answer = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip().lower()
        right += answer.startswith(LABELS[label])
    return right / len(split)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max_steps", type=int, default=30)
    parser.add_argument("--max_train_samples", type=int, default=120, help="training tweets")
    parser.add_argument("--max_eval_samples", type=int, default=30, help="held-out tweets scored before and after")
    parser.add_argument("--output_dir", default="outputs/sft_trl")
    ns = parser.parse_args()

    path = resolve_causal_model_path("embedded")  # converted once from the packaged GGUF file, then cached
    tokenizer = AutoTokenizer.from_pretrained(path)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    data = load_tweet_sentiment(max_train_samples=ns.max_train_samples, max_eval_samples=ns.max_eval_samples, seed=0)
    config = goat.GoatConfig(
        method="goat",
        r=16,
        num_experts=4,
        top_k=2,
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj"],
        aux_loss_coef=1e-3,
    )
    model = goat.get_goat_model(base, config)
    model.print_trainable_parameters()
    before = accuracy(model, tokenizer, data["validation"])

    args = SFTConfig(
        output_dir=ns.output_dir,
        max_steps=ns.max_steps,
        per_device_train_batch_size=4,
        learning_rate=5e-4,
        lr_scheduler_type="constant",
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        max_length=256,
        seed=0,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=pairs(data["train"]), processing_class=tokenizer)
    trainer.train()
    after = accuracy(model, tokenizer, data["validation"])
    print(
        f"held-out accuracy on {ns.max_eval_samples} tweets: {before:.3f} before, {after:.3f} after {ns.max_steps} steps"
    )
    model.save_pretrained(Path(ns.output_dir) / "adapter")
    print(
        f"adapter saved to {Path(ns.output_dir) / 'adapter'}; load it with goat.GoatModel.from_pretrained(base, folder)"
    )


if __name__ == "__main__":
    main()
