"""HowTo100M captions at corpus size: ``caption.json`` indexed once, then looked up by video id.

The released file is one JSON object, ``{video_id: {"start": [...], "end": [...], "text":
[...]}}``, about 1.2 M videos in several gigabytes, often on one line. Parsing it whole
(:func:`align.readers.read_howto100m_json_entries`) holds every video's cues in memory, many
times the file's size (``perf/captions.py`` measures both). :class:`CaptionIndex` reads
it once, as a stream, into one local file that a process memory-maps and looks cues up in by
video id:

- **Streaming parse** (:class:`align.jsonstream.ObjectMembers`): the top-level object is
  walked member by member over 4 MiB chunks of the file, each ``"id": {...}`` value parsed by
  the json module's own C scanner (so values are exactly what ``json.loads`` gives), and the
  line and byte of each entry are known.
- **Layout.** Cues are written in file order, in Arrow record batches of about 64 k cues
  (start and end in float64 seconds, the raw text); a batch ends between videos, so a video's
  cues are one slice of one batch. One row per video (its id, batch, first row, cue count; for
  a malformed entry its problem, line and byte; its language) is kept in memory as Arrow chunks
  of 64 k rows, sorted by id at the end (a stable sort, keeping the last of a repeated id, as
  ``json.loads`` does) and written after the cues: a sorted permutation table, so the cues are
  never reordered or written twice. So memory grows with the number of videos only by that
  table (about 45 bytes a video on disk), not with their cues: building the index of 1.22 M
  videos grew a process by 156 MiB, of 200 k videos by 50 MiB (``tests/align/test_captions.py``
  bounds it).
- **The file.** One file: an 8-byte magic, the cue section (an Arrow IPC file), the video
  section (an Arrow IPC file, one record batch), a JSON trailer (what the index was built from)
  with its length and the magic again. Both sections are memory-mapped zero-copy; a lookup is a
  binary search of the sorted ids (bytes order, which is code point order) and one slice.
- **Malformed cues** (a bad or negative time, a text that is not a string or not Unicode
  text, an end before the start) are skipped or repaired by the readers' rules
  (:mod:`align.readers`); the cues read are stored, and the video's counts by reason and first
  problems (the line and byte offset of its key) are kept beside them:
  :meth:`CaptionIndex.report`, and ``strict=True`` on a lookup fails the video as before.
- **Malformed entries** (not an object, lists of different lengths, no cue readable...) are
  recorded with their problem, the line and byte offset of the video's key, instead of cues;
  only a lookup of that video fails, with :class:`~align.readers.SubtitleError` naming the
  caption file, the line, the problem and the byte (``caption.json:1: video 'b': lists of
  different length {...} (at byte 734)``). A file broken as a whole (not UTF-8, not JSON, not
  an object) raises while it is indexed, with its line, column and byte.
- **Text** is stored raw; :meth:`CaptionIndex.cues` cleans it with the readers' rules when it is
  looked up, so a lookup gives exactly what :func:`~align.readers.read_howto100m_json` gives for
  that entry. A text holding a lone surrogate (an escape like ``"\\ud800"`` that JSON allows
  but that is no Unicode character, which Arrow's UTF-8 text cannot hold) is a malformed cue
  (``bad_text``) in both.
- **Language.** Given a ``detect`` callable (``text -> (code, confidence)``; the pipeline's
  uses py3langid, which this package must not import), each video's language is detected once
  while indexing, from :func:`caption_text` of its cues, and stored; a filter then needs no text.
- **Cache.** :meth:`CaptionIndex.for_file` keeps one index per source in
  ``<toolkit cache>/captions/`` (:func:`caption_cache_dir`) or a folder given, named by a hash
  of the source's identity (location, size, modification time, sha256 of its first MiB) and the
  detector, and reuses it while they match. It is written to a temporary file and renamed into
  place, so two processes indexing at once both end with a whole index.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import math
import operator
import os
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from align.jsonstream import ObjectMembers
from align.readers import (
    Problem,
    ReadReport,
    SubtitleError,
    _EntryProblem,
    _howto100m_cues,
    _howto100m_rows,
    _LogBudget,
    _Malformed,
    _replay,
)
from hero_data.errors import HeroError
from hero_data.reader import CACHE_ENV, verification_cache_dir
from hero_data.storage import fsync_dir, is_url
from hero_data.types import Cue

log = logging.getLogger(__name__)

__all__ = [
    "LANGUAGE_SAMPLE_CHARS",
    "CaptionIndex",
    "CaptionIndexError",
    "SourceIdentity",
    "caption_cache_dir",
    "caption_text",
    "source_identity",
]

Detect = Callable[[str], tuple[str, float]]

INDEX_FORMAT = 2
"""Version of the index file layout; an index of another version is rebuilt. 2: the
``malformed`` column (malformed cues are skipped or repaired, no longer fail their video)."""

LANGUAGE_SAMPLE_CHARS = 5000
"""Characters of a video's caption text given to the language detector (:func:`caption_text`):
enough for a confident decision, bounded time per video."""

HEAD_BYTES = 1 << 20
"""Bytes at the start of the caption file whose sha256 is part of its identity."""

CHUNK_BYTES = 4 << 20
"""Bytes read from the caption file at a time."""

BATCH_CUES = 1 << 16
"""Cues per record batch of the cue section (a batch also ends at 64 M characters of text)."""

BATCH_TEXT_CHARS = 64 << 20

_MAGIC = b"HEROCAPS"
_HEADER = 64  # the magic, padded so that the first Arrow section starts 64-byte aligned
_TRAILER = struct.Struct("<Q8s")  # JSON length, magic
_SUFFIX = ".capidx"

CUE_SCHEMA = pa.schema(
    [
        pa.field("start", pa.float64(), nullable=False),
        pa.field("end", pa.float64(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
    ]
)
"""One row per cue, in file order: start and end in seconds, the text as written (raw)."""

VIDEO_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("batch", pa.int32(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("count", pa.int32(), nullable=False),
        pa.field("problem", pa.string()),
        pa.field("malformed", pa.string()),
        pa.field("language", pa.string()),
        pa.field("confidence", pa.float64()),
    ]
)
"""One row per video id, sorted by id: where its cues are (cue ``batch``, first ``row``,
``count``); for a malformed entry, ``problem`` (JSON ``[line, byte, message]``: where its key is
and what is wrong), else null; for an entry with malformed cues, ``malformed`` (JSON ``[line,
byte, [[reason, message, repaired], ...]]``, the first :data:`MALFORMED_KEPT` problems and the
counts by reason), else null; the detected ``language`` and its ``confidence`` (null when not
detected). The cues stored are the ones read (repaired ones as repaired)."""

MALFORMED_KEPT = 20
"""Malformed-cue problems an index keeps per video (all are counted)."""

BATCH_VIDEOS = 1 << 16
"""Video rows gathered in Python lists before they become an Arrow chunk."""

_NUMBERS = {float, int}
_STR = {str}


class CaptionIndexError(HeroError, ValueError):
    """An index file that cannot be used (not an index, truncated, another format version).

    :meth:`CaptionIndex.for_file` rebuilds such a cached index instead of raising.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problem))


