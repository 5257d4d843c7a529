"""Checkpoint metrics drawn as a picture with matplotlib's Agg backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fedgrid.errors import InvalidArgument


def metric_series(
    checkpoints: Sequence[Mapping[str, Any]],
) -> dict[str, list[tuple[int, float]]]:
    """Each metric's (checkpoint number, value) points, in checkpoint order."""
    series: dict[str, list[tuple[int, float]]] = {}
    for item in sorted(checkpoints, key=lambda c: int(c.get("number", 0))):
        metrics = item.get("metrics") or {}
        for name, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                series.setdefault(name, []).append((int(item["number"]), float(value)))
    return series


def plot_metrics(
    checkpoints: Sequence[Mapping[str, Any]], output: Path, title: str = ""
) -> list[str]:
    """Write one panel per metric to output; returns the metric names drawn."""
    series = metric_series(checkpoints)
    if not series:
        raise InvalidArgument(
            "no checkpoint has metrics yet; metrics appear once a cycle aggregates"
        )
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    names = sorted(series)
    figure, axes = pyplot.subplots(
        len(names), 1, figsize=(7, 2.6 * len(names)), squeeze=False, sharex=True
    )
    for axis, name in zip(axes[:, 0], names, strict=True):
        numbers = [point[0] for point in series[name]]
        values = [point[1] for point in series[name]]
        axis.plot(numbers, values, marker="o")
        axis.set_ylabel(name)
        axis.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("checkpoint")
    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(output, format="png")
    pyplot.close(figure)
    return names
