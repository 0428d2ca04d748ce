"""`GoatConfig`: every knob of the adapter family, validated in one place.

One ``method`` switch selects the adapter; the same injection code serves all of them.
Each field's ``help`` metadata is the documentation shown by the CLI.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from goat.adapters.record import read_record

ADAPTER = "default"  # the name of an adapter nobody named, as in PEFT

# GOAT and the LoRA-MoE baselines: implemented here (layers.py).
MOE_METHODS = ("goat", "goat_plus", "molora", "hydralora", "adamole", "full_moe")
# Single-adapter baselines: peft implements them; ours wraps peft (baselines.py).
PEFT_METHODS = ("lora", "rslora", "dora", "pissa", "milora", "kasa")
METHODS = MOE_METHODS + PEFT_METHODS + ("full",)

# Paper App. E.3 / Table 5 ablation inits for goat: Ours (O), Principal (P), Minor (M), Random (R),
# plus `zero` (kaiming A, zero B: no SVD prior).
INITS = ("spread", "principal", "minor", "random", "zero")
SVD_INITS = ("spread", "principal", "minor", "random")
SCALING_RULES = ("theory", "alpha", "rs")

# What `scaling=None` resolves to for each method.
DEFAULT_SCALING = {
    "goat": "theory",  # paper Thm 3.5; the authors' scripts ran "alpha" (see README)
    "goat_plus": "theory",
    "molora": "alpha",
    "hydralora": "alpha",
    "adamole": "alpha",
    "full_moe": "alpha",  # unused: full-rank experts carry no scaling
    "lora": "alpha",
    "rslora": "rs",
    "dora": "alpha",
    "pissa": "alpha",
    "milora": "alpha",
    "kasa": "alpha",
    "full": "alpha",
}

Scaling = Union[str, float]


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


class ConfigError(ValueError):
    """A :class:`GoatConfig` value that cannot work. ``setting`` names the field (so that a caller can
    say where it was set); the message gives the value and the fix."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting


