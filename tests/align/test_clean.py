"""clean_cues: drops, duplicate merging, YouTube rolling-caption collapse, and its invariants."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from align.clean import CleanReport, clean_cues
from align.readers import parse_cues, read_cues
from hero_data.types import Cue

NON_ROLLING_FIXTURES = [
    "captions_with_bom.vtt",
    "comments.vtt",
    "cue_tags.vtt",
    "metadata_headers.vtt",
    "metadata_headers_multiline.vtt",
    "no_captions.vtt",
    "one_caption.srt",
    "one_caption.vtt",
    "sample.srt",
    "sample.vtt",
    "styles.vtt",
    "two_captions.sbv",
    "using_identifiers.vtt",
]


def _report(**counts: int) -> CleanReport:
    base = dict.fromkeys(
        ("empty_dropped", "zero_length_dropped", "duplicates_merged", "rolling_collapsed"), 0
    )
    return CleanReport(**{**base, **counts})


@pytest.mark.parametrize("name", NON_ROLLING_FIXTURES)
def test_non_rolling_fixtures_pass_through_unchanged(shared_fixtures: Path, name: str):
    cues = read_cues(shared_fixtures / "subtitles" / name)
    out, report = clean_cues(cues)
    assert out == cues
    assert report == _report(input=len(cues), output=len(cues))


def test_youtube_dl_fixture_collapses_to_each_phrase_once(shared_fixtures: Path):
    cues = read_cues(shared_fixtures / "subtitles" / "youtube_dl.vtt")
    out, report = clean_cues(cues)
    assert out == [
        Cue(286.07, 286.47, "yeah"),
        # "yeah what": "yeah" was the previous phrase, so only "what" is new from 286.47 on.
        Cue(286.47, 304.08, "what"),
        # The 0.331 s cue repeating this line is folded in and extends it to 305.4.
        Cue(304.08, 305.4, "this will happen is I'm telling"),
    ]
    assert report == _report(input=4, rolling_collapsed=1, output=3, rolling_trimmed=1)


# YouTube auto-captions as yt-dlp writes them: old line / new line, then a 10 ms transition cue
# (\x20 is the " " line YouTube writes for an empty line).
YOUTUBE_AUTO = """WEBVTT
Kind: captions
Language: en

00:00:00.030 --> 00:00:02.200 align:start position:0%
\x20
hello<00:00:00.480><c> everyone</c><00:00:00.960><c> welcome</c>

00:00:02.200 --> 00:00:02.210 align:start position:0%
hello everyone welcome
\x20

00:00:02.210 --> 00:00:05.000 align:start position:0%
hello everyone welcome
to<00:00:02.800><c> my</c><00:00:03.100><c> channel</c>

00:00:05.000 --> 00:00:05.010 align:start position:0%
to my channel
\x20

00:00:05.010 --> 00:00:07.500 align:start position:0%
to my channel
today<00:00:05.500><c> we</c><00:00:06.000><c> cook</c>

