"""Does the training path work on a GPU? Every adapter method, trained by ``GoatTrainer`` on CUDA, against
the same run on the CPU.

``gpu_check.py`` measures cost; this checks correctness on the device, where CPU-only tests cannot look
(the first GPU run found an initialisation that mixed CPU and CUDA tensors). For each method, on a
config-built LLaMA with random weights (adapters on q/k/v/up/down):

* ``fp32 gap``: four optimiser steps (batch 4, gradient accumulation 2, AdamW, lr 1e-3, the balance loss at
  GoatConfig's default coefficient) from the same base weights, on the CPU and on the device, TF32 off; the largest relative difference of
  the logged losses. GOAT initialises on the device (its SVDs run there), so this also compares the
  cuSOLVER and LAPACK initialisations through what they train to;
* ``bf16``: the same run on the device under ``--bf16`` (autocast), its largest relative difference to fp32;
* ``reload``: the device-trained adapter saved, loaded onto a fresh copy of the base on the device, and
  the largest absolute difference of their logits (0 expected: the same tensors on the same device);
* ``unload``: whether ``unload()`` returns the base weights bit for bit;
* ``generate``: whether greedy decoding with the KV cache gives the tokens decoding without it gives;
* and for goat, the same training on a 4-bit NF4 base (bitsandbytes): finite losses.

A row passes when every check holds: fp32 gap < 1e-3, bf16 gap < 1e-3, reload 0, unload and generate
exact, and every loss finite. ``--smoke`` runs it all on the CPU against itself (a code-path check, not a
device figure); a real run refuses a machine without CUDA.

    python benchmarks/gpu_train_check.py --output_dir benchmarks/results      # one GPU: about a minute
    python benchmarks/gpu_train_check.py --smoke --output_dir /tmp/gpu_train_check
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM, TrainingArguments
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling benchmark scripts (not a package)

import gpu_check  # noqa: E402

import goat  # noqa: E402
from goat.adapters.config import METHODS as ALL_METHODS  # noqa: E402
from goat.train.trainer import GoatTrainer  # noqa: E402

# every method but the two without an adapter of their own to reload or unload (kasa truncates the base; full trains it)
METHODS = tuple(m for m in ALL_METHODS if m not in ("kasa", "full"))
OUTPUT_STEM = "gpu_train_check"
FP32_TOLERANCE = 1e-3  # relative, largest over the logged losses
# bf16 autocast moved LoRA's 4-step losses by 4e-5 on an H200; a balance term added twice moved them by 3e-3
BF16_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Settings:
    device: str = "cuda"
    hidden_size: int = 256
    intermediate_size: int = 512
    layers: int = 4
    heads: int = 8
    vocab_size: int = 1024
    seq_len: int = 64
    examples: int = 32
    r: int = 16
    num_experts: int = 4
    top_k: int = 2
    steps: int = 4
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 2
    learning_rate: float = 1e-3
    new_tokens: int = 8
    methods: tuple[str, ...] = METHODS
    seed: int = 0
    smoke: bool = False


def smoke(settings: Settings) -> Settings:
    """The same checks on the CPU at tiny shapes: CI runs every code path with it."""
    return replace(
        settings, device="cpu", hidden_size=32, intermediate_size=64, layers=2, heads=4, vocab_size=64, seq_len=12,
        examples=8, r=8, steps=2, new_tokens=3, methods=("goat", "pissa"), smoke=True,
    )  # fmt: skip


def base_model(settings: Settings) -> LlamaForCausalLM:
    """The config-built LLaMA with weights drawn after ``torch.manual_seed(seed)``, in float32 on the CPU."""
    hf_logging.set_verbosity_error()
    torch.manual_seed(settings.seed)
    config = LlamaConfig(
        vocab_size=settings.vocab_size,
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads,
        num_key_value_heads=settings.heads,
        max_position_embeddings=2 * settings.seq_len,
    )
    return LlamaForCausalLM(config)


def training_rows(settings: Settings) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(settings.seed + 1)
    rows = []
    for i in range(settings.examples):
        ids = torch.randint(3, settings.vocab_size, (settings.seq_len,), generator=generator)
        labels = ids.clone()
        labels[: 2 + i % 5] = -100  # uneven token counts: the loss is normalised per step's tokens
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def adapter_config(method: str, settings: Settings) -> goat.GoatConfig:
    return goat.GoatConfig(
        method=method,
        r=settings.r,
        num_experts=settings.num_experts,  # single-adapter methods ignore it
        top_k=settings.top_k,
        lora_dropout=0.0,
        target_modules=list(gpu_check.LLAMA_TARGETS),
    )


def train(
    base: torch.nn.Module, config: goat.GoatConfig, settings: Settings, output_dir: Path, *, bf16: bool
) -> tuple[goat.GoatModel, list[float]]:
    """``(trained model, logged loss of each step)``: ``config`` initialised on ``base`` (adapted in place) and
    trained on the device ``base`` is on."""
    device = next(base.parameters()).device.type
    model = goat.get_goat_model(base, config)
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=settings.per_device_train_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        max_steps=settings.steps,
        learning_rate=settings.learning_rate,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=device == "cpu",
        bf16=bf16,
        disable_tqdm=True,
        seed=settings.seed,
    )
    trainer = GoatTrainer(model=model, args=args, train_dataset=training_rows(settings))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return model.eval(), losses


def relative_gap(got: list[float], want: list[float]) -> float:
    if len(got) != len(want) or not got:
        return math.inf
    return max(abs(g - w) / max(abs(w), 1e-12) for g, w in zip(got, want))


def probe(settings: Settings, device: str) -> torch.Tensor:
    ids = torch.randint(3, settings.vocab_size, (2, settings.seq_len // 2), generator=torch.Generator().manual_seed(7))
    return ids.to(device)


def reload_gap(model: goat.GoatModel, base: LlamaForCausalLM, settings: Settings, folder: Path) -> float:
    """Largest |logits| difference between ``model`` and its saved adapter loaded onto a fresh copy of ``base``."""
    device = str(next(model.parameters()).device)
    model.save_pretrained(folder)
    loaded = goat.load_goat_model(copy.deepcopy(base).to(device), folder).eval()
    ids = probe(settings, device)
    with torch.no_grad():
        return (model(input_ids=ids).logits - loaded(input_ids=ids).logits).abs().max().item()


def generates_alike(model: goat.GoatModel, settings: Settings) -> bool:
    """Greedy decoding with the KV cache gives the tokens decoding without it gives."""
    ids = probe(settings, str(next(model.parameters()).device))[:1]
    with torch.no_grad():
        common = dict(max_new_tokens=settings.new_tokens, do_sample=False, pad_token_id=0)
        cached = model.generate(input_ids=ids, use_cache=True, **common)
        uncached = model.generate(input_ids=ids, use_cache=False, **common)
    return torch.equal(cached, uncached)


def unloads_exactly(model: goat.GoatModel, base: LlamaForCausalLM) -> bool:
    restored = model.unload().state_dict()
    original = base.state_dict()
    return restored.keys() == original.keys() and all(
        torch.equal(restored[name].cpu(), original[name]) for name in original
    )


def method_row(method: str, base: LlamaForCausalLM, settings: Settings, work: Path) -> dict[str, Any]:
    config = adapter_config(method, settings)
    on = settings.device
    _, cpu_losses = train(copy.deepcopy(base), config, settings, work / f"{method}-cpu", bf16=False)
    model, device_losses = train(copy.deepcopy(base).to(on), config, settings, work / f"{method}-fp32", bf16=False)
    _, bf16_losses = train(
        copy.deepcopy(base).to(on), config, settings, work / f"{method}-bf16", bf16=not settings.smoke
    )
    row = {
        "method": method,
        "cpu_losses": cpu_losses,
        "device_losses": device_losses,
        "bf16_losses": bf16_losses,
        "fp32_gap": relative_gap(device_losses, cpu_losses),
        "bf16_gap": relative_gap(bf16_losses, device_losses),
        "reload_gap": reload_gap(model, base, settings, work / f"{method}-adapter"),
        "generate_exact": generates_alike(model, settings),
        "unload_exact": unloads_exactly(model, base),
    }
    finite = all(math.isfinite(x) for x in cpu_losses + device_losses + bf16_losses)
    row["passed"] = bool(
        finite
        and row["fp32_gap"] < FP32_TOLERANCE
        and row["bf16_gap"] < BF16_TOLERANCE
        and row["reload_gap"] == 0.0
        and row["generate_exact"]
        and row["unload_exact"]
    )
    return row


def four_bit_row(base: LlamaForCausalLM, settings: Settings, work: Path) -> dict[str, Any]:
    """goat on an NF4 base (compute in bf16 on a GPU, float32 in the smoke run): the losses are finite."""
    quantized = copy.deepcopy(base).to(settings.device)
    compute = torch.float32 if settings.smoke else torch.bfloat16
    replaced = gpu_check.quantize_4bit(quantized, compute)
    config = adapter_config("goat", settings)
    _, losses = train(quantized, config, settings, work / "goat-4bit", bf16=not settings.smoke)
    return {"method": "goat (4-bit base)", "quantized_linears": replaced, "device_losses": losses,
            "passed": bool(losses) and all(math.isfinite(x) for x in losses)}  # fmt: skip


def guarded(name: str, check) -> dict[str, Any]:  # noqa: ANN001
    """``check()``'s row, or a failed row with the error and where it raised (gpu_check.guarded)."""
    row = gpu_check.guarded(check)
    return {"method": name, "passed": False, **row} if "error" in row else row


