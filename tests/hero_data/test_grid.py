"""Tests for hero_data.grid, the one module that turns seconds into feature-step indices.

Covers: steps partition a clip (ceil(D/L) contiguous steps; every time maps to the step that
contains it), num_steps, the clip-length check, 2D sample times, HERO's sub2frames rule
(steps_covering) with its boundary and float-noise cases, 60 s clip windows, 3D window times,
uniform frame indices, FrameGrid, the errors raised for inputs that are not on the grid, and the
choice of source frames by presentation time (checked against an emulation of ffmpeg's fps filter).

Property tests draw times and intervals as whole milliseconds (microseconds in one test), so an
exact Fraction reference is available; the module is expected to agree with the exact decimal.
"""

import dataclasses
import math
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hero_data import grid
from hero_data.grid import (
    FrameGrid,
    GridError,
    check_clip_length,
    clip_windows,
    frame_before,
    num_steps,
    parse_frame_rate,
    sample_cutoff_2d,
    select_2d,
    select_3d,
    step_bounds,
    step_ceil,
    step_floor,
    step_start,
    steps_covering,
    uniform_indices,
    window_cutoffs_3d,
)

PROPERTY = settings(max_examples=100, deadline=None)

# Frame intervals 10 ms .. 10 s and durations up to 4 h, in whole milliseconds.
interval_ms = st.integers(min_value=10, max_value=10_000)
duration_ms = st.integers(min_value=1, max_value=4 * 3600 * 1000)


def sec(ms):
    """Float seconds for a whole number of milliseconds (the nearest float to the decimal)."""
    return ms / 1000


