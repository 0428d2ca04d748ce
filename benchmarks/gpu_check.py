"""One command for the first GPU: the paper's cost table (Table 7) and GOAT's inference cost (issue 21).

Everything runs in bf16 with SDPA attention on one CUDA device, in this order (cheapest and most
important first); each section is written to ``--output_dir`` as soon as it ends, and a section
that would overrun ``--time_budget_s`` is recorded as skipped instead of being run:

1. ``layer``      — one adapted layer, forward + backward, at LLaMA-2-7B shapes (4096→4096,
   4096→11008, 11008→4096), 4,096 tokens, total rank 32, E = 8, k = 2: this project's goat (with
   its W_res path), molora, peft LoRA r = 32 and the authors' per-expert loop
   (``layer_speed.PerExpertLoopLinear``); medians of interleaved rounds and ratios to LoRA.
2. ``svd``        — GOAT's initialisation cost: the float32 thin SVD of each distinct LLaMA-2-7B
   weight shape, cold (``svd``, cache ``miss``) and from a warm SVD cache (``hit``)
   (``svd_init.time_shape``), and their sums over the model's 224 linear weights and over the 160
   Table-12 targets (per-shape median times the number of weights of that shape).
3. ``model``      — a LLaMA-2-7B-shaped model from its config with random weights (every layer if
   the SVD budget and memory allow; the JSON says how many), adapters on q/k/v/up/down (Table 12),
   sequence 1024: one training step (forward, backward, AdamW) of goat, molora and lora, with the
   measured GOAT initialisation (all its SVDs on the GPU) and memory; ratios to LoRA and to MoLoRA,
   beside Table 7's (which compares to MoLoRA).
4. ``generation`` — tokens per second of greedy decoding with a KV cache, batch 1 and 32, for
   base, LoRA merged, LoRA, MoLoRA and GOAT on that model (``decode_speed.interleaved_decode``).
5. ``qlora``      — the same model with a 4-bit NF4 base (bitsandbytes, double quantization):
   goat's step time and memory.
6. ``layer_compiled`` — section 1 again with every variant under ``torch.compile``.

Memory (CUDA only): ``model MiB`` is what building that model allocated (its copy of the base
weights plus adapters and W_res), ``train Δ MiB`` is ``torch.cuda.max_memory_allocated`` during its
steps minus the allocation just before them, and ``peak MiB`` is their sum: the model's own peak
(tensors only; no CUDA context, no allocator cache).

``--smoke`` runs the same functions and writes the same files on the CPU at tiny shapes (and
``aot_eager`` instead of inductor for ``torch.compile``), in well under 2 minutes; CI runs it.
A real run refuses a machine without CUDA: it never writes CPU timings as GPU figures.

    python benchmarks/gpu_check.py                         # one H200: under 8 minutes
    python benchmarks/gpu_check.py --smoke --output_dir /tmp/gpu_check
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.metadata
import json
import math
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling benchmark scripts (not a package)

import decode_speed  # noqa: E402
import layer_speed  # noqa: E402
import svd_init  # noqa: E402

import goat  # noqa: E402
from goat.studies import params  # noqa: E402

LAYER_VARIANTS = ("lora", "molora", "goat", "loop")
STEP_METHODS = ("lora", "molora", "goat")
DECODE_VARIANTS = decode_speed.VARIANTS
LLAMA_TARGETS = decode_speed.LLAMA_TARGETS  # q, k, v, up, down (Table 12)
# Table 7 (one A100, MetaMath, LLaMA-2-7B): memory and epoch time; ratios here are to MoLoRA.
PAPER_TABLE_7 = {
    "molora": {"memory_gb": 34.85, "epoch_min": 36 * 60 + 56},
    "hydralora": {"memory_gb": 34.81, "epoch_min": 36 * 60 + 56},
    "goat": {"memory_gb": 34.85, "epoch_min": 36 * 60 + 59},
}
OUTPUT_STEM = "gpu_check"


# ------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """Every shape and count of one run; ``--smoke`` replaces the shapes by tiny ones (:func:`smoke`)."""

    device: str = "cuda"
    dtype: str = "bfloat16"
    r: int = 32
    lora_alpha: float = 64.0
    num_experts: int = 8
    top_k: int = 2
    lora_dropout: float = 0.05
    layer_shapes: tuple[tuple[int, int], ...] = ((4096, 4096), (4096, 11008), (11008, 4096))  # (in, out)
    layer_tokens: int = 4096
    layer_repeats: int = 20
    layer_warmup: int = 3
    layers: int = 32  # decoder layers of the 7B-shaped model, at most
    seq_len: int = 1024
    per_device_train_batch_size: int = 1
    step_rounds: int = 3
    steps: int = 3
    step_warmup: int = 1
    learning_rate: float = 1e-4
    decode_batch_sizes: tuple[int, ...] = (1, 32)
    new_tokens: int = 32
    prompt_len: int = 32
    decode_rounds: int = 3
    svd_repeats: int = 1
    compile_backend: str = "inductor"
    time_budget_s: float = 440.0
    svd_budget_fraction: float = 0.3  # of the time budget, for the model's GOAT initialisations
    memory_fraction: float = 0.8  # of the device memory, for the model copies
    reserve_scale: float = 1.0  # times RESERVE_S: what a section needs left of the budget to start
    seed: int = 0
    smoke: bool = False

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


def smoke(settings: Settings) -> Settings:
    """The same run on the CPU at tiny shapes (seconds): CI exercises every code path with it."""
    return replace(
        settings,
        device="cpu",
        r=16,
        lora_alpha=32.0,
        layer_shapes=((64, 64), (64, 172), (172, 64)),
        layer_tokens=64,
        layer_repeats=2,
        layer_warmup=1,
        layers=2,
        seq_len=32,
        step_rounds=1,
        steps=1,
        decode_batch_sizes=(1, 2),
        new_tokens=3,
        prompt_len=8,
        decode_rounds=1,
        compile_backend="aot_eager",
        time_budget_s=3600.0,  # never skip in CI, however loaded the machine
        reserve_scale=0.0,
        smoke=True,
    )


# Seconds a section (or one shape of a layer section) may need on the H200, at most: it starts only
# with that much of the budget left. Scaled by ``Settings.reserve_scale`` (0 for --smoke).
RESERVE_S = {"layer": 15.0, "svd": 20.0, "model": 90.0, "generation": 45.0, "qlora": 60.0, "layer_compiled": 60.0}


class Deadline:
    """The run's time budget: sections ask it before starting work that could overrun."""

    def __init__(self, seconds: float, reserve_scale: float = 1.0):
        self.start = time.monotonic()
        self.seconds = seconds
        self.reserve_scale = reserve_scale

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        return self.seconds - self.elapsed()

    def allows(self, section: str) -> bool:
        """Whether ``section`` (a key of :data:`RESERVE_S`) may start now."""
        return self.remaining() > self.reserve_scale * RESERVE_S[section]


