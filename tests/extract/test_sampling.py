"""extract.sampling: SlowFast's frame choice and the sampling plan, against plain-loop references.

The references here restate the rules from the issue and HERO's extractor, loop by loop:
``torch.linspace``'s float32 arithmetic in numpy, the frame before each cutoff by a linear
scan, and the frame rate read from the stream by PyAV. The videos are synthetic: frame ``k``
shows ``k`` (``index_frame``), so the pixels a model receives tell which frame it was.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from extract.decode import available_backends
from extract.extractor import ExtractConfig, FeatureExtractor
from extract.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    KINETICS_MEAN,
    KINETICS_STD,
    ResNet152Features,
    SlowFastR50Features,
)
from extract.sampling import (
    SAMPLINGS,
    fast_slots,
    pathway_slots,
    sampling_plan,
    slow_positions,
)
from pipelines.cli.main import main
from tests.extract.test_decode import index_frame, index_of, write_video

HERO_SLOW = [0, 4, 8, 13, 17, 22, 26, 31]  # the issue's list: linspace(0, 31, 8) truncated


# --- plain-loop references ----------------------------------------------------------------------


def linspace_f32(start: float, end: float, steps: int) -> list[np.float32]:
    """torch.linspace's float32 values, computed one by one: start + i·step for the first half,
    end − (steps − 1 − i)·step for the second, step = (end − start) / (steps − 1) in float32,
    each value rounded to float32 once (torch's CPU kernel fuses the multiply and the add;
    float64 holds these products and sums exactly, so one cast is that single rounding)."""
    s, e = np.float32(start), np.float32(end)
    step = np.float64(np.float32((e - s) / np.float32(steps - 1)))
    out = []
    for i in range(steps):
        if i < steps // 2:
            out.append(np.float32(np.float64(s) + step * i))
        else:
            out.append(np.float32(np.float64(e) - step * (steps - 1 - i)))
    return out


def reference_fast(rate: Fraction, window_len: int = 45) -> list[int]:
    """The issue's rule: clamp(linspace(0, 64·F/30 − 1, 32), 0, T − 1), truncated."""
    f = math.floor(float(rate))  # HERO: math.floor(float(avg_frame_rate))
    end = 0.0 + 32 * 2 * f / 30 - 1  # HERO's start_idx + clip_size - 1, in Python floats
    out = []
    for v in linspace_f32(0.0, end, 32):
        clamped = min(max(v, np.float32(0)), np.float32(window_len - 1))
        out.append(int(clamped))  # .long(): toward zero
    return out


