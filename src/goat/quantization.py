"""A quantized base model (QLoRA, Dettmers et al. 2023): the bitsandbytes settings and weight access.

Adapters on a 4-bit or 8-bit base work as on a full-precision one because the frozen base weights
are never modified (:mod:`goat.layers`): W_res is a frozen low-rank path subtracted in the forward,
``y = Q(W0) x - B_res A_res x + sum_j w_j s_j B_j A_j x``, so Theorem 3.4 holds relative to the
quantized base. SVD priors (goat, pissa, milora) are computed from the dequantized weight.

    base = AutoModelForCausalLM.from_pretrained(name, quantization_config=goat.quantization.quantization_config("4bit"))
    model = goat.get_goat_model(base, config)
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BitsAndBytesConfig

QUANTIZATIONS = ("4bit", "8bit")


def quantization_config(kind: str | None, *, compute_dtype: torch.dtype = torch.bfloat16) -> BitsAndBytesConfig | None:
    """The ``BitsAndBytesConfig`` for ``--quantization kind``; None for no quantization.

    - ``4bit``: NF4 with double quantization of the scales, matmuls in ``compute_dtype`` (QLoRA's settings);
    - ``8bit``: LLM.int8() (Dettmers et al. 2022);
    - ``None``: the base stays in its own dtype.
    """
    if kind is None:
        return None
    if kind not in QUANTIZATIONS:
        raise ValueError(f"quantization={kind!r} is unknown; choose one of {', '.join(QUANTIZATIONS)} or leave it unset.")
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


def is_quantized(layer: nn.Module) -> bool:
    """True for a bitsandbytes 4-bit or 8-bit linear layer."""
    return type(layer.weight).__name__ in ("Params4bit", "Int8Params")


def dense_weight(layer: nn.Module) -> torch.Tensor:
    """The layer's weight ``[out, in]`` as a dense tensor: dequantized for a bitsandbytes layer
    (what its forward multiplies by), the weight itself otherwise."""
    if not is_quantized(layer):
        return layer.weight
    from peft.utils.integrations import dequantize_module_weight

    return dequantize_module_weight(layer)
