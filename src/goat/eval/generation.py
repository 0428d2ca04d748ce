"""Batched generation for evaluation: greedy by default, left padding, new text only."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, Optional, Sequence

import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

# Sampling knobs a checkpoint's generation_config.json may set (Llama-2 sets temperature/top_p);
# cleared for greedy/beam decoding so the decoding really is deterministic and warning-free.
_SAMPLING_KEYS = ("temperature", "top_p", "top_k")


@contextlib.contextmanager
def left_padding(tokenizer: Any, truncation_side: str = "left") -> Iterator[Any]:
    """Temporarily set left padding (and truncation side), with pad = eos when no pad token exists."""
    saved = (tokenizer.padding_side, tokenizer.truncation_side, tokenizer.pad_token)
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = truncation_side
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad token nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = saved[0], saved[1]
        if saved[2] is None:
            tokenizer.pad_token = None


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - parameterless model
        return torch.device("cpu")


def _length_order(tokenizer: Any, prompts: Sequence[str]) -> list[int]:
    """Indices of ``prompts`` from longest to shortest, so each batch pads little."""
    lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]
    return sorted(range(len(prompts)), key=lambda i: -lengths[i])


def generate_batched(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    num_beams: int = 1,
    do_sample: bool = False,
    max_prompt_length: Optional[int] = None,
    progress: bool = True,
    **generate_kwargs: Any,
) -> list[str]:
    """Generate a continuation for every prompt; returns only the new text, in prompt order.

    Greedy decoding by default (``do_sample=False``, ``num_beams=1``); sampling knobs inherited
    from the checkpoint's generation config are cleared unless ``do_sample=True``. Prompts are
    left-padded (pad = eos if the tokenizer has no pad token; the tokenizer's settings are restored
    afterwards) and, when ``max_prompt_length`` is set, truncated from the left so the end of the
    prompt ("### Response:") survives. Prompts are grouped longest-first to limit padding. Runs in
    ``model.eval()`` under ``torch.no_grad()``; extra keyword arguments go to ``model.generate``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not prompts:
        return []
    model.eval()
    device = _model_device(model)
    outputs: list[Optional[str]] = [None] * len(prompts)
    decoding: dict[str, Any] = {"do_sample": do_sample, "num_beams": num_beams, "max_new_tokens": max_new_tokens}
    if not do_sample:
        decoding.update({key: None for key in _SAMPLING_KEYS})
    decoding.update(generate_kwargs)
    with left_padding(tokenizer), torch.no_grad():
        order = _length_order(tokenizer, prompts)
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        for batch in tqdm(batches, desc="generate", disable=not progress):
            encoded = tokenizer(
                [prompts[i] for i in batch],
                return_tensors="pt",
                padding=True,
                truncation=max_prompt_length is not None,
                max_length=max_prompt_length,
            ).to(device)
            generated = model.generate(
                input_ids=encoded["input_ids"],
                attention_mask=encoded["attention_mask"],
                pad_token_id=tokenizer.pad_token_id,
                **decoding,
            )
            new_tokens = generated[:, encoded["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for index, text in zip(batch, texts):
                outputs[index] = text
    return [text if text is not None else "" for text in outputs]
