"""``hero inspect --clip ID --plot out.png``: one clip's timeline as a picture.

Drawn with Pillow only, so that a person can check the alignment at a glance. Top to bottom, on
one horizontal axis of clip-relative seconds (step ``i`` spans ``[i·L, (i+1)·L)``):

- the 2D sample of each step (the frame its ResNet feature was computed from), fitted into
  the step's cell; a "no video" box per step when the source cannot be decoded;
- the step indices, and a time axis in clip seconds with the source seconds under them;
- "assigned": each step painted in the colour of the cue that owns it (``unique_sub2frames``),
  grey when no cue does (``unmatched_frames``);
- with ``inputs`` (``hero inspect --mark-inputs``): which source frames fed the models, as ticks
  at their presentation times in three lanes: the 2D (ResNet) frame, SlowFast's 32 fast and 8
  slow frames; a frame used more than once carries its count (``x10``). From the sampling plan
  (:func:`extract.sampling.plan_steps`), the code extraction itself uses;
- "covers": every cue covering each step (``sub2frames``), one slice per cue: solid when the
  cue got the step, only an outline in its colour when it covers the step but lost it;
- the cues as bars over their ``[start, end)`` spans, in lanes so that neither bars nor labels
  collide, each labelled ``c<k> SPEAKER: text``; pseudo-cues (empty text) hatched grey.

A cue's bar and the cells of its steps share its colour, so a misaligned cue shows as a bar
that does not sit over its cells. Thin grey lines mark the step boundaries through all rows; a
red dashed line marks the clip's end when its last step is short.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from extract.decode import DecodeError, iter_steps
from extract.sampling import plan_steps
from hero_data.grid import GridError
from hero_data.schema import ClipRecord
from hero_data.types import Cue

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]

PALETTE: tuple[RGB, ...] = (
    (31, 119, 180),  # blue
    (255, 127, 14),  # orange
    (44, 160, 44),  # green
    (214, 39, 40),  # red
    (148, 103, 189),  # purple
    (140, 86, 75),  # brown
    (227, 119, 194),  # pink
    (188, 189, 34),  # olive
    (23, 190, 207),  # cyan
)
"""Cue colours, by cue index modulo 9 (Tableau 10 without its grey, kept for the unmatched)."""

INPUT_COLOURS: dict[str, RGB] = {
    "resnet": (20, 20, 20),
    "slowfast_fast": (31, 119, 180),
    "slowfast_slow": (255, 127, 14),
}
"""Tick colours of the model inputs' frames: the 2D frame, SlowFast's fast and slow frames."""

UNMATCHED_COLOUR: RGB = (150, 150, 150)
"""Fill of an "assigned" cell whose step no cue owns."""

PSEUDO_COLOUR: RGB = (222, 222, 222)
"""Base of a pseudo-cue's bar and cells, hatched with darker grey."""

MAX_WIDTH = 4000
"""Pixels the steps may take at most, while each step keeps at least :data:`MIN_STEP_PX`."""

MAX_STEP_PX = 128
MIN_STEP_PX = 8

