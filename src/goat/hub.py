"""The adapter's model card (README.md) and its upload to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from goat.config import GoatConfig


def model_card(record: dict[str, Any], *, stock_peft: bool, task_type: str | None, repo_id: str | None = None) -> str:
    """A model card naming the base model, the method and every setting, and how to load the adapter."""
    config = GoatConfig.from_dict(record["goat_config"])
    base = record.get("base_model_name_or_path")
    where = repo_id or "<this folder or repo>"
    layers = record["adapted_layers"]
    suffixes = sorted({name.rsplit(".", 1)[-1] for name in layers})
    front = ["---", f"library_name: {'peft' if stock_peft else 'goat'}"]
    if base:
        front.append(f"base_model: {base}")
    front += ["tags:", "- goat", "- lora", f"- {config.method}"]
    if config.is_moe:
        front.append("- mixture-of-experts")
    front.append("---")
    rows = [
        ("method", config.method),
        ("base model", base or "unknown"),
        ("total rank r", config.r),
        ("experts E / top-k", f"{config.num_experts} / {config.top_k}" if config.is_moe else "—"),
        ("scaling", config.resolved_scaling),
        ("lora_alpha", config.lora_alpha),
        ("init", config.init if config.method in ("goat", "goat_plus") else "—"),
        ("adapted layers", f"{len(layers)} ({', '.join(suffixes)})"),
        ("modules_to_save", ", ".join(config.modules_to_save) or "—"),
        ("lora_dropout", config.lora_dropout),
        ("seed", config.seed),
    ]
    table = ["| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    if stock_peft:
        auto = f"AutoPeftModelFor{_auto_suffix(task_type)}"
        usage = [
            "A stock PEFT LoRA adapter on the original base weights"
            + (" (saved as PEFT saves a converted PiSSA adapter: rank 2r, `[A; A0]` and `[B, -B0]`)."
               if config.method in ("pissa", "milora") else ":"),  # fmt: skip
            "",
            "```python",
            f"from peft import {auto}",
            f'model = {auto}.from_pretrained("{where}")',
            "model = model.merge_and_unload()  # optional: one dense model",
            "```",
        ]
    else:
        usage = [
            "A routed mixture of LoRA experts: it cannot be merged into one dense weight, so load it with",
            "`goat` (`pip install` this repository) and serve with Hugging Face `generate`:",
            "",
            "```python",
            "import goat",
            "from huggingface_hub import snapshot_download",
            f'base = ...  # {base or "the base model"}, loaded as it was for training',
            f'model = goat.load_goat_model(base, snapshot_download("{where}"))',
            "```",
        ]
    fingerprint = record.get("base_fingerprint") or {}
    integrity = [
        "## Integrity",
        "",
        f"- weights SHA-256: `{record.get('weights_sha256', 'n/a')}`",
        f"- base-model fingerprint: structure `{fingerprint.get('structure', 'n/a')}`, "
        f"values `{fingerprint.get('values', 'n/a')}` ({fingerprint.get('scheme', 'not recorded')})",
        "",
        "`goat.load_goat_model` checks both and refuses another base model unless `strict=False`.",
    ]
    title = f"# {config.method} adapter" + (f" for {base}" if base else "")
    intro = (
        "Trained with the `goat` re-implementation of GOAT (Fan et al., \"Make LoRA Great Again\", ICML 2025), "
        "a LoRA mixture of experts with SVD-segment priors and aligned scaling."
    )
    return "\n".join([*front, "", title, "", intro, "", *table, "", "## Use", "", *usage, "", *integrity, ""])


def _auto_suffix(task_type: str | None) -> str:
    return {
        "CAUSAL_LM": "CausalLM",
        "SEQ_CLS": "SequenceClassification",
        "TOKEN_CLS": "TokenClassification",
        "QUESTION_ANS": "QuestionAnswering",
    }.get(task_type or "", "FeatureExtraction")


def upload_folder(folder: str | Path, repo_id: str, *, private: bool | None, token: str | None, commit_message: str) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` to it; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message)
    return str(getattr(commit, "commit_url", commit))
