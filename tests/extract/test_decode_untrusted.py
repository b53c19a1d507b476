"""Media that lie: headers claiming absurd sizes, durations or frame rates, and timestamps that
go backwards, repeat or jump years ahead. Decoding follows the real frames, or fails the video
with a DecodeError saying why, within bounded time and memory; `hero extract` goes on."""

from __future__ import annotations

import re
import struct
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
from click.testing import CliRunner

import extract.decode as decode
from extract.decode import DecodeError, iter_step_times, iter_steps, probe
from hero_data.writer import read_errors
from pipelines.cli.main import main
from tests.extract.test_decode import index_frame, index_of, write_video
from tests.fuzz_support import bounded

SECONDS = 30
HEAP_MB = 256
TEN_YEARS = 10 * 365 * 86400

# --- making liars -------------------------------------------------------------------------------

_CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


def _box(data: bytes, *path: bytes) -> tuple[int, int]:
    """(offset, size) of the MP4 box at ``path`` (``b"moov", b"trak", b"tkhd"``)."""

    def walk(start: int, end: int, prefix: tuple[bytes, ...]):
        at = start
        while at + 8 <= end:
            size, kind = struct.unpack(">I4s", data[at : at + 8])
            if size < 8:
                return
            yield (*prefix, kind), at, size
            if kind in _CONTAINER_BOXES:
                yield from walk(at + 8, at + size, (*prefix, kind))
            at += size

    for found, at, size in walk(0, len(data), ()):
        if found == path:
            return at, size
    raise KeyError(path)


STBL = (b"moov", b"trak", b"mdia", b"minf", b"stbl")


def mp4(tmp_path: Path, name: str = "v.mp4", frames: int = 60) -> bytearray:
    """An honest 2 s, 30 fps, 160×90 H.264 MP4 (frame k shows k), as bytes to patch."""
    path = write_video(tmp_path / f"honest-{name}", list(range(frames)), Fraction(1, 30))
    return bytearray(path.read_bytes())


def claim_size(data: bytearray, width: int, height: int) -> bytearray:
    """The track header (tkhd, 16.16 fixed point) and sample entry (stsd avc1) claim a size."""
    at, size = _box(data, b"moov", b"trak", b"tkhd")
    data[at + size - 8 : at + size] = struct.pack(">II", width << 16, height << 16)
    at, _ = _box(data, *STBL, b"stsd")
    entry = at + 16  # box header, version and flags, entry count
    assert data[entry + 4 : entry + 8] == b"avc1"
    data[entry + 32 : entry + 36] = struct.pack(">HH", width, height)
    return data


def claim_duration(data: bytearray, ticks: int) -> bytearray:
    """The movie (mvhd) and media (mdhd) headers claim ``ticks`` of their timescales."""
    for path in ((b"moov", b"mvhd"), (b"moov", b"trak", b"mdia", b"mdhd")):
        at, _ = _box(data, *path)
        assert data[at + 8] == 0  # version 0: 32-bit times
        data[at + 24 : at + 28] = struct.pack(">I", ticks)  # after times and the timescale
    return data


def frame_deltas(data: bytearray, delta: int) -> bytearray:
    """Every sample of the time-to-sample table (stts) lasts ``delta`` ticks."""
    at, _ = _box(data, *STBL, b"stts")
    (entries,) = struct.unpack(">I", data[at + 12 : at + 16])
    for k in range(entries):
        data[at + 20 + 8 * k : at + 24 + 8 * k] = struct.pack(">I", delta)
    return data