# --- the source file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceIdentity:
    """What a cached index must match to be reused for a caption file.

    Attributes:
        location: the absolute local path, or the URL, of the caption file.
        size: its size in bytes.
        mtime: its modification time (nanoseconds for a local file; seconds, as the store
            says, for a remote one), or ``None`` when the store gives none.
        etag: a remote object's ETag (or MD5), or ``None``.
        head_sha256: hex sha256 of its first :data:`HEAD_BYTES` bytes.
    """

    location: str
    size: int
    mtime: float | int | None
    etag: str | None
    head_sha256: str

    def key(self, detector: str | None) -> str:
        """Name of the cached index of this source with this detector (40 hex digits)."""
        text = json.dumps(
            {"format": INDEX_FORMAT, "source": asdict(self), "detector": detector}, sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:40]


def _local_path(location: str) -> str | None:
    """The local path of a plain path or ``file://`` URL, else ``None``."""
    if not is_url(location) and "::" not in location:
        return location.removeprefix("file://")
    return None


def _open(location: str) -> BinaryIO:
    local = _local_path(location)
    if local is not None:
        return open(local, "rb")
    import fsspec

    return fsspec.open(location, "rb", block_size=CHUNK_BYTES).open()


def _remote_stat(location: str) -> tuple[str, int, float | None, str | None]:
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(location)
    info = fs.info(path)
    if info.get("type") == "directory":
        raise IsADirectoryError(location)
    mtime = None
    for key in ("LastModified", "updated", "mtime", "last_modified", "created"):
        value = info.get(key)
        if isinstance(value, (int, float)):
            mtime = float(value)
        elif hasattr(value, "timestamp"):
            mtime = float(value.timestamp())
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                from datetime import datetime

                mtime = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        if mtime is not None:
            break
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    return location, int(info["size"]), mtime, str(etag) if etag else None


