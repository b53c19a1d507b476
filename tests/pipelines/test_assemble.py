"""One video's features and cues -> clip records: rows per clip, and the duration rule."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from extract.extractor import VideoFeatures
from hero_data.types import Cue, VideoInfo
from pipelines.assemble import clip_records, effective_duration


def features(n: int) -> VideoFeatures:
    rows = np.arange(n, dtype=np.float16)[:, None]
    return VideoFeatures(
        {"resnet": np.repeat(rows, 2048, axis=1), "slowfast": np.repeat(rows, 2304, axis=1)},
        frame_interval=1.5,
    )


def video(duration: float) -> VideoInfo:
    return VideoInfo("/v/a.mp4", "a", duration, Fraction(30), 640, 360)


@pytest.mark.parametrize(
    ("probed", "steps", "expected"),
    [(130.0, 87, 130.0), (129.1, 87, 129.1), (200.0, 87, 130.5), (10.0, 87, 130.5)],
)
def test_effective_duration(probed, steps, expected):
    assert effective_duration(probed, steps, 1.5) == expected


def test_clip_rows_follow_global_steps():
    cues = [Cue(58.0, 62.0, "across"), Cue(100.0, 101.0, "late")]
    records, aligned = clip_records(video(130.0), features(87), cues, clip_length=60.0)
    assert [r.clip_id for r in records] == ["a.0", "a.1", "a.2"]
    assert [r.num_frames for r in records] == [40, 40, 7]
    assert [int(r.features["resnet"][0, 0]) for r in records] == [
        0,
        40,
        80,
    ]  # row k of clip c = step 40c+k
    assert int(records[2].features["slowfast"][-1, 0]) == 86
    assert records[0].cues[-1].text == "across" and records[1].cues[0].text == "across"
    assert aligned.report()["clips"] == 3


def test_a_container_that_lies_is_overruled_by_the_frames():
    # The container says 200 s, the decoder found 87 steps: 130.5 s, three clips.
    records, _ = clip_records(video(200.0), features(87), [], clip_length=60.0)
    assert [r.clip.end for r in records] == [60.0, 120.0, 130.5]
    assert all(r.cues and r.cues[0].text == "" for r in records)  # pseudo-cues


def test_whole_video_as_one_clip_and_window_features_refused():
    records, _ = clip_records(video(130.0), features(87), [], clip_length=None)
    assert [r.num_frames for r in records] == [87]
    window = VideoFeatures(features(3).features, 1.5, first_step=5)
    with pytest.raises(ValueError, match="must start at step 0"):
        clip_records(video(4.5), window, [], clip_length=60.0)
