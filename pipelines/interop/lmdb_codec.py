"""The original HERO code's LMDB databases: their layout, and the codec of their values.

HERO (github.com/linjieli222/HERO) trains from two databases per corpus.
:mod:`pipelines.interop.lmdb_export` writes and :mod:`pipelines.interop.lmdb_import` reads
exactly what its loaders (``VideoFeatLmdb``, ``SubTokLmdb``) expect::

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
ndarray. Subtitle values are ``lz4.frame``-compressed msgpack maps. Feature values are encoded
by ``msgpack_numpy``'s own encoder, passed to ``msgpack.packb`` as ``default`` (not
``msgpack_numpy.patch()``, which would change ``msgpack`` for the whole process). Values read
from a database are decoded by our own code, which takes numeric arrays only: ``msgpack_numpy``'s
decoder unpickles object arrays, and a database may come from anywhere. Tests check the bytes
both ways against ``msgpack_numpy`` and HERO's reading code. docs/hero-compat.md documents
every field.

Cue times are not part of HERO's alignment: the subtitle value keeps HERO's per-video ``sub``
list (text, start, end) as HERO's own preprocessing did, and we add a ``hero_toolkit`` map
(clip span, source) that HERO ignores, so our exports import back exactly. For databases
without them, cue spans are rebuilt from the steps each cue covers (see
:func:`pipelines.interop.lmdb_import.cues_from_sub_value`).

The LMDB packages are an optional extra, imported only inside the functions that need them.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from hero_data.errors import FeatureSetError, HeroError
from hero_data.features import RESNET_DIM, SLOWFAST_DIM, FeatureSet

__all__ = [
    "EXTRA_KEY",
    "INSTALL_HINT",
    "HeroCompatError",
    "decode_features",
    "decode_sub_value",
    "encode_features",
    "encode_sub_value",
    "feature_version",
    "features_of_version",
    "lmdb_modules",
    "open_lmdb_readonly",
]

# HERO's and VALUE's configs name the feature database ``<vfeat_version>_<vfeat_interval>``,
# where vfeat_version joins the feature names with "_" in input order: HERO's
# ``resnet_slowfast``; VALUE's ``clip-vit_slowfast``, ``resnet_mil-nce``, ``clip-vit_mil-nce``.
# Our columns with a HERO/VALUE name are exported under that name; others under their own.
# The dimensions are the ones those feature versions hold (VALUE: resnet_mil-nce is 3072 =
# 2048 + 1024, clip-vit_slowfast 2816 = 512 + 2304), which an import needs to split the
# concatenated features back into columns.
VFEAT_NAMES: dict[str, tuple[str, int]] = {
    "resnet": ("resnet", RESNET_DIM),
    "slowfast": ("slowfast", SLOWFAST_DIM),
    "clip_vit_b32": ("clip-vit", 512),
    "milnce_s3d": ("mil-nce", 1024),
}
"""Our column name -> (its name in HERO/VALUE feature versions, dimension per step)."""

OTHER_COLUMNS: dict[str, int] = {"clip_rn50x4": 640}
"""Columns VALUE has no name for, by dimension: exported under their own names, which an
import reads back."""


def feature_version(features: FeatureSet) -> str:
    """HERO's ``vfeat_version`` for ``features``: its columns' HERO/VALUE names joined with
    ``_`` (``resnet_slowfast`` for the default set, ``clip-vit_slowfast``, ...); a column
    without one keeps its own name (``clip_rn50x4_slowfast``)."""
    return "_".join(VFEAT_NAMES.get(c.name, (c.name, 0))[0] for c in features.columns)


def features_of_version(version: str, where: str) -> FeatureSet:
    """The feature set a ``vfeat_version`` names (inverse of :func:`feature_version`);
    :class:`HeroCompatError` naming ``where`` for a name with a part it does not know."""
    known = {spelling: (name, dim) for name, (spelling, dim) in VFEAT_NAMES.items()}
    known.update({name: (name, dim) for name, dim in OTHER_COLUMNS.items()})
    parts = version.split("_")
    columns: list[tuple[str, int]] = []
    i = 0
    while i < len(parts):
        # Our own names hold "_" (clip_rn50x4): take the longest run of parts that is a name.
        for j in range(len(parts), i, -1):
            if "_".join(parts[i:j]) in known:
                columns.append(known["_".join(parts[i:j])])
                i = j
                break
        else:
            names = ", ".join(sorted(known))
            raise HeroCompatError(
                f"{where}: feature version {version!r} names features this toolkit does not "
                f"know ({parts[i]!r}); it reads versions made of {names} joined with '_'"
            )
    try:
        return FeatureSet.of(*columns)
    except FeatureSetError as e:
        raise HeroCompatError(f"{where}: feature version {version!r}: {e}") from None


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


class HeroCompatError(HeroError, ValueError):
    """A HERO database, or a request to read or write one, that cannot be honoured.

    The message starts with the file (and key) at fault.
    """


# --- optional packages -------------------------------------------------------------------------


def lmdb_modules() -> SimpleNamespace:
    """``lmdb``, ``msgpack``, ``msgpack_numpy`` and ``lz4.frame``, or a :class:`HeroCompatError`
    saying how to get them."""
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
        import msgpack_numpy
    except ImportError:
        missing.append("msgpack-numpy")
    try:
        import lz4.frame as lz4frame
    except ImportError:
        missing.append("lz4")
    if missing:
        raise HeroCompatError(
            f"HERO's LMDB databases need the optional packages {', '.join(missing)}: {INSTALL_HINT}"
        )
    return SimpleNamespace(
        lmdb=lmdb, msgpack=msgpack, msgpack_numpy=msgpack_numpy, lz4frame=lz4frame
    )


# --- values --------------------------------------------------------------------------------------


def encode_features(features: np.ndarray) -> bytes:
    """A feature value: msgpack ``{"features": array}``, the array encoded by
    ``msgpack_numpy.encode`` (what HERO's patched ``msgpack`` reads), ``(steps, 4352)``
    float16."""
    mods = lmdb_modules()
    value = {"features": np.ascontiguousarray(features)}
    return mods.msgpack.packb(value, default=mods.msgpack_numpy.encode, use_bin_type=True)


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
    msgpack = lmdb_modules().msgpack
    obj = _unpack(msgpack, raw, where)
    if "features" not in obj:
        raise HeroCompatError(f"{where}: no 'features' key (keys: {sorted(map(str, obj))})")
    return _ndarray(obj["features"], where)


def encode_sub_value(value: dict[str, Any]) -> bytes:
    """A subtitle value: ``lz4.frame.compress(msgpack.packb(value))``, as HERO's ``TxtLmdb``."""
    mods = lmdb_modules()
    return mods.lz4frame.compress(mods.msgpack.packb(value, use_bin_type=True))


def decode_sub_value(data: bytes | memoryview, where: str) -> dict[str, Any]:
    """Inverse of :func:`encode_sub_value`; errors name ``where``."""
    mods = lmdb_modules()
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
    lmdb = lmdb_modules().lmdb
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
