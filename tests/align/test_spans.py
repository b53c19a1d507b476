"""Cutting cues to clips and HERO's cue-to-step alignment: edge cases and properties."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from align.spans import Alignment, align_cues, cut_cues
from hero_data.types import Cue


def C(start: float, end: float, text: str = "x") -> Cue:
    return Cue(start, end, text)


# -- cutting -----------------------------------------------------------------------------------


def test_cue_across_a_clip_boundary_is_in_both_clips_clipped():
    cues = [C(10, 20, "a"), C(55, 65, "across"), C(70, 80, "b")]
    assert cut_cues(cues, 0, 60) == [C(10, 20, "a"), C(55, 60, "across")]
    assert cut_cues(cues, 60, 120) == [C(0, 5, "across"), C(10, 20, "b")]


def test_cut_touching_only_at_a_point_is_out():
    cues = [C(50, 60, "ends at the boundary"), C(60, 61, "starts at it")]
    assert cut_cues(cues, 0, 60) == [C(50, 60, "ends at the boundary")]
    assert cut_cues(cues, 60, 120) == [C(0, 1, "starts at it")]


def test_cut_times_carry_no_float_noise():
    # 106.07 - 60 is 46.06999999999999 in floats; the cut works at microsecond precision.
    assert cut_cues([C(106.07, 110.2, "a")], 60, 120) == [C(46.07, 50.2, "a")]
    assert cut_cues([C(100.0, 130.0, "b")], 60, 110.53) == [C(40.0, 50.53, "b")]
    # a start a picosecond before the clip is its start, at microsecond precision
    assert cut_cues([C(59.999999999999, 61.1, "c")], 60, 120) == [C(0.0, 1.1, "c")]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 200_000), st.integers(1, 20_000)), max_size=6),
    st.integers(0, 2),
    st.integers(1, 60_000),
)
def test_cut_times_are_the_exact_decimal_differences(raw, clip, length_ms):
    """Millisecond cue times cut to a clip are the floats nearest the exact differences."""
    start_ms = clip * 60_000
    end_ms = start_ms + length_ms
    cues = [C(s / 1000, (s + d) / 1000, f"c{k}") for k, (s, d) in enumerate(raw)]
    expected = [
        C(max(s - start_ms, 0) / 1000, (min(s + d, end_ms) - start_ms) / 1000, f"c{k}")
        for k, (s, d) in enumerate(raw)
        if s + d > start_ms and s < end_ms
    ]
    assert cut_cues(cues, start_ms / 1000, end_ms / 1000) == expected


def test_cut_short_last_clip_and_bad_window():
    assert cut_cues([C(100, 130, "tail")], 60, 110.5) == [C(40, 50.5, "tail")]
    with pytest.raises(ValueError, match="clip_end > clip_start"):
        cut_cues([], 60, 60)


# -- alignment: a table of edge cases --------------------------------------------------------


@pytest.mark.parametrize(
    ("cues", "duration", "sub2frames", "unique", "unmatched"),
    [
        # a cue ending exactly on a step boundary does not reach the next step
        ([C(0, 3.0)], 6.0, [[0, 1]], [[0, 1]], [2, 3]),
        # a cue starting exactly on a boundary starts at that step
        ([C(3.0, 4.5)], 6.0, [[2]], [[2]], [0, 1, 3]),
        # overlapping cues: the step goes to the higher IoU (B: 1/3 vs A: 1/4)
        ([C(0.5, 4.0, "A"), C(3.5, 6.0, "B")], 6.0, [[0, 1, 2], [2, 3]], [[0, 1], [2, 3]], []),
        # equal IoU: ties go to the earlier cue
        ([C(0, 2.25, "A"), C(2.25, 4.5, "B")], 4.5, [[0, 1], [1, 2]], [[0, 1], [2]], []),
        # a cue inside another: each step to its best match
        ([C(0, 6, "long"), C(1.5, 3.0, "short")], 6, [[0, 1, 2, 3], [1]], [[0, 2, 3], [1]], []),
        # end clipped to the clip; cue past the end dropped
        ([C(3, 100), C(7, 8)], 6.0, [[2, 3]], [[2, 3]], [0, 1]),
        # a cue that covers no step keeps an empty span; all steps unmatched
        ([C(1.0, 1.0 + 1e-10)], 3.0, [[]], [[]], [0, 1]),
    ],
)
def test_alignment_table(cues, duration, sub2frames, unique, unmatched):
    a = align_cues(cues, duration)
    assert [list(s) for s in a.sub2frames] == sub2frames
    assert [list(s) for s in a.unique_sub2frames] == unique
    assert list(a.unmatched_frames) == unmatched
    assert not a.pseudo


def test_dropped_cues_are_counted_and_ends_clipped():
    a = align_cues([C(1, 2), C(5, 70), C(60, 61), C(75, 80)], 60.0)
    assert a.cues == (C(1, 2), C(5, 60))
    assert a.dropped_after_end == 2


@pytest.mark.parametrize(
    ("cues", "expected_len", "truncated"),
    [
        ([C(1, 2), C(3, 19.1)], 11, True),  # last cue 16.1 s > 16 s: first 11 of 12 steps
        # exactly 16 s over 12 steps (2 ... 13): not over 16 s, so all 12 are kept
        ([C(1, 2), C(3.75, 19.75)], 12, False),
        ([C(1, 2), C(3.75, 19.76)], 11, True),  # 16.01 s: the same 12 steps, cut to 11
        ([C(1, 2), C(3, 40)], 11, True),  # 37 s: 11 of 25 steps
        ([C(20, 59.99)], 11, True),
    ],
)
def test_long_last_cue_keeps_11_steps(cues, expected_len, truncated):
    a = align_cues(cues, 60.0)
    assert len(a.sub2frames[-1]) == expected_len
    assert a.truncated_last is truncated
    assert a.sub2frames[-1][0] == int(cues[-1].start // 1.5)


def test_long_cue_that_is_not_last_is_kept_whole():
    a = align_cues([C(0, 30, "long"), C(31, 32, "last")], 60.0)
    assert len(a.sub2frames[0]) == 20 and not a.truncated_last


def test_last_input_cue_dropped_after_the_end_truncates_nothing():
    """HERO's rule looks at the last cue of the input list only: when that cue is skipped for
    starting after the end, the long cue before it keeps all its steps."""
    a = align_cues([C(0, 30, "long"), C(61, 62, "after the end")], 60.0)
    assert a.sub2frames == (tuple(range(20)),)
    assert not a.truncated_last and a.dropped_after_end == 1
    # The same long cue as the last input is cut to 11 steps.
    assert align_cues([C(0, 30, "long")], 60.0).sub2frames == (tuple(range(11)),)


def test_last_cue_rule_counts_only_up_to_the_end_of_the_steps():
    # 50 -> 90 s is 40 s long, but only 10 s inside a 60 s clip: not truncated.
    a = align_cues([C(50, 90)], 60.0)
    assert not a.truncated_last and a.sub2frames[0] == tuple(range(33, 40))
    # HERO's end is n·L, not the clip's duration: a 49.6 s clip has 34 steps ending at 51 s,
    # so a cue from 33.6 s counts 17.4 s (> 16) although only 16.0 s are inside the clip.
    a = align_cues([C(33.6, 70)], 49.6)
    assert a.truncated_last and a.sub2frames[0] == tuple(range(22, 33))
    assert a.cues == (C(33.6, 49.6),)


def test_step_owner_uses_the_unclipped_cue_as_hero_does():
    """A = [57, 59], B = [58, 100] in a 60 s clip, steps 38 = [57, 58.5) and 39 = [58.5, 60).
    HERO's IoU takes B whole: for step 39 it is 1/6 with A and 1.5/42 with B, so A owns both
    steps. With B clipped to [58, 60], B would have won step 39 (IoU 0.75)."""
    a = align_cues([C(57, 59, "A"), C(58, 100, "B")], 60.0)
    assert a.sub2frames == ((38, 39), (38, 39))
    assert a.unique_sub2frames == ((38, 39), ())
    assert a.cues[1] == C(58, 60, "B")  # the output cue is still clipped to the clip


@pytest.mark.parametrize(
    ("duration", "spans"),
    [
        (60.0, [list(range(k, k + 5)) for k in range(0, 40, 5)]),
        (10.0, [[0, 1, 2, 3, 4], [5, 6]]),
        (1.0, [[0]]),
    ],
)
def test_empty_clip_gets_pseudo_cues(duration, spans):
    a = align_cues([], duration)
    assert a.pseudo
    assert [list(s) for s in a.sub2frames] == spans
    assert [list(s) for s in a.unique_sub2frames] == spans
    assert a.unmatched_frames == ()
    assert all(c.text == "" for c in a.cues)
    assert a.cues[0].start == 0.0 and a.cues[-1].end == duration


def test_clip_whose_cues_all_start_after_the_end_gets_pseudo_cues():
    a = align_cues([C(61, 62)], 60.0)
    assert a.pseudo and a.dropped_after_end == 1 and len(a.cues) == 8


def test_zero_length_clip():
    assert align_cues([C(0, 1)], 0.0) == Alignment((), (), (), (), 0, dropped_after_end=1)


# -- properties ---------------------------------------------------------------------------------


@st.composite
def clips(draw, max_cues: int = 8):
    """(cues, duration, interval) on a millisecond grid, cues sorted by start, non-empty."""
    interval_ms = draw(st.sampled_from([500, 1000, 1500, 2000, 1001]))
    duration_ms = draw(st.integers(1, 90_000))
    raw = draw(
        st.lists(st.tuples(st.integers(0, 100_000), st.integers(1, 20_000)), max_size=max_cues)
    )
    cues = [C(s / 1000, (s + d) / 1000, f"c{k}") for k, (s, d) in enumerate(sorted(raw))]
    return cues, duration_ms / 1000, interval_ms / 1000


def temporal_iou(a: tuple[Fraction, Fraction], b: tuple[Fraction, Fraction]) -> Fraction:
    """HERO's ``temporal_iou``: 0 when the spans do not overlap."""
    min_end, max_start = min(a[1], b[1]), max(a[0], b[0])
    if min_end <= max_start:
        return Fraction(0)
    return (min_end - max_start) / (max(a[1], b[1]) - min(a[0], b[0]))


