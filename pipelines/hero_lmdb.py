"""The original HERO code's LMDB databases: export a dataset to them, import them back.

HERO (github.com/linjieli222/HERO) trains from two databases per corpus, and this module writes
and reads exactly what its loaders (``VideoFeatLmdb``, ``SubTokLmdb``) expect::

    <out>/video_db/id2nframe.json               {clip key: number of feature steps}
    <out>/video_db/resnet_slowfast_<L>/         LMDB: clip key -> msgpack {"features": (n, 4352)}
    <out>/sub_db/                               LMDB: clip key -> lz4(msgpack {input_ids, ...})
    <out>/sub_db/meta.json                      special token ids, v_range (MLM's random tokens)
    <out>/sub_db/vid2len.json                   {clip key: number of steps}
    <out>/sub_db/vid2max_frame_sub_len.json     {clip key: max over cues of tokens + steps}
    <out>/clip_ids.json                         every key, a ready split file for HERO's configs
    <out>/export.json                           what was exported, from where, by which toolkit

Keys are utf-8 clip ids: ``<video>.<k>`` for clips of ``C`` seconds (HowTo100M style), or the
bare video id when every video is one clip (TV style). Feature values are msgpack maps whose
array is written the way ``msgpack_numpy`` writes one (a map of ``nd``/``type``/``kind``/
``shape``/``data``), which HERO's patched ``msgpack.loads(raw=False)`` turns back into an
ndarray. Subtitle values are ``lz4.frame``-compressed msgpack maps. We encode and decode both
ourselves (no ``msgpack_numpy.patch()``, which would change ``msgpack`` for the whole process,
and no pickle on the way in); a test checks our bytes against the real ``msgpack_numpy`` and
HERO's reading code. docs/hero-compat.md documents every field.

Cue times are not part of HERO's alignment: the subtitle value keeps HERO's per-video ``sub``
list (text, start, end) as HERO's own preprocessing did, and we add a ``hero_toolkit`` map
(clip span, source) that HERO ignores, so our exports import back exactly. For databases
without them, cue spans are rebuilt from the steps each cue covers (see
:func:`cues_from_sub_value`).

The LMDB packages are an optional extra, imported only inside the functions that need them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np

from hero_data import __version__
from hero_data.errors import HeroError
from hero_data.grid import check_clip_length, num_steps, step_floor, steps_covering
from hero_data.manifest import MANIFEST_NAME, fsync_dir
from hero_data.progress import Progress
from hero_data.reader import HeroDataset
from hero_data.schema import FEATURE_DIM, RESNET_DIM, ClipRecord
from hero_data.types import Clip, Cue, check_id
from hero_data.writer import DatasetWriter

log = logging.getLogger(__name__)

__all__ = [
    "EXTRA_KEY",
    "FEATURE_VERSION",
    "INSTALL_HINT",
    "ExportOptions",
    "ExportSummary",
    "HeroCompatError",
    "LmdbImportOptions",
    "LmdbImportSummary",
    "cues_from_sub_value",
    "decode_features",
    "decode_sub_value",
    "encode_features",
    "encode_sub_value",
    "export_hero_lmdb",
    "import_hero_lmdb",
    "meta_from_tokenizer",
    "open_lmdb_readonly",
    "refuse_existing_dataset",
]

FEATURE_VERSION = "resnet_slowfast"
"""HERO's ``vfeat_version``: the feature database folder is ``<version>_<interval>``."""

VIDEO_DB = "video_db"
SUB_DB = "sub_db"
ID2NFRAME = "id2nframe.json"
ID2NFRAME_CONVERT = "id2frame_len.json"  # what HERO's scripts/convert_videodb.py writes
META = "meta.json"
VID2LEN = "vid2len.json"
VID2MAX = "vid2max_frame_sub_len.json"
CLIP_IDS = "clip_ids.json"
EXPORT_INFO = "export.json"
KEYS_KEY = b"__keys__"  # an optional key list some HERO feature databases carry

EXTRA_KEY = "hero_toolkit"
"""Our map inside each subtitle value (clip span, source); HERO's loaders ignore it."""

INSTALL_HINT = "pip install 'hero-toolkit[hero-compat]'"

PSEUDO_STEPS = 5  # HERO's allow_empty_sub: a video without subtitles gets one empty cue per 5 steps
UNKNOWN_TEXT = "[text unknown: token ids only]"
"""Cue text for an imported cue that has token ids but no text (give a tokenizer to decode)."""

MAX_VALUE_BYTES = 256 << 20
"""Most bytes an npz feature value may decompress to: a three-hour video's features are 63 MiB
in float16, so this only stops decompression bombs."""

MAX_SUB_VALUE_BYTES = 64 << 20
"""Most bytes an lz4 subtitle value may decompress to (a million one-token cues with their
`sub` times take 46 MiB)."""

MAX_CLIP_INDEX = 1 << 31
"""Clip indices an imported ``hero_toolkit`` map may give (Arrow stores them as int32 and up)."""

_TXN_BYTES = 64 << 20  # values per LMDB write transaction (memory held while writing)
_TXN_ENTRIES = 2000
_CLIP_KEY = re.compile(r"^(?P<video>.+)\.(?P<index>\d+)$")
_FEATURE_DB = re.compile(
    r"^(?P<version>.+?)_(?P<interval>\d+(?:\.\d+)?)(?P<compressed>_compressed)?$"
)
_ROLES = {
    "BOS": "bos",
    "EOS": "eos",
    "SEP": "sep",
    "CLS": "cls",
    "PAD": "pad",
    "MASK": "mask",
    "UNK": "unk",
}


class HeroCompatError(HeroError, ValueError):
    """A HERO database, or a request to read or write one, that cannot be honoured.

    The message starts with the file (and key) at fault.
    """


# --- optional packages -------------------------------------------------------------------------


def _modules() -> SimpleNamespace:
    """``lmdb``, ``msgpack`` and ``lz4.frame``, or a :class:`HeroCompatError` saying how to get
    them."""
    missing = []
    try:
        import lmdb
    except ImportError:
        missing.append("lmdb")
    try:
        import msgpack
    except ImportError:
        missing.append("msgpack")
    try:
        import lz4.frame as lz4frame
    except ImportError:
        missing.append("lz4")
    if missing:
        raise HeroCompatError(
            f"HERO's LMDB databases need the optional packages {', '.join(missing)}: {INSTALL_HINT}"
        )
    return SimpleNamespace(lmdb=lmdb, msgpack=msgpack, lz4frame=lz4frame)


# --- values --------------------------------------------------------------------------------------


