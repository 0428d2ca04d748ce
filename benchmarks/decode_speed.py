"""Greedy-decoding throughput with a KV cache: base, LoRA merged, LoRA, MoLoRA and GOAT (issue 21).

The evaluation harnesses generate a lot (GSM8K: 1,319 problems, HumanEval: 164, every epoch), and a
served MoE adapter cannot be merged into W0, so its per-token cost is paid at every decoding step.
This measures, on one causal LM (the embedded SmolLM2-135M by default):

* ``base``        — the model without adapters;
* ``lora_merged`` — peft LoRA folded into W0 (``merge_and_unload``): the base's cost;
* ``lora``        — peft LoRA, unmerged;
* ``molora``      — this package's MoLoRA (E experts of rank r/E, top-k routing);
* ``goat``        — this package's GOAT (MoLoRA's routing plus the frozen W_res path).

Each generate call decodes exactly ``--new_tokens`` tokens greedily (no early stop) after a short
prompt, so the time includes one prefill. Rounds are interleaved (every variant once per round,
order reversed on odd rounds) so that drifts in machine load hit all variants alike; the table
gives medians, tokens per second and the time ratio to ``lora`` (unmerged), in wall-clock time and
in the CPU time of the calling thread. With one intra-op thread (the default) torch computes in that
thread, so its CPU time leaves out the time other processes take from a shared machine; on a GPU
only the wall-clock figures mean anything.

    python benchmarks/decode_speed.py                        # SmolLM2, batch 1 and 16, 1 thread
    python benchmarks/decode_speed.py --threads 2 --json decode.json
    python benchmarks/decode_speed.py --smoke                # tiny config-built LLaMA, seconds

``--reference_commit C`` adds ``molora@C`` and ``goat@C``: the same adapters (same weights) rebuilt
from the layers module as of git commit ``C`` (``src/goat/adapters/layers.py``, earlier
``src/goat/layers.py``), timed in the same interleaved rounds, so a change to the layers is measured
side by side with what it replaces.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

import goat
from goat.tasks.embedded import resolve_causal_model_path

VARIANTS = ("base", "lora_merged", "lora", "molora", "goat")
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "up_proj", "down_proj")  # paper Table 12


@dataclass(frozen=True)
class AdapterSettings:
    """The adapters every variant uses (issue 21: r = 8, E = 8, k = 2 on q/k/v/up/down)."""

    r: int
    lora_alpha: float
    num_experts: int
    top_k: int
    target_modules: tuple[str, ...]
    seed: int = 0

    def config(self, method: str) -> goat.GoatConfig:
        """The :class:`goat.GoatConfig` of ``method`` at these settings (no dropout: decoding is eval)."""
        return goat.GoatConfig(
            method=method,
            r=self.r,
            lora_alpha=self.lora_alpha,
            num_experts=self.num_experts,
            top_k=self.top_k,
            lora_dropout=0.0,
            target_modules=list(self.target_modules),
            seed=self.seed,
        )


@dataclass(frozen=True)
class DecodeRow:
    variant: str
    batch_size: int
    new_tokens: int
    median_s: float
    iqr_s: float
    tokens_per_s: float
    ratio_to_lora: float
    cpu_s: float  # median CPU time of the calling thread
    cpu_ratio_to_lora: float


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so wall-clock times cover it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def build_decode_variants(
    base: nn.Module, settings: AdapterSettings, variants: tuple[str, ...] = VARIANTS
) -> dict[str, nn.Module]:
    """``{variant: model}`` in eval mode: ``base`` itself, and adapted deep copies of it for the others.

    ``lora_merged`` is a copy of the ``lora`` model with the adapter merged into its weights.
    """
    models: dict[str, nn.Module] = {}
    for name in variants:
        if name == "base":
            models[name] = base
            continue
        method = "lora" if name == "lora_merged" else name
        adapted = goat.get_goat_model(copy.deepcopy(base), settings.config(method))
        models[name] = adapted.merge_and_unload() if name == "lora_merged" else adapted
    return {name: model.eval() for name, model in models.items()}


def layers_at_commit(commit: str) -> types.ModuleType:
    """``goat.adapters.layers`` as of git ``commit`` (read with ``git show``), imported under another name.

    Before the adapter library had its folder the file was ``src/goat/layers.py``; its imports are
    pointed at ``goat.adapters``, where the same modules live now."""
    root = Path(__file__).resolve().parents[1]
    for path, moved in (("src/goat/adapters/layers.py", False), ("src/goat/layers.py", True)):
        shown = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True, text=True)
        if shown.returncode == 0:
            break
    else:
        raise ValueError(f"commit {commit} has no goat layers module: {shown.stderr.strip()}")
    source = shown.stdout
    if moved:
        source = source.replace("from goat import ", "from goat.adapters import ").replace(
            "from goat.", "from goat.adapters."
        )
    module = types.ModuleType(f"goat_layers_{commit}")
    module.__dict__["__file__"] = f"{commit}:{path}"
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 (this repository's own file)
    return module


def with_reference_layers(model: nn.Module, reference: types.ModuleType) -> nn.Module:
    """``model`` with every LoRA-expert adapter rebuilt from ``reference``'s classes, with its weights.

    The adapter and its router are instances of the reference module's ``LoraExperts`` and ``Router``,
    so every method they call (helpers included) is the reference's; the layer around them
    (``LoraMoELinear``) is the live one."""
    from goat.adapters.layers import LoraMoELinear

    config = model.goat_config
    for layer in model.modules():
        if not isinstance(layer, LoraMoELinear):
            continue
        for name, live in list(layer.adapters.items()):
            rebuilt = reference.LoraExperts(live.in_features, live.out_features, config, live.lora_A.device)
            rebuilt.load_state_dict(live.state_dict())
            if live.residual_A is not None:
                rebuilt.set_residual(live.residual_A, live.residual_B)
            layer.adapters[name] = rebuilt.train(live.training)
    return model


def add_reference_variants(models: dict[str, nn.Module], commit: str) -> dict[str, nn.Module]:
    """``molora@commit`` and ``goat@commit``: deep copies of the molora / goat models (same weights)
    whose adapters are the layers of ``commit``."""
    reference = layers_at_commit(commit)
    for name in ("molora", "goat"):
        if name in models:
            models[f"{name}@{commit}"] = with_reference_layers(copy.deepcopy(models[name]), reference)
    return models


def greedy_config(new_tokens: int, pad_token_id: int) -> GenerationConfig:
    """Greedy decoding of exactly ``new_tokens`` tokens with a KV cache (no sampling, no early stop)."""
    return GenerationConfig(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
        pad_token_id=pad_token_id,
        eos_token_id=None,
    )


def generate_seconds(model: nn.Module, input_ids: torch.Tensor, new_tokens: int) -> tuple[float, float]:
    """(wall-clock, calling thread's CPU) seconds of one greedy ``generate`` (prefill + ``new_tokens`` steps)."""
    device = input_ids.device
    config = greedy_config(new_tokens, pad_token_id=0)
    synchronize(device)
    start, start_cpu = time.perf_counter(), time.thread_time()
    with torch.inference_mode():
        output = model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), generation_config=config
        )
    synchronize(device)
    elapsed, cpu = time.perf_counter() - start, time.thread_time() - start_cpu
    if output.shape[1] != input_ids.shape[1] + new_tokens:
        raise RuntimeError(f"generate returned {output.shape[1] - input_ids.shape[1]} new tokens, not {new_tokens}.")
    return elapsed, cpu


