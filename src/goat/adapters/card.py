"""The adapter's model card (README.md), the portable name of its base model, and the upload to the Hub."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from goat.adapters.config import GoatConfig

EMBEDDED = "embedded"  # the packaged base models (goat.tasks.embedded): MiniLM, SmolLM2-135M-Instruct
PORTABLE_NAMES: dict[str, Callable[[], list[Path]]] = {}  # name -> the folders whose models it names
TASK_CLASSES = {
    "CAUSAL_LM": "AutoModelForCausalLM",
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "TOKEN_CLS": "AutoModelForTokenClassification",
    "QUESTION_ANS": "AutoModelForQuestionAnswering",
}


def portable_base_id(name_or_path: str | None) -> str | None:
    """The base model's identity as another machine can resolve it, never a path of this one.

    A Hub id stays as it is; a folder of the Hub cache (``.../models--org--name/snapshots/<sha>``)
    gives ``org/name``; the packaged models' folders give ``embedded``; any other local folder gives
    None (unknown: the fingerprint still identifies the weights).
    """
    if not name_or_path:
        return None
    path = Path(name_or_path).expanduser()
    if not (path.is_absolute() or path.exists()):
        return name_or_path
    cached = re.search(r"models--([^/\\]+?)--([^/\\]+)[/\\]snapshots", str(path))
    if cached:
        return f"{cached.group(1)}/{cached.group(2)}"
    return next((name for name, folders in PORTABLE_NAMES.items() if any(_inside(path, f) for f in folders())), None)


def register_portable_name(name: str, folders: Callable[[], list[Path]]) -> None:
    """Record base models loaded from inside any of ``folders()`` as ``name``. The application
    registers its packaged models as ``embedded`` (:mod:`goat.tasks.embedded`); ``folders`` is called
    at each lookup, so it follows a cache folder that moves."""
    PORTABLE_NAMES[name] = folders


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _base_loading(base: str | None, task_type: str | None, num_labels: int | None) -> list[str]:
    """Lines that load the base model as it was for training, runnable as written when ``base`` is known."""
    auto = TASK_CLASSES.get(task_type or "", "AutoModel")
    labels = f", num_labels={num_labels}" if task_type == "SEQ_CLS" and num_labels else ""
    if base == EMBEDDED:
        resolve = "resolve_causal_model_path" if task_type == "CAUSAL_LM" else "resolve_model_path"
        return [
            f"from goat.tasks.embedded import {resolve}",
            f"from transformers import {auto}",
            f'base = {auto}.from_pretrained({resolve}("embedded"){labels})',
        ]
    name = base or "<the base model>"
    return [f"from transformers import {auto}", f'base = {auto}.from_pretrained("{name}"{labels})']


def model_card(
    record: dict[str, Any],
    *,
    stock_peft: bool,
    task_type: str | None,
    repo_id: str | None = None,
    num_labels: int | None = None,
) -> str:
    """A model card naming the base model, the method and every setting, and how to load the adapter.

    ``repo_id``: where the card says the adapter is (default: the folder the card is in, ``.``).
    """
    config = GoatConfig.from_dict(record["goat_config"])
    base = record.get("base_model_name_or_path")
    where = repo_id or "."
    layers = record["adapted_layers"]
    suffixes = sorted({name.rsplit(".", 1)[-1] for name in layers})
    front = ["---", f"library_name: {'peft' if stock_peft else 'goat'}"]
    if base and base != EMBEDDED:
        front.append(f"base_model: {base}")
    tags = ["goat", "lora", config.method] + (["mixture-of-experts"] if config.is_moe else [])
    front += ["tags:", *(f"- {tag}" for tag in dict.fromkeys(tags))]
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
        ("aux_loss_coef", config.aux_loss_coef if config.is_moe else "—"),
        ("seed", config.seed),
    ]
    table = ["| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    loading = _base_loading(base, task_type, num_labels)
    if stock_peft:
        usage = [
            "A stock PEFT LoRA adapter on the original base weights"
            + (
                " (saved as PEFT saves a converted PiSSA adapter: rank 2r, `[A; A0]` and `[B, -B0]`)."
                if config.method in ("pissa", "milora")
                else ":"
            ),
            "",
            "```python",
            "from peft import PeftModel",
            *loading,
            f'model = PeftModel.from_pretrained(base, "{where}")',
            "model = model.merge_and_unload()  # optional: one dense model",
            "```",
        ]
    else:
        usage = [
            "A routed mixture of LoRA experts: it cannot be merged into one dense weight, and stock PEFT cannot",
            "open it (peft 0.21 registers no adapter type from outside its own enum), so load it with `goat`",
            "(`pip install` this repository) and serve with Hugging Face `generate`:",
            "",
            "```python",
            "import goat",
            *loading,
            f'model = goat.GoatModel.from_pretrained(base, "{where}")  # a folder or a Hub repository id',
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
        'Trained with the `goat` re-implementation of GOAT (Fan et al., "Make LoRA Great Again", ICML 2025), '
        "a LoRA mixture of experts with SVD-segment priors and aligned scaling."
    )
    return "\n".join([*front, "", title, "", intro, "", *table, "", "## Use", "", *usage, "", *integrity, ""])


def upload_folder(
    folder: str | Path, repo_id: str, *, private: bool | None, token: str | None, commit_message: str
) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` to it; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message)
    return str(getattr(commit, "commit_url", commit))
