"""Feature extraction end to end on the real fixture videos, and `hero extract`.

Random weights (nothing can be downloaded here), real decode and model code on CPU.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from extract.decode import DecodeError, iter_steps, probe
from extract.extractor import ExtractConfig, FeatureExtractor, npz_name, write_npz
from extract.synthetic import make_video
from hero_data.writer import read_errors
from pipelines.cli.main import main

GOOD = [
    "flipping_a_pancake.mkv",
    "video_0.mov",
    "video_90.mov",
    "video_180.mov",
    "video_270.mov",
    "unordered.mov",
]


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor(ExtractConfig(device="cpu", random_weights=True, batch_size=4))


@pytest.fixture(scope="module")
def features(extractor, shared_fixtures):
    videos = shared_fixtures / "videos"
    return {name: extractor.extract(videos / name) for name in GOOD}


@pytest.mark.parametrize("name", GOOD)
def test_fixture_videos_extract(features, shared_fixtures, name):
    f = features[name]
    info = probe(shared_fixtures / "videos" / name)
    assert f.num_steps == math.ceil(info.duration / 1.5) >= 1
    assert f["resnet"].shape == (f.num_steps, 2048) and f["resnet"].dtype == np.float16
    assert f["slowfast"].shape == (f.num_steps, 2304) and f["slowfast"].dtype == np.float16
    norms = np.linalg.norm(f["resnet"].astype(np.float32), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=2e-3)  # unit rows, to float16 precision
    assert np.isfinite(f["slowfast"].astype(np.float32)).all()


def test_corrupted_video_fails_clearly(extractor, shared_fixtures):
    bad = shared_fixtures / "videos" / "corrupted.mp4"
    with pytest.raises(DecodeError, match=r"corrupted\.mp4"):
        extractor.extract(bad)


def test_features_do_not_depend_on_batching(features, shared_fixtures):
    """On CPU a step's features are bit-identical whatever it is batched with."""
    one = FeatureExtractor(ExtractConfig(device="cpu", random_weights=True, batch_size=1))
    f = one.extract(shared_fixtures / "videos" / "flipping_a_pancake.mkv")
    g = features["flipping_a_pancake.mkv"]  # batch_size=4
    assert np.array_equal(f["resnet"], g["resnet"]) and np.array_equal(f["slowfast"], g["slowfast"])


def test_a_window_equals_the_same_rows_of_the_whole_video(extractor, tmp_path):
    video = make_video(tmp_path / "v.mp4", duration=10.0, width=160, height=90)
    whole = extractor.extract(video)
    part = extractor.extract(video, start=4.5, end=9.0)
    assert whole.num_steps == 7 and part.first_step == 3 and part.num_steps == 3
    assert np.array_equal(part["resnet"], whole["resnet"][3:6])
    assert np.array_equal(part["slowfast"], whole["slowfast"][3:6])


def test_converting_only_used_slots_leaves_features_unchanged(monkeypatch, tmp_path, extractor):
    """The extractor converts only the window slots SlowFast reads: the model inputs and
    features are bit-identical to those of a decode that converts all 45."""
    import extract.extractor as extractor_module

    video = make_video(tmp_path / "v.mp4", duration=4.5, width=160, height=90)
    ex, sampling = extractor, extractor.config.sampling
    steps = list(extractor_module.iter_steps(video, sampling=sampling))
    every = list(extractor_module.iter_steps(video))
    for a, b in zip(steps, every, strict=True):
        assert np.array_equal(ex.fast_frames(a), ex.fast_frames(b))
        assert np.array_equal(a.image, b.image)
    lean = ex.extract(video)
    real = extractor_module.iter_steps

    def convert_everything(*args, sampling=None, **kwargs):
        return real(*args, **kwargs)

    monkeypatch.setattr(extractor_module, "iter_steps", convert_everything)
    full = ex.extract(video)
    assert lean.num_steps == full.num_steps == 3
    assert np.array_equal(lean["resnet"], full["resnet"])
    assert np.array_equal(lean["slowfast"], full["slowfast"])