def frames_of(path: Path) -> tuple[list[Fraction], Fraction, Fraction]:
    """(frame times from the first, end of the last frame, average frame rate) by PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate)
        frames = list(container.decode(stream))
    origin = frames[0].pts
    times = sorted(Fraction(f.pts - origin) * f.time_base for f in frames)
    last = max(frames, key=lambda f: f.pts)
    duration = Fraction(last.duration) * last.time_base if last.duration else 1 / rate
    return times, times[-1] + duration, rate


def last_before(times: list[Fraction], cutoff: Fraction) -> int:
    """The last frame with time < cutoff (the first frame if none), by a linear scan."""
    k = 0
    for i, t in enumerate(times):
        if t < cutoff:
            k = i
    return k


def reference_plan(path: Path, interval: Fraction, sampling: str) -> list[dict]:
    times, end, rate = frames_of(path)
    slots = round(interval * 30)
    steps = []
    for i in range(math.ceil(end / interval)):
        window = [last_before(times, i * interval + Fraction(2 * j + 1, 60)) for j in range(slots)]
        if sampling == "hero":
            fast = reference_fast(rate, slots)
            slow = [fast[p] for p in HERO_SLOW]
        else:
            fast = [round(k * (slots - 1) / 31) for k in range(32)]
            slow = fast[::4]
        steps.append(
            {
                "step": i,
                "resnet": float(times[last_before(times, (i + Fraction(1, 2)) * interval)]),
                "slowfast_fast": [float(times[window[j]]) for j in fast],
                "slowfast_slow": [float(times[window[j]]) for j in slow],
            }
        )
    return steps


# --- the rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize("window_len", [45, 15, 30])
def test_hero_fast_slots_equal_the_reference_for_every_rate(window_len):
    for num in range(0, 241):
        for rate in (Fraction(num), Fraction(num * 1000, 1001), Fraction(num) + Fraction(1, 2)):
            ours = list(fast_slots("hero", window_len, rate))
            assert ours == reference_fast(rate, window_len), (rate, window_len)


def test_hero_rule_at_the_issue_rates():
    at30 = fast_slots("hero", 45, Fraction(30))
    assert at30[:23] == tuple(range(0, 45, 2)) and at30.count(44) == 10  # stride 2, then 44 x 10
    at20 = fast_slots("hero", 45, Fraction(20))
    assert at20[0] == 0 and max(at20) == 41  # spread over slots 0-41
    assert fast_slots("hero", 45, Fraction(30000, 1001)) == fast_slots("hero", 45, Fraction(29))
    assert list(slow_positions("hero")) == HERO_SLOW
    assert list(slow_positions("uniform")) == list(range(0, 32, 4))


def test_torch_linspace_is_what_the_reference_loop_computes():
    """The float32 loop above is torch.linspace's arithmetic (so the reference is a real one)."""
    for f in range(0, 241):
        end = 32 * 2 * f / 30 - 1
        loop = [float(v) for v in linspace_f32(0.0, end, 32)]
        assert loop == torch.linspace(0.0, end, 32).tolist(), f


def test_no_hero_slot_is_one_rounding_from_another():
    """Within the 45-slot window no value 64·F/30 − 1 spread over 32 points lies within 1e-3 of
    an integer it is not exactly: a last-bit difference in linspace (another CPU, a GPU) cannot
    change a truncated slot."""
    for f in range(0, 241):
        for i in range(32):
            exact = Fraction(i, 31) * (Fraction(64 * f, 30) - 1)
            if 0 <= exact <= 44 and exact.denominator != 1:
                assert abs(exact - round(exact)) > Fraction(1, 1000), (f, i)


def test_uniform_is_todays_rule():
    slots = pathway_slots("uniform", 45, Fraction(60))
    assert list(slots.fast) == [round(k * 44 / 31) for k in range(32)]
    assert slots.slow == slots.fast[::4]
    assert slots.fast == pathway_slots("uniform", 45, Fraction(20)).fast  # rate plays no part


def test_unknown_sampling_is_refused():
    with pytest.raises(ValueError, match="unknown sampling 'linear'"):
        fast_slots("linear", 45, Fraction(30))
    with pytest.raises(ValueError, match="sampling must be one of"):
        ExtractConfig(sampling="linear")


# --- the plan on synthetic videos ----------------------------------------------------------------


def constant_rate_video(tmp_path: Path, rate: Fraction, seconds: Fraction = Fraction(16, 5)):
    n = round(seconds * rate)
    return write_video(tmp_path / f"v{float(rate):.3f}.mp4", list(range(n)), 1 / rate, rate=rate)


@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("rate", [20, 25, Fraction(30000, 1001), 30, 60])
def test_plan_equals_the_reference(tmp_path, rate, sampling):
    path = constant_rate_video(tmp_path, Fraction(rate))
    plan = sampling_plan(path, 1.5, sampling=sampling)
    assert plan["video"] == str(path) and plan["frame_interval"] == 1.5
    assert plan["sampling"] == sampling
    assert plan["steps"] == reference_plan(path, Fraction(3, 2), sampling)
    assert len(plan["steps"]) == 3  # 3.2 s: two whole steps and a short third


