"""CLIP ViT image classifiers for the paper's Table 1 (CLIP ViT-B/32, seven datasets).

Two backbones, one output contract: ``model(pixel_values=..., labels=None)`` returns a
``transformers.modeling_outputs.ImageClassifierOutput`` with ``.logits`` ``[B, C]`` and, when
``labels`` are given, ``.loss`` (mean cross-entropy), so the HF ``Trainer`` can train either.

* :func:`build_hf_clip_classifier` (what the authors ran, reference section 4.1): transformers'
  ``CLIPForImageClassification`` = ``CLIPVisionModel`` + a new trainable ``nn.Linear`` head named
  ``classifier`` on the mean of the last-layer patch tokens (CLS excluded, before
  ``post_layernorm``). Adapter targets: ``q_proj, k_proj, v_proj, out_proj, fc1, fc2`` of every
  encoder block (12 x 6 = 72 layers for ViT-B/32).
* :func:`create_open_clip` then :func:`open_clip_classifier`: open_clip's visual tower, with each
  packed ``nn.MultiheadAttention`` replaced by the numerically equivalent
  :class:`SplitQKVAttention` (separate ``q_proj/k_proj/v_proj/out_proj`` linears) so adapters can
  target q, k and v separately, plus either a trainable linear head or a frozen zero-shot head
  (text-tower class embeddings), both named ``classifier``. Adapter targets: ``q_proj, k_proj,
  v_proj, out_proj, c_fc, c_proj`` of every residual block.

:func:`smoke_clip_vision_config` and :func:`smoke_open_clip` are tiny random stand-ins of either
backbone (64 wide, 2 layers, 32 px) for tests and the offline smoke run.

For the adapter injector: :data:`TARGET_SUFFIXES` names the block linears to adapt per backbone;
:data:`HEAD_MODULE_NAMES` is the head, never adapted (trained in full when it is linear).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # imported lazily at run time
    from transformers import CLIPConfig, CLIPForImageClassification, CLIPVisionConfig
    from transformers.modeling_outputs import ImageClassifierOutput

DEFAULT_HF_CLIP = "openai/clip-vit-base-patch32"
HEAD_MODULE_NAMES: tuple[str, ...] = ("classifier",)
# Adapter targets per backbone (suffix match): q, k, v, attention output and both MLP linears of
# every block (App. F.1 counts q, k, v, o, fc1, fc2 for ViT-base; the authors adapt these 72 layers).
TARGET_SUFFIXES: dict[str, tuple[str, ...]] = {
    "hf": ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
    "open_clip": ("q_proj", "k_proj", "v_proj", "out_proj", "c_fc", "c_proj"),
}
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)
HEADS: tuple[str, ...] = ("linear", "zeroshot")


# ------------------------------------------------------------------------- HF transformers


def smoke_clip_vision_config(**overrides: Any) -> CLIPVisionConfig:
    """A tiny ``CLIPVisionConfig`` for tests and smoke runs (hidden 64, 2 layers, 4 heads, 32px, patch 8)."""
    from transformers import CLIPVisionConfig

    kwargs: dict[str, Any] = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=32,
    )
    kwargs.update(overrides)
    return CLIPVisionConfig(**kwargs)


def _label_maps(num_classes: int, class_names: Sequence[str] | None) -> dict[str, dict]:
    names = list(class_names) if class_names is not None else [f"LABEL_{i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} entries but num_classes={num_classes}.")
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def build_hf_clip_classifier(
    model_id_or_config: str | os.PathLike | CLIPVisionConfig | CLIPConfig = DEFAULT_HF_CLIP,
    num_classes: int | None = None,
    *,
    class_names: Sequence[str] | None = None,
    **from_pretrained_kwargs: Any,
) -> CLIPForImageClassification:
    """CLIP vision tower + new linear ``classifier`` on mean patch tokens (reference section 4.1).

    ``model_id_or_config`` is a hub id / local checkpoint directory (a ``CLIPModel`` checkpoint such
    as ``openai/clip-vit-base-patch32``; its vision weights are loaded, the text tower is dropped)
    or a ``CLIPVisionConfig``/``CLIPConfig`` for a randomly initialised model (tests, smoke runs).
    The head is newly initialised (normal, std ``hidden**-0.5``; bias 0) and trainable. Returns a
    ``CLIPForImageClassification`` (with ``accepts_loss_kwargs = False``, see
    :func:`_mean_loss_for_trainer`): ``model(pixel_values, labels=None)`` gives an
    ``ImageClassifierOutput`` with ``.logits [B, num_classes]`` and ``.loss`` (cross-entropy) when
    integer ``labels`` are passed. ``num_classes`` defaults to ``len(class_names)``; extra keyword
    arguments go to ``from_pretrained`` (e.g. ``cache_dir``, ``revision``).
    """
    from transformers import CLIPConfig, CLIPForImageClassification, CLIPVisionConfig

    if num_classes is None:
        if class_names is None:
            raise ValueError("pass num_classes or class_names.")
        num_classes = len(class_names)
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes} must be >= 1.")
    maps = _label_maps(num_classes, class_names)
    source = model_id_or_config
    if isinstance(source, (CLIPVisionConfig, CLIPConfig)):
        vision = source if isinstance(source, CLIPVisionConfig) else source.vision_config
        config = CLIPConfig(vision_config=vision.to_dict(), num_labels=num_classes, **maps)
        return _mean_loss_for_trainer(CLIPForImageClassification(config))
    if not isinstance(source, str) and not hasattr(source, "__fspath__"):
        raise TypeError(
            f"model_id_or_config must be a hub id, a path or a CLIP(Vision)Config, got {type(source).__name__}."
        )
    model = CLIPForImageClassification.from_pretrained(
        os.fspath(source), num_labels=num_classes, **maps, **from_pretrained_kwargs
    )
    return _mean_loss_for_trainer(model)


def _mean_loss_for_trainer(model: nn.Module) -> nn.Module:
    """Mark a model whose loss is a per-batch mean so the HF Trainer divides it by grad-accum steps.

    ``CLIPForImageClassification.forward`` takes ``**kwargs``, so transformers' Trainer assumes it
    normalises by ``num_items_in_batch`` and skips the division by the gradient-accumulation
    steps; its cross-entropy ignores that count, which would inflate gradients by the
    accumulation factor (the authors accumulate 2 steps). ``accepts_loss_kwargs = False`` restores it.
    """
    model.accepts_loss_kwargs = False
    return model


# ------------------------------------------------------------------------ split attention


class SplitQKVAttention(nn.Module):
    """Drop-in replacement for ``nn.MultiheadAttention`` with separate q/k/v/out ``nn.Linear`` layers.

    ``nn.MultiheadAttention`` keeps q, k and v in one packed ``in_proj_weight`` parameter, which a
    per-linear adapter cannot target separately. :meth:`from_mha` copies the packed weights into
    ``q_proj``, ``k_proj``, ``v_proj`` (rows ``[0:D]``, ``[D:2D]``, ``[2D:3D]``) and ``out_proj``,
    giving the same outputs up to float rounding. ``forward`` has ``nn.MultiheadAttention``'s
    signature and return value ``(output, weights or None)``, including ``batch_first``, boolean
    (True = masked) or additive float ``attn_mask`` of shape ``[L, S]`` or ``[B*H, L, S]``,
    ``key_padding_mask`` ``[B, S]``, ``need_weights``/``average_attn_weights`` and ``is_causal``.
    Not supported (``from_mha`` raises): ``add_bias_kv``, ``add_zero_attn`` and ``kdim/vdim != embed_dim``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        batch_first: bool = False,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}.")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    @classmethod
    def from_mha(cls, mha: nn.MultiheadAttention) -> SplitQKVAttention:
        """Build a split copy of ``mha`` (same device/dtype, same weights, same mode)."""
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError(
                "SplitQKVAttention supports only self/cross attention with kdim == vdim == embed_dim, "
                "no add_bias_kv and no add_zero_attn."
            )
        bias = mha.in_proj_bias is not None
        new = cls(mha.embed_dim, mha.num_heads, bias=bias, dropout=mha.dropout, batch_first=mha.batch_first)
        ref = mha.in_proj_weight
        new.to(device=ref.device, dtype=ref.dtype)
        d = mha.embed_dim
        with torch.no_grad():
            for i, proj in enumerate((new.q_proj, new.k_proj, new.v_proj)):
                proj.weight.copy_(mha.in_proj_weight[i * d : (i + 1) * d])
                if bias:
                    proj.bias.copy_(mha.in_proj_bias[i * d : (i + 1) * d])
            new.out_proj.weight.copy_(mha.out_proj.weight)
            if new.out_proj.bias is not None:
                if mha.out_proj.bias is not None:
                    new.out_proj.bias.copy_(mha.out_proj.bias)
                else:
                    new.out_proj.bias.zero_()
        new.train(mha.training)
        return new

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def _additive_mask(
        self,
        attn_mask: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,
        is_causal: bool,
        shape: tuple[int, int, int],
        like: torch.Tensor,
    ) -> torch.Tensor | None:
        """Merge masks into one float mask broadcastable to ``[B, H, L, S]`` (``-inf`` = blocked)."""
        b, n_q, n_k = shape
        mask = None
        if attn_mask is None and is_causal:
            attn_mask = torch.ones(n_q, n_k, dtype=torch.bool, device=like.device).triu(1)
        if attn_mask is not None:
            mask = _to_additive(attn_mask, like)
            if mask.dim() == 3:
                mask = mask.view(b, self.num_heads, n_q, n_k)
        if key_padding_mask is not None:
            pad = _to_additive(key_padding_mask, like).view(b, 1, 1, n_k)
            mask = pad if mask is None else mask + pad
        return mask

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Multi-head attention with ``nn.MultiheadAttention``'s call contract (see class docstring)."""
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = (t.unsqueeze(1 if not self.batch_first else 0) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, n_q, _ = query.shape
        n_k = key.shape[1]
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(value))
        mask = self._additive_mask(attn_mask, key_padding_mask, is_causal, (b, n_q, n_k), q)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1)
            if mask is not None:
                scores = scores + mask
            weights = scores.softmax(dim=-1)
            out = F.dropout(weights, p=p) @ v
            weights = weights.mean(dim=1) if average_attn_weights else weights
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = self.out_proj(out.transpose(1, 2).reshape(b, n_q, self.embed_dim))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if unbatched:
            out = out.squeeze(1 if not self.batch_first else 0)
            weights = weights.squeeze(0) if weights is not None else None
        return out, weights


