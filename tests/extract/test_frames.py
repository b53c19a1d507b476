"""Frame folders (extract/frames.py) through the decoder: a TVQA-style folder of 3 fps JPEGs made
here gives the steps, times and pixels of the grid rules; bad folders fail with their problem."""

from __future__ import annotations

import io
import json
import math
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from extract.decode import DecodeError, iter_step_times, iter_steps, probe
from extract.frames import read_frame_folder
from extract.sampling import sampling_plan
from extract.synthetic import make_video

FPS = 3
SECONDS = 20
FRAMES = FPS * SECONDS  # 60
STEPS = math.ceil(SECONDS / 1.5)  # 14: the last step, [19.5, 21), sticks out past 20 s


def colour(k: int) -> int:
    """Frame k's red level: distinct for every frame, far apart enough to survive JPEG."""
    return 4 * k


def _encoded(img: torch.Tensor, fmt: str) -> bytes:
    """A (3, H, W) uint8 image as a JPEG (Pillow's default quality 75, 4:2:0) or PNG file."""
    out = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).contiguous().numpy()).save(out, format=fmt)
    return out.getvalue()


def encode_jpeg(img: torch.Tensor) -> bytes:
    return _encoded(img, "JPEG")


def encode_png(img: torch.Tensor) -> bytes:
    return _encoded(img, "PNG")


def make_folder(root: Path, frames: int = FRAMES, fps: object = FPS, size=(320, 240)) -> Path:
    """A TVQA-style frame folder: 00001.jpg ... (1-based, as TVQA's), frames.json."""
    root.mkdir(parents=True, exist_ok=True)
    width, height = size
    for k in range(frames):
        img = torch.zeros(3, height, width, dtype=torch.uint8)  # (C, H, W)
        img[0] = colour(k)
        (root / f"{k + 1:05d}.jpg").write_bytes(encode_jpeg(img))
    (root / "frames.json").write_text(json.dumps({"fps": fps}))
    return root


@pytest.fixture(scope="module")
def tvqa(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("tvqa") / "s01e02_seg02_clip_00")


def image_frame(i: int) -> int:
    """The frame of step i's 2D sample: the last one shown before (i + 1/2)·1.5 s,
    i.e. the last k with k/3 < 4.5·i/3 + 2.25/3, clamped to the last frame."""
    return min(math.ceil(4.5 * i + 2.25) - 1, FRAMES - 1)


def test_probe_gives_n_over_fps(tvqa):
    info = probe(tvqa)
    assert info.duration == SECONDS and info.fps == Fraction(FPS)
    assert (info.width, info.height, info.codec) == (320, 240, "mjpeg")
    assert info.video_id == "s01e02_seg02_clip_00"


def test_step_times_follow_the_grid(tvqa):
    steps = list(iter_step_times(tvqa))
    assert [s.index for s in steps] == list(range(STEPS))
    for s in steps:
        assert s.image_time == Fraction(image_frame(s.index), FPS)
        # slot j of the 30 fps window: the frame shown at i·1.5 + (j + 1/2)/30
        for j, t in enumerate(s.window_times):
            cutoff = Fraction(3, 2) * s.index + Fraction(2 * j + 1, 60)
            k = min(math.ceil(cutoff * FPS) - 1, FRAMES - 1)
            assert t == Fraction(k, FPS)
        assert s.frame_rate == FPS


@pytest.mark.parametrize(("frames", "steps"), [(1, 1), (4, 1), (5, 2), (9, 2), (10, 3)])
def test_n_frames_last_n_over_fps(tmp_path, frames, steps):
    folder = make_folder(tmp_path / "f", frames=frames, size=(32, 24))
    assert len(list(iter_step_times(folder))) == steps  # ceil((n / 3) / 1.5)
    assert probe(folder).duration == frames / FPS


def test_the_chosen_frames_are_decoded(tvqa):
    steps = list(iter_steps(tvqa))
    assert len(steps) == STEPS
    for s in steps:
        assert s.image.shape == (224, 298, 3)  # 320x240 -> short side 224, 298 truncated
        red = float(s.image[..., 0].mean())
        assert abs(red - colour(image_frame(s.index))) < 2, s.index
        k = s.times.window_times[7] * FPS
        assert abs(float(s.window[7, ..., 0].mean()) - colour(int(k))) < 2


def test_a_start_past_zero_decodes_the_same_steps(tvqa):
    whole = list(iter_steps(tvqa))
    tail = list(iter_steps(tvqa, start=9.0))
    assert [s.index for s in tail] == list(range(6, STEPS))
    for a, b in zip(whole[6:], tail, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.window, b.window)