def source_identity(caption_json: str | os.PathLike[str]) -> SourceIdentity:
    """The identity of a local or remote (fsspec URL) caption file; reads its first MiB.

    Raises ``FileNotFoundError`` when it is absent.
    """
    location = os.fspath(caption_json)
    local = _local_path(location)
    if local is not None:
        st = os.stat(local)
        where, size, mtime, etag = os.path.abspath(local), st.st_size, st.st_mtime_ns, None
    else:
        where, size, mtime, etag = _remote_stat(location)
    with _open(location) as f:
        head = f.read(HEAD_BYTES)
    return SourceIdentity(where, size, mtime, etag, hashlib.sha256(head).hexdigest())


def caption_cache_dir() -> Path:
    """Where :meth:`CaptionIndex.for_file` keeps indexes: ``captions/`` in the toolkit's cache
    folder (``$HERO_CACHE_DIR``, else ``$XDG_CACHE_HOME/hero-toolkit``, else
    ``~/.cache/hero-toolkit``)."""
    return verification_cache_dir() / "captions"


def caption_text(cues: list[Cue], limit: int = LANGUAGE_SAMPLE_CHARS) -> str:
    """The text a video's language is detected from: its cues' non-empty texts, in order,
    joined by spaces, cut to ``limit`` characters."""
    return " ".join(c.text for c in cues if c.text)[:limit]


# --- one entry ----------------------------------------------------------------------------------


def _entry(vid: str, entry: Any) -> tuple[list[float], list[float], list[str], list[Problem]]:
    """(starts, ends, raw texts) of the cues read from an entry, and its malformed cues, as
    :func:`align.readers._howto100m_rows` gives them; raises :class:`_EntryProblem` for an
    entry that gives no cue.

    The common case (lists of finite non-negative numbers, ends not before starts, and texts
    that are Unicode text) is checked with C-level passes; anything else goes through the
    readers' own per-cue rules, which also word the problems, so the two read the same cues.
    """
    if type(entry) is dict:
        starts, ends, texts = entry.get("start"), entry.get("end"), entry.get("text")
        if (
            type(starts) is list
            and type(ends) is list
            and type(texts) is list
            and len(starts) == len(ends) == len(texts)
        ):
            kinds = set(map(type, starts)) | set(map(type, ends))
            if kinds <= _NUMBERS and set(map(type, texts)) <= _STR:
                try:
                    finite = math.isfinite(sum(starts)) and math.isfinite(sum(ends))
                except OverflowError:
                    finite = False
                # an inf or nan anywhere makes a sum non-finite
                if finite and min(starts, default=0) >= 0 and min(ends, default=0) >= 0:
                    if int in kinds:
                        starts, ends = list(map(float, starts)), list(map(float, ends))
                    if not any(map(operator.lt, ends, starts)) and _encodable("".join(texts)):
                        return starts, ends, texts, []
    return _howto100m_rows(vid, entry)


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _pack_malformed(line: int, byte: int, problems: list[Problem]) -> str:
    """The ``malformed`` column's JSON for a video: where its key is, its counts by reason,
    and its first :data:`MALFORMED_KEPT` problems."""
    skipped: dict[str, int] = {}
    repaired: dict[str, int] = {}
    for reason, _, was_repaired in problems:
        counts = repaired if was_repaired else skipped
        counts[reason] = counts.get(reason, 0) + 1
    counts = {"skipped": skipped, "repaired": repaired}
    return json.dumps([line, byte, counts, [list(p) for p in problems[:MALFORMED_KEPT]]])