@dataclass
class GoatConfig:
    """Configuration of one adapter method applied to every target ``nn.Linear``.

    Ranks: ``r`` is the *total* rank of a layer's adapter; a MoE expert has rank ``d = r / E``
    (paper eq. 12). The scaling rules use the rank of one expert, ``d`` (``d = r`` for
    single-adapter methods): Theorem 3.5 aligns each expert's gradient separately, and the
    authors' code evaluates it with the per-expert rank.
    """

    method: str = _help(f"Adapter method, one of {METHODS}.", default="goat")
    r: int = _help("Total adapter rank per layer (sum over experts).", default=8)
    lora_alpha: float = _help("LoRA alpha, used by the 'alpha' and 'rs' scaling rules.", default=16.0)
    num_experts: int = _help("Number of experts E (MoE methods).", default=8)
    top_k: int = _help("Experts activated per token k (MoE methods; eq. 10).", default=2)
    rho: float = _help("Prior shrink rho of eq. 19 (paper: 10).", default=10.0)
    eta: float = _help("Full-FT / LoRA learning-rate ratio eta of Thm 3.5 (paper: 1).", default=1.0)
    scaling: Scaling | None = _help(
        "Scaling s: 'theory' = sqrt(3*n*eta/d) (Thm 3.5, n = in_features, d = expert rank); "
        "'alpha' = alpha/d (LoRA; what the authors' GOAT scripts ran); 'rs' = alpha/sqrt(d) "
        "(rsLoRA); or a number. None picks the method's default (DEFAULT_SCALING).",
        default=None,
    )
    init: str = _help(f"goat expert init, one of {INITS} (App. E.3).", default="spread")
    segment: int | str | None = _help(
        "pissa only: which singular triplets initialise the single LoRA instead of the top r. "
        "An integer i takes the i-th rank-r block [i*r, (i+1)*r) of the spectrum (Fig. 1, eq. 2-3: "
        "0 = PiSSA's block, h/r - 1 = MiLoRA's); 'spread' takes num_experts slices of width "
        "r/num_experts starting at j*h/num_experts, i.e. GOAT's O experts (eq. 13) as one LoRA "
        "(Table 5, single-LoRA row). None: PiSSA's top r.",
        default=None,
    )
    lora_dropout: float = _help("Dropout on the adapter input.", default=0.05)
    target_modules: list[str] | str | None = _help(
        "Names (suffix match, as in peft) or one regex (full match) of the nn.Linear layers to "
        "adapt. None adapts every nn.Linear outside modules_to_save/exclude_modules.",
        default=None,
    )
    exclude_modules: list[str] = _help("Names never adapted, even if targeted.", default_factory=list)
    modules_to_save: list[str] = _help(
        "Modules trained in full and never adapted (e.g. a classifier head).", default_factory=list
    )
    aux_loss_coef: float = _help(
        "Balance-loss coefficient (App. B, eq. 26-28; the authors' rebuttal: 1e-3): the adapted model's "
        "outputs.loss in training mode is task loss + aux_loss_coef * L_b (goat.adapters.aux_loss); 0 turns it off.",
        default=1e-3,
    )
    seed: int = _help(
        "Seed of the adapter init (router, random (R) segments); goat.train also seeds data order and dropout with it.",
        default=0,
    )
    authors_svd_baselines: bool = _help(
        "pissa/milora as the authors' code ran them: the prior is shrunk by rho and PiSSA uses "
        "s = 2, instead of the original papers' full principal/minor component.",
        default=False,
    )

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, tuple):
            self.target_modules = list(self.target_modules)
        self.validate()

    # ------------------------------------------------------------------ derived
    @property
    def is_moe(self) -> bool:
        return self.method in MOE_METHODS

    @property
    def experts(self) -> int:
        """E for MoE methods, 1 for single-adapter methods."""
        return self.num_experts if self.is_moe else 1

    @property
    def expert_rank(self) -> int:
        """d = r / E (eq. 12); r for single-adapter methods."""
        return self.r // self.experts

    @property
    def resolved_scaling(self) -> Scaling:
        return DEFAULT_SCALING[self.method] if self.scaling is None else self.scaling

    # --------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the offending field and the fix."""
        if self.method not in METHODS:
            raise ConfigError("method", f"method={self.method!r} is unknown; choose one of {', '.join(METHODS)}.")
        if self.init not in INITS:
            raise ConfigError("init", f"init={self.init!r} is unknown; choose one of {', '.join(INITS)}.")
        if self.init != "spread" and self.method not in ("goat", "goat_plus"):
            raise ConfigError(
                "init",
                f"init={self.init!r} only applies to method='goat'/'goat_plus'; "
                f"leave init='spread' for method={self.method!r}.",
            )
        if (
            isinstance(self.aux_loss_coef, bool)
            or not isinstance(self.aux_loss_coef, (int, float))
            or not self.aux_loss_coef >= 0
        ):
            raise ConfigError(
                "aux_loss_coef",
                f"aux_loss_coef={self.aux_loss_coef!r} must be a number >= 0 (paper: 1e-3; 0 turns the balance loss off).",
            )
        if self.segment is not None:
            self._validate_segment()
        if self.method == "full":
            return
        if self.r < 1:
            raise ConfigError("r", f"r={self.r} must be a positive integer.")
        if self.is_moe:
            if self.num_experts < 1:
                raise ConfigError("num_experts", f"num_experts={self.num_experts} must be >= 1.")
            if not 1 <= self.top_k <= self.num_experts:
                raise ConfigError(
                    "top_k",
                    f"top_k={self.top_k} must be between 1 and num_experts={self.num_experts}; "
                    "lower top_k or raise num_experts.",
                )
            if self.method != "full_moe" and self.r % self.num_experts:
                raise ConfigError(
                    "r",
                    f"r={self.r} is not divisible by num_experts={self.num_experts}; each expert "
                    f"has rank r/E, so pick r as a multiple of {self.num_experts}.",
                )
        if self.rho <= 0:
            raise ConfigError("rho", f"rho={self.rho} must be > 0 (paper: 10).")
        if self.eta <= 0:
            raise ConfigError("eta", f"eta={self.eta} must be > 0 (paper: 1).")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError("lora_dropout", f"lora_dropout={self.lora_dropout} must be in [0, 1).")
        s = self.resolved_scaling
        if isinstance(s, str):
            if s not in SCALING_RULES:
                raise ConfigError(
                    "scaling", f"scaling={s!r} is unknown; use one of {', '.join(SCALING_RULES)} or a number."
                )
            if s == "theory" and self.method in PEFT_METHODS:
                raise ConfigError(
                    "scaling",
                    f"scaling='theory' needs per-layer in_features and is offered for MoE methods "
                    f"only; for method={self.method!r} use 'alpha', 'rs' or a number.",
                )
        elif isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0:
            raise ConfigError("scaling", f"scaling={s!r} must be 'theory', 'alpha', 'rs' or a positive number.")
        if self.method == "kasa" and s == "rs":
            raise ConfigError("scaling", "scaling='rs' is not supported for method='kasa'; use 'alpha' or a number.")

    def _validate_segment(self) -> None:
        if self.method != "pissa":
            raise ConfigError(
                "segment",
                f"segment={self.segment!r} only applies to method='pissa' (a single SVD-initialised LoRA); "
                f"leave segment=None for method={self.method!r}.",
            )
        if self.segment == "spread":
            if self.num_experts < 1 or self.r % self.num_experts:
                raise ConfigError(
                    "segment",
                    f"segment='spread' splits r={self.r} into num_experts={self.num_experts} slices; "
                    f"pick num_experts >= 1 dividing r.",
                )
            return
        if isinstance(self.segment, bool) or not isinstance(self.segment, int) or self.segment < 0:
            raise ConfigError("segment", f"segment={self.segment!r} must be a block index >= 0, 'spread' or None.")

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GoatConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GoatConfig fields {unknown}; known fields: {sorted(known)}.")
        return cls(**data)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> GoatConfig:
        """The config of an adapter folder written by ``save_pretrained`` (either format), as PEFT's
        ``PeftConfig.from_pretrained``."""
        return cls.from_dict(read_record(directory)["goat_config"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