def ceil_div(a, b):
    return -(-a // b)


# Float tolerance when comparing returned float seconds with an exact reference.
def close(a, b):
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


# --- steps partition a clip ----------------------------------------------------------------


@PROPERTY
@given(d_ms=st.integers(1, 300_000), l_ms=st.integers(100, 10_000))
@example(d_ms=60_000, l_ms=1500)
@example(d_ms=4_000, l_ms=1500)
@example(d_ms=300, l_ms=100)
def test_steps_partition_the_clip(d_ms, l_ms):
    D, L = sec(d_ms), sec(l_ms)
    n = num_steps(D, L)
    assert n == ceil_div(d_ms, l_ms)

    # Exactly ceil(D/L) steps: the last ends at or after D, the one before ends before D.
    exact_L, exact_D = Fraction(l_ms, 1000), Fraction(d_ms, 1000)
    assert n * exact_L >= exact_D
    assert (n - 1) * exact_L < exact_D

    bounds = [step_bounds(i, L) for i in range(n)]
    assert bounds[0][0] == 0
    for (_, end), (next_start, _) in pairwise(bounds):
        assert end == next_start  # contiguous: no gap, no overlap
    for i, (lo, hi) in enumerate(bounds):
        assert step_start(i, L) == lo
        assert close(lo, float(i * exact_L))
        assert close(hi, float((i + 1) * exact_L))
    assert close(bounds[-1][1], float(n * exact_L))

    g = FrameGrid.for_duration(D, L)
    assert g.num_steps == n
    assert [g.bounds(i) for i in range(n)] == bounds


@PROPERTY
@given(data=st.data(), d_ms=duration_ms, l_ms=interval_ms)
@example(data=None, d_ms=1000, l_ms=100)  # t = 0.3 at L = 0.1: 0.3 / 0.1 = 2.9999999999999996
def test_every_time_maps_to_the_step_that_contains_it(data, d_ms, l_ms):
    t_ms = 300 if data is None else data.draw(st.integers(0, d_ms - 1), label="t_ms")
    D, L, t = sec(d_ms), sec(l_ms), sec(t_ms)
    expected = t_ms // l_ms  # exact: i·L <= t < (i+1)·L

    assert step_floor(t, L) == expected
    assert FrameGrid.for_duration(D, L).step_of(t) == expected
    # The float bounds contain t up to float noise (i·L is a float product, not a decimal).
    lo, hi = step_bounds(expected, L)
    assert lo <= t or close(lo, t)
    assert t < hi and not close(hi, t)


# --- num_steps -----------------------------------------------------------------------------


@PROPERTY
@given(d_ms=st.integers(0, 10**8), l_ms=st.integers(10, 100_000))
def test_num_steps_is_ceil_of_exact_quotient_ms(d_ms, l_ms):
    assert num_steps(sec(d_ms), sec(l_ms)) == ceil_div(d_ms, l_ms)


@PROPERTY
@given(d_us=st.integers(0, 10**10), l_us=st.integers(10_000, 10**7))
def test_num_steps_is_ceil_of_exact_quotient_us(d_us, l_us):
    # Microsecond timestamps at L >= 0.01 s: the regime the module documents as exact.
    assert num_steps(d_us / 10**6, l_us / 10**6) == ceil_div(d_us, l_us)


@pytest.mark.parametrize(
    ("duration", "interval", "expected"),
    [
        (0, 1.5, 0),
        (0.0, 1.5, 0),
        (0.001, 1.5, 1),
        (1.5, 1.5, 1),
        (1.501, 1.5, 2),
        (4.0, 1.5, 3),
        (4.5, 1.5, 3),
        (60, 1.5, 40),
        (60.0, 1.5, 40),
        (59.9, 1.5, 40),
        (60.1, 1.5, 41),
        (0.1 + 0.2, 0.1, 3),  # 3.0000000000000004 before rounding
        (0.3, 0.1, 3),  # 2.9999999999999996 before rounding
        (0.7 * 6 + 0.3, 1.5, 3),  # 4.499999999999999 s
        (math.nextafter(4.5, math.inf), 1.5, 3),
        (10, 3, 4),
        (3600, 1.5, 2400),
    ],
)
def test_num_steps_table(duration, interval, expected):
    assert num_steps(duration, interval) == expected


def test_default_interval_is_heros():
    assert grid.DEFAULT_FRAME_INTERVAL == 1.5
    assert num_steps(60) == 40


# --- clip length ---------------------------------------------------------------------------


def test_sixty_second_clip_at_one_and_a_half_has_forty_steps():
    assert num_steps(60, 1.5) == 40
    assert check_clip_length(60, 1.5) == 40
    assert check_clip_length(60.0) == 40


@pytest.mark.parametrize(
    ("clip_length", "interval"),
    [(60, 1.6), (10, 3), (59.9, 1.5), (60.1, 1.5), (1, 1.5), (4.4, 1.5)],
)
def test_clip_length_not_whole_steps_is_rejected(clip_length, interval):
    with pytest.raises(GridError) as info:
        check_clip_length(clip_length, interval)
    message = str(info.value)
    assert f"{clip_length:g}" in message
    assert f"{interval:g}" in message


@pytest.mark.parametrize("clip_length", [0, 0.0, -1.5, -60])
def test_clip_length_must_be_positive(clip_length):
    with pytest.raises(GridError, match="clip length"):
        check_clip_length(clip_length, 1.5)


@PROPERTY
@given(k=st.integers(1, 2000), l_ms=interval_ms)
@example(k=3, l_ms=100)  # 3 * 0.1 = 0.30000000000000004
@example(k=40, l_ms=1500)
def test_check_clip_length_of_k_steps_is_k(k, l_ms):
    L = sec(l_ms)
    assert check_clip_length(k * L, L) == k  # float product
    assert check_clip_length(sec(k * l_ms), L) == k  # the decimal k·L


@PROPERTY
@given(c_ms=st.integers(1, 10**6), l_ms=interval_ms)
def test_check_clip_length_rejects_every_non_multiple(c_ms, l_ms):
    if c_ms % l_ms == 0:
        assert check_clip_length(sec(c_ms), sec(l_ms)) == c_ms // l_ms
    else:
        with pytest.raises(GridError):
            check_clip_length(sec(c_ms), sec(l_ms))


# --- 2D sample times -----------------------------------------------------------------------


@PROPERTY
@given(i=st.integers(0, 100_000), l_ms=interval_ms, last_ms=st.integers(0, 10**7))
def test_2d_sample_is_the_frame_before_mid_step_clamped_to_the_last_frame(i, l_ms, last_ms):
    L = sec(l_ms)
    mid = Fraction(2 * i + 1, 2) * Fraction(l_ms, 1000)  # exact (i + ½)·L
    assert sample_cutoff_2d(i, L) == mid
    lo, hi = step_bounds(i, L)
    assert lo < float(mid) < hi
    # Frames at 0 and at `last`: past the last frame the sample is the last frame.
    last = Fraction(last_ms, 1000)
    times = [Fraction(0), last] if last > 0 else [Fraction(0)]
    chosen = frame_before(times, mid)
    assert chosen == (len(times) - 1 if times[-1] < mid else 0)


@pytest.mark.parametrize(
    ("index", "interval", "expected"),
    [
        (0, 1.5, Fraction(3, 4)),
        (1, 1.5, Fraction(9, 4)),
        (2, 1.5, Fraction(15, 4)),
        (39, 1.5, Fraction(237, 4)),
        (3, 0.1, Fraction(35, 100)),
    ],
)
def test_sample_cutoff_2d_table(index, interval, expected):
    assert sample_cutoff_2d(index, interval) == expected


# --- steps_covering: HERO's sub2frames rule ------------------------------------------------


@PROPERTY
@given(
    s_ms=st.integers(-(10**6), 10**7),
    length_ms=st.integers(1, 10**6),
    l_ms=interval_ms,
)
@example(s_ms=0, length_ms=3000, l_ms=1500)
@example(s_ms=1500, length_ms=1, l_ms=1500)
def test_steps_covering_is_floor_start_to_ceil_end(s_ms, length_ms, l_ms):
    e_ms = s_ms + length_ms
    expected = range(s_ms // l_ms, ceil_div(e_ms, l_ms))
    assert steps_covering(sec(s_ms), sec(e_ms), sec(l_ms)) == expected
    assert len(expected) >= 1  # a span of positive length touches at least one step


@PROPERTY
@given(
    s_ms=st.integers(0, 10**6),
    length_ms=st.integers(1, 10**5),
    l_ms=interval_ms,
    k=st.integers(-1000, 1000),
)
def test_shifting_a_span_by_whole_steps_shifts_its_steps(s_ms, length_ms, l_ms, k):
    L = sec(l_ms)
    s, e = sec(s_ms), sec(s_ms + length_ms)
    r = steps_covering(s, e, L)
    expected = range(r.start + k, r.stop + k)
    assert steps_covering(s + k * L, e + k * L, L) == expected  # float arithmetic
    shifted_ms = k * l_ms
    assert steps_covering(sec(s_ms + shifted_ms), sec(s_ms + length_ms + shifted_ms), L) == (
        expected
    )


@pytest.mark.parametrize(
    ("start", "end", "interval", "expected"),
    [
        (0.0, 3.0, 1.5, [0, 1]),  # ends on a boundary: does not touch step 2
        (0.0, 1.5, 1.5, [0]),
        (1.5, 3.0, 1.5, [1]),  # starts on a boundary: starts at that step
        (1.5, 3.1, 1.5, [1, 2]),
        (1.4, 1.6, 1.5, [0, 1]),
        (0.1, 0.2, 1.5, [0]),
        (2.0, 7.0, 1.5, [1, 2, 3, 4]),
        (58.0, 60.0, 1.5, [38, 39]),
        # Float noise must behave as the exact decimal would.
        (0.0, 0.7 * 6 + 0.3, 1.5, [0, 1, 2]),  # end 4.499999999999999 means 4.5
        (0.7 * 6 + 0.3, 6.0, 1.5, [3]),  # start 4.499999999999999 means 4.5
        (0.0, 0.1 + 0.2, 0.1, [0, 1, 2]),  # 0.30000000000000004 / 0.1 is 3
        (0.3, 0.5, 0.1, [3, 4]),  # 0.3 / 0.1 is 2.9999999999999996
        (0.1 + 0.2, 0.4, 0.1, [3]),
        (math.nextafter(4.5, -math.inf), math.nextafter(6.0, math.inf), 1.5, [3]),
        (-1.0, 1.0, 1.5, [-1, 0]),  # clip-relative spans may start before the clip
    ],
)
def test_steps_covering_table(start, end, interval, expected):
    assert list(steps_covering(start, end, interval)) == expected


@pytest.mark.parametrize(
    ("start", "end", "interval"),
    [
        (0.0, 0.0, 1.5),
        (3.0, 3.0, 1.5),  # zero-length on a boundary
        (3.1, 3.1, 1.5),  # zero-length inside a step
        (0.75, 0.75, 1.5),
        (4.0, 1.0, 1.5),  # inverted across steps
        (3.1, 3.05, 1.5),  # inverted inside one step
        # Zero-length as exact decimals, [3.3, 3.3), with float noise on one end only.
        (1.1 + 2.2, 3.3, 1.5),
        (3.3, 1.1 + 2.2, 1.5),
    ],
)
def test_steps_covering_empty_or_inverted_span_is_empty(start, end, interval):
    # The docstring: "An empty or inverted span gives an empty range."
    assert list(steps_covering(start, end, interval)) == []
    assert list(FrameGrid(interval, 10).steps_covering(start, end)) == []


# --- clip windows --------------------------------------------------------------------------


@PROPERTY
@given(d_ms=st.integers(0, 4 * 3600 * 1000))
@example(d_ms=0)
@example(d_ms=60_000)
@example(d_ms=60_001)
@example(d_ms=119_999)
def test_clip_windows_cover_the_video(d_ms):
    D = sec(d_ms)
    windows = clip_windows(D, 60, 1.5)
    assert len(windows) == ceil_div(d_ms, 60_000)
    if d_ms == 0:
        assert windows == []
        return
    assert windows[0][0] == 0
    assert windows[-1][1] == D
    for (_, end), (next_start, _) in pairwise(windows):
        assert end == next_start
    for start, end in windows[:-1]:
        assert end - start == 60
    last_start, last_end = windows[-1]
    assert 0 < last_end - last_start <= 60


@pytest.mark.parametrize(
    ("duration", "clip_length", "interval", "expected"),
    [
        (0, 60, 1.5, []),
        (0.0, 60, 1.5, []),
        (60, 60, 1.5, [(0, 60)]),
        (90, 60, 1.5, [(0, 60), (60, 90)]),
        (120, 60, 1.5, [(0, 60), (60, 120)]),
        (120.5, 60, 1.5, [(0, 60), (60, 120), (120, 120.5)]),
        (10, 4.5, 1.5, [(0, 4.5), (4.5, 9.0), (9.0, 10)]),
    ],
)
def test_clip_windows_table(duration, clip_length, interval, expected):
    assert clip_windows(duration, clip_length, interval) == expected


@pytest.mark.parametrize(
    ("duration", "clip_length", "interval", "match"),
    [
        (100, 59.9, 1.5, "whole number"),
        (100, 60, 1.6, "whole number"),
        (100, 0, 1.5, "clip length"),
        (100, -60, 1.5, "clip length"),
        (-1, 60, 1.5, "duration"),
        (math.nan, 60, 1.5, "duration"),
        (math.inf, 60, 1.5, "duration"),
        (100, 60, 0, "frame interval"),
    ],
)
def test_clip_windows_rejects_bad_input(duration, clip_length, interval, match):
    with pytest.raises(GridError, match=match):
        clip_windows(duration, clip_length, interval)


# --- 3D windows and uniform indices --------------------------------------------------------


@PROPERTY
@given(i=st.integers(0, 100_000))
def test_window_cutoffs_are_45_slots_at_30_fps(i):
    cuts = window_cutoffs_3d(i, 1.5, 30)
    assert len(cuts) == 45
    for j, c in enumerate(cuts):
        assert c == Fraction(3, 2) * i + Fraction(2 * j + 1, 60)
    assert cuts[0] > Fraction(3, 2) * i and cuts[-1] < Fraction(3, 2) * (i + 1)


@pytest.mark.parametrize(
    ("interval", "fps", "count"),
    [(1.5, 30, 45), (1.0, 30, 30), (2.0, 30, 60), (1.5, 25, 38), (0.1, 30, 3)],
)
def test_window_cutoffs_count(interval, fps, count):
    assert len(window_cutoffs_3d(0, interval, fps)) == count


def test_uniform_indices_45_to_32():
    idx = uniform_indices(45, 32)
    assert len(idx) == 32
    assert idx[0] == 0
    assert idx[-1] == 44
    assert all(a <= b for a, b in pairwise(idx))
    assert all(0 <= k < 45 for k in idx)
    # The slow pathway takes every 4th fast frame: 8 of 32.
    assert len(idx[:: grid.SLOW_STRIDE]) == 8
    assert grid.FAST_FRAMES == 32


@PROPERTY
@given(n_in=st.integers(1, 500), n_out=st.integers(1, 500))
def test_uniform_indices_properties(n_in, n_out):
    idx = uniform_indices(n_in, n_out)
    assert len(idx) == n_out
    assert idx[0] == 0
    assert all(0 <= k < n_in for k in idx)
    assert all(a <= b for a, b in pairwise(idx))
    if n_out > 1:
        assert idx[-1] == n_in - 1
    if n_out <= n_in:
        assert len(set(idx)) == n_out  # downsampling never repeats a frame


@PROPERTY
@given(n=st.integers(1, 1000))
def test_uniform_indices_identity(n):
    assert uniform_indices(n, n) == list(range(n))


@pytest.mark.parametrize(("n_in", "n_out"), [(0, 32), (45, 0), (-1, 1), (1, -1)])
def test_uniform_indices_rejects_empty(n_in, n_out):
    with pytest.raises(GridError):
        uniform_indices(n_in, n_out)


# --- invalid input -------------------------------------------------------------------------

BAD_INTERVALS = [0, 0.0, -1.5, -0.0, math.nan, math.inf, -math.inf, None, "1.5"]


@pytest.mark.parametrize("interval", BAD_INTERVALS, ids=repr)
@pytest.mark.parametrize(
    "call",
    [
        lambda L: step_floor(1.0, L),
        lambda L: step_ceil(1.0, L),
        lambda L: num_steps(10.0, L),
        lambda L: step_start(1, L),
        lambda L: step_bounds(1, L),
        lambda L: steps_covering(0.0, 3.0, L),
        lambda L: sample_cutoff_2d(1, L),
        lambda L: window_cutoffs_3d(1, L),
        lambda L: check_clip_length(60, L),
        lambda L: clip_windows(100, 60, L),
        lambda L: FrameGrid(L, 3),
        lambda L: FrameGrid.for_duration(10.0, L),
    ],
    ids=[
        "step_floor",
        "step_ceil",
        "num_steps",
        "step_start",
        "step_bounds",
        "steps_covering",
        "sample_cutoff_2d",
        "window_cutoffs_3d",
        "check_clip_length",
        "clip_windows",
        "FrameGrid",
        "FrameGrid.for_duration",
    ],
)
def test_bad_interval_is_rejected(call, interval):
    with pytest.raises(GridError, match="frame interval must be a positive number") as info:
        call(interval)
    assert repr(interval) in str(info.value)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: num_steps(-1.0, 1.5), "duration must not be negative"),
        (lambda: num_steps(-0.001, 1.5), "duration must not be negative"),
        (lambda: num_steps(math.nan, 1.5), "duration must be a finite"),
        (lambda: num_steps(math.inf, 1.5), "duration must be a finite"),
        (lambda: FrameGrid.for_duration(-1.0, 1.5), "duration must not be negative"),
        (lambda: step_floor(math.nan, 1.5), "time must be a finite"),
        (lambda: step_ceil(math.nan, 1.5), "time must be a finite"),
        (lambda: step_floor(math.inf, 1.5), "time must be a finite"),
        (lambda: step_floor(None, 1.5), "time must be a finite"),
        (lambda: steps_covering(math.nan, 1.0, 1.5), "must be a finite number of seconds"),
        (lambda: steps_covering(0.0, math.nan, 1.5), "must be a finite number of seconds"),
        (lambda: steps_covering(0.0, math.inf, 1.5), "must be a finite number of seconds"),
        (lambda: check_clip_length(math.nan, 1.5), "clip length must be a finite"),
        (lambda: FrameGrid(1.5, -1), "num_steps"),
        (lambda: FrameGrid(1.5, 3.0), "num_steps"),
        (lambda: FrameGrid.for_duration(0.0, 1.5).step_of(0.0), "empty grid"),
    ],
)
def test_bad_time_is_rejected(call, match):
    with pytest.raises(GridError, match=match):
        call()


