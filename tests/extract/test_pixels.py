"""The torch pixel path (extract.pixels) against swscale, and features through it.

The same torch code runs on CUDA; these tests run it on the CPU.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from av.video.reformatter import Interpolation, VideoReformatter

from extract.decode import StepPlanes, _rgb_scaler, iter_steps, scaled_size
from extract.extractor import ExtractConfig, FeatureExtractor, planes_to_inputs
from extract.pixels import RGBFrame, convert, resolve_pixels, yuv_frame
from extract.sampling import pathway_slots
from extract.synthetic import make_video

CPU = torch.device("cpu")
FIXTURES = ["flipping_a_pancake.mkv", "video_0.mov", "video_90.mov", "video_180.mov"]


def frames(path, every: int = 9, limit: int = 60) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return [f for k, f in enumerate(container.decode(video=0)) if k % every == 0 and k < limit]


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def bars(tmp_path_factory):
    """640x360, scaled to 398x224: an even output width (as 16:9 and 4:3 videos have)."""
    path = tmp_path_factory.mktemp("pixels") / "bars.mp4"
    return make_video(path, duration=2.0, width=640, height=360, preset="veryfast")


@pytest.mark.parametrize("name", ["flipping_a_pancake.mkv", "video_0.mov"])
def test_torch_equals_swscale_bicubic_at_odd_widths(shared_fixtures, name):
    """Odd output widths (397 here): swscale interpolates chroma at full width, as we do;
    measured mean differences 0.007-0.009 grey levels."""
    reformatter = VideoReformatter()
    for f in frames(shared_fixtures / "videos" / name):
        size = scaled_size(f.width, f.height)
        ref = reformatter.reformat(
            f, *size, format="rgb24", interpolation=Interpolation.BICUBIC
        ).to_ndarray()
        ours = convert([yuv_frame(f, 0)], size, CPU)[0].numpy()
        assert ours.shape == ref.shape
        assert mean_diff(ours, ref) < 0.05


def flat_frame(width: int, height: int, yuv: tuple[int, int, int], fmt: str, colorspace: int):
    frame = av.VideoFrame(width, height, fmt)
    for plane, value in zip(frame.planes, yuv, strict=True):
        plane.update(np.full(plane.buffer_size, value, np.uint8))
    frame.colorspace = colorspace
    return frame


@pytest.mark.parametrize("fmt", ["yuv420p", "yuvj420p"])
@pytest.mark.parametrize("colorspace", [2, 1, 4, 7, 9])
def test_flat_colours_at_even_widths_equal_swscale(fmt, colorspace):
    """Flat frames pin swscale's packed-RGB table arithmetic: 200 random colours, scaled to an
    even width, come out identical in every channel (limited-range grey Y = 100 gives 96, not
    the exact matrix's 98; Y = 235 gives 253)."""
    rng = np.random.default_rng(colorspace)
    colours = [(100, 128, 128), (235, 128, 128), *map(tuple, rng.integers(0, 256, (200, 3)))]
    reformatter = VideoReformatter()
    flats = [flat_frame(64, 36, c, fmt, colorspace) for c in colours]
    ref = np.stack(
        [
            reformatter.reformat(
                f, 40, 22, format="rgb24", interpolation=Interpolation.BICUBIC
            ).to_ndarray()[11, 20]
            for f in flats
        ]
    )
    ours = convert([yuv_frame(f, 0) for f in flats], (40, 22), CPU)[:, 11, 20].numpy()
    np.testing.assert_array_equal(ours, ref)
    if fmt == "yuv420p" and colorspace == 2:
        assert ours[0].tolist() == [96] * 3 and ours[1].tolist() == [253] * 3


def test_torch_equals_swscale_at_even_widths(bars):
    """Even output widths (398 here, 16:9 sources): swscale's default output shares each
    chroma sample between two pixels and converts by table (not the exact matrix, 1-2 levels
    darker); we do the same. Measured mean 0.005-0.010 grey levels, max 3-4."""
    reformatter = VideoReformatter()
    for f in frames(bars):
        size = scaled_size(f.width, f.height)
        assert size == (398, 224)
        ours = convert([yuv_frame(f, 0)], size, CPU)[0].numpy()
        ref = reformatter.reformat(
            f, *size, format="rgb24", interpolation=Interpolation.BICUBIC
        ).to_ndarray()
        assert mean_diff(ours, ref) < 0.05
        assert np.abs(ours.astype(np.int16) - ref).max() <= 6


@pytest.fixture(scope="module")
def bars_720p(tmp_path_factory):
    path = tmp_path_factory.mktemp("pixels") / "bars720.mp4"
    return make_video(path, duration=2.0, width=1280, height=720, preset="veryfast")


@pytest.mark.parametrize("source", ["pancake", "video_0", "bars", "bars_720p"])
def test_rgb_frames_scale_as_swscale_scales_rgb(request, shared_fixtures, source):
    """NVDEC's frames arrive as full-size RGB (:class:`RGBFrame`); the torch path scales each
    channel with swscale's bicubic filter. Against swscale scaling the same RGB (the
    ``torchcodec`` backend's scaler), at odd (397) and even (398) widths, rotation included:
    measured mean 0.014-0.047 grey levels, max 3."""
    videos = shared_fixtures / "videos"
    path = {"pancake": videos / "flipping_a_pancake.mkv", "video_0": videos / "video_0.mov"}.get(
        source
    ) or request.getfixturevalue(source)
    scale = _rgb_scaler()
    for f in frames(path):
        rgb = f.to_ndarray(format="rgb24")  # (H, W, 3)
        for turns in (0, 1):
            shown = np.ascontiguousarray(np.rot90(rgb, turns))
            ref = scale(shown, 224)
            size = scaled_size(shown.shape[1], shown.shape[0])
            frame = RGBFrame(torch.from_numpy(shown))
            assert frame.display_size == (shown.shape[1], shown.shape[0])
            ours = convert([frame], size, CPU)[0].numpy()
            assert ours.shape == ref.shape
            assert mean_diff(ours, ref) < 0.1
            assert np.abs(ours.astype(np.int16) - ref).max() <= 6


def test_rgb_frames_batch_and_keep_their_own_pixels(bars):
    """Frames converted together come out as each does alone, and by key: RGB frames never
    batch with YUV planes (their keys differ)."""
    rgbs = [f.to_ndarray(format="rgb24") for f in frames(bars, every=5, limit=20)]
    batch = [RGBFrame(torch.from_numpy(x)) for x in rgbs]
    size = scaled_size(640, 360)
    together = convert(batch, size, CPU, chunk=3)
    for k, frame in enumerate(batch):
        assert torch.equal(together[k], convert([frame], size, CPU)[0])
    planes = yuv_frame(frames(bars, limit=1)[0], 0)
    assert batch[0].key() == batch[1].key() != planes.key()
    assert batch[0].nbytes == 640 * 360 * 3


@pytest.mark.parametrize("name", FIXTURES)
def test_planes_steps_convert_to_the_swscale_steps(shared_fixtures, name):
    """``pixels="torch"`` yields the same frames, unconverted; converted they match the
    swscale path's image and used window slots, rotation included."""
    path = shared_fixtures / "videos" / name
    ours = list(iter_steps(path, sampling="hero", pixels="torch"))
    ref = list(iter_steps(path, sampling="hero"))
    assert len(ours) == len(ref)
    for p, s in zip(ours, ref, strict=True):
        assert isinstance(p, StepPlanes) and p.times == s.times
        img = convert([p.image], p.size, CPU)[0].numpy()
        assert img.shape == s.image.shape
        assert mean_diff(img, s.image) < 0.05
        assert [j for j, f in enumerate(p.window) if f is None] == [
            j for j in range(len(s.window)) if not s.window[j].any()
        ]


def test_pixels_setting():
    assert resolve_pixels("auto", torch.device("cpu")) == "swscale"
    assert resolve_pixels("auto", torch.device("cuda")) == "torch"
    assert resolve_pixels("torch", torch.device("cpu")) == "torch"
    with pytest.raises(ValueError, match="pixels"):
        resolve_pixels("gpu", CPU)
    with pytest.raises(ValueError, match="pixels"):
        ExtractConfig(pixels="gpu")
    with pytest.raises(ValueError, match="pyav"):
        list(iter_steps("x.mp4", pixels="torch", backend="decord"))


def test_model_inputs_from_planes(bars):
    """The batch the models get from raw planes: each step's image and its 32 fast frames
    (centre crops of the slots the rule names), on the device, close to swscale's."""
    planes = list(iter_steps(bars, sampling="hero", pixels="torch"))
    frames = list(iter_steps(bars, sampling="hero"))
    by_side, fast = planes_to_inputs(planes, "hero", CPU)
    images = by_side[224]
    assert images.shape == (2, 224, 398, 3) and fast.shape == (2, 32, 224, 224, 3)
    assert images.dtype == fast.dtype == torch.uint8
    for k, s in enumerate(frames):
        assert mean_diff(images[k].numpy(), s.image) < 0.05
        slots = pathway_slots("hero", 45, s.times.frame_rate)
        assert mean_diff(fast[k].numpy(), s.window[list(slots.fast)]) < 0.05


@pytest.mark.slow
def test_features_through_torch_pixels_agree(tmp_path, bars):
    """Same seeded random weights, both pixel paths, the even-width video: cosine >= 0.999
    per step for both models."""
    a = FeatureExtractor(ExtractConfig(device="cpu", random_weights=True, batch_size=2))
    b = FeatureExtractor(
        ExtractConfig(device="cpu", random_weights=True, batch_size=2, pixels="torch"),
        modules=a.models,
    )
    assert a.pixels == "swscale" and b.pixels == "torch"
    fa, fb = a.extract(bars), b.extract(bars)
    assert fa.num_steps == fb.num_steps == 2
    for x, y in ((fa["resnet"], fb["resnet"]), (fa["slowfast"], fb["slowfast"])):
        x, y = x.astype(np.float32), y.astype(np.float32)
        cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
        assert cos.min() >= 0.999, cos


def test_planes_with_start_and_end(bars):
    """A window of the video through the planes path: the same steps and frames as swscale's."""
    ours = list(iter_steps(bars, start=0.0, end=1.5, sampling="uniform", pixels="torch"))
    ref = list(iter_steps(bars, start=0.0, end=1.5, sampling="uniform"))
    assert [p.times for p in ours] == [s.times for s in ref] and len(ours) == 1


def test_a_small_planes_budget_still_delivers_every_step(bars):
    """The byte-bounded queue ahead of the models never stalls: with a budget below one step
    it hands steps over one at a time."""
    from extract.extractor import _planes_bytes, _Prefetch

    steps = iter_steps(bars, sampling="hero", pixels="torch")
    got = list(_Prefetch(steps, 32, None, "bars", _planes_bytes, 1))
    assert [s.index for s in got] == [0, 1]
    assert all(_planes_bytes(s) > 0 for s in got)
