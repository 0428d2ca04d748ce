"""A section of docs/claims.md and the paired comparisons it judges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from goat.claims import stats
from goat.claims.arms import TunedArm
from goat.claims.ledger import Config
from goat.claims.scale import Effect


@dataclass
class Comparison:
    """One paired test ``a − b`` against the paper's effect δ; no verdict while pending or unbracketed."""

    a: str
    b: str
    result: stats.Paired | None
    effect: Effect
    arms: Sequence[TunedArm] = ()  # the tuned arms behind a and b (their brackets decide whether a verdict is allowed)
    complete: bool = True  # every run the comparison asked for has finished
    unit: str = "points"
    biased: bool = False  # a known fault biased what was measured (the section says which): no verdict

    @property
    def verdict(self) -> str:
        if not self.complete or any(not arm.complete for arm in self.arms):
            return stats.PENDING
        if self.biased:
            return stats.BIASED
        if any(not arm.bracketed for arm in self.arms):
            return stats.NOT_BRACKETED
        if self.result is None:
            return f"{stats.UNRESOLVED} (fewer than 2 paired seeds)"
        return stats.verdict_text(self.result.difference, self.effect.delta)

    def row(self) -> dict[str, Any]:
        d = self.result.difference if self.result else None
        mde = stats.minimum_detectable_effect(d.sd, d.n) if d else None
        return {
            "kind": "comparison",
            "a": self.a,
            "b": self.b,
            "n": d.n if d else 0,
            "difference": d.mean if d else None,
            "ci_low": d.low if d else None,
            "ci_high": d.high if d else None,
            "sd": d.sd if d else None,
            "p_value": self.result.p_value if self.result else None,
            "delta": self.effect.delta,
            "delta_source": self.effect.source,
            "mde_80": mde,
            "seeds_to_resolve": stats.seeds_to_resolve(d.sd, self.effect.delta) if d and self.effect.delta else None,
            "verdict": self.verdict,
        }


def comparison_table(comparisons: Sequence[Comparison]) -> str:
    """Markdown: each paired test with its difference, interval, p-value, the paper's δ, MDE and verdict."""
    lines = [
        "| comparison | paired seeds | difference (mean, 95% CI) | p (paired t) | paper's δ | MDE (80 % power) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        delta = c.effect.text()
        if c.result is None:
            lines.append(f"| {c.a} − {c.b} | <2 | – | – | {delta} | – | {c.verdict} |")
            continue
        d = c.result.difference
        mde = stats.minimum_detectable_effect(d.sd, d.n)
        mde_text = f"{mde:.2f}" if mde == mde else "–"
        lines.append(
            f"| {c.a} − {c.b} | {d.n} | {d.mean:+.2f} {c.unit} [{d.low:+.2f}, {d.high:+.2f}] | {c.result.p_value:.3g} | "
            f"{delta} | {mde_text} | {c.verdict} |"
        )
    return "\n".join(lines)


@dataclass
class Section:
    """A claim's part of docs/claims.md, its CSV rows and plots."""

    number: int
    title: str
    paper: str
    setup: str
    table: str
    comparisons: list[Comparison]
    verdict: str
    rule: str
    configs: list[Config] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    note: str = ""
    caption: str = "accuracy in %, mean ± half-width of the 95 % t interval over seeds; differences paired by seed"