_HATCH: RGB = (160, 160, 160)
_GRID: RGB = (226, 226, 226)
_TEXT: RGB = (20, 20, 20)
_MUTED: RGB = (110, 110, 110)
_END: RGB = (220, 30, 30)
_PLACEHOLDER: RGB = (238, 238, 238)
_LABEL_CHARS = 48  # cue text kept in a label before "..."
_TICKS = (0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_MIN_TICK_PX = 56
_MARGIN = 8
_LEFT = 84  # room for the row labels
_ROW = 22  # height of the assigned row and of a cue lane
_LABEL_SIZE = 12  # font size of labels; ticks are smaller, the title larger
_INPUT_LANE = 16  # height of each lane of the model-input row


def cue_colour(cue: Cue, index: int) -> RGB:
    """The colour of cue ``index`` of a clip: :data:`PALETTE` cycled, grey for a pseudo-cue."""
    return PSEUDO_COLOUR if is_pseudo(cue) else PALETTE[index % len(PALETTE)]


def is_pseudo(cue: Cue) -> bool:
    """Whether ``cue`` is a pseudo-cue (empty text; real cues never have empty text)."""
    return cue.text == ""


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError, TypeError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _text_px(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    return int(np.ceil(font.getlength(text)))


def _fit(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_px: int) -> str:
    """``text``, cut and ended with "..." where needed so that it is at most ``max_px`` wide."""
    if _text_px(text, font) <= max_px:
        return text
    lo, hi = 0, len(text)  # longest prefix that fits with the ellipsis
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _text_px(text[:mid].rstrip() + "...", font) <= max_px:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "..." if lo else ""


def _contrast(colour: RGB) -> RGB:
    """Black or white, whichever reads better on ``colour``."""
    r, g, b = colour
    return _TEXT if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


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


@dataclass(frozen=True)
class CuePlacement:
    """Where a cue's bar and label go.

    Attributes:
        lane: lane index, 0 at the top.
        x0, x1: the bar's pixel columns ``[x0, x1)``.
        label: the label as drawn (cut with "..." where there was no room).
        where: "inside" the bar, or "right" or "left" of it.
        label_x: pixel column where the label starts.
    """

    lane: int
    x0: int
    x1: int
    label: str
    where: str
    label_x: int


@dataclass(frozen=True)
class ClipLayout:
    """Where everything goes in the picture of one clip (pixels, y grows downwards).

    Rows are ``(top, bottom)`` pixel ranges. Step ``i`` spans columns :meth:`step_columns`.
    """

    width: int
    height: int
    origin: int
    step_px: int
    frame_interval: float
    num_steps: int
    title: tuple[int, int]
    marks: tuple[int, int]
    thumbs: tuple[int, int]
    inputs: tuple[int, int]
    steps: tuple[int, int]
    axis: tuple[int, int]
    assigned: tuple[int, int]
    covered: tuple[int, int]
    cues: tuple[int, int]
    legend: tuple[int, int]
    placements: tuple[CuePlacement, ...]
    title_lines: tuple[tuple[str, RGB], ...]

    def x(self, seconds: float) -> int:
        """Pixel column of clip-relative ``seconds``."""
        return self.origin + round(seconds / self.frame_interval * self.step_px)

    def step_columns(self, index: int) -> tuple[int, int]:
        """Pixel columns ``[x0, x1)`` of step ``index``."""
        x0 = self.origin + index * self.step_px
        return x0, x0 + self.step_px

    def cue_bar(self, placement: CuePlacement) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` of a cue's bar, right and bottom exclusive."""
        top = self.cues[0] + placement.lane * _ROW + 2
        return placement.x0, top, placement.x1 - 1, top + _ROW - 4

    def input_lane(self, lane: int) -> tuple[int, int]:
        """Pixel rows ``[top, bottom]`` of the ticks in lane ``lane`` of the model-input row."""
        top = self.inputs[0] + lane * _INPUT_LANE
        return top, top + _INPUT_LANE - 3

    def thumbnail_box(self, index: int, shape: Sequence[int]) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` of step ``index``'s image of ``shape`` (H, W, ...)."""
        x0, x1 = self.step_columns(index)
        box_w, box_h = x1 - x0 - 2, self.thumbs[1] - self.thumbs[0]
        h, w = int(shape[0]), int(shape[1])
        scale = min(box_w / w, box_h / h)
        tw, th = max(1, round(w * scale)), max(1, round(h * scale))
        left = x0 + 1 + (box_w - tw) // 2
        top = self.thumbs[0] + (box_h - th) // 2
        return left, top, left + tw, top + th


@dataclass(frozen=True)
class Cell:
    """One box of the "assigned" or "covers" row, as drawn.

    Attributes:
        step: the step it belongs to.
        box: ``(left, top, right, bottom)`` pixels, right and bottom exclusive.
        cue: the index of the cue it shows, None for a step no cue owns.
        fill: ``"solid"`` (the cue's colour), ``"hatched"`` (a pseudo-cue: grey hatching),
            ``"outline"`` (covered by the cue but assigned to another: a frame in the cue's
            colour), ``"unmatched"`` (grey: no cue owns the step) or ``"empty"`` (a step
            neither owned nor unmatched: the clip was not aligned).
        colour: the colour that fill is drawn in (the hatching's base for ``"hatched"``).
    """

    step: int
    box: tuple[int, int, int, int]
    cue: int | None
    fill: str
    colour: RGB


@dataclass(frozen=True)
class InputTick:
    """A mark of one source frame feeding a model input (``hero inspect --mark-inputs``).

    Attributes:
        input: ``"resnet"``, ``"slowfast_fast"`` or ``"slowfast_slow"`` (its lane, top to
            bottom, and its colour in :data:`INPUT_COLOURS`).
        x: the pixel column of the frame's presentation time.
        top, bottom: the tick's pixel rows ``[top, bottom]``.
        count: how many times the step uses the frame (drawn as ``x<count>`` when above 1).
    """

    input: str
    x: int
    top: int
    bottom: int
    count: int


def _title_lines(record: ClipRecord, has_video: bool) -> list[tuple[str, RGB]]:
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
        lines.append(("no video: the source is missing or unreadable, frames not shown", _END))
    return lines


_LEGEND = (
    ("cue", "cue bar, its colour"),
    ("assigned", "step assigned to the cue"),
    ("covered", "covered by the cue, not assigned"),
    ("unmatched", "step no cue was assigned"),
    ("pseudo", "pseudo-cue (empty text)"),
    ("end", "clip end (short last step)"),
)


def _legend_items(record: ClipRecord) -> list[tuple[str, str]]:
    short_end = record.clip.duration < record.num_frames * record.frame_interval - 1e-6
    return [
        item
        for item in _LEGEND
        if (item[0] != "pseudo" or any(is_pseudo(c) for c in record.cues))
        and (item[0] != "end" or short_end)
    ]


def _legend_rows(items: list[tuple[str, str]], width: int) -> list[list[tuple[str, str]]]:
    font = _font(_LABEL_SIZE)
    rows: list[list[tuple[str, str]]] = [[]]
    x = _LEFT
    for item in items:
        w = 30 + _text_px(item[1], font) + 18
        if rows[-1] and x + w > width - _MARGIN:
            rows.append([])
            x = _LEFT
        rows[-1].append(item)
        x += w
    return rows


def _label_place(
    full: str, k: int, x0: int, x1: int, origin: int, right: int
) -> tuple[str, str, int, int]:
    """``(label, where, label_x, width)`` of a bar's label, by preference: whole on the bar,
    whole right of it, cut on the bar (when at least 10 characters fit), whole left of it,
    cut right of it."""
    font = _font(_LABEL_SIZE)
    width, room = _text_px(full, font), x1 - x0 - 8
    if width <= room:
        return full, "inside", x0 + 4, width
    if x1 + 4 + width <= right:
        return full, "right", x1 + 4, width
    if room >= _text_px(f"c{k} " + "x" * 10, font):
        label = _fit(full, font, room)
        return label, "inside", x0 + 4, _text_px(label, font)
    if x0 - 4 - width >= origin:
        return full, "left", x0 - 4 - width, width
    label = _fit(full, font, max(right - x1 - 4, 0))
    return label, "right", x1 + 4, _text_px(label, font)


def _place_cues(
    record: ClipRecord, origin: int, step_px: int, right: int
) -> tuple[CuePlacement, ...]:
    """Bars and labels of the cues, packed greedily into lanes by their pixel extents."""
    span = record.num_frames * record.frame_interval
    scale = step_px / record.frame_interval
    lane_ends: list[int] = []
    out = []
    for k, cue in enumerate(record.cues):
        start, end = min(max(cue.start, 0.0), span), min(max(cue.end, 0.0), span)
        x0 = origin + round(start * scale)
        x1 = max(origin + round(end * scale), x0 + 3)  # a zero-length cue stays visible
        label, where, label_x, w = _label_place(_cue_label(cue, k), k, x0, x1, origin, right)
        left, extent = min(x0, label_x), max(x1, label_x + w + 6)
        lane = next((i for i, e in enumerate(lane_ends) if e <= left), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(extent)
        else:
            lane_ends[lane] = extent
        out.append(CuePlacement(lane, x0, x1, label, where, label_x))
    return tuple(out)


def clip_layout(
    record: ClipRecord, thumbnail_shape: Sequence[int] | None = None, *, inputs: bool = False
) -> ClipLayout:
    """The layout of :func:`plot_clip`'s picture; ``thumbnail_shape`` (H, W) sets the row height;
    ``inputs`` adds the row of model-input frames under the frames (else it is empty).

    The width per step is :data:`MAX_STEP_PX`, less for long clips so that the picture is at
    most :data:`MAX_WIDTH` pixels wide (but never less than :data:`MIN_STEP_PX`).
    """
    n = record.num_frames
    fit = (MAX_WIDTH - _LEFT - 3 * _MARGIN) // max(n, 1)
    step_px = max(MIN_STEP_PX, min(MAX_STEP_PX, fit))
    aspect = 9 / 16 if thumbnail_shape is None else thumbnail_shape[0] / thumbnail_shape[1]
    thumb_h = max(12, round((step_px - 2) * min(max(aspect, 0.25), 2.0)))
    title_font = _font(14)
    lines = _title_lines(record, thumbnail_shape is not None)
    title_w = max(_text_px(text, title_font) for text, _ in lines)
    width = max(_LEFT + n * step_px + 3 * _MARGIN, 2 * _MARGIN + min(title_w, 1600), 560)
    y = _MARGIN
    title = (y, y + 4 + 18 * len(lines))
    marks = (title[1] + 2, title[1] + 16)
    thumbs = (marks[1] + 2, marks[1] + 2 + thumb_h)
    if inputs:
        input_rows = (thumbs[1] + 4, thumbs[1] + 4 + 3 * _INPUT_LANE)
    else:
        input_rows = (thumbs[1], thumbs[1])  # no row: the rows below stay where they were
    steps = (input_rows[1] + 2, input_rows[1] + 18)
    axis = (steps[1], steps[1] + 36)
    assigned = (axis[1] + 6, axis[1] + 6 + _ROW)
    most = max([sum(k in s for s in record.sub2frames) for k in range(n)] + [1])
    covered = (assigned[1] + 3, assigned[1] + 3 + max(18, 12 * most))
    placements = _place_cues(record, _LEFT, step_px, width - _MARGIN)
    lanes = 1 + max((p.lane for p in placements), default=0)
    cues = (covered[1] + 10, covered[1] + 10 + lanes * _ROW)
    legend_rows = _legend_rows(_legend_items(record), width)
    legend = (cues[1] + 14, cues[1] + 14 + 18 * len(legend_rows))
    return ClipLayout(
        width=width,
        height=legend[1] + _MARGIN,
        origin=_LEFT,
        step_px=step_px,
        frame_interval=record.frame_interval,
        num_steps=n,
        title=title,
        marks=marks,
        thumbs=thumbs,
        inputs=input_rows,
        steps=steps,
        axis=axis,
        assigned=assigned,
        covered=covered,
        cues=cues,
        legend=legend,
        placements=placements,
        title_lines=tuple(lines),
    )


def _cue_fill(record: ClipRecord, k: int) -> tuple[str, RGB]:
    cue = record.cues[k]
    return ("hatched", PSEUDO_COLOUR) if is_pseudo(cue) else ("solid", cue_colour(cue, k))


def assigned_cells(record: ClipRecord, lay: ClipLayout) -> tuple[Cell, ...]:
    """The "assigned" row: one cell per step, in the colour of the cue that owns it
    (``unique_sub2frames``), grey when no cue does (``unmatched_frames``)."""
    owner = _owners(record)
    unmatched = set(record.unmatched_frames)
    top, bottom = lay.assigned
    out = []
    for i in range(lay.num_steps):
        x0, x1 = lay.step_columns(i)
        box = (x0 + 1, top, x1 - 1, bottom)
        k = owner.get(i)
        if k is not None:
            out.append(Cell(i, box, k, *_cue_fill(record, k)))
        elif i in unmatched:
            out.append(Cell(i, box, None, "unmatched", UNMATCHED_COLOUR))
        else:
            out.append(Cell(i, box, None, "empty", _GRID))
    return tuple(out)


def covered_cells(record: ClipRecord, lay: ClipLayout) -> tuple[Cell, ...]:
    """The "covers" row: for each step, one slice per cue covering it (``sub2frames``), top to
    bottom in cue order: filled as the cue's bar when the cue got the step, else outlined."""
    owner = _owners(record)
    out = []
    for i in range(lay.num_steps):
        x0, x1 = lay.step_columns(i)
        covering = [c for c, steps in enumerate(record.sub2frames) if i in steps]
        height = (lay.covered[1] - lay.covered[0]) / max(len(covering), 1)
        for j, c in enumerate(covering):
            y0 = lay.covered[0] + round(j * height)
            y1 = lay.covered[0] + round((j + 1) * height)
            box = (x0 + 1, y0, x1 - 1, y1 - 1)
            if owner.get(i) == c:
                out.append(Cell(i, box, c, *_cue_fill(record, c)))
            else:
                cue = record.cues[c]
                out.append(
                    Cell(i, box, c, "outline", _HATCH if is_pseudo(cue) else cue_colour(cue, c))
                )
    return tuple(out)


INPUT_LANES = ("resnet", "slowfast_fast", "slowfast_slow")
"""The model inputs' lanes, top to bottom."""


def input_ticks(record: ClipRecord, lay: ClipLayout, inputs: list[dict]) -> tuple[InputTick, ...]:
    """The ticks of the model-input row: each distinct frame of each step's inputs, at its
    clip-relative presentation time, in its input's lane (``inputs`` as :func:`load_inputs`)."""
    out = []
    for lane, key in enumerate(INPUT_LANES):
        top, bottom = lay.input_lane(lane)
        for step in inputs:
            times = step[key] if isinstance(step[key], list) else [step[key]]
            counts: dict[float, int] = {}
            for t in times:
                counts[t] = counts.get(t, 0) + 1
            for t, n in counts.items():
                out.append(InputTick(key, lay.x(t - record.clip.start), top, bottom, n))
    return tuple(out)


def _hatch(img: Image.Image, box: tuple[int, int, int, int], base: RGB, line: RGB) -> None:
    """Fill ``box`` (left, top, right, bottom) with ``base`` crossed by diagonal ``line``s."""
    w, h = box[2] - box[0], box[3] - box[1]
    if w <= 0 or h <= 0:
        return
    tile = Image.new("RGB", (w, h), base)
    draw = ImageDraw.Draw(tile)
    for k in range(0, w + h, 6):
        draw.line([(k, 0), (k - h, h)], fill=line, width=1)
    img.paste(tile, box[:2])


def _paint(img: Image.Image, box: tuple[int, int, int, int], cue: Cue, k: int) -> None:
    """Fill ``box`` as cue ``k``'s cells and bars are filled: its colour, or hatched grey."""
    _fill(
        img, box, *(("hatched", PSEUDO_COLOUR) if is_pseudo(cue) else ("solid", cue_colour(cue, k)))
    )


def _fill(img: Image.Image, box: tuple[int, int, int, int], fill: str, colour: RGB) -> None:
    """Draw ``box`` (right and bottom exclusive) as a :class:`Cell`'s ``fill`` says."""
    draw = ImageDraw.Draw(img)
    inner = (box[0], box[1], box[2] - 1, box[3] - 1)
    if fill == "hatched":
        _hatch(img, box, colour, _HATCH)
    elif fill in ("solid", "unmatched"):
        draw.rectangle(inner, fill=colour)
    elif fill == "outline":
        draw.rectangle(inner, outline=colour, width=2)
    else:
        draw.rectangle(inner, outline=colour)


def _centred(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    text: str,
    fill: RGB,
    size: int = 11,
) -> None:
    font = _font(size)
    text = _fit(text, font, box[2] - box[0] - 2)
    if text:
        draw.text(
            ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), text, font=font, fill=fill, anchor="mm"
        )


def _row_label(draw: ImageDraw.ImageDraw, row: tuple[int, int], text: str) -> None:
    font = _font(_LABEL_SIZE)
    draw.text((_LEFT - 8, (row[0] + row[1]) / 2), text, font=font, fill=_MUTED, anchor="rm")


def _dashed_vline(draw: ImageDraw.ImageDraw, x: int, top: int, bottom: int, fill: RGB) -> None:
    for y in range(top, bottom, 8):
        draw.line([(x, y), (x, min(y + 4, bottom))], fill=fill, width=2)


def _draw_title(draw: ImageDraw.ImageDraw, lay: ClipLayout) -> None:
    font = _font(14)
    for i, (text, colour) in enumerate(lay.title_lines):
        text = _fit(text, font, lay.width - 2 * _MARGIN)
        draw.text((_MARGIN, lay.title[0] + 18 * i), text, font=font, fill=colour)


def _draw_frames(img: Image.Image, lay: ClipLayout, thumbnails: list[np.ndarray] | None) -> None:
    draw = ImageDraw.Draw(img)
    _row_label(draw, lay.thumbs, "frames")
    for i in range(lay.num_steps):
        if thumbnails is None:
            x0, x1 = lay.step_columns(i)
            box = (x0 + 1, lay.thumbs[0], x1 - 2, lay.thumbs[1] - 1)
            draw.rectangle(box, fill=_PLACEHOLDER, outline=(190, 190, 190))
            if lay.step_px >= 40:
                _centred(draw, box, "no video", _MUTED, _LABEL_SIZE)
            else:
                draw.line([box[:2], box[2:]], fill=(190, 190, 190))
            continue
        image = thumbnails[i]
        left, top, right, bottom = lay.thumbnail_box(i, image.shape)
        thumb = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), "RGB")
        img.paste(thumb.resize((right - left, bottom - top), Image.Resampling.LANCZOS), (left, top))


