"""Named feature sets: HERO's default schema unchanged, other sets written and read back, and
records or datasets of another set refused."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pyarrow as pa
import pytest

from hero_data.errors import DatasetError, FeatureSetError, HeroError
from hero_data.features import DEFAULT_FEATURES, FeatureColumn, FeatureSet, check_same_sets
from hero_data.manifest import MANIFEST_NAME, load_manifest
from hero_data.reader import HeroDataset
from hero_data.schema import clip_schema, to_record_batch
from hero_data.writer import DatasetWriter, ShardWriter, new_run_id
from tests.conftest import make_record

CLIP_SLOWFAST = FeatureSet.of(("clip_vit_b32", 512), ("slowfast", 2304))
CONFIG = {"frame_interval": 1.5}

# The shard schema of every dataset written before feature sets were named, spelt out, and the
# sha256 of its Arrow serialization then (hero_data/schema.py at 288d51c).
_HALF_STEPS = {
    "resnet": pa.list_(pa.list_(pa.float16(), 2048)),
    "slowfast": pa.list_(pa.list_(pa.float16(), 2304)),
}
_CUE = pa.struct(
    [
        pa.field("start", pa.float64(), nullable=False),
        pa.field("end", pa.float64(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("speaker", pa.string()),
    ]
)
HERO_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("clip_index", pa.int32(), nullable=False),
        pa.field("clip_start", pa.float64(), nullable=False),
        pa.field("clip_end", pa.float64(), nullable=False),
        pa.field("frame_interval", pa.float64(), nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),
        pa.field("resnet", _HALF_STEPS["resnet"], nullable=False),
        pa.field("slowfast", _HALF_STEPS["slowfast"], nullable=False),
        pa.field("cues", pa.list_(_CUE), nullable=False),
        pa.field("cue_token_ids", pa.list_(pa.list_(pa.int32())), nullable=False),
        pa.field("sub2frames", pa.list_(pa.list_(pa.int32())), nullable=False),
        pa.field("unique_sub2frames", pa.list_(pa.list_(pa.int32())), nullable=False),
        pa.field("unmatched_frames", pa.list_(pa.int32()), nullable=False),
    ],
    metadata={b"hero.schema_version": b"1"},
)
HERO_SCHEMA_SHA256 = "55ba1b6a0462cd468aaa10e2cb256102df0255eba992ead4fb109cd73cbc2ae2"


def test_the_default_set_gives_heros_schema_byte_for_byte():
    assert DEFAULT_FEATURES.names == ("resnet", "slowfast") and DEFAULT_FEATURES.dim == 4352
    for schema in (clip_schema(), clip_schema(DEFAULT_FEATURES)):
        assert schema.equals(HERO_SCHEMA, check_metadata=True)
        serialized = schema.serialize().to_pybytes()
        assert hashlib.sha256(serialized).hexdigest() == HERO_SCHEMA_SHA256


def test_another_set_puts_its_columns_where_resnet_and_slowfast_were():
    schema = clip_schema(CLIP_SLOWFAST)
    assert schema.names[8:10] == ["clip_vit_b32", "slowfast"]
    assert schema.field("clip_vit_b32").type == pa.list_(pa.list_(pa.float16(), 512))
    assert [n for n in schema.names if n not in CLIP_SLOWFAST.names] == [
        n for n in HERO_SCHEMA.names if n not in DEFAULT_FEATURES.names
    ]


def test_feature_set_json_round_trip_and_validation():
    with_config = FeatureSet(
        (FeatureColumn("clip_vit_b32", 512, {"model": "ViT-B/32"}), FeatureColumn("slowfast", 2304))
    )
    back = FeatureSet.from_json(json.loads(json.dumps(with_config.to_json())))
    assert back == with_config and back.columns[0].extractor == {"model": "ViT-B/32"}
    assert back.dim == 2816 and back.describe() == "clip_vit_b32(512)+slowfast(2304)"
    for bad, match in (
        ([], "at least one"),
        ([{"name": "resnet", "dim": 2048}] * 2, "names a column twice"),
        ([{"name": "Bad-Name", "dim": 3}], "lower-case identifier"),
        ([{"name": "cues", "dim": 3}], "a column of the schema"),
        ([{"name": "x", "dim": 0}], "positive int"),
        ([{"name": "x"}], "lacks its name or dim"),
        ({"name": "x"}, "must be a list"),
    ):
        with pytest.raises(FeatureSetError, match=match):
            FeatureSet.from_json(bad)
    assert issubclass(FeatureSetError, HeroError)


def test_a_non_default_set_is_written_recorded_and_read_back(tmp_path):
    records = [make_record(f"v{k}", 0, 12.0, seed=k, features=CLIP_SLOWFAST) for k in range(3)]
    assert records[0].visual().shape == (8, 2816)
    with DatasetWriter(tmp_path / "ds", CONFIG, features=CLIP_SLOWFAST) as w:
        w.write_many(records)
    raw = json.loads((tmp_path / "ds" / MANIFEST_NAME).read_text())
    assert [(c["name"], c["dim"]) for c in raw["features"]] == [
        ("clip_vit_b32", 512),
        ("slowfast", 2304),
    ]
    assert load_manifest(tmp_path / "ds").features == CLIP_SLOWFAST
    ds = HeroDataset.open(tmp_path / "ds", verify="full")
    assert ds.feature_set == CLIP_SLOWFAST and ds.feature_dim == 2816
    for want in records:
        got = ds[want.clip_id]
        assert list(got.features) == ["clip_vit_b32", "slowfast"]
        assert got.visual().tobytes() == want.visual().tobytes()
        views = ds.features(want.clip_id)
        assert views["clip_vit_b32"].tobytes() == want.features["clip_vit_b32"].tobytes()
    assert ds.table().schema.equals(clip_schema(CLIP_SLOWFAST), check_metadata=False)


def test_a_manifest_without_features_holds_the_default_set(tmp_path):
    with DatasetWriter(tmp_path / "ds", CONFIG) as w:
        w.write(make_record("v", 0, 6.0))
    path = tmp_path / "ds" / MANIFEST_NAME
    raw = json.loads(path.read_text())
    assert raw["features"] == DEFAULT_FEATURES.to_json()
    del raw["features"]
    path.write_text(json.dumps(raw))
    ds = HeroDataset.open(tmp_path / "ds")
    assert ds.feature_set == DEFAULT_FEATURES and ds.feature_dim == 4352
    assert ds[0].visual().shape == (4, 4352)


def test_records_of_another_set_are_refused(tmp_path):
    with DatasetWriter(tmp_path / "ds", CONFIG) as w:
        with pytest.raises(FeatureSetError, match=r"clip v\.0 has features clip_vit_b32\(512\)"):
            w.write(make_record("v", 0, 6.0, features=CLIP_SLOWFAST))
    wider = FeatureSet.of(("resnet", 2048), ("slowfast", 2305))
    with pytest.raises(FeatureSetError, match=r"slowfast\(2304\) but the dataset's feature set"):
        to_record_batch([make_record("v", 0, 6.0)], wider)
    swapped = FeatureSet.of(("slowfast", 2304), ("resnet", 2048))
    with ShardWriter(tmp_path / "ds", run=new_run_id(), features=swapped) as sw:
        with pytest.raises(FeatureSetError):
            sw.write(make_record("w", 0, 6.0))  # same columns in another order


def test_reopening_a_dataset_with_another_set_is_refused(tmp_path):
    with DatasetWriter(tmp_path / "ds", CONFIG) as w:
        w.write(make_record("v", 0, 6.0))
    with pytest.raises(FeatureSetError, match=r"holds features resnet\(2048\)\+slowfast"):
        with DatasetWriter(tmp_path / "ds", CONFIG, mode="append", features=CLIP_SLOWFAST):
            pass
    with DatasetWriter(tmp_path / "ds", CONFIG, mode="overwrite", features=CLIP_SLOWFAST) as w:
        w.write(make_record("v", 0, 6.0, features=CLIP_SLOWFAST))
    assert HeroDataset.open(tmp_path / "ds").feature_set == CLIP_SLOWFAST


def test_shards_that_disagree_with_the_manifests_set_do_not_open(tmp_path):
    with DatasetWriter(tmp_path / "ds", CONFIG, features=CLIP_SLOWFAST) as w:
        w.write(make_record("v", 0, 6.0, features=CLIP_SLOWFAST))
    path = tmp_path / "ds" / MANIFEST_NAME
    raw = json.loads(path.read_text())
    raw["features"] = DEFAULT_FEATURES.to_json()
    path.write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match=r"for the dataset's feature set resnet\(2048\)"):
        HeroDataset.open(tmp_path / "ds")
    raw["features"] = [{"name": "resnet"}]
    path.write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match="malformed manifest: a features entry lacks"):
        HeroDataset.open(tmp_path / "ds")


def test_check_same_sets_names_both_sources():
    a = FeatureSet(
        (FeatureColumn("resnet", 2048, {"weights": "x"}), FeatureColumn("slowfast", 2304))
    )
    assert check_same_sets([("a", a), ("b", DEFAULT_FEATURES)]) is a  # extractor not compared
    with pytest.raises(FeatureSetError, match=r"^a has features resnet.* but b has clip_vit"):
        check_same_sets([("a", a), ("b", CLIP_SLOWFAST)])


def test_record_features_are_read_only_in_order_and_pickle():
    record = make_record("v", 0, 3.0, features=CLIP_SLOWFAST)
    assert record.feature_set == CLIP_SLOWFAST
    lo = record.features["clip_vit_b32"]
    np.testing.assert_array_equal(record.visual()[:, :512], lo)
    with pytest.raises(TypeError):
        record.features["x"] = lo  # type: ignore[index]
    back = pickle.loads(pickle.dumps(record))  # records cross Ray's process boundaries
    assert back.feature_set == CLIP_SLOWFAST and back.clip == record.clip
    assert back.visual().tobytes() == record.visual().tobytes()
    with pytest.raises(TypeError):
        back.features["x"] = lo  # type: ignore[index]
