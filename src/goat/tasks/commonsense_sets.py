"""The 8 commonsense test sets of LLM-Adapters (Hu et al., 2023) by name: their folder names and aliases.

Shared by the data loaders (:mod:`goat.tasks.causal_lm`) and the scorer (:mod:`goat.eval.commonsense`).
"""

from __future__ import annotations

COMMONSENSE_DATASETS: tuple[str, ...] = (
    "boolq",
    "piqa",
    "social_i_qa",
    "hellaswag",
    "winogrande",
    "ARC-Easy",
    "ARC-Challenge",
    "openbookqa",
)

# Short names used by the authors' scripts and in the paper's tables.
ALIASES: dict[str, str] = {
    "siqa": "social_i_qa",
    "arc_e": "ARC-Easy",
    "arc-e": "ARC-Easy",
    "arc_c": "ARC-Challenge",
    "arc-c": "ARC-Challenge",
    "obqa": "openbookqa",
}


def canonical_dataset_name(dataset: str) -> str:
    """Map a set name (any case, or an alias such as ``arc_c``) to its LLM-Adapters folder name.

    Raises ``ValueError`` naming the valid sets when ``dataset`` is unknown.
    """
    by_lower = {name.lower(): name for name in COMMONSENSE_DATASETS}
    key = dataset.strip().lower()
    if key in by_lower:
        return by_lower[key]
    if key in ALIASES:
        return ALIASES[key]
    valid = ", ".join(COMMONSENSE_DATASETS)
    aliases = ", ".join(sorted(ALIASES))
    raise ValueError(f"unknown commonsense dataset {dataset!r}; valid: {valid} (aliases: {aliases})")
