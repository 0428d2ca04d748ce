"""The adapter folder on disk: its two formats, the weights checksum and the base-model fingerprint.

- **MoE methods and ``full``** (no PEFT equivalent): ``adapter_config.json`` is GOAT's record
  (``peft_type: "GOAT"``, the :class:`GoatConfig`, the adapted layers, checksum, fingerprint) and
  ``adapter_model.safetensors`` holds tensors keyed as :meth:`GoatModel.adapter_state_dict` keys them.
- **Single-adapter methods** (lora, rslora, dora, pissa, milora, kasa): stock PEFT. ``adapter_config.json``
  is a ``LoraConfig`` and the tensors carry PEFT's names, so ``peft.PeftModel.from_pretrained`` and
  ``AutoPeftModelFor*`` load them. An SVD prior is exported as PEFT exports PiSSA
  (``path_initial_model_for_weight_conversion``): ``[A; A0]`` and ``[B, -B0]`` at rank 2r and
  alpha 2·alpha (rsLoRA: sqrt(2)·alpha), a plain LoRA on the *original* W0. GOAT's record sits beside
  it in ``goat_adapter.json``, because PEFT warns about unknown keys in ``adapter_config.json``.

**Checksum**: SHA-256 of the weights file's bytes. **Base fingerprint**: a hash over the base
model's parameter names and shapes, their dtypes, and 64 evenly spaced values of each tensor as
stored (modules trained with the adapter, ``modules_to_save``, are left out: their values are in
the adapter). It reads ~64 values per tensor, so it costs milliseconds even for a 7B model, and any
two different checkpoints of one architecture (base vs. chat, another fine-tune) differ in almost
every weight, hence in the sample. It is taken from W0: the frozen weights are never modified (the
MoE W_res is a forward path), and it is computed before KaSA's truncation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from goat.adapters.config import PEFT_METHODS, GoatConfig
from goat.adapters.layers import MoELinear
from goat.adapters.quantization import stored_weight
from goat.adapters.record import CONFIG_NAME, FORMAT_VERSION, GOAT_RECORD_NAME, WEIGHTS_NAME, read_record
from goat.adapters.single import SingleAdapterLayer, has_svd_prior, peft_scaling_args

if TYPE_CHECKING:
    from peft import LoraConfig

logger = logging.getLogger(__name__)

PEFT_PREFIX = "base_model.model."
SAMPLES_PER_TENSOR = 64
TASK_TYPES = {  # PEFT task type from the transformers class name, for AutoPeftModelFor*
    "ForCausalLM": "CAUSAL_LM",
    "ForSequenceClassification": "SEQ_CLS",
    "ForTokenClassification": "TOKEN_CLS",
    "ForQuestionAnswering": "QUESTION_ANS",
}


class AdapterIntegrityError(ValueError):
    """The adapter file or the base model is not what the adapter was saved with."""


def is_stock_peft(config: GoatConfig) -> bool:
    return config.method in PEFT_METHODS


# --------------------------------------------------------------------------- write
def write_adapter(
    directory: str | Path, record: dict[str, Any], tensors: dict[str, torch.Tensor], base_model: nn.Module
) -> dict[str, Any]:
    """Write an adapter folder; returns the record as written (with format version and checksum).

    ``record`` holds ``goat_config``, ``adapted_layers``, ``base_fingerprint`` and
    ``base_model_name_or_path``; ``tensors`` are keyed as ``GoatModel.adapter_state_dict`` keys them."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = GoatConfig.from_dict(record["goat_config"])
    record = {"format_version": FORMAT_VERSION, **record}
    weights = directory / WEIGHTS_NAME
    if not is_stock_peft(config):
        save_file(tensors, str(weights), metadata={"format": "pt"})
        record = {**record, "peft_type": "GOAT", "weights_sha256": file_sha256(weights)}
        (directory / CONFIG_NAME).write_text(json.dumps(record, indent=2))
        (directory / GOAT_RECORD_NAME).unlink(missing_ok=True)
        return record
    save_file(to_peft_tensors(tensors, config), str(weights), metadata={"format": "pt"})
    peft_config = stock_lora_config(config, record["adapted_layers"], record["base_model_name_or_path"], base_model)
    peft_config.save_pretrained(str(directory), auto_mapping_dict=_auto_mapping(peft_config, base_model))
    record = {**record, "weights_sha256": file_sha256(weights)}
    (directory / GOAT_RECORD_NAME).write_text(json.dumps(record, indent=2))
    return record