def encode_features(features: np.ndarray) -> bytes:
    """A feature value: msgpack ``{"features": array}``, the array as ``msgpack_numpy`` writes
    it (byte for byte), ``(steps, 4352)`` float16."""
    msgpack = _modules().msgpack
    arr = np.ascontiguousarray(features)
    nd = {b"nd": True, b"type": arr.dtype.str, b"kind": b"", b"shape": arr.shape, b"data": arr.data}
    return msgpack.packb({"features": nd}, use_bin_type=True)


def _text_keys(obj: dict[Any, Any]) -> dict[Any, Any]:
    return {k.decode("utf-8", "replace") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _ndarray(obj: Any, where: str) -> np.ndarray:
    """A ``msgpack_numpy`` array map -> ndarray, without pickle (numeric dtypes only)."""
    if not isinstance(obj, dict):
        raise HeroCompatError(f"{where}: 'features' is a {type(obj).__name__}, not an array")
    nd = _text_keys(obj)
    if nd.get("nd") is not True or "data" not in nd or "shape" not in nd or "type" not in nd:
        raise HeroCompatError(f"{where}: 'features' is not a msgpack-numpy array map")
    kind = nd.get("kind", b"")
    if kind not in (b"", ""):
        raise HeroCompatError(f"{where}: 'features' has dtype kind {kind!r}; expected numbers")
    type_ = nd["type"]
    try:
        dtype = np.dtype(type_.decode() if isinstance(type_, bytes) else type_)
    except (TypeError, ValueError):
        raise HeroCompatError(f"{where}: 'features' has an unknown dtype {type_!r}") from None
    if dtype.kind != "f":
        raise HeroCompatError(f"{where}: 'features' are {dtype}, expected float16 or float32")
    shape = nd["shape"]
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(s, int) and s >= 0 for s in shape
    ):
        raise HeroCompatError(f"{where}: 'features' has a bad shape {shape!r}")
    data = nd["data"]
    expected = math.prod(shape) * dtype.itemsize
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != expected:
        got = len(data) if isinstance(data, (bytes, bytearray, memoryview)) else type(data)
        raise HeroCompatError(
            f"{where}: 'features' {tuple(shape)} {dtype} needs {expected} bytes, got {got} "
            "(a truncated value?)"
        )
    try:
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    except ValueError as e:  # more than 64 dimensions, or one past numpy's size limit
        raise HeroCompatError(f"{where}: 'features' has a bad shape {shape!r} ({e})") from None


def _unpack(msgpack: Any, raw: bytes, where: str) -> dict[str, Any]:
    """A msgpack map with text keys, or a :class:`HeroCompatError` saying what is wrong."""
    try:
        obj = msgpack.unpackb(raw, raw=False)
    except Exception as e:  # msgpack raises several unrelated types for bad input
        if "incomplete input" in str(e):
            raise HeroCompatError(f"{where}: truncated value (msgpack: {e})") from None
        raise HeroCompatError(f"{where}: not a msgpack value ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise HeroCompatError(f"{where}: expected a map, got {type(obj).__name__}")
    return _text_keys(obj)


def _check_npy_size(archive: Any, name: str, where: str) -> None:
    """Refuse an npz member whose header (or zip entry) declares more than
    :data:`MAX_VALUE_BYTES`, before it is decompressed."""
    from numpy.lib import format as npy_format

    info = archive.getinfo(name)
    if info.file_size > MAX_VALUE_BYTES:
        raise HeroCompatError(
            f"{where}: 'features' unpacks to {info.file_size} bytes, over the "
            f"{MAX_VALUE_BYTES >> 20} MiB limit"
        )
    with archive.open(name) as f:
        version = npy_format.read_magic(f)
        read_header = (
            npy_format.read_array_header_1_0
            if version == (1, 0)
            else npy_format.read_array_header_2_0
        )
        shape, _, dtype = read_header(f)
    if dtype.kind != "f":
        raise HeroCompatError(f"{where}: 'features' are {dtype}, expected float16 or float32")
    if math.prod(shape) * dtype.itemsize > MAX_VALUE_BYTES:
        raise HeroCompatError(
            f"{where}: 'features' {shape} {dtype} is over the {MAX_VALUE_BYTES >> 20} MiB limit"
        )


def decode_features(data: bytes | memoryview, where: str) -> np.ndarray:
    """The ``features`` array of a feature value (msgpack, or the ``_compressed`` npz form).

    ``where`` names the database and key in errors. No pickle is ever loaded.
    """
    raw = bytes(data)
    if raw[:2] == b"PK":  # HERO's compressed_db: np.savez_compressed bytes
        import io
        import zipfile
        from zlib import error as zlib_error

        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                if "features" not in npz.files:
                    raise HeroCompatError(f"{where}: no 'features' array (holds {npz.files})")
                _check_npy_size(npz.zip, "features.npy", where)
                return npz["features"]
        except HeroCompatError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib_error) as e:
            raise HeroCompatError(f"{where}: not a readable npz value ({e})") from None
    msgpack = _modules().msgpack
    obj = _unpack(msgpack, raw, where)
    if "features" not in obj:
        raise HeroCompatError(f"{where}: no 'features' key (keys: {sorted(map(str, obj))})")
    return _ndarray(obj["features"], where)


def encode_sub_value(value: dict[str, Any]) -> bytes:
    """A subtitle value: ``lz4.frame.compress(msgpack.packb(value))``, as HERO's ``TxtLmdb``."""
    mods = _modules()
    return mods.lz4frame.compress(mods.msgpack.packb(value, use_bin_type=True))


def decode_sub_value(data: bytes | memoryview, where: str) -> dict[str, Any]:
    """Inverse of :func:`encode_sub_value`; errors name ``where``."""
    mods = _modules()
    inflater = mods.lz4frame.LZ4FrameDecompressor()
    parts: list[bytes] = []
    size = 0
    pending = bytes(data)
    try:  # in 1 MiB pieces: a few KiB of lz4 can unpack to gigabytes, and max_length is allocated
        while not inflater.eof:
            part = inflater.decompress(pending, max_length=1 << 20)
            pending = b""
            parts.append(part)
            size += len(part)
            if size > MAX_SUB_VALUE_BYTES:
                raise HeroCompatError(
                    f"{where}: unpacks to more than the {MAX_SUB_VALUE_BYTES >> 20} MiB a "
                    "subtitle value may hold"
                )
            if not part and inflater.needs_input:
                raise HeroCompatError(f"{where}: truncated lz4 frame")
    except HeroCompatError:
        raise
    except Exception as e:  # lz4 raises RuntimeError; be safe about others
        raise HeroCompatError(f"{where}: not lz4-frame compressed ({e})") from None
    return _unpack(mods.msgpack, b"".join(parts), where)


