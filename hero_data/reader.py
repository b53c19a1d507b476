"""Reading a dataset: random access to any clip by index or id, locally or on object storage.

A dataset opens as a snapshot (:func:`hero_data.commits.snapshot`): the manifest plus the commit
records not yet compacted, so a reader sees exactly the committed shards, also while a run is
writing. Nothing it opens changes under it: shards are immutable once committed.

Local datasets are memory-mapped. Features come back as zero-copy numpy views into the mapped
shard files: asking for a clip costs a few microseconds and no copy, whatever its size; the
bytes are read from disk (or the page cache) only when the view is used.

Opening a local dataset checks the snapshot against the shards. In every mode each shard must
exist, have the recorded byte size and row count, be an Arrow IPC file of this toolkit's schema
version, and pass Arrow's full validation of every record batch (buffer sizes, offsets, UTF-8;
for the feature columns that reads their list offsets, never the float16 values, so the
features stay lazily mapped), with no nulls and with feature offsets that agree with
``num_frames``. Whether the shard's sha256 is checked depends on ``verify``:

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

Datasets on object storage (``s3://``, ``gs://``) open without reading any shard. Small columns
(ids, times, cues: everything but the features) are fetched with range reads of just their
buffers. A shard whose features are asked for is downloaded once into a local cache folder
(:func:`shard_cache_dir`, at most ``$HERO_SHARD_CACHE_GB`` GB, least recently used shards evicted),
its sha256 checked while it downloads, then memory-mapped like a local one; the same checks
then run on it, when it is first used rather than at open.

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

from hero_data.commits import Snapshot, snapshot
from hero_data.errors import DatasetError, UnknownClipError
from hero_data.features import DEFAULT_FEATURES, FeatureSet
from hero_data.manifest import ShardInfo, sha256_file
from hero_data.schema import (
    SCHEMA_VERSION,
    ClipRecord,
    clip_schema,
    schema_version_of,
)
from hero_data.storage import Storage, open_storage
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


# -- the shard cache (datasets on object storage) ---------------------------------------------

SHARD_CACHE_ENV = "HERO_SHARD_CACHE_GB"
"""Environment variable: the most gigabytes :func:`shard_cache_dir` may hold."""

DEFAULT_SHARD_CACHE_GB = 20.0


def shard_cache_dir() -> Path:
    """Where shards of datasets on object storage are kept once fetched: ``shards/`` in the
    toolkit's cache folder (:func:`verification_cache_dir`), one file per shard, named by its
    sha256, so datasets sharing a shard share the file."""
    return verification_cache_dir() / "shards"


def _cache_limit_bytes() -> int:
    raw = os.environ.get(SHARD_CACHE_ENV)
    try:
        gb = float(raw) if raw else DEFAULT_SHARD_CACHE_GB
    except ValueError:
        raise DatasetError(
            f"${SHARD_CACHE_ENV}", f"must be a number of gigabytes, got {raw!r}"
        ) from None
    return int(gb * 1e9)


def _make_room(folder: Path, needed: int, keep: Path) -> None:
    """Delete the least recently used cached shards until ``needed`` more bytes fit the limit.
    Shards still mapped by a reader stay readable (their mappings outlive the file name)."""
    limit = _cache_limit_bytes()
    files = []
    for p in folder.glob("*.arrow"):
        with contextlib.suppress(FileNotFoundError):
            st = p.stat()
            files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    for _, size, p in sorted(files):
        if total + needed <= limit:
            break
        if p == keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            total -= size


def _fetch(storage: Storage, info: ShardInfo, verify: Verify) -> Path:
    """The local cached copy of a remote shard, downloaded (and its sha256 checked) if absent."""
    where = storage.uri(info.name)
    folder = shard_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError) as e:
        raise DatasetError(folder, f"cannot create the shard cache folder ({e})") from None
    cached = folder / f"{info.sha256}.arrow"
    if cached.is_file() and cached.stat().st_size == info.bytes:
        if verify == "full" and sha256_file(cached) != info.sha256:
            cached.unlink(missing_ok=True)  # damaged in the cache: fetch it again
        else:
            os.utime(cached)  # most recently used
            return cached
    _make_room(folder, info.bytes, cached)
    fd, tmp = tempfile.mkstemp(prefix=f".{info.sha256[:16]}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        try:
            digest = storage.download(info.name, tmp)
        except FileNotFoundError:
            raise DatasetError(
                where, "missing: the dataset lists this shard but the object is absent"
            ) from None
        size = os.path.getsize(tmp)
        if size != info.bytes:
            raise DatasetError(
                where, f"{size} bytes, the manifest says {info.bytes} (truncated or replaced?)"
            )
        if digest != info.sha256:
            raise DatasetError(
                where, f"sha256 {digest[:16]}… does not match the manifest's {info.sha256[:16]}…"
            )
        os.replace(tmp, cached)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    log.debug("fetched %s into %s", where, cached)
    return cached


# -- shards ----------------------------------------------------------------------------------


@dataclass
class _Batch:
    """One record batch of a shard with its feature columns as 2D views."""

    batch: pa.RecordBatch
    where: str  # the shard, for messages
    first_row: int  # row of the batch's first clip within its shard
    offsets: list[int]  # step offsets per row, len rows + 1
    features: dict[str, np.ndarray]  # per column, in set order: (steps in batch, dim) views

    def row_features(self, row: int) -> dict[str, np.ndarray]:
        """Row ``row``'s ``(num_frames, dim)`` views, per column."""
        lo, hi = self.offsets[row], self.offsets[row + 1]
        return {name: view[lo:hi] for name, view in self.features.items()}


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


