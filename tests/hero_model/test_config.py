"""HeroConfig: the named sizes, YAML files (all of configs/model/), overrides, every check."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml

from hero_model.config import CONFIG_NAMES, HeroConfig, HeroConfigError, build_config, hero_config

REPO = Path(__file__).resolve().parents[2]
MODEL_CONFIGS = sorted((REPO / "configs" / "model").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_base_is_heros_pretraining_model() -> None:
    c = build_config("base")
    assert (c.hidden, c.heads, c.ffn, c.cross_layers, c.temporal_layers) == (768, 12, 3072, 6, 3)
    assert (c.vocab_size, c.padded_vocab_size, c.feature_dim) == (50265, 50272, 4352)
    assert (c.max_clip_steps, c.max_tokens, c.max_text_positions) == (100, 60, 514)
    assert (c.pad_id, c.cls_id, c.sep_id, c.mask_id) == (1, 0, 2, 50264)
    assert (c.mlm_prob, c.mfm_prob, c.fom_prob, c.vsm_queries, c.vsm_margin) == (
        0.15,
        0.15,
        0.15,
        5,
        0.1,
    )
    assert (c.hard_negative_start_step, c.hard_negative_pool, c.hard_negative_weight) == (
        20000,
        20,
        10.0,
    )
    assert c.head_dim == 64


def test_tiny_and_overrides() -> None:
    tiny = build_config("tiny")
    assert tiny.hidden == 32 and tiny.mask_id == 4
    assert tiny.padded_vocab_size % 8 == 0
    c = build_config("tiny", dropout=0.0, cross_layers=3)
    assert (c.dropout, c.cross_layers, c.hidden) == (0.0, 3, 32)
    with pytest.raises(
        HeroConfigError, match=r"^overrides: unknown option 'hiden'; did you mean 'hidden'\?"
    ):
        build_config("tiny", hiden=16)


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: p.name)
def test_every_model_config_file_loads_and_opens_with_its_command(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(f"# hero train --config {path.stem} "), first
    assert build_config(path) == hero_config(path.stem)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["extends"] == path.stem


def test_model_config_files_cover_the_named_configs() -> None:
    assert sorted(p.stem for p in MODEL_CONFIGS) == sorted(CONFIG_NAMES)


def test_yaml_extends_and_round_trip(tmp_path: Path) -> None:
    c = build_config("tiny", dropout=0.0)
    path = write(tmp_path, yaml.safe_dump({"extends": "tiny", **c.to_dict()}))
    assert build_config(path) == c
    # fields left out come from `extends`, base by default
    assert build_config(write(tmp_path, "hidden: 96\n")) == HeroConfig(hidden=96)
    assert build_config(write(tmp_path, "extends: tiny\nheads: 4\n")).heads == 4
    # YAML 1.1 reads 1e-5 as a string; float fields accept it
    assert build_config(write(tmp_path, "norm_eps: 1e-5\n")).norm_eps == 1e-5
    assert build_config(write(tmp_path, "")) == HeroConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hiden: 8\n", r"unknown option 'hiden'; did you mean 'hidden'\?"),
        ("hidden: 8.5\n", r"hidden must be a whole number, got 8.5"),
        ("hidden: true\n", r"hidden must be a whole number, got True"),
        ("dropout: high\n", r"dropout must be a number, got 'high'"),
        ("extends: huge\n", r"extends must be one of base, tiny, got 'huge'"),
        ("- 1\n- 2\n", r"expected a mapping of model config fields, got a list"),
        ("hidden: [\n", r"not valid YAML"),
        ("hidden: 100\n", r"hidden \(100\) must be a multiple of heads \(12\)"),
    ],
)
def test_yaml_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(HeroConfigError, match=message) as info:
        build_config(path)
    assert str(info.value).startswith(f"{path}: ")


def test_the_old_max_steps_key_names_its_new_name(tmp_path: Path) -> None:
    """``max_steps`` (steps per clip) became ``max_clip_steps``, as ``max_steps`` also meant the
    trainer's optimizer steps: a file, overrides or a checkpoint's config with the old key is
    refused, naming the new one (a "did you mean" could guess ``max_step_positions``)."""
    path = write(tmp_path, "max_steps: 40\n")
    with pytest.raises(HeroConfigError) as info:
        build_config(path)
    assert str(info.value) == f"{path}: 'max_steps' was renamed 'max_clip_steps': rename the key"
    assert info.value.key == "max_steps"
    with pytest.raises(HeroConfigError, match=r"^overrides: 'max_steps' was renamed"):
        build_config("tiny", max_steps=40)
    saved = {**build_config("tiny").to_dict(), "max_steps": 64}
    del saved["max_clip_steps"]
    with pytest.raises(HeroConfigError, match=r"^'max_steps' was renamed 'max_clip_steps'"):
        HeroConfig(**saved)
    with pytest.raises(HeroConfigError, match=r"unknown option 'max_stepz'; did you mean"):
        build_config("tiny", max_stepz=40)  # other unknown keys still get a guess


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(HeroConfigError, match=r"model config file not found"):
        build_config(tmp_path / "nope.yaml")
    with pytest.raises(HeroConfigError, match=r"not a named config \(base, tiny\)"):
        build_config("large")
    with pytest.raises(HeroConfigError, match=r"unknown model config 'large'"):
        hero_config("large")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("vocab_size", 0, "vocab_size must be greater than 0, got 0"),
        ("heads", 5, r"hidden \(768\) must be a multiple of heads \(5\)"),
        ("vsm_kernel", 4, "vsm_kernel must be odd"),
        ("dropout", 1.0, r"dropout must be less than 1, got 1"),
        ("mlm_prob", 0.0, r"mlm_prob must be greater than 0, got 0"),
        ("fom_prob", 1.5, r"fom_prob must be at most 1, got 1.5"),
        ("nce_temperature", 0.0, "nce_temperature must be greater than 0"),
        ("vsm_margin", -0.1, "vsm_margin must be at least 0, got -0.1"),
        ("hard_negative_start_step", -2, "or -1 for never"),
        ("max_tokens", 514, r"max_tokens \+ 1 .* must fit in max_text_positions"),
        ("max_clip_steps", 600, r"max_clip_steps \(600\) must be <= max_step_positions \(514\)"),
        ("mask_id", 50265, "mask_id 50265 is outside the vocabulary"),
        ("mask_id", 1, "must be four different tokens"),
        ("random_token_high", 4, "must be a non-empty range"),
        ("init_std", float("nan"), "init_std must be a finite number"),
    ],
)
def test_validation(field: str, value: object, message: str) -> None:
    with pytest.raises(HeroConfigError, match=message) as info:
        HeroConfig(**{field: value})
    assert info.value.key is not None


def test_config_and_error_pickle() -> None:
    c = build_config("tiny")
    assert pickle.loads(pickle.dumps(c)) == c
    e = HeroConfigError("bad", "f.yaml", "hidden")
    back = pickle.loads(pickle.dumps(e))
    assert (str(back), back.key) == ("f.yaml: bad", "hidden")
