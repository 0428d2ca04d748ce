"""The base model as a reference model: the same weights with the adapters disabled, no second copy.

Preference trainers (TRL's ``DPOTrainer``, ``KTOTrainer``) compare the policy with a frozen reference.
For a PEFT model TRL disables the adapter to get one; it recognises only ``peft.PeftModel`` for that,
so a GOAT model passes :func:`disabled_adapter_reference` as ``ref_model``: every forward of it runs
the wrapped model inside :meth:`GoatModel.disable_adapter`, which is exactly the base model.
"""

from __future__ import annotations

from typing import Any

from torch import nn


class _Disabled(nn.Module):
    """Runs ``module`` with ``goat_model``'s adapters disabled (neither is registered: no weights are copied or moved)."""

    def __init__(self, goat_model: nn.Module, module: nn.Module):
        super().__init__()
        object.__setattr__(self, "_goat_model", goat_model)
        object.__setattr__(self, "_module", module)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("output_router_logits", None)  # the base has no routers
        with self._goat_model.disable_adapter():
            return self._module(*args, **kwargs)


class DisabledAdapterReference(_Disabled):
    """A transformers-like model (``config``, ``base_model``, ``get_output_embeddings``, ``forward``) that is
    ``goat_model`` with its adapters disabled; TRL's fused LM head patches it as it patches any model."""

    def __init__(self, goat_model: nn.Module):
        super().__init__(goat_model, goat_model.get_base_model())
        object.__setattr__(self, "_backbone", _Disabled(goat_model, goat_model.base_model))

    @property
    def config(self) -> Any:
        return self._goat_model.get_base_model().config

    @property
    def base_model(self) -> nn.Module:
        return self._backbone

    def get_output_embeddings(self) -> nn.Module:
        return self._goat_model.get_base_model().get_output_embeddings()

    @property
    def device(self) -> Any:
        return self._goat_model.get_base_model().device

    @property
    def dtype(self) -> Any:
        return self._goat_model.get_base_model().dtype


def disabled_adapter_reference(goat_model: nn.Module) -> DisabledAdapterReference:
    """``ref_model`` for TRL's preference trainers: ``goat_model`` with its adapters disabled (the base model)."""
    return DisabledAdapterReference(goat_model)