def _draw_inputs(img: Image.Image, lay: ClipLayout, record: ClipRecord, inputs: list[dict]) -> None:
    """Ticks at the frames feeding each model input (clip-relative x), one lane per input."""
    draw = ImageDraw.Draw(img)
    font = _font(10)
    for lane, label in enumerate(("2D", "fast", "slow")):
        top, bottom = lay.input_lane(lane)
        draw.text((_LEFT - 8, (top + bottom) / 2), label, font=font, fill=_MUTED, anchor="rm")
    for tick in input_ticks(record, lay, inputs):
        colour = INPUT_COLOURS[tick.input]
        draw.line([(tick.x, tick.top), (tick.x, tick.bottom)], fill=colour, width=1)
        if tick.count > 1:
            draw.text((tick.x + 2, tick.top), f"x{tick.count}", font=font, fill=colour)


def _tick(seconds_per_px: float) -> float:
    return next((t for t in _TICKS if t / seconds_per_px >= _MIN_TICK_PX), _TICKS[-1])


def _draw_axis(draw: ImageDraw.ImageDraw, lay: ClipLayout, record: ClipRecord) -> None:
    font = _font(11)
    n, step_px = lay.num_steps, lay.step_px
    _row_label(draw, lay.steps, "step")
    every = max(1, int(np.ceil(24 / step_px)))  # label every step when there is room
    for i in range(0, n, every):
        x0, x1 = lay.step_columns(i)
        _centred(draw, (x0, lay.steps[0], x1, lay.steps[1]), str(i), _MUTED, 10)
    y = lay.axis[0] + 2
    span = n * record.frame_interval
    draw.line([(lay.x(0), y), (lay.x(span), y)], fill=_TEXT, width=1)
    _row_label(draw, (y + 7, y + 21), "clip s")
    _row_label(draw, (y + 21, y + 35), "source s")
    tick = _tick(record.frame_interval / step_px)
    count = int(span / tick + 1e-9)
    for j in range(count + 1):
        t = j * tick
        x = lay.x(t)
        draw.line([(x, y), (x, y + 5)], fill=_TEXT)
        draw.text((x, y + 7), f"{t:g}", font=font, fill=_TEXT, anchor="mt")
        draw.text(
            (x, y + 21), _secs(record.clip.start + t), font=_font(10), fill=_MUTED, anchor="mt"
        )


