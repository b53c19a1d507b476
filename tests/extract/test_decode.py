"""Tests for extract.decode: which frames each step gets, sizes, rotation, errors, backends.

The frame choice is checked three ways: against ffmpeg's own ``fps`` filter run through PyAV's
filter graph on the shared fixture videos (2D), against closed-form timestamp arithmetic on
synthetic videos whose frames show their own index (3D, several frame rates and a variable one),
and between the PyAV and decord backends. Synthetic videos are written here with PyAV.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import tracemalloc
from bisect import bisect_left
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import extract.decode as decode_module
from extract.decode import (
    DecodeError,
    StepFrames,
    available_backends,
    crop_offset,
    iter_steps,
    probe,
    scaled_size,
)
from extract.sampling import pathway_slots
from hero_data.errors import OptionError
from hero_data.grid import num_steps, select_2d

FIXTURE_VIDEOS = [
    "flipping_a_pancake.mkv",
    "video_0.mov",
    "video_90.mov",
    "video_180.mov",
    "video_270.mov",
    "unordered.mov",
]

needs_decord = pytest.mark.skipif(
    "decord" not in available_backends(), reason="decord is not installed"
)


# --- helpers ------------------------------------------------------------------------------------

# A synthetic frame k shows grey level BASE + STEP·(k % LEVELS) on its left half and
# BASE + STEP·(k // LEVELS) on its right half: flat areas survive scaling and cropping.
BASE, STEP, LEVELS = 20, 8, 28


def index_frame(k: int, width: int = 160, height: int = 90) -> np.ndarray:
    img = np.empty((height, width, 3), np.uint8)  # (H, W, 3)
    img[:, : width // 2] = BASE + STEP * (k % LEVELS)
    img[:, width // 2 :] = BASE + STEP * (k // LEVELS)
    return img


def index_of(img: np.ndarray) -> int:
    """The frame index a (scaled, maybe cropped) synthetic frame shows."""
    h, w = img.shape[:2]
    rows = slice(h // 2 - 50, h // 2 + 50)
    lo = (img[rows, w // 2 - 90 : w // 2 - 20].mean() - BASE) / STEP
    hi = (img[rows, w // 2 + 20 : w // 2 + 90].mean() - BASE) / STEP
    assert abs(lo - round(lo)) < 0.3 and abs(hi - round(hi)) < 0.3, (lo, hi)  # not a blend
    return round(lo) + LEVELS * round(hi)


def write_video(
    path: Path,
    pts: list[int],
    time_base: Fraction,
    *,
    rate: Fraction | int = 30,
    size: tuple[int, int] = (160, 90),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    picture=index_frame,
    rotation: float | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode frame k at presentation time ``pts[k]·time_base`` showing ``picture(k, w, h)``."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.time_base = time_base
        if codec == "libx264":  # lossless, with B-frames so frames are reordered
            stream.options = options or {"qp": "0", "preset": "ultrafast", "bframes": "2"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for k, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(picture(k, width, height), format="rgb24")
            frame.pts, frame.time_base = p, time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decoded(path: Path) -> tuple[list[Fraction], Fraction, list[av.VideoFrame]]:
    """(frame times from the first, end of the last frame, frames) by a plain PyAV decode."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        origin = frames[0].pts
        times = [Fraction(f.pts - origin) * f.time_base for f in frames]
        last = frames[-1]
        dur = Fraction(last.duration) * last.time_base if last.duration else 1 / stream.average_rate
    return times, times[-1] + dur, frames