def test_a_second_image_side_is_scaled_from_the_frame_file(tvqa):
    """CLIP RN50x4's 288 sample of a frame folder: what a decode at 288 gives."""
    both = list(iter_steps(tvqa, image_sides=(288,)))
    at_288 = list(iter_steps(tvqa, short_side=288))
    assert len(both) == len(at_288) == STEPS
    for a, b in zip(both, at_288, strict=True):
        assert a.image.shape == (224, 298, 3) and a.extra[288].shape == (288, 384, 3)
        assert np.array_equal(a.extra[288], b.image)


def test_raw_planes_for_torch_pixels(tvqa):
    from extract.pixels import convert

    step = next(iter(iter_steps(tvqa, pixels="torch")))
    assert step.size == (298, 224)
    rgb = convert([step.image], step.size, torch.device("cpu"))  # (1, 224, 298, 3)
    assert abs(float(rgb[0, ..., 0].float().mean()) - colour(image_frame(0))) < 2


def test_png_frames_reach_torch_pixels_as_rgb(tmp_path):
    from extract.pixels import RGBFrame, convert

    folder = tmp_path / "png"
    folder.mkdir()
    img = torch.arange(3 * 48 * 64, dtype=torch.int64).reshape(3, 48, 64).remainder(251)
    (folder / "1.png").write_bytes(encode_png(img.to(torch.uint8)))
    (folder / "frames.json").write_text('{"fps": 3}')
    planes = next(iter(iter_steps(folder, pixels="torch")))
    assert isinstance(planes.image, RGBFrame)
    assert torch.equal(planes.image.rgb, img.to(torch.uint8).permute(1, 2, 0))  # lossless
    swscale = next(iter(iter_steps(folder))).image  # (224, 298, 3)
    torch_rgb = convert([planes.image], planes.size, torch.device("cpu"))[0].numpy()
    assert np.abs(torch_rgb.astype(int) - swscale.astype(int)).mean() < 1
    # a JPEG among PNGs comes as RGB too: one folder's frames convert together
    (folder / "2.jpg").write_bytes(encode_jpeg(img.to(torch.uint8)))
    steps = list(iter_steps(folder, pixels="torch"))
    assert len(steps) == 1 and isinstance(steps[0].window[-1], RGBFrame)


def test_hero_extract_sampling_plan_on_a_frame_folder(tvqa):
    from click.testing import CliRunner

    from pipelines.cli.main import main

    result = CliRunner().invoke(main, ["extract", str(tvqa), "--sampling-plan"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan == json.loads(json.dumps(sampling_plan(tvqa)))
    assert [s["step"] for s in plan["steps"]] == list(range(STEPS))
    assert [s["resnet"] for s in plan["steps"]] == [image_frame(i) / FPS for i in range(STEPS)]
    frame_times = {k / FPS for k in range(FRAMES)}
    for s in plan["steps"]:
        assert len(s["slowfast_fast"]) == 32 and len(s["slowfast_slow"]) == 8
        assert set(s["slowfast_fast"]) <= frame_times


def test_pngs_in_number_order_and_other_files_ignored(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    for n in (2, 10, 1):  # "10" sorts before "2" as text; by number it comes last
        img = torch.full((3, 48, 64), colour(n), dtype=torch.uint8)
        (folder / f"frame_{n}.png").write_bytes(encode_png(img))
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.jpg").write_bytes(b"")
    (folder / "frames.json").write_text('{"fps": "30000/1001"}')
    found = read_frame_folder(folder)
    assert found.files == ("frame_1.png", "frame_2.png", "frame_10.png")
    assert found.fps == Fraction(30000, 1001) and found.duration == Fraction(3003, 30000)
    steps = list(iter_steps(folder, 0.1))
    assert len(steps) == 2  # 3 frames last 0.1001 s: ceil(0.1001 / 0.1)
    reds = [int(s.image[..., 0].mean().round()) for s in steps]
    assert reds[0] == colour(2) and reds[-1] == colour(10)


def _write(folder: Path, name: str, data: bytes | str) -> None:
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)


_JPEG = encode_jpeg(torch.zeros(3, 24, 32, dtype=torch.uint8))
_OTHER_SIZE = encode_jpeg(torch.zeros(3, 32, 32, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"1.jpg": _JPEG}, "a folder without frames.json"),
        ({"frames.json": "{fps: 3}", "1.jpg": _JPEG}, "frames.json is not valid JSON"),
        ({"frames.json": "[3]", "1.jpg": _JPEG}, 'must be a JSON object with "fps"'),
        ({"frames.json": '{"rate": 3}', "1.jpg": _JPEG}, 'must be a JSON object with "fps"'),
        ({"frames.json": '{"fps": 3, "x": 1}', "1.jpg": _JPEG}, "unknown keys ['x']"),
        ({"frames.json": '{"fps": 0}', "1.jpg": _JPEG}, "fps must be a number"),
        ({"frames.json": '{"fps": -3}', "1.jpg": _JPEG}, "fps must be a number"),
        ({"frames.json": '{"fps": true}', "1.jpg": _JPEG}, "fps must be a number"),
        ({"frames.json": '{"fps": "fast"}', "1.jpg": _JPEG}, "fps must be a number"),
        ({"frames.json": '{"fps": 1e9}', "1.jpg": _JPEG}, "fps must be a number"),
        ({"frames.json": '{"fps": 3}'}, "no frames: no .jpg, .jpeg, .png file"),
        (
            {"frames.json": '{"fps": "1/86400"}', "1.jpg": _JPEG, "2.jpg": _JPEG},
            "2 frames at 1/86400 fps last 172800 s, more than the 86400 s",
        ),
        ({"frames.json": '{"fps": 3}', "1.jpg": _JPEG, "a.jpg": _JPEG}, "'a.jpg' has no number"),
        ({"frames.json": '{"fps": 3}', "1.jpg": _JPEG, "01.png": _JPEG}, "have the same number 1"),
        ({"frames.json": '{"fps": 3}', "1.jpg": b"not a jpeg"}, "'1.jpg' is not a readable image"),
    ],
)
def test_bad_folders_name_the_folder_and_the_problem(tmp_path, files, problem):
    folder = tmp_path / "clip"
    folder.mkdir()
    for name, data in files.items():
        _write(folder, name, data)
    with pytest.raises(DecodeError) as probed:
        probe(folder)
    assert probed.value.path == str(folder) and problem in probed.value.problem
    with pytest.raises(DecodeError) as decoded:
        list(iter_steps(folder))
    assert str(decoded.value) == str(probed.value)


