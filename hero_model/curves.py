"""A training run's curves, read from ``RUN_DIR/metrics.jsonl``, and ``RUN_DIR/curves.png``.

Each series is a pair of equal-length tuples ``(steps, values)``: the loss of each task at the
steps where it was logged (a task is logged at a step when the window before it trained it),
the learning rate, and the share of step time spent waiting for the data loader.

:func:`draw_curves` draws them with matplotlib (Agg, no display), three panels on one step
axis: the loss per task, the learning rate, the data wait in percent. matplotlib is imported
only when drawing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Series = tuple[tuple[int, ...], tuple[float, ...]]


@dataclass(frozen=True)
class TrainingCurves:
    """The curves of one run.

    Attributes:
        loss: per task, its mean loss over each logged window.
        lr: the learning rate at the end of each window.
        data_wait: fraction (0-1) of each window's step time spent waiting for batches.
    """

    loss: dict[str, Series] = field(default_factory=dict)
    lr: Series = ((), ())
    data_wait: Series = ((), ())


def _series(points: list[tuple[int, float]]) -> Series:
    return tuple(s for s, _ in points), tuple(v for _, v in points)


def read_curves(run_dir: str | os.PathLike[str]) -> TrainingCurves:
    """The curves of the run in ``run_dir`` (empty ones if it logged nothing yet)."""
    path = Path(run_dir) / "metrics.jsonl"
    loss: dict[str, list[tuple[int, float]]] = {}
    lr: list[tuple[int, float]] = []
    wait: list[tuple[int, float]] = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            step = int(entry["step"])
            for task, value in entry.get("loss", {}).items():
                loss.setdefault(task, []).append((step, float(value)))
            lr.append((step, float(entry["lr"])))
            wait.append((step, float(entry.get("perf", {}).get("data_wait_fraction", 0.0))))
    return TrainingCurves(
        loss={t: _series(p) for t, p in sorted(loss.items())},
        lr=_series(lr),
        data_wait=_series(wait),
    )


CURVES_FILE = "curves.png"
"""The picture of a run's curves, in its run folder."""


def curves_figure(curves: TrainingCurves, title: str = "") -> Figure:
    """The figure of ``curves``: axes ``loss`` (one line per task, labelled with its name),
    ``lr`` and ``data_wait`` (percent), found by their gid, sharing the step axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # Agg: drawn off screen, no display needed
    loss, lr, wait = fig.subplots(3, 1, sharex=True, height_ratios=(2, 1, 1))
    for task, (steps, values) in curves.loss.items():
        loss.plot(steps, values, marker="." if len(steps) < 50 else None, label=task)
    if curves.loss:
        loss.legend(loc="upper right", fontsize="small")
    else:
        loss.text(0.5, 0.5, "no step logged yet", ha="center", transform=loss.transAxes)
    loss.set(gid="loss", ylabel="loss", title="loss per task (mean over each logged window)")
    lr.plot(*curves.lr, color="tab:purple")
    lr.set(gid="lr", ylabel="learning rate", title="learning rate")
    lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    wait_steps, wait_values = curves.data_wait
    wait.plot(wait_steps, [100.0 * v for v in wait_values], color="tab:gray")
    wait.set(
        gid="data_wait",
        ylabel="% of step time",
        xlabel="optimizer step",
        title="data wait (time spent waiting for batches)",
        ylim=(0, 100),
    )
    for ax in (loss, lr, wait):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def draw_curves(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Draw the curves of the run in ``run_dir`` to ``out`` (default ``RUN_DIR/curves.png``,
    replaced atomically so a viewer never reads half a file); returns its path."""
    run = Path(run_dir)
    path = Path(out) if out is not None else run / CURVES_FILE
    curves = read_curves(run)
    steps = curves.lr[0]
    title = f"{run.name}: {steps[-1]} steps" if steps else run.name
    fig = curves_figure(curves, title)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path
