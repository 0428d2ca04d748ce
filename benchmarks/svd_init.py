"""SVD initialisation time per layer shape, per model, and what the SVD cache saves (paper §3.2).

GOAT, MiLoRA and the authors' PiSSA decompose every adapted weight once at start-up
(``goat.adapters.init.svd_float32``). This times, for each distinct weight shape of the chosen backbones
(the App. F.1 models and adapted linears of ``goat.studies.params``):

* ``svd``  — the float32 thin SVD alone (median of ``--repeats``);
* ``miss`` — a cold :mod:`goat.adapters.svd_cache` lookup: hash the weight, run the SVD, write the entry;
* ``hit``  — a warm lookup: hash the weight and read the entry back;

then sums them over each model's adapted layers. Weights are random (SVD time depends on the
shape, not the values). Float32 on the CPU unless ``--device`` says otherwise.

    python benchmarks/svd_init.py                          # RoBERTa-large and CLIP ViT-B/32 shapes
    python benchmarks/svd_init.py --backbones llama-2-7b   # 4096 x 11008 weights: minutes on a CPU
    python benchmarks/svd_init.py --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from goat.adapters import init as goat_init
from goat.adapters import svd_cache
from goat.studies import params

Shape = tuple[int, int]  # (out_features m, in_features n) = weight shape
QUICK_MODEL = {"tiny": Counter({(64, 64): 4, (256, 64): 1, (64, 256): 1})}


@dataclass(frozen=True)
class ShapeTiming:
    out_features: int
    in_features: int
    svd_s: float
    miss_s: float
    hit_s: float
    entry_mib: float

    @property
    def speedup(self) -> float:
        return self.svd_s / self.hit_s


@dataclass(frozen=True)
class ModelTiming:
    backbone: str
    layers: int
    svd_s: float
    miss_s: float
    hit_s: float


def model_shapes(name: str) -> Counter[Shape]:
    """Weight shapes of a backbone's adapted linears, with how many layers have each."""
    backbone = params.BACKBONES[name]
    config = backbone.config(None)
    per_layer = Counter((lin.m, lin.n) for lin in backbone.layer_linears(config))
    return Counter({shape: count * config.num_hidden_layers for shape, count in per_layer.items()})


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def time_shape(shape: Shape, cache_dir: Path, repeats: int, device: torch.device, seed: int = 0) -> ShapeTiming:
    """SVD, cold-cache and warm-cache times for one random weight of ``shape``."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(*shape, generator=generator).to(device)
    svd = statistics.median(_timed(goat_init.svd_float32, weight) for _ in range(repeats))
    misses, hits = [], []
    for i in range(repeats):
        with svd_cache.caching(Path(cache_dir) / f"{shape[0]}x{shape[1]}-{i}") as cache:
            misses.append(_timed(goat_init.svd_float32, weight))
            hits.append(_timed(goat_init.svd_float32, weight))
        if (cache.misses, cache.hits) != (1, 1):
            raise RuntimeError(f"expected one miss then one hit, got {cache.misses} / {cache.hits}.")
    entry = cache.path(svd_cache.weight_key(weight)).stat().st_size / 2**20
    return ShapeTiming(shape[0], shape[1], svd, statistics.median(misses), statistics.median(hits), entry)


def model_totals(models: dict[str, Counter[Shape]], timings: dict[Shape, ShapeTiming]) -> list[ModelTiming]:
    """Whole-model start-up SVD cost: per-shape times times the number of layers of that shape."""
    rows = []
    for name, shapes in models.items():
        total = {k: sum(getattr(timings[s], k) * n for s, n in shapes.items()) for k in ("svd_s", "miss_s", "hit_s")}
        rows.append(ModelTiming(name, sum(shapes.values()), **total))
    return rows


def format_tables(shape_rows: list[ShapeTiming], model_rows: list[ModelTiming]) -> str:
    lines = [f"{'weight m x n':>14} {'svd s':>8} {'miss s':>8} {'hit s':>8} {'svd/hit':>8} {'entry MiB':>9}"]
    for r in shape_rows:
        lines.append(
            f"{f'{r.out_features} x {r.in_features}':>14} {r.svd_s:>8.3f} {r.miss_s:>8.3f} {r.hit_s:>8.3f} "
            f"{r.speedup:>8.1f} {r.entry_mib:>9.1f}"
        )
    lines += ["", f"{'backbone':<14} {'layers':>6} {'svd s':>8} {'miss s':>8} {'hit s':>8} {'svd/hit':>8}"]
    for m in model_rows:
        lines.append(
            f"{m.backbone:<14} {m.layers:>6} {m.svd_s:>8.1f} {m.miss_s:>8.1f} {m.hit_s:>8.1f} {m.svd_s / m.hit_s:>8.1f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backbones", nargs="+", choices=list(params.BACKBONES), default=["roberta-large", "clip-vit-b32"]
    )
    parser.add_argument("--repeats", type=int, default=3, help="Timings per shape (median).")
    parser.add_argument("--device", default="cpu", help="Where the SVD runs ('cpu', 'cuda', ...).")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's).")
    parser.add_argument("--svd_cache_dir", help="Folder for the cache entries (default: a temporary folder, removed).")
    parser.add_argument("--quick", action="store_true", help="Three tiny shapes, one repeat.")
    parser.add_argument("--json", metavar="PATH", help="Also write the rows as JSON.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> tuple[list[ShapeTiming], list[ModelTiming]]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    models = QUICK_MODEL if args.quick else {name: model_shapes(name) for name in args.backbones}
    repeats = 1 if args.quick else args.repeats
    shapes = sorted({s for counts in models.values() for s in counts}, key=lambda s: s[0] * s[1])
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(args.svd_cache_dir or tmp)
        timings = {s: time_shape(s, cache_dir, repeats, torch.device(args.device)) for s in tqdm(shapes, desc="shapes")}
    shape_rows = [timings[s] for s in shapes]
    model_rows = model_totals(models, timings)
    print(f"float32 thin SVD on {args.device}, {torch.get_num_threads()} thread(s), median of {repeats}")
    print(format_tables(shape_rows, model_rows))
    if args.json:
        payload = {
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "shapes": [dict(asdict(r), speedup=r.speedup) for r in shape_rows],
            "backbones": [asdict(m) for m in model_rows],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return shape_rows, model_rows


if __name__ == "__main__":
    main()
