"""``hero inspect DATASET --plot summary.png``: a dataset's one-page card.

The figures are :func:`hero_data.summary.dataset_card`'s; this module only draws them, with
matplotlib (Agg, no display). One page, top to bottom:

- the title: where the dataset is, its clips, steps and failed inputs;
- four histograms: clip duration (seconds), steps per clip, cues per clip, words per cue;
- the steps with and without a cue, as one bar split in two, with the share without one;
- the failed inputs by reason (``errors.jsonl``'s error types);
- a few clips spread over the dataset, each as the frame of its middle step (decoded from its
  source; a "no video" box when the source cannot be read).

Each panel carries a gid (``clip_seconds``, ``steps``, ``cues_per_clip``, ``words_per_cue``,
``cue_share``, ``failures``, ``thumb0`` ...) so that tests read what it draws.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from extract.decode import DecodeError, iter_steps
from hero_data.grid import GridError
from hero_data.reader import HeroDataset
from hero_data.summary import DatasetCard, Histogram, dataset_card

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

FIGSIZE = (12.0, 11.0)
"""Inches of the card; at :data:`DPI`, 1200 x 1100 pixels."""
DPI = 100

HISTOGRAMS: tuple[tuple[str, str, str], ...] = (
    ("clip_seconds", "clip duration", "seconds"),
    ("steps", "steps per clip", "steps"),
    ("cues_per_clip", "cues per clip", "cues"),
    ("words_per_cue", "words per cue", "words"),
)
"""The card's histograms: its :class:`DatasetCard` field, title and unit."""


def load_card_thumbnails(
    card: DatasetCard, frame_intervals: Mapping[str, float]
) -> list[np.ndarray | None]:
    """The frame of each of ``card.thumbnails``: the 2D sample of the step at its source
    second, decoded from its source (``(H, W, 3)`` uint8 RGB, short side 224), or ``None``,
    with a warning logged, when the source cannot be decoded. ``frame_intervals``: each
    clip's step length (seconds), by clip id."""
    images: list[np.ndarray | None] = []
    for clip_id, source, second in card.thumbnails:
        frame_interval = frame_intervals[clip_id]
        start = round(second / frame_interval - 0.5) * frame_interval  # the step's start
        try:
            step = next(
                iter(iter_steps(source, frame_interval, start=start, end=start + frame_interval)),
                None,
            )
        except (DecodeError, GridError, OSError, ValueError) as e:
            log.warning("clip %s: no frame shown, cannot decode %s: %s", clip_id, source, e)
            step = None
        images.append(None if step is None else step.image)
    return images


def _histogram(ax: Axes, hist: Histogram, title: str, unit: str) -> None:
    ax.stairs(hist.counts, hist.edges, fill=True, color="tab:blue", alpha=0.8)
    n = len(hist.values)
    if n:
        mean = float(np.mean(hist.values))
        ax.set_title(f"{title} (mean {mean:.3g}, n={n:,})", fontsize="medium")
    else:
        ax.set_title(f"{title} (none)", fontsize="medium")
    ax.set(xlabel=unit, ylabel="count")
    ax.grid(alpha=0.3)


def _cue_share(ax: Axes, card: DatasetCard) -> None:
    with_cue = card.steps_total - card.steps_without_cue
    ax.barh([0], [with_cue], height=0.6, color="tab:green", label=f"with a cue: {with_cue:,}")
    ax.barh(
        [0],
        [card.steps_without_cue],
        height=0.6,
        left=[with_cue],
        color="tab:gray",
        label=f"without a cue: {card.steps_without_cue:,}",
    )
    ax.set_title(
        f"steps without a cue: {100 * card.share_without_cue:.1f} % of {card.steps_total:,} steps",
        fontsize="medium",
    )
    ax.set(yticks=[], xlabel="steps", xlim=(0, max(card.steps_total, 1)), ylim=(-0.4, 0.9))
    ax.legend(loc="upper center", ncol=2, fontsize="small", frameon=False)


