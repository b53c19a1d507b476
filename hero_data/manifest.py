"""``manifest.json``: what a dataset holds as of its last compaction, and the names of its parts.

Layout of a dataset (format version 2; docs/dataset-format.md)::

    <dataset>/manifest.json            config + compacted shards (rewritten only by compaction)
    <dataset>/errors.jsonl             compacted failures, one JSON line per input
    <dataset>/shards/<name>.arrow      Arrow IPC files, uncompressed, one row per clip
    <dataset>/_commits/<key>.json      commit records not yet compacted (hero_data.commits)
    <dataset>/_lease/<epoch>.json      the lease of the one run writing the dataset

A shard belongs to the dataset if and only if a commit record or the manifest names it. Writers
never rewrite the manifest: they create records (:mod:`hero_data.commits`); the lease holder
folds records into the manifest now and then. Version 1 datasets (one ``manifest.json``
rewritten under a ``flock`` after every shard) still open, and are upgraded in place (manifest
only, no shard is rewritten) by ``hero upgrade`` or the first writer that appends to them.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hero_data import __version__
from hero_data.errors import DatasetError, FeatureSetError
from hero_data.features import DEFAULT_FEATURES, FeatureSet
from hero_data.schema import SCHEMA_VERSION
from hero_data.storage import Storage, fsync_dir, open_storage, sha256_file

__all__ = [
    "COMMITS_DIR",
    "ERRORS_NAME",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LEASE_DIR",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "READABLE_FORMAT_VERSIONS",
    "SHARD_DIR",
    "DatasetError",
    "Manifest",
    "ShardInfo",
    "atomic_write_json",
    "fsync_dir",
    "load_manifest",
    "now_iso",
    "parse_manifest",
    "sha256_file",
]

FORMAT_NAME = "hero-dataset"
FORMAT_VERSION = 2
"""The layout this toolkit writes."""

READABLE_FORMAT_VERSIONS = (1, 2)
"""Layouts this toolkit reads. Version 1 is upgraded (manifest only) before it is written to."""

MANIFEST_NAME = "manifest.json"
SHARD_DIR = "shards"
ERRORS_NAME = "errors.jsonl"
COMMITS_DIR = "_commits"
LEASE_DIR = "_lease"
LOCK_NAME = ".lock"
"""Version 1's writer lock file; an upgrade removes it."""