def test_grid_error_is_a_value_error():
    assert issubclass(GridError, ValueError)
    with pytest.raises(ValueError):
        num_steps(-1.0)


# --- FrameGrid -----------------------------------------------------------------------------


def test_frame_grid_for_duration_and_span():
    g = FrameGrid.for_duration(4.0, 1.5)
    assert g == FrameGrid(1.5, 3)
    assert g.span == 4.5
    assert FrameGrid.for_duration(60.0).num_steps == 40
    assert FrameGrid.for_duration(60.0).span == 60.0
    assert FrameGrid.for_duration(0.0).num_steps == 0
    assert FrameGrid.for_duration(0.0).span == 0


@PROPERTY
@given(d_ms=duration_ms, l_ms=interval_ms)
def test_frame_grid_span_covers_duration_by_less_than_a_step(d_ms, l_ms):
    g = FrameGrid.for_duration(sec(d_ms), sec(l_ms))
    exact = g.num_steps * Fraction(l_ms, 1000)
    assert Fraction(d_ms, 1000) <= exact < Fraction(d_ms, 1000) + Fraction(l_ms, 1000)
    assert close(g.span, float(exact))


def test_frame_grid_is_frozen():
    g = FrameGrid(1.5, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.num_steps = 4


@pytest.mark.parametrize(("index", "expected"), [(0, (0.0, 1.5)), (1, (1.5, 3.0)), (2, (3.0, 4.5))])
def test_frame_grid_bounds(index, expected):
    assert FrameGrid.for_duration(4.0, 1.5).bounds(index) == expected


@pytest.mark.parametrize("index", [-1, 3, 4, 100])
def test_frame_grid_out_of_range_index(index):
    g = FrameGrid.for_duration(4.0, 1.5)
    with pytest.raises(GridError, match=f"step {index} is outside a grid of 3 steps"):
        g.bounds(index)


def test_frame_grid_empty_has_no_bounds():
    with pytest.raises(GridError):
        FrameGrid(1.5, 0).bounds(0)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.0, 0), (1.49, 0), (1.5, 1), (3.0, 2), (3.99, 2), (4.0, 2), (4.4, 2), (100.0, 2)],
)
def test_frame_grid_step_of(seconds, expected):
    # Times past the end (including inside the last step's overhang) map to the last step.
    assert FrameGrid.for_duration(4.0, 1.5).step_of(seconds) == expected


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0.0, 3.0, [0, 1]),
        (-5.0, 100.0, [0, 1, 2]),  # limited to the grid on both sides
        (-5.0, 1.0, [0]),
        (-5.0, -1.0, []),  # entirely before the clip
        (3.5, 100.0, [2]),
        (4.5, 6.0, []),  # entirely after the last step
        (10.0, 20.0, []),
    ],
)
def test_frame_grid_steps_covering_is_limited_to_the_grid(start, end, expected):
    assert list(FrameGrid.for_duration(4.0, 1.5).steps_covering(start, end)) == expected


