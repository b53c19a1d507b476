"""Cues cut to clips and aligned to the frame grid, by HERO's rule.

Cutting (:func:`cut_cues`): a clip ``[clip_start, clip_end)`` keeps every cue that overlaps it
by more than zero seconds, shifted to clip-relative time and clipped to ``[0, duration]``. A cue
crossing a clip boundary therefore appears in both clips, clipped to each.

Alignment (:func:`align_cues`, HERO's ``process_single_vid_sub`` and pseudo-cue rules):

- cues starting at or after the clip end are dropped; ends are clipped to the clip;
- cue c covers steps ``floor(start/L) … ceil(end/L) − 1`` (``sub2frames``, via the frame grid);
- the clip's last cue, when longer than 16 s, keeps only its first 11 steps (HERO's guard
  against runaway final captions);
- each step goes to the one covering cue with the highest temporal IoU between the step
  ``[i·L, (i+1)·L)`` and the cue ``[start, end]`` (IoU is scale-free, so seconds or step units
  give the same value), ties to the earlier cue (``unique_sub2frames``); IoUs are compared as
  exact fractions of the times at microsecond precision (``grid.exact_seconds``), so cues
  whose written times tie do tie, whatever float noise says;
- steps no cue covers are ``unmatched_frames``;
- a clip left with no cue gets pseudo-cues of empty text, one per 5 steps, each owning its
  steps, so training can still use the clip. Real cues never have empty text (cleaning drops
  them), so empty text marks a pseudo-cue.

Unique spans are contiguous runs of steps, except where one cue lies inside another: the IoU
rule can then give the outer cue the steps on both sides of the inner one (HERO does the same;
``tests/align/test_spans.py`` pins the case).

HERO's reference differs in two corner cases we do not reproduce: it kept steps past the clip
end in ``sub2frames`` (we clip them), and a step whose covering cues all had zero IoU went to
cue 0 (with zero-length cues dropped beforehand, that cannot happen here).

Example at L = 1.5 s, cue A = [0.5, 4.0) s, cue B = [3.5, 6.0) s::

    steps      0         1         2         3
    A        [===================]                sub2frames A = [0, 1, 2]
    B                         [=========]         sub2frames B = [2, 3]
    step 2 = [3.0, 4.5): IoU(A) = 1/4, IoU(B) = 1/3 -> B;  unique: A = [0, 1], B = [2, 3]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from hero_data.grid import DEFAULT_FRAME_INTERVAL, FrameGrid, exact_seconds
from hero_data.types import Cue

LONG_LAST_CUE_S = 16.0
"""A clip's last cue longer than this (seconds) keeps only :data:`LONG_LAST_CUE_STEPS` steps."""

LONG_LAST_CUE_STEPS = 11

PSEUDO_CUE_STEPS = 5
"""Steps per pseudo-cue in a clip without cues."""


def cut_cues(cues: Sequence[Cue], clip_start: float, clip_end: float) -> list[Cue]:
    """Cues overlapping ``[clip_start, clip_end)`` source seconds, clip-relative and clipped.

    Order is kept. A cue that touches the window only at a point (ends exactly at
    ``clip_start`` or starts at ``clip_end``) is not in it.
    """
    if not clip_end > clip_start:
        raise ValueError(f"clip must have clip_end > clip_start, got [{clip_start}, {clip_end})")
    duration = clip_end - clip_start
    out = []
    for c in cues:
        if c.end <= clip_start or c.start >= clip_end:
            continue
        start = max(c.start - clip_start, 0.0)
        end = min(c.end - clip_start, duration)
        out.append(Cue(start, end, c.text, c.speaker))
    return out


@dataclass(frozen=True)
class Alignment:
    """A clip's cues and their steps.

    Attributes:
        cues: the kept cues (clip-relative seconds), or the pseudo-cues.
        sub2frames: per cue, the steps it covers.
        unique_sub2frames: per cue, the steps assigned to it (each step to at most one cue).
        unmatched_frames: steps no cue covers.
        num_frames: steps of the clip.
        pseudo: whether ``cues`` are pseudo-cues (the clip had no cue).
        dropped_after_end: cues dropped for starting at or after the clip end.
        truncated_last: whether the last cue was cut to 11 steps.
    """

    cues: tuple[Cue, ...]
    sub2frames: tuple[tuple[int, ...], ...]
    unique_sub2frames: tuple[tuple[int, ...], ...]
    unmatched_frames: tuple[int, ...]
    num_frames: int
    pseudo: bool = False
    dropped_after_end: int = 0
    truncated_last: bool = False


def _iou(step: int, interval: Fraction, cue: Cue) -> Fraction:
    lo, hi = step * interval, (step + 1) * interval
    s, e = exact_seconds(cue.start), exact_seconds(cue.end)
    inter = min(hi, e) - max(lo, s)
    if inter <= 0:
        return Fraction(0)
    return inter / (max(hi, e) - min(lo, s))


def align_cues(
    cues: Sequence[Cue], duration: float, interval: float = DEFAULT_FRAME_INTERVAL
) -> Alignment:
    """Align clip-relative ``cues`` (sorted by start) to a clip of ``duration`` seconds."""
    grid = FrameGrid.for_duration(duration, interval)
    n = grid.num_steps
    kept: list[Cue] = []
    dropped = 0
    for c in cues:
        if c.start >= duration:
            dropped += 1
            continue
        kept.append(Cue(max(c.start, 0.0), min(c.end, duration), c.text, c.speaker))

    spans = [list(grid.steps_covering(c.start, c.end)) for c in kept]
    truncated = False
    if kept and kept[-1].duration > LONG_LAST_CUE_S:
        spans[-1] = spans[-1][:LONG_LAST_CUE_STEPS]
        truncated = True

    if not kept:
        if n == 0:
            return Alignment((), (), (), (), 0, dropped_after_end=dropped)
        pseudo, pspans = [], []
        for first in range(0, n, PSEUDO_CUE_STEPS):
            stop = min(first + PSEUDO_CUE_STEPS, n)
            pseudo.append(Cue(first * interval, min(stop * interval, duration), ""))
            pspans.append(tuple(range(first, stop)))
        return Alignment(
            tuple(pseudo),
            tuple(pspans),
            tuple(pspans),
            (),
            n,
            pseudo=True,
            dropped_after_end=dropped,
        )

    covering: dict[int, list[int]] = {}
    for k, span in enumerate(spans):
        for step in span:
            covering.setdefault(step, []).append(k)
    exact_interval = exact_seconds(interval)
    owner: dict[int, int] = {}
    for step, candidates in covering.items():
        best, best_iou = candidates[0], _iou(step, exact_interval, kept[candidates[0]])
        for k in candidates[1:]:
            iou = _iou(step, exact_interval, kept[k])
            if iou > best_iou:  # strict: ties go to the earlier cue
                best, best_iou = k, iou
        owner[step] = best
    unique: list[list[int]] = [[] for _ in kept]
    for step in sorted(owner):
        unique[owner[step]].append(step)
    return Alignment(
        cues=tuple(kept),
        sub2frames=tuple(tuple(s) for s in spans),
        unique_sub2frames=tuple(tuple(u) for u in unique),
        unmatched_frames=tuple(i for i in range(n) if i not in covering),
        num_frames=n,
        dropped_after_end=dropped,
        truncated_last=truncated,
    )
