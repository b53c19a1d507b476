"""NVDEC decoding (extract.nvdec): choosing it, falling back, and its frames against the CPU path.

The selection and the fallbacks run here on the CPU, with real videos; the tests that decode
with NVDEC are marked ``gpu`` and also need torchcodec (not in the lock: docs/extraction.md).
"""

from __future__ import annotations

import logging
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from extract import decode, nvdec
from extract.config import DECODERS, ExtractConfig
from extract.decode import DecodeError, StepPlanes, iter_steps
from extract.extractor import FeatureExtractor, planes_to_inputs
from extract.nvdec import NvdecUnavailable, resolve_decoder, unsupported_codec
from extract.pixels import RGBFrame, YUVFrame
from extract.sampling import pathway_slots, sampling_plan
from extract.synthetic import make_video
from hero_data.errors import HeroError

CPU = torch.device("cpu")
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _forget_told(monkeypatch):
    """Each test sees the once-per-process log lines afresh."""
    monkeypatch.setattr(nvdec, "_told", set())


def test_the_names_agree_and_auto_is_the_default():
    assert DECODERS == nvdec.DECODERS
    assert ExtractConfig().decoder == "auto"


def test_cpu_is_cpu_whatever_is_installed():
    assert resolve_decoder("cpu", CUDA, "torch") == "cpu"
    assert resolve_decoder("cpu", CPU, "swscale") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_auto_without_cuda_decodes_on_the_cpu_and_says_why_once(caplog):
    with caplog.at_level(logging.INFO, logger="extract.nvdec"):
        assert resolve_decoder("auto", CUDA, "torch") == "cpu"
        assert resolve_decoder("auto", CUDA, "torch") == "cpu"
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "decoding on the CPU: CUDA is not available (torch.cuda.is_available() is False)"
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize(
    ("device", "problem"),
    [
        (CUDA, "CUDA is not available"),
        (CPU, "the extraction device is 'cpu' (CUDA is not available here); NVDEC needs a CUDA"),
    ],
)
def test_nvdec_asked_for_without_cuda_is_one_clear_error(device, problem):
    with pytest.raises(NvdecUnavailable, match=r"decoder 'nvdec' cannot be used: ") as e:
        resolve_decoder("nvdec", device, "torch")
    assert problem in str(e.value)
    assert isinstance(e.value, HeroError) and e.value.key == "decoder"


def test_nvdec_needs_torch_pixels_whatever_is_installed():
    """Checked first: swscale pixels are converted on the CPU, NVDEC's frames are on the GPU."""
    with pytest.raises(NvdecUnavailable, match="pixels is 'swscale'; NVDEC frames stay on the GPU"):
        resolve_decoder("nvdec", CUDA, "swscale")
    assert resolve_decoder("auto", CUDA, "swscale") == "cpu"
    with pytest.raises(ValueError, match="decoder must be one of"):
        resolve_decoder("gpu", CUDA, "torch")


