"""A training run's curves, read from ``RUN_DIR/metrics.jsonl``: what ``curves.png`` draws.

Each series is a pair of equal-length tuples ``(steps, values)``: the loss of each task at the
steps where it was logged (a task is logged at a step when the window before it trained it),
the learning rate, and the share of step time spent waiting for the data loader.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

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