# --- LMDB files ---------------------------------------------------------------------------------


def open_lmdb_readonly(path: Path) -> Any:
    """Open an LMDB folder for reading, after checking that its file is whole.

    LMDB maps the file into memory, so reading a page past the end of a truncated file kills
    the process (SIGBUS). The meta page says how many pages the database uses: a shorter file
    is refused with a clear error before any page is touched.
    """
    lmdb = _modules().lmdb
    data = path / "data.mdb"
    if not data.is_file():
        raise HeroCompatError(f"{path}: not an LMDB database (no data.mdb)")
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, create=False, readahead=False)
    except lmdb.Error as e:
        raise HeroCompatError(f"{data}: not a readable LMDB file ({e})") from None
    need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    have = data.stat().st_size
    if have < need:
        env.close()
        raise HeroCompatError(
            f"{data}: truncated: {have} bytes, but the database needs {need} "
            "(an interrupted copy or download?)"
        )
    return env


class _LmdbWriter:
    """Puts key/value pairs into a new LMDB, a bounded batch per transaction, growing the map
    when it is full."""

    def __init__(self, path: Path, map_size: int) -> None:
        self._lmdb = _modules().lmdb
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        # sync=False: the folder is a temporary one, synced once at the end and then renamed.
        self.env = self._lmdb.open(
            str(path), map_size=max(map_size, 1 << 20), sync=False, metasync=False
        )
        self._pending: list[tuple[bytes, bytes]] = []
        self._bytes = 0

    def put(self, key: bytes, value: bytes) -> None:
        self._pending.append((key, value))
        self._bytes += len(value)
        if self._bytes >= _TXN_BYTES or len(self._pending) >= _TXN_ENTRIES:
            self.flush()

    def flush(self) -> None:
        while self._pending:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in self._pending:
                        txn.put(key, value)
            except self._lmdb.MapFullError:  # the transaction was aborted: grow, then redo it
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
                continue
            self._pending, self._bytes = [], 0

    def close(self) -> None:
        self.flush()
        self.env.sync(True)
        self.env.close()


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # not UTF-8, not JSON, a 4,300+ digit integer
        raise HeroCompatError(f"{path}: not readable JSON ({e})") from None
    except RecursionError:
        raise HeroCompatError(f"{path}: not readable JSON (nested too deep)") from None


def refuse_existing_dataset(output: str | os.PathLike[str], overwrite: bool) -> None:
    """Raise unless ``output`` holds no dataset yet, or ``overwrite`` is set."""
    if not overwrite and (Path(output) / MANIFEST_NAME).exists():
        raise HeroCompatError(f"{output}: already holds a dataset; give --overwrite to replace it")