@PROPERTY
@given(
    d_ms=st.integers(1, 600_000),
    l_ms=interval_ms,
    s_ms=st.integers(-(10**6), 10**6),
    length_ms=st.integers(1, 10**6),
)
def test_frame_grid_steps_covering_is_the_intersection(d_ms, l_ms, s_ms, length_ms):
    g = FrameGrid.for_duration(sec(d_ms), sec(l_ms))
    free = steps_covering(sec(s_ms), sec(s_ms + length_ms), sec(l_ms))
    limited = g.steps_covering(sec(s_ms), sec(s_ms + length_ms))
    assert list(limited) == [i for i in free if 0 <= i < g.num_steps]


# --- choosing source frames by presentation time ------------------------------------------


def _round_near_inf(x):
    """av_rescale_q_rnd(..., AV_ROUND_NEAR_INF): nearest integer, halves away from zero."""
    half = Fraction(1, 2)
    return math.floor(x + half) if x >= 0 else -math.floor(-x + half)


def ffmpeg_fps(times, end, rate):
    """The input frame ffmpeg's ``fps=rate`` filter emits for each output slot (slow reference).

    Emulates libavfilter/vf_fps.c with its defaults (rounding=near, eof_action=round): every
    frame gets slot ``round(t·rate)``; output slot ``n`` runs from the first frame's slot up to
    ``round(end·rate)`` (end = the end of the last frame, the EOF timestamp) and takes the
    current frame once the next frame's slot is past ``n``.
    """
    slots = [_round_near_inf(t * rate) for t in times]
    out, k = [], 0
    for n in range(slots[0], _round_near_inf(end * rate)):
        while k + 1 < len(times) and slots[k + 1] <= n:
            k += 1
        out.append(k)
    return out