def _owners(record: ClipRecord) -> dict[int, int]:
    return {s: k for k, steps in enumerate(record.unique_sub2frames) for s in steps}


def _draw_assignment(img: Image.Image, lay: ClipLayout, record: ClipRecord) -> None:
    draw = ImageDraw.Draw(img)
    _row_label(draw, lay.assigned, "assigned" if record.unique_sub2frames else "not aligned")
    _row_label(draw, lay.covered, "covers")
    for cell in assigned_cells(record, lay):
        _fill(img, cell.box, cell.fill, cell.colour)
        if cell.fill == "unmatched":
            _centred(draw, cell.box, "none", (255, 255, 255))
        elif cell.cue is not None:
            text = _TEXT if cell.fill == "hatched" else _contrast(cell.colour)
            _centred(draw, cell.box, f"c{cell.cue}", text)
    for cell in covered_cells(record, lay):
        _fill(img, cell.box, cell.fill, cell.colour)


def _draw_cues(img: Image.Image, lay: ClipLayout, record: ClipRecord) -> None:
    draw = ImageDraw.Draw(img)
    font = _font(_LABEL_SIZE)
    _row_label(draw, (lay.cues[0], lay.cues[0] + _ROW), "cues")
    if not record.cues:
        draw.text((lay.origin, lay.cues[0] + 4), "(no cues)", font=font, fill=_MUTED)
    for k, (cue, p) in enumerate(zip(record.cues, lay.placements, strict=True)):
        box = lay.cue_bar(p)
        _paint(img, box, cue, k)
        mid = (box[1] + box[3]) / 2
        fill = _TEXT
        if p.where == "inside" and not is_pseudo(cue):
            fill = _contrast(cue_colour(cue, k))
        draw.text((p.label_x, mid), p.label, font=font, fill=fill, anchor="lm")