def hero_process_single_vid_sub(cues_ms: list[tuple[int, int]], n: int, interval_ms: int):
    """HERO's ``process_single_vid_sub`` (scripts/prepro_sub.py) rule by rule, in exact
    arithmetic instead of float32, using nothing of ``align`` or the grid. Cue times are
    milliseconds, sorted by start; the video has ``n`` frames of ``interval_ms``.

    Returns (sub2frames {cue index: frames}, unique {cue index: frames} for every cue,
    unmatched frames, whether the long-last-cue rule fired).
    """
    L = Fraction(interval_ms, 1000)
    times = [(Fraction(s, 1000), Fraction(e, 1000)) for s, e in cues_ms]
    sub2frames: dict[int, list[int]] = {}
    extra_long = False
    for idx, (start, end) in enumerate(times):
        frames = list(range(math.floor(start / L), math.ceil(end / L)))  # the original end
        if start >= L * n:
            continue
        duration = min(end, L * n) - start
        if idx == len(times) - 1 and duration > 16:  # the last cue of the input list
            frames = frames[:11]
            extra_long = True
        sub2frames[idx] = frames
    frame2unique: dict[int, int] = {}
    unmatched = []
    for frame in range(n):
        matched = [idx for idx, frames in sub2frames.items() if frame in frames]
        if not matched:
            unmatched.append(frame)
            continue
        best, best_iou = 0, Fraction(0)
        for idx in matched:
            span = (times[idx][0] / L, times[idx][1] / L)  # unclipped, in frame units
            iou = temporal_iou((Fraction(frame), Fraction(frame + 1)), span)
            if iou > best_iou:  # strict: ties stay with the earlier cue
                best, best_iou = idx, iou
        frame2unique[frame] = best
    unique = {
        idx: sorted(f for f, owner in frame2unique.items() if owner == idx)
        for idx in range(len(times))
    }
    return sub2frames, unique, unmatched, extra_long


