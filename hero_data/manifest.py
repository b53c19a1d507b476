"""``manifest.json``: what a dataset holds, and the atomic file operations that keep it true.

Layout of a dataset folder::

    <dataset>/manifest.json            this file, rewritten atomically after every shard
    <dataset>/shards/part-00000.arrow  Arrow IPC files, uncompressed, one row per clip
    <dataset>/errors.jsonl             one line per input that did not make it

The manifest lists only complete shards, so a reader never sees a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hero_data import __version__
from hero_data.schema import SCHEMA_VERSION

FORMAT_NAME = "hero-dataset"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SHARD_DIR = "shards"
ERRORS_NAME = "errors.jsonl"
LOCK_NAME = ".lock"


class DatasetError(Exception):
    """A dataset on disk is missing, malformed, or disagrees with its manifest.

    The message names the file at fault; ``path`` holds it too.
    """

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


def now_iso() -> str:
    """UTC time, ISO 8601, seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    """One complete shard: its path relative to the dataset root, rows, bytes, sha256, and the
    ids of the videos whose clips it holds (all of each video's clips: writers never split a
    video written with ``write_video`` across shards)."""

    name: str
    rows: int
    bytes: int
    sha256: str
    videos: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """Contents of ``manifest.json``.

    Attributes:
        config: the full extraction config the dataset was made with (JSON-able).
        shards: complete shards in write order.
        schema_version: version of the shard schema (:data:`hero_data.schema.SCHEMA_VERSION`).
        toolkit_version: version of the toolkit that last wrote the dataset.
        created: when the dataset was started (UTC, ISO 8601).
        updated: when the manifest was last rewritten.
    """

    config: dict[str, Any]
    shards: tuple[ShardInfo, ...] = ()
    schema_version: int = SCHEMA_VERSION
    toolkit_version: str = __version__
    created: str = field(default_factory=now_iso)
    updated: str = field(default_factory=now_iso)

    @property
    def num_rows(self) -> int:
        """Clips in all shards."""
        return sum(s.rows for s in self.shards)

    def videos(self) -> set[str]:
        """Ids of the videos with clips in committed shards."""
        return {v for s in self.shards for v in s.videos}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "schema_version": self.schema_version,
            "toolkit_version": self.toolkit_version,
            "created": self.created,
            "updated": self.updated,
            "config": self.config,
            "num_rows": self.num_rows,
            "shards": [{**asdict(s), "videos": list(s.videos)} for s in self.shards],
        }

    def write(self, root: str | os.PathLike[str]) -> None:
        """Atomically (re)write ``<root>/manifest.json``."""
        atomic_write_json(Path(root) / MANIFEST_NAME, self.to_dict())


def load_manifest(root: str | os.PathLike[str]) -> Manifest:
    """Read and check ``<root>/manifest.json``; :class:`DatasetError` names what is wrong."""
    path = Path(root) / MANIFEST_NAME
    if not Path(root).is_dir():
        raise DatasetError(root, "no such dataset folder")
    if not path.is_file():
        raise DatasetError(path, "missing: this folder is not a HERO dataset (no manifest.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(path, f"not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise DatasetError(path, f"not a HERO dataset manifest (format is not {FORMAT_NAME!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise DatasetError(
            path,
            f"dataset format version {data.get('format_version')!r}; this toolkit "
            f"({__version__}) reads version {FORMAT_VERSION}",
        )
    if data.get("schema_version") != SCHEMA_VERSION:
        raise DatasetError(
            path,
            f"shard schema version {data.get('schema_version')!r}; this toolkit "
            f"({__version__}) reads version {SCHEMA_VERSION}",
        )
    try:
        shards = tuple(
            ShardInfo(
                str(s["name"]),
                int(s["rows"]),
                int(s["bytes"]),
                str(s["sha256"]),
                tuple(str(v) for v in s.get("videos", ())),
            )
            for s in data["shards"]
        )
        config = data["config"]
        if not isinstance(config, dict):
            raise TypeError("config is not an object")
        return Manifest(
            config=config,
            shards=shards,
            schema_version=int(data["schema_version"]),
            toolkit_version=str(data.get("toolkit_version", "")),
            created=str(data.get("created", "")),
            updated=str(data.get("updated", "")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(path, f"malformed manifest ({type(e).__name__}: {e})") from None