def _package(root: Path, decoders_body: str) -> None:
    """A ``torchcodec`` package on ``root`` whose ``torchcodec.decoders`` runs ``decoders_body``
    when imported."""
    (root / "torchcodec" / "decoders").mkdir(parents=True)
    (root / "torchcodec" / "__init__.py").write_text("")
    (root / "torchcodec" / "decoders" / "__init__.py").write_text(decoders_body)


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("torchcodec") is not None,
    reason="torchcodec is installed",
)
def test_what_is_missing_with_cuda_but_no_usable_torchcodec(tmp_path, monkeypatch):
    """On a CUDA machine: torchcodec not installed, then installed without FFmpeg's libraries
    (its import fails, as torchcodec's does when it cannot load libtorchcodec)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    why = nvdec.missing(CUDA)
    assert why == f"torchcodec is not installed ({nvdec.INSTALL_HINT})"
    with pytest.raises(NvdecUnavailable, match="torchcodec is not installed"):
        resolve_decoder("nvdec", CUDA, "torch")
    _package(
        tmp_path,
        'raise RuntimeError("Could not load libtorchcodec. Likely causes:\\n  1. FFmpeg ...")',
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert nvdec.missing(CUDA) == (
            "torchcodec is installed but does not load: Could not load libtorchcodec. Likely "
            "causes:"
        )
        assert resolve_decoder("auto", CUDA, "torch") == "cpu"
    finally:  # later tests must not find this package imported
        for name in [m for m in sys.modules if m.split(".")[0] == "torchcodec"]:
            del sys.modules[name]


def test_the_codec_table():
    for codec in ("h264", "hevc", "av1", "vp9", "vp8", "mpeg4"):
        assert unsupported_codec(codec) is None
    why = unsupported_codec("mpeg2video")
    assert why == (
        "codec 'mpeg2video' is not one torchcodec decodes with NVDEC "
        "(those are: h264, hevc, av1, vp9, vp8, mpeg4)"
    )


def test_a_config_refuses_nvdec_where_it_cannot_be():
    with pytest.raises(HeroError, match="decoder nvdec decodes on the GPU: it needs a CUDA") as e:
        ExtractConfig(decoder="nvdec", device="cpu")
    assert e.value.key == "decoder"
    with pytest.raises(HeroError, match="pixels must be torch or auto, not swscale") as e:
        ExtractConfig(decoder="nvdec", pixels="swscale")
    assert e.value.key == "decoder"
    with pytest.raises(HeroError, match="decoder must be one of auto, cpu, nvdec, got 'gpu'"):
        ExtractConfig(decoder="gpu")
    assert ExtractConfig(decoder="nvdec", device="cuda:1").decoder == "nvdec"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_the_extractor_refuses_nvdec_before_loading_weights(tmp_path):
    """The decoder is checked first: the missing weight files are never looked at."""
    cfg = ExtractConfig(decoder="nvdec", resnet_weights=str(tmp_path / "missing.pth"))
    with pytest.raises(NvdecUnavailable, match="extraction device is 'cpu'"):
        FeatureExtractor(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_iter_steps_refuses_nvdec_when_called_and_auto_decodes_on_the_cpu(shared_fixtures):
    path = shared_fixtures / "videos" / "flipping_a_pancake.mkv"
    with pytest.raises(NvdecUnavailable):
        iter_steps(path, pixels="torch", decoder="nvdec")
    with pytest.raises(NvdecUnavailable, match="pixels is 'swscale'"):
        iter_steps(path, decoder="nvdec")
    auto = list(iter_steps(path, sampling="hero", pixels="torch", decoder="auto"))
    cpu = list(iter_steps(path, sampling="hero", pixels="torch"))
    assert [s.times for s in auto] == [s.times for s in cpu]
    assert all(isinstance(s.image, YUVFrame) for s in auto)


@pytest.fixture(scope="module")
def mpeg2(tmp_path_factory):
    """A codec torchcodec never gives NVDEC."""
    path = tmp_path_factory.mktemp("nvdec") / "v.mpg"
    return make_video(path, duration=2.0, fps=25, codec="mpeg2video")


def _frames(path: Path, fallback: bool) -> list:
    cutoff = Fraction(1, 60)
    return list(decode._nvdec_frames(str(path), Fraction(0), cutoff, "cuda", fallback))


def test_a_codec_nvdec_does_not_take_goes_to_the_cpu_under_auto(mpeg2, caplog):
    """Decided from the codec name before any GPU decoder is opened, so it runs here: the
    frames are PyAV's (planes), and the log says why, once for every such video."""
    with caplog.at_level(logging.INFO):
        ours = _frames(mpeg2, fallback=True)
        again = _frames(mpeg2, fallback=True)
    pyav = list(decode._pyav_frames(str(mpeg2), Fraction(0), Fraction(1, 60), planes=True))
    assert [f.time for f in ours[1:]] == [f.time for f in pyav[1:]] == [f.time for f in again[1:]]
    assert ours[0] == pyav[0]  # the stream's info
    assert len(ours) == 51
    image = ours[5].image(224)
    assert isinstance(image, YUVFrame) and np.array_equal(image.y, pyav[5].image(224).y)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    why = unsupported_codec("mpeg2video")
    assert warned == [f"NVDEC: {why}: such videos are decoded on the CPU"]
    per_video = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert per_video == [f"{mpeg2}: decoding on the CPU, not NVDEC: {why}"] * 2


def test_a_codec_nvdec_does_not_take_fails_its_video_under_nvdec(mpeg2):
    with pytest.raises(DecodeError, match=r"v\.mpg: NVDEC cannot decode it: codec 'mpeg2video'"):
        _frames(mpeg2, fallback=False)


@pytest.mark.parametrize("name", ["video_180.mov"])
def test_a_rotation_torchcodec_may_not_show_goes_to_the_cpu(shared_fixtures, name):
    path = shared_fixtures / "videos" / name
    assert len(_frames(path, fallback=True)) > 1
    with pytest.raises(DecodeError, match="a 180° rotation"):
        _frames(path, fallback=False)


# --- with torchcodec installed ------------------------------------------------------------------


def _torchcodec_loads() -> bool:
    import importlib.util

    if importlib.util.find_spec("torchcodec") is None:
        return False
    try:
        import torchcodec.decoders  # noqa: F401  # loads FFmpeg's libraries
    except Exception:
        return False
    return True


CPU_DECODER_BOUND = 2.5
"""Grey levels, as :data:`MEAN_DIFF_BOUND`, for torchcodec's CPU decoder: measured 1.15-2.0
(torchcodec 0.17.0, Debian's FFmpeg 5.1, 2026-12-06; 2.0 for the 50×50 video scaled up)."""


