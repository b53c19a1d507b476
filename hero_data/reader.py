"""Reading a dataset: memory-mapped shards, random access to a clip by index or id.

Features come back as zero-copy numpy views into the memory-mapped shard files: asking for a
clip costs a few microseconds and no copy, whatever its size; the bytes are read from disk (or
the page cache) only when the view is used.

Opening checks the manifest against the shards. In every mode each shard must exist, have the
manifest's byte size and row count, be an Arrow IPC file of this toolkit's schema version, and
pass Arrow's full validation of every record batch (buffer sizes, offsets, UTF-8; for the
feature columns that reads their list offsets, never the float16 values, so the features stay
lazily mapped), with no nulls and with feature offsets that agree with ``num_frames``. Whether
the shard's sha256 is checked against the manifest depends on ``verify``:

- ``"auto"`` (the default): hashed unless this very file was verified before. A small cache
  (:func:`verification_cache_dir`) remembers, per shard path, the file's identity (device,
  inode, size, mtime, ctime) and the sha256 it matched; a shard that was rewritten, replaced,
  copied or touched since is hashed again. The first open of a dataset therefore reads all of
  it once. The cache cannot see a change that leaves the file's metadata alone (bit rot under
  the file system): ``"full"`` is for that.
- ``"full"``: every shard is hashed on every open.
- ``"fast"``: no hashing, for data you trust (e.g. just written by this process). A same-size
  change to the feature bytes then goes unnoticed; damage to the file's structure or to the
  other columns still gives a :class:`DatasetError`.

Every problem with the files, found at open or when a clip is read, is a :class:`DatasetError`
naming the shard file (and the row, when one row cannot be decoded).
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from hero_data.manifest import DatasetError, Manifest, ShardInfo, load_manifest, sha256_file
from hero_data.schema import (
    FEATURE_COLUMNS,
    SCHEMA_VERSION,
    ClipRecord,
    clip_schema,
    schema_version_of,
)
from hero_data.types import Clip, Cue

log = logging.getLogger(__name__)

Verify = Literal["auto", "fast", "full"]
VERIFY_MODES: tuple[str, ...] = ("auto", "fast", "full")

CACHE_ENV = "HERO_CACHE_DIR"
"""Environment variable naming the toolkit's cache folder (overrides the XDG default)."""

# A file modified within this long before it was hashed is not cached: file times have coarse
# ticks (a few ms on Linux, 1-2 s on some file systems), so a change made later within the same
# tick would leave the identity unchanged. Such a shard is hashed again on its next open.
_RACY_NS = 2_000_000_000

# Errors a corrupt shard can raise from pyarrow or numpy while decoding (UnicodeDecodeError and
# pyarrow's ArrowInvalid are ValueErrors).
_DECODE_ERRORS = (pa.ArrowException, ValueError, TypeError, KeyError, IndexError, OverflowError)


# -- the verification cache ------------------------------------------------------------------


