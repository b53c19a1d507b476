"""Writing a dataset: shards that appear whole or not at all, committed without a lock.

Two writers share one shard-writing path:

- :class:`ShardWriter` writes clips into new shards and commits each shard, with the failures
  it was given, as one commit record (:mod:`hero_data.commits`). It reads nothing of the
  dataset and takes no lock, so its cost does not grow with the dataset. It is what each write
  task of ``hero run`` uses, while the run's driver holds the lease.
- :class:`DatasetWriter` is the owner's writer: it takes the dataset's lease (one run or writer
  at a time), creates or checks ``manifest.json`` (upgrading a format-1 dataset in place),
  folds leftover commit records in, writes through a :class:`ShardWriter`, and on close compacts
  the records into the manifest and ``errors.jsonl``, removes shards no record names, and hands
  the lease back.

A shard is streamed one record batch at a time (memory stays at one batch) to a scratch file,
fsynced, and made visible under a name no other writer can produce (``shards/<run>-<random>
.arrow``): renamed on a local disk, uploaded in one piece to an object store. Only then is its
record created, so whatever kills a writer, nothing names a half-written shard. If the body of
``with ...Writer(...)`` raises, the shard in progress is discarded and committed ones stay.

A writer never splits a video across shards: a shard is closed, once full, only where a new
video starts (resuming goes by video ids).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import pyarrow as pa

from hero_data.commits import (
    ORPHAN_GRACE_S,
    CommitRecord,
    CompactionStats,
    Outcome,
    Snapshot,
    compact,
    error_entry,
    parse_errors,
    remove_orphans,
    snapshot,
    write_record,
)
from hero_data.errors import DatasetError, FeatureSetError
from hero_data.features import DEFAULT_FEATURES, FeatureSet
from hero_data.lease import TTL_S, Lease
from hero_data.manifest import (
    COMMITS_DIR,
    ERRORS_NAME,
    LOCK_NAME,
    MANIFEST_NAME,
    SHARD_DIR,
    Manifest,
    ShardInfo,
    now_iso,
    parse_manifest,
    sha256_file,
)
from hero_data.schema import ClipRecord, check_record_features, clip_schema, to_record_batch
from hero_data.storage import (
    Storage,
    StorageError,
    describe_error,
    local_scratch,
    open_storage,
)

log = logging.getLogger(__name__)

Mode = Literal["create", "append", "overwrite"]


def new_run_id() -> str:
    """A fresh run id (32 hex digits); its first 12 prefix the run's shard names."""
    return uuid.uuid4().hex


def new_shard_name(run: str) -> str:
    """A shard path no other writer produces: ``shards/<run[:12]>-<16 random hex>.arrow``."""
    return f"{SHARD_DIR}/{run[:12]}-{secrets.token_hex(8)}.arrow"


def _normalise(config: dict[str, Any]) -> dict[str, Any]:
    """The config as it reads back from JSON (tuples become lists, keys strings)."""
    try:
        return json.loads(json.dumps(config))
    except TypeError as e:
        raise TypeError(f"dataset config must be JSON-serialisable: {e}") from None