def _to_additive(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Boolean masks (True = blocked, as in ``nn.MultiheadAttention``) become 0/-inf float masks."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=like.dtype, device=like.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype=like.dtype)


def split_qkv_attention(module: nn.Module) -> int:
    """Replace every ``nn.MultiheadAttention`` inside ``module`` by :class:`SplitQKVAttention` in place.

    Returns the number of replaced modules. The module's outputs are unchanged (up to float
    rounding); the packed parameters disappear and ``q_proj/k_proj/v_proj/out_proj`` appear.
    """
    targets = [(name, child) for name, child in module.named_modules() if isinstance(child, nn.MultiheadAttention)]
    for name, mha in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attr, SplitQKVAttention.from_mha(mha))
    return len(targets)


# ------------------------------------------------------------------------------- open_clip


class ZeroShotHead(nn.Module):
    """Frozen CLIP zero-shot classifier: ``logit_scale * normalize(features) @ class_embeddings.T``.

    ``class_embeddings`` ``[C, D]`` are unit-norm text embeddings (one row per class, averaged over
    prompt templates and renormalised); they and ``logit_scale`` are buffers, so nothing here trains.
    """

    def __init__(self, class_embeddings: torch.Tensor, logit_scale: float) -> None:
        super().__init__()
        self.register_buffer("weight", F.normalize(class_embeddings.detach().float(), dim=-1))
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * F.normalize(features, dim=-1) @ self.weight.to(features.dtype).T


