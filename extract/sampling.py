"""Which source frame feeds which model input: the SlowFast frame choice and the sampling plan.

:mod:`extract.decode` gives every step a 2D sample and a 3D window of ``round(L·30)`` slots (45
at L = 1.5 s), the video resampled to 30 fps (rules in :mod:`hero_data.grid`). This module
chooses, from those slots, the frames of SlowFast's two pathways, by one of two rules:

``hero`` (the default): what HERO's extractor did (HERO_Video_Feature_Extractor, PySlowFast's
Kinetics sampling applied to a 1.5 s window already resampled to 30 fps). With ``F`` the floor
of the stream's average frame rate (ffprobe's ``avg_frame_rate``), the fast pathway takes slots
``clamp(linspace(0, 64·F/30 − 1, 32), 0, T − 1)``, the linspace in float32 as
``torch.linspace`` computes it and truncated as ``.long()`` does; the slow pathway takes fast
positions ``linspace(0, 31, 8)`` truncated (0, 4, 8, 13, 17, 22, 26, 31)::

    F = 30: slots 0 2 4 … 42 44, then 44 nine more times (stride 63/31: slot 44 fills 10 of 32)
    F = 20: slots 0 1 2 4 5 6 8 … 38 40 41 (stride 41.67/31: slots 42-44 are never used)
    F = 60: slots 0 4 8 … 40 44, then 44 twenty more times (stride 127/31: 44 fills 21 of 32)

Why it repeats frames: PySlowFast decodes a video at its own rate F and spans 32 frames 2 apart
at 30 fps, 64/30 s, which is 64·F/30 frames at rate F. HERO's extractor computed that count
but indexed frames it had already resampled to 30 fps, so the span fits the 45-slot window only
near F = 21 (64·21/30 − 1 = 43.8 slots): faster videos overrun it and repeat its last slot,
slower ones leave its end unseen. We keep the rule so that features match HERO's released ones.

``uniform``: 32 slots spread evenly over the window (first and last included, rounded), and
every 4th of those for the slow pathway (0, 4, ..., 28). Every part of the step is seen once
and nothing depends on the frame rate; features then differ from HERO's.

:func:`pathway_slots` is the one implementation of both rules: the extractor picks the fast
frames with it (and the model takes the slow ones from :func:`slow_positions`), and
:func:`sampling_plan` reports, with the same call, the presentation time of every frame that
feeds each model input.

Every extractor of :mod:`extract.features` reads one of the two inputs: a 2D extractor (ResNet,
CLIP) the step's 2D sample, whatever size it is scaled to; a 3D one (SlowFast, MIL-NCE S3D) the
32 fast slots of the window (SlowFast's slow pathway 8 of them). :func:`step_inputs` says so per
step for any set of extractors.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch

from hero_data.grid import DEFAULT_FRAME_INTERVAL, FAST_FRAMES, SLOW_STRIDE, uniform_indices

if TYPE_CHECKING:
    from extract.decode import StepTimes

SAMPLINGS = ("hero", "uniform")
"""The SlowFast frame-choice rules, default first."""

DEFAULT_SAMPLING = "hero"
"""HERO's extractor's rule."""

SLOW_FRAMES = FAST_FRAMES // SLOW_STRIDE
"""Frames of the slow pathway (8): SlowFast's alpha is 4."""

# HERO's extractor: PySlowFast's SLOWFAST_8x8_R50 test config (DATA.NUM_FRAMES 32,
# DATA.SAMPLING_RATE 2) on frames decoded at --target_framerate 30.
_HERO_SAMPLING_RATE = 2
_HERO_TARGET_FPS = 30


def _check_sampling(sampling: str) -> None:
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}; choose one of {list(SAMPLINGS)}")


def _linspace_long(start: float, end: float, steps: int, clamp_max: int | None = None) -> list[int]:
    """``torch.linspace(start, end, steps)`` (float32), clamped to ``[0, clamp_max]`` if given,
    then ``.long()`` (truncation toward zero): exactly the reference's index arithmetic."""
    index = torch.linspace(start, end, steps, dtype=torch.float32)
    if clamp_max is not None:
        index = torch.clamp(index, 0, clamp_max)
    return index.long().tolist()


def hero_frame_rate(average_rate: Fraction) -> int:
    """``F``: the floor of the stream's average frame rate, as HERO's extractor read it."""
    return math.floor(average_rate)


