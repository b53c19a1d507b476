"""Cutting cues to clips and HERO's cue-to-step alignment: edge cases and properties."""

from __future__ import annotations

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
        ([C(1, 2), C(3, 19.0)], 11, False),  # exactly 16 s: kept whole (11 steps anyway)
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


def test_last_cue_rule_uses_the_clipped_end():
    # 50 -> 90 s is 40 s long, but only 10 s inside a 60 s clip: not truncated.
    a = align_cues([C(50, 90)], 60.0)
    assert not a.truncated_last and a.sub2frames[0] == tuple(range(33, 40))


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

MS = Fraction(1, 1000)


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


def reference(cues: list[Cue], duration: float, interval: float):
    """Brute force in exact decimal arithmetic: HERO's rule read straight off the spec."""
    L, D = Fraction(str(interval)), Fraction(str(duration))
    n = -(-D // L)
    kept = [(Fraction(str(c.start)), min(Fraction(str(c.end)), D)) for c in cues]
    kept = [(s, e) for s, e in kept if s < D]
    spans = []
    for s, e in kept:
        first, stop = s // L, -(-e // L) if e > s else s // L
        spans.append([i for i in range(int(first), int(stop)) if i < n])
    if kept and kept[-1][1] - kept[-1][0] > 16:
        spans[-1] = spans[-1][:11]
    unique = [[] for _ in kept]
    unmatched = []
    for i in range(int(n)):
        best, best_iou = None, Fraction(-1)
        for k, (s, e) in enumerate(kept):
            if i not in spans[k]:
                continue
            lo, hi = i * L, (i + 1) * L
            iou = (min(hi, e) - max(lo, s)) / (max(hi, e) - min(lo, s))
            if iou > best_iou:
                best, best_iou = k, iou
        if best is None:
            unmatched.append(i)
        else:
            unique[best].append(i)
    return spans, unique, unmatched, len(kept)


@settings(max_examples=300, deadline=None)
@given(clips())
def test_alignment_equals_brute_force_reference(clip):
    cues, duration, interval = clip
    a = align_cues(cues, duration, interval)
    spans, unique, unmatched, n_kept = reference(cues, duration, interval)
    if n_kept == 0:
        assert a.pseudo
        return
    assert [list(s) for s in a.sub2frames] == spans
    assert [list(s) for s in a.unique_sub2frames] == unique
    assert list(a.unmatched_frames) == unmatched


def nested(cues: list[Cue]) -> bool:
    """Whether some cue lies strictly inside another (after nothing is clipped)."""
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
    clipped = [C(c.start, min(c.end, duration)) for c in cues if c.start < duration]
    if nested(clipped):
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