# --- building -----------------------------------------------------------------------------------


class _Builder:
    """Writes the cue section while the members stream by; keeps one small row per video."""

    def __init__(self, sink: BinaryIO, detect: Detect | None) -> None:
        self.sink = sink
        self.detect = detect
        self.writer = pa.ipc.new_file(pa.PythonFile(sink, mode="w"), CUE_SCHEMA)
        self.batches = 0
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.texts: list[str] = []
        self.text_chars = 0
        self.rows: dict[str, list[Any]] = {name: [] for name in VIDEO_SCHEMA.names}
        self.chunks: list[pa.Table] = []
        self.cues = 0
        self.malformed = 0
        self.with_malformed_cues = 0
        self.malformed_cues: dict[str, int] = {}

    def add(
        self,
        vid: str,
        columns: tuple[list[float], list[float], list[str]] | None,
        problem: str | None,
        malformed: str | None = None,
    ) -> None:
        """One video: its cues (``columns``), or the ``problem`` of its malformed entry (JSON
        ``[line, byte, message]``); ``malformed``: its malformed cues (see
        :data:`VIDEO_SCHEMA`). Videos come in file order."""
        rows = self.rows
        language = confidence = None
        count = 0
        if columns is not None:
            starts, ends, texts = columns
            count = len(starts)
            if self.detect is not None and count:
                text = caption_text(_howto100m_cues(starts, ends, texts))
                if text.strip():
                    found, p = self.detect(text)
                    language, confidence = str(found), float(p)
        else:
            self.malformed += 1
        rows["video_id"].append(vid)
        rows["batch"].append(self.batches)
        rows["row"].append(len(self.starts))
        rows["count"].append(count)
        rows["problem"].append(problem)
        rows["malformed"].append(malformed)
        rows["language"].append(language)
        rows["confidence"].append(confidence)
        if count:
            self.starts += starts
            self.ends += ends
            self.texts += texts
            self.text_chars += sum(map(len, texts))
            self.cues += count
            if len(self.starts) >= BATCH_CUES or self.text_chars >= BATCH_TEXT_CHARS:
                self.flush_cues()
        if len(rows["video_id"]) >= BATCH_VIDEOS:
            self.flush_videos()

    def flush_cues(self) -> None:
        if self.starts:
            batch = pa.record_batch(
                [
                    pa.array(self.starts, pa.float64()),
                    pa.array(self.ends, pa.float64()),
                    pa.array(self.texts, pa.string()),
                ],
                schema=CUE_SCHEMA,
            )
            self.writer.write_batch(batch)
            self.batches += 1
            self.starts, self.ends, self.texts, self.text_chars = [], [], [], 0

    def flush_videos(self) -> None:
        if self.rows["video_id"]:
            self.chunks.append(pa.table(self.rows, schema=VIDEO_SCHEMA))
            self.rows = {name: [] for name in VIDEO_SCHEMA.names}

    def videos(self) -> tuple[pa.Table, int]:
        """The video table sorted by id, the last of a repeated id kept; and how many repeated
        ids were dropped. Sorted a column at a time, each unsorted column let go once taken, so
        that the table is in memory about once."""
        self.flush_cues()
        self.flush_videos()
        self.writer.close()
        chunks, self.chunks = self.chunks, []
        table = pa.concat_tables(chunks) if chunks else VIDEO_SCHEMA.empty_table()
        del chunks
        # A stable sort: of a repeated id, the last row is the file's last entry (json.loads
        # keeps that one too).
        order = pc.sort_indices(table.column("video_id"))
        columns: list[Any] = table.columns
        del table
        for k, column in enumerate(columns):
            columns[k] = None
            columns[k] = column.take(order).combine_chunks()
            del column
        del order
        ids = columns[0]
        dropped = 0
        if len(ids) > 1:
            repeated = pc.equal(ids.slice(0, len(ids) - 1), ids.slice(1))
            keep = pa.concat_arrays([pc.invert(repeated), pa.array([True])])
            dropped = len(ids) - pc.sum(keep.cast(pa.int64())).as_py()
            if dropped:
                columns = [c.filter(keep) for c in columns]
        pa.default_memory_pool().release_unused()
        return pa.table(columns, schema=VIDEO_SCHEMA), dropped


