"""Datasets on a real S3-protocol server (moto, on 127.0.0.1): the storage seam, commits,
readers that fetch only what they need, and store faults on the write path."""

from __future__ import annotations

import os

import numpy as np
import pytest

from hero_data.commits import compact, snapshot
from hero_data.reader import HeroDataset, shard_cache_dir
from hero_data.storage import FsspecStorage, StorageError, is_transient, open_storage
from hero_data.summary import summarize
from hero_data.writer import DatasetWriter, ShardWriter, new_run_id, read_errors
from tests.conftest import make_record

CONFIG = {"k": "s3"}


def videos(n: int, seed: int = 0):
    return [
        [make_record(f"v{i}", k, 3.0, seed=seed + 10 * i + k, n_cues=2) for k in range(1 + i % 2)]
        for i in range(n)
    ]


def test_storage_operations(s3):
    st = open_storage(f"{s3.url}/data")
    assert isinstance(st, FsspecStorage) and not st.is_local
    assert st.read_optional("a.json") is None
    assert st.create("dir/a.json", b"first") is True
    assert st.create("dir/a.json", b"second") is False  # only if absent: a conditional PUT
    assert st.read_bytes("dir/a.json") == b"first"
    st.put("dir/a.json", b"replaced")
    assert st.read_bytes("dir/a.json") == b"replaced"
    st.put("dir/b.json", b"x" * 10)
    listing = st.list_dir("dir")
    assert [(e.name, e.size) for e in listing] == [("a.json", 8), ("b.json", 10)]
    assert all(e.mtime is not None for e in listing)
    assert st.list_dir("nothing-here") == []
    st.delete("dir/b.json")
    st.delete("dir/b.json")  # absent is fine
    assert [e.name for e in st.list_dir("dir")] == ["a.json"]
    with pytest.raises(FileNotFoundError):
        st.read_bytes("dir/b.json")


def test_the_standard_aws_environment_is_what_reaches_the_store(s3, monkeypatch):
    """Every path uses the standard chain: break AWS_ENDPOINT_URL and nothing gets through."""
    import s3fs

    import hero_data.storage as storage

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    s3fs.S3FileSystem.clear_instance_cache()
    storage._OPEN.clear()
    st = FsspecStorage(f"{s3.url}/x", retries=1)
    with pytest.raises(StorageError, match=r"s3://hero-test-\w+/x/a: cannot read"):
        st.read_bytes("a")


