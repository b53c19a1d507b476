"""Subtitle queries: a retrieval set from a dataset's cues, with every filter counted."""

from __future__ import annotations

import pytest

from build_benchmarks.subtitle_queries import build_subtitle_queries, strip_tags
from hero_data.types import Cue


def test_strip_tags():
    assert strip_tags("[Music] hello  there (laughs) friends ♪") == "hello there friends"
    assert strip_tags(">> SPEAKER: okay") == "SPEAKER: okay"
    assert strip_tags("[Applause] ♪ ♪") == ""


def test_build(make_dataset):
    clip0 = [
        Cue(0.0, 3.0, "Welcome back to my channel"),  # 0 kept
        Cue(3.0, 5.0, "[Music]"),  # 1 tags_only
        Cue(5.0, 7.0, "okay so"),  # 2 too_few_words
        Cue(7.0, 9.0, "[Music] now we cut the board"),  # 3 kept, without the tag
        Cue(9.0, 9.0, "an instant with no duration"),  # 4 zero_length
        Cue(10.0, 12.0, "thank you for watching"),  # 5 duplicate (also in clip 2)
        Cue(55.0, 60.0, "this sentence runs over the boundary"),  # 6 larger part: kept
    ]
    clip1 = [
        Cue(0.0, 1.0, "this sentence runs over the boundary"),  # 7 boundary_part
        Cue(20.0, 25.0, "Thank you, for watching!"),  # 8 duplicate (punctuation aside)
        Cue(40.0, 70.0, "a cue past the clip end is cut"),  # 9 kept, end cut to 45
    ]
    silent = [Cue(0.0, 7.5, ""), Cue(7.5, 15.0, "")]  # 10, 11: pseudo-cues, empty
    root = make_dataset([("v1", 0, 60.0, clip0), ("v1", 1, 45.0, clip1), ("v2", 0, 15.0, silent)])
    bench = build_subtitle_queries(root, min_words=3)
    rep = bench.report
    assert rep.input_rows == 12
    assert rep.written + len(rep.rejections) == 12
    assert rep.rejected == {
        "boundary_part": 1,
        "duplicate": 2,
        "empty": 2,
        "tags_only": 1,
        "too_few_words": 1,
        "zero_length": 1,
    }
    assert [r["desc_id"] for r in bench.rows] == [0, 3, 6, 9]
    assert bench.rows[1] == {
        "desc_id": 3,
        "desc": "now we cut the board",
        "vid_name": "v1.0",
        "ts": [7.0, 9.0],
        "duration": 60.0,
    }
    assert bench.rows[2]["vid_name"] == "v1.0"
    assert bench.rows[3]["ts"] == [40.0, 45.0] and bench.rows[3]["duration"] == 45.0
    assert bench.videos == ["v1"] * 4
    reasons = {r.line: r.reason for r in rep.rejections}
    assert reasons[7] == "boundary_part" and reasons[5] == reasons[8] == "duplicate"
    assert reasons[10] == reasons[11] == "empty"


def test_min_words(make_dataset):
    root = make_dataset([("v", 0, 30.0, [Cue(0, 2, "one two"), Cue(2, 4, "one two three")])])
    assert len(build_subtitle_queries(root, min_words=2).rows) == 2
    assert len(build_subtitle_queries(root, min_words=3).rows) == 1
    with pytest.raises(ValueError, match="min_words"):
        build_subtitle_queries(root, min_words=0)