def _draw_legend(img: Image.Image, lay: ClipLayout, record: ClipRecord) -> None:
    draw = ImageDraw.Draw(img)
    font = _font(_LABEL_SIZE)
    rows = _legend_rows(_legend_items(record), lay.width)
    demo = Cue(0.0, 1.0, "x")
    _row_label(draw, (lay.legend[0], lay.legend[0] + 18), "legend")
    for r, row in enumerate(rows):
        x, y = _LEFT, lay.legend[0] + 18 * r
        for kind, text in row:
            box = (x, y + 3, x + 24, y + 15)
            if kind in ("cue", "assigned"):
                _paint(img, box, demo, 0)
                if kind == "assigned":
                    _centred(draw, box, "c0", (255, 255, 255), 9)
            elif kind == "covered":
                draw.rectangle(
                    (box[0], box[1], box[2] - 1, box[3] - 1), outline=PALETTE[0], width=2
                )
            elif kind == "unmatched":
                draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=UNMATCHED_COLOUR)
            elif kind == "pseudo":
                _hatch(img, box, PSEUDO_COLOUR, _HATCH)
            else:
                draw.line([(x + 12, y + 1), (x + 12, y + 5)], fill=_END, width=2)
                draw.line([(x + 12, y + 10), (x + 12, y + 15)], fill=_END, width=2)
            draw.text((x + 30, y + 9), text, font=font, fill=_TEXT, anchor="lm")
            x += 30 + _text_px(text, font) + 18


