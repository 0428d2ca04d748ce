"""Figures: method comparison bars and expert-load heatmaps (paper Fig. 7)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def expert_load_heatmap(ax: plt.Axes, routing: dict[str, list[float]], title: str) -> None:
    """Rows = adapted layers, columns = experts, colour = share of routed tokens."""
    layers = list(routing)
    loads = np.array([routing[name] for name in layers])
    image = ax.imshow(loads, aspect="auto", cmap="viridis", vmin=0.0)
    ax.set_xlabel("expert")
    ax.set_ylabel(f"adapted layer (1..{len(layers)})")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, label="load fraction")


def plot_quickstart(
    table: dict[str, dict[str, tuple[float, float, int]]], routing: dict[str, dict[str, list[float]]], path: Path
) -> Path:
    """Accuracy per method (mean ± std over seeds) beside goat's expert-load heatmap."""
    methods = sorted(table)
    means = [np.mean([v[0] for v in table[m].values()]) for m in methods]
    stds = [np.mean([v[1] for v in table[m].values()]) for m in methods]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    axes[0].bar(methods, means, yerr=stds, color=["tab:red" if m == "goat" else "tab:gray" for m in methods])
    axes[0].set_ylim(min(means) - 5, max(means) + 3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].set_title("accuracy per method (equal total rank)")
    for x, y in enumerate(means):
        axes[0].text(x, y + 0.3, f"{y:.1f}", ha="center")
    if "goat" in routing:
        expert_load_heatmap(axes[1], routing["goat"], "goat: expert load on the eval set")
    else:
        axes[1].axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