00:00:07.500 --> 00:00:07.510 align:start position:0%
today we cook
\x20
"""


def test_youtube_auto_captions_collapse():
    out, report = clean_cues(parse_cues(YOUTUBE_AUTO, "vtt"))
    assert out == [
        Cue(0.03, 2.21, "hello everyone welcome"),
        Cue(2.21, 5.01, "to my channel"),
        Cue(5.01, 7.51, "today we cook"),
    ]
    assert report == _report(input=6, rolling_collapsed=3, output=3, rolling_trimmed=2)


def test_two_line_rolling_without_transition_cues():
    # The first cue already shows two lines; later ones show the previous line and a new one.
    cues = [
        Cue(0.0, 2.0, "so first we take the pan and heat it up"),
        Cue(2.0, 4.0, "and heat it up then add a little oil"),
        Cue(4.0, 6.0, "then add a little oil and wait"),
        Cue(6.0, 6.5, "and wait"),
    ]
    out, report = clean_cues(cues)
    assert out == [
        Cue(0.0, 2.0, "so first we take the pan and heat it up"),
        Cue(2.0, 4.0, "then add a little oil"),
        Cue(4.0, 6.5, "and wait"),
    ]
    assert report == _report(input=4, rolling_collapsed=1, output=3, rolling_trimmed=2)


@pytest.mark.parametrize(
    ("cues", "expected", "counts"),
    [
        pytest.param(
            [Cue(0, 1, "  "), Cue(1, 2, ""), Cue(2, 3, "a")],
            [Cue(2, 3, "a")],
            {"empty_dropped": 2},
            id="empty",
        ),
        pytest.param(
            [Cue(1, 1, "a"), Cue(2, 3, "b"), Cue(4, 4, " ")],
            [Cue(2, 3, "b")],
            {"zero_length_dropped": 1, "empty_dropped": 1},
            id="zero-length, and empty wins over zero-length",
        ),
        pytest.param(
            [Cue(0, 2, "Hi."), Cue(0, 2, "Hi.")],
            [Cue(0, 2, "Hi.")],
            {"duplicates_merged": 1},
            id="same times",
        ),
        pytest.param(
            [Cue(0, 2, "Hi."), Cue(1, 3, "Hi."), Cue(3, 4, " Hi. ")],
            [Cue(0, 4, "Hi.")],
            {"duplicates_merged": 2},
            id="overlapping then adjacent",
        ),
        pytest.param(
            [Cue(0, 5, "Hi."), Cue(1, 2, "Hi.")],
            [Cue(0, 5, "Hi.")],
            {"duplicates_merged": 1},
            id="contained",
        ),
        pytest.param(
            [Cue(0, 1, "Hi."), Cue(1.5, 2, "Hi.")],
            [Cue(0, 1, "Hi."), Cue(1.5, 2, "Hi.")],
            {},
            id="gap keeps both",
        ),
        pytest.param(
            [Cue(0, 1, "Hi.", "A"), Cue(1, 2, "Hi.", "B")],
            [Cue(0, 1, "Hi.", "A"), Cue(1, 2, "Hi.", "B")],
            {},
            id="other speaker keeps both",
        ),
        pytest.param(
            [Cue(0, 1, "Hi."), Cue(1, 2, "Bye."), Cue(2, 3, "Hi.")],
            [Cue(0, 1, "Hi."), Cue(1, 2, "Bye."), Cue(2, 3, "Hi.")],
            {},
            id="only consecutive cues merge",
        ),
        pytest.param(
            [Cue(0, 2, "Hi"), Cue(0, 2, "Bye"), Cue(0, 2, "Hi")],
            [Cue(0, 2, "Hi"), Cue(0, 2, "Bye")],
            {"duplicates_merged": 1},
            id="exact duplicate with another cue of the same times between",
        ),
        pytest.param(
            [Cue(0, 2, "Hi", "A"), Cue(0, 2, "Bye"), Cue(0, 2, "Hi", "B"), Cue(0, 2, " Hi ", "A")],
            [Cue(0, 2, "Hi", "A"), Cue(0, 2, "Bye"), Cue(0, 2, "Hi", "B")],
            {"duplicates_merged": 1},
            id="exact duplicates need the same speaker; words compare whitespace-insensitively",
        ),
        pytest.param(
            [
                Cue(0, 2, "we take the pan"),
                Cue(2, 4, "we take the pan and heat it"),
                Cue(2, 4, "something else"),
                Cue(2, 4, "we take the pan and heat it"),
            ],
            [Cue(0, 2, "we take the pan"), Cue(2, 4, "and heat it"), Cue(2, 4, "something else")],
            {"rolling_collapsed": 1, "rolling_trimmed": 1},
            id="exact duplicate of a rolling cue counts with the rolling removals",
        ),
        pytest.param(
            [Cue(0, 1, "I said no"), Cue(1, 2, "no way")],
            [Cue(0, 1, "I said no"), Cue(1, 2, "no way")],
            {},
            id="one repeated word is not rolling",
        ),
        pytest.param(
            [Cue(5, 6, "c"), Cue(0, 2, "a"), Cue(2, 4, "b")],
            [Cue(0, 2, "a"), Cue(2, 4, "b"), Cue(5, 6, "c")],
            {},
            id="sorted by start",
        ),
    ],
)
def test_clean_table(cues: list[Cue], expected: list[Cue], counts: dict[str, int]):
    out, report = clean_cues(cues)
    assert out == expected
    assert report == _report(input=len(cues), output=len(expected), **counts)


def test_report_checks_its_sum_and_serializes():
    report = _report(input=5, empty_dropped=1, duplicates_merged=2, output=2, rolling_trimmed=7)
    assert report.to_dict() == {
        "type": "clean_report",
        "input": 5,
        "empty_dropped": 1,
        "zero_length_dropped": 0,
        "duplicates_merged": 2,
        "rolling_collapsed": 0,
        "output": 2,
        "rolling_trimmed": 7,
    }
    with pytest.raises(ValueError, match="do not add up"):
        _report(input=5, output=4)
    with pytest.raises(ValueError, match="non-negative int"):
        _report(input=1, empty_dropped=-1, output=2)


# --- properties ---------------------------------------------------------------------------------

_WORDS = st.sampled_from(["a", "b", "c", "yes", "no"])
_TEXTS = st.lists(_WORDS, max_size=5).map(" ".join) | st.sampled_from(["", "  ", " a  b "])


@st.composite
def _cue_lists(draw: st.DrawFn) -> list[Cue]:
    cues = []
    for _ in range(draw(st.integers(0, 12))):
        start = draw(st.integers(0, 20)) / 4
        length = draw(st.sampled_from([0, 0.0025, 0.01, 0.25, 0.5, 1.0, 2.0]))
        speaker = draw(st.sampled_from([None, None, "A"]))
        cues.append(Cue(start, start + length, draw(_TEXTS), speaker))
    return cues


@st.composite
def _rolling_lists(draw: st.DrawFn) -> list[Cue]:
    """Synthetic rolling captions: each cue shows the previous phrase and a new one."""
    phrases = draw(st.lists(st.lists(_WORDS, min_size=1, max_size=4).map(" ".join), max_size=8))
    cues, t, prev = [], 0.0, ""
    for phrase in phrases:
        step = draw(st.sampled_from([0.5, 1.0, 2.0]))
        cues.append(Cue(t, t + step, f"{prev} {phrase}".strip()))
        if draw(st.booleans()):
            cues.append(Cue(t + step, t + step + 0.01, phrase))
            step += 0.01
        t, prev = t + step, phrase
    return cues


@settings(max_examples=400, deadline=None)
@given(cues=_cue_lists() | _rolling_lists())
def test_clean_invariants(cues: list[Cue]):
    out, report = clean_cues(cues)
    removed = (
        report.empty_dropped
        + report.zero_length_dropped
        + report.duplicates_merged
        + report.rolling_collapsed
    )
    assert report.input == len(cues) == report.output + removed
    assert report.output == len(out)
    assert report.empty_dropped == sum(1 for c in cues if not c.text.strip())
    assert [c.start for c in out] == sorted(c.start for c in out)
    assert all(c.text.strip() and c.end > c.start for c in out)
    idents = [(c.start, c.end, tuple(c.text.split()), c.speaker) for c in out]
    assert len(set(idents)) == len(idents)  # no exact duplicate survives, adjacent or not
    assert not (report.duplicates_merged and report.rolling_collapsed)
    again, report2 = clean_cues(out)
    assert again == out
    assert report2 == _report(input=len(out), output=len(out))


@settings(max_examples=200, deadline=None)
@given(
    spans=st.lists(
        st.tuples(st.integers(0, 40), st.integers(1, 8)), max_size=12, unique_by=lambda s: s[0]
    )
)
def test_distinct_texts_pass_through_sorted(spans: list[tuple[int, int]]):
    # No word is shared between cues, so nothing can repeat: only sorting happens.
    cues = [Cue(s / 2, (s + d) / 2, f"w{k} x{k}") for k, (s, d) in enumerate(spans)]
    out, report = clean_cues(cues)
    assert out == sorted(cues, key=lambda c: c.start)
    assert report == _report(input=len(cues), output=len(cues))
