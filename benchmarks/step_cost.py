"""Peak memory and time of one training step per method, as ratios to LoRA (paper Table 7, App. F).

Table 7 compares LoRA-MoE variants (MoLoRA, HydraLoRA, GOAT) by memory and epoch time on one A100
for LLaMA-2-7B. Here every method trains the same model on the same batch, one step being
forward + backward + AdamW step (+ the balance loss of App. B for MoE methods, which the adapted model adds to
its own loss with ``GoatConfig.aux_loss_coef``, 1e-3 by default).

Each measurement runs in a fresh child process (forked before any model is built), so memory
figures never mix. Machine load drifts between children, so ``--rounds`` repeats the whole set of
methods, alternating their order, and reports per-method medians over rounds.
What "peak memory" means:

* CPU (default): the child's resident-set high-water mark (``getrusage(...).ru_maxrss``) over the
  measured steps. The mark is reset through ``/proc/self/clear_refs`` after the model is built, so
  it counts weights + gradients + AdamW state + activations + allocator slack + the Python/torch
  runtime. ``train Δ`` subtracts the resident size just before the first step, leaving what
  training adds (gradients, optimizer state, activations). If the reset is unavailable (not
  Linux), the peak also covers model loading and ``hwm reset`` says "no".
* CUDA (``--device cuda``): ``torch.cuda.max_memory_allocated`` over the measured steps (tensors
  only, no allocator cache or CUDA context); ``train Δ`` subtracts the allocation before the first step.

    python benchmarks/step_cost.py                       # packaged MiniLM encoder, batch 16 x 128
    python benchmarks/step_cost.py --model_name_or_path roberta-base --json step_cost.json
    python benchmarks/step_cost.py --smoke               # tiny config-built BERT, seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification
from transformers.utils import logging as hf_logging

import goat
from goat.tasks.embedded import embedded_model_path

METHODS = ("full", "lora", "molora", "hydralora", "goat")
BERT_TARGETS = ("query", "key", "value", "output.dense", "intermediate.dense")  # "output.dense": attention + MLP


@dataclass(frozen=True)
class Spec:
    """What one child process measures."""

    method: str
    model_name_or_path: str  # "embedded", a hub id / local path, or "smoke"
    targets: tuple[str, ...]
    r: int
    lora_alpha: float
    num_experts: int
    top_k: int
    per_device_train_batch_size: int
    seq_len: int
    steps: int
    warmup: int
    threads: int | None
    device: str
    seed: int


@dataclass(frozen=True)
class Result:
    method: str
    trainable: int
    step_ms: float
    peak_mib: float
    before_mib: float
    train_delta_mib: float
    hwm_reset: bool
    time_ratio: float = float("nan")
    peak_ratio: float = float("nan")
    delta_ratio: float = float("nan")


# -------------------------------------------------------------------------- memory
def _mib(kib: float) -> float:
    return kib / 1024.0


def _rss_kib() -> float:
    """Current resident set size (Linux ``/proc``; falls back to the high-water mark elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _reset_rss_peak() -> bool:
    """Reset the process's RSS high-water mark (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- model
def build_model(spec: Spec) -> nn.Module:
    """The sequence classifier with 2 labels: the packaged MiniLM, a hub/local model, or a tiny BERT."""
    hf_logging.set_verbosity_error()  # "newly initialised classifier" is expected
    torch.manual_seed(spec.seed)
    if spec.model_name_or_path == "smoke":
        config = BertConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            num_labels=2,
        )
        return BertForSequenceClassification(config)
    if spec.model_name_or_path == "embedded":
        path = str(embedded_model_path())
    else:
        path = spec.model_name_or_path
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)


def adapter_config(spec: Spec) -> goat.GoatConfig:
    """LoRA-family methods adapt ``spec.targets`` with total rank r; the classifier head trains in full."""
    if spec.method == "full":
        return goat.GoatConfig(method="full")
    return goat.GoatConfig(
        method=spec.method,
        r=spec.r,
        lora_alpha=spec.lora_alpha,
        num_experts=spec.num_experts,
        top_k=spec.top_k,
        target_modules=list(spec.targets),
        modules_to_save=["classifier"],
        seed=spec.seed,
    )


def make_batch(spec: Spec, vocab_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Random token ids and labels, identical for every method (seeded)."""
    generator = torch.Generator().manual_seed(spec.seed + 1)
    low = min(1000, vocab_size // 2)  # skip special tokens in real vocabularies
    ids = torch.randint(low, vocab_size, (spec.per_device_train_batch_size, spec.seq_len), generator=generator)
    labels = torch.randint(0, 2, (spec.per_device_train_batch_size,), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    return {k: v.to(device) for k, v in batch.items()}


# ------------------------------------------------------------------------- measure
def measure(spec: Spec) -> Result:
    """Build, adapt and train ``spec.method`` for warmup + steps; runs inside a fresh child process."""
    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    device = torch.device(spec.device)
    cuda = device.type == "cuda"
    model = goat.get_goat_model(build_model(spec), adapter_config(spec)).to(device).train()
    trainable_params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable_params, lr=1e-4, weight_decay=0.0)
    batch = make_batch(spec, model.config.vocab_size, device)
    gc.collect()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before, hwm_reset = torch.cuda.memory_allocated(device) / 1024, True
    else:
        before, hwm_reset = _rss_kib(), _reset_rss_peak()
    times = []
    for step in tqdm(range(spec.warmup + spec.steps), desc=spec.method, leave=False):
        start = time.perf_counter()
        loss = model(**batch).loss  # training mode: task loss + aux_loss_coef * L_b (goat.adapters.aux_loss)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize(device)
        if step >= spec.warmup:
            times.append(time.perf_counter() - start)
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) / 1024
    else:
        peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    return Result(
        method=spec.method,
        trainable=sum(p.numel() for p in trainable_params),
        step_ms=1e3 * statistics.median(times),
        peak_mib=_mib(peak),
        before_mib=_mib(before),
        train_delta_mib=_mib(peak - before),
        hwm_reset=hwm_reset,
    )


def measure_in_child(spec: Spec) -> Result:
    """:func:`measure` in a new process: forked on CPU, spawned for CUDA (which cannot be forked).

    Forking reuses the imported libraries, and is safe because the CLI parent runs no torch op
    before it (a thread pool started in the parent would not survive the fork): call ``main``
    from a fresh process, as the command line does.
    """
    context = mp.get_context("spawn" if spec.device.startswith("cuda") else "fork")
    with context.Pool(processes=1) as pool:
        return pool.apply(measure, (spec,))


def median_over_rounds(results: list[Result]) -> Result:
    """One method's result: the median step time and memory figures over its rounds."""
    return Result(
        method=results[0].method,
        trainable=results[0].trainable,
        step_ms=statistics.median(r.step_ms for r in results),
        peak_mib=statistics.median(r.peak_mib for r in results),
        before_mib=statistics.median(r.before_mib for r in results),
        train_delta_mib=statistics.median(r.train_delta_mib for r in results),
        hwm_reset=all(r.hwm_reset for r in results),
    )


def run_rounds(base: Spec, methods: list[str], rounds: int) -> list[Result]:
    """Every method once per round in a fresh child, order reversed on odd rounds; medians over rounds."""
    runs: dict[str, list[Result]] = {m: [] for m in methods}
    for i in tqdm(range(rounds), desc="rounds"):
        for method in methods if i % 2 == 0 else methods[::-1]:
            runs[method].append(measure_in_child(replace(base, method=method)))
    return [median_over_rounds(runs[m]) for m in methods]


def with_ratios(results: list[Result], reference: str = "lora") -> list[Result]:
    """Each result with time / peak / train-Δ ratios to ``reference`` (LoRA, as in Table 7's reading)."""
    ref = next((r for r in results if r.method == reference), None)
    if ref is None:
        return results
    return [
        replace(
            r,
            time_ratio=r.step_ms / ref.step_ms,
            peak_ratio=r.peak_mib / ref.peak_mib,
            delta_ratio=r.train_delta_mib / ref.train_delta_mib if ref.train_delta_mib > 0 else float("nan"),
        )
        for r in results
    ]


def format_table(results: list[Result]) -> str:
    header = (
        f"{'method':<10} {'trainable':>12} {'step ms':>9} {'x LoRA':>7} {'peak MiB':>9} {'x LoRA':>7} "
        f"{'train Δ MiB':>11} {'x LoRA':>7} {'hwm reset':>9}"
    )
    lines = [header]
    for r in results:
        lines.append(
            f"{r.method:<10} {r.trainable:>12,} {r.step_ms:>9.1f} {r.time_ratio:>7.3f} {r.peak_mib:>9.1f} "
            f"{r.peak_ratio:>7.3f} {r.train_delta_mib:>11.1f} {r.delta_ratio:>7.3f} {'yes' if r.hwm_reset else 'no':>9}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model_name_or_path", default="embedded", help="'embedded' (packaged MiniLM), a hub id or a path."
    )
    parser.add_argument("--targets", nargs="+", default=list(BERT_TARGETS), help="Linear names to adapt.")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=goat.METHODS)
    parser.add_argument("--r", type=int, default=32, help="Total rank r (authors' GLUE script: 32).")
    parser.add_argument("--lora_alpha", type=float, default=64.0, help="LoRA alpha (authors' GLUE script: 64).")
    parser.add_argument("--num_experts", type=int, default=8)
    parser.add_argument("--top_k", type=int, default=2)
    parser.add_argument("--per_device_train_batch_size", type=int, default=16, help="Examples per step.")
    parser.add_argument("--seq_len", type=int, default=128, help="Tokens per example (GLUE max length: 128).")
    parser.add_argument("--steps", type=int, default=5, help="Timed steps per method and round.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first (AdamW state is allocated here).")
    parser.add_argument("--rounds", type=int, default=3, help="Repeats of the whole method set (medians).")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's).")
    parser.add_argument("--device", default="cpu", help="'cpu' or a CUDA device such as 'cuda' / 'cuda:0'.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--smoke", action="store_true", help="Tiny config-built BERT, batch 2 x 16, r=8, E=4, 2 steps, 1 round."
    )
    parser.add_argument("--json", metavar="PATH", help="Also write the settings and rows as JSON.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.model_name_or_path, args.r, args.lora_alpha, args.num_experts = "smoke", 8, 16.0, 4
        args.per_device_train_batch_size, args.seq_len, args.steps, args.warmup, args.rounds = 2, 16, 2, 1, 1
    return args


def main(argv: list[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    base = Spec(
        method="",
        model_name_or_path=args.model_name_or_path,
        targets=tuple(args.targets),
        r=args.r,
        lora_alpha=args.lora_alpha,
        num_experts=args.num_experts,
        top_k=args.top_k,
        per_device_train_batch_size=args.per_device_train_batch_size,
        seq_len=args.seq_len,
        steps=args.steps,
        warmup=args.warmup,
        threads=args.threads,
        device=args.device,
        seed=args.seed,
    )
    results = with_ratios(run_rounds(base, list(args.methods), args.rounds))
    memory = (
        "torch.cuda.max_memory_allocated" if args.device.startswith("cuda") else "process RSS high-water (ru_maxrss)"
    )
    print(
        f"model={args.model_name_or_path}, batch {args.per_device_train_batch_size} x {args.seq_len}, r={args.r}, E={args.num_experts}, "
        f"k={args.top_k}, device={args.device}; step = fwd + bwd + AdamW, median of {args.steps} steps, "
        f"then median over {args.rounds} round(s); "
        f"peak = {memory}; train Δ = peak - memory before the first step"
    )
    print(format_table(results))
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k not in ("json", "smoke")}
        payload = {"settings": settings, "torch": torch.__version__, "rows": [asdict(r) for r in results]}
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
