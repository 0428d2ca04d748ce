"""The ledger's figures (means with 95 % intervals as error bars) and small CSV helpers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from goat.claims import stats  # noqa: E402
from goat.claims.arms import summary  # noqa: E402


def interval_columns(interval: stats.Interval | None) -> dict[str, Any]:
    """CSV columns n, mean, ci_low, ci_high of an interval (empty when there is none)."""
    if interval is None:
        return {"n": 0, "mean": None, "ci_low": None, "ci_high": None}
    return {"n": interval.n, "mean": interval.mean, "ci_low": interval.low, "ci_high": interval.high}


def values_text(values: Mapping[int, float | None], digits: int = 2) -> str:
    """Per-seed values as ``s0:71.20 s1:diverged ...``."""
    return " ".join(f"s{s}:{v:.{digits}f}" if v is not None else f"s{s}:diverged" for s, v in sorted(values.items()))


def _errors(intervals: Sequence[stats.Interval | None]) -> tuple[list[float], list[list[float]]]:
    means = [i.mean if i else math.nan for i in intervals]
    low = [i.mean - i.low if i and not math.isnan(i.low) else 0.0 for i in intervals]
    high = [i.high - i.mean if i and not math.isnan(i.high) else 0.0 for i in intervals]
    return means, [low, high]


def _any_value(arms: Sequence[Any]) -> bool:
    return any(v is not None for arm in arms for values in arm.curve.values() for v in values.values())


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bar_axes(ax: plt.Axes, intervals: Mapping[str, stats.Interval | None], title: str, ylabel: str) -> None:
    names = list(intervals)
    means, errors = _errors(list(intervals.values()))
    ax.bar(
        names,
        means,
        yerr=errors,
        capsize=4,
        color=["tab:red" if n.startswith("goat") or n.startswith("O ") else "tab:gray" for n in names],
    )
    finite = [m for m in means if not math.isnan(m)]
    if finite:
        ax.set_ylim(min(finite) - 4, max(finite) + 3)
    ax.set(title=title, ylabel=ylabel)
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)


def bars(
    intervals: Mapping[str, stats.Interval | None], path: Path, title: str, ylabel: str = "accuracy (%)"
) -> Path | None:
    """One bar per arm: mean with its 95 % interval; None without data."""
    if all(i is None for i in intervals.values()):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    _bar_axes(ax, intervals, title, ylabel)
    return _save(fig, path)


def _rate_label(rate: float) -> str:
    """``1.25e-04``, ``2.5e-04``, ``5e-04``: the grid's rates, exact and short."""
    mantissa, exponent = f"{rate:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def _rate_axis(ax: plt.Axes, rates: Sequence[float]) -> None:
    """A log learning-rate axis ticked at the rates run (the x2 grid: ``2.5e-04``, ``5e-04``, ...), no minor ticks."""
    ax.set_xscale("log", base=2)
    ticks = sorted(set(rates))
    ax.set_xticks(ticks, labels=[_rate_label(rate) for rate in ticks])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.tick_params(axis="x", labelsize=7, rotation=30)