@st.composite
def hero_inputs(draw, max_cues: int = 8):
    """(cues in ms sorted by start, n steps, L in ms). Cues may start before 0 or after the
    end, run past it, and last over 16 s; none has zero length (divergence 5)."""
    interval_ms = draw(st.sampled_from([500, 1000, 1500, 2000, 1001]))
    n = draw(st.integers(1, 60))
    raw = draw(
        st.lists(
            st.tuples(st.integers(-3000, n * interval_ms + 3000), st.integers(1, 30_000)),
            max_size=max_cues,
        )
    )
    return sorted((s, s + d) for s, d in raw), n, interval_ms


def assert_matches_hero(cues_ms, n, interval_ms, duration):
    """align_cues agrees with HERO's code but for the divergences in align/spans.py."""
    cues = [C(s / 1000, e / 1000, f"c{k}") for k, (s, e) in enumerate(cues_ms)]
    a = align_cues(cues, duration, interval_ms / 1000)
    sub2frames, unique, unmatched, extra_long = hero_process_single_vid_sub(cues_ms, n, interval_ms)
    kept = sorted(sub2frames)  # HERO's indices of the cues it did not skip
    assert a.num_frames == n
    assert a.dropped_after_end == len(cues) - len(kept)
    assert all(unique[i] == [] for i in range(len(cues)) if i not in sub2frames)
    if not kept:  # divergence 3: pseudo-cues where HERO leaves every step unmatched
        assert a.pseudo and unmatched == list(range(n))
        return
    assert [c.text for c in a.cues] == [f"c{i}" for i in kept]
    in_clip = [[f for f in sub2frames[i] if 0 <= f < n] for i in kept]  # divergence 1
    assert [list(s) for s in a.sub2frames] == in_clip
    assert [list(s) for s in a.unique_sub2frames] == [unique[i] for i in kept]
    assert list(a.unmatched_frames) == unmatched
    assert a.truncated_last is extra_long


