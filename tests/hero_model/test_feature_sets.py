"""The model follows the dataset's feature set: its input size comes from the data, datasets
of different sets do not mix, and a checkpoint takes only the set it was trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hero_data.features import DEFAULT_FEATURES, FeatureSet
from hero_data.writer import DatasetWriter
from hero_model.config import HeroConfigError, build_config, for_features
from hero_model.data import DataMixError, describe_sources
from hero_model.runtime import CheckpointError, find_checkpoint
from hero_model.train import (
    TrainConfigError,
    check_checkpoint_features,
    load_train_config,
    run_training,
)
from tests.conftest import make_record

pytestmark = pytest.mark.usefixtures("one_thread")

CLIP_SLOWFAST = FeatureSet.of(("clip_vit_b32", 512), ("slowfast", 2304))


def _dataset(root: Path, features: FeatureSet) -> Path:
    with DatasetWriter(root, {"frame_interval": 1.5}, features=features) as w:
        for k in range(6):
            w.write(make_record(f"v{k}", 0, 12.0, seed=k, n_cues=2, features=features))
    return root


@pytest.fixture(scope="module")
def clip_ds(tmp_path_factory) -> Path:
    return _dataset(tmp_path_factory.mktemp("clip") / "ds", CLIP_SLOWFAST)


@pytest.fixture(scope="module")
def hero_ds(tmp_path_factory) -> Path:
    return _dataset(tmp_path_factory.mktemp("hero") / "ds", DEFAULT_FEATURES)


def tiny(*data: Path, **overrides) -> object:
    values = {
        "data": tuple(str(d) for d in data),
        "max_steps": 2,
        "warmup_steps": 1,
        "checkpoint_every": 2,
        "log_every": 1,
        "loader_workers": 0,
        "batch_size": 2,
        **overrides,
    }
    return load_train_config("tiny", values)


def test_training_takes_the_datasets_feature_dim(clip_ds, tmp_path):
    assert build_config("tiny").feature_dim == 4352  # the preset's, replaced by the data's
    run_training(tiny(clip_ds), tmp_path / "run", progress=False)
    meta = json.loads((find_checkpoint(tmp_path / "run") / "meta.json").read_text())
    assert meta["model_config"]["feature_dim"] == 2816
    assert FeatureSet.from_json(meta["features"]) == CLIP_SLOWFAST
    assert [d["features"] for d in meta["datasets"]] == [CLIP_SLOWFAST.to_json()]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]


def test_datasets_of_different_sets_do_not_mix(clip_ds, hero_ds, tmp_path):
    with pytest.raises(DataMixError) as info:
        describe_sources([hero_ds, clip_ds])
    message = str(info.value)
    assert str(clip_ds) in message and str(hero_ds) in message
    assert "clip_vit_b32(512)+slowfast(2304)" in message
    assert "resnet(2048)+slowfast(2304)" in message
    with pytest.raises(DataMixError, match="need the same set"):
        run_training(tiny(clip_ds, hero_ds), tmp_path / "run", progress=False)


def test_an_explicit_feature_dim_must_match_the_data(clip_ds, tmp_path):
    cfg = tiny(clip_ds, model_overrides={"feature_dim": 4352})
    with pytest.raises(HeroConfigError, match=r"feature_dim 4352 does not match .*2816"):
        run_training(cfg, tmp_path / "run", progress=False)
    same = for_features(build_config("tiny"), CLIP_SLOWFAST, {"feature_dim": 2816})
    assert same.feature_dim == 2816


def test_a_reference_hero_checkpoint_takes_only_heros_set(clip_ds, tmp_path):
    (tmp_path / "hero.pt").write_bytes(b"never read")
    with pytest.raises(TrainConfigError, match=r"takes resnet\(2048\)\+slowfast\(2304\)"):
        run_training(tiny(clip_ds, init_hero=str(tmp_path / "hero.pt")), tmp_path / "run")


def test_a_checkpoint_refuses_data_of_another_set():
    trained = {"features": CLIP_SLOWFAST.to_json()}
    check_checkpoint_features(trained, CLIP_SLOWFAST, "ckpt", "data")
    with pytest.raises(CheckpointError, match=r"ckpt: trained on features clip_vit_b32.* data"):
        check_checkpoint_features(trained, DEFAULT_FEATURES, "ckpt", "data")
    # Checkpoints written before sets were named trained on HERO's.
    check_checkpoint_features({}, DEFAULT_FEATURES, "old", "data")
    with pytest.raises(CheckpointError, match="old: trained on features resnet"):
        check_checkpoint_features({}, CLIP_SLOWFAST, "old", "data")
    with pytest.raises(CheckpointError, match=r"bad features in meta\.json"):
        check_checkpoint_features({"features": [{"dim": 3}]}, CLIP_SLOWFAST, "bad", "data")