def stock_lora_config(
    config: GoatConfig, adapted_layers: list[str], base_name: str | None, base_model: nn.Module
) -> LoraConfig:
    """The ``LoraConfig`` stock PEFT needs to rebuild this adapter on the original base weights."""
    from peft import LoraConfig  # single adapters only: peft is loaded already

    alpha, use_rslora = peft_scaling_args(config)
    r = config.r
    if has_svd_prior(config):  # [A; A0], [B, -B0]: rank 2r at the same scaling (PEFT's PiSSA export)
        r, alpha = 2 * r, alpha * (2**0.5 if use_rslora else 2)
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(adapted_layers),
        use_rslora=use_rslora,
        use_dora=config.method == "dora",
        kasa_config=_kasa_config() if config.method == "kasa" else None,
        modules_to_save=list(config.modules_to_save) or None,
        bias="none",
        init_lora_weights=True,
        inference_mode=True,
        base_model_name_or_path=base_name,
        task_type=task_type(base_model),
    )


def _kasa_config() -> Any:
    from peft.tuners.lora import KasaConfig

    return KasaConfig()


def task_type(base_model: nn.Module) -> str | None:
    """PEFT's task type for a transformers model class (None: PEFT records the class instead)."""
    name = type(base_model).__name__
    return next((task for suffix, task in TASK_TYPES.items() if name.endswith(suffix)), None)


def _auto_mapping(peft_config: LoraConfig, base_model: nn.Module) -> dict[str, str] | None:
    """What PEFT writes for a model without a task type, so ``AutoPeftModel`` finds its class."""
    if peft_config.task_type is not None:
        return None
    return {"base_model_class": type(base_model).__name__, "parent_library": type(base_model).__module__}


def to_peft_tensors(tensors: dict[str, torch.Tensor], config: GoatConfig) -> dict[str, torch.Tensor]:
    """Our keys -> PEFT's (``base_model.model.`` prefix); an SVD prior folded in as ``[A; A0]``, ``[B, -B0]``."""
    out = {}
    for key, value in tensors.items():
        if ".initial_lora_" in key:
            continue
        for part, dim, sign in (("lora_A", 0, 1.0), ("lora_B", 1, -1.0)):
            initial = key.removesuffix(f".{part}.weight") + f".initial_{part}"
            if key.endswith(f".{part}.weight") and initial in tensors:
                value = torch.cat([value, sign * tensors[initial]], dim=dim)
        out[PEFT_PREFIX + key] = value.contiguous()
    return out


def from_peft_tensors(tensors: dict[str, torch.Tensor], config: GoatConfig) -> dict[str, torch.Tensor]:
    """Inverse of :func:`to_peft_tensors` (exact: only a concatenation and a sign flip)."""
    out = {key.removeprefix(PEFT_PREFIX): value for key, value in tensors.items()}
    if not has_svd_prior(config):
        return out
    r = config.r
    for key in [k for k in out if k.endswith(".lora_A.weight")]:
        layer = key[: -len(".lora_A.weight")]
        A, B = out[key], out[f"{layer}.lora_B.weight"]
        out[key], out[f"{layer}.initial_lora_A"] = A[:r].clone(), A[r:].clone()
        out[f"{layer}.lora_B.weight"], out[f"{layer}.initial_lora_B"] = B[:, :r].clone(), (-B[:, r:]).clone()
    return out


