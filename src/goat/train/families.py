"""The task families ``python -m goat.train`` runs, by name."""

from __future__ import annotations

from goat.train import causal, glue, vision
from goat.train.bundle import Family

FAMILIES: dict[str, Family] = {family.name: family for family in (glue.FAMILY, vision.FAMILY, *causal.FAMILIES)}


def family_named(name: str) -> Family:
    """The family called ``name``; ``ValueError`` listing the families otherwise."""
    if name not in FAMILIES:
        raise ValueError(f"family {name!r} has no training entrypoint; choose one of {', '.join(FAMILIES)}.")
    return FAMILIES[name]