class OpenClipClassifier(nn.Module):
    """open_clip visual tower (split attention) + ``classifier`` head on the image embedding.

    ``forward(pixel_values, labels=None)`` returns an ``ImageClassifierOutput`` with ``.logits``
    ``[B, C]`` and ``.loss`` (cross-entropy) when ``labels`` are given. ``config`` is a plain
    ``PretrainedConfig`` carrying ``hidden_size`` (the tower width; DeepSpeed sizes its "auto"
    buckets from it), ``image_size`` and ``num_labels``.
    """

    main_input_name = "pixel_values"
    # The loss is a per-batch mean; tell the HF Trainer to scale it for gradient accumulation.
    accepts_loss_kwargs = False

    def __init__(self, visual: nn.Module, classifier: nn.Module, num_classes: int, name: str = "") -> None:
        from transformers import PretrainedConfig

        super().__init__()
        self.visual = visual
        self.classifier = classifier
        size = visual.image_size
        self.config = PretrainedConfig(
            hidden_size=visual.transformer.width,
            image_size=size[0] if isinstance(size, (tuple, list)) else size,
            num_labels=num_classes,
            name_or_path=name,
        )

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> ImageClassifierOutput:
        from transformers.modeling_outputs import ImageClassifierOutput

        logits = self.classifier(self.visual(pixel_values))
        loss = F.cross_entropy(logits, labels.to(logits.device).long()) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


def smoke_open_clip() -> nn.Module:
    """A tiny randomly initialised open_clip ``CLIP`` for tests and smoke runs.

    Vision: width 64, 2 layers, 4 heads, 32 px, patch 8 (like :func:`smoke_clip_vision_config`);
    text: width 32, 1 layer, with ViT-B-32's tokenizer shape (context 77, vocab 49,408), so
    ``open_clip.get_tokenizer("ViT-B-32")`` drives its zero-shot head.
    """
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    vision = CLIPVisionCfg(layers=2, width=64, head_width=16, patch_size=8, image_size=32)
    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=4, layers=1)
    return CLIP(embed_dim=32, vision_cfg=vision, text_cfg=text, quick_gelu=True).eval()