def plot_clip(
    record: ClipRecord,
    out: str | Path,
    *,
    thumbnails: list[np.ndarray] | None,
    inputs: list[dict] | None = None,
) -> Path:
    """Draw ``record``'s timeline to the PNG file ``out``; returns its path.

    ``thumbnails``: the 2D sample of each step (``(H, W, 3)`` uint8 RGB, one per step, see
    :func:`load_thumbnails`), or ``None`` to draw "no video" boxes instead. ``inputs``: the
    clip's sampling plan (:func:`load_inputs`) to mark the frames feeding each model input.
    """
    if thumbnails is not None and len(thumbnails) != record.num_frames:
        raise ValueError(
            f"clip {record.clip_id}: {len(thumbnails)} thumbnails for {record.num_frames} steps"
        )
    shape = None
    if thumbnails:
        shape = max((t.shape for t in thumbnails), key=lambda s: s[0] / s[1])
    lay = clip_layout(record, shape, inputs=inputs is not None)
    img = Image.new("RGB", (lay.width, lay.height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for i in range(lay.num_steps + 1):  # step boundaries, under everything else
        x = lay.step_columns(i)[0]
        draw.line([(x, lay.thumbs[0]), (x, lay.cues[1])], fill=_GRID)
    _draw_title(draw, lay)
    _draw_frames(img, lay, thumbnails)
    if inputs is not None:
        _draw_inputs(img, lay, record, inputs)
    _draw_axis(draw, lay, record)
    _draw_assignment(img, lay, record)
    _draw_cues(img, lay, record)
    if record.clip.duration < lay.num_steps * record.frame_interval - 1e-6:
        x = lay.x(record.clip.duration)
        _dashed_vline(draw, x, lay.marks[0], lay.cues[1], _END)
        label, font = f"clip end ({_secs(record.clip.duration)} s)", _font(_LABEL_SIZE)
        if x - 4 - _text_px(label, font) >= _MARGIN:
            draw.text((x - 4, lay.marks[0]), label, font=font, fill=_END, anchor="rt")
        else:
            draw.text((x + 4, lay.marks[0]), label, font=font, fill=_END, anchor="lt")
    _draw_legend(img, lay, record)
    path = Path(out)
    img.save(path, format="PNG")
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