@st.composite
def frame_times_ms(draw, max_frames=80):
    """(strictly increasing frame times from 0, end of the last frame), whole ms as Fractions."""
    gaps = draw(st.lists(st.integers(1, 400), min_size=0, max_size=max_frames))
    times, t = [Fraction(0)], 0
    for g in gaps:
        t += g
        times.append(Fraction(t, 1000))
    last = draw(st.integers(1, 400))
    return times, times[-1] + Fraction(last, 1000)


@pytest.mark.parametrize(
    ("cutoff", "expected"),
    [
        (Fraction(-1), 0),  # nothing before: the first frame
        (Fraction(0), 0),
        (Fraction(1, 10), 0),  # a frame exactly at the cutoff is not before it
        (Fraction(101, 1000), 1),
        (Fraction(3, 10), 2),
        (Fraction(301, 1000), 3),
        (Fraction(100), 3),  # past the end: the last frame
    ],
)
def test_frame_before_is_strict_and_clamped(cutoff, expected):
    times = [Fraction(0), Fraction(1, 10), Fraction(2, 10), Fraction(3, 10)]
    assert frame_before(times, cutoff) == expected


def test_frame_before_needs_frames():
    with pytest.raises(GridError, match="no frame"):
        frame_before([], Fraction(1))


def test_cutoffs_are_exact():
    assert sample_cutoff_2d(0, 1.5) == Fraction(3, 4)
    assert sample_cutoff_2d(3, 0.1) == Fraction(35, 100)
    cuts = window_cutoffs_3d(2, 1.5, 30)
    assert len(cuts) == 45
    assert cuts[0] == 3 + Fraction(1, 60)
    assert cuts[-1] == 3 + Fraction(89, 60) < Fraction(9, 2)
    # the 2D cutoff is the middle slot's when L·fps is odd
    assert sample_cutoff_2d(2, 1.5) == cuts[22]


