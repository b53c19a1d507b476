"""The on-disk dataset: round trip of every column, writer modes, crashes, and bad files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hero_data.commits import snapshot
from hero_data.features import DEFAULT_FEATURES
from hero_data.manifest import MANIFEST_NAME, DatasetError, load_manifest, sha256_file
from hero_data.reader import HeroDataset
from hero_data.schema import ClipRecord, clip_schema, to_record_batch
from hero_data.types import Clip
from hero_data.writer import DatasetWriter, ErrorLog, read_errors
from tests.conftest import shard_files

CONFIG = {"frame_interval": 1.5, "clip_length": 60.0, "models": {"resnet": "random"}}


def assert_same(got: ClipRecord, want: ClipRecord) -> None:
    assert got.clip == want.clip
    assert got.source == want.source
    assert got.frame_interval == want.frame_interval
    assert list(got.features) == list(want.features)
    for name, array in want.features.items():
        assert got.features[name].dtype == np.float16
        np.testing.assert_array_equal(got.features[name], array)
    assert got.cues == want.cues
    assert got.cue_token_ids == want.cue_token_ids
    assert got.sub2frames == want.sub2frames
    assert got.unique_sub2frames == want.unique_sub2frames
    assert got.unmatched_frames == want.unmatched_frames


def write(root: Path, records: list[ClipRecord], **kw) -> None:
    with DatasetWriter(root, CONFIG, **kw) as w:
        w.write_many(records)


@pytest.fixture
def records(record_factory) -> list[ClipRecord]:
    """Varied clips: full and short last clips, no cues, one step, speakers, unicode."""
    out = []
    for v in range(4):
        out.append(record_factory(f"v{v}", 0, 60.0, seed=10 * v))
        out.append(record_factory(f"v{v}", 1, 7.3 + v, seed=10 * v + 1, n_cues=v))
    out.append(record_factory("tiny", 0, 0.4, seed=99, n_cues=1))  # shorter than one step
    return out


def test_round_trip_every_column(tmp_path, records):
    write(tmp_path / "ds", records, max_rows_per_shard=3, batch_rows=2)
    ds = HeroDataset.open(tmp_path / "ds", verify="full")
    assert len(ds) == len(records)
    assert len(ds.manifest.shards) == 3
    for i, want in enumerate(records):
        assert_same(ds[i], want)
        assert_same(ds[want.clip_id], want)
        views = ds.features(want.clip_id)
        assert list(views) == ["resnet", "slowfast"]
        np.testing.assert_array_equal(views["resnet"], want.features["resnet"])
        np.testing.assert_array_equal(views["slowfast"], want.features["slowfast"])
    assert ds.clip_ids() == [r.clip_id for r in records]
    assert ds.table().schema.equals(clip_schema(), check_metadata=False)


def test_features_are_zero_copy_views_of_the_mapped_file(tmp_path, records):
    write(tmp_path / "ds", records, batch_rows=64)
    ds = HeroDataset.open(tmp_path / "ds")
    a = ds.features(0)["resnet"]
    b = ds.features(2)["resnet"]
    # Views of one read-only mapped buffer: not writeable, own no data, same base memory.
    assert not a.flags.writeable and not a.flags.owndata
    assert np.shares_memory(a.base, b.base)
    with pytest.raises(ValueError):
        a[0, 0] = 1


def test_index_errors(tmp_path, records):
    write(tmp_path / "ds", records)
    ds = HeroDataset.open(tmp_path / "ds")
    assert ds[-1].clip_id == records[-1].clip_id
    with pytest.raises(IndexError):
        ds[len(records)]
    with pytest.raises(KeyError, match=r"no clip 'nope\.0'"):
        ds["nope.0"]
    with pytest.raises(TypeError):
        ds[1.5]  # type: ignore[index]


def test_manifest_counts_and_checksums(tmp_path, records):
    write(tmp_path / "ds", records, max_rows_per_shard=4)
    manifest = load_manifest(tmp_path / "ds")
    assert manifest.num_rows == len(records)
    assert manifest.config == json.loads(json.dumps(CONFIG))
    for shard in manifest.shards:
        path = tmp_path / "ds" / shard.name
        assert shard.bytes == path.stat().st_size
        assert shard.sha256 == sha256_file(path)
    # Whole videos per shard: v0 and v1 (4 clips), v2 and v3, then "tiny".
    assert [s.videos for s in manifest.shards] == [("v0", "v1"), ("v2", "v3"), ("tiny",)]
    assert [s.video_rows for s in manifest.shards] == [(2, 2), (2, 2), (1,)]
    names = [s.name for s in manifest.shards]
    assert len(set(names)) == 3
    assert all(re.fullmatch(r"shards/[0-9a-f]{12}-[0-9a-f]{16}\.arrow", n) for n in names)


def test_record_validation(record_factory):
    good = record_factory("v", 0, 60.0)
    resnet, slowfast = good.features["resnet"], good.features["slowfast"]
    feats = good.features
    with pytest.raises(ValueError, match=r"resnet must be \(num_frames, dim\)"):
        ClipRecord(good.clip, "s", 1.5, {"resnet": resnet[0], "slowfast": slowfast})
    with pytest.raises(ValueError, match="non-empty mapping"):
        ClipRecord(good.clip, "s", 1.5, {})
    with pytest.raises(ValueError, match="slowfast has 39"):
        ClipRecord(good.clip, "s", 1.5, {"resnet": resnet, "slowfast": slowfast[:39]})
    with pytest.raises(ValueError, match="40 feature steps, but a 30 s clip"):
        ClipRecord(Clip("v", 0, 0, 30), "s", 1.5, feats)
    with pytest.raises(ValueError, match=r"sub2frames has 1 entries for 3 cues"):
        ClipRecord(good.clip, "s", 1.5, feats, good.cues, sub2frames=[[0]])
    with pytest.raises(ValueError, match=r"outside 0\.\.39"):
        ClipRecord(good.clip, "s", 1.5, feats, unmatched_frames=[40])
    as32 = ClipRecord(
        good.clip, "s", 1.5, {"resnet": resnet.astype(np.float32), "slowfast": slowfast}
    )
    assert as32.features["resnet"].dtype == np.float16
    assert as32.feature_set == DEFAULT_FEATURES
    assert as32.visual().shape == (40, DEFAULT_FEATURES.dim)
    with pytest.raises(TypeError):
        as32.features["resnet"] = resnet  # type: ignore[index]  # a frozen record


# -- writer modes ------------------------------------------------------------------------------


def test_create_refuses_existing_dataset(tmp_path, records):
    write(tmp_path / "ds", records[:2])
    with pytest.raises(DatasetError, match="already exists"):
        write(tmp_path / "ds", records[2:4])
    assert len(HeroDataset.open(tmp_path / "ds")) == 2


def test_append_continues_and_refuses_other_config(tmp_path, records):
    write(tmp_path / "ds", records[:4])
    write(tmp_path / "ds", records[4:], mode="append")
    ds = HeroDataset.open(tmp_path / "ds", verify="full")
    assert [r.clip_id for r in ds] == [r.clip_id for r in records]
    assert len(ds.manifest.shards) == 2
    # A video's clips are committed together: more clips of a committed video are refused.
    with pytest.raises(DatasetError, match=r"already holds video 'v0'"):
        write(tmp_path / "ds", [records[0]], mode="append")
    with pytest.raises(DatasetError, match=r"another config \(differs in \['clip_length'\]\)"):
        with DatasetWriter(tmp_path / "ds", {**CONFIG, "clip_length": 30.0}, mode="append"):
            pass


def test_overwrite_replaces_everything(tmp_path, records):
    write(tmp_path / "ds", records)
    ErrorLog(tmp_path / "ds").record(video_id="x", source="x", stage="probe", error_type="E")
    write(tmp_path / "ds", records[:1], mode="overwrite")
    assert len(HeroDataset.open(tmp_path / "ds")) == 1
    assert read_errors(tmp_path / "ds") == []


def test_one_writer_at_a_time(tmp_path, records):
    root = tmp_path / "ds"
    with DatasetWriter(root, CONFIG, max_rows_per_shard=2) as first:
        first.write_many(records[:3])
        with pytest.raises(DatasetError, match=r"_lease: another run is writing this dataset"):
            DatasetWriter(root, CONFIG, mode="append").open()
        first.write_many(records[3:4])
    write(root, records[4:], mode="append")  # free again once the first closed
    assert [r.clip_id for r in HeroDataset.open(root, verify="full")] == [
        r.clip_id for r in records
    ]


# -- crashes -----------------------------------------------------------------------------------


def test_exception_mid_shard_keeps_only_complete_shards(tmp_path, records):
    root = tmp_path / "ds"
    with pytest.raises(RuntimeError, match="boom"):
        with DatasetWriter(root, CONFIG, max_rows_per_shard=3, batch_rows=1) as w:
            for r in records[:7]:  # v0 and v1 committed; v2 and v3.0 in the second shard
                w.write(r)
            raise RuntimeError("boom")
    ds = HeroDataset.open(root, verify="full")
    assert [r.clip_id for r in ds] == [r.clip_id for r in records[:4]]
    assert [p.name for p in (root / "shards").iterdir()] == [shard_files(root)[0].name]
    # Appending after the failure continues cleanly.
    write(root, records[4:], mode="append")
    assert [r.clip_id for r in HeroDataset.open(root, verify="full")] == [
        r.clip_id for r in records
    ]


_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from conftest import make_record
    from hero_data.writer import DatasetWriter
    with DatasetWriter(sys.argv[1], {"k": 1}, mode="append", max_rows_per_shard=3,
                       batch_rows=1) as w:
        for i in range(100000):
            w.write(make_record(f"v{i}", 0, 30.0, seed=i, n_cues=2))
    """
)