def _failures(ax: Axes, card: DatasetCard) -> None:
    reasons = sorted(card.failed_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    total = sum(n for _, n in reasons)
    ax.set_title(f"failed inputs by reason ({total:,})", fontsize="medium")
    if not reasons:
        ax.text(0.5, 0.5, "no failed inputs", ha="center", va="center", transform=ax.transAxes)
        ax.set(xticks=[], yticks=[])
        return
    names = [r for r, _ in reasons]
    ax.barh(names, [n for _, n in reasons], color="tab:red")
    ax.invert_yaxis()  # the most frequent on top
    ax.set(xlabel="inputs")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="x", alpha=0.3)


def _thumbnail(ax: Axes, thumb: tuple[str, str, float], image: np.ndarray | None) -> None:
    clip_id, source, second = thumb
    if image is None:
        ax.text(0.5, 0.5, "no video", ha="center", va="center", transform=ax.transAxes)
        ax.set_facecolor((0.9, 0.9, 0.9))
    else:
        ax.imshow(image)
    ax.set_title(f"{clip_id} @ {second:.1f} s", fontsize="small")
    ax.set_xlabel(Path(source).name, fontsize="x-small")
    ax.set(xticks=[], yticks=[])


def card_figure(card: DatasetCard, images: list[np.ndarray | None] | None = None) -> Figure:
    """The figure of ``card``. ``images``: the frame of each of ``card.thumbnails`` (see
    :func:`load_card_thumbnails`), ``None`` for a "no video" box, or no list for none at all."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if images is None:
        images = [None] * len(card.thumbnails)
    if len(images) != len(card.thumbnails):
        raise ValueError(f"{len(images)} images for {len(card.thumbnails)} thumbnails")
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # Agg: drawn off screen, no display needed
    rows = fig.subfigures(3, 1, height_ratios=(2.2, 1.2, 1.3))
    hist_axes = rows[0].subplots(2, 2)
    for ax, (name, title, unit) in zip(hist_axes.flat, HISTOGRAMS, strict=True):
        ax.set_gid(name)
        _histogram(ax, getattr(card, name), title, unit)
    share, failures = rows[1].subplots(1, 2, width_ratios=(1, 1))
    share.set_gid("cue_share")
    _cue_share(share, card)
    failures.set_gid("failures")
    _failures(failures, card)
    if card.thumbnails:
        thumbs = rows[2].subplots(1, len(card.thumbnails), squeeze=False)[0]
        for k, (ax, thumb, image) in enumerate(zip(thumbs, card.thumbnails, images, strict=True)):
            ax.set_gid(f"thumb{k}")
            _thumbnail(ax, thumb, image)
        rows[2].suptitle("clips across the dataset (the frame of each one's middle step)")
    else:
        rows[2].text(0.5, 0.5, "no clips", ha="center", va="center")
    failed = sum(card.failed_by_reason.values())
    fig.suptitle(
        f"HERO dataset {card.dataset}\n{len(card.steps.values):,} clips, "
        f"{card.steps_total:,} steps, {failed:,} failed input{'' if failed == 1 else 's'}",
        fontsize="large",
    )
    return fig


def plot_card(
    card: DatasetCard,
    out: str | os.PathLike[str],
    images: list[np.ndarray | None] | None = None,
) -> Path:
    """Draw ``card`` (with the frames ``images`` of its thumbnails) to the PNG file ``out``;
    returns its path."""
    path = Path(out)
    card_figure(card, images).savefig(path, format="png")
    return path


def draw_dataset_card(ds: HeroDataset, out: str | os.PathLike[str]) -> Path:
    """Draw ``ds``'s card, the frames of its thumbnails decoded from their sources, to the PNG
    file ``out``; returns its path."""
    card = dataset_card(ds)
    table = ds.table(["clip_id", "frame_interval"])
    ids, steps = table["clip_id"].to_pylist(), table["frame_interval"].to_pylist()
    images = load_card_thumbnails(card, dict(zip(ids, steps, strict=True)))
    return plot_card(card, out, images)
