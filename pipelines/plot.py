"""``hero inspect --clip ID --plot out.png``: one clip's timeline as a picture.

Drawn with matplotlib (Agg, no display), so that a person can check the alignment at a glance.
Top to bottom, on one horizontal axis of clip-relative seconds (step ``i`` spans
``[i·L, (i+1)·L)``), each row an axes found by its gid:

- the title (the figure's texts with gid ``title``): the clip, its source, its span, steps and
  cues, and a red line when there is no video;
- ``frames``: the 2D sample of each step (the frame its ResNet feature was computed from),
  fitted into the step's cell; a "no video" box per step when the source cannot be decoded.
  The step indices are the tick labels above it;
- ``inputs``, with ``inputs`` (``hero inspect --mark-inputs``): which source frames fed the
  models, as ticks at their presentation times in three lanes: the 2D (ResNet) frame,
  SlowFast's 32 fast and 8 slow frames; a frame used more than once carries its count
  (``x10``). From the sampling plan (:func:`extract.sampling.plan_steps`), the code extraction
  itself uses;
- ``assigned``: each step painted in the colour of the cue that owns it (``unique_sub2frames``),
  grey when no cue does (``unmatched_frames``);
- ``covers``: every cue covering each step (``sub2frames``), one slice per cue: solid when the
  cue got the step, only an outline in its colour when it covers the step but lost it;
- ``cues``: the cues as bars over their ``[start, end)`` spans, in lanes so that neither bars
  nor labels collide, each labelled ``c<k> SPEAKER: text``; pseudo-cues (empty text) hatched
  grey. Under it the time axis: clip seconds, and the source seconds under them;
- the legend, under everything.

A cue's bar and the cells of its steps share its colour, so a misaligned cue shows as a bar
that does not sit over its cells. Thin grey lines mark the step boundaries through all rows; a
red dashed line (gid ``clip_end``) marks the clip's end when its last step is short.

The layout is set in inches (at :data:`DPI`, pixels / 100): each row has the height its
content needs, and each step :data:`MAX_STEP_PX` pixels at most, so that the frames keep their
shape and a long clip stays at most :data:`MAX_WIDTH` pixels wide.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from extract.decode import DecodeError, iter_steps
from extract.sampling import plan_steps
from hero_data.grid import GridError
from hero_data.schema import ClipRecord
from hero_data.types import Cue

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

PALETTE: tuple[str, ...] = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
)
"""Cue colours, by cue index modulo 9 (Tableau 10 without its grey, kept for the unmatched)."""

INPUT_LANES = ("resnet", "slowfast_fast", "slowfast_slow")
"""The model inputs' lanes, top to bottom."""

INPUT_LABELS = {"resnet": "2D", "slowfast_fast": "fast", "slowfast_slow": "slow"}
"""The label of each model input's lane."""

INPUT_COLOURS: dict[str, str] = {
    "resnet": "#141414",
    "slowfast_fast": "tab:blue",
    "slowfast_slow": "tab:orange",
}
"""Tick colours of the model inputs' frames: the 2D frame, SlowFast's fast and slow frames."""

UNMATCHED_COLOUR = "#969696"
"""Fill of an "assigned" cell whose step no cue owns."""

PSEUDO_COLOUR = "#dedede"
"""Base of a pseudo-cue's bar and cells, hatched with :data:`HATCH_COLOUR`."""

HATCH_COLOUR = "#a0a0a0"
PSEUDO_HATCH = "///"

END_COLOUR = "#dc1e1e"
"""The clip-end line and the "no video" title line."""

DPI = 100
MAX_WIDTH = 4000
"""Pixels the steps may take at most, while each step keeps at least :data:`MIN_STEP_PX`."""

MAX_STEP_PX = 128
MIN_STEP_PX = 8

