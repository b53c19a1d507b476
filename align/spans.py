"""Cues cut to clips and aligned to the step grid, by HERO's rule.

Cutting (:func:`cut_cues`): a clip ``[clip_start, clip_end)`` keeps every cue that overlaps it
by more than zero seconds, shifted to clip-relative time and clipped to ``[0, duration]``. A cue
crossing a clip boundary therefore appears in both clips, clipped to each. Times are computed
as exact fractions at microsecond precision (``grid.exact_seconds``), so 106.07 s in the clip
starting at 60 s is 46.07 s, not 46.06999999999999.

Alignment (:func:`align_cues`, HERO's ``process_single_vid_sub`` in its
``scripts/prepro_sub.py``, and its pseudo-cue rule), for a clip of ``n`` steps of ``L`` s and
cues sorted by start:

- cues starting at or after the clip end are dropped; the kept cues' ends are clipped to the
  clip in the output, but every rule below uses the cue's own (unclipped) times, as HERO's does;
- cue c covers steps ``floor(start/L) … ceil(end/L) − 1`` (``sub2frames``, via the step grid);
- if the last cue of the input list was kept and lasts more than 16 s, counting only up to
  ``n·L`` (``min(end, n·L) − start``), it keeps only its first 11 steps (HERO's guard against
  runaway final captions). A last cue dropped for starting after the end truncates nothing;
- each step goes to the one covering cue with the highest temporal IoU between the step
  ``[i·L, (i+1)·L)`` and the cue's unclipped ``[start, end]`` (IoU is scale-free, so seconds or
  step units give the same value), ties to the earlier cue (``unique_sub2frames``);
- steps no cue covers are ``unmatched_frames``;
- a clip left with no cue gets pseudo-cues of empty text, one per 5 steps, each owning its
  steps, so training can still use the clip. Real cues never have empty text (cleaning drops
  them), so empty text marks a pseudo-cue.

:func:`align.video.align_video` (``hero align``, ``hero run``) aligns each clip's cues as
:func:`cut_cues` gives them, already clipped to the clip: there, a cue running into the next
clip counts only its part in this clip, for its IoU and for the 16 s rule.

Unique spans are contiguous runs of steps, except where one cue lies inside another: the IoU
rule can then give the outer cue the steps on both sides of the inner one (HERO does the same;
``tests/align/test_spans.py`` pins the case).

Where we differ from HERO's code (``docs/subtitles.md`` lists the same):

1. ``sub2frames`` keeps only the clip's steps ``0 … n − 1``; HERO kept the steps a cue running
   past the end (or starting before 0) reached. Those steps were never assigned in either.
2. A cue starting at or after the clip end is removed from the clip's cues; HERO kept it in its
   list with no steps. And the clip end is the clip's duration ``D``, where HERO, knowing only
   ``n``, used ``n·L``: they differ only for a short last clip, for a cue starting in
   ``[D, n·L)``, which :func:`cut_cues` never produces.
3. A clip whose cues all start after its end gets pseudo-cues; HERO gave pseudo-cues only to a
   video without cues, and left such a clip's steps all unmatched.
4. IoUs are compared as exact fractions of the times at microsecond precision
   (``grid.exact_seconds``), not in float32, so cues whose written times tie do tie, and steps
   come from the grid's one rounding rule (``grid.steps_covering``), not float32 floor/ceil.
5. A zero-length cue covers no step; HERO gave it the step it sits in, where its IoU is 0, and a
   step whose covering cues all had IoU 0 went to cue 0 of the list. Cleaning drops zero-length
   cues before alignment, so this only matters to a direct caller.

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

from hero_data.grid import DEFAULT_FRAME_INTERVAL, exact_seconds, num_steps, steps_covering
from hero_data.types import Cue

LONG_LAST_CUE_S = 16.0
"""The last input cue, when longer than this (seconds, counted up to the end of the clip's
steps), keeps only its first :data:`LONG_LAST_CUE_STEPS` steps."""

LONG_LAST_CUE_STEPS = 11

PSEUDO_CUE_STEPS = 5
"""Steps per pseudo-cue in a clip without cues."""


def cut_cues(cues: Sequence[Cue], clip_start: float, clip_end: float) -> list[Cue]:
    """Cues overlapping ``[clip_start, clip_end)`` source seconds, clip-relative and clipped.

    Order is kept. A cue that touches the window only at a point (ends exactly at
    ``clip_start`` or starts at ``clip_end``) is not in it. Times are exact differences at
    microsecond precision (see the module doc), so no float noise is added.
    """
    if not clip_end > clip_start:
        raise ValueError(f"clip must have clip_end > clip_start, got [{clip_start}, {clip_end})")
    origin = exact_seconds(clip_start)
    duration = exact_seconds(clip_end) - origin
    # Float bounds with a margin of a millisecond: a cue outside them is outside the clip
    # whatever the rounding, so only the few near it need exact arithmetic.
    lo, hi = clip_start - 1e-3, clip_end + 1e-3
    out = []
    for c in cues:
        if c.end < lo or c.start > hi:
            continue
        start = exact_seconds(c.start) - origin
        end = exact_seconds(c.end) - origin
        if end <= 0 or start >= duration:
            continue
        out.append(Cue(float(max(start, 0)), float(min(end, duration)), c.text, c.speaker))
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
        truncated_last: whether the long-last-cue rule applied: the last input cue was kept
            and lasts more than 16 s, so its steps were cut to its first 11 (HERO counts it the
            same way, as ``extra_long_subs``, even when it had no more than 11).
    """

    cues: tuple[Cue, ...]
    sub2frames: tuple[tuple[int, ...], ...]
    unique_sub2frames: tuple[tuple[int, ...], ...]
    unmatched_frames: tuple[int, ...]
    num_frames: int
    pseudo: bool = False
    dropped_after_end: int = 0
    truncated_last: bool = False