def test_plan_variable_frame_rate(tmp_path):
    rng = np.random.default_rng(11)
    gaps = rng.integers(5, 90, size=120)  # ms between frames
    pts = [0, *np.cumsum(gaps).tolist()]
    path = write_video(tmp_path / "vfr.mkv", pts, Fraction(1, 1000))
    _, _, rate = frames_of(path)
    assert 15 < rate < 40  # an average over uneven gaps: the hero rule depends on it
    for sampling in SAMPLINGS:
        for interval in (Fraction(3, 2), Fraction(1, 2)):
            plan = sampling_plan(path, float(interval), sampling=sampling)
            assert plan["steps"] == reference_plan(path, interval, sampling), (sampling, interval)


@pytest.mark.skipif("decord" not in available_backends(), reason="decord is not installed")
def test_plan_is_the_same_with_decord(tmp_path):
    path = constant_rate_video(tmp_path, Fraction(30000, 1001))
    assert sampling_plan(path, backend="decord")["steps"] == sampling_plan(path)["steps"]


def test_hero_plan_repeats_the_window_end_at_30_fps(tmp_path):
    path = constant_rate_video(tmp_path, Fraction(30))
    step = sampling_plan(path)["steps"][0]
    fast = step["slowfast_fast"]
    assert fast[:23] == [pytest.approx(2 * k / 30) for k in range(23)]
    assert fast[22:] == [pytest.approx(44 / 30)] * 10
    assert step["slowfast_slow"] == [fast[p] for p in HERO_SLOW]


# --- extraction feeds the models exactly the planned frames ----------------------------------


