"""Tests for hero_data.types: the frozen value types VideoInfo, Cue and Clip, and check_id.

Covers: immutability, to_dict/from_dict round trips (through JSON too, with exact Fraction frame
rates), tag and field checks in from_dict, validation of times, sizes, rotation and ids,
VideoInfo.display_size, Cue.shifted and Clip.clip_id.
"""

import dataclasses
import json
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hero_data.types import Clip, Cue, VideoInfo, check_id

PROPERTY = settings(max_examples=100, deadline=None)


def video(**overrides):
    fields = {
        "uri": "/videos/vid.mp4",
        "video_id": "vid",
        "duration": 61.5,
        "fps": Fraction(30000, 1001),
        "width": 1920,
        "height": 1080,
    }
    fields.update(overrides)
    return VideoInfo(**fields)


def json_round_trip(value):
    return type(value).from_dict(json.loads(json.dumps(value.to_dict())))


# --- strategies ----------------------------------------------------------------------------

safe_ids = st.from_regex(r"[A-Za-z0-9_\-][A-Za-z0-9_\-.]{0,40}", fullmatch=True)
seconds = st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False)

video_infos = st.builds(
    VideoInfo,
    uri=st.text(max_size=40),
    video_id=safe_ids,
    duration=seconds,
    fps=st.fractions(min_value=Fraction(1, 1001), max_value=1000, max_denominator=100_000).filter(
        lambda f: f > 0
    ),
    width=st.integers(1, 10_000),
    height=st.integers(1, 10_000),
    rotation=st.sampled_from([0, 90, 180, 270]),
    codec=st.sampled_from(["", "h264", "hevc", "vp9", "av1"]),
    has_audio=st.booleans(),
)


@st.composite
def cues(draw):
    start = draw(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
    length = draw(st.floats(min_value=0, max_value=1e4, allow_nan=False))
    return Cue(start, start + length, draw(st.text(max_size=40)), draw(st.none() | st.text()))


@st.composite
def clips(draw):
    start = draw(st.floats(min_value=0, max_value=1e6, allow_nan=False))
    length = draw(st.floats(min_value=1e-3, max_value=1e4, allow_nan=False))
    return Clip(draw(safe_ids), draw(st.integers(0, 10**6)), start, start + length)


# --- frozen --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "field", "new"),
    [
        (video(), "duration", 1.0),
        (video(), "fps", Fraction(25)),
        (video(), "video_id", "other"),
        (Cue(1.0, 2.0, "hi"), "start", 0.0),
        (Cue(1.0, 2.0, "hi"), "text", "bye"),
        (Clip("vid", 3, 180.0, 240.0), "index", 4),
        (Clip("vid", 3, 180.0, 240.0), "end", 250.0),
    ],
)
def test_assignment_raises(value, field, new):
    before = getattr(value, field)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, new)
    assert getattr(value, field) == before


# --- serialization -------------------------------------------------------------------------


def test_video_info_to_dict_has_tag_and_exact_fps():
    v = video(rotation=90, codec="h264", has_audio=True)
    d = v.to_dict()
    assert d == {
        "type": "video_info",
        "uri": "/videos/vid.mp4",
        "video_id": "vid",
        "duration": 61.5,
        "fps": "30000/1001",
        "width": 1920,
        "height": 1080,
        "rotation": 90,
        "codec": "h264",
        "has_audio": True,
    }
    back = VideoInfo.from_dict(d)
    assert back == v
    assert isinstance(back.fps, Fraction)
    assert back.fps == Fraction(30000, 1001)
    assert json_round_trip(v) == v


@pytest.mark.parametrize(
    ("fps", "expected"),
    [
        (Fraction(30000, 1001), Fraction(30000, 1001)),
        ("30000/1001", Fraction(30000, 1001)),
        (Fraction(25), Fraction(25)),
        (30, Fraction(30)),
        ("24000/1001", Fraction(24000, 1001)),
    ],
)
def test_video_info_fps_is_a_fraction(fps, expected):
    v = video(fps=fps)
    assert isinstance(v.fps, Fraction)
    assert v.fps == expected
    assert json_round_trip(v).fps == expected