def prompt_ids(vocab_size: int, batch_size: int, prompt_len: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """Random prompt token ids ``[batch, prompt_len]`` (no padding: every sequence has the same length)."""
    generator = torch.Generator().manual_seed(seed)
    low = min(1000, vocab_size // 2)  # skip special tokens in real vocabularies
    return torch.randint(low, vocab_size, (batch_size, prompt_len), generator=generator).to(device)


def decode_rows(
    times: dict[str, list[float]], cpu_times: dict[str, list[float]], batch_size: int, new_tokens: int
) -> list[DecodeRow]:
    """Median time, IQR, tokens/s and ratios to ``lora`` of each variant's interleaved timings."""
    medians = {name: statistics.median(t) for name, t in times.items()}
    cpu = {name: statistics.median(t) for name, t in cpu_times.items()}
    reference, cpu_reference = medians.get("lora", float("nan")), cpu.get("lora", float("nan"))
    rows = []
    for name, values in times.items():
        q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        rows.append(
            DecodeRow(
                variant=name,
                batch_size=batch_size,
                new_tokens=new_tokens,
                median_s=medians[name],
                iqr_s=q[2] - q[0],
                tokens_per_s=batch_size * new_tokens / medians[name],
                ratio_to_lora=medians[name] / reference,
                cpu_s=cpu[name],
                cpu_ratio_to_lora=cpu[name] / cpu_reference if cpu_reference > 0 else float("nan"),
            )
        )
    return rows


def interleaved_decode(
    models: dict[str, nn.Module],
    batch_sizes: list[int],
    *,
    new_tokens: int,
    prompt_len: int,
    rounds: int,
    warmup: int = 1,
    seed: int = 0,
) -> list[DecodeRow]:
    """Greedy-decoding time of every model at every batch size: ``warmup`` untimed then ``rounds``
    timed rounds, each timing every model once, order alternating; one :class:`DecodeRow` each."""
    any_model = next(iter(models.values()))
    device, vocab = model_device(any_model), any_model.config.vocab_size
    names = list(models)
    rows: list[DecodeRow] = []
    for batch_size in batch_sizes:
        ids = prompt_ids(vocab, batch_size, prompt_len, device, seed)
        times: dict[str, list[float]] = {name: [] for name in names}
        cpu_times: dict[str, list[float]] = {name: [] for name in names}
        for i in tqdm(range(warmup + rounds), desc=f"decode batch {batch_size}", leave=False):
            for name in names if i % 2 == 0 else names[::-1]:
                elapsed, cpu = generate_seconds(models[name], ids, new_tokens)
                if i >= warmup:
                    times[name].append(elapsed)
                    cpu_times[name].append(cpu)
        rows += decode_rows(times, cpu_times, batch_size, new_tokens)
    return rows


def format_decode_table(rows: list[DecodeRow]) -> str:
    lines = [
        f"{'batch':>5} {'variant':<18} {'median s':>9} {'IQR s':>7} {'tokens/s':>9} {'x LoRA':>7} "
        f"{'CPU s':>7} {'CPU x LoRA':>10}"
    ]
    for r in rows:
        lines.append(
            f"{r.batch_size:>5} {r.variant:<18} {r.median_s:>9.3f} {r.iqr_s:>7.3f} {r.tokens_per_s:>9.1f} "
            f"{r.ratio_to_lora:>7.3f} {r.cpu_s:>7.3f} {r.cpu_ratio_to_lora:>10.3f}"
        )
    return "\n".join(lines)


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer, 64-wide LLaMA with random weights, for ``--smoke``."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def load_base(model: str) -> nn.Module:
    """``'embedded'`` (SmolLM2-135M, converted locally), a local path / hub id, or ``'smoke'``; float32, eval."""
    hf_logging.set_verbosity_error()
    if model == "smoke":
        return tiny_llama().eval()
    return AutoModelForCausalLM.from_pretrained(resolve_causal_model_path(model), dtype=torch.float32).eval()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model_name_or_path", default="embedded", help="'embedded' (SmolLM2-135M), a local path or hub id."
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument(
        "--decode_batch_sizes", type=int, nargs="+", default=[1, 16], help="Sequences per generate call."
    )
    parser.add_argument("--new_tokens", type=int, default=24, help="Tokens decoded per generate call.")
    parser.add_argument("--prompt_len", type=int, default=32, help="Prompt tokens per sequence.")
    parser.add_argument("--rounds", type=int, default=5, help="Timed interleaved rounds.")
    parser.add_argument("--warmup", type=int, default=1, help="Untimed rounds first.")
    parser.add_argument("--r", type=int, default=8, help="Total rank r (MoE: E experts of rank r/E).")
    parser.add_argument("--lora_alpha", type=float, default=16.0)
    parser.add_argument("--num_experts", type=int, default=8)
    parser.add_argument("--top_k", type=int, default=2)
    parser.add_argument("--target_modules", nargs="+", default=list(LLAMA_TARGETS))
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (a user's CPU run: 1).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference_commit", help="Also time molora/goat with the layers' forward of this git commit.")
    parser.add_argument("--smoke", action="store_true", help="Tiny config-built LLaMA, 4 tokens, 1 round.")
    parser.add_argument("--json", metavar="PATH", help="Also write the settings and rows as JSON.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.model_name_or_path, args.decode_batch_sizes, args.new_tokens, args.prompt_len, args.rounds, args.warmup = (
            "smoke",
            [1, 2],
            4,
            8,
            1,
            0,
        )
    return args


def main(argv: list[str] | None = None) -> list[DecodeRow]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    settings = AdapterSettings(
        args.r, args.lora_alpha, args.num_experts, args.top_k, tuple(args.target_modules), args.seed
    )
    models = build_decode_variants(load_base(args.model_name_or_path), settings, tuple(args.variants))
    if args.reference_commit:
        models = add_reference_variants(models, args.reference_commit)
    rows = interleaved_decode(
        models,
        args.decode_batch_sizes,
        new_tokens=args.new_tokens,
        prompt_len=args.prompt_len,
        rounds=args.rounds,
        warmup=args.warmup,
        seed=args.seed,
    )
    print(
        f"model={args.model_name_or_path}, float32, CPU, {torch.get_num_threads()} thread(s); greedy decoding with a KV cache, "
        f"prompt {args.prompt_len} + {args.new_tokens} new tokens; r={args.r}, E={args.num_experts}, k={args.top_k} "
        f"on {','.join(args.target_modules)}; median of {args.rounds} interleaved rounds; ratio = time / LoRA (unmerged)"
    )
    print(format_decode_table(rows))
    if args.json:
        settings_out = {k: v for k, v in vars(args).items() if k not in ("json", "smoke")}
        settings_out["threads"] = torch.get_num_threads()
        payload = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "settings": settings_out,
            "torch": torch.__version__,
            "rows": [asdict(r) for r in rows],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