def fast_slots(sampling: str, window_len: int, average_rate: Fraction) -> tuple[int, ...]:
    """Window slots (``0 … window_len − 1``) of the 32 fast-pathway frames, in order.

    ``average_rate``: the video stream's average frame rate (used by ``hero`` only).
    """
    _check_sampling(sampling)
    if window_len < 1:
        raise ValueError(f"a window needs at least one slot, got {window_len}")
    if sampling == "uniform":
        return tuple(uniform_indices(window_len, FAST_FRAMES))
    span = FAST_FRAMES * _HERO_SAMPLING_RATE * hero_frame_rate(average_rate) / _HERO_TARGET_FPS
    return tuple(_linspace_long(0.0, span - 1, FAST_FRAMES, clamp_max=window_len - 1))


def slow_positions(sampling: str) -> tuple[int, ...]:
    """Positions, among the 32 fast frames, of the 8 slow-pathway frames."""
    _check_sampling(sampling)
    if sampling == "uniform":
        return tuple(range(0, FAST_FRAMES, SLOW_STRIDE))
    return tuple(_linspace_long(0.0, FAST_FRAMES - 1, SLOW_FRAMES))


@dataclass(frozen=True)
class PathwaySlots:
    """The window slots feeding SlowFast.

    Attributes:
        fast: 32 slots, one per fast-pathway frame (repeats allowed).
        slow: 8 slots, one per slow-pathway frame (``fast`` at :func:`slow_positions`).
    """

    fast: tuple[int, ...]
    slow: tuple[int, ...]


def pathway_slots(sampling: str, window_len: int, average_rate: Fraction) -> PathwaySlots:
    """Both pathways' window slots under ``sampling`` (see the module docstring)."""
    fast = fast_slots(sampling, window_len, average_rate)
    return PathwaySlots(fast, tuple(fast[p] for p in slow_positions(sampling)))


def _seconds(t: Fraction) -> float:
    return float(t)


def step_inputs(step: StepTimes, sampling: str, features: Sequence[str]) -> dict[str, Any]:
    """The presentation times (seconds) of the source frames feeding each extractor named in
    ``features`` at ``step``: a 2D one's sample (``{name: t}``), a 3D one's 32 window frames
    (``{name: [...]}``); SlowFast as ``slowfast_fast`` (32) and ``slowfast_slow`` (8)."""
    from extract.features import ImageInput, get_extractor

    slots = pathway_slots(sampling, len(step.window_times), step.frame_rate)
    out: dict[str, Any] = {}
    for name in features:
        if name == "slowfast":
            out["slowfast_fast"] = [_seconds(step.window_times[j]) for j in slots.fast]
            out["slowfast_slow"] = [_seconds(step.window_times[j]) for j in slots.slow]
        elif isinstance(get_extractor(name).input, ImageInput):
            out[name] = _seconds(step.image_time)
        else:
            out[name] = [_seconds(step.window_times[j]) for j in slots.fast]
    return out


def plan_steps(
    path: str | os.PathLike[str],
    interval: float = DEFAULT_FRAME_INTERVAL,
    *,
    sampling: str = DEFAULT_SAMPLING,
    backend: str = "pyav",
    start: float = 0.0,
    end: float | None = None,
    features: Sequence[str] = ("resnet", "slowfast"),
) -> Iterator[dict[str, Any]]:
    """Per step, the presentation time (seconds from the stream's first frame) of the source
    frame feeding each model input: ``{"step", "resnet", "slowfast_fast": [32],
    "slowfast_slow": [8]}`` for the default ``features``, repeats included (other extractors:
    :func:`step_inputs`). Decodes the video (same frame choice as extraction,
    :func:`extract.decode.iter_step_times`) without converting any frame; ``start`` / ``end``
    limit it to the steps of ``[start, end)`` source seconds.
    """
    from extract.decode import iter_step_times

    _check_sampling(sampling)
    for step in iter_step_times(path, interval, backend=backend, start=start, end=end):
        yield {"step": step.index, **step_inputs(step, sampling, features)}


def sampling_plan(
    path: str | os.PathLike[str],
    interval: float = DEFAULT_FRAME_INTERVAL,
    *,
    sampling: str = DEFAULT_SAMPLING,
    backend: str = "pyav",
    features: Sequence[str] = ("resnet", "slowfast"),
) -> dict[str, Any]:
    """``hero extract VIDEO --sampling-plan``: ``{"video", "frame_interval", "sampling",
    "steps": [...]}`` with the steps of :func:`plan_steps` for the extractors ``features``.
    Runs no model."""
    steps = list(plan_steps(path, interval, sampling=sampling, backend=backend, features=features))
    return {
        "video": os.fspath(path),
        "frame_interval": interval,
        "sampling": sampling,
        "steps": steps,
    }
