"""``hero export hero-lmdb``: a dataset -> the original HERO code's LMDB databases.

The layout and the value codec are :mod:`pipelines.interop.lmdb_codec`'s; docs/hero-compat.md
documents every field.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hero_data import __version__
from hero_data.manifest import fsync_dir
from hero_data.progress import Progress
from hero_data.reader import HeroDataset
from hero_data.schema import ClipRecord
from pipelines.interop.lmdb_codec import (
    CLIP_IDS,
    EXPORT_INFO,
    EXTRA_KEY,
    ID2NFRAME,
    META,
    PSEUDO_STEPS,
    SUB_DB,
    VID2LEN,
    VID2MAX,
    VIDEO_DB,
    HeroCompatError,
    encode_features,
    encode_sub_value,
    feature_version,
    lmdb_modules,
)

log = logging.getLogger(__name__)

__all__ = ["ExportOptions", "ExportSummary", "export_hero_lmdb", "meta_from_tokenizer"]

_TXN_BYTES = 64 << 20  # values per LMDB write transaction (memory held while writing)
_TXN_ENTRIES = 2000
_ROLES = {
    "BOS": "bos",
    "EOS": "eos",
    "SEP": "sep",
    "CLS": "cls",
    "PAD": "pad",
    "MASK": "mask",
    "UNK": "unk",
}


class _LmdbWriter:
    """Puts key/value pairs into a new LMDB, a bounded batch per transaction, growing the map
    when it is full."""

    def __init__(self, path: Path, map_size: int) -> None:
        self._lmdb = lmdb_modules().lmdb
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


def _page_bytes(size: int, page: int = 4096) -> int:
    """Bytes a value of ``size`` takes in an LMDB (overflow pages plus a header)."""
    return (size // page + 2) * page


@dataclass(frozen=True)
class ExportOptions:
    """How :func:`export_hero_lmdb` writes.

    Attributes:
        frame_interval: the interval as HERO's config will spell it (``vfeat_interval``): it
            names the feature folder (``<vfeat_version>_<this>``) and must equal the dataset's
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
    """The ``<L>`` of ``<vfeat_version>_<L>``: what HERO's ``f"{vfeat_interval}"`` prints.

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
    lmdb_modules()
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
    version = feature_version(ds.feature_set)  # resnet_slowfast for HERO's set
    feature_name = f"{version}_{spelling}"
    steps = [int(n) for n in ds.table(["num_frames"]).column("num_frames").to_pylist()]
    steps_total = sum(steps)
    estimate = sum(_page_bytes(n * ds.feature_dim * 2 + 128) for n in steps)
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
                    value = encode_features(record.visual())
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
            "features": ds.feature_set.to_json(),
            "hero_config": {
                "vfeat_db": VIDEO_DB,
                "vfeat_version": version,
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