def digest(img: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest() + str(img.shape)


def ffmpeg_fps(path: Path, rate: Fraction) -> list[np.ndarray]:
    """RGB frames out of ffmpeg's ``fps=rate`` filter (PyAV's filter graph), times from 0."""
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        src = graph.add_buffer(template=stream)
        fps = graph.add("fps", f"fps={rate.numerator}/{rate.denominator}")
        sink = graph.add("buffersink")
        src.link_to(fps)
        fps.link_to(sink)
        graph.configure()
        origin = None

        def drain() -> None:
            while True:
                try:
                    out.append(sink.pull().to_ndarray(format="rgb24"))
                except (av.BlockingIOError, av.EOFError):
                    return

        for frame in container.decode(stream):
            origin = frame.pts if origin is None else origin
            frame.pts -= origin
            src.push(frame)
            drain()
        src.push(None)
        drain()
    return out


def before(times: list[Fraction], cutoff: Fraction) -> int:
    """Closed form of the rule, written out again: last time < cutoff, else the first."""
    return max(bisect_left(times, cutoff) - 1, 0)


def expected_windows(times: list[Fraction], end: Fraction, interval: Fraction) -> list[list[int]]:
    count = math.ceil(end / interval)
    return [
        [before(times, i * interval + Fraction(2 * j + 1, 60)) for j in range(round(interval * 30))]
        for i in range(count)
    ]


# --- 2D choice equals ffmpeg's fps filter ------------------------------------------------------


@pytest.mark.parametrize("interval", [Fraction(3, 2), Fraction(1, 10)])
@pytest.mark.parametrize("name", FIXTURE_VIDEOS)
def test_2d_selection_equals_ffmpeg_fps_filter(shared_fixtures, name, interval):
    """Each step's 2D frame has the pixels ffmpeg's ``fps=1/L`` emits for that step.

    Compared at the source resolution: the frames :func:`select_2d` picks from the frame
    times, and ``iter_steps`` at the source's own short side (no scaling), against the filter's
    output frames. The tail: ffmpeg emits ``round(D/L)`` frames, we emit ``ceil(D/L)`` (HERO's
    step count), so ffmpeg drops a last step that is less than half covered; the common prefix
    must match and the counts differ by at most one.
    """
    path = shared_fixtures / "videos" / name
    times, end, frames = decoded(path)
    rgb = [f.to_ndarray(format="rgb24") for f in frames]
    ours = select_2d(times, end, float(interval))
    theirs = ffmpeg_fps(path, 1 / interval)
    assert len(ours) == num_steps(float(end), float(interval))
    assert abs(len(ours) - len(theirs)) <= 1
    for n in range(min(len(ours), len(theirs))):
        assert digest(rgb[ours[n]]) == digest(theirs[n]), f"step {n}"
    # iter_steps makes the same choice (rotation applied to what it returns)
    info = probe(path)
    turns = (-info.rotation // 90) % 4
    steps = list(iter_steps(path, float(interval), short_side=min(info.width, info.height)))
    assert [s.index for s in steps] == list(range(len(ours)))
    for s in steps:
        assert digest(s.image) == digest(np.rot90(rgb[ours[s.index]], turns)), f"step {s.index}"


def test_pancake_2d_frames_by_number(shared_fixtures):
    """flipping_a_pancake.mkv: 310 frames at 30 fps, D = 10.333 s -> 7 steps."""
    times, end, _ = decoded(shared_fixtures / "videos" / "flipping_a_pancake.mkv")
    assert len(times) == 310 and end == Fraction(10333, 1000)
    assert select_2d(times, end, 1.5) == [22, 67, 112, 157, 202, 247, 292]


# --- 3D windows against timestamps on synthetic videos ----------------------------------------


def check_steps(path: Path, times: list[Fraction], end: Fraction, interval: Fraction) -> None:
    """Every 2D image and window slot of ``iter_steps`` shows the frame the rule picks."""
    windows = expected_windows(times, end, interval)
    steps = list(iter_steps(path, float(interval)))
    assert [s.index for s in steps] == list(range(len(windows)))
    for s, want in zip(steps, windows, strict=True):
        assert s.window.shape == (len(want), 224, 224, 3)
        assert [index_of(w) for w in s.window] == want, f"step {s.index}"
        assert index_of(s.image) == before(times, (s.index + Fraction(1, 2)) * interval)


@pytest.mark.parametrize("rate", [24, 25, 30, 60, Fraction(30000, 1001)])
def test_window_slots_follow_timestamps(tmp_path, rate):
    rate = Fraction(rate)
    n = round(Fraction(16, 5) * rate)  # 3.2 s: two full steps and a short third
    path = write_video(tmp_path / "v.mp4", list(range(n)), 1 / rate, rate=rate)
    times, end, _ = decoded(path)
    assert times == [k / rate for k in range(n)]  # the container kept the timestamps
    assert end == n / rate
    check_steps(path, times, end, Fraction(3, 2))
    last = next(s for s in iter_steps(path) if s.index == 2)
    covered = sum(1 for j in range(45) if 3 + Fraction(2 * j + 1, 60) < end)
    assert [index_of(w) for w in last.window[covered:]] == [n - 1] * (45 - covered)


def test_window_slots_follow_timestamps_variable_frame_rate(tmp_path):
    rng = np.random.default_rng(7)
    gaps = rng.integers(5, 160, size=90)  # ms between frames, 5 to 160
    pts = [0, *np.cumsum(gaps).tolist()]
    path = write_video(tmp_path / "vfr.mkv", pts, Fraction(1, 1000))
    times, end, _ = decoded(path)
    assert times == [Fraction(p, 1000) for p in pts]
    check_steps(path, times, end, Fraction(3, 2))
    check_steps(path, times, end, Fraction(1, 2))


def test_video_shorter_than_one_step_gives_one_step(tmp_path):
    path = write_video(tmp_path / "short.mp4", list(range(10)), Fraction(1, 30))  # 0.333 s
    (step,) = iter_steps(path)
    assert step.index == 0
    assert [index_of(w) for w in step.window] == list(range(10)) + [9] * 35
    assert index_of(step.image) == 9  # the 0.75 s sample is clamped to the last frame


def test_middle_slot_is_the_2d_sample(shared_fixtures):
    """At L = 1.5 the 2D cutoff (i + ½)·1.5 is slot 22's, so the crop of one is the other."""
    for s in iter_steps(shared_fixtures / "videos" / "flipping_a_pancake.mkv"):
        left = (s.image.shape[1] - 224) // 2
        assert np.array_equal(s.window[22], s.image[:, left : left + 224])


# --- step counts, durations, seeking -------------------------------------------------------------


def test_step_count_follows_frames_not_a_lying_container(tmp_path):
    """A Matroska file whose header says 20 s but whose frames last 2 s has 2 steps."""
    path = write_video(tmp_path / "v.mkv", list(range(60)), Fraction(1, 30))
    data = path.read_bytes()
    at = data.find(b"\x44\x89\x88")  # Segment Info > Duration, an 8-byte float (ms)
    assert at > 0 and np.frombuffer(data[at + 3 : at + 11], ">f8")[0] == 2000.0
    liar = tmp_path / "liar.mkv"
    liar.write_bytes(data[: at + 3] + np.array([20000.0], ">f8").tobytes() + data[at + 11 :])
    assert probe(liar).duration == 20.0  # probe reports the claim
    steps = list(iter_steps(liar))
    assert [s.index for s in steps] == [0, 1]  # ceil(2.0 / 1.5)
    assert index_of(steps[1].image) == 59


def test_truncated_file_gives_the_steps_of_its_frames(tmp_path):
    path = write_video(tmp_path / "v.mkv", list(range(150)), Fraction(1, 30))  # 5 s
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    assert probe(cut).duration == 5.0
    _, end, _ = decoded(cut)
    assert end < 4.5
    assert len(list(iter_steps(cut))) == math.ceil(end / Fraction(3, 2)) < 4


@pytest.mark.parametrize("start", [1.5, 3.0, 4.5])
def test_start_seeks_and_matches_the_whole_decode(tmp_path, start):
    options = {"qp": "0", "preset": "ultrafast", "bframes": "2", "g": "20"}  # keyframes 0.67 s
    path = write_video(tmp_path / "v.mp4", list(range(210)), Fraction(1, 30), options=options)
    whole = {s.index: s for s in iter_steps(path)}
    part = list(iter_steps(path, start=start, end=6.0))
    first = round(start / 1.5)
    assert [s.index for s in part] == list(range(first, 4))
    for s in part:
        assert np.array_equal(s.window, whole[s.index].window)
        assert np.array_equal(s.image, whole[s.index].image)


def test_start_with_a_short_interval(tmp_path):
    options = {"qp": "0", "preset": "ultrafast", "bframes": "2", "g": "20"}
    path = write_video(tmp_path / "v.mp4", list(range(120)), Fraction(1, 30), options=options)
    whole = {s.index: s for s in iter_steps(path, 0.1)}
    part = list(iter_steps(path, 0.1, start=2.0, end=3.05))
    assert [s.index for s in part] == list(range(20, 31))
    for s in part:
        assert np.array_equal(s.window, whole[s.index].window)
        assert np.array_equal(s.image, whole[s.index].image)


def test_end_limits_the_steps(shared_fixtures):
    path = shared_fixtures / "videos" / "flipping_a_pancake.mkv"
    assert [s.index for s in iter_steps(path, end=4.6)] == [0, 1, 2, 3]
    assert [s.index for s in iter_steps(path, start=9.0, end=100.0)] == [6]
    assert list(iter_steps(path, start=15.0)) == []  # past the end: no step


# --- sizes and rotation -----------------------------------------------------------------------


def test_odd_size_scales_short_side_to_224(tmp_path):
    path = write_video(
        tmp_path / "odd.mkv",
        list(range(20)),
        Fraction(1, 30),
        size=(225, 127),
        codec="ffv1",
        pix_fmt="yuv444p",
    )
    info = probe(path)
    assert (info.width, info.height) == (225, 127)
    (step,) = iter_steps(path)
    assert step.image.shape == (224, 396, 3) and step.image.dtype == np.uint8
    assert step.window.shape == (45, 224, 224, 3) and step.window.dtype == np.uint8
    assert step.image.flags.c_contiguous and step.window.flags.c_contiguous


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(426, 240, (397, 224)), (225, 127, (396, 224)), (240, 426, (224, 397)), (50, 50, (224, 224))],
)
def test_scaled_size(width, height, expected):
    """The long side is truncated, as HERO's extractor did (426x240 -> 397, not 398)."""
    assert scaled_size(width, height) == expected