def test_cue_and_clip_to_dict():
    assert Cue(1.0, 2.5, "hello", "Ann").to_dict() == {
        "type": "cue",
        "start": 1.0,
        "end": 2.5,
        "text": "hello",
        "speaker": "Ann",
    }
    assert Clip("vid", 3, 180.0, 240.0).to_dict() == {
        "type": "clip",
        "video_id": "vid",
        "index": 3,
        "start": 180.0,
        "end": 240.0,
    }


@PROPERTY
@given(v=video_infos)
def test_video_info_round_trip(v):
    assert VideoInfo.from_dict(v.to_dict()) == v
    assert json_round_trip(v) == v


@PROPERTY
@given(c=cues())
def test_cue_round_trip(c):
    assert Cue.from_dict(c.to_dict()) == c
    assert json_round_trip(c) == c


@PROPERTY
@given(c=clips())
def test_clip_round_trip(c):
    assert Clip.from_dict(c.to_dict()) == c
    assert json_round_trip(c) == c


def test_from_dict_does_not_change_its_argument():
    d = Cue(1.0, 2.0, "hi").to_dict()
    copy = dict(d)
    Cue.from_dict(d)
    assert d == copy


@pytest.mark.parametrize(
    ("cls", "record"),
    [
        (Cue, Clip("vid", 0, 0.0, 60.0).to_dict()),
        (Clip, Cue(0.0, 1.0, "x").to_dict()),
        (VideoInfo, {**video().to_dict(), "type": "video"}),
        (Cue, {"start": 0.0, "end": 1.0, "text": "no tag"}),
        (Cue, {"type": None, "start": 0.0, "end": 1.0, "text": "x"}),
        (Cue, {"type": "CUE", "start": 0.0, "end": 1.0, "text": "x"}),
    ],
)
def test_from_dict_rejects_wrong_tag(cls, record):
    with pytest.raises(ValueError, match=f"expected a '{cls.TYPE}' record"):
        cls.from_dict(record)


@pytest.mark.parametrize(
    ("cls", "record"),
    [
        (Cue, {**Cue(0.0, 1.0, "x").to_dict(), "confidence": 0.9}),
        (Clip, {**Clip("vid", 0, 0.0, 60.0).to_dict(), "clip_id": "vid.0"}),
        (VideoInfo, {**video().to_dict(), "bitrate": 1000}),
    ],
)
def test_from_dict_rejects_unknown_field(cls, record):
    with pytest.raises(ValueError, match="unknown fields"):
        cls.from_dict(record)


# --- Cue -----------------------------------------------------------------------------------


def test_cue_end_before_start_raises():
    with pytest.raises(ValueError, match="before it starts"):
        Cue(2.0, 1.0, "backwards")


def test_cue_may_be_zero_length():
    assert Cue(2.0, 2.0, "blink").duration == 0


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (math.nan, 1.0),
        (0.0, math.nan),
        (math.nan, math.nan),
        (math.inf, math.inf),
        (0.0, math.inf),
        (-math.inf, 0.0),
        (None, 1.0),
        ("0", 1.0),
        (True, 2.0),
    ],
)
def test_cue_times_must_be_finite_numbers(start, end):
    with pytest.raises(ValueError, match="must be a finite number"):
        Cue(start, end, "x")


def test_cue_times_become_floats():
    c = Cue(1, 2, "x")
    assert type(c.start) is float
    assert type(c.end) is float


@pytest.mark.parametrize(
    ("start", "end", "offset", "expected"),
    [
        (61.0, 63.5, -60.0, (1.0, 3.5)),
        (1.0, 3.5, 60.0, (61.0, 63.5)),
        (0.0, 0.0, 1.5, (1.5, 1.5)),
        (1.0, 2.0, 0.0, (1.0, 2.0)),
        (1.0, 2.0, -5.0, (-4.0, -3.0)),
    ],
)
def test_cue_shifted_moves_both_ends(start, end, offset, expected):
    c = Cue(start, end, "text", "Ann")
    moved = c.shifted(offset)
    assert (moved.start, moved.end) == expected
    assert (moved.text, moved.speaker) == ("text", "Ann")
    assert (c.start, c.end) == (start, end)  # the original is unchanged