def _iou(step: int, interval: Fraction, start: Fraction, end: Fraction) -> Fraction:
    lo, hi = step * interval, (step + 1) * interval
    inter = min(hi, end) - max(lo, start)
    if inter <= 0:
        return Fraction(0)
    return inter / (max(hi, end) - min(lo, start))


def align_cues(
    cues: Sequence[Cue], duration: float, interval: float = DEFAULT_FRAME_INTERVAL
) -> Alignment:
    """Align clip-relative ``cues`` (sorted by start) to a clip of ``duration`` seconds.

    The rules and where they differ from HERO's code are in the module doc.
    """
    n = num_steps(duration, interval)
    exact_interval = exact_seconds(interval)
    clip_end = exact_seconds(duration)
    steps_end = n * exact_interval  # HERO's end of the clip: n steps
    last = len(cues) - 1
    kept: list[Cue] = []
    times: list[tuple[Fraction, Fraction]] = []
    spans: list[range] = []
    dropped = 0
    truncated = False
    for k, c in enumerate(cues):
        start, end = exact_seconds(c.start), exact_seconds(c.end)
        if start >= clip_end:
            dropped += 1
            continue
        steps = steps_covering(c.start, c.end, interval)  # from the unclipped times
        if k == last and min(end, steps_end) - start > LONG_LAST_CUE_S:
            steps = steps[:LONG_LAST_CUE_STEPS]
            truncated = True
        first, stop = max(steps.start, 0), min(steps.stop, n)
        spans.append(range(first, max(first, stop)))
        times.append((start, end))
        # clipped to [0, duration] (a cue wholly before the clip becomes [0, 0], with no steps)
        clipped_end = min(max(c.end, 0.0), duration)
        kept.append(Cue(max(c.start, 0.0), clipped_end, c.text, c.speaker))

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
    owner: dict[int, int] = {}
    for step, candidates in covering.items():
        best, best_iou = candidates[0], _iou(step, exact_interval, *times[candidates[0]])
        for k in candidates[1:]:
            iou = _iou(step, exact_interval, *times[k])
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
