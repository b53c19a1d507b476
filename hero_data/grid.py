"""The step grid: the one module that turns seconds into feature-step indices and back.

A feature step ("frame" in HERO's words) ``i`` of a clip covers ``[i·L, (i+1)·L)`` seconds of
that clip, ``L`` being the frame interval (1.5 s by default). A clip of duration ``D`` has
``ceil(D / L)`` steps; the last one may stick out past the clip's end.

Rounding, written once: every conversion first divides by ``L`` and rounds the quotient to
:data:`DECIMALS` decimal places, then applies ``floor`` or ``ceil``. This absorbs binary
floating-point error (``4.5 / 1.5`` is ``2.9999999999999996`` in some spellings of the same
numbers) while keeping anything a real timestamp can express (microseconds at ``L`` >= 0.01 s)
exact. The same rule is used for step counts, cue spans and clip-length checks, so they always
agree with one another::

    clip of D = 4.0 s at L = 1.5 s  ->  ceil(2.667) = 3 steps
    seconds  0         1.5         3.0       4.0 4.5
             |  step 0  |  step 1   | step 2  ::|      (:: = past the clip end)
    2D sample    0.75        2.25       3.75 -> clamped to the last frame on screen

Frame selection (2D samples, 3D windows) works on exact fractions of presentation times and
follows ffmpeg's ``fps`` filter; see "choosing source frames by presentation time" below.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise

from hero_data.errors import HeroError

DECIMALS = 8
"""Decimal places the quotient ``seconds / L`` is rounded to before floor/ceil."""

DEFAULT_FRAME_INTERVAL = 1.5
"""HERO's feature step, seconds."""

DEFAULT_CLIP_LENGTH = 60.0
"""HERO's clip length for long videos (HowTo100M-style), seconds."""

WINDOW_FPS = 30
"""Frame rate the 3D window of a step is resampled to, frames per second."""

FAST_FRAMES = 32
"""Frames of SlowFast's fast pathway, chosen from a step's 3D window (``extract.sampling``)."""

SLOW_STRIDE = 4
"""SlowFast's alpha: the slow pathway has ``FAST_FRAMES // SLOW_STRIDE`` (8) frames (every 4th
fast frame under the ``uniform`` rule; HERO's rule spaces them by a truncated linspace)."""


MAX_FRAME_RATE = 10_000
"""Highest frame rate a stream may claim, or a frame folder state (high-speed cameras record
about 1,000 fps). A video's rate only times frames that carry no duration; an absurd one (0,
1e9) is skipped for FFmpeg's other estimates, and a stream with none in (0, MAX_FRAME_RATE]
fails."""

_RATE_TEXT = re.compile(r"\s*(?:\d+/\d+|\d+(?:\.\d*)?|\.\d+)\s*")
_RATE_CHARS = 80


class GridError(HeroError, ValueError):
    """A frame interval, clip length or time that cannot be put on the step grid."""


