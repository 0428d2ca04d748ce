"""The task families ``python -m goat.train`` runs, by name.

A family's task arguments load with this module (the command line needs them); its builder loads its
task stack (datasets, open_clip, the generation evaluators) only when a run is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from goat.train.arguments import CausalLMArguments, GlueArguments, VisionArguments
from goat.train.bundle import Family, TaskBundle
from goat.train.run_config import RunConfig


def _builder(module: str, function: str) -> Callable[[RunConfig], TaskBundle]:
    """``goat.train.<module>.<function>``, imported on its first call."""

    def build(config: RunConfig) -> TaskBundle:
        return getattr(importlib.import_module(f"goat.train.{module}"), function)(config)

    return build


_CAUSAL = (
    ("math", "Math: MetaMathQA, scored on GSM8K", 2),
    ("code", "Code: Code-Feedback, scored by HumanEval pass@1", 2),
    ("chat", "Chat: WizardLM, answers for the MT-Bench judge", 2),
    ("commonsense", "Commonsense170K, scored on eight commonsense sets", 3),
)
FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "glue",
            "GLUE / sequence classification (paper Table 4; Table 11 settings).",
            GlueArguments,
            _builder("glue", "build_glue"),
        ),
        Family(
            "vision",
            "Image classification with CLIP ViT-B/32 (paper Table 1; Table 10 settings).",
            VisionArguments,
            _builder("vision", "build_vision"),
        ),
        *(
            Family(
                name,
                f"{description} (LLaMA-2-7B, paper Table {table}).",
                CausalLMArguments,
                _builder("causal", "build_causal_lm"),
            )
            for name, description, table in _CAUSAL
        ),
    )
}


def family_named(name: str) -> Family:
    """The family called ``name``; ``ValueError`` listing the families otherwise."""
    if name not in FAMILIES:
        raise ValueError(f"family {name!r} has no training entrypoint; choose one of {', '.join(FAMILIES)}.")
    return FAMILIES[name]