@pytest.mark.skipif(not _torchcodec_loads(), reason="torchcodec is not installed, or not loadable")
@pytest.mark.parametrize(
    "name",
    ["flipping_a_pancake.mkv", "video_0.mov", "video_90.mov", "video_270.mov", "unordered.mov"],
)
def test_the_nvdec_path_with_torchcodecs_cpu_decoder_matches_the_cpu_path(shared_fixtures, name):
    """All of the NVDEC path but NVDEC itself, on a machine without a GPU: torchcodec's decoder
    opened on the CPU instead of CUDA, its frames as :class:`RGBFrame`, then the same steps,
    frame times and model inputs as the CPU path."""
    path = shared_fixtures / "videos" / name
    ours = list(
        decode._iterate(
            path,
            1.5,
            0.0,
            None,
            "pyav",
            224,
            30,
            pixels=True,
            sampling="hero",
            planes=True,
            nvdec=("cpu", False),
        )
    )
    cpu = list(iter_steps(path, sampling="hero", pixels="torch"))
    assert len(ours) == len(cpu) > 0
    for o, c in zip(ours, cpu, strict=True):
        assert isinstance(o, StepPlanes) and isinstance(o.image, RGBFrame)
        assert (o.index, o.times, o.size) == (c.index, c.times, c.size)
        assert [f is None for f in o.window] == [f is None for f in c.window]
    for k in range(0, len(ours), 4):
        o_img, o_fast = planes_to_inputs(ours[k : k + 4], "hero", CPU)
        c_img, c_fast = planes_to_inputs(cpu[k : k + 4], "hero", CPU)
        o_img, c_img = o_img[224], c_img[224]
        for a, b in ((o_img, c_img), (o_fast, c_fast)):
            assert a.shape == b.shape
            assert (a.float() - b.float()).abs().mean().item() <= CPU_DECODER_BOUND


# --- on a GPU, with torchcodec ------------------------------------------------------------------

GPU_VIDEOS = ["flipping_a_pancake.mkv", "video_0.mov", "video_90.mov", "video_270.mov"]
MEAN_DIFF_BOUND = 2.5
"""Grey levels, mean over a batch's images or fast crops, between the NVDEC path and the CPU
torch path. Not measured on a GPU yet: torchcodec's RGB conversion emulated on the CPU came
out 0.55-1.64 levels from the CPU path (docs/extraction.md); the rest is margin."""


def _torchcodec():
    pytest.importorskip("torchcodec.decoders", reason="torchcodec is not installed")


@pytest.mark.gpu
@pytest.mark.parametrize("name", GPU_VIDEOS)
def test_nvdec_steps_match_the_cpu_path(shared_fixtures, name):
    """Same steps, the same source frames (times) in every slot, so the same sampling plan;
    the model inputs within :data:`MEAN_DIFF_BOUND` of the CPU path's."""
    _torchcodec()
    path = shared_fixtures / "videos" / name
    gpu = list(iter_steps(path, sampling="hero", pixels="torch", decoder="nvdec", device=CUDA))
    cpu = list(iter_steps(path, sampling="hero", pixels="torch"))
    assert len(gpu) == len(cpu) > 0
    for g, c in zip(gpu, cpu, strict=True):
        assert isinstance(g, StepPlanes) and isinstance(g.image, RGBFrame)
        assert g.image.rgb.device.type == "cuda"
        assert (g.index, g.times, g.size) == (c.index, c.times, c.size)
        assert [f is None for f in g.window] == [f is None for f in c.window]
    plan = sampling_plan(path, sampling="hero")["steps"]
    for g, step in zip(gpu, plan, strict=True):
        slots = pathway_slots("hero", len(g.times.window_times), g.times.frame_rate)
        assert step["resnet"] == float(g.times.image_time)
        assert step["slowfast_fast"] == [float(g.times.window_times[j]) for j in slots.fast]
    for k in range(0, len(gpu), 4):
        g_img, g_fast = planes_to_inputs(gpu[k : k + 4], "hero", CUDA)
        c_img, c_fast = planes_to_inputs(cpu[k : k + 4], "hero", CUDA)
        g_img, c_img = g_img[224], c_img[224]
        for a, b in ((g_img, c_img), (g_fast, c_fast)):
            assert a.shape == b.shape
            diff = (a.float() - b.float()).abs().mean().item()
            assert diff <= MEAN_DIFF_BOUND, diff


@pytest.mark.gpu
def test_nvdec_extracts_a_window_of_a_video(tmp_path):
    """Through the extractor, from a start: the rows of [3, 9) s as NVDEC decodes them."""
    _torchcodec()
    path = make_video(tmp_path / "v.mp4", duration=12.0, width=640, height=360, preset="veryfast")
    cfg = ExtractConfig(decoder="nvdec", device="cuda", random_weights=True, batch_size=4)
    ex = FeatureExtractor(cfg)
    assert ex.decoder == "nvdec" and ex.describe()["decode"] == "nvdec"
    features = ex.extract(path, start=3.0, end=9.0)
    assert features.first_step == 2 and features.num_steps == 4
    assert np.isfinite(features["slowfast"].astype(np.float32)).all()