def hero_output_dim(h: int, w: int, size: int = 224) -> tuple[int, int]:
    """HERO's extractor's (height, width) after scaling, its float expression written out."""
    if h >= w:
        return int(h * size / w), size
    return size, int(w * size / h)


def test_scaled_size_and_crop_equal_the_reference_expressions():
    rng = np.random.default_rng(3)
    sizes = [(w, h) for w in range(100, 1100, 37) for h in range(90, 1000, 41)]
    sizes += [tuple(int(v) for v in rng.integers(1, 8000, size=2)) for _ in range(2000)]
    sizes += [(1920, 1080), (1280, 720), (640, 360), (480, 360), (3840, 2160), (1080, 1920)]
    for w, h in sizes:
        out_h, out_w = hero_output_dim(h, w)
        assert scaled_size(w, h) == (out_w, out_h), (w, h)
        for n in (out_w, out_h):
            assert crop_offset(n) == int((n - 224) / 2.0)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_rotation_fixtures_come_out_as_displayed(shared_fixtures, rotation):
    path = shared_fixtures / "videos" / f"video_{rotation}.mov"
    info = probe(path)
    assert info.rotation == rotation and (info.width, info.height) == (568, 320)
    (step,) = iter_steps(path)
    assert step.image.shape == ((397, 224, 3) if rotation in (90, 270) else (224, 397, 3))
    assert step.window.shape == (45, 224, 224, 3)
    # at the coded size, what comes out is the coded frame turned clockwise by `rotation`
    _, _, frames = decoded(path)
    (native,) = iter_steps(path, short_side=320)
    coded = frames[2].to_ndarray(format="rgb24")  # 0.1 s of video: the sample is the last frame
    assert np.array_equal(native.image, np.rot90(coded, k=-rotation // 90))


@pytest.mark.parametrize(
    ("matrix_angle", "clockwise", "corner"), [(90, 270, "bl"), (-90, 90, "tr")]
)
def test_display_matrix_direction(tmp_path, matrix_angle, clockwise, corner):
    """A marker in the coded top-left corner ends where a player shows it."""

    def marker(k, width, height):
        img = np.zeros((height, width, 3), np.uint8)
        img[: height // 4, : width // 4] = 255  # (H, W, 3), top-left quarter white
        return img

    path = write_video(
        tmp_path / "r.mp4",
        list(range(5)),
        Fraction(1, 30),
        size=(128, 64),
        picture=marker,
        rotation=matrix_angle,
    )
    assert probe(path).rotation == clockwise
    (step,) = iter_steps(path)
    h, w = step.image.shape[:2]
    assert (h, w) == (448, 224)  # 128×64 coded, turned a quarter
    corners = {
        "tl": step.image[: h // 8, : w // 8],
        "tr": step.image[: h // 8, -w // 8 :],
        "bl": step.image[-h // 8 :, : w // 8],
        "br": step.image[-h // 8 :, -w // 8 :],
    }
    assert {k for k, v in corners.items() if v.mean() > 200} == {corner}


# --- errors -----------------------------------------------------------------------------------


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.int16), "s16", "mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(DecodeError, match="no video stream") as e:
        probe(path)
    assert e.value.path == str(path)
    with pytest.raises(DecodeError, match="no video stream"):
        list(iter_steps(path))


@pytest.mark.parametrize("backend", ["pyav", pytest.param("decord", marks=needs_decord)])
def test_corrupted_file_raises_decode_error(shared_fixtures, backend):
    path = shared_fixtures / "videos" / "corrupted.mp4"
    with pytest.raises(DecodeError) as e:
        list(iter_steps(path, backend=backend))
    assert str(e.value).startswith(f"{path}: ")


def test_text_file_and_missing_file_raise_decode_error(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    for bad in (text, tmp_path / "missing.mp4"):
        with pytest.raises(DecodeError, match=str(bad)):
            probe(bad)
        with pytest.raises(DecodeError, match=str(bad)):
            list(iter_steps(bad))
    with pytest.raises(DecodeError, match="no such file"):
        probe(tmp_path / "missing.mp4")


def test_decode_error_pickles():
    e = pickle.loads(pickle.dumps(DecodeError("/v/a.mp4", "no video stream")))
    assert (e.path, e.problem, str(e)) == (
        "/v/a.mp4",
        "no video stream",
        "/v/a.mp4: no video stream",
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "ffmpeg"}, "unknown decoder backend"),
        ({"start": 1.0}, "whole number"),
        ({"start": -1.5}, "whole number"),
        ({"start": 3.0, "end": 3.0}, "after start"),
        ({"short_side": 0}, "short_side"),
        ({"window_fps": 0}, "window_fps"),
        ({"interval": 0.0}, "interval"),
    ],
)
def test_bad_arguments_are_rejected_when_called(kwargs, match):
    with pytest.raises(ValueError, match=match):
        iter_steps("whatever.mp4", **kwargs)


@pytest.mark.skipif("torchcodec" in available_backends(), reason="torchcodec is installed")
def test_torchcodec_backend_says_it_is_not_installed():
    assert "torchcodec" not in available_backends()
    with pytest.raises(ValueError, match="not installed"):
        iter_steps("whatever.mp4", backend="torchcodec")


# --- probe ------------------------------------------------------------------------------------


def test_probe_pancake(shared_fixtures):
    info = probe(shared_fixtures / "videos" / "flipping_a_pancake.mkv")
    assert info.video_id == "flipping_a_pancake"
    assert info.fps == 30 and isinstance(info.fps, Fraction)
    assert (info.width, info.height, info.rotation) == (426, 240, 0)
    assert info.codec == "h264" and info.has_audio
    assert info.duration == pytest.approx(10.381)  # the container's (its audio is longer)
    assert probe(shared_fixtures / "videos" / "video_0.mov", "v0").video_id == "v0"


def test_probe_keeps_an_ntsc_rate_exact(tmp_path):
    rate = Fraction(30000, 1001)
    path = write_video(tmp_path / "ntsc v#1.mp4", list(range(30)), 1 / rate, rate=rate)
    info = probe(path)
    assert info.fps == rate and not info.has_audio
    assert info.video_id == "ntsc_v_1"


# --- backends ---------------------------------------------------------------------------------


@needs_decord
@pytest.mark.parametrize("name", FIXTURE_VIDEOS)
def test_decord_gives_the_same_steps(shared_fixtures, name):
    """Same frames chosen, same rotation: pixel-equal at the source size (no scaling).

    At short side 224 each scales with its own scaler: the PyAV path with swscale's bicubic
    (as ffmpeg's scale filter), decord inside its own bundled FFmpeg (its filter's default,
    which comes out closest to bilinear), so the scaled pixels differ slightly: 0.45 to 1.0
    grey levels on average on these videos, over 99% of values within 8 (the rest on edges).
    The 90 and 270 degree fixtures scale to an odd 224x397 (long side truncated, as HERO did),
    which decord's scale-then-rotate handles worse: 2.3 grey levels on average (1.08 when the
    size was rounded to 398).
    """
    path = shared_fixtures / "videos" / name
    info = probe(path)
    native = min(info.width, info.height)
    for side in (native, 224):
        a = list(iter_steps(path, short_side=side))
        b = list(iter_steps(path, short_side=side, backend="decord"))
        assert [s.index for s in a] == [s.index for s in b]
        for x, y in zip(a, b, strict=True):
            assert x.image.shape == y.image.shape and x.window.shape == y.window.shape
            if side == native:
                assert np.array_equal(x.image, y.image) and np.array_equal(x.window, y.window)
            else:
                for ours, theirs in ((x.image, y.image), (x.window, y.window)):
                    diff = np.abs(ours.astype(int) - theirs)
                    limit = 2.5 if info.rotation in (90, 270) else 1.5
                    assert diff.mean() < limit and (diff <= 8).mean() > 0.99


@needs_decord
def test_decord_follows_timestamps_variable_frame_rate(tmp_path):
    rng = np.random.default_rng(3)
    pts = [0, *np.cumsum(rng.integers(5, 160, size=60)).tolist()]
    path = write_video(tmp_path / "vfr.mkv", pts, Fraction(1, 1000))
    times, end, _ = decoded(path)
    windows = expected_windows(times, end, Fraction(3, 2))
    steps = list(iter_steps(path, backend="decord", start=1.5))
    assert [s.index for s in steps] == list(range(1, len(windows)))
    for s in steps:
        assert [index_of(w) for w in s.window] == windows[s.index]


# --- converting only the slots the models read --------------------------------------------------


@pytest.mark.parametrize("sampling", ["hero", "uniform"])
@pytest.mark.parametrize("rate", [20, 30, 60])
def test_sampling_converts_only_the_slots_slowfast_reads(tmp_path, monkeypatch, sampling, rate):
    """With ``sampling`` the used slots and the image are bit-identical to a full conversion,
    the others are zero, and fewer frames are converted."""
    path = write_video(tmp_path / "v.mp4", list(range(rate * 4)), Fraction(1, rate), rate=rate)
    converted = []
    image = decode_module._Frame.image

    def counting(self, side):
        if side not in self._images:
            converted.append(self.time)
        return image(self, side)

    monkeypatch.setattr(decode_module._Frame, "image", counting)
    full = list(iter_steps(path))
    n_full = len(converted)
    converted.clear()
    lean = list(iter_steps(path, sampling=sampling))
    assert len(lean) == len(full) == 3
    slots = pathway_slots(sampling, 45, Fraction(rate))
    used = sorted(set(slots.fast) | set(slots.slow))
    unused = sorted(set(range(45)) - set(used))
    for a, b in zip(full, lean, strict=True):
        assert a.times == b.times and np.array_equal(a.image, b.image)
        assert np.array_equal(a.window[used], b.window[used])
        assert not b.window[unused].any()
        assert np.array_equal(a.window[list(slots.fast)], b.window[list(slots.fast)])
    assert len(converted) < n_full
    if sampling == "hero" and rate == 30:
        assert len(used) == 23  # every other slot, 0 … 44
        assert len(converted) <= 3 * (23 + 1)


# --- a second size of the 2D sample -------------------------------------------------------------


@pytest.mark.parametrize("name", ["video_0.mov", "flipping_a_pancake.mkv", "video_90.mov"])
def test_a_second_image_side_is_that_sides_own_decode(shared_fixtures, name):
    """``image_sides=(288,)`` (CLIP RN50x4) gives each step's 2D sample scaled from the decoded
    frame to short side 288, bit for bit what a decode at short side 288 gives, and leaves the
    224 image and window as they were."""
    path = shared_fixtures / "videos" / name
    both = list(iter_steps(path, image_sides=(288, 224), end=12.0))
    at_224 = list(iter_steps(path, end=12.0))
    at_288 = list(iter_steps(path, short_side=288, end=12.0))
    assert len(both) == len(at_224) == len(at_288) >= 1
    for b, s, big in zip(both, at_224, at_288, strict=True):
        assert set(b.extra) == {288} and s.extra == {}
        assert min(b.extra[288].shape[:2]) == 288
        assert np.array_equal(b.extra[288], big.image), f"step {b.index}"
        assert np.array_equal(b.image, s.image) and np.array_equal(b.window, s.window)
        assert b.times == s.times


def test_a_second_image_side_is_refused_where_decord_scales(shared_fixtures):
    pytest.importorskip("decord")
    with pytest.raises(OptionError, match="decord backend scales frames while decoding"):
        iter_steps(shared_fixtures / "videos" / "video_0.mov", backend="decord", image_sides=[288])
    with pytest.raises(ValueError, match="image_sides must be positive ints"):
        iter_steps(shared_fixtures / "videos" / "video_0.mov", image_sides=[0])


def test_sampling_is_checked():
    with pytest.raises(ValueError, match="sampling"):
        iter_steps("x.mp4", sampling="every-frame")


# --- memory -----------------------------------------------------------------------------------


def test_iterating_a_long_video_holds_a_bounded_number_of_frames(tmp_path):
    """3 minutes of video (5400 frames): the decode's peak traced memory stays at a few steps.

    A small ``short_side`` keeps it quick; holding every frame or every step would need
    tens of MB at this size, the streaming decode needs a window or two.
    """
    path = write_video(
        tmp_path / "long.mp4",
        list(range(5400)),
        Fraction(1, 30),
        size=(64, 36),
        picture=lambda k, w, h: np.full((h, w, 3), k % 256, np.uint8),
        options={"preset": "ultrafast"},
    )
    tracemalloc.start()
    try:
        count = 0
        for step in iter_steps(path, short_side=32):
            assert isinstance(step, StepFrames)
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 120
    window_bytes = 45 * 32 * 32 * 3
    # measured 0.3 MB; holding every frame would take 5400 × 32×56×3 = 29 MB
    assert peak < 4 * window_bytes + 500_000, peak
