"""Checksums on open: the default mode hashes a shard unless that unchanged file was verified
before (a cache keyed by path and file identity), "full" always hashes, "fast" never does."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

import hero_data.reader as reader
from hero_data.manifest import DatasetError
from hero_data.reader import HeroDataset, verification_cache_dir
from hero_data.writer import DatasetWriter
from tests.conftest import shard_files

HOUR_NS = 3600 * 10**9


@pytest.fixture
def hashes(monkeypatch) -> list[str]:
    """The file names ``sha256_file`` is asked to hash while opening, in order."""
    calls: list[str] = []
    real = reader.sha256_file

    def counting(path, *args, **kwargs):
        calls.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(reader, "sha256_file", counting)
    return calls


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("HERO_CACHE_DIR", str(path))
    return path


def _age(path: Path, ns: int | None = None) -> None:
    """Set a file's mtime an hour back (or to ``ns``): written long before it is opened."""
    ns = time.time_ns() - HOUR_NS if ns is None else ns
    os.utime(path, ns=(ns, ns))


def _rewrite(path: Path, data: bytes, mtime_ns: int) -> None:
    """Write ``data`` over ``path`` and put its mtime back to ``mtime_ns``: only its ctime
    tells. File times tick coarsely, so write again until the ctime has moved on."""
    before = path.stat().st_ctime_ns
    for _ in range(1000):
        path.write_bytes(data)
        _age(path, mtime_ns)
        if path.stat().st_ctime_ns != before:
            return
        time.sleep(0.005)
    pytest.fail(f"{path}: its ctime never changed")


@pytest.fixture
def dataset(tmp_path, record_factory) -> Path:
    """Two shards, both modified an hour ago."""
    root = tmp_path / "ds"
    with DatasetWriter(root, {"k": 1}, max_rows_per_shard=2) as w:
        for i in range(4):
            w.write(record_factory(f"v{i}", 0, 9.0, seed=i))
    for shard in (root / "shards").iterdir():
        _age(shard)
    return root


@pytest.fixture
def SHARDS(dataset) -> list[str]:
    """The dataset's two shard file names, in row order."""
    return [p.name for p in shard_files(dataset)]


def test_second_open_hits_the_cache(dataset, cache, hashes, SHARDS):
    HeroDataset.open(dataset)
    assert hashes == SHARDS
    assert len(list((cache / "verified-shards").glob("*.json"))) == 2
    ds = HeroDataset.open(dataset)
    assert hashes == SHARDS and len(ds) == 4  # no hashing the second time
    HeroDataset.open(dataset, verify="full")  # always re-hashes
    assert hashes == SHARDS * 2
    HeroDataset.open(dataset, verify="fast")  # never hashes
    assert hashes == SHARDS * 2


def test_full_records_what_it_verified(dataset, cache, hashes, SHARDS):
    HeroDataset.open(dataset, verify="full")
    HeroDataset.open(dataset)
    assert hashes == SHARDS


def test_touched_or_rewritten_shard_is_hashed_again(dataset, cache, hashes, SHARDS):
    shard = dataset / "shards" / SHARDS[0]
    HeroDataset.open(dataset)
    hashes.clear()
    _age(shard, time.time_ns() - HOUR_NS // 2)  # touched: another mtime
    HeroDataset.open(dataset)
    assert hashes == [SHARDS[0]]
    hashes.clear()
    HeroDataset.open(dataset)
    assert hashes == []
    mtime = shard.stat().st_mtime_ns
    _rewrite(shard, shard.read_bytes(), mtime)  # same bytes, same mtime, same inode
    HeroDataset.open(dataset)
    assert hashes == [SHARDS[0]]  # the ctime changed
    hashes.clear()
    copy = shard.with_name("copy")
    shutil.copy2(shard, copy)
    os.replace(copy, shard)  # replaced by a copy: another inode
    _age(shard, mtime)
    HeroDataset.open(dataset)
    assert hashes == [SHARDS[0]]


def test_corruption_after_a_verified_open_is_caught(dataset, cache, SHARDS):
    """The worst case for the cache: same size, and the old mtime put back after the change."""
    shard = dataset / "shards" / SHARDS[1]
    HeroDataset.open(dataset)
    mtime = shard.stat().st_mtime_ns
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    _rewrite(shard, bytes(data), mtime)
    with pytest.raises(DatasetError, match=rf"{SHARDS[1]}: sha256 .* does not match"):
        HeroDataset.open(dataset)


def test_moved_dataset_is_hashed_again(dataset, cache, hashes, SHARDS, tmp_path):
    HeroDataset.open(dataset)
    moved = tmp_path / "moved"
    dataset.rename(moved)
    HeroDataset.open(moved)
    assert hashes == SHARDS * 2  # the cache is keyed by the shard's resolved path


def test_freshly_written_shard_is_not_cached(tmp_path, cache, hashes, record_factory):
    """A file modified within the last seconds may change again within the same file-time
    tick without its identity changing, so its verification is not remembered."""
    root = tmp_path / "fresh"
    with DatasetWriter(root, {"k": 1}) as w:
        w.write(record_factory("v", 0, 9.0))
    HeroDataset.open(root)
    HeroDataset.open(root)
    assert hashes == [shard_files(root)[0].name] * 2
    assert not (cache / "verified-shards").exists()


def test_mismatch_is_not_cached(dataset, cache, hashes, SHARDS):
    shard = dataset / "shards" / SHARDS[0]
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0x01
    shard.write_bytes(bytes(data))
    _age(shard)
    for _ in range(2):
        with pytest.raises(DatasetError, match=rf"{SHARDS[0]}: sha256"):
            HeroDataset.open(dataset)
    assert hashes == [SHARDS[0]] * 2


def test_unwritable_cache_never_fails_an_open(
    dataset, tmp_path, monkeypatch, hashes, SHARDS, caplog
):
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    monkeypatch.setenv("HERO_CACHE_DIR", str(not_a_dir / "cache"))
    with caplog.at_level("DEBUG", logger="hero_data.reader"):
        assert len(HeroDataset.open(dataset)) == 4
    assert "cannot cache the verification" in caplog.text
    assert len(HeroDataset.open(dataset)) == 4
    assert hashes == SHARDS * 2  # verified both times, nothing remembered


def test_damaged_cache_entries_are_misses(dataset, cache, hashes, SHARDS):
    HeroDataset.open(dataset)
    entries = sorted((cache / "verified-shards").glob("*.json"))
    entries[0].write_text("{not json")
    entries[1].write_text(json.dumps(["a", "list"]))
    HeroDataset.open(dataset)
    assert sorted(hashes) == sorted(SHARDS * 2)
    HeroDataset.open(dataset)  # rewritten by the last open
    assert len(hashes) == 4


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("HERO_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert verification_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("HERO_CACHE_DIR")
    assert verification_cache_dir() == tmp_path / "xdg" / "hero-toolkit"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert verification_cache_dir() == tmp_path / "home" / ".cache" / "hero-toolkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert verification_cache_dir() == tmp_path / "home" / ".cache" / "hero-toolkit"


def test_suite_keeps_the_cache_out_of_home(_hero_cache_dir):
    assert verification_cache_dir() == _hero_cache_dir