@settings(max_examples=400, deadline=None)
@given(hero_inputs())
def test_alignment_equals_hero_on_whole_steps(inputs):
    cues_ms, n, interval_ms = inputs
    assert_matches_hero(cues_ms, n, interval_ms, n * interval_ms / 1000)


@settings(max_examples=300, deadline=None)
@given(hero_inputs(), st.data())
def test_alignment_equals_hero_on_a_short_last_clip(inputs, data):
    """A duration D that is not a whole number of steps. Cues starting in [D, n·L), which HERO
    keeps and we drop (divergence 2; cut_cues never gives them), are left out of the input."""
    cues_ms, n, interval_ms = inputs
    duration_ms = data.draw(st.integers((n - 1) * interval_ms + 1, n * interval_ms))
    cues_ms = [(s, e) for s, e in cues_ms if s < duration_ms or s >= n * interval_ms]
    assert_matches_hero(cues_ms, n, interval_ms, duration_ms / 1000)


@pytest.mark.parametrize(
    ("cues_ms", "n"),
    [
        ([(57_000, 59_000), (58_000, 100_000)], 40),  # IoU with the unclipped end
        ([(0, 30_000), (61_000, 62_000)], 40),  # last input cue skipped: nothing truncated
        ([(0, 30_000)], 40),  # last cue over 16 s: 11 steps
        ([(1_000, 2_000), (3_750, 19_750)], 40),  # exactly 16 s: all 12 steps
        ([(-3_000, 2_000), (1_000, 2_500)], 4),  # a cue starting before the clip
        ([(0, 2_250), (2_250, 4_500)], 3),  # equal IoU: the earlier cue
    ],
)
def test_hero_corner_cases(cues_ms, n):
    assert_matches_hero(cues_ms, n, 1500, n * 1.5)


def nested(cues: list[Cue]) -> bool:
    """Whether some cue lies inside another."""
    spans = [(c.start, c.end) for c in cues]
    return any(
        a != b and a[0] <= b[0] and b[1] <= a[1]
        for i, a in enumerate(spans)
        for b in spans[i + 1 :]
    ) or any(
        a != b and b[0] <= a[0] and a[1] <= b[1]
        for i, a in enumerate(spans)
        for b in spans[i + 1 :]
    )


def is_run(span) -> bool:
    return list(span) == list(range(span[0], span[0] + len(span))) if span else True


@settings(max_examples=300, deadline=None)
@given(clips())
def test_every_step_in_at_most_one_unique_span(clip):
    a = align_cues(*clip)
    seen = [s for span in a.unique_sub2frames for s in span] + list(a.unmatched_frames)
    assert sorted(seen) == list(range(a.num_frames))  # each step exactly once overall
    for span, covering in zip(a.unique_sub2frames, a.sub2frames, strict=True):
        assert set(span) <= set(covering)


@settings(max_examples=300, deadline=None)
@given(clips())
def test_unique_spans_are_contiguous_runs_without_nested_cues(clip):
    cues, duration, interval = clip
    if nested([c for c in cues if c.start < duration]):  # the kept cues, unclipped as the IoU
        return
    a = align_cues(cues, duration, interval)
    assert all(is_run(span) for span in a.unique_sub2frames)


def test_nested_cue_splits_the_outer_cue_as_in_hero():
    """HERO's IoU rule gives an outer cue the edge steps around a cue nested inside it."""
    a = align_cues([C(0.0, 6.538, "outer"), C(0.001, 6.533, "inner")], 6.538, 0.5)
    assert a.unique_sub2frames == ((0, 13), tuple(range(1, 13)))
    assert not is_run(a.unique_sub2frames[0])


@settings(max_examples=200, deadline=None)
@given(clips(), st.integers(1, 10))
def test_shifting_cues_by_k_steps_shifts_spans_by_k(clip, k):
    cues, _, interval = clip
    if not cues:
        return
    # A clip long enough that neither the original nor the shifted cues reach its end.
    duration = max(c.end for c in cues) + (k + 2) * interval
    shift = k * interval
    a = align_cues(cues, duration, interval)
    b = align_cues([c.shifted(shift) for c in cues], duration, interval)

    def moved(spans):
        return [[s + k for s in span] for span in spans]

    assert [list(s) for s in b.sub2frames] == moved(a.sub2frames)
    assert [list(s) for s in b.unique_sub2frames] == moved(a.unique_sub2frames)
    expected = ({s + k for s in a.unmatched_frames} | set(range(k))) & set(range(b.num_frames))
    assert set(b.unmatched_frames) == expected