# ---------------------------------------------------------------------------- read
def read_adapter(directory: str | Path, *, strict: bool = True) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A saved adapter's record (``goat_config``, ``adapted_layers``, ``base_fingerprint``, ...) and its
    tensors keyed as ``GoatModel.adapter_state_dict`` keys them, in either format.

    The weights file is checked against the recorded SHA-256 first: a mismatch raises
    :class:`AdapterIntegrityError` (``strict=False``: a warning).
    """
    directory = Path(directory)
    record = read_record(directory)
    stock = (directory / GOAT_RECORD_NAME).is_file()
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{directory} has no {WEIGHTS_NAME}; the adapter folder is incomplete.")
    actual = file_sha256(weights)
    if actual != record["weights_sha256"]:
        _fail_or_warn(
            f"{weights} is corrupted or was replaced: its SHA-256 is {actual[:16]}…, the adapter recorded "
            f"{record['weights_sha256'][:16]}… when it was saved.",
            strict,
        )
    tensors = load_file(str(weights))
    if stock:
        tensors = from_peft_tensors(tensors, GoatConfig.from_dict(record["goat_config"]))
    return record, tensors


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fail_or_warn(message: str, strict: bool) -> None:
    if strict:
        raise AdapterIntegrityError(f"{message} Pass strict=False to load it anyway.")
    logger.warning("%s Loading anyway (strict=False).", message)


# ------------------------------------------------------------------- fingerprint
def base_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """The base model's own parameters as stored, under their original names, also once adapters are
    attached (an adapted layer contributes its ``base_layer``'s parameters under its own name)."""
    seen: set[int] = set()

    def walk(module: nn.Module, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
        if isinstance(module, (MoELinear, SingleAdapterLayer)):
            yield from walk(module.base_layer, prefix)
            return
        for name, param in module.named_parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                yield prefix + name, stored_weight(module) if name == "weight" else param
        for name, child in module.named_children():
            yield from walk(child, f"{prefix}{name}.")

    yield from walk(model, "")


def base_fingerprint(model: nn.Module, exclude_modules: list[str]) -> dict[str, Any] | None:
    """Fingerprint of the base weights (module docstring); None when the weights are not all
    materialised here (meta device, or partitioned by DeepSpeed ZeRO-3)."""
    structure, values = hashlib.sha256(), hashlib.sha256()
    dtypes: Counter[str] = Counter()
    count = total = 0
    for name, param in base_tensors(model):
        if any(f".{module}." in f".{name}" for module in exclude_modules):
            continue
        if param.is_meta or (param.numel() == 0 and hasattr(param, "ds_numel")):
            return None
        flat = param.detach().reshape(-1)
        index = torch.linspace(0, flat.numel() - 1, min(SAMPLES_PER_TENSOR, flat.numel()), device=flat.device)
        sample = (
            flat[index.long().clamp_(max=flat.numel() - 1)].cpu().contiguous()
        )  # float32 linspace can round past the end
        structure.update(f"{name}:{tuple(param.shape)}\n".encode())
        values.update(sample.view(torch.uint8).numpy().tobytes())
        dtypes[str(param.dtype).removeprefix("torch.")] += 1
        count += 1
        total += param.numel()
    return {
        "scheme": f"sha256 of names+shapes, and of {SAMPLES_PER_TENSOR} evenly spaced stored values per tensor",
        "structure": structure.hexdigest()[:16],
        "values": values.hexdigest()[:16],
        "tensors": count,
        "parameters": total,
        "dtypes": dict(sorted(dtypes.items())),
    }


def fingerprint_difference(saved: dict[str, Any] | None, current: dict[str, Any] | None) -> str | None:
    """What differs between the base an adapter was trained on and this one, in words; None if nothing
    (or if either fingerprint is unavailable)."""
    if saved is None or current is None:
        return None
    differences = []
    if saved["dtypes"] != current["dtypes"]:
        differences.append(
            f"its weights are stored as {current['dtypes']}, the adapter was trained on {saved['dtypes']} "
            "(load the base in that dtype/quantization)"
        )
    if saved["structure"] != current["structure"]:
        differences.append(
            f"its weights have other names or shapes ({current['tensors']} tensors, {current['parameters']:,} "
            f"values; the adapter's base had {saved['tensors']} tensors, {saved['parameters']:,} values)"
        )
    if not differences and saved["values"] != current["values"]:
        differences.append(
            "its weights have the same names, shapes and dtypes but other values (another checkpoint of this architecture?)"
        )
    return "; ".join(differences) or None


def check_base(
    saved: dict[str, Any] | None, current: dict[str, Any] | None, directory: str | Path, strict: bool
) -> None:
    """Raise (``strict``) or warn when the base model is not the one the adapter was trained on."""
    difference = fingerprint_difference(saved, current)
    if difference is not None:
        _fail_or_warn(f"The adapter in {directory} was trained on another base model: {difference}.", strict)