def test_npz_names_and_contents(tmp_path, features):
    a, b = tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"
    assert npz_name(a) != npz_name(b)
    assert npz_name(a) == npz_name(tmp_path / "a" / ".." / "a" / "clip.mp4")
    assert npz_name(a).startswith("clip.") and npz_name(a).endswith(".npz")
    target = tmp_path / npz_name(a)
    f = features["video_90.mov"]
    write_npz(target, f, str(a))
    with np.load(target) as z:
        assert np.array_equal(z["resnet"], f["resnet"]) and np.array_equal(
            z["slowfast"], f["slowfast"]
        )
        assert float(z["frame_interval"]) == 1.5 and str(z["source"]) == str(a)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_hero_extract_cli(tmp_path, shared_fixtures):
    videos = shared_fixtures / "videos"
    out = tmp_path / "out"
    args = [
        "extract",
        str(videos / "video_0.mov"),
        str(videos / "video_90.mov"),
        str(videos / "corrupted.mp4"),
        "--output",
        str(out),
        "--random-weights",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "2 written, 0 skipped (exist), 1 failed" in result.output
    files = sorted(p.name for p in out.glob("*.npz"))
    assert len(files) == 2 and files[0].startswith("video_0.")
    errors = read_errors(out)
    assert [(e["video_id"], e["stage"]) for e in errors] == [("corrupted", "extract")]
    assert "corrupted.mp4" in errors[0]["message"]
    again = CliRunner().invoke(main, [*args, "--strict"])
    assert again.exit_code == 1  # the corrupted video fails again
    assert "0 written, 2 skipped (exist), 1 failed" in again.output


def test_hero_extract_without_weights_names_the_files(tmp_path, monkeypatch, shared_fixtures):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    video = shared_fixtures / "videos" / "video_0.mov"
    result = CliRunner().invoke(main, ["extract", str(video), "--output", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "resnet152-394f9c45.pth" in result.output and "Traceback" not in result.output


def test_describe_is_json(extractor):
    d = extractor.describe()
    json.dumps(d)
    assert d["weights"]["resnet"]["sha256"] == "random" and d["frame_interval"] == 1.5


def test_hero_extract_any_feature_set(tmp_path, shared_fixtures, features):
    """CLIP ViT-B/32 + SlowFast from one decode: one array per name, SlowFast's rows those of
    the default set (the same frames and seeded weights, whatever runs beside it)."""
    from extract.features import feature_set

    video = shared_fixtures / "videos" / "video_0.mov"
    out = tmp_path / "out"
    args = ["extract", str(video), "--output", str(out), "--random-weights", "--device", "cpu"]
    result = CliRunner().invoke(main, [*args, "--features", "clip_vit_b32,slowfast"])
    assert result.exit_code == 0, result.output
    (npz,) = out.glob("*.npz")
    with np.load(npz) as z:
        assert z.files == ["clip_vit_b32", "slowfast", "frame_interval", "source"]
        assert z["clip_vit_b32"].shape == (1, 512) and z["clip_vit_b32"].dtype == np.float16
        assert np.isfinite(z["clip_vit_b32"].astype(np.float32)).all()
        assert np.array_equal(z["slowfast"], features["video_0.mov"]["slowfast"])
    made = feature_set(("clip_vit_b32", "slowfast"))
    assert made.describe() == "clip_vit_b32(512)+slowfast(2304)" and made.dim == 2816
    unknown = CliRunner().invoke(main, [*args, "--features", "clip_vit_b32,resnet50"])
    assert unknown.exit_code != 0 and "Traceback" not in unknown.output
    assert "unknown feature set 'resnet50'; known: resnet, slowfast" in unknown.output


class Recorder(torch.nn.Module):
    """A feature module that keeps the pixels it is handed and returns zero rows."""

    channels_last_format = torch.contiguous_format

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.seen: list[np.ndarray] = []

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.extend(x.cpu().numpy())
        return torch.zeros(x.shape[0], self.dim)


@pytest.mark.parametrize("pixels", ["swscale", "torch"])
def test_each_2d_extractor_reads_the_sample_at_its_own_short_side(shared_fixtures, pixels):
    """In one decode, ResNet reads the 2D sample at short side 224 and CLIP RN50x4 at 288,
    each scaled from the decoded frame: swscale's images are a decode at that side's, bit for
    bit; the torch pixel path's agree with them to its documented tolerance."""
    path = shared_fixtures / "videos" / "flipping_a_pancake.mkv"
    names = ("resnet", "clip_rn50x4", "slowfast")
    modules = {name: Recorder(dim) for name, dim in zip(names, (2048, 640, 2304), strict=True)}
    cfg = ExtractConfig(device="cpu", features=",".join(names), batch_size=3, pixels=pixels)
    ex = FeatureExtractor(cfg, modules=modules)
    assert ex.image_sides == (288,)
    f = ex.extract(path, end=9.0)
    assert f.names == names and f["clip_rn50x4"].shape == (6, 640)
    for side, name in ((224, "resnet"), (288, "clip_rn50x4")):
        ref = [s.image for s in iter_steps(path, short_side=side, end=9.0)]
        seen = modules[name].seen
        assert len(seen) == len(ref) == 6
        for ours, theirs in zip(seen, ref, strict=True):
            assert ours.shape == theirs.shape and min(ours.shape[:2]) == side
            if pixels == "swscale":
                assert np.array_equal(ours, theirs)
            else:  # docs/extraction.md: a mean of about 0.01 grey levels from swscale's
                assert np.abs(ours.astype(np.float64) - theirs).mean() < 0.05
    assert len(modules["slowfast"].seen) == 6 and modules["slowfast"].seen[0].shape[1:] == (
        224,
        224,
        3,
    )


@pytest.mark.integration
def test_clip_rn50x4_extracts_and_rows_do_not_depend_on_the_batch(shared_fixtures):
    """CLIP RN50x4 with seeded random weights: 640-d rows, the same whatever they were batched
    with (the CPU runs each sample on its own)."""
    pytest.importorskip("open_clip")
    path = shared_fixtures / "videos" / "flipping_a_pancake.mkv"
    one = FeatureExtractor(
        ExtractConfig(device="cpu", random_weights=True, features="clip_rn50x4", batch_size=1)
    )
    four = FeatureExtractor(
        ExtractConfig(device="cpu", random_weights=True, features="clip_rn50x4", batch_size=4),
        modules=one.models,
    )
    a, b = one.extract(path, end=6.0), four.extract(path, end=6.0)
    assert a["clip_rn50x4"].shape == (4, 640) and a["clip_rn50x4"].dtype == np.float16
    assert np.isfinite(a["clip_rn50x4"].astype(np.float32)).all()
    assert np.array_equal(a["clip_rn50x4"], b["clip_rn50x4"])
    assert not np.array_equal(a["clip_rn50x4"][0], a["clip_rn50x4"][-1])


def test_a_set_of_one_3d_extractor(shared_fixtures):
    """MIL-NCE S3D alone (no 2D extractor): it reads the window's 32 fast slots."""
    cfg = ExtractConfig(device="cpu", random_weights=True, features="milnce_s3d")
    f = FeatureExtractor(cfg).extract(shared_fixtures / "videos" / "video_0.mov")
    assert f.names == ("milnce_s3d",) and f["milnce_s3d"].shape == (1, 1024)
    assert f["milnce_s3d"].dtype == np.float16
    assert np.isfinite(f["milnce_s3d"].astype(np.float32)).all()


@pytest.mark.slow  # 78 s here: five networks built with random weights, run on the CPU
def test_every_extractor_from_one_decode(tmp_path):
    """All five extractors at once (the README's sets are subsets of it), seeded random
    weights: each gives its documented width, finite rows, one per step."""
    pytest.importorskip("open_clip")
    from extract.features import EXTRACTORS

    video = make_video(tmp_path / "v.mp4", duration=4.0, width=128, height=72)
    names = tuple(EXTRACTORS)
    cfg = ExtractConfig(device="cpu", random_weights=True, features=",".join(names))
    f = FeatureExtractor(cfg).extract(video)
    assert f.names == names and f.num_steps == 3
    for name, spec in EXTRACTORS.items():
        assert f[name].shape == (3, spec.dim) and f[name].dtype == np.float16, name
        assert np.isfinite(f[name].astype(np.float32)).all(), name


def test_bf16_only_on_a_gpu_that_has_it(monkeypatch, caplog):
    """bf16 (the default) on a GPU before Ampere extracts in float32 with a warning naming the
    GPU, instead of failing in torch's kernels; the CPU is always float32."""
    import logging

    from extract.extractor import use_bf16

    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    with caplog.at_level(logging.WARNING, logger="extract.extractor"):
        assert not use_bf16(gpu, True)
    assert "cuda:0 (Tesla T4) has no bfloat16: extracting in float32" in caplog.text
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert use_bf16(gpu, True) and not use_bf16(gpu, False)
    assert not use_bf16(torch.device("cpu"), True)
