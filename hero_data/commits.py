"""Commit records: writers add shards and failures without a lock; the lease holder folds the
records into ``manifest.json`` and ``errors.jsonl``.

The protocol (docs/dataset-format.md has the guarantees; the design follows Delta Lake's and
Iceberg's logs, with one record per commit instead of one numbered log):

1. A writer streams its shard to a name no other writer can produce,
   ``shards/<run>-<random>.arrow``, and makes it visible whole: fsync + rename on a local disk,
   one upload (which appears only when complete) on an object store.
2. It then creates ``_commits/<key>.json``, a small immutable record of the shard (name, rows,
   bytes, sha256, videos and clips per video) and of the videos that failed, **only if no object
   has that name**: a hard link on a local disk, a conditional PUT (``If-None-Match: *``) on S3.
   ``key`` is a hash of the sorted ids of the videos the record commits, so a retried attempt of
   the same commit asks for the same name and cannot commit its videos a second time.
3. A shard belongs to the dataset if and only if a record or the manifest names it. A shard
   uploaded but never recorded is invisible, and :func:`remove_orphans` deletes it later.

Creating a record costs the same whatever the dataset's size: no listing, no manifest read, no
lock. Readers and resuming runs take a :class:`Snapshot`: the manifest, then every record not
yet compacted (read once), resolved by one rule, :func:`resolve`:

- shards in the manifest come first, in its order; then pending records in the order they
  were made (their ``time_ns``, then key);
- a pending record whose shard holds a video that an earlier shard already holds loses whole
  (it is ``rejected``: its shard is not part of the dataset, and compaction deletes both). This
  cannot happen through retries (same key); it guards against two runs' writers overlapping;
- a failure is dropped when the video is committed in a shard, or failed earlier.

:func:`compact` (lease holder only) writes that resolution: ``errors.jsonl``, then
``manifest.json`` with the next generation, then deletes the records it folded in. A crash
between any two steps leaves a state that resolves the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hero_data.errors import DatasetError
from hero_data.manifest import (
    COMMITS_DIR,
    ERRORS_NAME,
    MANIFEST_NAME,
    SHARD_DIR,
    Manifest,
    ShardInfo,
    now_iso,
    parse_manifest,
)
from hero_data.storage import Storage, open_storage

log = logging.getLogger(__name__)

RECORD_FORMAT = "hero-commit"
RECORD_VERSION = 1

ORPHAN_GRACE_S = 900.0
"""An unrecorded shard of another run is deleted only once it is this old, so that a writer of
a run that lost its lease (and may still be uploading) cannot have its shard pulled away."""

_SNAPSHOT_TRIES = 20

Outcome = Literal["created", "same", "other"]
"""What :func:`write_record` found: it created the record; an earlier attempt of this very
commit (same shard) had; or another attempt with another shard had (discard this shard)."""


def record_key(video_ids: Iterable[str]) -> str:
    """The record name for a commit of these videos: the same set always gives the same key."""
    ids = sorted(set(video_ids))
    if not ids:
        raise ValueError("a commit record needs at least one video")
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()[:40]


def error_entry(
    *,
    video_id: str,
    source: str,
    stage: str,
    error_type: str | None = None,
    message: str | None = None,
    error: BaseException | None = None,
) -> dict[str, Any]:
    """One line of ``errors.jsonl``: give ``error``, or ``error_type`` and ``message``."""
    if error is not None:
        error_type = error_type or type(error).__name__
        message = message or str(error)
    return {
        "video_id": video_id,
        "source": source,
        "stage": stage,
        "error_type": error_type or "Error",
        "message": message or "",
        "time": now_iso(),
    }


@dataclass(frozen=True)
class CommitRecord:
    """One commit: a shard (or none, for a commit of failures only) and failed inputs.

    Attributes:
        key: :func:`record_key` of :meth:`video_ids`; the record is ``_commits/<key>.json``.
        run: id of the run (or writer) that made it.
        time: when it was made (UTC, ISO 8601).
        time_ns: when it was made, Unix nanoseconds: pending records resolve in this order.
        shard: the shard it commits, or ``None``.
        errors: ``errors.jsonl`` entries of the inputs that failed.
    """

    key: str
    run: str
    time: str
    shard: ShardInfo | None
    errors: tuple[dict[str, Any], ...] = ()
    time_ns: int = 0

    @classmethod
    def make(
        cls, run: str, shard: ShardInfo | None, errors: Sequence[dict[str, Any]] = ()
    ) -> CommitRecord:
        ids = [*(shard.videos if shard else ()), *(str(e["video_id"]) for e in errors)]
        return cls(record_key(ids), run, now_iso(), shard, tuple(errors), time.time_ns())

    @property
    def name(self) -> str:
        """Path relative to the dataset root."""
        return f"{COMMITS_DIR}/{self.key}.json"

    def video_ids(self) -> list[str]:
        return [*(self.shard.videos if self.shard else ()), *(e["video_id"] for e in self.errors)]

    def to_bytes(self) -> bytes:
        obj = {
            "format": RECORD_FORMAT,
            "version": RECORD_VERSION,
            "key": self.key,
            "run": self.run,
            "time": self.time,
            "time_ns": self.time_ns,
            "shard": self.shard.to_dict() if self.shard else None,
            "errors": list(self.errors),
        }
        return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def parse(cls, data: bytes, where: str) -> CommitRecord:
        """The record in ``data``; :class:`DatasetError` naming ``where`` when malformed."""
        try:
            obj = json.loads(data.decode("utf-8"))
            if not isinstance(obj, dict) or obj.get("format") != RECORD_FORMAT:
                raise ValueError(f"not a commit record (format is not {RECORD_FORMAT!r})")
            if obj.get("version") != RECORD_VERSION:
                raise ValueError(f"record version {obj.get('version')!r}, expected 1")
            shard = ShardInfo.from_dict(obj["shard"]) if obj["shard"] is not None else None
            errors = obj.get("errors", [])
            if not isinstance(errors, list) or not all(
                isinstance(e, dict) and isinstance(e.get("video_id"), str) for e in errors
            ):
                raise ValueError("errors must be a list of objects with a video_id")
            record = cls(
                str(obj["key"]),
                str(obj["run"]),
                str(obj["time"]),
                shard,
                tuple(errors),
                int(obj.get("time_ns", 0)),
            )
            if shard is None and not errors:
                raise ValueError("a record commits neither a shard nor a failure")
            if record.key != record_key(record.video_ids()):
                raise ValueError("its key is not the hash of its videos")
            return record
        except (UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
            raise DatasetError(
                where, f"malformed commit record ({type(e).__name__}: {e})"
            ) from None


def write_record(storage: Storage, record: CommitRecord) -> Outcome:
    """Create ``record`` only if absent (the commit point); see :data:`Outcome`.

    A lost response to a successful conditional write looks like "it exists" on the retry: the
    record found is then this very commit (same shard), reported as ``"same"``.
    """
    if storage.create(record.name, record.to_bytes()):
        return "created"
    data = storage.read_optional(record.name)
    if data is None:  # compacted away between our attempt and this read: it was committed
        return "other"
    found = CommitRecord.parse(data, storage.uri(record.name))
    mine = record.shard.name if record.shard else None
    theirs = found.shard.name if found.shard else None
    return "same" if mine == theirs else "other"


def parse_errors(data: bytes | None, where: str) -> list[dict[str, Any]]:
    """Entries of an ``errors.jsonl``; lines cut short (version 1 appended) are skipped."""
    if not data:
        return []
    out = []
    text = data.decode("utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d: skipping a malformed line (cut short by a crash?)", where, lineno)
            continue
        if isinstance(entry, dict) and isinstance(entry.get("video_id"), str):
            out.append(entry)
    return out


def _errors_bytes(entries: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode("utf-8")


@dataclass(frozen=True)
class Snapshot:
    """What a dataset holds at one moment: the manifest plus the resolved pending records.

    Attributes:
        manifest: ``manifest.json`` as read.
        shards: every shard of the dataset, compacted ones first (the reader's row order).
        errors: every failed input, one entry per video id.
        pending: records not yet compacted whose commits count (accepted).
        rejected: records not yet compacted that lost to an earlier commit of one of their
            videos (their shards are not part of the dataset).
        stale: records already folded into the manifest, not yet deleted.
        compacted_errors: ``errors.jsonl`` as read.
    """

    manifest: Manifest
    shards: tuple[ShardInfo, ...]
    errors: tuple[dict[str, Any], ...]
    pending: tuple[CommitRecord, ...] = ()
    rejected: tuple[CommitRecord, ...] = ()
    stale: tuple[CommitRecord, ...] = ()
    compacted_errors: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @property
    def num_rows(self) -> int:
        return sum(s.rows for s in self.shards)

    def videos(self) -> set[str]:
        """Videos with clips in the dataset."""
        return {v for s in self.shards for v in s.videos}

    def failed(self) -> set[str]:
        return {e["video_id"] for e in self.errors}

    def done(self) -> set[str]:
        """Videos a run need not process again: committed or failed."""
        return self.videos() | self.failed()


def resolve(
    manifest: Manifest,
    compacted_errors: Sequence[dict[str, Any]],
    records: Sequence[CommitRecord],
    missing: Iterable[str] = (),
) -> Snapshot:
    """The one rule that turns a manifest and pending records into the dataset's content (see
    the module doc). Deterministic: the same inputs give the same snapshot.

    ``missing``: shard names known to be absent; a record naming one is rejected (only a writer
    of a run that lost its lease can get there: see :func:`remove_orphans`).
    """
    missing = set(missing)
    owned: set[str] = manifest.videos()
    in_manifest = {s.name for s in manifest.shards}
    shards = list(manifest.shards)
    pending, rejected, stale = [], [], []
    record_errors: list[dict[str, Any]] = []
    for r in sorted(records, key=lambda r: (r.time_ns, r.key)):
        if r.shard is not None and r.shard.name in in_manifest:
            stale.append(r)
            continue
        if r.shard is not None and r.shard.name in missing:
            log.warning("%s: its shard %s is missing; ignored", r.name, r.shard.name)
            rejected.append(r)
            continue
        if r.shard is not None:
            clash = [v for v in r.shard.videos if v in owned]
            if clash:
                log.warning(
                    "%s: commits %s, which an earlier commit holds; ignored", r.name, clash[:3]
                )
                rejected.append(r)
                continue
            owned.update(r.shard.videos)
            shards.append(r.shard)
        pending.append(r)
        record_errors.extend(r.errors)
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for e in [*compacted_errors, *record_errors]:
        vid = e["video_id"]
        if vid in owned or vid in seen:
            continue
        seen.add(vid)
        errors.append(e)
    return Snapshot(
        manifest=manifest,
        shards=tuple(shards),
        errors=tuple(errors),
        pending=tuple(pending),
        rejected=tuple(rejected),
        stale=tuple(stale),
        compacted_errors=tuple(compacted_errors),
    )


def _manifest_with_tag(storage: Storage) -> tuple[Manifest, bytes]:
    data = storage.read_optional(MANIFEST_NAME)
    if data is None:
        from hero_data.manifest import load_manifest

        load_manifest(storage)  # raises the clear "no such dataset" / "missing" error
        raise AssertionError("unreachable")
    return parse_manifest(data, storage.uri(MANIFEST_NAME)), hashlib.sha256(data).digest()


def read_records(storage: Storage) -> list[CommitRecord]:
    """Every record under ``_commits/`` (one listing, one read each); raises
    ``FileNotFoundError`` if one disappears meanwhile (compacted: take the snapshot again)."""
    out = []
    for entry in storage.list_dir(COMMITS_DIR):
        if not entry.name.endswith(".json") or entry.name.startswith("."):
            continue
        rel = f"{COMMITS_DIR}/{entry.name}"
        record = CommitRecord.parse(storage.read_bytes(rel), storage.uri(rel))
        if record.name != rel:
            raise DatasetError(storage.uri(rel), "a commit record under another record's name")
        out.append(record)
    return out


def snapshot(root: str | Storage, *, check_shards: bool = False) -> Snapshot:
    """The dataset's content now: the manifest, ``errors.jsonl`` and every pending record,
    read consistently (taken again if a compaction rewrote the manifest meanwhile).

    ``check_shards``: also look up each pending record's shard (one stat or HEAD each) and
    reject records whose shard is gone; compaction does, so the manifest never names one.
    """
    storage = open_storage(root)
    if storage.is_local and not storage.local_path("").is_dir():
        raise DatasetError(storage.url, "no such dataset folder")
    for _ in range(_SNAPSHOT_TRIES):
        manifest, tag = _manifest_with_tag(storage)
        where = storage.uri(ERRORS_NAME)
        compacted_errors = parse_errors(storage.read_optional(ERRORS_NAME), where)
        if manifest.format_version == 1:
            return resolve(manifest, compacted_errors, [])
        try:
            records = read_records(storage)
        except FileNotFoundError:
            continue  # a compaction deleted a record we listed
        if _manifest_with_tag(storage)[1] != tag:
            continue  # compacted meanwhile: records we missed may be in the new manifest
        missing = []
        if check_shards:
            in_manifest = {s.name for s in manifest.shards}
            missing = [
                r.shard.name
                for r in records
                if r.shard is not None
                and r.shard.name not in in_manifest
                and not storage.exists(r.shard.name)
            ]
        return resolve(manifest, compacted_errors, records, missing)
    raise DatasetError(
        storage.uri(MANIFEST_NAME),
        f"changed {_SNAPSHOT_TRIES} times while being read; is a compaction looping?",
    )


@dataclass
class CompactionStats:
    """What one :func:`compact` did."""

    records: int = 0
    shards_added: int = 0
    errors_added: int = 0
    rejected: int = 0
    seconds: float = 0.0
    generation: int = 0


def compact(root: str | Storage, snap: Snapshot | None = None) -> CompactionStats:
    """Fold the pending records into ``errors.jsonl`` and ``manifest.json``, then delete them.

    Only the holder of the dataset's lease may call this. Records created while it runs are
    left for the next compaction.
    """
    started = time.monotonic()
    storage = open_storage(root)
    snap = snap or snapshot(storage, check_shards=True)
    stats = CompactionStats(generation=snap.manifest.generation)
    folded = [*snap.pending, *snap.rejected, *snap.stale]
    if not folded:
        stats.seconds = time.monotonic() - started
        return stats
    if list(snap.errors) != list(snap.compacted_errors):
        storage.put(ERRORS_NAME, _errors_bytes(snap.errors))
    new_shards = snap.shards[len(snap.manifest.shards) :]
    manifest = snap.manifest.next_generation(snap.shards)
    storage.put(MANIFEST_NAME, manifest.to_bytes())
    for r in snap.rejected:  # their shards are not the dataset's: nothing names them any more
        if r.shard is not None:
            storage.delete(r.shard.name)
    for r in folded:
        storage.delete(r.name)
    stats.records = len(folded)
    stats.shards_added = len(new_shards)
    stats.errors_added = len(snap.errors) - len(
        [e for e in snap.compacted_errors if e in snap.errors]
    )
    stats.rejected = len(snap.rejected)
    stats.generation = manifest.generation
    stats.seconds = time.monotonic() - started
    log.debug(
        "compacted %d records (%d shards, %d failures) into generation %d in %.3f s",
        stats.records,
        stats.shards_added,
        stats.errors_added,
        stats.generation,
        stats.seconds,
    )
    return stats


def shard_run(name: str) -> str | None:
    """The run prefix of a shard file written by format version 2 (``<run>-<random>.arrow``,
    or a temporary ``.<run>-<random>.arrow.*.tmp``), else ``None``."""
    base = name.rsplit("/", 1)[-1].lstrip(".")
    head, sep, _ = base.partition("-")
    return head if sep and len(head) == 12 else None


def remove_orphans(
    root: str | Storage,
    snap: Snapshot,
    *,
    finished_runs: Iterable[str] = (),
    older_than_s: float = ORPHAN_GRACE_S,
) -> list[str]:
    """Delete shard files no record names (uploads never committed, temporary files of killed
    writers): those of ``finished_runs`` (run ids whose writers have all stopped) whatever their
    age, others once older than ``older_than_s``. Returns the names removed.

    Only the lease holder may call this. Should a writer of a run that lost its lease still
    record a shard removed here, compaction finds the shard missing and rejects the record:
    its videos are simply not done, and the next run does them.
    """
    storage = open_storage(root)
    named = {s.name for s in snap.shards}
    named |= {r.shard.name for r in (*snap.pending, *snap.rejected, *snap.stale) if r.shard}
    finished = {run[:12] for run in finished_runs}
    now = time.time()
    removed = []
    for entry in storage.list_dir(SHARD_DIR):
        rel = f"{SHARD_DIR}/{entry.name}"
        if rel in named or not (entry.name.endswith(".arrow") or entry.name.endswith(".tmp")):
            continue
        old = entry.mtime is not None and now - entry.mtime >= older_than_s
        if shard_run(entry.name) in finished or old:
            log.info("removing %s: never committed (left by an interrupted writer)", rel)
            storage.delete(rel)
            removed.append(rel)
    return removed