def test_a_dataset_round_trips_and_readers_fetch_only_what_they_need(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("HERO_CACHE_DIR", str(tmp_path / "cache"))
    url = f"{s3.url}/ds"
    with DatasetWriter(url, CONFIG, max_rows_per_shard=3) as w:
        for clips in videos(6):
            w.write_video(clips)
        w.record_failure(video_id="bad", source="s3://x/bad.mp4", stage="probe", error_type="E")
    want = [r for clips in videos(6) for r in clips]
    s3.proxy.log.clear()
    ds = HeroDataset.open(url)
    assert len(ds) == len(want) and len(ds.shards) == 3
    assert not [p for _, p in s3.proxy.log if "/shards/" in p]  # opening reads no shard
    s3.proxy.sent.clear()
    summary = summarize(ds)  # the small columns only, by range reads
    assert summary["clips"] == len(want) and summary["videos"] == 6
    assert summary["failed_by_type"] == {"E": 1}
    feature_bytes = sum(r.feature_bytes for r in want)
    read = sum(n for p, n in s3.proxy.sent.items() if "/shards/" in p)
    assert 0 < read < feature_bytes / 10  # features never travelled
    cache = shard_cache_dir()
    assert not cache.exists() or not list(cache.glob("*.arrow"))  # no shard downloaded
    assert ds.clip_ids() == [r.clip_id for r in want]
    got = ds["v3.1"]  # one shard fetched into the cache, its sha256 checked
    assert got.clip_id == "v3.1"
    assert len(list(cache.glob("*.arrow"))) == 1
    for i, r in enumerate(want):
        np.testing.assert_array_equal(ds[i].features["resnet"], r.features["resnet"])
        np.testing.assert_array_equal(ds.features(r.clip_id)["slowfast"], r.features["slowfast"])
        assert ds[i].cues == r.cues
    assert len(list(cache.glob("*.arrow"))) == 3
    assert [e["video_id"] for e in read_errors(url)] == ["bad"]


def test_a_corrupt_object_is_refused_when_fetched(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("HERO_CACHE_DIR", str(tmp_path / "cache"))
    url = f"{s3.url}/ds"
    with DatasetWriter(url, CONFIG) as w:
        w.write_video(videos(1)[0])
    ds = HeroDataset.open(url)
    name = ds.shards[0].name
    key = f"ds/{name}"
    data = bytearray(s3.client.get_object(Bucket=s3.name, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    s3.client.put_object(Bucket=s3.name, Key=key, Body=bytes(data))
    with pytest.raises(Exception, match=rf"{name}: sha256 .* does not match"):
        ds[0]
    assert not list(shard_cache_dir().glob("*.arrow"))  # nothing damaged left in the cache


def test_transient_store_faults_are_retried(s3):
    url = f"{s3.url}/ds"
    with DatasetWriter(url, CONFIG):
        pass
    s3.proxy.fail("PUT", r"/ds/shards/", "500", times=2)
    s3.proxy.fail("PUT", r"/ds/shards/", "drop_mid_body", times=1)
    s3.proxy.fail("PUT", r"/ds/_commits/", "drop", times=1)
    s3.proxy.fail("PUT", r"/ds/_commits/", "500", times=1)
    run = new_run_id()
    for clips in videos(4):
        with ShardWriter(url, run=run) as w:
            w.write_video(clips)
    assert s3.proxy.injected == {"500": 3, "drop_mid_body": 1, "drop": 1}
    snap = snapshot(url)
    assert snap.videos() == {"v0", "v1", "v2", "v3"} and not snap.rejected
    ds = HeroDataset.open(url, verify="full")
    assert sorted(ds.clip_ids()) == sorted(r.clip_id for c in videos(4) for r in c)


def test_a_persistent_store_fault_stops_clearly_and_a_rerun_completes_once(s3, monkeypatch):
    # Few tries (ours and botocore's): the fault persists, so only the give-up path is tested.
    monkeypatch.setenv("HERO_STORAGE_RETRIES", "2")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    url = f"{s3.url}/ds"
    with DatasetWriter(url, CONFIG):
        pass
    with ShardWriter(url, run=new_run_id()) as w:
        w.write_video(videos(1)[0])
    s3.proxy.fail("PUT", r"/ds/_commits/", "500", times=1000)
    with pytest.raises(
        StorageError, match=r"/ds/_commits/\w+\.json: cannot create after \d+ tries"
    ):
        with ShardWriter(url, run=new_run_id()) as w:
            w.write_video(videos(2)[1])
    # The shard was uploaded but never recorded: invisible, and removed at once.
    snap = snapshot(url)
    assert snap.videos() == {"v0"}
    names = {e.name for e in open_storage(url).list_dir("shards")}
    assert names == {s.name.split("/")[1] for s in snap.shards}
    s3.proxy.clear()
    for clips in videos(3):  # the rerun does what is not done
        if clips[0].clip.video_id not in snapshot(url).done():
            with ShardWriter(url, run=new_run_id()) as w:
                w.write_video(clips)
    compact(url)
    ds = HeroDataset.open(url, verify="full")
    assert sorted(ds.clip_ids()) == sorted(r.clip_id for c in videos(3) for r in c)


def test_store_errors_that_retrying_cannot_fix_fail_at_once(s3):
    missing = FsspecStorage("s3://no-such-bucket-here/ds")
    with pytest.raises(StorageError, match=r"no-such-bucket-here/ds/manifest\.json: cannot write"):
        missing.put("manifest.json", b"{}")
    assert not is_transient(FileNotFoundError("x")) and not is_transient(PermissionError("x"))
    assert not is_transient(OSError(28, "No space left on device"))
    assert is_transient(ConnectionResetError()) and is_transient(TimeoutError())


def test_a_second_writer_is_refused_on_s3_too(s3):
    url = f"{s3.url}/ds"
    with DatasetWriter(url, CONFIG, command="hero run"):
        with pytest.raises(Exception, match=r"_lease: another run is writing this dataset"):
            DatasetWriter(url, CONFIG, mode="append").open()


def test_environment_overrides_of_the_retry_policy(monkeypatch):
    monkeypatch.setenv("HERO_STORAGE_RETRIES", "2")
    monkeypatch.setenv("HERO_STORAGE_BACKOFF_S", "0.5")
    st = FsspecStorage("s3://bucket/x")
    assert (st.retries, st.backoff_s) == (2, 0.5)
    monkeypatch.setenv("HERO_STORAGE_RETRIES", "many")
    with pytest.raises(StorageError, match=r"\$HERO_STORAGE_RETRIES: must be a number"):
        FsspecStorage("s3://bucket/x")
    assert os.environ["HERO_STORAGE_BACKOFF_S"] == "0.5"