def _check_batch(
    where: str, index: int, batch: pa.RecordBatch, features: FeatureSet
) -> dict[str, pa.Array]:
    """Structure of one record batch (it reads offsets and the small columns, not the feature
    values); returns its columns by name."""
    label = f"record batch {index}"
    try:
        # Full validation of the feature columns checks their list offsets and buffer sizes
        # only: float16 values have nothing to validate, so their pages are not touched.
        batch.validate(full=True)
    except (pa.ArrowException, ValueError) as e:
        raise DatasetError(where, f"{label} is malformed ({e})") from None
    columns = dict(zip(batch.schema.names, batch.columns, strict=True))
    for name, column in columns.items():
        if column.null_count:
            raise DatasetError(where, f"{label}: nulls in the non-nullable column {name!r}")
    if "num_frames" in columns:
        num_frames = columns["num_frames"].to_numpy()
        for name in features.names:
            if name in columns and not np.array_equal(
                np.diff(columns[name].offsets.to_numpy()), num_frames
            ):
                raise DatasetError(where, f"{label}: {name} steps per row disagree with num_frames")
    return columns


def _check_schema(
    where: str, schema: pa.Schema, features: FeatureSet, names: Sequence[str] | None = None
) -> None:
    """The shard's schema is this toolkit's for ``features`` (``names``: only these columns
    were read)."""
    version = schema_version_of(schema)
    if version != SCHEMA_VERSION:
        raise DatasetError(
            where,
            f"shard schema version {version!r}, this toolkit reads version {SCHEMA_VERSION}"
            if version is not None
            else "not a HERO shard (its schema carries no hero.schema_version)",
        )
    want = clip_schema(features)
    if names is not None:
        want = pa.schema([want.field(n) for n in want.names if n in names])
    if not schema.equals(want, check_metadata=False):
        raise DatasetError(
            where,
            "columns do not match the HERO clip schema of this version for the dataset's "
            f"feature set {features.describe()}",
        )


def _read_batches(where: str, path: Path, info: ShardInfo, features: FeatureSet) -> list[_Batch]:
    """Memory-map a local shard file and check every batch (see the module doc)."""
    try:
        source = pa.memory_map(str(path), "r")
        reader = pa.ipc.open_file(source)
        schema = reader.schema
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DatasetError(
            where, f"not a readable Arrow IPC file ({type(e).__name__}: {e})"
        ) from None
    _check_schema(where, schema, features)
    rows = sum(b.num_rows for b in batches)
    if rows != info.rows:
        raise DatasetError(where, f"{rows} rows, the manifest says {info.rows}")
    out = []
    first_row = 0
    for i, b in enumerate(batches):
        columns = _check_batch(where, i, b, features)
        try:
            offsets, views = _feature_views(columns, features)
        except _DECODE_ERRORS as e:
            raise DatasetError(
                where, f"record batch {i}: cannot map its features ({type(e).__name__}: {e})"
            ) from None
        out.append(_Batch(b, where, first_row, offsets, views))
        first_row += b.num_rows
    return out