def parse_frame_rate(value: object) -> Fraction:
    """A stated frame rate, exactly: a number (``3``, ``29.97``: its decimal text, so 2997/100,
    not the binary fraction a float holds) or a string of one (``"29.97"``) or of a fraction
    (``"30000/1001"``), in ``(0, MAX_FRAME_RATE]``. Raises ``ValueError`` otherwise.

    Strings are read as plain decimals or fractions of at most 80 characters, never with an
    exponent: ``Fraction("1e99999999")`` would compute a hundred-million-digit integer, and a
    rate comes from files anyone may write (manifests, ``frames.json``).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a number: {value!r:.40}")
    if isinstance(value, str):
        if len(value) > _RATE_CHARS or not _RATE_TEXT.fullmatch(value):
            raise ValueError(f"not a number or fraction: {value!r:.40}")
        text = value.strip()
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not finite: {value!r}")
        text = repr(value)  # at most 1e+308: a small integer to compute
    else:
        if not 0 < value <= MAX_FRAME_RATE:  # before any arithmetic on a huge integer
            raise ValueError(f"out of range: {value!r:.40}")
        text = str(value)
    try:
        rate = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"not a number or fraction: {value!r:.40}") from None
    if not 0 < rate <= MAX_FRAME_RATE:
        raise ValueError(f"out of range: {value!r:.40}")
    return rate


def _check_interval(interval: float) -> float:
    ok = isinstance(interval, (int, float)) and not isinstance(interval, bool)
    if not (ok and math.isfinite(interval) and interval > 0):
        raise GridError(f"frame interval must be a positive number of seconds, got {interval!r}")
    return float(interval)


def _check_time(name: str, seconds: float) -> float:
    ok = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    if not (ok and math.isfinite(seconds)):
        raise GridError(f"{name} must be a finite number of seconds, got {seconds!r}")
    return float(seconds)


def _steps(seconds: float, interval: float) -> float:
    """``seconds / interval``, rounded to DECIMALS places (the one rounding rule)."""
    return round(seconds / interval, DECIMALS)


def exact_seconds(seconds: float) -> Fraction:
    """A time as an exact fraction, at microsecond precision.

    ``Fraction(0.1)`` is 3602879701896397/36028797018963968; this gives 1/10, so comparisons
    of derived quantities (e.g. two cues' IoU with a step) tie exactly when the decimal times
    a user wrote tie, whatever float noise arithmetic added.
    """
    return Fraction(_check_time("time", seconds)).limit_denominator(1_000_000)


def step_floor(seconds: float, interval: float = DEFAULT_FRAME_INTERVAL) -> int:
    """Index of the step that contains time ``seconds`` (``floor(t / L)``)."""
    interval = _check_interval(interval)
    return math.floor(_steps(_check_time("time", seconds), interval))


def step_ceil(seconds: float, interval: float = DEFAULT_FRAME_INTERVAL) -> int:
    """``ceil(t / L)``: the first step that starts at or after ``seconds``."""
    interval = _check_interval(interval)
    return math.ceil(_steps(_check_time("time", seconds), interval))


def num_steps(duration: float, interval: float = DEFAULT_FRAME_INTERVAL) -> int:
    """Number of steps of a clip lasting ``duration`` seconds: ``ceil(D / L)``; 0 for D = 0."""
    duration = _check_time("duration", duration)
    if duration < 0:
        raise GridError(f"duration must not be negative, got {duration!r} s")
    return step_ceil(duration, interval)


def step_start(index: int, interval: float = DEFAULT_FRAME_INTERVAL) -> float:
    """Start of step ``index`` in clip-relative seconds (``i·L``)."""
    return index * _check_interval(interval)


def step_bounds(index: int, interval: float = DEFAULT_FRAME_INTERVAL) -> tuple[float, float]:
    """``[start, end)`` of step ``index`` in clip-relative seconds, not clipped to the clip."""
    interval = _check_interval(interval)
    return index * interval, (index + 1) * interval


def steps_covering(start: float, end: float, interval: float = DEFAULT_FRAME_INTERVAL) -> range:
    """Steps a span ``[start, end)`` touches: ``floor(start/L) … ceil(end/L) − 1``.

    This is HERO's ``sub2frames`` rule for one cue. An empty (``end == start``) or inverted
    span gives an empty range: a zero-length cue covers no time, so no step.
    """
    interval = _check_interval(interval)
    q_start = _steps(_check_time("start", start), interval)
    q_end = _steps(_check_time("end", end), interval)
    first = math.floor(q_start)
    if q_end <= q_start:
        return range(first, first)
    return range(first, max(first, math.ceil(q_end)))


def uniform_indices(n_in: int, n_out: int) -> list[int]:
    """``n_out`` indices spread uniformly over ``range(n_in)`` (first and last included)."""
    if n_in < 1 or n_out < 1:
        raise GridError(f"need at least one frame in and out, got n_in={n_in}, n_out={n_out}")
    if n_out == 1:
        return [0]
    return [round(k * (n_in - 1) / (n_out - 1)) for k in range(n_out)]


def check_clip_length(clip_length: float, interval: float = DEFAULT_FRAME_INTERVAL) -> int:
    """Steps per clip; raises :class:`GridError` unless the clip is a whole number of steps."""
    interval = _check_interval(interval)
    clip_length = _check_time("clip length", clip_length)
    if clip_length <= 0:
        raise GridError(f"clip length must be positive, got {clip_length!r} s")
    ratio = _steps(clip_length, interval)
    if ratio != math.floor(ratio):
        lower = math.floor(ratio) * interval
        upper = math.ceil(ratio) * interval
        raise GridError(
            f"clip length {clip_length} s is not a whole number of {interval} s steps "
            f"({clip_length} / {interval} = {clip_length / interval:g}); "
            f"use {lower:g} s or {upper:g} s, or another frame interval"
        )
    return int(ratio)


@dataclass(frozen=True)
class FrameGrid:
    """The steps of one clip.

    Attributes:
        interval: frame interval ``L``, seconds per step.
        num_steps: number of steps, ``ceil(duration / L)``.
    """

    interval: float
    num_steps: int

    def __post_init__(self) -> None:
        _check_interval(self.interval)
        if not isinstance(self.num_steps, int) or self.num_steps < 0:
            raise GridError(f"num_steps must be a non-negative int, got {self.num_steps!r}")

    @classmethod
    def for_duration(cls, duration: float, interval: float = DEFAULT_FRAME_INTERVAL) -> FrameGrid:
        """The grid of a clip lasting ``duration`` seconds."""
        interval = _check_interval(interval)
        return cls(interval, num_steps(duration, interval))

    @property
    def span(self) -> float:
        """Seconds the steps cover (``num_steps · L``), at least the clip's duration."""
        return self.num_steps * self.interval

    def bounds(self, index: int) -> tuple[float, float]:
        """``[start, end)`` of step ``index`` in clip-relative seconds."""
        self._check_index(index)
        return step_bounds(index, self.interval)

    def step_of(self, seconds: float) -> int:
        """Step containing clip-relative time ``seconds``; times past the end map to the last."""
        if self.num_steps == 0:
            raise GridError("an empty grid has no steps")
        return min(max(step_floor(seconds, self.interval), 0), self.num_steps - 1)

    def steps_covering(self, start: float, end: float) -> range:
        """:func:`steps_covering`, limited to this grid's steps."""
        r = steps_covering(start, end, self.interval)
        first, stop = max(r.start, 0), min(r.stop, self.num_steps)
        return range(first, max(first, stop))

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.num_steps:
            raise GridError(f"step {index} is outside a grid of {self.num_steps} steps")


def clip_windows(
    duration: float,
    clip_length: float = DEFAULT_CLIP_LENGTH,
    interval: float = DEFAULT_FRAME_INTERVAL,
) -> list[tuple[float, float]]:
    """``[start, end)`` source seconds of the clips a video of ``duration`` s is cut into.

    Clip ``k`` covers ``[k·C, (k+1)·C)`` cut at the video's end, ``C`` being the clip length,
    which must be a whole number of steps. A video of 0 s has no clips.
    """
    check_clip_length(clip_length, interval)
    duration = _check_time("duration", duration)
    if duration < 0:
        raise GridError(f"duration must not be negative, got {duration!r} s")
    count = math.ceil(_steps(duration, clip_length))
    return [(k * clip_length, min((k + 1) * clip_length, duration)) for k in range(count)]


# --- choosing source frames by presentation time ------------------------------------------
#
# A decoder turns a video into frames with exact presentation times (``pts · time_base``, a
# Fraction). The functions below say which frame each step uses. They follow ffmpeg's ``fps``
# filter with its default rounding (``near``): the filter rounds every frame's time to the
# nearest output slot, halves away from zero, and emits for slot ``n`` of rate ``r`` the last
# frame whose rounded slot is ``<= n`` -- the last frame with time ``< (n + ½) / r``. So:
#
#   frame before t   the last frame with time < t (strict), or the first frame if none is
#   2D sample of i   the frame before (i + ½)·L          (= ``fps=1/L`` output i)
#   3D slot j of i   the frame before i·L + (j + ½)/fps  (= ``fps=30`` output i·L·30 + j)
#
# Past the last frame the frame before is the last frame, so a short last step repeats it.


def sample_cutoff_2d(index: int, interval: float = DEFAULT_FRAME_INTERVAL) -> Fraction:
    """Exact cutoff ``(i + ½)·L`` of step ``index``'s 2D sample, seconds.

    The sample is :func:`frame_before` this cutoff: the frame ffmpeg's ``fps=1/L`` filter
    outputs for step ``i``. ``L`` is taken exactly (:func:`exact_seconds`: 1.5 is 3/2, 0.1 is
    1/10). Past the last frame, :func:`frame_before` gives the last frame (the clamp).
    """
    interval = _check_interval(interval)
    return (index + Fraction(1, 2)) * exact_seconds(interval)


def window_cutoffs_3d(
    index: int, interval: float = DEFAULT_FRAME_INTERVAL, fps: int = WINDOW_FPS
) -> list[Fraction]:
    """Exact cutoffs ``i·L + (j + ½)/fps`` of the ``round(L·fps)`` slots of step ``index``'s
    3D window, seconds.

    Slot ``j`` holds :func:`frame_before` its cutoff: the video resampled to ``fps`` the way
    ffmpeg's ``fps=fps`` filter does: roughly what is on screen at ``i·L + j/fps``.
    """
    interval = _check_interval(interval)
    per_window = round(interval * fps)
    if per_window < 1:
        raise GridError(f"a {interval} s step holds no frame at {fps} fps")
    start = index * exact_seconds(interval)
    return [start + Fraction(2 * j + 1, 2 * fps) for j in range(per_window)]


def frame_before(times: Sequence[Fraction], cutoff: Fraction) -> int:
    """Index of the last of ``times`` strictly before ``cutoff``; 0 (the first) if none is.

    ``times`` are the frames' presentation times in seconds, strictly increasing. Exact types
    (Fraction, int) compare exactly; a float compares as the binary value it holds.
    """
    if not times:
        raise GridError("no frame times to choose from")
    return max(bisect_left(times, cutoff) - 1, 0)


def _check_frame_times(times: Sequence[Fraction], duration: Fraction) -> None:
    if not times:
        raise GridError("no frame times to choose from")
    for a, b in pairwise(times):
        if not a < b:
            raise GridError(f"frame times must increase strictly, got {a} then {b}")
    if not duration > times[-1]:
        raise GridError(f"duration {duration} s must end after the last frame ({times[-1]} s)")


def select_2d(
    times: Sequence[Fraction], duration: Fraction, interval: float = DEFAULT_FRAME_INTERVAL
) -> list[int]:
    """The frame index of each step's 2D sample, for a video with these frame times.

    ``duration`` is where the video ends (the end of its last frame); there are
    ``num_steps(duration, L)`` steps. The reference for a streaming decoder's choice.
    """
    _check_frame_times(times, duration)
    count = num_steps(float(duration), interval)
    return [frame_before(times, sample_cutoff_2d(i, interval)) for i in range(count)]


def select_3d(
    times: Sequence[Fraction],
    duration: Fraction,
    interval: float = DEFAULT_FRAME_INTERVAL,
    fps: int = WINDOW_FPS,
) -> list[list[int]]:
    """The frame index of every slot of each step's 3D window (see :func:`select_2d`)."""
    _check_frame_times(times, duration)
    count = num_steps(float(duration), interval)
    return [
        [frame_before(times, c) for c in window_cutoffs_3d(i, interval, fps)] for i in range(count)
    ]