def mux_timestamps(path: Path, pts: list[int], time_base: Fraction = Fraction(1, 30)) -> Path:
    """Intra-only (MJPEG) frames in Matroska, frame k showing k, presented at ``pts[k]`` as
    given (backwards, repeated, years ahead); decoding order stays k (dts = k)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuvj420p"
        stream.codec_context.time_base = time_base
        packets = []
        for k in range(len(pts)):
            frame = av.VideoFrame.from_ndarray(index_frame(k), format="rgb24")
            frame.pts, frame.time_base = k, time_base
            packets += stream.encode(frame)
        packets += stream.encode()
        for k, (packet, p) in enumerate(zip(packets, pts, strict=True)):
            packet.pts, packet.dts, packet.time_base = p, min(k, p), time_base
            container.mux(packet)
    return path


def decode_all(path: Path) -> list[tuple[int, int]] | DecodeError:
    """(step, frame shown) per step, or the DecodeError, within the time and heap bounds."""
    with bounded(SECONDS, HEAP_MB):
        try:
            return [(s.index, index_of(s.image)) for s in iter_steps(path)]
        except DecodeError as e:
            assert e.path == str(path) and str(e).startswith(str(path)), e
            return e


# --- headers that lie ---------------------------------------------------------------------------


def test_a_65535_square_header_decodes_by_its_real_frames(tmp_path):
    liar = tmp_path / "huge.mp4"
    liar.write_bytes(claim_size(mp4(tmp_path), 65535, 65535))
    with av.open(str(liar)) as c:  # the claim is there for anyone who reads the header
        header = c.streams.video[0]
        assert (header.codec_context.width, header.codec_context.height) in {
            (65535, 65535),
            (160, 90),  # FFmpeg takes the stream's own (SPS) size where it has one
        }
    info = probe(liar)
    assert (info.width, info.height) == (160, 90)  # the first decoded frame's
    assert decode_all(liar) == [(0, 22), (1, 59)]


def test_a_frame_over_the_pixel_bound_fails_its_video(tmp_path, monkeypatch):
    """A frame really larger than MAX_FRAME_PIXELS (here lowered below 160×90) is refused
    before it is converted, by probe and by each backend's decode."""
    path = write_video(tmp_path / "v.mp4", list(range(30)), Fraction(1, 30))
    monkeypatch.setattr(decode, "MAX_FRAME_PIXELS", 160 * 90 - 1)
    with pytest.raises(DecodeError, match=r"a frame of 160×90 pixels: more than the 14,399"):
        probe(path)
    got = decode_all(path)
    assert isinstance(got, DecodeError) and "160×90 pixels" in got.problem
    for backend in decode.available_backends():
        with pytest.raises(DecodeError, match="160×90 pixels"):
            list(iter_step_times(path, backend=backend))


@pytest.mark.parametrize("ticks", [0, 1, 2**32 - 1])
def test_durations_claimed_by_the_headers_change_nothing(tmp_path, ticks):
    """0, one tick, or 2**32 - 1 ticks (49 days of mvhd's milliseconds): the frames decide."""
    liar = tmp_path / "d.mp4"
    liar.write_bytes(claim_duration(mp4(tmp_path), ticks))
    assert probe(liar).duration >= 0
    assert decode_all(liar) == [(0, 22), (1, 59)]


def test_a_ten_year_matroska_duration_changes_nothing(tmp_path):
    path = write_video(tmp_path / "v.mkv", list(range(60)), Fraction(1, 30))
    data = path.read_bytes()
    at = data.find(b"\x44\x89\x88")  # Segment Info > Duration, an 8-byte float (ms)
    assert at > 0
    liar = tmp_path / "liar.mkv"
    claim = np.array([TEN_YEARS * 1000.0], ">f8").tobytes()
    liar.write_bytes(data[: at + 3] + claim + data[at + 11 :])
    assert probe(liar).duration == TEN_YEARS
    assert decode_all(liar) == [(0, 22), (1, 59)]


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        ((Fraction(10**9), Fraction(30), None), Fraction(30)),  # 1e9 fps claimed: skipped
        ((Fraction(0), None, Fraction(25)), Fraction(25)),  # 0 fps: skipped
        ((Fraction(-30), Fraction(30, 1001), None), Fraction(30, 1001)),
        ((Fraction(10**9), Fraction(0), None), "claims 1e+09 fps"),
        ((None, None, None), "claims none fps"),
    ],
)
def test_frame_rates_out_of_range_are_skipped_or_refused(rates, expected):
    average, guessed, base = rates
    stream = SimpleNamespace(average_rate=average, guessed_rate=guessed, base_rate=base)
    if isinstance(expected, Fraction):
        assert decode._frame_rate(stream, "v.mp4") == expected
    else:
        message = f"^v.mp4: the video stream has no usable.*{re.escape(expected)}"
        with pytest.raises(DecodeError, match=message):
            decode._frame_rate(stream, "v.mp4")


