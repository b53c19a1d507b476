"""``hero import hero-lmdb``: the original HERO code's LMDB databases -> a dataset.

Cue times are not part of HERO's alignment: our exports keep them (the ``sub`` list and the
``hero_toolkit`` map), and for databases without them, cue spans are rebuilt from the steps each
cue covers (:func:`cues_from_sub_value`). The layout and the value codec are
:mod:`pipelines.interop.lmdb_codec`'s; docs/hero-compat.md documents every field.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hero_data.features import DEFAULT_FEATURES, FeatureSet
from hero_data.grid import check_clip_length, num_steps, step_floor, steps_covering
from hero_data.manifest import MANIFEST_NAME
from hero_data.progress import Progress
from hero_data.schema import ClipRecord
from hero_data.types import Clip, Cue, check_id
from hero_data.writer import DatasetWriter
from pipelines.interop.lmdb_codec import (
    EXTRA_KEY,
    ID2NFRAME,
    ID2NFRAME_CONVERT,
    KEYS_KEY,
    MAX_CLIP_INDEX,
    META,
    SUB_DB,
    UNKNOWN_TEXT,
    VIDEO_DB,
    HeroCompatError,
    decode_features,
    decode_sub_value,
    feature_version,
    features_of_version,
    lmdb_modules,
    open_lmdb_readonly,
)

log = logging.getLogger(__name__)

__all__ = [
    "ImportedCues",
    "LmdbImportOptions",
    "LmdbImportSummary",
    "cues_from_sub_value",
    "import_hero_lmdb",
    "refuse_existing_dataset",
]

_CLIP_KEY = re.compile(r"^(?P<video>.+)\.(?P<index>\d+)$")
_FEATURE_DB = re.compile(
    r"^(?P<version>.+?)_(?P<interval>\d+(?:\.\d+)?)(?P<compressed>_compressed)?$"
)


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
            f"{feature_version(DEFAULT_FEATURES)}_1.5) in this folder"
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
            f"{feature_db}: cannot tell the frame interval from the folder name (expected "
            f"<version>_<seconds>, e.g. {feature_version(DEFAULT_FEATURES)}_1.5); give it "
            "explicitly"
        )
    return float(m.group("interval"))


def _features_of(feature_db: Path) -> FeatureSet:
    """The feature set the folder's name says (``<vfeat_version>_<seconds>``: HERO's
    ``resnet_slowfast_1.5``, VALUE's ``clip-vit_slowfast_1.5``, ...). A name without that form
    (a folder renamed by hand, whose interval is given) holds HERO's set, as before sets were
    named; a version with a part this toolkit does not know is refused."""
    m = _FEATURE_DB.fullmatch(feature_db.name)
    if m is None:
        return DEFAULT_FEATURES
    return features_of_version(m.group("version"), str(feature_db))


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
    lmdb = lmdb_modules().lmdb
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
    features: FeatureSet

    def read(self, key: str) -> tuple[ClipRecord, ImportedCues | None]:
        """Clip ``key`` as a record, with its cues when the subtitle database has it."""
        where = f"{self.feature_db} key {key!r}"
        raw = self.txn.get(key.encode("utf-8"))
        if raw is None:
            raise HeroCompatError(f"{where}: missing")
        feats = decode_features(raw, where)
        if feats.ndim != 2 or feats.shape[1] != self.features.dim:
            raise HeroCompatError(
                f"{where}: features are {feats.shape}, expected (steps, {self.features.dim}) "
                f"({self.features.describe()}, the folder name's feature version)"
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
        columns, lo = {}, 0
        for c in self.features.columns:  # side by side in set order, as the export wrote them
            columns[c.name] = np.ascontiguousarray(half[:, lo : lo + c.dim])
            lo += c.dim
        try:
            record = ClipRecord(
                clip=clip,
                source=source,
                frame_interval=self.interval,
                features=columns,
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
    folder (``id2nframe.json`` + ``<vfeat_version>_<L>/``; the version names the feature set,
    :func:`~pipelines.interop.lmdb_codec.features_of_version`). A clip that cannot be read fails
    its whole video, which is recorded in ``errors.jsonl``; the rest go on. A database that
    cannot be opened (truncated, not LMDB) stops the import with an error naming its file.
    """
    lmdb = lmdb_modules().lmdb
    started = time.monotonic()
    refuse_existing_dataset(output, options.overwrite)
    video_db, feature_db, sub_db = _locate(Path(source), options)
    interval = _interval_of(feature_db, options.frame_interval)
    features = _features_of(feature_db)
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
                output,
                config,
                features=features,
                mode=mode,
                max_rows_per_shard=options.rows_per_shard,
            ) as writer,
            env.begin(buffers=True) as txn,
            sub_env.begin(buffers=True) if sub_env is not None else nullcontext() as sub_txn,
            Progress(force_terminal=None if options.progress else False) as progress,
        ):
            src = _Source(
                feature_db,
                sub_db,
                txn,
                sub_txn,
                id2nframe,
                interval,
                options.clip_length,
                decode,
                features,
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