def skipped(reason: str) -> dict[str, Any]:
    return {"skipped": reason}


# --------------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    decode_speed.synchronize(device)


def median_and_iqr(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return statistics.median(values), q[2] - q[0]


def interleaved_times(
    runners: dict[str, Callable[[], float]], *, rounds: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """``({name: timed seconds}, {name: first-call seconds})``: every runner once per round, order
    reversed on odd rounds; the first ``warmup`` rounds are untimed (the first call includes compiling)."""
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    first: dict[str, float] = {}
    for i in range(warmup + rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            elapsed = runners[name]()
            first.setdefault(name, elapsed)
            if i >= warmup:
                times[name].append(elapsed)
    return times, first


# ---------------------------------------------------------------------- 1. one layer
class Projection(nn.Module):
    """A model holding one bias-free linear ``proj`` (in -> out), the layer every variant adapts."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.proj = nn.Linear(in_features, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def adapter_config(settings: Settings, method: str, targets: list[str]) -> goat.GoatConfig:
    """``method`` at total rank r (MoE: E experts of rank r/E, top-k), dropout as the paper (Table 11)."""
    return goat.GoatConfig(
        method=method,
        r=settings.r,
        lora_alpha=settings.lora_alpha,
        num_experts=settings.num_experts,
        top_k=settings.top_k,
        lora_dropout=settings.lora_dropout,
        target_modules=targets,
        seed=settings.seed,
    )


def build_layer_variants(settings: Settings, in_features: int, out_features: int) -> dict[str, nn.Module]:
    """``{variant: module}`` on the device in the run's dtype, each adapting a copy of one random layer.

    The loop reference shares goat's parameters (and W_res), so both compute the same function.
    """
    torch.manual_seed(settings.seed)
    base = Projection(in_features, out_features).to(device=settings.device, dtype=settings.torch_dtype)
    modules: dict[str, nn.Module] = {}
    for method in ("lora", "molora", "goat"):
        modules[method] = goat.get_goat_model(copy.deepcopy(base), adapter_config(settings, method, ["proj"]))
    modules["loop"] = layer_speed.PerExpertLoopLinear(copy.deepcopy(modules["goat"].base_model.proj))
    return {name: modules[name].train() for name in LAYER_VARIANTS}


def loop_gap(modules: dict[str, nn.Module], x: torch.Tensor) -> float:
    """Max |goat - loop| relative to max |goat| with dropout off (bf16 rounding: about 1e-2)."""
    for module in modules.values():
        module.eval()
    with torch.no_grad():
        expected = modules["goat"](x).float()
        gap = (expected - modules["loop"](x).float()).abs().max().item()
    for module in modules.values():
        module.train()
    return gap / max(expected.abs().max().item(), 1e-6)


def layer_step_runner(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], float]:
    """A function timing one forward + backward of ``module`` (input gradient included)."""

    def run() -> float:
        inputs = x.detach().clone().requires_grad_(True)
        synchronize(x.device)
        start = time.perf_counter()
        module(inputs).backward(grad)
        synchronize(x.device)
        elapsed = time.perf_counter() - start
        for param in module.parameters():
            param.grad = None
        return elapsed

    return run


def layer_rows(
    times: dict[str, list[float]], first: dict[str, float], shape: tuple[int, int], compiled: bool
) -> list[dict[str, Any]]:
    medians = {name: median_and_iqr(values) for name, values in times.items()}
    rows = []
    for name, (median, iqr) in medians.items():
        rows.append(
            {
                "in_features": shape[0],
                "out_features": shape[1],
                "variant": name,
                "compiled": compiled,
                "median_ms": 1e3 * median,
                "iqr_ms": 1e3 * iqr,
                "first_call_s": first[name],
                "ratio_to_lora": median / medians["lora"][0],
            }
        )
    return rows


def layer_section(settings: Settings, deadline: Deadline, *, compiled: bool) -> dict[str, Any]:
    """Forward + backward of one adapted layer per shape and variant (eager, or under ``torch.compile``)."""
    device = torch.device(settings.device)
    rows: list[dict[str, Any]] = []
    gaps: dict[str, float] = {}
    skipped_shapes = []
    for in_features, out_features in settings.layer_shapes:
        if not deadline.allows("layer_compiled" if compiled else "layer"):
            skipped_shapes.append([in_features, out_features])
            continue
        modules = build_layer_variants(settings, in_features, out_features)
        generator = torch.Generator().manual_seed(settings.seed + 1)
        x = torch.randn(settings.layer_tokens, in_features, generator=generator).to(device, settings.torch_dtype)
        grad = torch.randn(settings.layer_tokens, out_features, generator=generator).to(device, settings.torch_dtype)
        gaps[f"{in_features}x{out_features}"] = loop_gap(modules, x[:256])
        if compiled:
            torch._dynamo.reset()
            modules = {
                name: torch.compile(module, backend=settings.compile_backend) for name, module in modules.items()
            }
        runners = {name: layer_step_runner(module, x, grad) for name, module in modules.items()}
        times, first = interleaved_times(runners, rounds=settings.layer_repeats, warmup=settings.layer_warmup)
        rows += layer_rows(times, first, (in_features, out_features), compiled)
        del modules, runners
        free_memory(device)
    result: dict[str, Any] = {"rows": rows, "loop_vs_goat_relative_gap": gaps}
    if compiled:
        result["compile_backend"] = settings.compile_backend
    if skipped_shapes:
        result["skipped_shapes"] = skipped_shapes
    return result


# -------------------------------------------------------------------- model builders
def llama_config(settings: Settings, layers: int) -> LlamaConfig:
    """LLaMA-2-7B's config (``goat.studies.params``) with ``layers`` decoder layers; tiny for ``--smoke``."""
    if settings.smoke:
        config = LlamaConfig(
            vocab_size=256,
            hidden_size=64,
            intermediate_size=172,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=256,
        )
    else:
        config = params.llama2_7b_config(layers)
    config._attn_implementation = "sdpa"
    return config


def llama_weight_shapes(config: LlamaConfig) -> dict[str, tuple[int, int]]:
    """``{linear name: (out, in)}`` of one decoder layer (q, k, v, o, gate, up, down)."""
    H, I = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * (H // config.num_attention_heads)
    return {
        "q_proj": (H, H),
        "k_proj": (kv, H),
        "v_proj": (kv, H),
        "o_proj": (H, H),
        "gate_proj": (I, H),
        "up_proj": (I, H),
        "down_proj": (H, I),
    }


def build_llama(config: LlamaConfig, settings: Settings) -> LlamaForCausalLM:
    """A causal LM from ``config`` with random weights, built directly on the device in the run's dtype."""
    hf_logging.set_verbosity_error()
    torch.manual_seed(settings.seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(settings.torch_dtype)
    try:
        with torch.device(settings.device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def quantize_4bit(model: nn.Module, compute_dtype: torch.dtype) -> int:
    """Replace every ``nn.Linear`` of the decoder layers by a bitsandbytes NF4 layer (QLoRA's settings:
    double quantization, matmuls in ``compute_dtype``), in place; returns how many were replaced."""
    import bitsandbytes as bnb

    replaced = 0
    for parent in list(model.model.layers.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear:
                continue
            device = child.weight.device
            layer = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=compute_dtype,
                compress_statistics=True,
                quant_type="nf4",
                device="meta",
            )
            layer.weight = bnb.nn.Params4bit(
                child.weight.data, requires_grad=False, compress_statistics=True, quant_type="nf4"
            ).to(device)  # quantized on this move
            setattr(parent, name, layer)
            replaced += 1
    return replaced


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def allocated_mib(device: torch.device) -> float | None:
    return torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else None


def adapt_timed(
    base: nn.Module, config: goat.GoatConfig, device: torch.device, *, in_place: bool = False
) -> tuple[goat.GoatModel, tuple[float, float | None]]:
    """``(model, (init seconds, model MiB))``: ``config`` on a deep copy of ``base`` (or on ``base``
    itself). The seconds cover the copy and the adapters' initialisation (for goat: the SVD of every
    target weight, on the device). Model MiB (CUDA) is what the copy and adapters allocated; in place,
    everything allocated once adapted (the caller has freed all else)."""
    before = allocated_mib(device)
    synchronize(device)
    start = time.perf_counter()
    model = goat.get_goat_model(base if in_place else copy.deepcopy(base), config)
    synchronize(device)
    elapsed = time.perf_counter() - start
    after = allocated_mib(device)
    if after is None:
        return model, (elapsed, None)
    return model, (elapsed, after if in_place else after - before)


# ------------------------------------------------------------------------ 2. the SVD
def svd_section(settings: Settings, deadline: Deadline) -> dict[str, Any]:
    """SVD / cache-miss / cache-hit seconds per distinct weight shape, summed over all 224 linear weights
    and over the 160 Table-12 targets of the full-depth model (``svd_init.time_shape``)."""
    device = torch.device(settings.device)
    config = llama_config(settings, settings.layers)
    shapes = llama_weight_shapes(config)
    everything = Counter({s: 0 for s in shapes.values()})
    for shape in shapes.values():
        everything[shape] += config.num_hidden_layers
    targets = Counter()
    for name in LLAMA_TARGETS:
        targets[shapes[name]] += config.num_hidden_layers
    timings: dict[tuple[int, int], svd_init.ShapeTiming] = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        for shape in sorted(everything, key=lambda s: s[0] * s[1]):
            if not deadline.allows("svd"):
                break
            timings[shape] = svd_init.time_shape(shape, Path(cache_dir), settings.svd_repeats, device, settings.seed)
    rows = [dict(asdict(t), speedup=t.speedup) for t in timings.values()]
    result: dict[str, Any] = {"shapes": rows}
    if len(timings) < len(everything):
        result["skipped_shapes"] = [list(s) for s in everything if s not in timings]
        return result
    totals = svd_init.model_totals({"all_linear": everything, "table12_targets": targets}, timings)
    result["totals"] = [asdict(t) for t in totals]
    per_layer = sum(timings[shapes[name]].svd_s for name in LLAMA_TARGETS)
    result["svd_s_per_layer_table12"] = per_layer
    return result


def layers_that_fit(settings: Settings, svd: dict[str, Any], device: torch.device) -> tuple[int, str]:
    """``(decoder layers, why)``: all of them unless the two GOAT initialisations (bf16 and 4-bit base)
    would take more than the SVD share of the budget, or the model copies would not fit in memory."""
    layers, reasons = settings.layers, []
    per_layer_s = svd.get("svd_s_per_layer_table12")
    if per_layer_s:
        budget = settings.svd_budget_fraction * settings.time_budget_s
        by_time = max(1, math.floor(budget / (2 * per_layer_s)))
        if by_time < layers:
            layers = by_time
            reasons.append(f"2 GOAT inits x {per_layer_s:.2f} s of SVD per layer must fit {budget:.0f} s")
    if device.type == "cuda":
        config = llama_config(settings, 1)
        H, V = config.hidden_size, config.vocab_size
        per_layer_bytes = 2 * sum(m * n for m, n in llama_weight_shapes(config).values())  # bf16
        copies = len(DECODE_VARIANTS)  # base + 4 adapted / merged copies during generation
        free = settings.memory_fraction * torch.cuda.get_device_properties(device).total_memory
        by_memory = max(1, math.floor((free / copies - 2 * 2 * V * H) / per_layer_bytes))
        if by_memory < layers:
            layers = by_memory
            reasons.append(f"{copies} model copies must fit {settings.memory_fraction:.0%} of the device memory")
    return layers, "; ".join(reasons) or "every layer"


# ------------------------------------------------------------------- 3. the model step
def token_batch(config: LlamaConfig, settings: Settings) -> torch.Tensor:
    generator = torch.Generator().manual_seed(settings.seed + 1)
    return torch.randint(
        0, config.vocab_size, (settings.per_device_train_batch_size, settings.seq_len), generator=generator
    ).to(settings.device)


def train_step_runner(
    model: nn.Module, ids: torch.Tensor, settings: Settings
) -> tuple[Callable[[], float], dict[str, Any]]:
    """A function timing one training step (forward, backward, AdamW), and a dict that holds the step's
    memory figures (CUDA: peak allocation over the steps minus before). In training mode the adapted
    model's loss already holds ``aux_loss_coef * L_b`` (App. B, :mod:`goat.adapters.aux_loss`)."""
    params_ = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params_, lr=settings.learning_rate, weight_decay=0.0)
    memory: dict[str, Any] = {"trainable": sum(p.numel() for p in params_), "train_delta_mib": None}
    device = ids.device

    def run() -> float:
        model.train()
        cuda = device.type == "cuda"
        if cuda:
            synchronize(device)
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        elapsed = time.perf_counter() - start
        if cuda:
            delta = (torch.cuda.max_memory_allocated(device) - before) / 2**20
            memory["train_delta_mib"] = max(delta, memory["train_delta_mib"] or 0.0)
        return elapsed

    return run, memory


def step_rows(
    times: dict[str, list[float]], memories: dict[str, dict[str, Any]], inits: dict[str, tuple[float, float | None]]
) -> list[dict[str, Any]]:
    """One row per method: median step, ratios to LoRA and MoLoRA, init seconds and memory."""
    medians = {name: median_and_iqr(values) for name, values in times.items()}
    rows = []
    for name, (median, iqr) in medians.items():
        init_s, model_mib = inits[name]
        delta = memories[name]["train_delta_mib"]
        rows.append(
            {
                "method": name,
                "trainable": memories[name]["trainable"],
                "step_ms": 1e3 * median,
                "iqr_ms": 1e3 * iqr,
                "init_s": init_s,
                "model_mib": model_mib,
                "train_delta_mib": delta,
                "peak_mib": None if model_mib is None or delta is None else model_mib + delta,
            }
        )
    return with_ratios(rows)


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Time and peak-memory ratios of each row to the ``lora`` and ``molora`` rows (when present)."""
    by_method = {row["method"]: row for row in rows}
    for row in rows:
        for reference in ("lora", "molora"):
            ref = by_method.get(reference)
            row[f"time_ratio_to_{reference}"] = None if ref is None else row["step_ms"] / ref["step_ms"]
            peaks = row["peak_mib"], None if ref is None else ref["peak_mib"]
            row[f"peak_ratio_to_{reference}"] = None if None in peaks else peaks[0] / peaks[1]
    return rows


def paper_ratios() -> dict[str, dict[str, float]]:
    """Table 7's memory and epoch-time ratios to MoLoRA."""
    ref = PAPER_TABLE_7["molora"]
    return {
        method: {
            "memory_ratio_to_molora": v["memory_gb"] / ref["memory_gb"],
            "time_ratio_to_molora": v["epoch_min"] / ref["epoch_min"],
        }
        for method, v in PAPER_TABLE_7.items()
    }


def measure_steps(
    models: dict[str, nn.Module], inits: dict[str, tuple[float, float | None]], ids: torch.Tensor, settings: Settings
) -> list[dict[str, Any]]:
    """Interleaved training-step timing of ``models`` (one optimizer each); rows from :func:`step_rows`."""
    runners, memories = {}, {}
    for name, model in models.items():
        runners[name], memories[name] = train_step_runner(model, ids, settings)
    rounds = settings.step_rounds * settings.steps
    times, _ = interleaved_times(runners, rounds=rounds, warmup=settings.step_warmup)
    return step_rows(times, memories, inits)


class LlamaStage:
    """Sections 3-5 on one random LLaMA-2-7B-shaped model with ``layers`` decoder layers: training
    steps of lora / molora / goat (:meth:`steps`), generation with those models (:meth:`generation`),
    then the same base quantized to 4 bits with goat (:meth:`qlora`). Call them in this order."""

    def __init__(self, settings: Settings, layers: int, why: str):
        self.settings, self.layers, self.why = settings, layers, why
        self.device = torch.device(settings.device)
        self.config = llama_config(settings, layers)
        self.base: nn.Module | None = build_llama(self.config, settings)
        self.ids = token_batch(self.config, settings)
        self.models: dict[str, nn.Module] = {}
        self.step_rows: list[dict[str, Any]] = []

    def steps(self) -> dict[str, Any]:
        """Adapt copies of the base (timing each initialisation) and time their training steps."""
        settings, targets = self.settings, list(LLAMA_TARGETS)
        inits = {}
        for method in STEP_METHODS:
            self.models[method], inits[method] = adapt_timed(
                self.base, adapter_config(settings, method, targets), self.device
            )
        self.step_rows = measure_steps(self.models, inits, self.ids, settings)
        return {
            "layers": self.layers,
            "of_layers": settings.layers,
            "layers_why": self.why,
            "seq_len": settings.seq_len,
            "per_device_train_batch_size": settings.per_device_train_batch_size,
            "targets": targets,
            "goat_init_svds": self.layers * len(targets),
            "rows": self.step_rows,
            "paper_table_7_ratios": paper_ratios(),
        }

    def generation(self) -> dict[str, Any]:
        """Greedy decoding of base, LoRA merged (a merged copy of the lora model), LoRA, MoLoRA, GOAT."""
        settings = self.settings
        try:
            merged = copy.deepcopy(self.models["lora"]).merge_and_unload()
            models = {"base": self.base, "lora_merged": merged, **self.models}
            rows = decode_speed.interleaved_decode(
                {name: models[name].eval() for name in DECODE_VARIANTS},
                list(settings.decode_batch_sizes),
                new_tokens=settings.new_tokens,
                prompt_len=settings.prompt_len,
                rounds=settings.decode_rounds,
                seed=settings.seed,
            )
        finally:
            self.release_adapted()
        return {"layers": self.layers, "rows": [asdict(r) for r in rows]}

    def release_adapted(self) -> None:
        self.models = {}
        free_memory(self.device)

    def qlora(self) -> dict[str, Any]:
        """goat on the base quantized in place to 4-bit NF4; ratios to the bf16 lora step row."""
        self.release_adapted()
        replaced = quantize_4bit(self.base, self.settings.torch_dtype)
        free_memory(self.device)
        config = adapter_config(self.settings, "goat", list(LLAMA_TARGETS))
        model, init = adapt_timed(self.base, config, self.device, in_place=True)
        self.base = None
        rows = measure_steps({"qlora_goat": model}, {"qlora_goat": init}, self.ids, self.settings)
        lora = next((r for r in self.step_rows if r["method"] == "lora"), None)
        for row in rows:
            row["time_ratio_to_lora"] = None if lora is None else row["step_ms"] / lora["step_ms"]
            peaks = row["peak_mib"], None if lora is None else lora["peak_mib"]
            row["peak_ratio_to_lora"] = None if None in peaks else peaks[0] / peaks[1]
        note = "goat on a 4-bit NF4 base (double quantization); ratios to the bf16 lora row of the model section"
        return {"layers": self.layers, "quantized_linears": replaced, "note": note, "rows": rows}


# ------------------------------------------------------------------------- reporting
def environment(settings: Settings) -> dict[str, Any]:
    """Date, device and library versions of this run (a library missing on the machine is said so:
    only the 4-bit section needs bitsandbytes, and it records the error without it)."""
    device = torch.device(settings.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()})"
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": name,
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": {
            "torch": torch.__version__,
            **{name: package_version(name) for name in PACKAGES},
            "goat": goat.__version__,
        },
    }


PACKAGES = ("transformers", "peft", "bitsandbytes", "safetensors")


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def fmt(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "n/a"
    return format(value, spec) if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> list[str]:
    """A Markdown table of ``rows`` with ``(header, key, format)`` columns."""
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(key), spec) for _, key, spec in columns) + " |")
    return lines


