"""Writing a dataset: shards that appear whole or not at all, and the failed-inputs log.

A shard is streamed, one record batch at a time, to ``shards/.part-NNNNN.arrow.<pid>.tmp``
(so memory stays at one batch), fsynced, renamed to ``shards/part-NNNNN.arrow``, and only then
added to ``manifest.json``, which is itself replaced atomically. Whatever kills the writer, the
manifest names only complete shards. On reopening, temporary files and shards the manifest does
not name (renamed just before a crash, never committed) are removed, so their clips are redone
rather than duplicated.

If the body of ``with DatasetWriter(...)`` raises, the shard in progress is discarded and the
complete shards stay.

One writer at a time: a writer holds an exclusive lock on ``<dataset>/.lock`` (``flock``, freed
by the kernel when the process dies, so a crash never leaves it stuck) from ``open`` to
``close``; a second writer fails at once with a clear error instead of corrupting the first.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import pyarrow as pa

from hero_data.manifest import (
    ERRORS_NAME,
    LOCK_NAME,
    MANIFEST_NAME,
    SHARD_DIR,
    DatasetError,
    Manifest,
    ShardInfo,
    fsync_dir,
    load_manifest,
    now_iso,
    sha256_file,
)
from hero_data.schema import ClipRecord, clip_schema, to_record_batch

log = logging.getLogger(__name__)

Mode = Literal["create", "append", "overwrite"]
_SHARD_RE = re.compile(r"^part-(\d{5,})\.arrow$")


def shard_name(index: int) -> str:
    """Path of shard ``index`` relative to the dataset root."""
    return f"{SHARD_DIR}/part-{index:05d}.arrow"


def _normalise(config: dict[str, Any]) -> dict[str, Any]:
    """The config as it reads back from JSON (tuples become lists, keys strings)."""
    try:
        return json.loads(json.dumps(config))
    except TypeError as e:
        raise TypeError(f"dataset config must be JSON-serialisable: {e}") from None


class DatasetWriter:
    """Writes clip records into shards of a dataset folder.

    Args:
        root: the dataset folder (created if missing).
        config: the full extraction config, stored in the manifest. Reopening a dataset with a
            different config is refused unless ``mode="overwrite"``.
        mode: ``"create"`` (the folder must hold no dataset), ``"append"`` (add shards to an
            existing dataset of the same config, or start one), ``"overwrite"`` (delete the
            existing manifest, shards and errors log first).
        max_rows_per_shard: a shard is closed after this many clips.
        max_shard_bytes: ... or once its feature bytes reach this.
        batch_rows: clips per Arrow record batch inside a shard (memory held by the writer).
        wait_for_lock: seconds to wait for another writer to finish (``None``: fail at once).

    Use as a context manager; :meth:`write` adds one clip, :meth:`write_video` all clips of a
    video, never split across shards (so a committed shard holds whole videos, and resuming
    can go by video ids).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        config: dict[str, Any],
        *,
        mode: Mode = "create",
        max_rows_per_shard: int = 2048,
        max_shard_bytes: int = 1 << 30,
        batch_rows: int = 64,
        wait_for_lock: float | None = None,
    ) -> None:
        if mode not in ("create", "append", "overwrite"):
            raise ValueError(f"mode must be create, append or overwrite, got {mode!r}")
        if max_rows_per_shard < 1 or batch_rows < 1 or max_shard_bytes < 1:
            raise ValueError("shard and batch limits must be positive")
        self.root = Path(root)
        self.config = _normalise(config)
        self.mode = mode
        self.max_rows_per_shard = max_rows_per_shard
        self.max_shard_bytes = max_shard_bytes
        self.batch_rows = batch_rows
        self.wait_for_lock = wait_for_lock
        self._videos: list[str] = []
        self._manifest: Manifest | None = None
        self._pending: list[ClipRecord] = []
        self._sink: pa.OSFile | None = None
        self._ipc: pa.ipc.RecordBatchFileWriter | None = None
        self._tmp: Path | None = None
        self._index = 0
        self._shard_rows = 0
        self._shard_bytes = 0
        self._lock_fd: int | None = None

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

    def _lock(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + (self.wait_for_lock or 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise DatasetError(
                        self.root / LOCK_NAME,
                        "another writer has this dataset open; one writer at a time",
                    ) from None
                time.sleep(0.05)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def open(self) -> None:
        """Lock, then create or reopen the dataset folder, per ``mode``."""
        self._lock()
        try:
            self._open_locked()
        except BaseException:
            self._unlock()
            raise

    def _open_locked(self) -> None:
        manifest_path = self.root / MANIFEST_NAME
        exists = manifest_path.exists()
        if exists and self.mode == "create":
            raise DatasetError(
                manifest_path,
                "a dataset already exists here; append to it or overwrite it explicitly",
            )
        if exists and self.mode == "overwrite":
            manifest_path.unlink()
            shutil.rmtree(self.root / SHARD_DIR, ignore_errors=True)
            (self.root / ERRORS_NAME).unlink(missing_ok=True)
            exists = False
        (self.root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        if exists:
            manifest = load_manifest(self.root)
            if manifest.config != self.config:
                changed = sorted(
                    k
                    for k in set(manifest.config) | set(self.config)
                    if manifest.config.get(k) != self.config.get(k)
                )
                raise DatasetError(
                    manifest_path,
                    f"the dataset was made with another config (differs in {changed}); "
                    "use the same config, or overwrite the dataset",
                )
        else:
            manifest = Manifest(config=self.config)
            manifest.write(self.root)
        self._manifest = manifest
        self._remove_uncommitted()

    def _remove_uncommitted(self) -> None:
        """Delete temp files and shards the manifest does not name (left by a crash)."""
        assert self._manifest is not None
        named = {s.name for s in self._manifest.shards}
        for path in sorted((self.root / SHARD_DIR).iterdir()):
            rel = f"{SHARD_DIR}/{path.name}"
            if rel in named:
                continue
            if path.name.endswith(".tmp") or _SHARD_RE.match(path.name):
                log.warning("removing %s: left by an interrupted write, never committed", path)
                path.unlink()

    def write(self, record: ClipRecord) -> None:
        """Add one clip. It is on disk for good once its shard is committed."""
        self._add(record)
        self._maybe_commit()

    def write_video(self, records: Sequence[ClipRecord]) -> None:
        """Add all clips of one video; the shard in progress is closed only after the last."""
        if len({r.clip.video_id for r in records}) > 1:
            raise ValueError("write_video takes the clips of one video")
        for r in records:
            self._add(r)
        self._maybe_commit()

    def _add(self, record: ClipRecord) -> None:
        if self._manifest is None:
            raise RuntimeError("DatasetWriter is not open; use it as a context manager")
        if not isinstance(record, ClipRecord):
            raise TypeError(f"expected a ClipRecord, got {type(record).__name__}")
        self._pending.append(record)
        if not self._videos or self._videos[-1] != record.clip.video_id:
            self._videos.append(record.clip.video_id)
        self._shard_rows += 1
        self._shard_bytes += record.resnet.nbytes + record.slowfast.nbytes
        if len(self._pending) >= self.batch_rows:
            self._flush_batch()

    def _maybe_commit(self) -> None:
        if self._shard_rows >= self.max_rows_per_shard or self._shard_bytes >= self.max_shard_bytes:
            self.commit_shard()

    def write_many(self, records: Iterable[ClipRecord]) -> None:
        """:meth:`write` each record."""
        for r in records:
            self.write(r)

    def _flush_batch(self) -> None:
        if not self._pending:
            return
        assert self._manifest is not None
        if self._ipc is None:
            self._index = self._next_index()
            self._tmp = self.root / SHARD_DIR / f".part-{self._index:05d}.arrow.{os.getpid()}.tmp"
            self._sink = pa.OSFile(str(self._tmp), "wb")
            self._ipc = pa.ipc.new_file(self._sink, clip_schema())
        self._ipc.write_batch(to_record_batch(self._pending))
        self._pending = []

    def _next_index(self) -> int:
        assert self._manifest is not None
        used = [
            int(m.group(1))
            for s in self._manifest.shards
            if (m := _SHARD_RE.match(Path(s.name).name))
        ]
        return max(used, default=-1) + 1

    def commit_shard(self) -> ShardInfo | None:
        """Close the shard in progress, rename it into place, and record it in the manifest."""
        self._flush_batch()
        if self._ipc is None:
            return None
        assert self._sink is not None and self._tmp is not None and self._manifest is not None
        self._ipc.close()
        self._sink.close()
        with open(self._tmp, "rb+") as f:
            os.fsync(f.fileno())
        name = shard_name(self._index)
        final = self.root / name
        info = ShardInfo(
            name=name,
            rows=self._shard_rows,
            bytes=self._tmp.stat().st_size,
            sha256=sha256_file(self._tmp),
            videos=tuple(dict.fromkeys(self._videos)),
        )
        os.replace(self._tmp, final)
        fsync_dir(final.parent)
        self._manifest = replace(
            self._manifest, shards=(*self._manifest.shards, info), updated=now_iso()
        )
        self._manifest.write(self.root)
        log.info("committed %s: %d clips, %.1f MiB", name, info.rows, info.bytes / 2**20)
        self._ipc = self._sink = self._tmp = None
        self._shard_rows = self._shard_bytes = 0
        self._videos = []
        return info

    def close(self) -> Manifest:
        """Commit the shard in progress, release the lock; return the final manifest."""
        try:
            self.commit_shard()
        finally:
            self._unlock()
        assert self._manifest is not None
        return self._manifest

    def abort(self) -> None:
        """Discard the shard in progress (its clips are not written); keep committed shards."""
        dropped = self._shard_rows
        self._pending = []
        try:
            if self._ipc is not None:
                self._ipc.close()
        except Exception:  # the file is discarded anyway
            pass
        if self._sink is not None:
            self._sink.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        if dropped:
            log.warning("discarded %d clips of an uncommitted shard in %s", dropped, self.root)
        self._ipc = self._sink = self._tmp = None
        self._shard_rows = self._shard_bytes = 0
        self._videos = []
        self._unlock()

    @property
    def manifest(self) -> Manifest:
        """The manifest as last committed."""
        if self._manifest is None:
            raise RuntimeError("DatasetWriter is not open")
        return self._manifest


class ErrorLog:
    """Appends one JSON line per failed input to ``<root>/errors.jsonl``.

    Each line is written with one ``write`` call and fsynced, so a crash can at worst cut the
    last line short; :func:`read_errors` skips such a line.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = Path(root) / ERRORS_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(
        self,
        *,
        video_id: str,
        source: str,
        stage: str,
        error: BaseException | None = None,
        error_type: str | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        """Append one failure: give ``error``, or ``error_type`` and ``message``."""
        if error is not None:
            error_type = error_type or type(error).__name__
            message = message or str(error)
        entry = {
            "video_id": video_id,
            "source": source,
            "stage": stage,
            "error_type": error_type or "Error",
            "message": message or "",
            "time": now_iso(),
        }
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


def read_errors(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Entries of ``<root>/errors.jsonl`` (none if absent); lines cut short are skipped."""
    path = Path(root) / ERRORS_NAME
    if not path.exists():
        return []
    out = []
    for lineno, line in enumerate(
        path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
    ):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d: skipping a malformed line (cut short by a crash?)", path, lineno)
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out
