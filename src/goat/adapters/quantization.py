"""A quantized base model (QLoRA, Dettmers et al. 2023): the bitsandbytes settings and weight access.

Adapters on a 4-bit or 8-bit base work as on a full-precision one because the frozen base weights
are never modified (:mod:`goat.adapters.layers`): W_res is a frozen low-rank path subtracted in the forward,
``y = Q(W0) x - B_res A_res x + sum_j w_j s_j B_j A_j x``, so Theorem 3.4 holds relative to the
quantized base. SVD priors (goat, pissa, milora) are computed from the dequantized weight.

    base = AutoModelForCausalLM.from_pretrained(name, quantization_config=goat.quantization.quantization_config("4bit"))
    model = goat.get_goat_model(base, config)
"""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import BitsAndBytesConfig

QUANTIZATIONS = ("4bit", "8bit")


def quantization_config(kind: str | None, *, compute_dtype: torch.dtype = torch.bfloat16) -> BitsAndBytesConfig | None:
    """The ``BitsAndBytesConfig`` for ``--quantization kind``; None for no quantization.

    - ``4bit``: NF4 with double quantization of the scales, matmuls in ``compute_dtype`` (QLoRA's settings);
    - ``8bit``: LLM.int8() (Dettmers et al. 2022);
    - ``None``: the base stays in its own dtype.
    """
    from transformers import BitsAndBytesConfig

    if kind is None:
        return None
    if kind not in QUANTIZATIONS:
        raise ValueError(
            f"quantization={kind!r} is unknown; choose one of {', '.join(QUANTIZATIONS)} or leave it unset."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"quantization={kind!r} needs bitsandbytes: pip install bitsandbytes==0.50.2 (see requirements.txt)."
        ) from error
    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def loading_kwargs(kind: str | None, *, bf16: bool) -> dict[str, object]:
    """``from_pretrained`` keyword arguments that load a base quantized (nothing when ``kind`` is None).

    On a GPU the quantized model is placed on this process's device at load time (``LOCAL_RANK``):
    the Trainer does not move a quantized model.
    """
    config = quantization_config(kind, compute_dtype=torch.bfloat16 if bf16 else torch.float32)
    if config is None:
        return {}
    kwargs: dict[str, object] = {"quantization_config": config}
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return kwargs


def keep_training_layout(model: nn.Module) -> None:
    """Keep every 4-bit weight of ``model`` in the layout that backward runs through.

    bitsandbytes 0.50 repacks a 4-bit weight for its AVX512-BF16 CPU kernel on the first eval-mode
    forward without gradients, and backward through a repacked weight returns no input gradient: a
    QLoRA run trained only its last layers after its first evaluation. This turns the repacking off
    (CPU inference of 4-bit layers then runs bitsandbytes' standard kernel) and undoes one already done.
    """
    for module in model.modules():
        if not hasattr(module, "support_avx512bf16_for_cpu"):
            continue
        module.support_avx512bf16_for_cpu = False
        weight = module.weight
        if getattr(getattr(weight, "quant_state", None), "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, weight.quant_state)


def is_quantized(layer: nn.Module) -> bool:
    """True for a bitsandbytes 4-bit or 8-bit linear layer."""
    return type(getattr(layer, "weight", None)).__name__ in ("Params4bit", "Int8Params")


def stored_weight(layer: nn.Module) -> torch.Tensor:
    """The weight as stored, in a device-independent layout. bitsandbytes repacks a 4-bit weight for
    its CPU kernel on the first eval forward without grad (AVX512-BF16 CPUs only); this returns the
    standard layout either way, from a copy: the layer is not changed."""
    weight = layer.weight
    if type(weight).__name__ == "Params4bit" and getattr(weight.quant_state, "packing_format_for_cpu", False):
        return _unpacked_4bit(weight)[0]
    return weight.data


def _unpacked_4bit(weight: torch.Tensor) -> tuple[torch.Tensor, object]:
    """(standard-layout data, its quant state) of a 4-bit weight, computed on copies."""
    state = weight.quant_state
    if not getattr(state, "packing_format_for_cpu", False):
        return weight.data, state
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

    return _convert_weight_packed_for_cpu_inverse(weight.data.clone(), copy.deepcopy(state))


def dense_weight(layer: nn.Module) -> torch.Tensor:
    """The layer's weight ``[out, in]`` as a dense tensor: dequantized for a bitsandbytes layer
    (NF4/FP4 blocks times their scales; int8 rows times absmax/127), the weight itself otherwise.
    Read-only: the layer and its quantization state are left as they were."""
    weight = layer.weight
    kind = type(weight).__name__
    if kind == "Params4bit":
        import bitsandbytes as bnb

        return bnb.functional.dequantize_4bit(*_unpacked_4bit(weight))
    if kind == "Int8Params":
        import bitsandbytes as bnb

        scales = weight.SCB if weight.SCB is not None else layer.state.SCB  # the first forward moves them
        return bnb.functional.int8_vectorwise_dequant(weight.data, scales)
    return weight
