"""``hero run`` options: precedence, every validation message, the example config."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from extract.config import ExtractConfig
from pipelines.config import (
    CONTENT_KEYS,
    ConfigError,
    RunConfig,
    build_config,
    load_config,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "run.example.yaml"
BASE = {"input": "videos", "output": "out"}


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- precedence -------------------------------------------------------------------------------


def test_defaults() -> None:
    cfg = build_config({}, BASE)
    assert cfg == RunConfig(input="videos", output="out")
    assert (cfg.frame_interval, cfg.clip_length, cfg.backend, cfg.device) == (
        1.5,
        60.0,
        "pyav",
        "auto",
    )
    assert (cfg.batch_size, cfg.workers, cfg.gpus_per_worker, cfg.max_attempts) == (
        16,
        None,
        1.0,
        3,
    )
    assert (cfg.rows_per_shard, cfg.strict, cfg.overwrite, cfg.language) == (
        1024,
        False,
        False,
        None,
    )


def test_flag_beats_file_beats_default(tmp_path: Path) -> None:
    path = write(
        tmp_path, "input: a\noutput: b\nframe_interval: 2.0\nclip_length: 40\nbatch_size: 8\n"
    )
    cfg = build_config(
        load_config(path),
        {"frame_interval": 1.0, "batch_size": None, "output": "c", "workers": None},
        source=path,
    )
    assert cfg.frame_interval == 1.0  # flag over file
    assert cfg.batch_size == 8  # file over default (the flag was not given)
    assert cfg.clip_length == 40.0 and isinstance(cfg.clip_length, float)
    assert (cfg.input, cfg.output) == ("a", "c")
    assert cfg.rows_per_shard == 1024  # default


def test_file_can_set_none_and_flags_only(tmp_path: Path) -> None:
    path = write(tmp_path, "input: a\noutput: b\nclip_length: null\nworkers: ~\n")
    cfg = build_config(load_config(path), {}, source=path)
    assert cfg.clip_length is None and cfg.workers is None
    assert build_config({}, {**BASE, "clip_length": 30.0}).clip_length == 30.0


def test_whole_floats_become_ints() -> None:
    cfg = build_config({"batch_size": 32.0, "workers": 4.0}, BASE)
    assert (cfg.batch_size, cfg.workers) == (32, 4)
    assert isinstance(cfg.batch_size, int) and isinstance(cfg.workers, int)


def test_cpu_device_needs_no_gpu() -> None:
    assert build_config({"device": "cpu"}, BASE).gpus_per_worker == 0.0
    assert build_config({"device": "cpu", "gpus_per_worker": 0}, BASE).gpus_per_worker == 0.0
    assert build_config({"device": "cuda:1", "gpus_per_worker": 0.25}, BASE).gpus_per_worker == 0.25


# --- validation messages ----------------------------------------------------------------------

FILE_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({"frame_interval": "abc"}, "frame_interval", "frame_interval must be a number, got 'abc'"),
    ({"frame_interval": True}, "frame_interval", "frame_interval must be a number, got True"),
    (
        {"frame_interval": float("nan")},
        "frame_interval",
        "frame_interval must be a finite number, got nan",
    ),
    ({"frame_interval": 0}, "frame_interval", "frame_interval must be greater than 0, got 0"),
    ({"frame_interval": -1.5}, "frame_interval", "frame_interval must be greater than 0, got -1.5"),
    (
        {"frame_interval": 0.01},
        "frame_interval",
        "frame_interval must be at least 0.01667 s (one frame of the 30 fps 3D window), got 0.01",
    ),
    (
        {"clip_length": 50},
        "clip_length",
        "clip_length: clip length 50.0 s is not a whole number of 1.5 s steps (50.0 / 1.5 = "
        "33.3333); use 49.5 s or 51 s, or another frame interval",
    ),
    ({"clip_length": 0}, "clip_length", "clip_length: clip length must be positive, got 0.0 s"),
    ({"clip_length": "60s"}, "clip_length", "clip_length must be a number, got '60s'"),
    ({"batch_size": 0}, "batch_size", "batch_size must be at least 1, got 0"),
    ({"batch_size": 2.5}, "batch_size", "batch_size must be a whole number, got 2.5"),
    ({"batch_size": "16"}, "batch_size", "batch_size must be a whole number, got '16'"),
    ({"max_attempts": 0}, "max_attempts", "max_attempts must be at least 1, got 0"),
    ({"rows_per_shard": -4}, "rows_per_shard", "rows_per_shard must be at least 1, got -4"),
    ({"workers": 0}, "workers", "workers must be at least 1, got 0"),
    ({"cpus_per_worker": 0}, "cpus_per_worker", "cpus_per_worker must be greater than 0, got 0"),
    ({"gpus_per_worker": -1}, "gpus_per_worker", "gpus_per_worker must be at least 0, got -1"),
    ({"video_timeout_s": 0}, "video_timeout_s", "video_timeout_s must be greater than 0, got 0"),
    (
        {"timeout_per_video_second": -1},
        "timeout_per_video_second",
        "timeout_per_video_second must be at least 0, got -1",
    ),
    ({"min_timeout_s": 0}, "min_timeout_s", "min_timeout_s must be greater than 0, got 0"),
    ({"strict": "yes please"}, "strict", "strict must be true or false, got 'yes please'"),
    (
        {"strict_subtitles": "no"},
        "strict_subtitles",
        "strict_subtitles must be true or false, got 'no'",
    ),
    ({"overwrite": 1}, "overwrite", "overwrite must be true or false, got 1"),
    (
        {"random_weights": "true"},
        "random_weights",
        "random_weights must be true or false, got 'true'",
    ),
    ({"input": ""}, "input", "input must be a non-empty string, got ''"),
    ({"output": 3}, "output", "output must be a non-empty string, got 3"),
    ({"tokenizer": ["a"]}, "tokenizer", "tokenizer must be a non-empty string, got ['a']"),
    ({"address": " "}, "address", "address must be a non-empty string, got ' '"),
    (
        {"backend": "ffmpeg"},
        "backend",
        "backend must be one of pyav, decord, torchcodec, got 'ffmpeg'",
    ),
    ({"device": "gpu"}, "device", "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    ({"sampling": "linear"}, "sampling", "sampling must be one of hero, uniform, got 'linear'"),
    ({"offline": "no"}, "offline", "offline must be true or false, got 'no'"),
    ({"device": "cuda:x"}, "device", "device must be auto, cpu, cuda or cuda:N, got 'cuda:x'"),
    (
        {"language": "english", "subtitles": "c.json"},
        "language",
        "language must be a language code like 'en', got 'english'",
    ),
    (
        {"random_weights": True, "slowfast_weights": "sf.pyth"},
        "slowfast_weights",
        "slowfast_weights and random_weights exclude each other: give weight files or "
        "random_weights: true, not both",
    ),
    (
        {"language": "en"},
        "language",
        "language filters HowTo100M captions: it needs subtitles (the caption JSON)",
    ),
    (
        {"device": "cuda", "gpus_per_worker": 0},
        "gpus_per_worker",
        "gpus_per_worker is 0 but device is 'cuda': a CUDA worker needs a GPU",
    ),
    ({"output": "videos"}, "output", "output must not be the input"),
    (
        {"video_timeout_s": 900, "min_timeout_s": 60},
        "video_timeout_s",
        "video_timeout_s fixes the timeout, so min_timeout_s (which only shapes the automatic "
        "one) must not be set too",
    ),
    (
        {"video_timeout_s": 900, "timeout_per_video_second": 1},
        "video_timeout_s",
        "video_timeout_s fixes the timeout, so timeout_per_video_second (which only shapes the "
        "automatic one) must not be set too",
    ),
    (
        {"device": "cpu", "gpus_per_worker": 0.5},
        "gpus_per_worker",
        "gpus_per_worker is 0.5 but device is 'cpu'",
    ),
    (
        {"frame_intervall": 1.5},
        "frame_intervall",
        "unknown option 'frame_intervall'; did you mean 'frame_interval'?",
    ),
    (
        {"clip-length": 60},
        "clip-length",
        "unknown option 'clip-length'; did you mean 'clip_length'?",
    ),
    ({"zzz": 1}, "zzz", "unknown option 'zzz'"),
    ({"input": None}, "input", "input is required (in the config file or as --input)"),
]


@pytest.mark.parametrize(("values", "key", "message"), FILE_ERRORS)
def test_every_validation_error_names_file_and_key(
    values: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        build_config({**BASE, **values}, {}, source="run.yaml")
    assert str(e.value) == f"run.yaml: {message}"
    assert (e.value.source, e.value.key) == ("run.yaml", key)


def test_errors_from_flags_name_the_command_line() -> None:
    with pytest.raises(ConfigError, match=r"^command line: batch_size must be at least 1") as e:
        build_config({}, {**BASE, "batch_size": 0}, source="run.yaml")
    assert e.value.key == "batch_size"
    with pytest.raises(ConfigError, match=r"^command line: unknown option 'fps'"):
        build_config({}, {**BASE, "fps": 2})
    with pytest.raises(ConfigError, match=r"^command line: output is required"):
        build_config({}, {"input": "a"})


def test_a_conflict_across_sources_names_both() -> None:
    with pytest.raises(ConfigError) as e:
        build_config({**BASE, "clip_length": 60}, {"frame_interval": 1.6}, source="run.yaml")
    assert str(e.value).startswith(
        "run.yaml (clip_length), command line (frame_interval): clip_length: clip length 60.0 s"
    )
    assert e.value.key == "clip_length"


def test_a_moot_option_at_its_default_is_no_conflict() -> None:
    cfg = build_config(
        {"video_timeout_s": 900, "min_timeout_s": 300.0, "device": "cpu", "gpus_per_worker": 1.0},
        BASE,
    )
    assert (cfg.video_timeout_s, cfg.gpus_per_worker) == (900.0, 0.0)


def test_run_config_checks_itself() -> None:
    with pytest.raises(ConfigError, match=r"^frame_interval must be a number") as e:
        RunConfig(input="a", output="b", frame_interval="x")  # type: ignore[arg-type]
    assert (e.value.source, e.value.key) == (None, "frame_interval")
    with pytest.raises(ConfigError, match="not a whole number"):
        RunConfig(input="a", output="b", frame_interval=1.6)


def test_config_error_pickles() -> None:
    copy = pickle.loads(pickle.dumps(ConfigError("bad", "run.yaml", "batch_size")))
    assert (str(copy), copy.key) == ("run.yaml: bad", "batch_size")


# --- reading YAML -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- input: a\n", "expected a mapping of options, got a list"),
        ("just words\n", "expected a mapping of options, got a str"),
        ("input: [a\n", "not valid YAML: line 2: "),
        ("input: a\n  bad: indent\n", "not valid YAML: line 2: mapping values are not allowed"),
        ("input: a\noutput: b\ninput: c\n", "not valid YAML: line 3: key 'input' given twice"),
        ("1: a\n", "option names must be strings, got 1"),
    ],
)
def test_bad_yaml_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"^{re.escape(path)}: {re.escape(message)}"):
        load_config(path)


def test_load_config_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"none\.yaml: no such file"):
        load_config(str(tmp_path / "none.yaml"))
    (tmp_path / "latin.yaml").write_bytes(b"input: vid\xe9os\n")
    with pytest.raises(ConfigError, match=r"latin\.yaml: not UTF-8 text"):
        load_config(str(tmp_path / "latin.yaml"))
    assert load_config(write(tmp_path, "# nothing yet\n")) == {}


def test_load_config_reads_fsspec_urls() -> None:
    import fsspec

    url = "memory://hero-test-config/run.yaml"
    with fsspec.open(url, "w") as f:
        f.write("input: s3://b/videos\noutput: s3://b/out\n")
    try:
        assert load_config(url) == {"input": "s3://b/videos", "output": "s3://b/out"}
    finally:
        fsspec.filesystem("memory").rm("/hero-test-config", recursive=True)


# --- the example config -----------------------------------------------------------------------


def test_example_config_is_valid_and_all_defaults() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.startswith("# hero run --config configs/run.example.yaml\n")
    values = load_config(str(EXAMPLE))
    assert set(values) == set(RunConfig.model_fields)  # every option
    assert set(values["extract"]) == set(ExtractConfig.model_fields)
    cfg = build_config(values, {}, source=str(EXAMPLE))
    assert cfg == RunConfig(input=cfg.input, output=cfg.output)


def test_example_config_comments_every_option() -> None:
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, rest = line.partition(":")
            assert "#" in rest, f"{key} has no comment"


# --- derived values ---------------------------------------------------------------------------


def test_dataset_config_holds_the_content_keys_only() -> None:
    cfg = build_config({}, BASE)
    assert cfg.dataset_config() == {
        "frame_interval": 1.5,
        "clip_length": 60.0,
        "language": None,
        "random_weights": False,
        "sampling": "hero",
        "features": ["resnet", "slowfast"],
    }
    assert tuple(cfg.dataset_config()) == CONTENT_KEYS
    work_only = cfg.updated(
        device="cpu",
        workers=3,
        batch_size=2,
        address="auto",
        video_timeout_s=5.0,
        max_attempts=1,
        backend="decord",
        resnet_weights="/w/r.pth",
        tokenizer="/t.json",
        rows_per_shard=8,
        input="other",
        offline=True,
    )
    assert work_only.dataset_config() == cfg.dataset_config()
    assert cfg.updated(sampling="uniform").dataset_config() != cfg.dataset_config()
    other_set = cfg.updated(features="clip_vit_b32,slowfast").dataset_config()
    assert other_set["features"] == ["clip_vit_b32", "slowfast"]
    assert cfg.updated(clip_length=None).dataset_config()["clip_length"] is None
    assert cfg.updated(frame_interval=1.0).dataset_config() != cfg.dataset_config()


def test_a_default_set_dataset_records_what_datasets_recorded_before_feature_sets() -> None:
    """Datasets made before a feature set could be chosen still resume: a resume compares the
    recorded config for equality, and for the default set the pipeline records exactly what
    they hold (no ``features`` key; models and preprocessing as written then, verbatim)."""
    from pipelines.run import dataset_config

    cfg = build_config({}, {**BASE, "random_weights": True})
    assert dataset_config(cfg) == {
        "frame_interval": 1.5,
        "clip_length": 60.0,
        "language": None,
        "random_weights": True,
        "sampling": "hero",
        "weights_sha256": {"resnet": "random", "slowfast": "random"},
        "models": {
            "resnet": "torchvision resnet152 (ImageNet), global average pool, L2-normalised",
            "slowfast": "pytorchvideo slowfast_r50 8x8 (Kinetics-400), pooled slow||fast",
        },
        "preprocessing": {
            "image": "frame before (i+1/2)L, short side 224 (bicubic, long side truncated), "
            "aspect kept, ImageNet mean/std",
            "window": "frames before iL+(j+1/2)/30, j<45, short side 224 (long side "
            "truncated), centre crop 224 at int((w-224)/2); 32 fast / 8 slow frames by the "
            "sampling rule; /255, mean 0.45, std 0.225",
        },
        "tokenizer": None,
    }
    other = dataset_config(cfg.updated(features="milnce_s3d,slowfast"))
    assert other["features"] == ["milnce_s3d", "slowfast"]
    assert list(other["models"]) == list(other["preprocessing"]) == ["milnce_s3d", "slowfast"]


def test_timeout_for() -> None:
    cfg = build_config({}, BASE)
    assert cfg.timeout_for(10.0) == 300.0  # the minimum
    assert cfg.timeout_for(3600.0) == 14400.0  # 4 s per second of video
    assert cfg.updated(video_timeout_s=42.0).timeout_for(3600.0) == 42.0


# --- the extract section ----------------------------------------------------------------------


def test_the_extract_section_and_the_flat_keys_build_the_same_config(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nested = build_config({**BASE, "extract": {"frame_interval": 1.0, "device": "cpu"}}, {})
    assert not caplog.records
    flat = build_config({**BASE, "frame_interval": 1.0, "device": "cpu"}, {}, source="old.yaml")
    assert nested == flat
    assert (nested.extract.frame_interval, nested.frame_interval) == (1.0, 1.0)
    assert "old.yaml: extraction options at the top level" in caplog.text
    caplog.clear()
    build_config({**BASE, "device": "cpu"}, {}, source="old.yaml")
    assert not caplog.records  # once per file


def test_a_flag_overrides_a_key_of_the_extract_section() -> None:
    cfg = build_config({**BASE, "extract": {"batch_size": 8, "device": "cpu"}}, {"batch_size": 4})
    assert (cfg.extract.batch_size, cfg.extract.device) == (4, "cpu")


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ({"batch_size": 0}, "extract.batch_size", "extract.batch_size must be at least 1, got 0"),
        (
            {"batchsize": 8},
            "extract.batchsize",
            "unknown option 'extract.batchsize'; did you mean 'batch_size'?",
        ),
        (
            {"pixels": "gpu"},
            "extract.pixels",
            "extract.pixels must be one of auto, swscale, torch, got 'gpu'",
        ),
        (
            {"decoder": "gpu"},
            "extract.decoder",
            "extract.decoder must be one of auto, cpu, nvdec, got 'gpu'",
        ),
        (
            {"decoder": "nvdec", "device": "cpu"},
            "extract.decoder",
            "decoder nvdec decodes on the GPU: it needs a CUDA device, not 'cpu'",
        ),
        (
            {"random_weights": True, "resnet_weights": "r.pth"},
            "extract.resnet_weights",
            "resnet_weights and random_weights exclude each other: give weight files or "
            "random_weights: true, not both",
        ),
        (
            {"features": ["clip_vit_b32", "clip"]},
            "extract.features",
            "unknown feature set 'clip'; known: resnet, slowfast, clip_vit_b32, clip_rn50x4, "
            "milnce_s3d",
        ),
    ],
)
def test_errors_in_the_extract_section_name_the_key_path(
    section: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        build_config({**BASE, "extract": section}, {}, source="run.yaml")
    assert str(e.value) == f"run.yaml: {message}"
    assert e.value.key == key


def test_features_are_set_in_the_extract_section_or_by_a_flag() -> None:
    section = {"features": ["clip_vit_b32", "slowfast"], "weights": {"clip_vit_b32": "v.pt"}}
    cfg = build_config({**BASE, "extract": section}, {})
    assert cfg.extract.features == ("clip_vit_b32", "slowfast")
    assert cfg.extract.weights_for("clip_vit_b32") == "v.pt"
    flag = build_config({**BASE, "extract": section}, {"features": "clip_vit_b32,milnce_s3d"})
    assert flag.extract.features == ("clip_vit_b32", "milnce_s3d")
    assert build_config(BASE, {}).extract.features == ("resnet", "slowfast")


def test_pixels_and_decoder_are_set_in_the_extract_section_or_by_flags() -> None:
    cfg = build_config({**BASE, "extract": {"pixels": "torch", "decoder": "cpu"}}, {})
    assert (cfg.extract.pixels, cfg.extract.decoder) == ("torch", "cpu")
    cfg = build_config({**BASE, "extract": {"pixels": "torch"}}, {"decoder": "nvdec"})
    assert (cfg.extract.pixels, cfg.extract.decoder) == ("torch", "nvdec")
    assert "decoder" not in CONTENT_KEYS and "pixels" not in CONTENT_KEYS  # how, not what
    with pytest.raises(ConfigError) as e:
        build_config(
            {**BASE, "extract": {"pixels": "swscale"}}, {"decoder": "nvdec"}, source="r.yaml"
        )
    assert "pixels must be torch or auto, not swscale" in str(e.value)
    assert "r.yaml" in str(e.value) and "command line" in str(e.value)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is available here")
def test_a_local_run_refuses_nvdec_before_ray_starts_and_a_cluster_run_leaves_it_to_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from extract.nvdec import NvdecUnavailable
    from pipelines.run import _check_decoder

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = build_config({**BASE, "extract": {"decoder": "nvdec"}}, {})
    with pytest.raises(NvdecUnavailable, match="decoder 'nvdec' cannot be used: the extraction"):
        _check_decoder(cfg)
    _check_decoder(cfg.model_copy(update={"address": "ray://head:10001"}))
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    _check_decoder(cfg)
    monkeypatch.delenv("RAY_ADDRESS")
    _check_decoder(build_config(BASE, {}))  # auto: never refused


def test_a_run_config_survives_a_dump_and_pickling() -> None:
    cfg = build_config({"extract": {"device": "cpu", "sampling": "uniform"}}, BASE)
    assert RunConfig(**cfg.model_dump()) == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(Exception, match="frozen"):
        cfg.workers = 2  # type: ignore[misc]
