"""The `hero` command line: help, demo, inspect (table, JSON, one clip) and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hero_data.reader import HeroDataset
from hero_data.writer import read_errors
from pipelines.cli.main import main
from pipelines.demo import DemoConfig, run_demo


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def demo_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo"
    code, output = run(
        "demo",
        "--output",
        str(out),
        "--videos",
        "2",
        "--seed",
        "1",
        "--min-duration",
        "8",
        "--max-duration",
        "10",
        "--clip-seconds",
        "9",
        "--no-progress",
    )
    assert code == 0, output
    (out / "demo-output.txt").write_text(output)
    assert "clips verified (sha256)" in output and "hero inspect" in output
    assert "finetune/metrics.json" in output and "VCMR 0.5-r1" in output
    return out / "dataset"


def test_demo_pretrains_builds_a_benchmark_and_finetunes(demo_dataset):
    demo = demo_dataset.parent
    summary = json.loads((demo / "pretrain" / "summary.json").read_text())
    assert summary["step"] == DemoConfig().pretrain_steps
    report = json.loads((demo / "bench" / "report.json").read_text())
    assert report["splits"]["train"]["rows"] > 0 and report["splits"]["val"]["rows"] > 0
    assert report["input_rows"] == report["written"] + sum(report["rejected"].values())
    metrics = json.loads((demo / "finetune" / "metrics.json").read_text())
    assert metrics["init"].startswith(str(demo / "pretrain"))
    assert metrics["train"]["steps"] == DemoConfig().finetune_steps
    assert set(metrics["val"]) >= {"VCMR", "SVMR", "VR"}


def test_demo_draws_its_pictures_and_prints_where_they_and_rays_log_are(demo_dataset):
    demo = demo_dataset.parent
    output = (demo / "demo-output.txt").read_text()
    pictures = demo / "pictures"
    lines = output.splitlines()
    assert f"    dataset card: {pictures / 'summary.png'}" in lines
    assert f"    training curves: {pictures / 'curves.png'}" in lines
    (picture,) = set(pictures.glob("*.png")) - {pictures / "summary.png", pictures / "curves.png"}
    clip_id = picture.name.removesuffix(".png")
    assert f"    clip {clip_id}'s timeline: {picture}" in lines
    for png in pictures.glob("*.png"):
        with Image.open(png) as img:
            assert img.format == "PNG"
    # the curves are the pretraining's own (RUN_DIR/curves.png, drawn at its last checkpoint)
    assert (demo / "pretrain" / "curves.png").read_bytes() == (pictures / "curves.png").read_bytes()
    assert any(c.text for c in HeroDataset.open(demo_dataset)[clip_id].cues)  # one with cues
    (log_file,) = (demo_dataset / "logs").glob("ray-*.log")
    assert f"  Ray's own log lines: {log_file}" in output.splitlines()
    assert "Execution plan" in log_file.read_text()  # Ray Data's lines went there


def test_help_lists_built_commands():
    code, out = run("--help")
    assert code == 0
    for command in ("inspect", "demo", "align", "extract"):
        assert command in out
    code, out = run("inspect", "--help")
    assert code == 0 and "--json" in out and "--clip" in out


def test_run_and_extract_take_the_same_extraction_options():
    """Declared once (pipelines/cli/options.py): same flags, types and help in both commands,
    with the defaults ExtractConfig holds, and None when not given (so a config file or the
    model decides)."""
    from extract.config import ExtractConfig

    run_params = {p.name: p for p in main.commands["run"].params}
    extract_params = {p.name: p for p in main.commands["extract"].params}
    shared = (
        "frame_interval",
        "sampling",
        "backend",
        "device",
        "batch_size",
        "compile",
        "resnet_weights",
        "slowfast_weights",
        "random_weights",
        "offline",
    )
    given = {
        "run": main.commands["run"].make_context("run", []).params,
        "extract": main.commands["extract"].make_context("extract", ["v.mp4"]).params,
    }
    for name in shared:
        ours, theirs = run_params[name], extract_params[name]
        assert (ours.opts, ours.help, repr(ours.type)) == (
            theirs.opts,
            theirs.help,
            repr(theirs.type),
        )
        assert given["run"][name] is None and given["extract"][name] is None, name
    for name in ("frame_interval", "sampling", "backend", "batch_size"):
        value = ExtractConfig.default_of(name)
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert run_params[name].help.endswith(f"[{shown}].")


def test_console_script_runs():
    hero = Path(sys.executable).parent / "hero"
    proc = subprocess.run([str(hero), "--version"], capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("hero, version ")


def test_demo_writes_a_verified_dataset(demo_dataset):
    ds = HeroDataset.open(demo_dataset, verify="full")
    assert len(ds) >= 2
    config = ds.manifest.config
    assert config["random_weights"] is True and config["tokenizer"]["sha256"]
    assert config["weights_sha256"] == {"resnet": "random", "slowfast": "random"}
    errors = {e["video_id"]: e for e in read_errors(demo_dataset)}
    assert {(v, e["stage"], e["error_type"]) for v, e in errors.items()} == {
        ("truncated", "probe", "DecodeError"),
        ("broken", "subtitles", "SubtitleError"),
    }
    assert "truncated.mp4" in errors["truncated"]["message"]
    assert "broken.vtt" in errors["broken"]["message"]
    report = json.loads((demo_dataset / "report.json").read_text())
    assert report["unaccounted"] == [] and report["videos_ok"] == 3
    videos = {r.clip.video_id for r in ds}
    assert videos == {"video00", "video01", "silent"}
    for r in ds:  # real features: unit ResNet rows, one row per step
        norms = np.linalg.norm(r.features["resnet"].astype(np.float32), axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=2e-3)
    # Real subtitle work: cues aligned and tokenized, steps each in exactly one place.
    for r in ds:
        assert len(r.cue_token_ids) == len(r.cues) == len(r.unique_sub2frames)
        owned = sorted([s for span in r.unique_sub2frames for s in span] + list(r.unmatched_frames))
        assert owned == list(range(r.num_frames))
    silent = ds["silent.0"]
    assert all(c.text == "" for c in silent.cues) and silent.unmatched_frames == ()
    assert any(any(ids) for r in ds for ids in r.cue_token_ids)


@pytest.mark.slow  # a second whole demo, about 80 s; CI runs the slow tier
def test_demo_is_deterministic(tmp_path, demo_dataset):
    small = DemoConfig(
        videos=2, seed=1, min_duration=8, max_duration=10, clip_length=9.0, train=False
    )
    out = tmp_path / "again"
    run_demo(out, small, progress=False)
    a, b = HeroDataset.open(demo_dataset), HeroDataset.open(out / "dataset")
    assert len(a) == len(b)

    # Videos are committed as they finish, so shard order may differ between runs; compare
    # clip by clip: same clips, bit-identical features (the sources differ).
    def by_clip(ds):
        return sorted(ds, key=lambda r: (r.clip.video_id, r.clip.index))

    for x, y in zip(by_clip(a), by_clip(b), strict=True):
        assert (x.clip, x.cues, x.cue_token_ids, x.unique_sub2frames) == (
            y.clip,
            y.cues,
            y.cue_token_ids,
            y.unique_sub2frames,
        )
        assert np.array_equal(x.visual(), y.visual())


def test_demo_replaces_only_an_earlier_demo(tmp_path):
    from pipelines.demo import _prepare

    earlier = tmp_path / "earlier"
    _prepare(earlier)  # marks the folder as the demo's
    (earlier / "old.txt").write_text("from the earlier demo")
    _prepare(earlier)
    assert not (earlier / "old.txt").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    code, output = run("demo", "--output", str(other))
    assert code == 1 and "not empty" in output
    assert (other / "keep.txt").read_text() == "mine"


def test_inspect_json_matches_the_dataset(demo_dataset):
    code, out = run("inspect", str(demo_dataset), "--json")
    assert code == 0
    summary = json.loads(out)
    ds = HeroDataset.open(demo_dataset)
    assert summary["clips"] == len(ds)
    assert summary["videos"] == 3
    assert summary["steps"] == sum(r.num_frames for r in ds)
    assert summary["cues"] == sum(len(r.cues) for r in ds)
    assert summary["hours"] == pytest.approx(sum(r.clip.duration for r in ds) / 3600)
    assert summary["failed_inputs"] == 2
    assert summary["failed_by_type"] == {"DecodeError": 1, "SubtitleError": 1}
    assert sum(s["rows"] for s in summary["shards"]) == len(ds)
    assert [(c["name"], c["dim"]) for c in summary["features"]] == [
        ("resnet", 2048),
        ("slowfast", 2304),
    ]
    assert summary["feature_dim"] == 4352


def test_inspect_table(demo_dataset):
    code, out = run("inspect", str(demo_dataset), "--verify")
    assert code == 0
    first_shard = HeroDataset.open(demo_dataset).shards[0].name.split("/")[1]
    for word in ("videos", "clips", "hours", "steps", "cues", "failed: DecodeError", first_shard):
        assert word in out
    assert "resnet(2048)+slowfast(2304) = 4352 per step" in out


def test_inspect_clip(demo_dataset):
    code, out = run("inspect", str(demo_dataset), "--clip", "video00.0", "--json")
    assert code == 0
    clip = json.loads(out)
    assert clip["num_frames"] == 6 and len(clip["steps"]) == 6  # demo clips are 9 s
    assert clip["steps"][-1]["end"] == 9.0
    first_cue = clip["cues"][0]
    covered = [s["step"] for s in clip["steps"] if 0 in s["covering"]]
    assert covered[0] == int(first_cue["start"] // 1.5)
    # Each step's assigned cue is the one whose unique_sub2frames holds the step, or none.
    record = HeroDataset.open(demo_dataset)["video00.0"]
    owner = {step: k for k, steps in enumerate(record.unique_sub2frames) for step in steps}
    assert owner, "the demo clip has no assigned steps to check"
    assert [s["step"] for s in clip["steps"]] == list(range(record.num_frames))
    assert [s["cue"] for s in clip["steps"]] == [owner.get(i) for i in range(record.num_frames)]
    for s in clip["steps"]:
        if s["cue"] is not None:
            assert s["text"] == record.cues[s["cue"]].text
    code, out = run("inspect", str(demo_dataset), "--clip", "video00.0")
    assert code == 0 and "assigned cue" in out


def test_inspect_errors_are_one_clear_line(tmp_path, demo_dataset):
    code, out = run("inspect", str(tmp_path / "nowhere"))
    assert code == 1 and "no such dataset folder" in out and "Traceback" not in out
    code, out = run("inspect", str(demo_dataset), "--clip", "video99.0")
    assert code == 1 and "no clip 'video99.0'" in out
    shard = demo_dataset / HeroDataset.open(demo_dataset).shards[0].name
    data = shard.read_bytes()
    try:
        shard.write_bytes(data[: len(data) // 2])
        code, out = run("inspect", str(demo_dataset))
        assert code == 1 and shard.name in out and "Traceback" not in out
    finally:
        shard.write_bytes(data)


# --- --compile reaches the extraction config ----------------------------------------------------


@pytest.fixture
def configs(monkeypatch) -> list:
    """The ExtractConfig each `hero extract` in the test hands to the batch loop, which is
    replaced so that no video is read."""
    import extract.batch

    seen: list = []

    def record(videos, output, config, *, overwrite=False):
        seen.append(config)
        return extract.batch.ExtractSummary()

    monkeypatch.setattr(extract.batch, "extract_videos", record)
    return seen


def test_extract_compile_flag_reaches_the_extract_config(tmp_path, configs):
    base = ["extract", str(tmp_path / "v.mp4"), "--output", str(tmp_path / "out")]
    assert run(*base, "--compile")[0] == 0
    assert run(*base)[0] == 0
    assert [c.compile for c in configs] == [True, False]
    assert configs[0].batch_size == 16  # the other options keep their defaults


def test_extract_sampling_and_offline_flags_reach_the_extract_config(tmp_path, configs):
    base = ["extract", str(tmp_path / "v.mp4"), "--output", str(tmp_path / "out")]
    assert run(*base)[0] == 0
    assert run(*base, "--sampling", "uniform", "--offline")[0] == 0
    assert [(c.sampling, c.offline) for c in configs] == [("hero", None), ("uniform", True)]
    code, out = run(*base, "--sampling", "linear")
    assert code == 2 and "'linear' is not one of 'hero', 'uniform'" in out


def test_extract_pixels_flag_reaches_the_extract_config(tmp_path, configs):
    base = ["extract", str(tmp_path / "v.mp4"), "--output", str(tmp_path / "out")]
    assert run(*base)[0] == 0
    assert run(*base, "--pixels", "torch")[0] == 0
    assert [c.pixels for c in configs] == ["auto", "torch"]
    code, out = run(*base, "--pixels", "gpu")
    assert code == 2 and "'gpu' is not one of 'auto', 'swscale', 'torch'" in out


def test_extract_decoder_flag_reaches_the_extract_config(tmp_path, configs):
    base = ["extract", str(tmp_path / "v.mp4"), "--output", str(tmp_path / "out")]
    assert run(*base)[0] == 0
    assert run(*base, "--decoder", "nvdec")[0] == 0
    assert run(*base, "--decoder", "cpu")[0] == 0
    assert [c.decoder for c in configs] == ["auto", "nvdec", "cpu"]
    code, out = run(*base, "--decoder", "nvdec", "--device", "cpu")
    assert code == 1 and "decoder nvdec decodes on the GPU: it needs a CUDA device" in out
    code, out = run(*base, "--decoder", "gpu")
    assert code == 2 and "'gpu' is not one of 'auto', 'cpu', 'nvdec'" in out


def test_run_pixels_and_decoder_flags_and_yaml_reach_the_run_config(tmp_path, monkeypatch):
    import pipelines.run
    from pipelines.inputs import InputError

    configs = []

    def fake_run_pipeline(cfg, progress=True):
        configs.append(cfg)
        raise InputError("stopped by the test")

    monkeypatch.setattr(pipelines.run, "run_pipeline", fake_run_pipeline)
    base = ["run", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    assert run(*base)[0] == 1
    assert run(*base, "--pixels", "torch", "--decoder", "cpu")[0] == 1
    config = tmp_path / "run.yaml"
    config.write_text("extract:\n  pixels: swscale\n  decoder: nvdec\n  device: cuda\n")
    code, out = run(*base, "--config", str(config))
    assert code == 1 and "pixels must be torch or auto, not swscale" in out and "run.yaml" in out
    assert run(*base, "--config", str(config), "--pixels", "auto")[0] == 1
    assert [(c.extract.pixels, c.extract.decoder) for c in configs] == [
        ("auto", "auto"),
        ("torch", "cpu"),
        ("auto", "nvdec"),
    ]


def test_run_sampling_and_offline_reach_the_run_config(tmp_path, monkeypatch):
    import pipelines.run
    from pipelines.inputs import InputError

    configs = []

    def fake_run_pipeline(cfg, progress=True):
        configs.append(cfg)
        raise InputError("stopped by the test")

    monkeypatch.setattr(pipelines.run, "run_pipeline", fake_run_pipeline)
    base = ["run", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    assert run(*base)[0] == 1
    assert run(*base, "--sampling", "uniform", "--offline")[0] == 1
    config = tmp_path / "run.yaml"
    config.write_text("sampling: uniform\n")
    assert run(*base, "--config", str(config))[0] == 1
    assert [(c.sampling, c.offline) for c in configs] == [
        ("hero", False),
        ("uniform", True),
        ("uniform", False),
    ]
    config.write_text("sampling: evenly\n")
    code, out = run(*base, "--config", str(config))
    assert code == 1 and "sampling must be one of hero, uniform, got 'evenly'" in out
    assert "run.yaml" in out and len(configs) == 3


def test_run_compile_flag_and_yaml_reach_the_run_config(tmp_path, monkeypatch):
    import pipelines.run
    from pipelines.inputs import InputError

    configs = []

    def fake_run_pipeline(cfg, progress=True):
        configs.append(cfg)
        raise InputError("stopped by the test")

    monkeypatch.setattr(pipelines.run, "run_pipeline", fake_run_pipeline)
    base = ["run", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    code, out = run(*base, "--compile")  # the first line names Ray's log file
    assert code == 1 and out.splitlines()[1:] == ["Error: stopped by the test"]
    assert run(*base)[0] == 1
    config = tmp_path / "run.yaml"
    config.write_text("compile: true\n")
    assert run(*base, "--config", str(config))[0] == 1
    assert [c.compile for c in configs] == [True, False, True]
    config.write_text("compile: sometimes\n")
    code, out = run(*base, "--config", str(config))
    assert code == 1 and "compile must be true or false" in out and "run.yaml" in out
    assert len(configs) == 3  # refused before the pipeline ran


def test_run_strict_subtitles_flag_and_yaml_reach_the_run_config(tmp_path, monkeypatch):
    import pipelines.run
    from pipelines.inputs import InputError

    configs = []

    def fake_run_pipeline(cfg, progress=True):
        configs.append(cfg)
        raise InputError("stopped by the test")

    monkeypatch.setattr(pipelines.run, "run_pipeline", fake_run_pipeline)
    base = ["run", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    assert run(*base)[0] == 1
    assert run(*base, "--strict-subtitles")[0] == 1
    config = tmp_path / "run.yaml"
    config.write_text("strict_subtitles: true\n")
    assert run(*base, "--config", str(config))[0] == 1
    assert [c.strict_subtitles for c in configs] == [False, True, True]
    config.write_text("strict_subtitles: maybe\n")
    code, out = run(*base, "--config", str(config))
    assert code == 1 and "strict_subtitles must be true or false" in out
    assert len(configs) == 3