@PROPERTY
@given(c=cues(), offset=st.integers(-(10**6), 10**6))
def test_cue_shifted_keeps_duration(c, offset):
    moved = c.shifted(float(offset))
    assert math.isclose(moved.duration, c.duration, rel_tol=1e-9, abs_tol=1e-6)
    assert moved.start == c.start + offset
    assert moved.end == c.end + offset


# --- Clip ----------------------------------------------------------------------------------


def test_clip_id():
    c = Clip("vid", 3, 180.0, 240.0)
    assert c.clip_id == "vid.3"
    assert c.duration == 60.0
    assert Clip("abc-1_2.x", 0, 0.0, 12.5).clip_id == "abc-1_2.x.0"


@pytest.mark.parametrize(
    ("video_id", "index", "start", "end", "match"),
    [
        ("vid", -1, 0.0, 60.0, "index"),
        ("vid", 1.0, 0.0, 60.0, "index"),
        ("vid", True, 0.0, 60.0, "index"),
        ("vid", 0, -1.0, 60.0, "start < end"),
        ("vid", 0, 60.0, 60.0, "start < end"),
        ("vid", 0, 60.0, 0.0, "start < end"),
        ("vid", 0, math.nan, 60.0, "finite"),
        ("vid", 0, 0.0, math.inf, "finite"),
        ("../x", 0, 0.0, 60.0, "safe id"),
    ],
)
def test_clip_rejects_bad_fields(video_id, index, start, end, match):
    with pytest.raises(ValueError, match=match):
        Clip(video_id, index, start, end)


# --- VideoInfo -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rotation", "expected"),
    [(0, (1920, 1080)), (90, (1080, 1920)), (180, (1920, 1080)), (270, (1080, 1920))],
)
def test_display_size(rotation, expected):
    v = video(rotation=rotation)
    assert v.display_size == expected
    assert (v.width, v.height) == (1920, 1080)  # coded size is kept as is


@pytest.mark.parametrize("rotation", [45, -90, 360, 1])
def test_rotation_must_be_a_right_angle(rotation):
    with pytest.raises(ValueError, match="rotation"):
        video(rotation=rotation)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"duration": -1.0}, "negative duration"),
        ({"duration": math.nan}, "finite"),
        ({"duration": math.inf}, "finite"),
        ({"fps": 0}, "frame rate"),
        ({"fps": Fraction(-25)}, "frame rate"),
        ({"width": 0}, "frame size"),
        ({"height": -1}, "frame size"),
        ({"video_id": "a/b"}, "safe id"),
    ],
)
def test_video_info_rejects_bad_fields(overrides, match):
    with pytest.raises(ValueError, match=match):
        video(**overrides)


def test_video_info_zero_duration_is_allowed():
    assert video(duration=0.0).duration == 0.0


# --- check_id ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "../x",
        "a/b",
        "",
        ".hidden",
        "..",
        "a\nb",
        "abc\n",  # a trailing newline is a control character too
        "a\\b",
        "a b",
        "a\x00b",
        "a\tb",
        "vid:1",
        "x" * 201,
        "é",
        None,
        3,
    ],
    ids=repr,
)
def test_check_id_rejects_unsafe(value):
    with pytest.raises(ValueError, match="not a safe id"):
        check_id("video id", value)


@pytest.mark.parametrize(
    "value", ["abc-1_2.x", "a", "A9", "_x", "-x", "x.", "a..b", "x" * 200], ids=repr
)
def test_check_id_accepts_safe(value):
    assert check_id("video id", value) == value


def test_check_id_message_names_kind_and_value():
    with pytest.raises(ValueError) as info:
        check_id("video id", "../x")
    assert "video id" in str(info.value)
    assert "'../x'" in str(info.value)


@PROPERTY
@given(value=safe_ids)
def test_check_id_accepts_every_safe_id(value):
    assert check_id("video id", value) == value


@PROPERTY
@given(
    prefix=safe_ids,
    bad=st.sampled_from(["/", "\\", "\n", "\r", "\x00", " ", ":", "\x7f"]),
    suffix=st.from_regex(r"[A-Za-z0-9_\-.]{0,10}", fullmatch=True),
)
def test_check_id_rejects_any_unsafe_character(prefix, bad, suffix):
    with pytest.raises(ValueError):
        check_id("video id", prefix + bad + suffix)