SECTION_COLUMNS = {
    "layer": [
        ("in", "in_features", "d"),
        ("out", "out_features", "d"),
        ("variant", "variant", "s"),
        ("median ms", "median_ms", ".3f"),
        ("IQR ms", "iqr_ms", ".3f"),
        ("× LoRA", "ratio_to_lora", ".3f"),
    ],
    "layer_compiled": [
        ("in", "in_features", "d"),
        ("out", "out_features", "d"),
        ("variant", "variant", "s"),
        ("median ms", "median_ms", ".3f"),
        ("× LoRA", "ratio_to_lora", ".3f"),
        ("first call s", "first_call_s", ".1f"),
    ],
    "svd": [
        ("out", "out_features", "d"),
        ("in", "in_features", "d"),
        ("svd s", "svd_s", ".3f"),
        ("miss s", "miss_s", ".3f"),
        ("hit s", "hit_s", ".3f"),
        ("entry MiB", "entry_mib", ".1f"),
    ],
    "model": [
        ("method", "method", "s"),
        ("step ms", "step_ms", ".1f"),
        ("× LoRA", "time_ratio_to_lora", ".3f"),
        ("× MoLoRA", "time_ratio_to_molora", ".3f"),
        ("peak MiB", "peak_mib", ".0f"),
        ("peak × LoRA", "peak_ratio_to_lora", ".3f"),
        ("peak × MoLoRA", "peak_ratio_to_molora", ".3f"),
        ("init s", "init_s", ".1f"),
    ],
    "generation": [
        ("batch", "batch_size", "d"),
        ("variant", "variant", "s"),
        ("median s", "median_s", ".3f"),
        ("tokens/s", "tokens_per_s", ".1f"),
        ("time × LoRA", "ratio_to_lora", ".3f"),
    ],
    "qlora": [
        ("method", "method", "s"),
        ("step ms", "step_ms", ".1f"),
        ("× LoRA", "time_ratio_to_lora", ".3f"),
        ("peak MiB", "peak_mib", ".0f"),
        ("peak × LoRA", "peak_ratio_to_lora", ".3f"),
        ("init s", "init_s", ".1f"),
    ],
}