def unnormalise(x: torch.Tensor, mean: tuple, std: tuple) -> np.ndarray:
    """(3, H, W) normalised float back to (H, W, 3) uint8 pixels."""
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    return ((x * s + m) * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


class Recorder:
    """Stand-in trunks for both models: keep the frame index every input pixel shows."""

    def __init__(self) -> None:
        self.resnet: list[int] = []
        self.fast: list[list[int]] = []
        self.slow: list[list[int]] = []

    def resnet_trunk(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        for image in x:
            self.resnet.append(index_of(unnormalise(image, IMAGENET_MEAN, IMAGENET_STD)))
        return torch.ones(len(x), 2048, 1, 1)

    def slowfast_trunk(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        for pathway, out in ((fast, self.fast), (slow, self.slow)):
            for sample in pathway:  # (3, T, H, W)
                out.append(
                    [
                        index_of(unnormalise(sample[:, t], KINETICS_MEAN, KINETICS_STD))
                        for t in range(sample.shape[1])
                    ]
                )
        return torch.ones(len(fast), 2304, 1, 1, 1)


def recording_models(recorder: Recorder) -> tuple[ResNet152Features, SlowFastR50Features]:
    resnet = ResNet152Features(torch.nn.Identity())  # type: ignore[arg-type]
    slowfast = SlowFastR50Features(torch.nn.Identity())
    for model, trunk in ((resnet, recorder.resnet_trunk), (slowfast, recorder.slowfast_trunk)):
        model.anchor = torch.nn.Parameter(torch.zeros(1))  # forward takes its device from this
        model.trunk = trunk  # type: ignore[method-assign]
    return resnet, slowfast


@pytest.mark.parametrize(
    ("rate", "sampling"),
    [(30, "hero"), (20, "hero"), (Fraction(30000, 1001), "hero"), (25, "uniform")],
)
def test_extraction_feeds_the_models_the_planned_frames(tmp_path, rate, sampling):
    rate = Fraction(rate)
    path = constant_rate_video(tmp_path, rate)
    times, _, _ = frames_of(path)
    index = {float(t): k for k, t in enumerate(times)}
    recorder = Recorder()
    resnet, slowfast = recording_models(recorder)
    config = ExtractConfig(device="cpu", batch_size=2, sampling=sampling)
    FeatureExtractor(config, modules={"resnet": resnet, "slowfast": slowfast}).extract(path)
    plan = sampling_plan(path, sampling=sampling)["steps"]
    assert recorder.resnet == [index[s["resnet"]] for s in plan]
    assert recorder.fast == [[index[t] for t in s["slowfast_fast"]] for s in plan]
    assert recorder.slow == [[index[t] for t in s["slowfast_slow"]] for s in plan]
    if sampling == "hero" and rate == 30:  # the plan is not trivially the same as uniform's
        assert recorder.fast[0][-10:] == [44] * 10


# --- the command line ------------------------------------------------------------------------


def test_hero_extract_sampling_plan_prints_the_plan(tmp_path):
    path = constant_rate_video(tmp_path, Fraction(25))
    result = CliRunner().invoke(main, ["extract", str(path), "--sampling-plan"])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.strip().splitlines()
    assert json.loads(line) == sampling_plan(path)
    result = CliRunner().invoke(
        main, ["extract", str(path), "--sampling-plan", "--sampling", "uniform"]
    )
    assert json.loads(result.stdout)["steps"] == reference_plan(path, Fraction(3, 2), "uniform")
    assert not list(tmp_path.glob("*.npz"))  # no model ran, nothing written


def test_the_sampling_plan_shows_each_chosen_extractors_frames(tmp_path):
    path = constant_rate_video(tmp_path, Fraction(25))
    flags = ["--sampling-plan", "--features", "clip_vit_b32,milnce_s3d"]
    result = CliRunner().invoke(main, ["extract", str(path), *flags])
    assert result.exit_code == 0, result.output
    steps = json.loads(result.stdout)["steps"]
    default = sampling_plan(path)["steps"]
    assert [set(s) for s in steps] == [{"step", "clip_vit_b32", "milnce_s3d"}] * len(default)
    for step, hero in zip(steps, default, strict=True):  # the same frames as ResNet's, fast's
        assert step["clip_vit_b32"] == hero["resnet"]
        assert step["milnce_s3d"] == hero["slowfast_fast"]


def test_hero_extract_sampling_plan_of_a_bad_file_names_it(tmp_path):
    bad = tmp_path / "not-a-video.mp4"
    bad.write_text("hello")
    result = CliRunner().invoke(main, ["extract", str(bad), "--sampling-plan"])
    assert result.exit_code == 1
    assert "not-a-video.mp4" in result.output and "Traceback" not in result.output


def test_hero_extract_needs_output_unless_sampling_plan(tmp_path):
    path = write_video(tmp_path / "v.mp4", list(range(5)), Fraction(1, 30), picture=index_frame)
    result = CliRunner().invoke(main, ["extract", str(path)])
    assert result.exit_code == 2
    assert "--output is required (unless --sampling-plan)" in result.output


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_plan_of_every_extractor_reads_the_2d_sample_or_the_fast_slots(tmp_path, sampling):
    path = constant_rate_video(tmp_path, Fraction(25))
    names = ("resnet", "slowfast", "clip_vit_b32", "clip_rn50x4", "milnce_s3d")
    steps = sampling_plan(path, 1.5, sampling=sampling, features=names)["steps"]
    reference = reference_plan(path, Fraction(3, 2), sampling)
    assert len(steps) == len(reference) == 3
    for step, ref in zip(steps, reference, strict=True):
        assert list(step) == ["step", "resnet", "slowfast_fast", "slowfast_slow", *names[2:]]
        assert {k: step[k] for k in ref} == ref  # the default keys are as before
        assert step["clip_vit_b32"] == step["clip_rn50x4"] == ref["resnet"]
        assert step["milnce_s3d"] == ref["slowfast_fast"]
    only_clip = sampling_plan(path, 1.5, sampling=sampling, features=("clip_vit_b32",))
    assert [list(s) for s in only_clip["steps"]] == [["step", "clip_vit_b32"]] * 3