def _curve_axes(ax: plt.Axes, arms: Sequence[Any], title: str) -> None:
    for arm in arms:
        lrs = sorted(arm.curve)
        intervals = [summary(arm.curve[lr]) for lr in lrs]
        means, errors = _errors(intervals)
        ax.errorbar(lrs, means, yerr=errors, marker="o", capsize=3, label=arm.name)
    _rate_axis(ax, [lr for arm in arms for lr in arm.curve])
    ax.set(title=title, xlabel="learning rate", ylabel="accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def curves(arms: Sequence[Any], path: Path, title: str) -> Path | None:
    """Accuracy against learning rate per arm (mean ± 95 % interval over the seeds run at each rate); None without data."""
    if not _any_value(arms):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    _curve_axes(ax, arms, title)
    return _save(fig, path)


def tuned_and_curves(arms: Sequence[Any], path: Path, title: str) -> Path | None:
    """Left: each arm at its tuned rate; right: every arm against learning rate; None without data."""
    if not _any_value(arms):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    _bar_axes(axes[0], {a.name: summary(a.tuned) for a in arms}, f"{title}: each at its best lr", "accuracy (%)")
    _curve_axes(axes[1], arms, "accuracy against learning rate")
    return _save(fig, path)


def margins(groups: Mapping[str, Sequence[tuple[int, stats.Paired | None]]], path: Path, title: str) -> Path | None:
    """One panel per group: paired difference (mean, 95 % interval) against the group's x (rank, experts); None without data."""
    if not any(p is not None for points in groups.values() for _, p in points):
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(5.4 * len(groups), 4.0), squeeze=False)
    for ax, (name, points) in zip(axes[0], groups.items()):
        xs = [x for x, _ in points]
        means, errors = _errors([p.difference if p else None for _, p in points])
        ax.errorbar(xs, means, yerr=errors, marker="o", capsize=4)
        ax.axhline(0.0, color="gray", linestyle="--", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, labels=[str(x) for x in xs])
        ax.set(title=title, xlabel=name, ylabel="goat − lora (accuracy points)")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def balance(
    coefs: Sequence[float],
    accuracy: Mapping[float, Mapping[int, float | None]],
    cv: Mapping[float, Mapping[int, float | None]],
    path: Path,
) -> Path | None:
    """Accuracy and expert-load CV per balance coefficient (mean ± 95 % interval); None without data."""
    if all(v is None for values in accuracy.values() for v in values.values()):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0))
    labels = [f"{c:g}" for c in coefs]
    for ax, data, ylabel in ((axes[0], accuracy, "accuracy (%)"), (axes[1], cv, "expert-load CV")):
        intervals = [summary(data[c]) for c in coefs]
        means, errors = _errors(intervals)
        ax.errorbar(range(len(coefs)), means, yerr=errors, marker="o", capsize=4, linestyle="none")
        ax.set_xticks(range(len(coefs)), labels=labels)
        ax.set(title=f"Claim 6: {ylabel} by balance coefficient", xlabel="balance-loss coefficient", ylabel=ylabel)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def step_cost(per_method: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> Path:
    """Step time and peak memory per method, one dot per round."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0))
    for ax, key, label in ((axes[0], "step_ms", "step time (ms)"), (axes[1], "peak_mib", "peak memory (MiB)")):
        for i, (method, rows) in enumerate(per_method.items()):
            ax.plot([i] * len(rows), [float(r[key]) for r in rows], "o", alpha=0.7)
        ax.set_xticks(range(len(per_method)), labels=list(per_method))
        ax.set(title=f"Claim 7: {label}", ylabel=label)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def learning_curve(curve: Any, path: Path) -> Path | None:
    """Tuned accuracy against training steps, one line per method (points: the bracketing search's best rate)."""
    task = curve.task
    budgets = sorted(task.budgets, key=task.steps)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drawn = False
    for method in ("lora", "goat"):
        points = [(task.steps(b), curve.best(method, b), b) for b in budgets if curve.best(method, b) is not None]
        if points:
            drawn = True
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=method)
            for steps, value, budget in points:
                ax.annotate(
                    f"{budget[0]}×{budget[1]:g}", (steps, value), fontsize=7, textcoords="offset points", xytext=(3, 3)
                )
    if not drawn:
        plt.close(fig)
        return None
    if curve.regime is not None:
        ax.axvline(task.steps(curve.regime), color="gray", linestyle="--", linewidth=1, label="regime")
    ax.set_xscale("log")
    ax.set(
        title=f"Learning curve ({task.name}): tuned accuracy",
        xlabel=f"optimizer steps ({task.unit} × epochs / {task.global_batch_size})",
        ylabel="accuracy (%)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def curve_lr(curve: Any, path: Path) -> Path | None:
    """Accuracy against learning rate at every budget of the curve, one panel per method."""
    task = curve.task
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    drawn = False
    for ax, method in zip(axes, ("lora", "goat")):
        rates: list[float] = []
        for budget in sorted(task.budgets, key=task.steps):
            arm = curve.arms[(method, budget)]
            lrs = sorted(lr for lr, values in arm.curve.items() if any(v is not None for v in values.values()))
            rates += lrs
            if lrs:
                drawn = True
                ax.plot(
                    lrs, [summary(arm.curve[lr]).mean for lr in lrs], marker="o", label=f"{budget[0]}×{budget[1]:g}"
                )
        _rate_axis(ax, rates)
        ax.set(title=f"{method} ({task.name})", xlabel="learning rate", ylabel="accuracy (%)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if not drawn:
        plt.close(fig)
        return None
    return _save(fig, path)


def mechanism(rows: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Claim 4: norm ratio ‖g̃‖/‖ηg‖ (log scale) and cosine against the layer width n, per model, rule and init."""
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault((row["model"], row["scaling_rule"], row["init"]), []).append(row)
    for (model, rule, init), group in sorted(groups.items()):
        group = sorted(group, key=lambda r: int(r["n"]))
        xs = [int(r["n"]) for r in group]
        style = "-" if rule == "theory" else "--"
        marker = "o" if init == "zero" else "s"
        label = f"{model} {rule} {init}"
        axes[0].plot(xs, [float(r["norm_ratio"]) for r in group], style, marker=marker, label=label)
        axes[1].plot(xs, [float(r["cosine"]) for r in group], style, marker=marker, label=label)
    axes[0].axhline(1.0, color="gray", linewidth=1)
    axes[0].set(
        xscale="log", yscale="log", title="‖g̃_i‖ / ‖η g_i‖ (1 = full fine-tuning's step)", xlabel="input width n"
    )
    axes[1].set(xscale="log", title="cosine(g̃_i, g_i)", xlabel="input width n")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return _save(fig, path)


def loss_bands(
    losses: Mapping[str, Mapping[int, Sequence[Sequence[float]]]], threshold: float | None, path: Path, title: str
) -> Path | None:
    """Claim 8: mean training loss per logged step with its 95 % band over seeds, one line per method."""
    if not any(losses.values()):
        return None
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    for method, per_seed in losses.items():
        steps = sorted({step for curve in per_seed.values() for step, _ in curve})
        means, lows, highs, xs = [], [], [], []
        for step in steps:
            values = [loss for curve in per_seed.values() for s, loss in curve if s == step]
            if len(values) < 1:
                continue
            interval = stats.mean_ci(values)
            xs.append(step)
            means.append(interval.mean)
            lows.append(interval.low if not math.isnan(interval.low) else interval.mean)
            highs.append(interval.high if not math.isnan(interval.high) else interval.mean)
        ax.plot(xs, means, label=method)
        ax.fill_between(xs, lows, highs, alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="gray", linestyle="--", linewidth=1, label="threshold")
    ax.set(title=title, xlabel="optimizer step", ylabel="training loss (task)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