def _page_bytes(size: int, page: int = 4096) -> int:
    """Bytes a value of ``size`` takes in an LMDB (overflow pages plus a header)."""
    return (size // page + 2) * page


# --- export ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportOptions:
    """How :func:`export_hero_lmdb` writes.

    Attributes:
        frame_interval: the interval as HERO's config will spell it (``vfeat_interval``): it
            names the feature folder (``resnet_slowfast_<this>``) and must equal the dataset's
            seconds per step. ``None``: the dataset's, as Python prints it (``1.5``, ``2.0``).
        tokenizer: the ``tokenizer.json`` (or folder) the dataset was tokenized with: gives
            meta.json's special ids and tokenizes clips that have cues but no token ids.
            ``None``: the ids recorded by an earlier import, if any.
        subtitles: write the subtitle database too.
        keys: ``"clip"`` (``<video>.<k>``), ``"video"`` (the video id; every video must be one
            clip) or ``"auto"`` (video ids when the dataset was made with whole videos).
        overwrite: replace an existing output folder.
        progress: show a progress bar.
    """

    frame_interval: str | None = None
    tokenizer: str | None = None
    subtitles: bool = True
    keys: Literal["auto", "clip", "video"] = "auto"
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_hero_lmdb` wrote.

    Attributes:
        output: the export folder.
        video_db: HERO's ``vfeat_db`` folder (holds ``id2nframe.json``).
        feature_db: the LMDB folder inside it.
        sub_db: HERO's ``sub_txt_db`` folder, or ``None`` without subtitles.
        clips: values written per database.
        steps: feature steps written.
        feature_bytes: bytes of feature values (before LMDB pages).
        tokenized: clips whose cue token ids were made during the export.
        pseudo_filled: clips without cues given HERO's empty pseudo-cues (one per 5 steps).
        wall_s: seconds taken.
    """

    output: Path
    video_db: Path
    feature_db: Path
    sub_db: Path | None
    clips: int
    steps: int
    feature_bytes: int
    tokenized: int = 0
    pseudo_filled: int = 0
    wall_s: float = 0.0


def meta_from_tokenizer(tokenizer: Any) -> dict[str, Any]:
    """meta.json's token fields from a :class:`align.tokenizer.CueTokenizer`.

    ``BOS``/``EOS``/``SEP``/``CLS``/``PAD``/``MASK``/``UNK`` are the special tokens' ids.
    ``v_range`` is ``[first, last + 1)`` of the ids that are not special tokens: the range
    HERO's MLM draws random replacement tokens from. (HERO took it from RoBERTa's ``.`` and
    ``<|endoftext|>`` ids; the span of ordinary tokens is the same idea for any vocabulary.)
    """
    ids = tokenizer.special_ids()
    meta: dict[str, Any] = {}
    missing = []
    for key, role in _ROLES.items():
        if ids.get(role) is None:
            missing.append(role)
        else:
            meta[key] = int(ids[role])
    if missing:
        raise HeroCompatError(
            f"{tokenizer!r}: HERO needs the special tokens of roles {', '.join(missing)} "
            "(RoBERTa's <s>, </s>, <pad>, <mask>, <unk>)"
        )
    special = set(meta.values())
    lo, hi = 0, tokenizer.vocab_size - 1
    while lo in special:
        lo += 1
    while hi in special:
        hi -= 1
    if hi < lo:
        raise HeroCompatError(f"{tokenizer!r}: no ordinary tokens besides the special ones")
    meta["v_range"] = [lo, hi + 1]
    return meta


def _interval_spelling(interval: float, given: str | None) -> str:
    """The ``<L>`` of ``resnet_slowfast_<L>``: what HERO's ``f"{vfeat_interval}"`` prints.

    HERO formats the number its JSON config holds, so ``2`` and ``2.0`` name different
    folders; ``given`` must be a spelling JSON gives back as written (``2``, ``2.0``, ``1.5``).
    """
    if given is None:
        return str(float(interval))
    try:
        value = json.loads(given)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or str(value) != given:
        raise HeroCompatError(
            f"--frame-interval {given!r}: write the number as HERO's config will hold it, "
            f"such as {float(interval)} (HERO names the folder after it)"
        )
    if not math.isclose(float(value), interval, rel_tol=0, abs_tol=1e-9):
        raise HeroCompatError(
            f"--frame-interval {given}: the dataset's features are {interval:g} s per step; "
            "HERO's vfeat_interval must match them (features cannot be resampled)"
        )
    return given


def _dataset_interval(ds: HeroDataset) -> float:
    values = set(ds.table(["frame_interval"]).column("frame_interval").to_pylist())
    if len(values) != 1:
        raise HeroCompatError(
            f"{ds.root}: clips have frame intervals {sorted(values)}; HERO's feature database "
            "holds one interval"
        )
    return float(values.pop())


def _check_tokenizer(ds: HeroDataset, tokenizer: Any) -> None:
    recorded = ds.manifest.config.get("tokenizer")
    if isinstance(recorded, dict) and recorded.get("sha256") not in (None, tokenizer.sha256):
        raise HeroCompatError(
            f"{ds.root}: the dataset was tokenized with a tokenizer of sha256 "
            f"{recorded['sha256'][:16]}…, but --tokenizer {tokenizer.paths[0]} has "
            f"{tokenizer.sha256[:16]}…; token ids and meta.json would disagree"
        )


def _pairs(spans: Sequence[Sequence[int]]) -> list[list[Any]]:
    return [[k, [int(s) for s in steps]] for k, steps in enumerate(spans)]


def _sub_value(
    record: ClipRecord, key: str, token_ids: Sequence[Sequence[int]] | None
) -> tuple[dict[str, Any], bool]:
    """HERO's subtitle value for one clip, and whether pseudo-cues were filled in."""
    n = record.num_frames
    extra = {
        "clip_id": record.clip_id,
        "video_id": record.clip.video_id,
        "clip_index": record.clip.index,
        "clip_start": record.clip.start,
        "clip_end": record.clip.end,
        "frame_interval": record.frame_interval,
        "source": record.source,
    }
    pseudo = not record.cues
    if pseudo:  # HERO's allow_empty_sub: one empty cue per 5 steps, each owning its steps
        spans = [list(range(i, min(i + PSEUDO_STEPS, n))) for i in range(0, n, PSEUDO_STEPS)]
        ids: list[list[int]] = [[] for _ in spans]
        covering, unique, unmatched, sub = spans, spans, [], []
    else:
        if not record.sub2frames or not record.unique_sub2frames:
            raise HeroCompatError(
                f"clip {record.clip_id}: cues are not aligned to steps (no sub2frames); "
                "align the dataset first"
            )
        assert token_ids is not None
        ids = [[int(t) for t in row] for row in token_ids]
        covering = [list(s) for s in record.sub2frames]
        unique = [list(s) for s in record.unique_sub2frames]
        unmatched = list(record.unmatched_frames)
        sub = []
        for c in record.cues:
            entry: dict[str, Any] = {"text": c.text, "start": c.start, "end": c.end}
            if c.speaker is not None:
                entry["speaker"] = c.speaker
            sub.append(entry)
    longest = max((len(i) + len(s) for i, s in zip(ids, covering, strict=True)), default=0)
    value = {
        "vid_name": key,
        "v_id": key,
        "sub": sub,
        "input_ids": ids,
        "unique_sub2frames": _pairs(unique),
        "sub2frames": _pairs(covering),
        "unmatched_frames": [int(s) for s in unmatched],
        "duration": n,
        "max_mtached_sub_len": longest,  # sic: HERO's spelling
        EXTRA_KEY: extra,
    }
    return value, pseudo


def _speaker_prefix(ds: HeroDataset) -> bool:
    """Whether the dataset's cue ids carry the speaker (``"Speaker : text"``, HERO's TV
    subtitles), as its manifest records: cues tokenized now are tokenized the same way."""
    config = ds.manifest.config
    recorded = config.get("tokenizer")
    if isinstance(recorded, dict) and "speaker_prefix" in recorded:
        return bool(recorded["speaker_prefix"])
    return bool(config.get("speaker_prefix", False))


def _token_ids(record: ClipRecord, tokenizer: Any) -> tuple[list[list[int]] | None, bool]:
    """The clip's token ids per cue, and whether they were made now."""
    if not record.cues:
        return None, False
    if record.cue_token_ids:
        return [list(t) for t in record.cue_token_ids], False
    if all(c.text == "" for c in record.cues):  # pseudo-cues carry no tokens
        return [[] for _ in record.cues], False
    if tokenizer is None:
        raise HeroCompatError(
            f"clip {record.clip_id}: cues have no token ids; give --tokenizer to tokenize them"
        )
    return [list(t) for t in tokenizer.encode_cues(record.cues)], True


def _keys_mode(ds: HeroDataset, keys: str) -> str:
    if keys not in ("auto", "clip", "video"):
        raise HeroCompatError(f"keys must be auto, clip or video, got {keys!r}")
    if keys != "auto":
        return keys
    config = ds.manifest.config
    return "video" if "clip_length" in config and config["clip_length"] is None else "clip"


def _export_keys(ds: HeroDataset, mode: str) -> list[str]:
    if mode == "clip":
        return ds.clip_ids()
    videos = ds.table(["video_id"]).column("video_id").to_pylist()
    repeated = sorted(v for v, n in Counter(videos).items() if n > 1)
    if repeated:
        raise HeroCompatError(
            f"{ds.root}: video keys need one clip per video, but {repeated[:3]} have several; "
            "use clip keys (<video>.<k>)"
        )
    return videos


def _prepare_output(output: Path, overwrite: bool) -> Path:
    if output.exists() and not overwrite:
        raise HeroCompatError(f"{output}: already exists; give --overwrite to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def _commit_output(tmp: Path, output: Path) -> None:
    """Rename the finished temporary folder into place (replacing an old output)."""
    old = None
    if output.exists():
        old = output.parent / f".{output.name}.old-{os.getpid()}"
        os.replace(output, old)
    os.replace(tmp, output)
    fsync_dir(output.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_hero_lmdb(
    dataset: str | os.PathLike[str], output: str | os.PathLike[str], options: ExportOptions
) -> ExportSummary:
    """Write ``dataset`` as HERO's video feature and subtitle databases under ``output``.

    Everything is written into a temporary folder beside ``output`` and renamed into place at
    the end, so ``output`` is either the complete export or absent (or the previous one).
    """
    _modules()
    started = time.monotonic()
    out = Path(output)
    if out.exists() and not options.overwrite:
        raise HeroCompatError(f"{out}: already exists; give --overwrite to replace it")
    ds = HeroDataset.open(dataset)
    if len(ds) == 0:
        raise HeroCompatError(f"{ds.root}: the dataset holds no clips")
    interval = _dataset_interval(ds)
    spelling = _interval_spelling(interval, options.frame_interval)
    mode = _keys_mode(ds, options.keys)
    keys = _export_keys(ds, mode)
    tokenizer = meta = None
    if options.tokenizer:
        from align.tokenizer import CueTokenizer

        tokenizer = CueTokenizer.from_path(options.tokenizer)
        _check_tokenizer(ds, tokenizer)
        tokenizer = tokenizer.with_speaker_prefix(_speaker_prefix(ds))
        meta = meta_from_tokenizer(tokenizer)
    elif options.subtitles:
        recorded = ds.manifest.config.get("hero_meta")
        if isinstance(recorded, dict) and all(k in recorded for k in (*_ROLES, "v_range")):
            meta = {k: recorded[k] for k in (*_ROLES, "v_range")}
        else:
            raise HeroCompatError(
                f"{ds.root}: the subtitle database's meta.json needs the tokenizer's special "
                "token ids: give --tokenizer (the tokenizer.json the dataset was tokenized "
                "with), or --no-subtitles for the video features only"
            )
    tmp = _prepare_output(out, options.overwrite)
    feature_name = f"{FEATURE_VERSION}_{spelling}"
    steps = [int(n) for n in ds.table(["num_frames"]).column("num_frames").to_pylist()]
    steps_total = sum(steps)
    estimate = sum(_page_bytes(n * FEATURE_DIM * 2 + 128) for n in steps)
    try:
        id2nframe: dict[str, int] = {}
        vid2len: dict[str, int] = {}
        vid2max: dict[str, int] = {}
        feature_bytes = tokenized = pseudo = 0
        features = _LmdbWriter(tmp / VIDEO_DB / feature_name, int(estimate * 1.1) + (16 << 20))
        subs = None
        try:
            if options.subtitles:
                subs = _LmdbWriter(tmp / SUB_DB, 64 << 20)
            with Progress(force_terminal=None if options.progress else False) as progress:
                name = ds.root.rstrip("/").rsplit("/", 1)[-1]
                bar = progress.add(f"export {name} -> HERO LMDB", total=len(ds))
                for i, key in enumerate(keys):
                    record = ds[i]
                    if key in id2nframe:
                        raise HeroCompatError(f"{ds.root}: key {key!r} would be written twice")
                    value = encode_features(record.features())
                    features.put(key.encode("utf-8"), value)
                    feature_bytes += len(value)
                    id2nframe[key] = record.num_frames
                    if subs is not None:
                        ids, made = _token_ids(record, tokenizer)
                        sub_value, filled = _sub_value(record, key, ids)
                        subs.put(key.encode("utf-8"), encode_sub_value(sub_value))
                        vid2len[key] = record.num_frames
                        vid2max[key] = sub_value["max_mtached_sub_len"]
                        tokenized += made
                        pseudo += filled
                    progress.advance(bar)
                progress.done(bar)
        finally:
            features.close()
            if subs is not None:
                subs.close()
        _write_json(tmp / VIDEO_DB / ID2NFRAME, id2nframe)
        if subs is not None:
            assert meta is not None
            full_meta = {
                **meta,
                "frame_length": interval,
                "tokenizer": tokenizer.describe() if tokenizer is not None else "as imported",
                "toolkit": f"hero-toolkit {__version__}",
            }
            _write_json(tmp / SUB_DB / META, full_meta)
            _write_json(tmp / SUB_DB / VID2LEN, vid2len)
            _write_json(tmp / SUB_DB / VID2MAX, vid2max)
        _write_json(tmp / CLIP_IDS, keys)
        info = {
            "format": "hero-lmdb",
            "toolkit_version": __version__,
            "dataset": str(Path(ds.root).resolve()) if ds.storage.is_local else ds.root,
            "keys": mode,
            "clips": len(keys),
            "steps": steps_total,
            "frame_interval": interval,
            "hero_config": {
                "vfeat_db": VIDEO_DB,
                "vfeat_version": FEATURE_VERSION,
                "vfeat_interval": json.loads(spelling),
                "compressed_db": False,
                "sub_txt_db": SUB_DB if subs is not None else None,
            },
        }
        _write_json(tmp / EXPORT_INFO, info)
        fsync_dir(tmp)
        _commit_output(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if pseudo:
        log.info("%d clips without cues got HERO's empty pseudo-cues", pseudo)
    return ExportSummary(
        output=out,
        video_db=out / VIDEO_DB,
        feature_db=out / VIDEO_DB / feature_name,
        sub_db=out / SUB_DB if options.subtitles else None,
        clips=len(keys),
        steps=steps_total,
        feature_bytes=feature_bytes,
        tokenized=tokenized,
        pseudo_filled=pseudo,
        wall_s=time.monotonic() - started,
    )


# --- import: cues from a subtitle value ----------------------------------------------------------


@dataclass(frozen=True)
class ImportedCues:
    """A clip's cues rebuilt from a HERO subtitle value.

    Attributes:
        cues: clip-relative seconds.
        token_ids: per cue.
        sub2frames: per cue, the steps it covers (steps past the clip dropped).
        unique_sub2frames: per cue, the steps assigned to it.
        unmatched_frames: steps no cue covers.
        times_from_sub: cue times came from the value's ``sub`` list (else rebuilt from steps).
        dropped: cues that cover no step of the clip (HERO keeps them, with no steps).
    """

    cues: tuple[Cue, ...]
    token_ids: tuple[tuple[int, ...], ...]
    sub2frames: tuple[tuple[int, ...], ...]
    unique_sub2frames: tuple[tuple[int, ...], ...]
    unmatched_frames: tuple[int, ...]
    times_from_sub: bool
    dropped: int = 0


def _int_list(value: Any, where: str, what: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise HeroCompatError(f"{where}: {what} must be a list of integers")
    return list(value)


def _span_pairs(value: Any, count: int, where: str, what: str) -> dict[int, list[int]]:
    """HERO's ``[[cue index, [steps]], ...]`` -> ``{cue index: steps}``."""
    if not isinstance(value, (list, tuple)):
        raise HeroCompatError(f"{where}: {what} must be a list of [cue index, [steps]] pairs")
    out: dict[int, list[int]] = {}
    for pair in value:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise HeroCompatError(f"{where}: {what} holds {pair!r}, not [cue index, [steps]]")
        k = pair[0]
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < count:
            raise HeroCompatError(f"{where}: {what} names cue {k!r} of {count}")
        out[k] = _int_list(pair[1], where, f"{what} of cue {k}")
    return out


def _sub_times(value: dict[str, Any], count: int) -> list[dict[str, Any]] | None:
    sub = value.get("sub")
    if not isinstance(sub, list) or len(sub) != count:
        return None
    for entry in sub:
        if not isinstance(entry, dict):
            return None
        start, end = entry.get("start"), entry.get("end")
        numbers = all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
            for t in (start, end)
        )
        if not numbers or end < start:
            return None
    return sub


def _times_agree(
    sub: list[dict[str, Any]], covering: dict[int, list[int]], interval: float
) -> bool:
    """Whether each cue's written times start in its first covered step and cover its steps.

    A database whose ``sub`` times are of another clock (source seconds in 60 s clips, say)
    fails this, and its cue spans are rebuilt from the steps instead.
    """
    for k, steps in covering.items():
        if not steps:
            continue
        start, end = float(sub[k]["start"]), float(sub[k]["end"])
        span = steps_covering(max(start, 0.0), end, interval)  # a range: `in` costs O(1)
        if step_floor(max(start, 0.0), interval) != min(steps) or not all(s in span for s in steps):
            return False
    return True


def cues_from_sub_value(
    value: dict[str, Any],
    num_frames: int,
    duration: float,
    interval: float,
    where: str,
    decode: Callable[[Sequence[int]], str] | None = None,
) -> ImportedCues:
    """A clip's cues and alignment from a HERO subtitle value.

    HERO's value holds no cue times of its own: times come from the value's ``sub`` list (what
    HERO's preprocessing kept from its input, and what our export writes) when they agree with
    the stored steps; otherwise cue ``c`` becomes ``[first·L, min((last + 1)·L, duration)]``
    from the steps it covers (``sub2frames``, else ``unique_sub2frames``). Text comes from
    ``sub``, else ``decode(token ids)``, else is ``""`` for a cue without tokens (a pseudo-cue)
    and :data:`UNKNOWN_TEXT` otherwise. Steps at or past ``num_frames`` are dropped (HERO kept
    them in ``sub2frames``); cues left with no step are dropped.
    """
    if "input_ids" not in value:
        raise HeroCompatError(f"{where}: no 'input_ids' (keys: {sorted(value)})")
    ids_raw = value["input_ids"]
    if not isinstance(ids_raw, list):
        raise HeroCompatError(f"{where}: 'input_ids' must be a list of token lists")
    ids = [_int_list(row, where, f"input_ids[{k}]") for k, row in enumerate(ids_raw)]
    count = len(ids)
    if "unique_sub2frames" not in value:
        raise HeroCompatError(f"{where}: no 'unique_sub2frames' (keys: {sorted(value)})")
    unique = _span_pairs(value["unique_sub2frames"], count, where, "unique_sub2frames")
    if "sub2frames" in value:
        covering = _span_pairs(value["sub2frames"], count, where, "sub2frames")
    else:
        covering = dict(unique)
    in_clip = range(num_frames)
    covering = {k: [s for s in v if s in in_clip] for k, v in covering.items()}
    unique = {k: [s for s in v if s in in_clip] for k, v in unique.items()}
    unmatched = [
        s
        for s in _int_list(value.get("unmatched_frames", []), where, "unmatched_frames")
        if s in in_clip
    ]
    keep = [k for k in range(count) if covering.get(k) or unique.get(k)]
    sub = _sub_times(value, count)
    from_sub = sub is not None and _times_agree(sub, covering, interval)
    cues, token_ids, s2f, u2f = [], [], [], []
    for k in keep:
        steps = covering.get(k) or unique[k]
        entry = sub[k] if sub is not None else {}
        if from_sub:
            start = min(max(float(entry["start"]), 0.0), duration)
            end = min(max(float(entry["end"]), start), duration)
        else:
            start = min(min(steps) * interval, duration)
            end = min((max(steps) + 1) * interval, duration)
        text = entry.get("text")
        if not isinstance(text, str):
            if decode is not None and ids[k]:
                text = decode(ids[k])
            else:
                text = UNKNOWN_TEXT if ids[k] else ""
        speaker = entry.get("speaker")
        cues.append(Cue(start, end, text, speaker if isinstance(speaker, str) else None))
        token_ids.append(tuple(ids[k]))
        s2f.append(tuple(covering.get(k, ())))
        u2f.append(tuple(unique.get(k, ())))
    return ImportedCues(
        cues=tuple(cues),
        token_ids=tuple(token_ids),
        sub2frames=tuple(s2f),
        unique_sub2frames=tuple(u2f),
        unmatched_frames=tuple(unmatched),
        times_from_sub=from_sub,
        dropped=count - len(keep),
    )


# --- import ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LmdbImportOptions:
    """How :func:`import_hero_lmdb` reads.

    Attributes:
        sub_db: HERO's subtitle database folder; ``None``: ``<dir>/sub_db`` when present.
        subtitles: read the subtitle database (``False``: features only).
        feature_db: the feature LMDB folder inside the video database, when it holds several.
        frame_interval: seconds per step; ``None``: from the folder name (``..._1.5``).
        clip_length: seconds per ``<video>.<k>`` clip; clip ``k`` starts at ``k·clip_length``.
            ``None``: every key is a whole video (TV style), whatever its name.
        tokenizer: decodes cue text from token ids when the database has no text.
        overwrite: replace an existing dataset at the output.
        rows_per_shard: clips per Arrow shard.
        progress: show a progress bar.
    """

    sub_db: str | None = None
    subtitles: bool = True
    feature_db: str | None = None
    frame_interval: float | None = None
    clip_length: float | None = 60.0
    tokenizer: str | None = None
    overwrite: bool = False
    rows_per_shard: int = 1024
    progress: bool = True


@dataclass
class LmdbImportSummary:
    """What :func:`import_hero_lmdb` did (counts of clips unless said otherwise)."""

    output: Path
    feature_db: Path
    sub_db: Path | None
    frame_interval: float
    videos: int = 0
    clips: int = 0
    steps: int = 0
    failed_videos: list[str] = field(default_factory=list)
    without_subtitles: int = 0
    times_rebuilt: int = 0
    cues_dropped: int = 0
    subtitle_keys_unused: int = 0
    wall_s: float = 0.0


def _find_feature_db(video_db: Path, name: str | None) -> Path:
    if name is not None:
        path = video_db / name
        if not (path / "data.mdb").is_file():
            raise HeroCompatError(f"{path}: no feature LMDB there (no data.mdb)")
        return path
    found = sorted(d for d in video_db.iterdir() if d.is_dir() and (d / "data.mdb").is_file())
    if not found:
        raise HeroCompatError(
            f"{video_db}: no feature LMDB (a folder with data.mdb, such as "
            f"{FEATURE_VERSION}_1.5) in this folder"
        )
    if len(found) > 1:
        names = ", ".join(d.name for d in found)
        raise HeroCompatError(f"{video_db}: several feature databases ({names}); pick one")
    return found[0]


def _locate(root: Path, options: LmdbImportOptions) -> tuple[Path, Path, Path | None]:
    """(video_db folder, feature LMDB folder, subtitle LMDB folder or None)."""
    if not root.is_dir():
        raise HeroCompatError(f"{root}: no such folder")
    video_db = root / VIDEO_DB if (root / VIDEO_DB).is_dir() else root
    feature_db = _find_feature_db(video_db, options.feature_db)
    sub_db: Path | None = None
    if options.subtitles:
        if options.sub_db is not None:
            sub_db = Path(options.sub_db)
            if not (sub_db / "data.mdb").is_file():
                raise HeroCompatError(f"{sub_db}: not a subtitle LMDB (no data.mdb)")
        elif (root / SUB_DB / "data.mdb").is_file():
            sub_db = root / SUB_DB
    return video_db, feature_db, sub_db


def _interval_of(feature_db: Path, given: float | None) -> float:
    if given is not None:
        if not (math.isfinite(given) and given > 0):
            raise HeroCompatError(f"frame interval must be a positive number, got {given!r}")
        return float(given)
    m = _FEATURE_DB.fullmatch(feature_db.name)
    if m is None:
        raise HeroCompatError(
            f"{feature_db}: cannot tell the frame interval from the folder name "
            f"(expected <version>_<seconds>, e.g. {FEATURE_VERSION}_1.5); give it explicitly"
        )
    return float(m.group("interval"))


def _id2nframe(video_db: Path) -> dict[str, int]:
    for name in (ID2NFRAME, ID2NFRAME_CONVERT):
        path = video_db / name
        if path.is_file():
            data = _read_json(path)
            if not isinstance(data, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in data.values()
            ):
                raise HeroCompatError(f"{path}: expected an object of clip id -> step count")
            return data
    log.warning("%s: no %s; step counts come from the stored features", video_db, ID2NFRAME)
    return {}


def _clip_of(key: str, clip_length: float | None) -> tuple[str, int]:
    """(video id, clip index) a key names: ``v.k`` is clip k of v, anything else a video."""
    m = _CLIP_KEY.fullmatch(key) if clip_length is not None else None
    return (m.group("video"), int(m.group("index"))) if m else (key, 0)


def _all_keys(env: Any, path: Path) -> list[str]:
    lmdb = _modules().lmdb
    keys = []
    try:
        with env.begin() as txn:
            for raw in txn.cursor().iternext(keys=True, values=False):
                if raw == KEYS_KEY:
                    continue
                try:
                    keys.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    raise HeroCompatError(f"{path}: key {raw!r} is not utf-8 text") from None
    except lmdb.Error as e:
        raise HeroCompatError(f"{path}: cannot list keys ({e})") from None
    return keys


@dataclass
class _Source:
    """The open databases of one import, and how to read a clip from them."""

    feature_db: Path
    sub_db: Path | None
    txn: Any
    sub_txn: Any
    id2nframe: dict[str, int]
    interval: float
    clip_length: float | None
    decode: Callable[[Sequence[int]], str] | None

    def read(self, key: str) -> tuple[ClipRecord, ImportedCues | None]:
        """Clip ``key`` as a record, with its cues when the subtitle database has it."""
        where = f"{self.feature_db} key {key!r}"
        raw = self.txn.get(key.encode("utf-8"))
        if raw is None:
            raise HeroCompatError(f"{where}: missing")
        feats = decode_features(raw, where)
        if feats.ndim != 2 or feats.shape[1] != FEATURE_DIM:
            raise HeroCompatError(
                f"{where}: features are {feats.shape}, expected (steps, {FEATURE_DIM}) "
                f"(ResNet {RESNET_DIM} ‖ SlowFast {FEATURE_DIM - RESNET_DIM})"
            )
        n = self.id2nframe.get(key, feats.shape[0])
        if n > feats.shape[0]:
            raise HeroCompatError(
                f"{where}: {ID2NFRAME} says {n} steps, but the value holds {feats.shape[0]}"
            )
        if n <= 0:
            raise HeroCompatError(f"{where}: no feature steps")
        feats = feats[:n]  # as HERO's reader: id2nframe decides
        if not np.isfinite(feats).all():
            raise HeroCompatError(f"{where}: features hold NaN or infinite values")
        sub_where = f"{self.sub_db} key {key!r}"
        sub_value = None
        if self.sub_txn is not None:
            sub_raw = self.sub_txn.get(key.encode("utf-8"))
            if sub_raw is not None:
                sub_value = decode_sub_value(sub_raw, sub_where)
        clip, source = self._clip(key, n, sub_value, where, sub_where)
        imported = None
        if sub_value is not None:
            imported = cues_from_sub_value(
                sub_value, n, clip.duration, self.interval, sub_where, self.decode
            )
        half = feats.astype(np.float16, copy=False)
        try:
            record = ClipRecord(
                clip=clip,
                source=source,
                frame_interval=self.interval,
                resnet=np.ascontiguousarray(half[:, :RESNET_DIM]),
                slowfast=np.ascontiguousarray(half[:, RESNET_DIM:]),
                cues=imported.cues if imported else (),
                cue_token_ids=imported.token_ids if imported else (),
                sub2frames=imported.sub2frames if imported else (),
                unique_sub2frames=imported.unique_sub2frames if imported else (),
                unmatched_frames=imported.unmatched_frames if imported else (),
            )
        except ValueError as e:
            raise HeroCompatError(f"{where}: {e}") from None
        return record, imported

    def _clip(
        self, key: str, n: int, sub_value: dict[str, Any] | None, where: str, sub_where: str
    ) -> tuple[Clip, str]:
        """The clip a key names (our ``hero_toolkit`` map, when present, says it exactly)."""
        video_id, index = _clip_of(key, self.clip_length)
        start = index * self.clip_length if self.clip_length is not None else 0.0
        end = start + n * self.interval
        source = f"{self.feature_db}#{key}"
        extra = sub_value.get(EXTRA_KEY) if sub_value is not None else None
        if isinstance(extra, dict):
            try:
                video_id, index = str(extra["video_id"]), int(extra["clip_index"])
                start, end = float(extra["clip_start"]), float(extra["clip_end"])
                source = str(extra.get("source", source))
            except (KeyError, TypeError, ValueError, OverflowError):
                raise HeroCompatError(f"{sub_where}: a malformed {EXTRA_KEY!r} map") from None
            if not (0 <= index < MAX_CLIP_INDEX and math.isfinite(start) and math.isfinite(end)):
                raise HeroCompatError(
                    f"{sub_where}: {EXTRA_KEY!r} gives clip {index} at [{start}, {end}) s: "
                    f"the index must be in [0, {MAX_CLIP_INDEX}) and the times finite"
                )
            try:
                steps = num_steps(end - start, self.interval)
            except ValueError as e:  # a negative or infinite span
                raise HeroCompatError(f"{sub_where}: {EXTRA_KEY!r}: {e}") from None
            if steps != n:
                raise HeroCompatError(
                    f"{sub_where}: clip span [{start}, {end}) s is not {n} steps of "
                    f"{self.interval} s"
                )
        try:
            return Clip(check_id("video id", video_id), index, start, end), source
        except ValueError as e:
            raise HeroCompatError(f"{where}: {e}") from None


def _group(keys: list[str], clip_length: float | None) -> dict[str, list[str]]:
    """Keys by the video they name, clips in index order."""
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for key in keys:
        video, index = _clip_of(key, clip_length)
        groups[video].append((index, key))
    return {video: [key for _, key in sorted(clips)] for video, clips in groups.items()}


def _meta(sub_db: Path | None) -> dict[str, Any] | None:
    if sub_db is None:
        return None
    path = sub_db / META
    if not path.is_file():
        log.warning("%s: no %s; special token ids unknown", sub_db, META)
        return None
    meta = _read_json(path)
    if not isinstance(meta, dict):
        raise HeroCompatError(f"{path}: expected a JSON object")
    try:  # it is copied into manifest.json, which must stay strict JSON in UTF-8
        json.dumps(meta, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except ValueError as e:  # NaN or Infinity, a lone surrogate
        raise HeroCompatError(f"{path}: cannot be kept in the manifest ({e})") from None
    return meta


def import_hero_lmdb(
    source: str | os.PathLike[str], output: str | os.PathLike[str], options: LmdbImportOptions
) -> LmdbImportSummary:
    """HERO's feature database (and subtitle database when there is one) -> a dataset.

    ``source`` is an export folder (``video_db/`` + ``sub_db/``) or HERO's video database
    folder (``id2nframe.json`` + ``resnet_slowfast_<L>/``). A clip that cannot be read fails
    its whole video, which is recorded in ``errors.jsonl``; the rest go on. A database that
    cannot be opened (truncated, not LMDB) stops the import with an error naming its file.
    """
    lmdb = _modules().lmdb
    started = time.monotonic()
    refuse_existing_dataset(output, options.overwrite)
    video_db, feature_db, sub_db = _locate(Path(source), options)
    interval = _interval_of(feature_db, options.frame_interval)
    if options.clip_length is not None:
        check_clip_length(options.clip_length, interval)
    id2nframe = _id2nframe(video_db)
    meta = _meta(sub_db)
    decode = tokenizer_info = None
    if options.tokenizer:
        from align.tokenizer import CueTokenizer

        tok = CueTokenizer.from_path(options.tokenizer)
        decode = tok.decode
        tokenizer_info = {"sha256": tok.sha256, "vocab_size": tok.vocab_size, "kind": "decode"}
    summary = LmdbImportSummary(Path(output), feature_db, sub_db, interval)
    env = open_lmdb_readonly(feature_db)
    sub_env = None
    try:
        sub_env = open_lmdb_readonly(sub_db) if sub_db is not None else None
        keys = _all_keys(env, feature_db)
        clips = options.clip_length is not None and any(_CLIP_KEY.fullmatch(k) for k in keys)
        config = {
            "frame_interval": interval,
            "clip_length": options.clip_length if clips else None,  # None: whole videos
            "imported_from": {
                "format": "hero-lmdb",
                "feature_db": feature_db.name,
                "subtitle_db": sub_db is not None,
            },
            "tokenizer": tokenizer_info,
            "hero_meta": meta,
        }
        mode = "overwrite" if options.overwrite else "create"
        used_sub_keys = 0
        with (
            DatasetWriter(
                output, config, mode=mode, max_rows_per_shard=options.rows_per_shard
            ) as writer,
            env.begin(buffers=True) as txn,
            sub_env.begin(buffers=True) if sub_env is not None else nullcontext() as sub_txn,
            Progress(force_terminal=None if options.progress else False) as progress,
        ):
            src = _Source(
                feature_db, sub_db, txn, sub_txn, id2nframe, interval, options.clip_length, decode
            )
            bar = progress.add(f"import {feature_db.name}", total=len(keys))
            for video, clip_keys in sorted(_group(keys, options.clip_length).items()):
                try:
                    read = [src.read(key) for key in clip_keys]
                except (HeroCompatError, lmdb.Error) as e:
                    log.error("%s: %s", video, e)
                    writer.record_failure(
                        video_id=video, source=str(feature_db), stage="import", error=e
                    )
                    summary.failed_videos.append(video)
                    progress.advance(bar, len(clip_keys))
                    continue
                records = [r for r, _ in read]
                videos = list(dict.fromkeys(r.clip.video_id for r in records))
                for actual in videos:  # our map may name another video than the key suggests
                    writer.write_video([r for r in records if r.clip.video_id == actual])
                summary.videos += len(videos)
                summary.clips += len(records)
                summary.steps += sum(r.num_frames for r in records)
                for _, cues in read:
                    if cues is None:
                        summary.without_subtitles += 1
                    else:
                        used_sub_keys += 1
                        summary.times_rebuilt += not cues.times_from_sub
                        summary.cues_dropped += cues.dropped
                progress.advance(bar, len(clip_keys))
            progress.done(bar)
        if sub_env is not None:
            summary.subtitle_keys_unused = max(sub_env.stat()["entries"] - used_sub_keys, 0)
    finally:
        env.close()
        if sub_env is not None:
            sub_env.close()
    if summary.without_subtitles and sub_db is not None:
        log.warning("%d clips have no entry in %s", summary.without_subtitles, sub_db)
    summary.wall_s = time.monotonic() - started
    return summary