class ShardWriter:
    """Writes clips into new shards of an existing dataset and commits each with a record.

    Args:
        root: the dataset (local path or fsspec URL); its manifest must exist.
        run: the run id; shard names start with its first 12 characters.
        features: the dataset's feature set (its manifest's); a record holding other columns or
            dimensions is refused with a :class:`FeatureSetError`.
        max_rows_per_shard: a shard is closed, once it has this many clips, where the next
            video starts.
        max_shard_bytes: ... or once its feature bytes reach this.
        batch_rows: clips per Arrow record batch inside a shard (memory held by the writer).

    Use as a context manager, or call :meth:`flush` and :meth:`abort` yourself. ``outcomes``
    lists what each commit found (:data:`hero_data.commits.Outcome`); a commit whose videos an
    earlier attempt already committed (``"other"``) deletes its own shard.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | Storage,
        *,
        run: str,
        features: FeatureSet = DEFAULT_FEATURES,
        max_rows_per_shard: int = 2048,
        max_shard_bytes: int = 1 << 30,
        batch_rows: int = 64,
    ) -> None:
        if max_rows_per_shard < 1 or batch_rows < 1 or max_shard_bytes < 1:
            raise ValueError("shard and batch limits must be positive")
        self.storage = open_storage(os.fspath(root) if not isinstance(root, Storage) else root)
        self.run = run
        self.features = features
        self.max_rows_per_shard = max_rows_per_shard
        self.max_shard_bytes = max_shard_bytes
        self.batch_rows = batch_rows
        self.outcomes: list[tuple[Outcome, CommitRecord]] = []
        self._pending: list[ClipRecord] = []
        self._failures: list[dict[str, Any]] = []
        self._videos: list[str] = []
        self._video_rows: list[int] = []
        self._scratch: Any = None  # the context manager of the scratch file
        self._name = ""
        self._tmp: Path | None = None
        self._sink: pa.OSFile | None = None
        self._ipc: pa.ipc.RecordBatchFileWriter | None = None
        self._rows = 0
        self._bytes = 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.flush()
        else:
            self.abort()

    # -- adding ----------------------------------------------------------------------------

    def write(self, record: ClipRecord) -> None:
        """Add one clip. It is in the dataset for good once its shard's record exists."""
        self._add(record)

    def write_video(self, records: Sequence[ClipRecord]) -> None:
        """Add all clips of one video."""
        if len({r.clip.video_id for r in records}) > 1:
            raise ValueError("write_video takes the clips of one video")
        for r in records:
            self._add(r)

    def write_many(self, records: Iterable[ClipRecord]) -> None:
        """:meth:`write` each record."""
        for r in records:
            self.write(r)

    def record_failure(
        self,
        *,
        video_id: str,
        source: str,
        stage: str,
        error: BaseException | None = None,
        error_type: str | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        """Note an input that did not make it; it is committed with the next record."""
        entry = error_entry(
            video_id=video_id,
            source=source,
            stage=stage,
            error=error,
            error_type=error_type,
            message=message,
        )
        self._failures.append(entry)
        return entry

    def _add(self, record: ClipRecord) -> None:
        if not isinstance(record, ClipRecord):
            raise TypeError(f"expected a ClipRecord, got {type(record).__name__}")
        check_record_features(record, self.features, self.storage.url)
        vid = record.clip.video_id
        new_video = not self._videos or self._videos[-1] != vid
        if new_video and self._full():
            self.commit_shard()
        if new_video:
            self._videos.append(vid)
            self._video_rows.append(0)
        self._video_rows[-1] += 1
        self._pending.append(record)
        self._rows += 1
        self._bytes += record.feature_bytes
        if len(self._pending) >= self.batch_rows:
            self._flush_batch()

    def _full(self) -> bool:
        return self._rows >= self.max_rows_per_shard or self._bytes >= self.max_shard_bytes

    def _flush_batch(self) -> None:
        if not self._pending:
            return
        batch = to_record_batch(self._pending, self.features)
        with self._scratch_errors():
            if self._ipc is None:
                self._name = new_shard_name(self.run)
                self._scratch = local_scratch(self.storage, self._name)
                self._tmp = self._scratch.__enter__()
                self._sink = pa.OSFile(str(self._tmp), "wb")
                self._ipc = pa.ipc.new_file(self._sink, clip_schema(self.features))
            self._ipc.write_batch(batch)
        self._pending = []

    @contextlib.contextmanager
    def _scratch_errors(self) -> Iterator[None]:
        """A failure writing the local scratch file (a full disk) as a StorageError naming
        the shard being written."""
        try:
            yield
        except OSError as e:
            if isinstance(e, StorageError):
                raise
            raise StorageError(
                self.storage.uri(getattr(self, "_name", SHARD_DIR)),
                f"cannot write the shard (scratch file {self._tmp}): {describe_error(e)}",
            ) from e

    # -- committing ------------------------------------------------------------------------

    def commit_shard(self) -> ShardInfo | None:
        """Close the shard in progress, make it visible, and commit it (with the failures noted
        so far) in one record. Returns the shard, or ``None`` if there was none."""
        self._flush_batch()
        if self._ipc is None:
            return None
        assert self._sink is not None and self._tmp is not None
        try:
            with self._scratch_errors():
                self._ipc.close()
                self._sink.close()
                with open(self._tmp, "rb+") as f:
                    os.fsync(f.fileno())
            info = ShardInfo(
                name=self._name,
                rows=self._rows,
                bytes=self._tmp.stat().st_size,
                sha256=sha256_file(self._tmp),
                videos=tuple(self._videos),
                video_rows=tuple(self._video_rows),
            )
            self.storage.upload(self._tmp, info.name)
        finally:
            self._close_scratch()
        self._ipc = self._sink = None
        self._rows = self._bytes = 0
        self._videos, self._video_rows = [], []
        self._commit(info)
        return info

    def _commit(self, shard: ShardInfo | None) -> None:
        failures, self._failures = self._failures, []
        record = CommitRecord.make(self.run, shard, failures)
        try:
            outcome = write_record(self.storage, record)
        except BaseException:
            if shard is not None:  # not recorded: nothing names it, so remove it now
                self._delete_quietly(shard.name)
            raise
        if outcome == "other" and shard is not None:
            log.warning(
                "%s: its videos were committed by an earlier attempt; discarding this copy",
                self.storage.uri(shard.name),
            )
            self._delete_quietly(shard.name)
        elif shard is not None:
            log.info(
                "committed %s: %d clips, %.1f MiB",
                self.storage.uri(shard.name),
                shard.rows,
                shard.bytes / 2**20,
            )
        self.outcomes.append((outcome, record))

    def _delete_quietly(self, rel: str) -> None:
        try:
            self.storage.delete(rel)
        except Exception as e:  # it stays an orphan; remove_orphans deletes it later
            log.warning("could not remove %s: %s", self.storage.uri(rel), e)

    def flush(self) -> None:
        """Commit the shard in progress and any failures noted since the last commit."""
        self.commit_shard()
        if self._failures:
            self._commit(None)

    def _close_scratch(self) -> None:
        if self._scratch is not None:
            self._scratch.__exit__(None, None, None)
        self._scratch = None
        self._tmp = None

    def abort(self) -> None:
        """Discard the shard in progress and the failures not yet committed; committed shards
        stay."""
        dropped = self._rows
        self._pending, self._failures = [], []
        try:
            if self._ipc is not None:
                self._ipc.close()
        except Exception:  # the file is discarded anyway
            pass
        if self._sink is not None:
            self._sink.close()
        self._close_scratch()
        if dropped:
            log.warning(
                "discarded %d clips of an uncommitted shard in %s", dropped, self.storage.url
            )
        self._ipc = self._sink = None
        self._rows = self._bytes = 0
        self._videos, self._video_rows = [], []


class DatasetWriter:
    """The owner's writer: the lease, the manifest, shards and failures, compaction.

    Args:
        root: the dataset (local path or fsspec URL; a local folder is created if missing).
        config: the full extraction config, stored in the manifest. Reopening a dataset with a
            different config is refused unless ``mode="overwrite"``.
        features: the dataset's feature set, stored in the manifest; reopening a dataset of
            another set is refused likewise (:class:`FeatureSetError`), and so is writing a
            record of another set.
        mode: ``"create"`` (there must be no dataset yet), ``"append"`` (add to an existing
            dataset of the same config, or start one), ``"overwrite"`` (delete the existing
            dataset's manifest, shards, records and failures first).
        max_rows_per_shard, max_shard_bytes, batch_rows: as for :class:`ShardWriter`.
        run: the run id (a fresh one if ``None``).
        command: what holds the lease, for the message another writer gets.
        lease_ttl_s: seconds the lease lasts without renewal (renewed in the background).
        orphan_grace_s: unrecorded shards of other runs are removed once this old.

    Use as a context manager. :meth:`write`, :meth:`write_video` and :meth:`record_failure` go
    through one :class:`ShardWriter`; :meth:`compact` folds commit records into the manifest
    (also done on close).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        config: dict[str, Any],
        *,
        features: FeatureSet = DEFAULT_FEATURES,
        mode: Mode = "create",
        max_rows_per_shard: int = 2048,
        max_shard_bytes: int = 1 << 30,
        batch_rows: int = 64,
        run: str | None = None,
        command: str = "hero",
        lease_ttl_s: float = TTL_S,
        orphan_grace_s: float = ORPHAN_GRACE_S,
    ) -> None:
        if mode not in ("create", "append", "overwrite"):
            raise ValueError(f"mode must be create, append or overwrite, got {mode!r}")
        if max_rows_per_shard < 1 or batch_rows < 1 or max_shard_bytes < 1:
            raise ValueError("shard and batch limits must be positive")
        self.storage = open_storage(os.fspath(root))
        self.root = self.storage.url
        self.config = _normalise(config)
        self.features = features
        self.mode = mode
        self.run = run or new_run_id()
        self.command = command
        self.lease_ttl_s = lease_ttl_s
        self.orphan_grace_s = orphan_grace_s
        self._limits = {
            "max_rows_per_shard": max_rows_per_shard,
            "max_shard_bytes": max_shard_bytes,
            "batch_rows": batch_rows,
        }
        self._lease: Lease | None = None
        self._shards: ShardWriter | None = None
        self._manifest: Manifest | None = None
        self._seen: set[str] = set()  # videos in the dataset or written, but the current one
        self._current: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> DatasetWriter:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        """Take the lease, then create, check or upgrade the dataset, per ``mode``."""
        if self.storage.is_local:
            self.storage.local_path("").mkdir(parents=True, exist_ok=True)
        self._lease = Lease.acquire(
            self.storage, self.run, command=self.command, ttl_s=self.lease_ttl_s
        )
        try:
            self._lease.start_renewing()
            self._open_leased()
        except BaseException:
            self._lease.release()
            self._lease = None
            raise
        self._shards = ShardWriter(
            self.storage, run=self.run, features=self.features, **self._limits
        )

    def _open_leased(self) -> None:
        storage = self.storage
        where = storage.uri(MANIFEST_NAME)
        data = storage.read_optional(MANIFEST_NAME)
        if data is not None and self.mode == "create":
            raise DatasetError(
                where, "a dataset already exists here; append to it or overwrite it explicitly"
            )
        if data is not None and self.mode == "overwrite":
            storage.delete(MANIFEST_NAME)
            for folder in (SHARD_DIR, COMMITS_DIR):
                storage.remove_tree(folder)
            storage.delete(ERRORS_NAME)
            data = None
        if data is None:
            manifest = Manifest(config=self.config, features=self.features)
            storage.put(MANIFEST_NAME, manifest.to_bytes())
        else:
            manifest = parse_manifest(data, where)
            if not manifest.features.same_layout(self.features):
                raise FeatureSetError(
                    f"{where}: the dataset holds features {manifest.features.describe()}, not "
                    f"{self.features.describe()}; write it with its own set, or overwrite it"
                )
            if manifest.config != self.config:
                changed = sorted(
                    k
                    for k in set(manifest.config) | set(self.config)
                    if manifest.config.get(k) != self.config.get(k)
                )
                raise DatasetError(
                    where,
                    f"the dataset was made with another config (differs in {changed}); "
                    "use the same config, or overwrite the dataset",
                )
            if manifest.format_version == 1:
                manifest = upgrade_manifest(storage, manifest)
        compact(storage)  # records left by an interrupted run: fold them in now
        snap = snapshot(storage)
        remove_orphans(storage, snap, older_than_s=self.orphan_grace_s)
        self._manifest = snap.manifest
        self._seen = snap.videos()

    def _writer(self) -> ShardWriter:
        if self._shards is None:
            raise RuntimeError("DatasetWriter is not open; use it as a context manager")
        assert self._lease is not None
        self._lease.check()
        return self._shards

    # -- writing ---------------------------------------------------------------------------

    def _check_video(self, video_id: str) -> None:
        """A video's clips are written together, and only once: its commit is all of it."""
        if video_id == self._current:
            return
        if video_id in self._seen:
            raise DatasetError(
                self.storage.url,
                f"the dataset already holds video {video_id!r} (or this writer wrote it "
                "earlier): a video's clips are written together, once",
            )
        if self._current is not None:
            self._seen.add(self._current)
        self._current = video_id

    def write(self, record: ClipRecord) -> None:
        """Add one clip (see :meth:`ShardWriter.write`)."""
        writer = self._writer()
        self._check_video(record.clip.video_id)
        writer.write(record)

    def write_video(self, records: Sequence[ClipRecord]) -> None:
        """Add all clips of one video."""
        writer = self._writer()
        for vid in dict.fromkeys(r.clip.video_id for r in records):
            self._check_video(vid)
        writer.write_video(records)

    def write_many(self, records: Iterable[ClipRecord]) -> None:
        for r in records:
            self.write(r)

    def record_failure(self, **kw: Any) -> dict[str, Any]:
        """Note an input that did not make it (``video_id``, ``source``, ``stage``, and
        ``error`` or ``error_type`` + ``message``); committed with the next commit."""
        return self._writer().record_failure(**kw)

    def commit_shard(self) -> ShardInfo | None:
        """Commit the shard in progress now (and the failures noted so far)."""
        return self._writer().commit_shard()

    def flush(self) -> None:
        """Commit the shard in progress and the failures noted so far."""
        self._writer().flush()

    def snapshot(self) -> Snapshot:
        """The dataset's content now (manifest + pending records)."""
        return snapshot(self.storage)

    def compact(self) -> CompactionStats:
        """Fold the pending commit records into the manifest and ``errors.jsonl``."""
        if self._lease is None:
            raise RuntimeError("DatasetWriter is not open")
        self._lease.check()
        stats = compact(self.storage)
        self._manifest = None
        return stats

    def close(self, *, finished_runs: Iterable[str] = ()) -> Manifest:
        """Commit what is in progress, compact, remove shards no record names (this run's and
        ``finished_runs``'s whatever their age), release the lease; return the manifest."""
        try:
            if self._shards is not None:
                self._writer().flush()
            self._finish(finished_runs)
        finally:
            self._release()
        return self.manifest

    def abort(self) -> None:
        """Discard what is in progress; compact what was committed; release the lease."""
        try:
            if self._shards is not None:
                self._shards.abort()
            if self._lease is not None:
                self._finish(())
        except Exception as e:  # already failing: keep the first error
            log.warning("cleaning up %s after an error failed: %s", self.storage.url, e)
        finally:
            self._release()

    def _finish(self, finished_runs: Iterable[str]) -> None:
        assert self._lease is not None
        self._lease.check()
        compact(self.storage)
        ended = [self.run, *finished_runs]
        if self._lease.previous is not None:  # the run this lease was taken from has ended
            ended.append(self._lease.previous.run)
        remove_orphans(
            self.storage,
            snapshot(self.storage),
            finished_runs=ended,
            older_than_s=self.orphan_grace_s,
        )
        self._manifest = None

    def _release(self) -> None:
        self._shards = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    @property
    def manifest(self) -> Manifest:
        """The manifest as last compacted."""
        if self._manifest is None:
            self._manifest = snapshot(self.storage).manifest
        return self._manifest

    @property
    def outcomes(self) -> list[tuple[Outcome, CommitRecord]]:
        return self._shards.outcomes if self._shards is not None else []


def upgrade_manifest(root: str | Storage, manifest: Manifest | None = None) -> Manifest:
    """Rewrite a format-1 dataset's manifest as format 2 (no shard is touched) and remove its
    ``.lock``. The caller holds the lease (``hero upgrade`` and :class:`DatasetWriter` do)."""
    storage = open_storage(root)
    if manifest is None:
        from hero_data.manifest import load_manifest

        manifest = load_manifest(storage)
    if manifest.format_version != 1:
        return manifest
    upgraded = manifest.next_generation(manifest.shards)
    storage.put(MANIFEST_NAME, upgraded.to_bytes())
    storage.delete(LOCK_NAME)
    log.info("upgraded %s from dataset format 1 to 2 (manifest only)", storage.url)
    return upgraded


def upgrade_dataset(root: str | os.PathLike[str]) -> tuple[int, int]:
    """``hero upgrade``: take the lease and upgrade a format-1 dataset in place. Returns the
    format versions ``(before, after)``."""
    storage = open_storage(os.fspath(root))
    from hero_data.manifest import load_manifest

    before = load_manifest(storage).format_version
    if before == 2:
        return before, before
    lease = Lease.acquire(storage, new_run_id(), command="hero upgrade")
    try:
        upgrade_manifest(storage)
    finally:
        lease.release()
    return before, 2


class ErrorLog:
    """Appends one JSON line per failed input to a local folder's ``errors.jsonl``.

    For folders that are not datasets (``hero extract``'s output); a dataset's failures are
    committed with its records (:meth:`DatasetWriter.record_failure`). Each line is written
    with one ``write`` call and fsynced, so a crash can at worst cut the last line short;
    :func:`read_errors` skips such a line.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = Path(root) / ERRORS_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, **kw: Any) -> dict[str, Any]:
        """Append one failure: ``video_id``, ``source``, ``stage``, and ``error`` or
        ``error_type`` + ``message``."""
        entry = error_entry(**kw)
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # A line cut short by an earlier crash would swallow this one: start a new line.
            if os.fstat(fd).st_size > 0 and not _ends_with_newline(self.path):
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_errors(root: str | os.PathLike[str] | Storage) -> list[dict[str, Any]]:
    """The failed inputs of a dataset (compacted and pending), or of a plain folder's
    ``errors.jsonl``; ``[]`` when there are none. Lines cut short are skipped."""
    storage = open_storage(root if isinstance(root, Storage) else os.fspath(root))
    if storage.read_optional(MANIFEST_NAME) is None:
        return parse_errors(storage.read_optional(ERRORS_NAME), storage.uri(ERRORS_NAME))
    return list(snapshot(storage).errors)


__all__ = [
    "DatasetWriter",
    "ErrorLog",
    "Mode",
    "ShardWriter",
    "new_run_id",
    "new_shard_name",
    "now_iso",
    "read_errors",
    "upgrade_dataset",
    "upgrade_manifest",
]
