"""Forward+backward time of ONE adapted linear layer: peft LoRA vs GOAT vs a per-expert loop.

Implementations of the same total rank ``r`` on one ``nn.Linear(n, n)``:

* ``lora``  — peft's LoRA layer (rank r), through ``goat.get_goat_model(method="lora")``;
* ``goat``  — this package's :class:`goat.adapters.layers.LoraMoELinear`: all E rank-d experts run as one
  rank-r product whose r channels are gated by the sparse routing weights (eq. 12);
* ``molora`` — the same layer without SVD init, hence without the W_res path (what W_res costs is goat − molora);
* ``goat_unfused`` — goat as it was before W_res joined the experts' second product (issue 21, item 4):
  ``gated @ B`` and then ``addmm(delta, A_res x, B_res^T, alpha=-1)``, over the goat layer's parameters
  (checked equal at start-up): the "before" of that change, timed beside it;
* ``loop``  — the authors' dispatch, written here as a reference: a Python loop over experts that
  gathers the tokens routed to each, runs A_j/B_j on them and scatter-adds the weighted result.
  Like the authors' code it first runs expert 0 on every token to allocate the output.
  It shares the goat layer's parameters, so both compute the same function (checked at start-up).

Repeats are interleaved (each round times every variant, in alternating order) so that drifts in
machine load hit all variants alike; medians and ratios to LoRA are reported.
The input requires grad, as inside a network, so backward also computes the input gradient.

    python benchmarks/layer_speed.py                 # n = 1024 and 2048, 2048 tokens, r=32, E=8, k=2
    python benchmarks/layer_speed.py --threads 1 --json layer_speed.json
    python benchmarks/layer_speed.py --quick         # tiny shape, seconds
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import goat
from goat.adapters.layers import LoraMoELinear

VARIANTS = ("lora", "molora", "goat", "goat_unfused", "loop")


@dataclass(frozen=True)
class Setting:
    """One benchmark configuration (paper defaults: r = 32, E = 8, k = 2; dropout 0.05, Table 11)."""

    features: int
    tokens: int
    r: int
    num_experts: int
    top_k: int
    lora_dropout: float


@dataclass(frozen=True)
class Row:
    features: int
    tokens: int
    variant: str
    median_ms: float
    iqr_ms: float
    ratio_to_lora: float


class _Projection(nn.Module):
    """A model holding one square linear named ``proj``, the layer every variant adapts."""

    def __init__(self, features: int):
        super().__init__()
        self.proj = nn.Linear(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class PerExpertLoopLinear(nn.Module):
    """The authors' token dispatch over a :class:`LoraMoELinear`'s parameters (reference only).

    Same routing as eq. 9-10 (softmax, top-k, renormalise) and the App. B balance loss, then
    ``delta[t] += w_j(x_t) s_j B_j A_j dropout(x_t)`` expert by expert on the routed tokens only.
    """

    def __init__(self, layer: LoraMoELinear):
        super().__init__()
        self.layer = layer
        self.last_balance_loss: torch.Tensor | None = None

    def _expert(self, j: int, tokens: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        A = layer.lora_A[min(j, layer.lora_A.shape[0] - 1)]  # [d, n]
        return (layer.dropout(tokens) @ A.T) @ layer.lora_B[j] * layer.scalings[j]  # [t, m]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        tokens = x.reshape(-1, layer.in_features).to(layer.lora_A.dtype)  # adapters run in float32, as goat's
        residual = (tokens @ layer.residual_A.T) @ layer.residual_B.T  # W_res x, frozen (eq. 15)
        result = layer.base_layer(x)
        result = result - residual.reshape(*x.shape[:-1], -1).to(result.dtype)
        E, k = layer.num_experts, layer.router.top_k
        probs = F.softmax(F.linear(tokens, layer.router.weight), dim=-1)
        top_p, top_i = probs.topk(k, dim=-1)
        weights = top_p / top_p.sum(-1, keepdim=True)
        counts = torch.bincount(top_i.flatten(), minlength=E).float()
        self.last_balance_loss = (E * counts / counts.sum() * probs.mean(0)).sum()
        delta = torch.zeros_like(self._expert(0, tokens))  # the authors' shape probe on all tokens
        for j in range(E):
            rows, slot = torch.where(top_i == j)
            delta.index_add_(0, rows, self._expert(j, tokens[rows]) * weights[rows, slot, None])
        return result + delta.reshape(result.shape).to(result.dtype)


class UnfusedResidualLinear(nn.Module):
    """goat's forward as it was before W_res joined the experts' second GEMM (the reference of that change)."""

    def __init__(self, layer: LoraMoELinear):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        E, d, n = layer.num_experts, layer.expert_rank, layer.in_features
        tokens = x.reshape(-1, n).to(layer.lora_A.dtype)
        gates = layer.router(tokens) * layer.scalings
        hidden = F.linear(layer.dropout(tokens), layer.lora_A.reshape(-1, n))
        gated = (hidden.view(-1, E, d) * gates.unsqueeze(-1)).reshape(-1, E * d)
        delta = gated @ layer.lora_B.reshape(E * d, -1)
        delta = torch.addmm(delta, F.linear(tokens, layer.residual_A), layer.residual_B.T, alpha=-1)
        result = layer.base_layer(x)
        return result + delta.reshape(result.shape).to(result.dtype)


def build_variants(setting: Setting, seed: int = 0) -> dict[str, nn.Module]:
    """``{variant: module}``: each adapts its own copy of the same random base layer."""
    torch.manual_seed(seed)
    base = _Projection(setting.features)
    common = dict(r=setting.r, lora_alpha=2.0 * setting.r, lora_dropout=setting.lora_dropout, target_modules=["proj"])
    lora = goat.get_goat_model(copy.deepcopy(base), goat.GoatConfig(method="lora", **common))
    moe = dict(common, num_experts=setting.num_experts, top_k=setting.top_k)
    molora = goat.get_goat_model(copy.deepcopy(base), goat.GoatConfig(method="molora", **moe))
    ours = goat.get_goat_model(copy.deepcopy(base), goat.GoatConfig(method="goat", **moe))
    unfused = UnfusedResidualLinear(copy.deepcopy(ours.base_model.proj))
    loop = PerExpertLoopLinear(copy.deepcopy(ours.base_model.proj))
    modules = {"lora": lora, "molora": molora, "goat": ours, "goat_unfused": unfused, "loop": loop}
    return {name: module.train() for name, module in modules.items()}


def check_loop_matches_goat(modules: dict[str, nn.Module], setting: Setting) -> float:
    """Max |goat - variant| output difference over the loop and the unfused variant, dropout off: each computes eq. 12 too."""
    x = torch.randn(min(setting.tokens, 256), setting.features)
    gaps = []
    for name in ("loop", "goat_unfused"):
        goat_model, variant = modules["goat"].eval(), modules[name].eval()
        with torch.no_grad():
            expected = goat_model(x)
            gap = (expected - variant(x)).abs().max().item()
        goat_model.train()
        variant.train()
        if gap > 1e-4 * max(expected.abs().max().item(), 1.0):
            raise AssertionError(f"{name} differs from goat by {gap:.3g}; the reference is wrong.")
        gaps.append(gap)
    return max(gaps)


def time_step(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> float:
    """Seconds for one forward + backward (input gradient included); gradients are then dropped."""
    inputs = x.detach().clone().requires_grad_(True)
    start = time.perf_counter()
    module(inputs).backward(grad)
    elapsed = time.perf_counter() - start
    for param in module.parameters():
        param.grad = None
    return elapsed


def benchmark(setting: Setting, *, repeats: int, warmup: int, seed: int = 0) -> list[Row]:
    """Interleaved timing of every variant on one setting; one :class:`Row` per variant."""
    modules = build_variants(setting, seed)
    check_loop_matches_goat(modules, setting)
    generator = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(setting.tokens, setting.features, generator=generator)
    grad = torch.randn(setting.tokens, setting.features, generator=generator)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    rounds = tqdm(range(warmup + repeats), desc=f"n={setting.features}", leave=False)
    for i in rounds:
        order = VARIANTS if i % 2 == 0 else VARIANTS[::-1]
        for name in order:
            elapsed = time_step(modules[name], x, grad)
            if i >= warmup:
                times[name].append(elapsed)
    medians = {name: statistics.median(t) for name, t in times.items()}
    rows = []
    for name in VARIANTS:
        q = statistics.quantiles(times[name], n=4) if len(times[name]) > 1 else [times[name][0]] * 3
        rows.append(
            Row(
                features=setting.features,
                tokens=setting.tokens,
                variant=name,
                median_ms=1e3 * medians[name],
                iqr_ms=1e3 * (q[2] - q[0]),
                ratio_to_lora=medians[name] / medians["lora"],
            )
        )
    return rows


def format_table(rows: list[Row]) -> str:
    lines = [f"{'n=m':>6} {'tokens':>7} {'variant':<8} {'median ms':>10} {'IQR ms':>8} {'x LoRA':>7}"]
    for row in rows:
        lines.append(
            f"{row.features:>6} {row.tokens:>7} {row.variant:<8} {row.median_ms:>10.2f} "
            f"{row.iqr_ms:>8.2f} {row.ratio_to_lora:>7.3f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=int, nargs="+", default=[1024, 2048], help="n = m of the layer(s).")
    parser.add_argument("--tokens", type=int, default=2048, help="Tokens per forward (batch x sequence).")
    parser.add_argument("--r", type=int, default=32, help="Total rank r (LoRA rank; E experts of r/E).")
    parser.add_argument("--num_experts", type=int, default=8, help="Experts E.")
    parser.add_argument("--top_k", type=int, default=2, help="Experts per token k.")
    parser.add_argument("--lora_dropout", type=float, default=0.05, help="Adapter dropout (paper: 0.05).")
    parser.add_argument("--repeats", type=int, default=20, help="Timed rounds per setting.")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed rounds first.")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="Tiny shape (n=64, 128 tokens, r=8, E=4), 3 rounds.")
    parser.add_argument("--json", metavar="PATH", help="Also write the rows and settings as JSON.")
    args = parser.parse_args(argv)
    if args.quick:
        args.features, args.tokens, args.r, args.num_experts, args.repeats, args.warmup = [64], 128, 8, 4, 3, 1
    return args


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rows: list[Row] = []
    for features in args.features:
        setting = Setting(features, args.tokens, args.r, args.num_experts, args.top_k, args.lora_dropout)
        rows += benchmark(setting, repeats=args.repeats, warmup=args.warmup, seed=args.seed)
    print(
        f"one adapted Linear(n, n), float32, CPU, {torch.get_num_threads()} thread(s); forward+backward; "
        f"r={args.r}, E={args.num_experts}, k={args.top_k}, lora_dropout={args.lora_dropout}; "
        f"median of {args.repeats} interleaved rounds"
    )
    print(format_table(rows))
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k not in ("json", "quick")}
        settings["threads"] = torch.get_num_threads()
        payload = {"settings": settings, "torch": torch.__version__, "rows": [asdict(r) for r in rows]}
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=2)
    return rows


if __name__ == "__main__":
    main()