def test_window_cutoffs_reject_a_step_too_short_for_one_frame():
    with pytest.raises(GridError, match="no frame"):
        window_cutoffs_3d(0, 0.01, 30)


def test_select_2d_at_30_fps():
    times = [Fraction(k, 30) for k in range(310)]  # 10.333 s
    picks = select_2d(times, Fraction(310, 30), 1.5)
    assert len(picks) == 7
    # frame 22 (0.7333 s) is the last before 0.75 s; step 6's 9.75 s is frame 292 (9.7333 s)
    assert picks == [22, 67, 112, 157, 202, 247, 292]


def test_select_3d_short_last_window_repeats_the_last_frame():
    times = [Fraction(k, 30) for k in range(50)]  # 1.6667 s: two steps, the second short
    windows = select_3d(times, Fraction(50, 30), 1.5, 30)
    assert windows[0] == list(range(45))  # 30 fps in, 30 fps out: each frame once
    assert windows[1] == [45, 46, 47, 48, 49] + [49] * 40


@pytest.mark.parametrize(
    ("times", "duration", "match"),
    [
        ([], Fraction(1), "no frame"),
        ([Fraction(0), Fraction(0)], Fraction(1), "increase"),
        ([Fraction(0), Fraction(1)], Fraction(1), "end after"),
    ],
)
def test_select_rejects_bad_frame_times(times, duration, match):
    with pytest.raises(GridError, match=match):
        select_2d(times, duration, 1.5)