def _feature_views(
    columns: dict[str, pa.Array], features: FeatureSet
) -> tuple[list[int], dict[str, np.ndarray]]:
    """Row offsets and the ``(steps, dim)`` view of each feature column of a batch (the
    columns' offsets agree: :func:`_check_batch` compared each with ``num_frames``)."""
    offsets: list[int] = []
    views: dict[str, np.ndarray] = {}
    for c in features.columns:
        offsets, views[c.name] = _steps_view(columns[c.name], c.dim)
    return offsets, views


def _open_local_shard(
    storage: Storage, info: ShardInfo, verify: Verify, features: FeatureSet
) -> list[_Batch]:
    path = storage.local_path(info.name)
    where = str(path)
    if not path.is_file():
        raise DatasetError(path, "missing: the manifest lists this shard but the file is absent")
    st = path.stat()
    if st.st_size != info.bytes:
        raise DatasetError(
            path, f"{st.st_size} bytes, the manifest says {info.bytes} (truncated or replaced?)"
        )
    _check_sha256(path, info, st, verify)
    return _read_batches(where, path, info, features)


def _read_columns(
    storage: Storage, info: ShardInfo, names: Sequence[str], features: FeatureSet
) -> pa.Table:
    """Only the columns ``names`` of a remote shard, fetched with range reads of their
    buffers (the footer, then each batch's metadata and those columns' buffers)."""
    where = storage.uri(info.name)
    schema = clip_schema(features)
    fields = [schema.get_field_index(n) for n in names]
    try:
        with storage.open_input(info.name) as source:
            reader = pa.ipc.open_file(
                source, options=pa.ipc.IpcReadOptions(included_fields=sorted(fields))
            )
            _check_schema(where, reader.schema, features, names)
            batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
    except FileNotFoundError:
        raise DatasetError(
            where, "missing: the dataset lists this shard but the object is absent"
        ) from None
    except (pa.ArrowException, OSError, ValueError) as e:
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(
            where, f"not a readable Arrow IPC file ({type(e).__name__}: {e})"
        ) from None
    for i, b in enumerate(batches):
        _check_batch(where, i, b, features)
    table = pa.Table.from_batches(batches) if batches else None
    if table is None or table.num_rows != info.rows:
        got = 0 if table is None else table.num_rows
        raise DatasetError(where, f"{got} rows, the manifest says {info.rows}")
    return table.select(list(names))


class _Shard:
    """One shard of an open dataset; its batches are loaded on first use (at open, locally)."""

    def __init__(self, info: ShardInfo, first_row: int) -> None:
        self.info = info
        self.first_row = first_row
        self.batches: list[_Batch] | None = None
        self.batch_rows: list[int] = []
        self.clip_ids: list[str] | None = None

    def set_batches(self, batches: list[_Batch]) -> None:
        self.batches = batches
        self.batch_rows = [b.first_row for b in batches]