def run(settings: Settings, output_dir: Path) -> dict[str, Any]:
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    start = time.perf_counter()
    base = base_model(settings)
    rows = []
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        for method in settings.methods:
            rows.append(guarded(method, lambda: method_row(method, base, settings, work)))
            print(f"{method}: {'ok' if rows[-1]['passed'] else 'FAILED'}", flush=True)
        rows.append(guarded("goat (4-bit base)", lambda: four_bit_row(base, settings, work)))
    report = {
        "environment": gpu_check.environment(gpu_check.Settings(device=settings.device)),
        "settings": asdict(settings),
        "tolerances": {"fp32_gap": FP32_TOLERANCE, "bf16_gap": BF16_TOLERANCE},
        "rows": rows,
        "passed": all(row["passed"] for row in rows),
        "wall_s": time.perf_counter() - start,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / f"{OUTPUT_STEM}.json").write_text(json.dumps(report, indent=1))
    (output_dir / f"{OUTPUT_STEM}.md").write_text(to_markdown(report))
    return report


def to_markdown(report: dict[str, Any]) -> str:
    env, settings = report["environment"], report["settings"]
    lines = [
        "# GPU training check",
        "",
        *(["**SMOKE RUN (CPU against CPU, tiny shapes: not a device check)**", ""] if settings["smoke"] else []),
        f"- date: {env['date']}",
        f"- device: {env['device']} (CUDA {env['cuda']})",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        "- settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()),
        f"- tolerances: fp32 gap < {FP32_TOLERANCE:g}, bf16 gap < {BF16_TOLERANCE:g}, reload 0, unload and generate exact",
        f"- all passed: {report['passed']}; wall time: {report['wall_s']:.0f} s",
        "",
        "| method | fp32 gap (device vs CPU) | bf16 gap | reload max abs | unload exact | generate exact | passed |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        if "error" in row:
            lines.append(f"| {row['method']} | error: {row['error'][:200]} | | | | | False |")
            continue
        cells = [f"{row[key]:.2e}" if key in row else "" for key in ("fp32_gap", "bf16_gap", "reload_gap")]
        flags = [str(row.get(key, "")) for key in ("unload_exact", "generate_exact")]
        lines.append(f"| {row['method']} | " + " | ".join(cells + flags) + f" | {row['passed']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="benchmarks/results")
    parser.add_argument("--smoke", action="store_true", help="the CPU against itself at tiny shapes (CI)")
    args = parser.parse_args(argv)
    if not args.smoke:
        gpu_check.require_cuda()
    settings = smoke(Settings()) if args.smoke else Settings()
    report = run(settings, Path(args.output_dir))
    print(to_markdown(report))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