@PROPERTY
@given(video=frame_times_ms(), l_ms=st.integers(20, 3000))
@example(video=([Fraction(k, 30) for k in range(310)], Fraction(310, 30)), l_ms=100)
def test_select_2d_is_ffmpeg_fps_filter(video, l_ms):
    """Our 2D choice equals ffmpeg's ``fps=1/L`` on the common prefix; counts differ by <= 1.

    ffmpeg emits ``round(D/L)`` frames (halves up), we emit ``ceil(D/L)``: ffmpeg drops a last
    step that is less than half covered, we keep it (HERO's step count).
    """
    times, end = video
    interval = sec(l_ms)
    ours = select_2d(times, end, interval)
    theirs = ffmpeg_fps(times, end, 1 / Fraction(l_ms, 1000))
    assert len(ours) == num_steps(float(end), interval)
    assert abs(len(ours) - len(theirs)) <= 1
    n = min(len(ours), len(theirs))
    assert ours[:n] == theirs[:n]


@PROPERTY
@given(video=frame_times_ms(), k=st.integers(1, 60))
def test_select_3d_is_ffmpeg_fps_filter_at_30(video, k):
    """With L a whole number of 1/30 s, the windows laid end to end are ``fps=30``'s output."""
    times, end = video
    interval = k / 30
    windows = select_3d(times, end, interval, 30)
    assert all(len(w) == k for w in windows)
    flat = [i for w in windows for i in w]
    theirs = ffmpeg_fps(times, end, Fraction(30))
    n = min(len(flat), len(theirs))
    assert n >= len(flat) - k  # ffmpeg may stop inside our last (padded) window only
    assert flat[:n] == theirs[:n]
    # past ffmpeg's end our slots repeat the last frame
    assert all(i == len(times) - 1 for i in flat[len(theirs) :])


# --- stated frame rates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        (3, Fraction(3)),
        (29.97, Fraction(2997, 100)),  # the decimal, not the binary fraction of the float
        ("29.97", Fraction(2997, 100)),
        (" 30000/1001 ", Fraction(30000, 1001)),
        (".5", Fraction(1, 2)),
        ("3.", Fraction(3)),
        (10_000, Fraction(10_000)),
    ],
)
def test_a_stated_frame_rate_is_exact(value, rate):
    assert parse_frame_rate(value) == rate


@pytest.mark.parametrize(
    "value",
    [
        0,
        -3,
        10_001,
        10**4000,
        True,
        None,
        [3],
        float("nan"),
        float("inf"),
        1e-400,
        "",
        "fast",
        "3/0",
        "0",
        "-3",
        "1e3",
        "1e99999999",
        "3/2.5",
        "1" * 81,
        "0x10",
    ],
)
def test_a_bad_frame_rate_is_refused_quickly(value):
    """Out of range, not a number, or an exponent (``Fraction("1e99999999")`` would compute a
    hundred-million-digit integer): a ValueError, at once."""
    with pytest.raises(ValueError):
        parse_frame_rate(value)