def verification_cache_dir() -> Path:
    """Where ``verify="auto"`` remembers verified shards: ``$HERO_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/hero-toolkit``, else ``~/.cache/hero-toolkit``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says to ignore a relative one
        return Path(xdg) / "hero-toolkit"
    home = Path.home()
    if not home.is_absolute():  # no $HOME and no password entry: "~" came back unexpanded
        raise RuntimeError(f"no home folder to put a cache in; set ${CACHE_ENV}")
    return home / ".cache" / "hero-toolkit"


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _cache_entry(resolved: Path) -> Path:
    """One small JSON file per shard path, so concurrent openers never lose each other's
    entries (each is replaced atomically)."""
    key = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:40]
    return verification_cache_dir() / "verified-shards" / f"{key}.json"


def _already_verified(resolved: Path, st: os.stat_result, sha256: str) -> bool:
    try:
        entry = json.loads(_cache_entry(resolved).read_text(encoding="utf-8"))
    except (OSError, RuntimeError, ValueError):  # absent, unreadable, no home folder, not JSON
        return False
    return (
        isinstance(entry, dict)
        and entry.get("path") == str(resolved)
        and entry.get("identity") == _identity(st)
        and entry.get("sha256") == sha256
    )


def _remember_verified(resolved: Path, st: os.stat_result, sha256: str, hashed_at: int) -> None:
    """Record that ``resolved``, as ``st`` describes it, matched ``sha256``. Never raises: a
    cache that cannot be written only means hashing again next time."""
    if hashed_at - st.st_mtime_ns < _RACY_NS:
        log.debug("%s: modified just before it was hashed; not caching its verification", resolved)
        return
    entry = {"path": str(resolved), "identity": _identity(st), "sha256": sha256}
    try:
        target = _cache_entry(resolved)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry, f)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except (OSError, RuntimeError) as e:
        log.debug("cannot cache the verification of %s: %s", resolved, e)


def _check_sha256(path: Path, info: ShardInfo, st: os.stat_result, verify: Verify) -> None:
    if verify == "fast":
        return
    resolved = path.resolve()
    if verify == "auto" and _already_verified(resolved, st, info.sha256):
        return
    hashed_at = time.time_ns()
    digest = sha256_file(path)
    if digest != info.sha256:
        raise DatasetError(
            path,
            f"sha256 {digest[:16]}… does not match the manifest's {info.sha256[:16]}…",
        )
    if _identity(os.stat(path)) == _identity(st):  # unchanged while it was being hashed
        _remember_verified(resolved, st, info.sha256, hashed_at)


# -- shards ----------------------------------------------------------------------------------


@dataclass
class _Batch:
    """One record batch of a shard with its feature columns as 2D views."""

    batch: pa.RecordBatch
    path: Path  # the shard file
    first_row: int  # row of the batch's first clip within its shard
    offsets: list[int]  # step offsets per row, len rows + 1
    resnet: np.ndarray  # (steps in batch, 2048) view
    slowfast: np.ndarray  # (steps in batch, 2304) view


def _steps_view(column: pa.ListArray, dim: int) -> tuple[list[int], np.ndarray]:
    """Row offsets and a zero-copy ``(steps, dim)`` float16 view of a feature column."""
    steps = column.values  # FixedSizeListArray, whole child (list offsets index into it)
    flat = steps.values  # HalfFloatArray, whole child of the fixed-size lists
    start = flat.offset + steps.offset * dim
    count = len(steps) * dim
    offsets = column.offsets.to_numpy().tolist()
    if count == 0:
        return offsets, np.zeros((0, dim), np.float16)
    data = np.frombuffer(flat.buffers()[1], dtype=np.float16, count=count, offset=start * 2)
    return offsets, data.reshape(-1, dim)


def _check_batch(path: Path, index: int, batch: pa.RecordBatch) -> dict[str, pa.Array]:
    """Structure of one record batch (it reads offsets and the small columns, not the feature
    values); returns its columns by name."""
    where = f"record batch {index}"
    try:
        # Full validation of the feature columns checks their list offsets and buffer sizes
        # only: float16 values have nothing to validate, so their pages are not touched.
        batch.validate(full=True)
    except (pa.ArrowException, ValueError) as e:
        raise DatasetError(path, f"{where} is malformed ({e})") from None
    columns = dict(zip(batch.schema.names, batch.columns, strict=True))
    for name, column in columns.items():
        if column.null_count:
            raise DatasetError(path, f"{where}: nulls in the non-nullable column {name!r}")
    num_frames = columns["num_frames"].to_numpy()
    for name in FEATURE_COLUMNS:
        if not np.array_equal(np.diff(columns[name].offsets.to_numpy()), num_frames):
            raise DatasetError(path, f"{where}: {name} steps per row disagree with num_frames")
    return columns


def _open_shard(root: Path, info: ShardInfo, verify: Verify) -> list[_Batch]:
    path = root / info.name
    if not path.is_file():
        raise DatasetError(path, "missing: the manifest lists this shard but the file is absent")
    st = path.stat()
    if st.st_size != info.bytes:
        raise DatasetError(
            path, f"{st.st_size} bytes, the manifest says {info.bytes} (truncated or replaced?)"
        )
    _check_sha256(path, info, st, verify)
    try:
        source = pa.memory_map(str(path), "r")
        reader = pa.ipc.open_file(source)
        schema = reader.schema
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DatasetError(
            path, f"not a readable Arrow IPC file ({type(e).__name__}: {e})"
        ) from None
    version = schema_version_of(schema)
    if version != SCHEMA_VERSION:
        raise DatasetError(
            path,
            f"shard schema version {version!r}, this toolkit reads version {SCHEMA_VERSION}"
            if version is not None
            else "not a HERO shard (its schema carries no hero.schema_version)",
        )
    if not schema.equals(clip_schema(), check_metadata=False):
        raise DatasetError(path, "columns do not match the HERO clip schema of this version")
    rows = sum(b.num_rows for b in batches)
    if rows != info.rows:
        raise DatasetError(path, f"{rows} rows, the manifest says {info.rows}")
    out = []
    first_row = 0
    for i, b in enumerate(batches):
        columns = _check_batch(path, i, b)
        try:
            offsets, resnet = _steps_view(columns["resnet"], FEATURE_COLUMNS["resnet"])
            _, slowfast = _steps_view(columns["slowfast"], FEATURE_COLUMNS["slowfast"])
        except _DECODE_ERRORS as e:
            raise DatasetError(
                path, f"record batch {i}: cannot map its features ({type(e).__name__}: {e})"
            ) from None
        out.append(_Batch(b, path, first_row, offsets, resnet, slowfast))
        first_row += b.num_rows
    return out


class HeroDataset(Sequence[ClipRecord]):
    """A dataset opened for reading. Index it with an int (row) or a clip id.

    Use :meth:`open`. ``len(ds)`` is the number of clips; ``ds[i]`` or ``ds["vid.3"]`` gives a
    :class:`ClipRecord` whose features are views; :meth:`features` gives just the features.
    """

    def __init__(self, root: Path, manifest: Manifest, batches: list[_Batch]) -> None:
        self.root = root
        self.manifest = manifest
        self._batches = batches
        self._first_row: list[int] = []
        n = 0
        for b in batches:
            self._first_row.append(n)
            n += b.batch.num_rows
        self._len = n
        self._index: dict[str, int] | None = None

    @classmethod
    def open(cls, root: str | os.PathLike[str], verify: Verify = "auto") -> HeroDataset:
        """Open ``root``; raises :class:`DatasetError` naming the file at fault.

        ``verify``: ``"auto"`` checks each shard's sha256 unless that unchanged file was
        verified before, ``"full"`` always does, ``"fast"`` never does (see the module doc).
        """
        if verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {', '.join(VERIFY_MODES)}, got {verify!r}")
        root = Path(root)
        manifest = load_manifest(root)
        batches: list[_Batch] = []
        for info in manifest.shards:
            batches.extend(_open_shard(root, info, verify))
        return cls(root, manifest, batches)

    def __len__(self) -> int:
        return self._len

    def _locate(self, key: int | str) -> tuple[_Batch, int]:
        if isinstance(key, str):
            key = self.index_of(key)
        elif isinstance(key, (int, np.integer)):
            key = int(key)
            if key < 0:
                key += self._len
            if not 0 <= key < self._len:
                raise IndexError(f"clip index {key} out of range for {self._len} clips")
        else:
            raise TypeError(f"index a dataset with an int or a clip id, not {type(key).__name__}")
        b = bisect.bisect_right(self._first_row, key) - 1
        return self._batches[b], key - self._first_row[b]

    def index_of(self, clip_id: str) -> int:
        """Row of ``clip_id``; ``KeyError`` if the dataset has no such clip."""
        if self._index is None:
            self._index = {cid: i for i, cid in enumerate(self.clip_ids())}
        try:
            return self._index[clip_id]
        except KeyError:
            raise KeyError(f"no clip {clip_id!r} in {self.root}") from None

    def clip_ids(self) -> list[str]:
        """All clip ids in row order."""
        return [cid for b in self._batches for cid in b.batch.column("clip_id").to_pylist()]

    def features(self, key: int | str) -> tuple[np.ndarray, np.ndarray]:
        """``(resnet (n, 2048), slowfast (n, 2304))`` float16 zero-copy views of one clip.

        The views are read-only (the file is mapped read-only): copy before changing them.
        """
        batch, row = self._locate(key)
        lo, hi = batch.offsets[row], batch.offsets[row + 1]
        return batch.resnet[lo:hi], batch.slowfast[lo:hi]

    def __getitem__(self, key: int | str) -> ClipRecord:  # type: ignore[override]
        batch, row = self._locate(key)
        lo, hi = batch.offsets[row], batch.offsets[row + 1]
        try:
            return record_from_row(batch.batch, row, batch.resnet[lo:hi], batch.slowfast[lo:hi])
        except _DECODE_ERRORS as e:
            raise DatasetError(
                batch.path,
                f"row {batch.first_row + row}: not a valid clip ({type(e).__name__}: {e})",
            ) from None

    def __iter__(self) -> Iterator[ClipRecord]:
        for i in range(self._len):
            yield self[i]

    def table(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The dataset as one Arrow table (zero-copy over the mapped shards)."""
        schema = clip_schema()
        batches = [b.batch for b in self._batches]
        table = pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()
        return table.select(list(columns)) if columns is not None else table