def _stop_mid_shard(proc: subprocess.Popen, root: Path) -> int:
    """SIGSTOP the writer at a moment when it has committed at least two shards and has a
    shard in progress (its temporary file exists); returns the shards committed then."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            committed = len(snapshot(root).shards)
        except DatasetError:  # not created yet
            committed = 0
        if committed >= 2:
            proc.send_signal(signal.SIGSTOP)
            _, status = os.waitpid(proc.pid, os.WUNTRACED)  # returns once it has stopped
            if not os.WIFSTOPPED(status):
                pytest.fail(f"the writer ended (wait status {status}) instead of stopping")
            if list((root / "shards").glob(".*.tmp")):
                return len(snapshot(root).shards)  # stopped: nothing changes any more
            proc.send_signal(signal.SIGCONT)  # caught between two shards; try again
        if proc.poll() is not None:
            pytest.fail(f"the writer exited with {proc.returncode}")
        time.sleep(0.002)
    pytest.fail("the writer was never caught mid-shard with two shards committed in 60 s")


def test_sigkill_mid_shard_leaves_a_readable_dataset(tmp_path, record_factory):
    root = tmp_path / "ds"
    tests_dir = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(root), tests_dir])
    try:
        committed = _stop_mid_shard(proc, root)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert list((root / "shards").glob(".*.tmp"))  # the shard it was writing, left behind
    ds = HeroDataset.open(root, verify="full")
    n = len(ds)
    assert n == 3 * committed  # whole shards only: the ones committed before the kill
    for i in (0, n // 2, n - 1):
        assert_same(ds[i], record_factory(f"v{i}", 0, 30.0, seed=i, n_cues=2))
    # Appending takes over the dead writer's lease at once, carries on from the committed
    # state, and removes the dead writer's leftovers (its run has ended) when it closes.
    with DatasetWriter(root, {"k": 1}, mode="append") as w:
        w.write(record_factory("after", 0, 30.0, seed=1))
    names = sorted(p.name for p in (root / "shards").iterdir())
    assert not [x for x in names if x.endswith(".tmp")]
    ds = HeroDataset.open(root, verify="full")
    assert len(ds) == n + 1 and ds[n].clip_id == "after.0"


def test_uncommitted_shard_is_removed_on_reopen(tmp_path, records):
    """A shard renamed into place just before a crash, but not in the manifest, is dropped."""
    root = tmp_path / "ds"
    write(root, records[:2])
    stray = root / "shards" / "part-00001.arrow"
    stray.write_bytes(shard_files(root)[0].read_bytes())
    assert len(HeroDataset.open(root)) == 2  # readers go by the manifest
    write(root, records[2:3], mode="append")
    ds = HeroDataset.open(root, verify="full")
    assert [r.clip_id for r in ds] == [r.clip_id for r in records[:3]]


# -- bad files ---------------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path, records) -> Path:
    root = tmp_path / "ds"
    write(root, records, max_rows_per_shard=4)
    return root


def _patch_manifest(root: Path, **changes) -> None:
    path = root / MANIFEST_NAME
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _refresh_shard_entry(root: Path, index: int) -> None:
    data = json.loads((root / MANIFEST_NAME).read_text())
    entry = data["shards"][index]
    path = root / entry["name"]
    entry["bytes"], entry["sha256"] = path.stat().st_size, sha256_file(path)
    (root / MANIFEST_NAME).write_text(json.dumps(data))


def test_missing_shard(dataset):
    shard = shard_files(dataset)[1]
    shard.unlink()
    with pytest.raises(DatasetError, match=rf"{shard.name}: missing"):
        HeroDataset.open(dataset)


def test_wrong_checksum(dataset):
    path = shard_files(dataset)[0]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one feature byte changed
    path.write_bytes(bytes(data))
    for kwargs in ({}, {"verify": "auto"}, {"verify": "full"}):  # the default is "auto"
        with pytest.raises(DatasetError, match=rf"{path.name}: sha256 .* does not match"):
            HeroDataset.open(dataset, **kwargs)
    # "fast" is for trusted data: it skips hashing, and a feature byte has no structure to check.
    assert len(HeroDataset.open(dataset, verify="fast")) == 9


def test_unknown_verify_mode(dataset):
    with pytest.raises(ValueError, match="verify must be one of auto, fast, full, got 'sha'"):
        HeroDataset.open(dataset, verify="sha")  # type: ignore[arg-type]


def test_truncated_shard(dataset):
    path = shard_files(dataset)[1]
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetError, match=rf"{path.name}: 5000 bytes, the manifest says"):
        HeroDataset.open(dataset)
    _refresh_shard_entry(dataset, 1)  # even with a manifest that agrees, a clear error
    with pytest.raises(DatasetError, match=rf"{path.name}: not a readable Arrow IPC file"):
        HeroDataset.open(dataset, verify="full")


@pytest.mark.parametrize("kind", ["garbage", "parquet", "foreign_arrow", "old_schema"])
def test_foreign_shard(dataset, records, kind):
    path = shard_files(dataset)[0]
    if kind == "garbage":
        path.write_bytes(b"this is not an arrow file\n" * 100)
        expected = "not a readable Arrow IPC file"
    elif kind == "parquet":
        pq.write_table(pa.table({"x": [1, 2, 3]}), path)
        expected = "not a readable Arrow IPC file"
    elif kind == "foreign_arrow":
        with pa.ipc.new_file(str(path), pa.schema([("x", pa.int64())])) as w:
            w.write_table(pa.table({"x": [1, 2, 3]}))
        expected = "not a HERO shard"
    else:
        schema = clip_schema().with_metadata({b"hero.schema_version": b"0"})
        batch = to_record_batch(records[:4])
        with pa.ipc.new_file(str(path), schema) as w:
            w.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
        expected = "shard schema version 0, this toolkit reads version 1"
    _refresh_shard_entry(dataset, 0)
    with pytest.raises(DatasetError, match=rf"{path.name}: {expected}"):
        HeroDataset.open(dataset)


def test_row_count_disagrees(dataset):
    data = json.loads((dataset / MANIFEST_NAME).read_text())
    data["shards"][0]["rows"] += 1
    data["shards"][0]["video_rows"][0] += 1  # the manifest agrees with itself, not the shard
    (dataset / MANIFEST_NAME).write_text(json.dumps(data))
    name = shard_files(dataset)[0].name
    with pytest.raises(DatasetError, match=rf"{name}: 4 rows, the manifest says 5"):
        HeroDataset.open(dataset)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"schema_version": 99}, "shard schema version 99; this toolkit .* reads version 1"),
        ({"format_version": 7}, "dataset format version 7"),
        ({"format": "other"}, "not a HERO dataset manifest"),
        ({"shards": [{"name": "x"}]}, "malformed manifest"),
    ],
)
def test_bad_manifest(dataset, change, expected):
    _patch_manifest(dataset, **change)
    with pytest.raises(DatasetError, match=rf"manifest\.json: {expected}"):
        HeroDataset.open(dataset)


def test_manifest_missing_or_not_json(tmp_path, dataset):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        HeroDataset.open(tmp_path / "absent")
    (dataset / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(DatasetError, match=r"manifest\.json: not valid JSON"):
        HeroDataset.open(dataset)
    (dataset / MANIFEST_NAME).unlink()
    with pytest.raises(DatasetError, match="not a HERO dataset"):
        HeroDataset.open(dataset)


# -- errors.jsonl ------------------------------------------------------------------------------


def test_error_log_survives_a_cut_line(tmp_path):
    log = ErrorLog(tmp_path)
    log.record(video_id="a", source="/a.mp4", stage="decode", error=ValueError("bad frame"))
    with open(tmp_path / "errors.jsonl", "ab") as f:
        f.write(b'{"video_id": "b", "sta')  # a crash mid-line
    log.record(video_id="c", source="/c.mp4", stage="probe", error_type="Timeout", message="hung")
    entries = read_errors(tmp_path)
    assert [(e["video_id"], e["error_type"], e["message"]) for e in entries] == [
        ("a", "ValueError", "bad frame"),
        ("c", "Timeout", "hung"),
    ]
    assert entries[0]["stage"] == "decode" and entries[0]["source"] == "/a.mp4"
    assert os.path.getsize(tmp_path / "errors.jsonl") > 0