def _pad(f: BinaryIO) -> None:
    f.write(b"\0" * (-f.tell() % 64))


def _build_file(
    caption_json: str,
    target: Path,
    detect: Detect | None,
    detector: str | None,
    chunk_bytes: int,
    identity: SourceIdentity,
) -> None:
    """Index ``caption_json`` into ``target`` (written whole, then renamed into place)."""
    started = time.monotonic()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise CaptionIndexError(
            str(target.parent),
            f"cannot write a caption index in this folder ({e.strerror or e}); give another "
            f"cache folder, or set ${CACHE_ENV}",
        ) from None
    try:
        with os.fdopen(fd, "wb") as out, _open(caption_json) as src:
            out.write(_MAGIC.ljust(_HEADER, b"\0"))
            builder = _Builder(out, detect)
            members = ObjectMembers(src, caption_json, chunk_bytes)
            unusable = 0
            for vid, value, at in members:
                if not vid.isascii() and not _encodable(vid):
                    unusable += 1  # no file of a video can be named so: cannot be looked up
                    line, _, byte = members.location(at)
                    log.warning(
                        "%s:%d: video id %r is not Unicode text (a lone surrogate); its entry "
                        "is left out (at byte %d)",
                        caption_json,
                        line,
                        vid,
                        byte,
                    )
                    continue
                malformed = None
                try:
                    *columns, problems = _entry(vid, value)
                    problem = None
                    if problems:
                        line, _, byte = members.location(at)
                        malformed = _pack_malformed(line, byte, problems)
                        builder.with_malformed_cues += 1
                        for reason, _, _ in problems:
                            count = builder.malformed_cues.get(reason, 0)
                            builder.malformed_cues[reason] = count + 1
                except _EntryProblem as e:
                    line, _, byte = members.location(at)
                    columns, problem = None, json.dumps([line, byte, str(e)])
                builder.add(vid, columns, problem, malformed)
            del members
            videos, dropped = builder.videos()
            cues_section = (_HEADER, out.tell())
            _pad(out)
            videos_start = out.tell()
            with pa.ipc.new_file(pa.PythonFile(out, mode="w"), VIDEO_SCHEMA) as writer:
                writer.write_table(videos)
            videos_section = (videos_start, out.tell())
            meta = {
                "format": INDEX_FORMAT,
                "name": caption_json,
                "source": asdict(identity),
                "detector": detector,
                "sample_chars": LANGUAGE_SAMPLE_CHARS,
                "cues_section": cues_section,
                "videos_section": videos_section,
                "videos": videos.num_rows,
                "cues": builder.cues,
                "malformed": builder.malformed,
                "videos_with_malformed_cues": builder.with_malformed_cues,
                "malformed_cues": dict(sorted(builder.malformed_cues.items())),
                "repeated_ids": dropped,
                "unusable_ids": unusable,
                "build_s": round(time.monotonic() - started, 3),
            }
            text = json.dumps(meta).encode()
            out.write(text)
            out.write(_TRAILER.pack(len(text), _MAGIC))
            out.flush()
            os.fsync(out.fileno())
        if source_identity(caption_json) != identity:
            raise SubtitleError(
                caption_json, None, "changed while it was being indexed; index it again"
            )
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if dropped:
        log.warning(
            "%s: %d video ids appear more than once; the last entry of each is used",
            caption_json,
            dropped,
        )
    log.info(
        "indexed %s: %d videos, %d cues, %d malformed entries, %d videos with malformed cues "
        "(skipped or repaired on lookup: %s), in %.1f s -> %s",
        caption_json,
        meta["videos"],
        meta["cues"],
        meta["malformed"],
        meta["videos_with_malformed_cues"],
        ", ".join(f"{k} {v}" for k, v in meta["malformed_cues"].items()) or "none",
        meta["build_s"],
        target,
    )


