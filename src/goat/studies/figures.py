"""Line-plot panels and load heatmaps for the studies (PNG; the numbers go to CSV beside them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

Series = dict[str, tuple[Sequence[float], Sequence[float | None]]]  # label -> (x, y)


@dataclass
class Panel:
    """One axes: named series of (x, y) points, optional horizontal reference lines."""

    title: str
    xlabel: str
    ylabel: str
    series: Series
    logx: bool = False
    logy: bool = False
    hlines: dict[str, float] = field(default_factory=dict)
    xticks: Sequence[float] | None = None
    xticklabels: Sequence[str] | None = None


def line_panels(panels: Sequence[Panel], path: Path, *, suptitle: str = "") -> Path:
    """Panels side by side, one line (with markers) per series; None values are skipped."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, (xs, ys) in panel.series.items():
            points = [(x, y) for x, y in zip(xs, ys) if y is not None]
            if points:
                ax.plot(*zip(*points), marker="o" if len(points) < 40 else None, markersize=4, label=label)
        for label, value in panel.hlines.items():
            ax.axhline(value, linestyle="--", color="gray", linewidth=1)
            ax.annotate(label, (0.01, value), xycoords=("axes fraction", "data"), fontsize=8, color="gray", va="bottom")
        if panel.logx:
            ax.set_xscale("log")
        if panel.logy:
            ax.set_yscale("log")
        if panel.xticks is not None:
            ax.minorticks_off()  # a log axis would label its minor ticks too
            ax.set_xticks(list(panel.xticks), labels=list(panel.xticklabels) if panel.xticklabels else None)
        ax.set(title=panel.title, xlabel=panel.xlabel, ylabel=panel.ylabel)
        ax.grid(alpha=0.3)
        if panel.series:
            ax.legend(fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def load_heatmaps(
    loads: dict[str, np.ndarray], path: Path, *, ylabel: str, row_labels: dict[str, list[str]], expected: float
) -> Path:
    """One heatmap per entry (rows x experts), colour centred on the uniform load ``expected``."""
    height = max(2.8, 1.2 + 0.32 * max(len(v) for v in loads.values()))
    fig, axes = plt.subplots(1, len(loads), figsize=(5.6 * len(loads), height), squeeze=False)
    spread = max(float(np.abs(v - expected).max()) for v in loads.values()) or 1e-3
    for ax, (title, matrix) in zip(axes[0], loads.items()):
        norm = TwoSlopeNorm(vcenter=expected, vmin=max(0.0, expected - spread), vmax=expected + spread)
        image = ax.imshow(matrix, aspect="auto", cmap="coolwarm", norm=norm)
        ax.set_xticks(range(matrix.shape[1]), labels=[f"e{j + 1}" for j in range(matrix.shape[1])])
        labels = row_labels[title]
        ax.set_yticks(range(len(labels)), labels=labels, fontsize=7 if len(labels) > 12 else 9)
        for (i, j), value in np.ndenumerate(matrix):
            if matrix.size <= 160:
                ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=6)
        ax.set(title=title, xlabel="expert", ylabel=ylabel)
        fig.colorbar(image, ax=ax, label="fraction of tokens")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