class HeroDataset(Sequence[ClipRecord]):
    """A dataset opened for reading. Index it with an int (row) or a clip id.

    Use :meth:`open`. ``len(ds)`` is the number of clips; ``ds[i]`` or ``ds["vid.3"]`` gives a
    :class:`ClipRecord` whose features are views; :meth:`features` gives just the features.

    Attributes:
        feature_set: the dataset's feature set (the manifest's ``features``).
        feature_dim: numbers per step of all its columns: HERO's visual input dimension.
        root: the dataset's location as given (a local path or a URL).
        storage: its :class:`~hero_data.storage.Storage`.
        snapshot: what was committed when it was opened (manifest + pending records).
        manifest: ``snapshot.manifest`` (the config, the compacted shards).
        shards: every shard of the snapshot, in row order.
    """

    def __init__(self, storage: Storage, snap: Snapshot, verify: Verify) -> None:
        self.storage = storage
        self.root = storage.url
        self.snapshot = snap
        self.manifest = snap.manifest
        self.shards: tuple[ShardInfo, ...] = snap.shards
        self.feature_set: FeatureSet = snap.manifest.features
        self.feature_dim = self.feature_set.dim
        self._verify = verify
        self._shards: list[_Shard] = []
        n = 0
        for info in snap.shards:
            self._shards.append(_Shard(info, n))
            n += info.rows
        self._first_rows = [s.first_row for s in self._shards]
        self._len = n
        self._index: dict[str, int] | None = None
        self._video_shards: dict[str, list[int]] | None = None

    @classmethod
    def open(cls, root: str | os.PathLike[str] | Storage, verify: Verify = "auto") -> HeroDataset:
        """Open ``root`` (a local folder or a URL); raises :class:`DatasetError` naming the
        file at fault.

        ``verify``: ``"auto"`` checks each shard's sha256 unless that unchanged file was
        verified before, ``"full"`` always does, ``"fast"`` never does (see the module doc).
        A local dataset's shards are all checked now; a remote one's when first used.
        """
        if verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {', '.join(VERIFY_MODES)}, got {verify!r}")
        storage = open_storage(root if isinstance(root, Storage) else os.fspath(root))
        ds = cls(storage, snapshot(storage), verify)
        if storage.is_local:
            for i in range(len(ds._shards)):
                ds._load(i)
        return ds

    def __len__(self) -> int:
        return self._len

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The inputs that did not make it (``errors.jsonl`` entries), as of the snapshot."""
        return list(self.snapshot.errors)

    def _load(self, i: int) -> _Shard:
        shard = self._shards[i]
        if shard.batches is None:
            if self.storage.is_local:
                batches = _open_local_shard(
                    self.storage, shard.info, self._verify, self.feature_set
                )
            else:
                path = _fetch(self.storage, shard.info, self._verify)
                batches = _read_batches(
                    self.storage.uri(shard.info.name), path, shard.info, self.feature_set
                )
            shard.set_batches(batches)
        return shard

    def _row(self, key: int | str) -> int:
        if isinstance(key, str):
            return self.index_of(key)
        if isinstance(key, (int, np.integer)):
            key = int(key)
            if key < 0:
                key += self._len
            if not 0 <= key < self._len:
                raise IndexError(f"clip index {key} out of range for {self._len} clips")
            return key
        raise TypeError(f"index a dataset with an int or a clip id, not {type(key).__name__}")

    def _locate(self, key: int | str) -> tuple[_Batch, int]:
        row = self._row(key)
        shard = self._load(bisect.bisect_right(self._first_rows, row) - 1)
        within = row - shard.first_row
        assert shard.batches is not None
        b = bisect.bisect_right(shard.batch_rows, within) - 1
        return shard.batches[b], within - shard.batch_rows[b]

    def _shard_clip_ids(self, i: int) -> list[str]:
        shard = self._shards[i]
        if shard.clip_ids is None:
            if shard.batches is not None:
                shard.clip_ids = [
                    cid for b in shard.batches for cid in b.batch.column("clip_id").to_pylist()
                ]
            else:
                table = _read_columns(self.storage, shard.info, ["clip_id"], self.feature_set)
                shard.clip_ids = table.column("clip_id").to_pylist()
        return shard.clip_ids

    def index_of(self, clip_id: str) -> int:
        """Row of ``clip_id``; ``KeyError`` if the dataset has no such clip. Looks only in the
        shard(s) the manifest says hold the clip's video."""
        if self._video_shards is None:
            found: dict[str, list[int]] = {}
            for i, s in enumerate(self._shards):
                for v in s.info.videos:
                    found.setdefault(v, []).append(i)
            self._video_shards = found
        video = clip_id.rsplit(".", 1)[0]
        candidates = self._video_shards.get(video)
        if candidates is None and any(not s.info.videos for s in self._shards):
            candidates = [i for i, s in enumerate(self._shards) if not s.info.videos]
        for i in candidates or ():
            ids = self._shard_clip_ids(i)
            with contextlib.suppress(ValueError):
                return self._shards[i].first_row + ids.index(clip_id)
        raise UnknownClipError(self.root, f"no clip {clip_id!r} in this dataset")

    def clip_ids(self) -> list[str]:
        """All clip ids in row order."""
        return [cid for i in range(len(self._shards)) for cid in self._shard_clip_ids(i)]

    def features(self, key: int | str) -> dict[str, np.ndarray]:
        """One clip's ``(n, dim)`` float16 zero-copy views per feature column, in set order
        (``{"resnet": (n, 2048), "slowfast": (n, 2304)}`` for HERO's set).

        The views are read-only (the file is mapped read-only): copy before changing them.
        """
        batch, row = self._locate(key)
        return batch.row_features(row)

    def __getitem__(self, key: int | str) -> ClipRecord:  # type: ignore[override]
        batch, row = self._locate(key)
        try:
            return record_from_row(batch.batch, row, self.feature_set, batch.row_features(row))
        except _DECODE_ERRORS as e:
            raise DatasetError(
                batch.where,
                f"row {batch.first_row + row}: not a valid clip ({type(e).__name__}: {e})",
            ) from None

    def __iter__(self) -> Iterator[ClipRecord]:
        for i in range(self._len):
            yield self[i]

    def table(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The dataset as one Arrow table: zero-copy over the mapped shards. On object storage,
        asking only for columns other than the features reads just those columns' bytes."""
        schema = clip_schema(self.feature_set)
        names = list(columns) if columns is not None else schema.names
        needs_features = any(n in self.feature_set.names for n in names)
        parts: list[pa.Table] = []
        for i, shard in enumerate(self._shards):
            if shard.batches is None and (needs_features or self.storage.is_local):
                self._load(i)
            if shard.batches is not None:
                if shard.batches:
                    batches = [b.batch for b in shard.batches]
                    parts.append(pa.Table.from_batches(batches, schema=schema).select(names))
            else:
                parts.append(_read_columns(self.storage, shard.info, names, self.feature_set))
        if not parts:
            return schema.empty_table().select(names)
        return pa.concat_tables(parts)


def record_from_row(
    batch: pa.RecordBatch,
    row: int,
    features: FeatureSet = DEFAULT_FEATURES,
    views: dict[str, np.ndarray] | None = None,
) -> ClipRecord:
    """Row ``row`` of a record batch of the clip schema for ``features`` as a
    :class:`ClipRecord`.

    ``views``: the row's features per column when the caller already has views of them;
    otherwise they are taken (zero-copy) from the batch. A row that is not a valid clip raises
    ``ValueError`` (or the pyarrow error); :class:`HeroDataset` turns that into a
    :class:`DatasetError` naming the shard and the row.
    """

    def value(name: str) -> Any:
        return batch.column(name)[row].as_py()

    if views is None:
        columns = {c.name: batch.column(c.name) for c in features.columns}
        offsets, whole = _feature_views(columns, features)
        lo, hi = offsets[row], offsets[row + 1]
        views = {name: view[lo:hi] for name, view in whole.items()}
    clip = Clip(value("video_id"), value("clip_index"), value("clip_start"), value("clip_end"))
    if value("clip_id") != clip.clip_id:
        raise ValueError(
            f"clip_id {value('clip_id')!r} is not video_id.clip_index ({clip.clip_id!r})"
        )
    return ClipRecord(
        clip=clip,
        source=value("source"),
        frame_interval=value("frame_interval"),
        features=views,
        cues=tuple(Cue(**c) for c in value("cues")),
        cue_token_ids=value("cue_token_ids"),
        sub2frames=value("sub2frames"),
        unique_sub2frames=value("unique_sub2frames"),
        unmatched_frames=value("unmatched_frames"),
    )


def open_dataset(root: str | os.PathLike[str] | Storage, verify: Verify = "auto") -> HeroDataset:
    """:meth:`HeroDataset.open`."""
    return HeroDataset.open(root, verify=verify)