def check_open_clip_name(model_name: str) -> None:
    """Raise ``ValueError`` unless ``model_name`` is an open_clip architecture (e.g. ``ViT-B-32``)."""
    import open_clip

    if model_name not in open_clip.list_models():
        vits = ", ".join(m for m in open_clip.list_models() if m.startswith("ViT-B"))
        raise ValueError(
            f"{model_name!r} is not an open_clip architecture; with --backbone open_clip pass one of "
            f"open_clip.list_models() as --model_name_or_path (e.g. {vits}) and the weights as --pretrained."
        )


def create_open_clip(
    model_name: str = "ViT-B-32", pretrained: str | None = "openai", **create_kwargs: Any
) -> nn.Module:
    """``open_clip.create_model`` with QuickGELU switched on when the weights were trained with it.

    ``pretrained`` is an open_clip tag (``"openai"``), a checkpoint file, or ``None`` (random
    weights). Unknown architecture names raise ``ValueError`` listing the ViT ones.
    """
    import open_clip

    check_open_clip_name(model_name)
    quick_gelu = bool(
        pretrained
        and open_clip.is_pretrained_cfg(model_name, pretrained)
        and open_clip.get_pretrained_cfg(model_name, pretrained).get("quick_gelu", False)
    )
    create_kwargs.setdefault("force_quick_gelu", quick_gelu)
    return open_clip.create_model(model_name, pretrained=pretrained, **create_kwargs).eval()


def _zero_shot_embeddings(
    clip: nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str],
) -> torch.Tensor:
    """Unit-norm ``[C, D]`` class embeddings: mean over templates of normalised text embeddings."""
    device = next(clip.parameters()).device
    rows = []
    with torch.no_grad():
        for name in class_names:
            tokens = tokenizer([t.format(name) for t in templates]).to(device)
            emb = F.normalize(clip.encode_text(tokens).float(), dim=-1).mean(dim=0)
            rows.append(F.normalize(emb, dim=-1))
    return torch.stack(rows)


def open_clip_classifier(
    clip: nn.Module,
    num_classes: int | None = None,
    *,
    head: str = "linear",
    class_names: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
    tokenizer: Callable[[list[str]], torch.Tensor] | None = None,
    name: str = "",
) -> OpenClipClassifier:
    """An open_clip ``CLIP``'s visual tower with split q/k/v attention and a ``classifier`` head.

    ``head="linear"``: a trainable ``nn.Linear(embed_dim, num_classes)`` (normal init, std
    ``embed_dim**-0.5``, bias 0). ``head="zeroshot"``: a frozen :class:`ZeroShotHead` built from
    ``class_names`` x ``templates`` (default ``"a photo of a {}."``) through the text tower and
    ``tokenizer``; the text tower is then discarded. ``num_classes`` defaults to
    ``len(class_names)``. Every ``nn.MultiheadAttention`` of the tower is replaced by
    :class:`SplitQKVAttention` (same outputs). Returned in eval mode.
    """
    if head not in HEADS:
        raise ValueError(f"head={head!r} must be one of {', '.join(HEADS)}.")
    if num_classes is None:
        if class_names is None:
            raise ValueError("pass num_classes or class_names.")
        num_classes = len(class_names)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} entries but num_classes={num_classes}.")
    if head == "zeroshot":
        if class_names is None or tokenizer is None:
            raise ValueError(
                "head='zeroshot' needs class_names and a tokenizer (the text prompts are built from them)."
            )
        emb = _zero_shot_embeddings(clip, tokenizer, list(class_names), list(templates or DEFAULT_TEMPLATES))
        classifier: nn.Module = ZeroShotHead(emb, clip.logit_scale.exp().item())
    else:
        embed_dim = clip.visual.output_dim
        classifier = nn.Linear(embed_dim, num_classes)
        nn.init.normal_(classifier.weight, std=embed_dim**-0.5)
        nn.init.zeros_(classifier.bias)
    visual = clip.visual
    split_qkv_attention(visual)
    model = OpenClipClassifier(visual, classifier.to(next(visual.parameters()).device), num_classes, name)
    return model.eval()


def image_size(model: nn.Module) -> int:
    """Input resolution (pixels per side) of a classifier built here: 224 for ViT-B/32."""
    config = model.config
    vision = getattr(config, "vision_config", config)
    size = vision.image_size
    return size[0] if isinstance(size, (tuple, list)) else int(size)