def _detector_name(detect: Detect | None, detector: str | None) -> str | None:
    if detect is None:
        return None
    if detector:
        return detector
    module = getattr(detect, "__module__", None) or "?"
    name = getattr(detect, "__qualname__", None) or type(detect).__qualname__
    return f"{module}.{name}"


# --- the index ------------------------------------------------------------------------------


def _int32s(array: pa.Array) -> np.ndarray:
    """A non-null int32 array's values, zero-copy (``to_numpy`` would import pandas, 0.1 s)."""
    data = array.buffers()[1]
    if data is None:
        return np.zeros(0, np.int32)
    return np.frombuffer(data, np.int32)[array.offset : array.offset + len(array)]


class _SortedIds:
    """The sorted id column as a sequence of UTF-8 bytes, for :mod:`bisect` (zero-copy)."""

    def __init__(self, ids: pa.StringArray) -> None:
        bufs = ids.buffers()
        n = len(ids)
        self.offsets = np.frombuffer(bufs[1], dtype=np.int32)[ids.offset : ids.offset + n + 1]
        self.data = memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> bytes:
        return bytes(self.data[self.offsets[i] : self.offsets[i + 1]])


class CaptionIndex:
    """A memory-mapped index of one HowTo100M caption file: cues by video id.

    Make one with :meth:`for_file` (cached), :meth:`build` or :meth:`open`. It pickles as its
    path, so a Ray worker maps the same file. See the module docstring for the layout.

    Attributes:
        path: the index file.
        source: the caption file as errors name it.
        detector: the language detector's name, or ``None`` when languages were not detected.
        meta: what the trailer records (counts, source identity, build time...).
    """

    def __init__(self, path: Path, source: str, meta: dict[str, Any], mapped: pa.Buffer) -> None:
        self.path = path
        self.source = source
        self.meta = meta
        self.detector: str | None = meta.get("detector")
        a, b = meta["cues_section"]
        reader = pa.ipc.open_file(pa.BufferReader(mapped.slice(a, b - a)))
        if reader.schema != CUE_SCHEMA:
            raise ValueError(f"cue section of another schema: {reader.schema}")
        self._reader = reader
        # Batches are read (their metadata; the data stays mapped) when first looked up.
        self._cues: list[pa.RecordBatch | None] = [None] * reader.num_record_batches
        a, b = meta["videos_section"]
        videos = pa.ipc.open_file(pa.BufferReader(mapped.slice(a, b - a))).read_all()
        if videos.schema != VIDEO_SCHEMA or videos.column("video_id").num_chunks > 1:
            raise ValueError(f"video section of another layout: {videos.schema}")
        self._videos = videos

        def column(name: str) -> pa.Array:
            chunks = videos.column(name).chunks
            return chunks[0] if chunks else pa.array([], VIDEO_SCHEMA.field(name).type)

        self._ids = _SortedIds(column("video_id"))
        self._batch = _int32s(column("batch"))
        self._row = _int32s(column("row"))
        self._count = _int32s(column("count"))
        self._problem = column("problem")
        self._malformed = column("malformed")
        self._language = column("language")
        self._confidence = column("confidence")

    # -- making one -----------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        caption_json: str | os.PathLike[str],
        index_path: str | os.PathLike[str],
        *,
        detect: Detect | None = None,
        detector: str | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> CaptionIndex:
        """Index ``caption_json`` (a local path or fsspec URL) into ``index_path`` and open it.

        One streaming pass; memory does not grow with the cues (module docstring). With
        ``detect``, each video's language is detected from :func:`caption_text` of its cues;
        ``detector`` names it in the index (default: the callable's module and name).
        ``index_path`` is written to a temporary file beside it, then renamed into place.

        Raises :class:`SubtitleError` for a file broken as a whole (empty, not UTF-8, not
        JSON, not an object of videos; with line, column and byte), or changed while it was
        read; ``FileNotFoundError`` when it is absent. Malformed entries do not raise here.
        """
        name = os.fspath(caption_json)
        identity = source_identity(name)
        target = Path(index_path)
        _build_file(name, target, detect, _detector_name(detect, detector), chunk_bytes, identity)
        return cls.open(target, source=name)

    @classmethod
    def open(cls, index_path: str | os.PathLike[str], *, source: str | None = None) -> CaptionIndex:
        """Memory-map an index file. ``source`` names the caption file in errors (default: the
        name it was built from). Raises :class:`CaptionIndexError` for a file that is not a
        whole index of this format."""
        path = Path(index_path)
        where = str(path)
        try:
            mapped = pa.memory_map(where, "r").read_buffer()
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException) as e:
            raise CaptionIndexError(where, f"cannot map it ({e})") from None
        size = mapped.size
        if size < _HEADER + _TRAILER.size or mapped.slice(0, 8).to_pybytes() != _MAGIC:
            raise CaptionIndexError(where, "not a caption index")
        length, magic = _TRAILER.unpack(mapped.slice(size - _TRAILER.size).to_pybytes())
        if magic != _MAGIC or length > size - _HEADER - _TRAILER.size:
            raise CaptionIndexError(where, "truncated caption index (no trailer)")
        try:
            meta = json.loads(mapped.slice(size - _TRAILER.size - length, length).to_pybytes())
        except ValueError:
            raise CaptionIndexError(where, "truncated caption index (bad trailer)") from None
        if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise CaptionIndexError(
                where, f"caption index format {found!r}, this toolkit reads {INDEX_FORMAT}"
            )
        try:
            return cls(path, source if source is not None else meta["name"], meta, mapped)
        except (KeyError, IndexError, TypeError, ValueError, pa.ArrowException) as e:
            raise CaptionIndexError(where, f"damaged caption index ({e})") from None

    @classmethod
    def for_file(
        cls,
        caption_json: str | os.PathLike[str],
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        detect: Detect | None = None,
        detector: str | None = None,
    ) -> CaptionIndex:
        """The index of ``caption_json``: the cached one when its source identity (location,
        size, modification time, sha256 of the first MiB) and detector match, else a new one.

        ``cache_dir`` defaults to :func:`caption_cache_dir`; one file per identity and
        detector, ``<40 hex digits>.capidx``. A cached file that cannot be read is rebuilt.
        Errors as :meth:`build`.
        """
        name = os.fspath(caption_json)
        identity = source_identity(name)
        folder = Path(cache_dir) if cache_dir is not None else caption_cache_dir()
        detector_name = _detector_name(detect, detector)
        target = folder / f"{identity.key(detector_name)}{_SUFFIX}"
        if target.exists():
            try:
                index = cls.open(target, source=name)
            except CaptionIndexError as e:
                log.warning("rebuilding the caption index: %s", e)
            else:
                if index.meta.get("source") == asdict(identity):
                    log.debug("%s: using the caption index %s", name, target)
                    return index
                log.warning("rebuilding the caption index %s: it is of another file", target)
        _build_file(name, target, detect, detector_name, CHUNK_BYTES, identity)
        return cls.open(target, source=name)

    def __reduce__(self) -> tuple[Any, ...]:  # travels to Ray workers as its path
        return (_reopen, (str(self.path), self.source))

    def __repr__(self) -> str:
        return f"CaptionIndex({str(self.path)!r}, source={self.source!r}, videos={len(self)})"

    # -- lookups ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    def _find(self, video_id: str) -> int | None:
        key = video_id.encode("utf-8", "surrogatepass")
        i = bisect.bisect_left(self._ids, key)
        return i if i < len(self._ids) and self._ids[i] == key else None

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and self._find(video_id) is not None

    def _row_of(self, video_id: str) -> int:
        i = self._find(video_id)
        if i is None:
            raise KeyError(video_id)
        return i

    def video_ids(self) -> Iterator[str]:
        """Every video id of the file, sorted (code point order), a batch at a time."""
        ids = self._videos.column("video_id")
        for start in range(0, len(ids), 65536):
            yield from ids.slice(start, 65536).to_pylist()

    def error(self, video_id: str, *, strict: bool = False) -> SubtitleError | None:
        """The error of a malformed entry (the caption file, the line of the video's key, the
        problem, ``video_id``, and the byte ``offset`` of the key), or ``None`` when the entry
        is fine. ``strict``: an entry with a malformed cue is malformed too (the error of its
        first one). ``KeyError`` for an id not in the file."""
        i = self._row_of(video_id)
        packed = self._problem[i].as_py()
        if packed is not None:
            line, offset, problem = json.loads(packed)
            return SubtitleError(self.source, line, problem, video_id, offset)
        if strict:
            malformed = self._malformed[i].as_py()
            if malformed is not None:
                line, offset, _, problems = json.loads(malformed)
                return SubtitleError(self.source, line, problems[0][1], video_id, offset)
        return None

    def errors(self, *, strict: bool = False) -> list[SubtitleError]:
        """The errors of all malformed entries (``strict``: and of all entries with a
        malformed cue), in file order."""
        ids = self._videos.column("video_id")
        bad = pc.is_valid(self._problem)
        if strict:
            bad = pc.or_(bad, pc.is_valid(self._malformed))
        found = []
        for i in pc.indices_nonzero(bad).to_pylist():
            error = self.error(ids[i].as_py(), strict=strict)
            assert error is not None
            found.append(error)
        return sorted(found, key=lambda e: e.offset or 0)

    def report(self, video_id: str) -> ReadReport:
        """What was skipped and repaired to read the video's cues (empty for a clean entry;
        its ``problems`` are the first :data:`MALFORMED_KEPT`, located at the video's key).
        ``KeyError`` for an id not in the file."""
        malformed = self._malformed[self._row_of(video_id)].as_py()
        if malformed is None:
            return ReadReport()
        line, offset, counts, problems = json.loads(malformed)
        m = _Malformed(self.source, False, _LogBudget(self.source), video_id, offset)
        _replay(m, line, [tuple(p) for p in problems])
        return ReadReport(counts["skipped"], counts["repaired"], m.report().problems)

    def cues_report(self, video_id: str, *, strict: bool = False) -> tuple[list[Cue], ReadReport]:
        """The video's cues, exactly as :func:`align.readers.read_howto100m_json_reports`
        gives them (cleaned, sorted by start; seconds), and its :meth:`report`; a video with
        malformed cues is logged once (WARNING: its first problem and its counts). Raises
        :class:`SubtitleError` for a malformed entry (:meth:`error`; ``strict``: also for an
        entry with a malformed cue), ``KeyError`` for an id not in the file."""
        i = self._row_of(video_id)
        error = self.error(video_id, strict=strict)
        if error is not None:
            raise error
        report = self.report(video_id) if self._malformed[i].is_valid else ReadReport()
        if report.problems:
            log.warning(
                "%s; %d malformed cues of this video skipped, %d repaired (%s)",
                report.problems[0],
                report.skipped_total,
                report.repaired_total,
                ", ".join(
                    f"{k} {v}" for k, v in sorted({**report.skipped, **report.repaired}.items())
                ),
            )
        count = int(self._count[i])
        if not count:
            return [], report
        b = int(self._batch[i])
        batch = self._cues[b]
        if batch is None:
            batch = self._cues[b] = self._reader.get_batch(b)
        batch = batch.slice(int(self._row[i]), count)
        cues = _howto100m_cues(
            batch.column(0).to_pylist(), batch.column(1).to_pylist(), batch.column(2).to_pylist()
        )
        return cues, report

    def cues(self, video_id: str, *, strict: bool = False) -> list[Cue]:
        """The cues of :meth:`cues_report`."""
        return self.cues_report(video_id, strict=strict)[0]

    def language(self, video_id: str) -> tuple[str, float] | None:
        """(language code, confidence) detected for the video while indexing; ``None`` when
        it was not detected (no detector, no caption text, or a malformed entry).
        ``KeyError`` for an id not in the file."""
        i = self._row_of(video_id)
        code = self._language[i].as_py()
        if code is None:
            return None
        return code, float(self._confidence[i].as_py())


def _reopen(path: str, source: str) -> CaptionIndex:
    return CaptionIndex.open(path, source=source)