def test_a_header_claiming_a_million_fps_decodes_by_its_frames(tmp_path):
    """mdhd says the 60 frames last one tick (1/15360 s): an average of 921,600 fps."""
    liar = tmp_path / "fast.mp4"
    liar.write_bytes(claim_duration(mp4(tmp_path), 1))
    info = probe(liar)
    assert 0 < info.fps <= decode.MAX_FRAME_RATE
    assert decode_all(liar) == [(0, 22), (1, 59)]


# --- timestamps that lie ------------------------------------------------------------------------


def test_timestamps_going_backwards_drop_those_frames(tmp_path, caplog):
    path = mux_timestamps(tmp_path / "back.mkv", [0, 30, 60, 45, 90, 20, 120, 150])
    assert decode_all(path) == [(0, 0), (1, 2), (2, 4), (3, 7)]
    assert "dropped 2 frames whose time did not increase" in caplog.text


def test_repeated_timestamps_keep_the_first_frame_of_each(tmp_path):
    path = mux_timestamps(tmp_path / "repeat.mkv", [0, 30, 30, 30, 60, 60, 90])
    assert decode_all(path) == [(0, 0), (1, 4), (2, 6)]


def test_every_frame_at_one_time_is_one_frame(tmp_path):
    """All stts deltas 0: sixty frames at time 0; the first one is the video."""
    liar = tmp_path / "still.mp4"
    liar.write_bytes(frame_deltas(mp4(tmp_path), 0))
    got = decode_all(liar)
    assert isinstance(got, list) and len(got) == 1


@pytest.mark.parametrize(
    "pts",
    [
        [0, 30, TEN_YEARS * 30],  # a frame ten years on
        [0, 30, 60, 86400 * 30 + 30],  # a day and a second on
    ],
    ids=["ten years", "a day"],
)
def test_a_timestamp_jumping_past_a_day_fails_its_video(tmp_path, pts):
    got = decode_all(mux_timestamps(tmp_path / "jump.mkv", pts))
    assert isinstance(got, DecodeError), got
    assert "past the 86400 s a video may last (timestamps that jump ahead?)" in got.problem


def test_frames_lasting_longer_than_a_day_fail_their_video(tmp_path):
    """stts deltas of 2**31 ticks: 1.6 days a frame."""
    liar = tmp_path / "slow.mp4"
    liar.write_bytes(frame_deltas(mp4(tmp_path), 2**31))
    got = decode_all(liar)
    assert isinstance(got, DecodeError) and "past the 86400 s" in got.problem


def test_a_jump_within_a_day_repeats_the_frame_before_it(tmp_path):
    """Ten minutes without a frame is a still picture, not an error: 400 steps, bounded."""
    got = decode_all(mux_timestamps(tmp_path / "gap.mkv", [0, 30, 600 * 30]))
    assert isinstance(got, list) and len(got) == 401
    assert {shown for _, shown in got[1:-1]} == {1}


# --- hero extract over a folder of liars ----------------------------------------------------------


@pytest.mark.slow  # two minutes on a shared 2-core machine: ResNet-152 and SlowFast on CPU
def test_hero_extract_goes_on_past_lying_videos(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    honest = write_video(videos / "honest.mp4", list(range(60)), Fraction(1, 30))
    (videos / "huge_header.mp4").write_bytes(claim_size(mp4(tmp_path), 65535, 65535))
    mux_timestamps(videos / "backwards.mkv", [0, 30, 60, 45, 90])
    mux_timestamps(videos / "ten_years.mkv", [0, 30, TEN_YEARS * 30])
    slow = videos / "slow.mp4"
    slow.write_bytes(frame_deltas(mp4(tmp_path), 2**31))
    out = tmp_path / "out"
    args = ["extract", *map(str, sorted(videos.iterdir())), "--output", str(out)]
    with bounded(300, None):
        result = CliRunner().invoke(main, [*args, "--random-weights", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "3 written, 0 skipped (exist), 2 failed" in result.output
    written = sorted(p.name.split(".")[0] for p in out.glob("*.npz"))
    assert written == ["backwards", "honest", "huge_header"]
    errors = {e["video_id"]: e for e in read_errors(out)}
    assert sorted(errors) == ["slow", "ten_years"]
    for e in errors.values():
        assert e["stage"] == "extract" and e["error_type"] == "DecodeError"
        assert "past the 86400 s a video may last" in e["message"]
    assert str(honest) not in {e["source"] for e in errors.values()}