def now_iso() -> str:
    """UTC time, ISO 8601, seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON to a temporary file beside ``path``, fsync it, and rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@dataclass(frozen=True)
class ShardInfo:
    """One committed shard.

    Attributes:
        name: path relative to the dataset root (``shards/<name>.arrow``).
        rows: clips in it.
        bytes: its size.
        sha256: hex digest of its bytes.
        videos: ids of the videos whose clips it holds, in row order. A writer never splits a
            video across shards, so a shard holds all clips of each of its videos.
        video_rows: clips per video, in the order of ``videos`` (empty for shards written by
            format version 1, which did not record it).
    """

    name: str
    rows: int
    bytes: int
    sha256: str
    videos: tuple[str, ...] = ()
    video_rows: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "videos": list(self.videos),
        }
        if self.video_rows:
            out["video_rows"] = list(self.video_rows)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ShardInfo:
        """Parse one shard entry; ``KeyError``/``TypeError``/``ValueError`` when malformed."""
        if not isinstance(data, dict):
            raise TypeError(f"a shard entry is not an object: {data!r:.60}")
        name = data["name"]
        if not isinstance(name, str) or not name.startswith(f"{SHARD_DIR}/") or ".." in name:
            raise ValueError(f"shard name {name!r} is not a file under {SHARD_DIR}/")
        videos = data.get("videos", ())
        video_rows = data.get("video_rows", ())
        if not isinstance(videos, list | tuple) or not isinstance(video_rows, list | tuple):
            raise TypeError("videos and video_rows must be lists")
        info = cls(
            name,
            int(data["rows"]),
            int(data["bytes"]),
            str(data["sha256"]),
            tuple(str(v) for v in videos),
            tuple(int(n) for n in video_rows),
        )
        if info.video_rows and (
            len(info.video_rows) != len(info.videos) or sum(info.video_rows) != info.rows
        ):
            raise ValueError(f"{name}: video_rows do not add up to its videos and rows")
        return info


@dataclass(frozen=True)
class Manifest:
    """Contents of ``manifest.json``.

    Attributes:
        config: the full extraction config the dataset was made with (JSON-able).
        features: the feature set its shards hold (``features`` in the file; a manifest
            without it holds :data:`~hero_data.features.DEFAULT_FEATURES`).
        shards: compacted shards, in commit order.
        schema_version: version of the shard schema (:data:`hero_data.schema.SCHEMA_VERSION`).
        toolkit_version: version of the toolkit that last wrote the manifest.
        created: when the dataset was started (UTC, ISO 8601).
        updated: when the manifest was last rewritten.
        format_version: the layout (1 or 2) the manifest was read as; always 2 when written.
        generation: how many times compaction has rewritten it (readers use it to see that a
            compaction happened while they were listing commit records).
    """

    config: dict[str, Any]
    features: FeatureSet = DEFAULT_FEATURES
    shards: tuple[ShardInfo, ...] = ()
    schema_version: int = SCHEMA_VERSION
    toolkit_version: str = __version__
    created: str = field(default_factory=now_iso)
    updated: str = field(default_factory=now_iso)
    format_version: int = FORMAT_VERSION
    generation: int = 0

    @property
    def num_rows(self) -> int:
        """Clips in the compacted shards."""
        return sum(s.rows for s in self.shards)

    def videos(self) -> set[str]:
        """Ids of the videos with clips in the compacted shards."""
        return {v for s in self.shards for v in s.videos}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "schema_version": self.schema_version,
            "toolkit_version": self.toolkit_version,
            "created": self.created,
            "updated": self.updated,
            "generation": self.generation,
            "config": self.config,
            "features": self.features.to_json(),
            "num_rows": self.num_rows,
            "shards": [s.to_dict() for s in self.shards],
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n").encode("utf-8")

    def next_generation(self, shards: tuple[ShardInfo, ...]) -> Manifest:
        """The manifest a compaction writes: these shards, the generation after this one."""
        return replace(
            self,
            shards=shards,
            updated=now_iso(),
            toolkit_version=__version__,
            format_version=FORMAT_VERSION,
            generation=self.generation + 1,
        )

    def write(self, root: str | os.PathLike[str] | Storage) -> None:
        """Atomically (re)write ``<root>/manifest.json`` (format version 2)."""
        open_storage(root).put(MANIFEST_NAME, self.to_bytes())


def parse_manifest(data: bytes, where: str) -> Manifest:
    """The manifest in ``data`` (read from ``where``); :class:`DatasetError` names what is
    wrong. Reads format versions 1 and 2."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(where, f"not valid JSON ({e})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
        raise DatasetError(where, f"not a HERO dataset manifest (format is not {FORMAT_NAME!r})")
    version = obj.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        raise DatasetError(
            where,
            f"dataset format version {version!r}; this toolkit ({__version__}) reads versions "
            f"{', '.join(map(str, READABLE_FORMAT_VERSIONS))}",
        )
    if obj.get("schema_version") != SCHEMA_VERSION:
        raise DatasetError(
            where,
            f"shard schema version {obj.get('schema_version')!r}; this toolkit "
            f"({__version__}) reads version {SCHEMA_VERSION}",
        )
    try:
        shards = tuple(ShardInfo.from_dict(s) for s in obj["shards"])
        config = obj["config"]
        if not isinstance(config, dict):
            raise TypeError("config is not an object")
        features = FeatureSet.from_json(obj["features"]) if "features" in obj else DEFAULT_FEATURES
        names = [s.name for s in shards]
        if len(set(names)) != len(names):
            raise ValueError("a shard is listed twice")
        return Manifest(
            config=config,
            features=features,
            shards=shards,
            schema_version=int(obj["schema_version"]),
            toolkit_version=str(obj.get("toolkit_version", "")),
            created=str(obj.get("created", "")),
            updated=str(obj.get("updated", "")),
            format_version=int(version),
            generation=int(obj.get("generation", 0)),
        )
    except FeatureSetError as e:
        raise DatasetError(where, f"malformed manifest: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(where, f"malformed manifest ({type(e).__name__}: {e})") from None


def load_manifest(root: str | os.PathLike[str] | Storage) -> Manifest:
    """Read and check ``<root>/manifest.json``; :class:`DatasetError` names what is wrong.

    This is the compacted state only: :func:`hero_data.commits.snapshot` adds the commit
    records not yet compacted, which is what readers and resuming runs use.
    """
    storage = open_storage(root)
    data = storage.read_optional(MANIFEST_NAME)
    if data is None:
        if storage.is_local and not storage.local_path("").is_dir():
            raise DatasetError(storage.url, "no such dataset folder")
        raise DatasetError(
            storage.uri(MANIFEST_NAME),
            "missing: this is not a HERO dataset (no manifest.json)",
        )
    return parse_manifest(data, storage.uri(MANIFEST_NAME))