def is_row_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def to_markdown(report: dict[str, Any]) -> str:
    """The Markdown summary: header (date, device, versions, settings) and one table per section."""
    env, settings = report["environment"], report["settings"]
    title = "GPU check" + (" — SMOKE RUN (CPU, tiny shapes: not GPU figures)" if settings["smoke"] else "")
    cuda = f" (CUDA {env['cuda']})" if settings["device"].startswith("cuda") else ""
    lines = [f"# {title}", "", f"- date: {env['date']}", f"- device: {env['device']}{cuda}"]
    lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    lines.append("- settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    lines.append(f"- wall time: {report.get('wall_s', float('nan')):.0f} s")
    for name, section in report["sections"].items():
        lines += ["", f"## {name}", ""]
        if "skipped" in section:
            lines.append(f"skipped: {section['skipped']}")
            continue
        if "error" in section:
            lines.append(f"error: {section['error']}")
            continue
        tables = {k: v for k, v in section.items() if k not in ("rows", "shapes") and is_row_list(v)}
        notes = {k: v for k, v in section.items() if k not in ("rows", "shapes") and k not in tables}
        if notes:
            lines += [f"- {k}: {v}" for k, v in notes.items()] + [""]
        rows = section.get("rows", section.get("shapes", []))
        lines += markdown_table(rows, SECTION_COLUMNS[name])
        for key, table in tables.items():
            lines += ["", f"{key}:", ""] + markdown_table(
                table, [(k, k, ".3f" if isinstance(v, float) else "") for k, v in table[0].items()]
            )
    return "\n".join(lines) + "\n"


def write_outputs(report: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    """``gpu_check.json`` and ``gpu_check.md`` in ``output_dir`` (rewritten after every section)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_dir / f"{OUTPUT_STEM}.json", output_dir / f"{OUTPUT_STEM}.md"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    md_path.write_text(to_markdown(report))
    return json_path, md_path


# ------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="benchmarks/results", help="Where gpu_check.json and .md go.")
    parser.add_argument("--smoke", action="store_true", help="Same code on the CPU at tiny shapes (CI).")
    parser.add_argument("--r", type=int, default=defaults.r, help="Total rank r (MoE: E experts of rank r/E).")
    parser.add_argument("--lora_alpha", type=float, default=defaults.lora_alpha)
    parser.add_argument("--num_experts", type=int, default=defaults.num_experts)
    parser.add_argument("--top_k", type=int, default=defaults.top_k)
    parser.add_argument(
        "--layers", type=int, default=defaults.layers, help="Decoder layers of the 7B-shaped model, at most."
    )
    parser.add_argument("--seq_len", type=int, default=defaults.seq_len)
    parser.add_argument(
        "--per_device_train_batch_size",
        type=int,
        default=defaults.per_device_train_batch_size,
        help="Training-step batch size.",
    )
    parser.add_argument("--learning_rate", type=float, default=defaults.learning_rate)
    parser.add_argument(
        "--time_budget_s", type=float, default=defaults.time_budget_s, help="Sections past it are skipped."
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    chosen = {
        k: getattr(args, k)
        for k in (
            "r",
            "lora_alpha",
            "num_experts",
            "top_k",
            "layers",
            "seq_len",
            "per_device_train_batch_size",
            "learning_rate",
            "time_budget_s",
            "seed",
        )
    }
    if args.smoke:
        return smoke(Settings())
    return Settings(**chosen)


def require_cuda() -> None:
    """A real run measures GPU figures only: exit with one line when no CUDA device is visible."""
    if not torch.cuda.is_available():
        raise SystemExit(
            "gpu_check: no CUDA device is available; a real run measures GPU figures only and will not write "
            "CPU timings as such (use --smoke for the CPU code path)."
        )


def guarded(section: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``section()``, or ``{"error": ...}`` if it raised: one failing section must not lose the others
    on a machine that is lent once."""
    try:
        return section()
    except Exception as error:  # noqa: BLE001 (recorded in the outputs, and the run goes on)
        return {
            "error": f"{type(error).__name__}: {error}"[:2000],
            "traceback": traceback.format_exc(limit=-8)[-4000:],  # where it raised: the machine is lent once
        }


def run(settings: Settings, output_dir: Path) -> dict[str, Any]:
    """All sections in order, the outputs rewritten after each; returns the report.

    A section starts only if the budget has its reserve left (:data:`RESERVE_S`), else it is recorded
    as skipped; one that raises is recorded with its error and the others still run.
    """
    deadline = Deadline(settings.time_budget_s, settings.reserve_scale)
    device = torch.device(settings.device)
    report: dict[str, Any] = {"environment": environment(settings), "settings": asdict(settings), "sections": {}}
    sections = report["sections"]

    def record(name: str, section: Callable[[], dict[str, Any]]) -> None:
        sections[name] = guarded(section) if deadline.allows(name) else skipped("time budget")
        report["wall_s"] = deadline.elapsed()
        write_outputs(report, output_dir)
        free_memory(device)

    record("layer", lambda: layer_section(settings, deadline, compiled=False))
    record("svd", lambda: svd_section(settings, deadline))
    layers, why = layers_that_fit(settings, sections["svd"], device)
    stage = guarded(lambda: {"stage": LlamaStage(settings, layers, why)}) if deadline.allows("model") else {}
    if "stage" in stage:
        stage = stage["stage"]
        record("model", stage.steps)
        if "error" in sections["model"]:
            stage.release_adapted()
        record("generation", stage.generation if stage.models else lambda: skipped("no adapted models"))
        record("qlora", stage.qlora)
        del stage
    else:
        for name in ("model", "generation", "qlora"):
            record(name, lambda: stage or skipped("time budget"))
    record("layer_compiled", lambda: layer_section(settings, deadline, compiled=True))
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if not args.smoke:
        require_cuda()
    settings = settings_from(args)
    report = run(settings, Path(args.output_dir))
    print(to_markdown(report))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