def record_from_row(
    batch: pa.RecordBatch,
    row: int,
    resnet: np.ndarray | None = None,
    slowfast: np.ndarray | None = None,
) -> ClipRecord:
    """Row ``row`` of a record batch of the clip schema as a :class:`ClipRecord`.

    ``resnet``/``slowfast``: the row's features when the caller already has views of them;
    otherwise they are taken (zero-copy) from the batch. A row that is not a valid clip raises
    ``ValueError`` (or the pyarrow error); :class:`HeroDataset` turns that into a
    :class:`DatasetError` naming the shard and the row.
    """

    def value(name: str) -> Any:
        return batch.column(name)[row].as_py()

    if resnet is None or slowfast is None:
        offsets, r = _steps_view(batch.column("resnet"), FEATURE_COLUMNS["resnet"])
        _, f = _steps_view(batch.column("slowfast"), FEATURE_COLUMNS["slowfast"])
        lo, hi = offsets[row], offsets[row + 1]
        resnet, slowfast = r[lo:hi], f[lo:hi]
    clip = Clip(value("video_id"), value("clip_index"), value("clip_start"), value("clip_end"))
    if value("clip_id") != clip.clip_id:
        raise ValueError(
            f"clip_id {value('clip_id')!r} is not video_id.clip_index ({clip.clip_id!r})"
        )
    return ClipRecord(
        clip=clip,
        source=value("source"),
        frame_interval=value("frame_interval"),
        resnet=resnet,
        slowfast=slowfast,
        cues=tuple(Cue(**c) for c in value("cues")),
        cue_token_ids=value("cue_token_ids"),
        sub2frames=value("sub2frames"),
        unique_sub2frames=value("unique_sub2frames"),
        unmatched_frames=value("unmatched_frames"),
    )


def open_dataset(root: str | os.PathLike[str], verify: Verify = "auto") -> HeroDataset:
    """:meth:`HeroDataset.open`."""
    return HeroDataset.open(root, verify=verify)