_GRID = "#e2e2e2"
_TEXT = "#141414"
_MUTED = "#6e6e6e"
_PLACEHOLDER = "#eeeeee"
_LABEL_CHARS = 48  # cue text kept in a label before "..."
_TICKS = (0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_MIN_TICK_PX = 56
_LABEL_PT = 9.0  # labels; cell texts and ticks are smaller, the title larger
_SMALL_PT = 7.5
_TITLE_PT = 10.5
# Inches (at DPI 100, one inch is 100 pixels).
_MARGIN = 0.08
_LEFT = 0.84  # room for the row labels
_TITLE_LINE = 0.19
_MARKS = 0.32  # the clip-end label and the step indices, above the frames
_INPUT_LANE = 0.16
_ROW = 0.22  # height of the assigned row and of a cue lane
_SLICE = 0.12  # height of one cue's slice in the covers row
_AXIS = 0.42  # the time axis' two lines of tick labels
_LEGEND_ROW = 0.22
_PAD_PX = 1  # white between neighbouring cells


def cue_colour(cue: Cue, index: int) -> str:
    """The colour of cue ``index`` of a clip: :data:`PALETTE` cycled, grey for a pseudo-cue."""
    return PSEUDO_COLOUR if is_pseudo(cue) else PALETTE[index % len(PALETTE)]


def is_pseudo(cue: Cue) -> bool:
    """Whether ``cue`` is a pseudo-cue (empty text; real cues never have empty text)."""
    return cue.text == ""


@functools.lru_cache(maxsize=1)
def _renderer() -> RendererAgg:
    """An off-screen renderer to measure text with, before the figure has its final size."""
    from matplotlib.backends.backend_agg import RendererAgg

    return RendererAgg(1, 1, DPI)


@functools.lru_cache(maxsize=4096)
def _text_px(text: str, size: float) -> float:
    """The width in pixels of ``text`` at ``size`` points, in matplotlib's default font."""
    from matplotlib.font_manager import FontProperties

    width, _, _ = _renderer().get_text_width_height_descent(
        text, FontProperties(size=size), ismath=False
    )
    return float(width)


def _fit(text: str, size: float, max_px: float) -> str:
    """``text``, cut and ended with "..." where needed so that it is at most ``max_px`` wide."""
    if _text_px(text, size) <= max_px:
        return text
    lo, hi = 0, len(text)  # longest prefix that fits with the ellipsis
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _text_px(text[:mid].rstrip() + "...", size) <= max_px:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "..." if lo else ""


def _contrast(colour: str) -> str:
    """Black or white, whichever reads better on ``colour``."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return _TEXT if 0.299 * r + 0.587 * g + 0.114 * b > 150 / 255 else "white"


def _secs(seconds: float) -> str:
    """Seconds for a label: at most 3 decimals, no trailing zeros."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _cue_label(cue: Cue, index: int) -> str:
    if is_pseudo(cue):
        return f"c{index} (pseudo-cue)"
    text = " ".join(cue.text.split())
    if len(text) > _LABEL_CHARS:
        text = text[:_LABEL_CHARS].rstrip() + "..."
    who = f" {cue.speaker}:" if cue.speaker else ""
    return f"c{index}{who} {text}"


def _title_lines(record: ClipRecord, has_video: bool) -> list[tuple[str, str]]:
    clip = record.clip
    lines = [
        (f"clip {record.clip_id}", _TEXT),
        (f"source: {record.source}", _TEXT),
        (
            f"[{_secs(clip.start)}, {_secs(clip.end)}) source seconds "
            f"({_secs(clip.duration)} s) · {_count(record.num_frames, 'step')} of "
            f"L = {record.frame_interval:g} s · {_count(len(record.cues), 'cue')}",
            _TEXT,
        ),
    ]
    if not has_video:
        lines.append(
            ("no video: the source is missing or unreadable, frames not shown", END_COLOUR)
        )
    return lines


def _short_end(record: ClipRecord) -> bool:
    """Whether the clip ends inside its last step (which then runs past the clip's end)."""
    return record.clip.duration < record.num_frames * record.frame_interval - 1e-6


@dataclass(frozen=True)
class _CuePlacement:
    """Where a cue's bar and label go, in pixels from the timeline's left edge.

    Attributes:
        lane: lane index, 0 at the top.
        x0, x1: the bar's pixel columns ``[x0, x1)``.
        label: the label as drawn (cut with "..." where there was no room).
        where: "inside" the bar, or "right" or "left" of it.
        label_x: pixel column where the label starts.
    """

    lane: int
    x0: float
    x1: float
    label: str
    where: str
    label_x: float


def _label_place(
    full: str, k: int, x0: float, x1: float, right: float
) -> tuple[str, str, float, float]:
    """``(label, where, label_x, width)`` of a bar's label, by preference: whole on the bar,
    whole right of it, cut on the bar (when at least 10 characters fit), whole left of it,
    cut right of it. Pixels from the timeline's left edge; labels end before ``right``."""
    width, room = _text_px(full, _LABEL_PT), x1 - x0 - 8
    if width <= room:
        return full, "inside", x0 + 4, width
    if x1 + 4 + width <= right:
        return full, "right", x1 + 4, width
    if room >= _text_px(f"c{k} " + "x" * 10, _LABEL_PT):
        label = _fit(full, _LABEL_PT, room)
        return label, "inside", x0 + 4, _text_px(label, _LABEL_PT)
    if x0 - 4 - width >= 0:
        return full, "left", x0 - 4 - width, width
    label = _fit(full, _LABEL_PT, max(right - x1 - 4, 0))
    return label, "right", x1 + 4, _text_px(label, _LABEL_PT)


def _place_cues(record: ClipRecord, step_px: float, right: float) -> tuple[_CuePlacement, ...]:
    """Bars and labels of the cues, packed greedily into lanes by their pixel extents, for
    steps ``step_px`` pixels wide and labels ending before pixel ``right``."""
    span = record.num_frames * record.frame_interval
    scale = step_px / record.frame_interval
    lane_ends: list[float] = []
    out = []
    for k, cue in enumerate(record.cues):
        start, end = min(max(cue.start, 0.0), span), min(max(cue.end, 0.0), span)
        x0 = start * scale
        x1 = max(end * scale, x0 + 3)  # a zero-length cue stays visible
        label, where, label_x, w = _label_place(_cue_label(cue, k), k, x0, x1, right)
        left, extent = min(x0, label_x), max(x1, label_x + w + 6)
        lane = next((i for i, e in enumerate(lane_ends) if e <= left), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(extent)
        else:
            lane_ends[lane] = extent
        out.append(_CuePlacement(lane, x0, x1, label, where, label_x))
    return tuple(out)


def _owners(record: ClipRecord) -> dict[int, int]:
    return {s: k for k, steps in enumerate(record.unique_sub2frames) for s in steps}


def _legend_items(record: ClipRecord) -> list[str]:
    """The kinds of mark the legend explains: those the picture can show."""
    items = ["cue", "assigned", "covered", "unmatched"]
    if any(is_pseudo(c) for c in record.cues):
        items.append("pseudo")
    if _short_end(record):
        items.append("end")
    return items


_LEGEND_TEXT = {
    "cue": "cue bar, its colour",
    "assigned": "step assigned to the cue (c<k> on it)",
    "covered": "covered by the cue, not assigned",
    "unmatched": "step no cue was assigned",
    "pseudo": "pseudo-cue (empty text)",
    "end": "clip end (short last step)",
}


_LEGEND_SPACING = {"handlelength": 2.0, "handletextpad": 0.8, "columnspacing": 2.0}
"""The horizontal room of a legend entry beside its text, in font sizes."""


def _legend_columns(items: list[str], width_px: float) -> int:
    """The most legend columns whose entries fit in ``width_px`` (matplotlib fills the legend
    column by column, each as wide as its widest entry)."""
    beside = sum(_LEGEND_SPACING.values()) * _LABEL_PT * DPI / 72  # font sizes to pixels
    entries = [beside + _text_px(_LEGEND_TEXT[i], _LABEL_PT) for i in items]
    for ncol in range(len(entries), 1, -1):
        rows = -(-len(entries) // ncol)
        columns = [entries[c * rows : (c + 1) * rows] for c in range(ncol)]
        if sum(max(c) for c in columns if c) <= width_px:
            return ncol
    return 1


@dataclass(frozen=True)
class _Layout:
    """The figure's size and its rows, in inches from the top (``(top, bottom)``)."""

    width: float
    height: float
    step_in: float
    rows: dict[str, tuple[float, float]]

    def rect(self, row: str, span_in: float) -> tuple[float, float, float, float]:
        """The figure-fraction rectangle of ``row``'s axes, ``span_in`` inches wide."""
        top, bottom = self.rows[row]
        return (
            _LEFT / self.width,
            1 - bottom / self.height,
            span_in / self.width,
            (bottom - top) / self.height,
        )


def _layout(
    record: ClipRecord,
    aspect: float | None,
    title: tuple[int, float],
    *,
    inputs: bool,
    lanes: int,
    legend_rows: int,
) -> _Layout:
    n = record.num_frames
    fit = (MAX_WIDTH - (_LEFT + 3 * _MARGIN) * DPI) // max(n, 1)
    step_px = max(MIN_STEP_PX, min(MAX_STEP_PX, fit))
    step_in = step_px / DPI
    width = max(_LEFT + n * step_in + 3 * _MARGIN, 2 * _MARGIN + min(title[1], 1600) / DPI, 5.6)
    rows: dict[str, tuple[float, float]] = {}
    y = _MARGIN

    def row(name: str, height: float, gap: float = 0.0) -> None:
        nonlocal y
        rows[name] = (y + gap, y + gap + height)
        y = rows[name][1]

    row("title", _TITLE_LINE * title[0] + 0.04)
    row("marks", _MARKS)
    shape = 9 / 16 if aspect is None else min(max(aspect, 0.25), 2.0)  # height / width
    row("frames", max(0.12, (step_in - 2 * _PAD_PX / DPI) * shape))  # a pixel each side
    if inputs:
        row("inputs", 3 * _INPUT_LANE, 0.04)
    row("assigned", _ROW, 0.06)
    most = max([sum(i in s for s in record.sub2frames) for i in range(n)] + [1])
    row("covers", max(0.18, _SLICE * most), 0.03)
    row("cues", lanes * _ROW, 0.1)
    row("axis", _AXIS)
    row("legend", _LEGEND_ROW * legend_rows, 0.06)
    # whole pixels, so that the PNG is exactly the figure's size
    return _Layout(np.ceil(width * DPI) / DPI, np.ceil((y + _MARGIN) * DPI) / DPI, step_in, rows)


def _new_row(fig: Figure, lay: _Layout, name: str, n: int, share: Axes | None) -> Axes:
    """The axes of row ``name``, over the ``n`` steps (x in clip seconds, shared with
    ``share``), y from 0 to 1 (unless set later), with neither frame nor ticks."""
    ax = fig.add_axes(lay.rect(name, n * lay.step_in), sharex=share, gid=name)
    ax.set_ylim(0, 1)
    ax.tick_params(left=False, labelleft=False, bottom=False, labelbottom=False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.patch.set_visible(False)
    return ax


def _row_label(ax: Axes, text: str) -> None:
    ax.set_ylabel(
        text, rotation=0, ha="right", va="center", labelpad=8, color=_MUTED, fontsize=_LABEL_PT
    )


def _tick(seconds_per_px: float) -> float:
    return next((t for t in _TICKS if t / seconds_per_px >= _MIN_TICK_PX), _TICKS[-1])


def _cell(
    ax: Axes, x0: float, x1: float, y0: float, y1: float, fill: str, colour: str, gid: str
) -> None:
    """One box of the "assigned" or "covers" row (or a cue's bar): ``fill`` is ``"solid"`` (the
    cue's colour), ``"hatched"`` (a pseudo-cue), ``"outline"`` (covered by the cue, assigned to
    another: a frame in its colour), ``"unmatched"`` (grey) or ``"empty"`` (not aligned)."""
    from matplotlib.patches import Rectangle

    kw: dict[str, object]
    if fill == "hatched":
        kw = {"facecolor": colour, "edgecolor": HATCH_COLOUR, "hatch": PSEUDO_HATCH, "lw": 0}
    elif fill in ("solid", "unmatched"):
        kw = {"facecolor": colour, "edgecolor": "none"}
    elif fill == "outline":
        kw = {"fill": False, "edgecolor": colour, "linewidth": 2}
    else:
        kw = {"fill": False, "edgecolor": colour, "linewidth": 1}
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, gid=gid, **kw))


def _cue_fill(record: ClipRecord, k: int) -> tuple[str, str]:
    cue = record.cues[k]
    return ("hatched", PSEUDO_COLOUR) if is_pseudo(cue) else ("solid", cue_colour(cue, k))


def clip_figure(
    record: ClipRecord,
    thumbnails: list[np.ndarray] | None,
    inputs: list[dict] | None = None,
) -> Figure:
    """The figure of ``record``'s timeline (see the module's docstring for its rows).

    ``thumbnails``: the 2D sample of each step (``(H, W, 3)`` uint8 RGB, one per step, see
    :func:`load_thumbnails`), or ``None`` to draw "no video" boxes instead. ``inputs``: the
    clip's sampling plan (:func:`load_inputs`) to mark the frames feeding each model input.

    Patches carry gids: ``assigned <i>`` (step ``i``'s cell), ``covers <i> c<k>`` (cue ``k``'s
    slice of step ``i``), ``cue <k>`` (its bar), ``no video <i>``; the inputs' ticks are one
    line collection per input, with the input's name as gid.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    if thumbnails is not None and len(thumbnails) != record.num_frames:
        raise ValueError(
            f"clip {record.clip_id}: {len(thumbnails)} thumbnails for {record.num_frames} steps"
        )
    n, interval = record.num_frames, record.frame_interval
    span = n * interval
    aspect = None  # the frames' height / width: the tallest one's
    if thumbnails:
        aspect = max(t.shape[0] / t.shape[1] for t in thumbnails)
    lines = _title_lines(record, thumbnails is not None)
    title = (len(lines), max(_text_px(text, _TITLE_PT) for text, _ in lines))
    # Lanes and the legend depend on the figure's width, which does not depend on them.
    probe = _layout(record, aspect, title, inputs=inputs is not None, lanes=1, legend_rows=1)
    step_px = probe.step_in * DPI
    right_px = (probe.width - _LEFT - _MARGIN) * DPI
    placements = _place_cues(record, step_px, right_px)
    lanes = 1 + max((p.lane for p in placements), default=0)
    items = _legend_items(record)
    ncol = _legend_columns(items, (probe.width - _LEFT - _MARGIN) * DPI)
    lay = _layout(
        record,
        aspect,
        title,
        inputs=inputs is not None,
        lanes=lanes,
        legend_rows=-(-len(items) // ncol),
    )
    fig = Figure(figsize=(lay.width, lay.height), dpi=DPI)
    FigureCanvasAgg(fig)  # Agg: drawn off screen, no display needed
    px = DPI * lay.step_in / interval  # pixels per second of the timeline

    for i, (text, colour) in enumerate(lines):
        y = 1 - (lay.rows["title"][0] + _TITLE_LINE * i) / lay.height
        text = _fit(text, _TITLE_PT, (lay.width - 2 * _MARGIN) * DPI)
        fig.text(
            _MARGIN / lay.width, y, text, va="top", fontsize=_TITLE_PT, color=colour, gid="title"
        )

    frames = _new_row(fig, lay, "frames", n, None)
    rows = [frames]
    _draw_frames(frames, record, thumbnails, lay.step_in, lay.rows["frames"])
    steps_axis = frames.secondary_xaxis("top")
    every = max(1, int(np.ceil(24 / step_px)))  # label every step when there is room
    steps_axis.set_xticks(
        [(i + 0.5) * interval for i in range(0, n, every)],
        [str(i) for i in range(0, n, every)],
    )
    steps_axis.tick_params(length=0, labelsize=_SMALL_PT, labelcolor=_MUTED, pad=2)
    steps_axis.spines["top"].set_visible(False)
    steps_axis.set_gid("steps")
    frames.annotate(
        "step",
        (0, 1),
        xycoords="axes fraction",
        xytext=(-8, 7),
        textcoords="offset points",
        ha="right",
        va="center",
        color=_MUTED,
        fontsize=_LABEL_PT,
    )

    if inputs is not None:
        lane_axes = _new_row(fig, lay, "inputs", n, frames)
        rows.append(lane_axes)
        _draw_inputs(lane_axes, record, inputs, px)

    assigned = _new_row(fig, lay, "assigned", n, frames)
    covers = _new_row(fig, lay, "covers", n, frames)
    rows += [assigned, covers]
    _draw_assignment(assigned, covers, record, px)

    cues = _new_row(fig, lay, "cues", n, frames)
    rows.append(cues)
    _draw_cues(cues, record, placements, lanes, px)
    # The time axis, under the cues: clip seconds, the source seconds under them.
    cues.xaxis.set_major_locator(MultipleLocator(_tick(1 / px)))
    cues.xaxis.set_major_formatter(
        FuncFormatter(lambda t, _: f"{t:g}\n{_secs(record.clip.start + t)}")
    )
    cues.tick_params(bottom=True, labelbottom=True, labelsize=_SMALL_PT + 0.5, colors=_TEXT)
    cues.spines["bottom"].set_visible(True)
    cues.spines["bottom"].set_bounds(0, span)
    cues.annotate(
        "clip s\nsource s",
        (0, 0),
        xycoords="axes fraction",
        xytext=(-8, -7),
        textcoords="offset points",
        ha="right",
        va="top",
        color=_MUTED,
        fontsize=_SMALL_PT + 0.5,
    )
    cues.set_xlim(0, span)  # the locator's ticks past the end are not drawn

    boundaries = [i * interval for i in range(n + 1)]
    for ax in rows:  # step boundaries, under everything else
        ax.vlines(
            boundaries, 0, 1, transform=ax.get_xaxis_transform(), colors=_GRID, lw=1, zorder=0
        )
    if _short_end(record):
        end = record.clip.duration
        for ax in rows:
            ax.axvline(end, color=END_COLOUR, linestyle=(0, (2, 2)), lw=2, gid="clip_end")
        label = f"clip end ({_secs(end)} s)"
        left = (_LEFT * DPI + end * px) - 4 - _text_px(label, _LABEL_PT) >= _MARGIN * DPI
        frames.annotate(
            label,
            (end, 1),
            xycoords=("data", "axes fraction"),
            xytext=(-4 if left else 4, 20),
            textcoords="offset pixels",
            ha="right" if left else "left",
            va="center",
            color=END_COLOUR,
            fontsize=_LABEL_PT,
        )
    _draw_legend(fig, lay, items, ncol)
    return fig


def _draw_frames(
    ax: Axes,
    record: ClipRecord,
    thumbnails: list[np.ndarray] | None,
    step_in: float,
    row: tuple[float, float],
) -> None:
    from matplotlib.patches import Rectangle

    _row_label(ax, "frames")
    interval = record.frame_interval
    pad = _PAD_PX / DPI / step_in * interval  # one pixel, in seconds
    row_in = row[1] - row[0]
    for i in range(record.num_frames):
        x0, x1 = i * interval + pad, (i + 1) * interval - pad
        if thumbnails is None:
            ax.add_patch(
                Rectangle(
                    (x0, 0),
                    x1 - x0,
                    1,
                    facecolor=_PLACEHOLDER,
                    edgecolor="#bebebe",
                    gid=f"no video {i}",
                )
            )
            if step_in * DPI >= 40:
                ax.text(
                    (x0 + x1) / 2,
                    0.5,
                    "no video",
                    ha="center",
                    va="center",
                    color=_MUTED,
                    fontsize=_SMALL_PT,
                )
            else:
                ax.plot([x0, x1], [1, 0], color="#bebebe", lw=1)
            continue
        image = thumbnails[i]
        # Fit the frame into the cell keeping its shape: the cell is (x1 - x0) seconds by the
        # row, in inches (x1 - x0) / interval * step_in by row_in.
        cell_w = (x1 - x0) / interval * step_in
        h, w = image.shape[0], image.shape[1]
        scale = min(cell_w / w, row_in / h)
        half_w = w * scale / step_in * interval / 2
        half_h = h * scale / row_in / 2
        mid = (x0 + x1) / 2
        ax.imshow(
            np.ascontiguousarray(image, dtype=np.uint8),
            extent=(mid - half_w, mid + half_w, 0.5 - half_h, 0.5 + half_h),
            aspect="auto",
            interpolation="antialiased",
        )
    ax.set_xlim(0, record.num_frames * interval)
    ax.set_ylim(0, 1)


def _draw_inputs(ax: Axes, record: ClipRecord, inputs: list[dict], px: float) -> None:
    """Ticks at the frames feeding each model input (clip-relative x), one lane per input,
    lane 0 (the 2D frame) at the top."""
    ax.set_ylim(0, len(INPUT_LANES))
    ax.set_yticks(
        [len(INPUT_LANES) - lane - 0.5 for lane in range(len(INPUT_LANES))],
        [INPUT_LABELS[key] for key in INPUT_LANES],
    )
    ax.tick_params(left=False, labelleft=True, labelsize=_SMALL_PT, labelcolor=_MUTED)
    for lane, key in enumerate(INPUT_LANES):
        top = len(INPUT_LANES) - lane - 0.1
        bottom = top - 0.75
        xs, counts = [], []
        for step in inputs:
            times = step[key] if isinstance(step[key], list) else [step[key]]
            seen: dict[float, int] = {}
            for t in times:
                seen[t] = seen.get(t, 0) + 1
            for t, k in seen.items():
                xs.append(t - record.clip.start)
                counts.append(k)
        ax.vlines(xs, bottom, top, colors=INPUT_COLOURS[key], lw=1, gid=key)
        for x, k in zip(xs, counts, strict=True):
            if k > 1:
                ax.text(
                    x + 2 / px,
                    top,
                    f"x{k}",
                    va="top",
                    color=INPUT_COLOURS[key],
                    fontsize=_SMALL_PT - 1,
                    gid=key,
                )


def _draw_assignment(assigned: Axes, covers: Axes, record: ClipRecord, px: float) -> None:
    """The "assigned" row (one cell per step in its owner's colour, grey when unmatched) and
    the "covers" row (each covering cue's slice of each step, top to bottom in cue order:
    filled as the cue's bar when the cue got the step, else outlined)."""
    _row_label(assigned, "assigned" if record.unique_sub2frames else "not aligned")
    _row_label(covers, "covers")
    interval = record.frame_interval
    pad = _PAD_PX / px
    owner = _owners(record)
    unmatched = set(record.unmatched_frames)
    for i in range(record.num_frames):
        x0, x1 = i * interval + pad, (i + 1) * interval - pad
        k = owner.get(i)
        if k is not None:
            fill, colour = _cue_fill(record, k)
            _cell(assigned, x0, x1, 0, 1, fill, colour, f"assigned {i}")
            text = _TEXT if fill == "hatched" else _contrast(colour)
            label = _fit(f"c{k}", _SMALL_PT, (x1 - x0) * px - 2)
        elif i in unmatched:
            _cell(assigned, x0, x1, 0, 1, "unmatched", UNMATCHED_COLOUR, f"assigned {i}")
            text, label = "white", _fit("none", _SMALL_PT, (x1 - x0) * px - 2)
        else:
            _cell(assigned, x0, x1, 0.02, 0.98, "empty", _GRID, f"assigned {i}")
            label = ""
        if label:
            assigned.text(
                (x0 + x1) / 2, 0.5, label, ha="center", va="center", color=text, fontsize=_SMALL_PT
            )
        covering = [c for c, steps in enumerate(record.sub2frames) if i in steps]
        for j, c in enumerate(covering):
            y1 = 1 - j / len(covering)
            y0 = 1 - (j + 1) / len(covering)
            if owner.get(i) == c:
                fill, colour = _cue_fill(record, c)
            else:
                cue = record.cues[c]
                fill, colour = "outline", HATCH_COLOUR if is_pseudo(cue) else cue_colour(cue, c)
            _cell(covers, x0, x1, y0 + 0.02, y1 - 0.02, fill, colour, f"covers {i} c{c}")


def _draw_cues(
    ax: Axes,
    record: ClipRecord,
    placements: tuple[_CuePlacement, ...],
    lanes: int,
    px: float,
) -> None:
    """The cues' bars, lane 0 at the top, each with its label."""
    _row_label(ax, "cues")
    ax.set_ylim(lanes, 0)
    if not record.cues:
        ax.text(0, 0.5, "(no cues)", va="center", color=_MUTED, fontsize=_LABEL_PT)
    for k, (cue, p) in enumerate(zip(record.cues, placements, strict=True)):
        fill, colour = _cue_fill(record, k)
        _cell(ax, p.x0 / px, p.x1 / px, p.lane + 0.1, p.lane + 0.9, fill, colour, f"cue {k}")
        text = _TEXT
        if p.where == "inside" and not is_pseudo(cue):
            text = _contrast(colour)
        ax.text(
            p.label_x / px,
            p.lane + 0.5,
            p.label,
            ha="left",
            va="center",
            color=text,
            fontsize=_LABEL_PT,
            gid=f"cue {k}",
            clip_on=False,
        )


def _draw_legend(fig: Figure, lay: _Layout, items: list[str], ncol: int) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = {
        "cue": Patch(facecolor=PALETTE[0]),
        "assigned": Patch(facecolor=PALETTE[0], edgecolor=_TEXT, linewidth=0.5),
        "covered": Patch(fill=False, edgecolor=PALETTE[0], linewidth=2),
        "unmatched": Patch(facecolor=UNMATCHED_COLOUR),
        "pseudo": Patch(facecolor=PSEUDO_COLOUR, edgecolor=HATCH_COLOUR, hatch=PSEUDO_HATCH, lw=0),
        "end": Line2D([], [], color=END_COLOUR, linestyle=(0, (2, 2)), lw=2),
    }
    top = lay.rows["legend"][0]
    legend = fig.legend(
        [handles[i] for i in items],
        [_LEGEND_TEXT[i] for i in items],
        loc="upper left",
        bbox_to_anchor=(_LEFT / lay.width, 1 - top / lay.height),
        ncol=ncol,
        frameon=False,
        fontsize=_LABEL_PT,
        borderaxespad=0,
        borderpad=0,
        **_LEGEND_SPACING,
    )
    legend.set_gid("legend")
    fig.text(
        (_LEFT - 0.08) / lay.width,
        1 - (top + _LEGEND_ROW / 2) / lay.height,
        "legend",
        ha="right",
        va="center",
        color=_MUTED,
        fontsize=_LABEL_PT,
    )


def plot_clip(
    record: ClipRecord,
    out: str | os.PathLike[str],
    *,
    thumbnails: list[np.ndarray] | None,
    inputs: list[dict] | None = None,
) -> Path:
    """Draw ``record``'s timeline (:func:`clip_figure`) to the PNG file ``out``; returns its
    path.

    ``thumbnails``: the 2D sample of each step (``(H, W, 3)`` uint8 RGB, one per step, see
    :func:`load_thumbnails`), or ``None`` to draw "no video" boxes instead. ``inputs``: the
    clip's sampling plan (:func:`load_inputs`) to mark the frames feeding each model input.
    """
    path = Path(out)
    clip_figure(record, thumbnails, inputs).savefig(path, format="png")
    return path


def load_thumbnails(record: ClipRecord) -> list[np.ndarray] | None:
    """Each step's 2D sample, decoded from the clip's window of its source video.

    These are the images the ResNet features were computed from (:func:`iter_steps`'s
    ``.image``, short side 224). ``None``, with a warning logged, when the source is missing or
    cannot be decoded. A decode that gives another number of steps than the record has is
    truncated, or padded with grey images, with a warning.
    """
    clip = record.clip
    try:
        images = [
            step.image
            for step in iter_steps(
                record.source, record.frame_interval, start=clip.start, end=clip.end
            )
        ]
    except (DecodeError, GridError, OSError) as e:
        log.warning("clip %s: no frames shown, cannot decode the source: %s", record.clip_id, e)
        return None
    if not images:
        log.warning("clip %s: no frames shown, %s decoded no step", record.clip_id, record.source)
        return None
    n = record.num_frames
    if len(images) != n:
        log.warning(
            "clip %s: %s decoded %d steps in [%g, %g) s but the clip has %d; %s",
            record.clip_id,
            record.source,
            len(images),
            clip.start,
            clip.end,
            n,
            "the extra ones are dropped" if len(images) > n else "the missing ones are grey",
        )
        images = images[:n] + [np.full_like(images[-1], 128)] * (n - len(images))
    return images


def load_inputs(record: ClipRecord, sampling: str) -> list[dict] | None:
    """The clip's sampling plan under ``sampling`` (:func:`extract.sampling.plan_steps`): per
    step, the source times of the frames feeding each model input. ``None``, with a warning,
    when the source is missing or cannot be decoded."""
    clip = record.clip
    try:
        return list(
            plan_steps(
                record.source,
                record.frame_interval,
                sampling=sampling,
                start=clip.start,
                end=clip.end,
            )
        )
    except (DecodeError, GridError, OSError) as e:
        log.warning("clip %s: no inputs marked, cannot decode the source: %s", record.clip_id, e)
        return None
