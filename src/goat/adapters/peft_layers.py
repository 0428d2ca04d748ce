"""Single-adapter baselines over peft: lora, rslora, dora, pissa, milora, kasa.

peft implements LoRA (Hu et al.), rsLoRA (use_rslora), DoRA (use_dora), PiSSA
(init_lora_weights="pissa") and KaSA (kasa_config); we configure it and only add what peft lacks:
MiLoRA (PiSSA on the *minor* singular triplets), the authors' shrunk PiSSA/MiLoRA priors, and a
frozen base. Layers are peft's own LoRA layers (plain or bitsandbytes) extended by
:class:`goat.adapters.single.SingleAdapterLayer`. This is the one module of the library that imports
peft: it loads when a model first gets a single adapter. KaSA truncates the base weight itself
(its paper's design), the one exception to a frozen W0.
"""

from __future__ import annotations

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import KasaConfig
from peft.tuners.lora import Linear as PeftLoraLinear
from torch import nn

from goat.adapters.config import ADAPTER, GoatConfig
from goat.adapters.quantization import is_quantized
from goat.adapters.single import SingleAdapterLayer, has_svd_prior, peft_scaling_args, svd_prior_init


class SingleLoraLinear(SingleAdapterLayer, PeftLoraLinear):
    """peft's LoRA linear with :class:`SingleAdapterLayer`."""


def _quantized_layer_classes() -> dict[type, type]:
    """peft's bitsandbytes LoRA layers with :class:`SingleAdapterLayer`, keyed by the bnb layer type."""
    try:
        import bitsandbytes as bnb
        from peft.tuners.lora.bnb import Linear4bit, Linear8bitLt
    except ImportError:
        return {}

    class SingleLoraLinear4bit(SingleAdapterLayer, Linear4bit):
        """peft's 4-bit LoRA linear with :class:`SingleAdapterLayer`."""

    class SingleLoraLinear8bit(SingleAdapterLayer, Linear8bitLt):
        """peft's 8-bit LoRA linear with :class:`SingleAdapterLayer`."""

    return {bnb.nn.Linear4bit: SingleLoraLinear4bit, bnb.nn.Linear8bitLt: SingleLoraLinear8bit}


QUANTIZED_LAYER_CLASSES = _quantized_layer_classes()


def uses_peft_pissa(config: GoatConfig, quantized: bool) -> bool:
    """PiSSA as peft initialises it (top r triplets); peft cannot run it on a quantized weight."""
    return config.method == "pissa" and not config.authors_svd_baselines and config.segment is None and not quantized


def lora_config_for(config: GoatConfig, target_names: list[str], *, peft_pissa: bool = False) -> LoraConfig:
    """The peft ``LoraConfig`` that implements ``config.method`` on exactly ``target_names``."""
    alpha, use_rslora = peft_scaling_args(config)
    lora_config = LoraConfig(
        r=config.r,
        lora_alpha=alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target_names,
        use_rslora=use_rslora,
        use_dora=config.method == "dora",
        init_lora_weights="pissa" if peft_pissa else True,
        kasa_config=KasaConfig() if config.method == "kasa" else None,
        bias="none",
    )
    lora_config._register_custom_module({**QUANTIZED_LAYER_CLASSES, nn.Linear: SingleLoraLinear})
    return lora_config


def _base_linear(module: nn.Module) -> nn.Module:
    return module.get_base_layer() if isinstance(module, SingleAdapterLayer) else module


def inject_single_adapter(
    model: nn.Module,
    config: GoatConfig,
    target_names: list[str],
    *,
    init_weights: bool = True,
    adapter_name: str = ADAPTER,
) -> list[SingleAdapterLayer]:
    """Add adapter ``adapter_name`` to every target with a peft LoRA layer configured for ``config.method``.

    With ``init_weights=False`` no SVD prior is computed (the weights are about to be loaded). The
    base weights are left as they were: peft's PiSSA init subtracts ``s B0 A0`` from W0 by assigning a
    new tensor, and the original one is put back.
    """
    bases = {name: _base_linear(model.get_submodule(name)) for name in target_names}
    quantized = any(is_quantized(base) for base in bases.values())
    if quantized and config.method == "kasa":
        raise ValueError(
            "method='kasa' truncates the base weights by SVD, which a 4-bit/8-bit base cannot hold; "
            "use lora, rslora, dora, pissa or milora, or an unquantized base."
        )
    peft_pissa = init_weights and uses_peft_pissa(config, quantized)
    originals = {name: base.weight.data for name, base in bases.items()} if peft_pissa else {}
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(config.seed)  # peft draws lora_A from the global RNG
    try:
        inject_adapter_in_model(lora_config_for(config, target_names, peft_pissa=peft_pissa), model, adapter_name)
    finally:
        torch.random.set_rng_state(torch_state)
        model.__dict__.pop("peft_config", None)  # peft's tuner leaves its config on the model; GoatModel keeps ours
    layers = [model.get_submodule(name) for name in target_names]
    if not has_svd_prior(config):
        return layers
    generator = torch.Generator().manual_seed(config.seed)
    for name, layer in zip(target_names, layers):
        if peft_pissa:
            layer.set_initial_factors(
                adapter_name, layer.lora_A[adapter_name].weight, layer.lora_B[adapter_name].weight
            )
            layer.get_base_layer().weight.data = originals[name]
        elif init_weights:
            svd_prior_init(layer, config, generator, adapter_name)
        else:  # placeholders with the final shapes, filled by a load
            A, B = layer.lora_A[adapter_name].weight, layer.lora_B[adapter_name].weight
            layer.set_initial_factors(adapter_name, torch.zeros_like(A), torch.zeros_like(B))
    return layers