def test_the_manifest_can_state_the_fps_in_place_of_frames_json(tmp_path, tvqa):
    """A folder without ``frames.json`` runs on the manifest's ``fps`` exactly as it does on
    its own; both given must agree; a video file given one is refused; a bad one is named."""
    bare = tmp_path / "bare"
    shutil.copytree(tvqa, bare)
    (bare / "frames.json").unlink()
    info = probe(bare, fps="3")
    assert info.duration == SECONDS and info.fps == Fraction(FPS)
    ours, ref = list(iter_steps(bare, fps="3")), list(iter_steps(tvqa))
    assert [s.times for s in ours] == [s.times for s in ref] and len(ours) == STEPS
    assert all(np.array_equal(a.image, b.image) for a, b in zip(ours, ref, strict=True))
    assert probe(tvqa, fps="3").duration == SECONDS  # both, agreeing
    with pytest.raises(DecodeError, match=r"the manifest states fps 2, its frames\.json 3"):
        probe(tvqa, fps="2")
    with pytest.raises(DecodeError, match=r"the manifest states fps 2, its frames\.json 3"):
        list(iter_steps(tvqa, fps="2"))
    with pytest.raises(DecodeError, match=r"the manifest: fps must be a number .* got '0'"):
        probe(bare, fps="0")
    video = make_video(tmp_path / "v.mp4", duration=1.0, width=64, height=36)
    with pytest.raises(DecodeError, match="fps 3 for a video file: only frame folders take one"):
        probe(video, fps="3")
    with pytest.raises(DecodeError, match="fps 3 for a video file: only frame folders take one"):
        iter_steps(video, fps="3")


def test_an_odd_sized_or_broken_frame_fails_its_folder_when_decoded(tmp_path):
    folder = make_folder(tmp_path / "odd", frames=6)
    _write(folder, "00004.jpg", _OTHER_SIZE)
    probe(folder)  # the first frame is fine
    with pytest.raises(
        DecodeError, match=r"odd: frame '00004.jpg' is 32×32, frame '00001.jpg' 320×240"
    ):
        list(iter_steps(folder))
    _write(folder, "00004.jpg", b"\xff\xd8 truncated")
    with pytest.raises(DecodeError, match=r"odd: frame '00004\.jpg' is not a readable image"):
        list(iter_steps(folder))
    assert len(list(iter_step_times(folder))) == 2  # times only: no frame is read


@pytest.mark.integration  # whole-video extraction with both models (random weights)
def test_hero_extract_on_a_frame_folder(tvqa, tmp_path):
    from click.testing import CliRunner

    from pipelines.cli.main import main

    bad = tmp_path / "bad"
    bad.mkdir()
    out = tmp_path / "out"
    args = ["extract", str(tvqa), str(bad), "--output", str(out), "--random-weights"]
    result = CliRunner().invoke(main, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "1 written, 0 skipped (exist), 1 failed" in result.output
    (npz,) = out.glob("*.npz")
    with np.load(npz) as features:
        assert features["resnet"].shape == (STEPS, 2048)
        assert features["slowfast"].shape == (STEPS, 2304)
    (error,) = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert error["source"] == str(bad) and "a folder without frames.json" in error["message"]
