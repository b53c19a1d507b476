"""``hero import npz``: the HERO feature extractor's ``.npz`` folders -> a dataset.

The extractor (github.com/linjieli222/HERO_Video_Feature_Extractor) writes, per video::

    <dir>/resnet_features/<video>.npz     "features": (N, 2048) float16, L2-normalised rows
    <dir>/slowfast_features/<video>.npz   "features": (N', 2304) float16

(sub-folders allowed: the two files of a video have the same path under each folder). The two
models decode the video separately, so N and N' can differ by a step; like HERO's
``collect_video_feature_paths.py``/``convert_videodb.py`` we keep the first ``min(N, N')``
steps of both. A video's id is its file name without ``.npz``, which is what HERO keyed its
databases by; its duration is taken as ``steps × L`` (the extractor recorded no other).

Each video then goes through the same code as ``hero run`` after extraction
(:func:`pipelines.assemble.clip_records`): cut into clips, subtitles cleaned, aligned to the
steps and tokenized. Subtitles come from a folder of subtitle files matched by name
(``<video>.vtt``, ``<video>.srt``, ``<video>.sbv``, or ``<video>.<lang>.<ext>``), from a
HowTo100M caption JSON, or from a TVQA-style JSONL (TVR's ``tv_subtitles.jsonl``, keyed by
``vid_name``). TV subtitles are tokenized as ``"Speaker : text"`` by default, as HERO made its
``tv_subtitles.db`` (:func:`align.tokenizer.cue_text`); ``speaker_prefix`` decides. A video
whose files cannot be used (unreadable ``.npz``, a missing ``features`` array, a wrong width,
no partner file, a broken subtitle file or entry) is recorded in ``<dataset>/errors.jsonl`` and
the import goes on.
"""

from __future__ import annotations

import logging
import os
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from align.readers import SubtitleError, read_howto100m_json, read_tvqa_jsonl_entries
from align.tokenizer import CueTokenizer, TokenizerError
from extract.extractor import VideoFeatures
from hero_data.errors import HeroError
from hero_data.grid import check_clip_length
from hero_data.manifest import MANIFEST_NAME
from hero_data.progress import Progress
from hero_data.schema import RESNET_DIM, SLOWFAST_DIM
from hero_data.types import Cue, safe_id
from hero_data.writer import DatasetWriter
from pipelines.assemble import clip_records
from pipelines.inputs import SUBTITLE_EXTENSIONS, InputError, read_subtitle_cues

log = logging.getLogger(__name__)

__all__ = [
    "NpzError",
    "NpzImportOptions",
    "NpzImportSummary",
    "NpzPair",
    "SubtitleSource",
    "find_npz_pairs",
    "import_npz",
    "load_npz_features",
]

RESNET_FOLDER = "resnet_features"
SLOWFAST_FOLDER = "slowfast_features"
FEATURE_KEY = "features"


class NpzError(HeroError, ValueError):
    """An ``.npz`` file (or pair) that cannot be used; the message starts with the file."""


@dataclass(frozen=True)
class NpzPair:
    """One video's two feature files.

    Attributes:
        video_id: the file name without ``.npz``, made safe.
        resnet: ``resnet_features/<rel>.npz``.
        slowfast: ``slowfast_features/<rel>.npz``.
    """

    video_id: str
    resnet: Path
    slowfast: Path


@dataclass(frozen=True)
class NpzImportOptions:
    """How :func:`import_npz` builds the dataset.

    Attributes:
        subtitles: a folder of subtitle files (matched by name), a HowTo100M caption
            ``.json``, a TVQA-style ``.jsonl``, or ``None`` (no subtitles: every clip gets
            HERO's pseudo-cues).
        tokenizer: ``tokenizer.json`` or a folder with it or ``vocab.json`` + ``merges.txt``;
            ``None``: no token ids.
        speaker_prefix: tokenize a cue with a speaker as ``"Speaker : text"`` (HERO's TV
            subtitles); ``None``: yes for a TVQA ``.jsonl``, no otherwise. The speaker stays
            in the cue's own field either way.
        frame_interval: seconds per step the features were extracted at (``--clip_len`` of
            the extractor).
        clip_length: seconds per clip, a whole number of steps; ``None``: one clip per video.
        overwrite: replace an existing dataset at the output.
        rows_per_shard: clips per Arrow shard.
        progress: show a progress bar.
    """

    subtitles: str | None = None
    tokenizer: str | None = None
    speaker_prefix: bool | None = None
    frame_interval: float = 1.5
    clip_length: float | None = 60.0
    overwrite: bool = False
    rows_per_shard: int = 1024
    progress: bool = True


@dataclass
class NpzImportSummary:
    """What :func:`import_npz` did.

    Attributes:
        output: the dataset folder.
        videos: videos written.
        clips: clips written.
        steps: feature steps written.
        with_subtitles: videos written with subtitle cues.
        trimmed: videos whose two files differed in length (the longer one was cut).
        failed: ``(video id, message)`` of each video recorded in errors.jsonl.
        wall_s: seconds taken.
    """

    output: Path
    videos: int = 0
    clips: int = 0
    steps: int = 0
    with_subtitles: int = 0
    trimmed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    wall_s: float = 0.0


# --- finding and loading the files -------------------------------------------------------------


def _npz_files(folder: Path) -> dict[str, Path]:
    """``{path relative to folder without .npz: file}``, hidden files and folders skipped."""
    out = {}
    for path in folder.rglob("*.npz"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        out[rel.with_suffix("").as_posix()] = path
    return out


def find_npz_pairs(
    root: str | os.PathLike[str],
) -> tuple[list[NpzPair], list[tuple[str, Path, str]]]:
    """The videos under ``root``'s two feature folders, and those missing a partner file.

    Returns ``(pairs sorted by id, [(video id, the file found, message)])``. Raises
    :class:`InputError` when a folder is missing or two files would get the same video id.
    """
    base = Path(root)
    folders = {name: base / name for name in (RESNET_FOLDER, SLOWFAST_FOLDER)}
    for name, folder in folders.items():
        if not folder.is_dir():
            raise InputError(
                f"no {name}/ folder: expected the HERO extractor's layout "
                f"{RESNET_FOLDER}/<video>.npz and {SLOWFAST_FOLDER}/<video>.npz",
                str(base),
            )
    resnet, slowfast = _npz_files(folders[RESNET_FOLDER]), _npz_files(folders[SLOWFAST_FOLDER])
    ids: dict[str, list[str]] = defaultdict(list)
    for rel in sorted(set(resnet) | set(slowfast)):
        ids[safe_id(Path(rel).name)].append(rel)
    repeated = {vid: rels for vid, rels in ids.items() if len(rels) > 1}
    if repeated:
        shown = "; ".join(f"{vid!r}: {', '.join(rels)}" for vid, rels in list(repeated.items())[:5])
        raise InputError(
            f"{len(repeated)} video ids name more than one file ({shown}); HERO keys videos by "
            "file name, so import the folders separately",
            str(base),
        )
    pairs, unpaired = [], []
    for vid, (rel,) in sorted(ids.items()):
        if rel not in resnet:
            found = slowfast[rel]
            unpaired.append((vid, found, f"{found}: no {RESNET_FOLDER}/{rel}.npz for it"))
        elif rel not in slowfast:
            found = resnet[rel]
            unpaired.append((vid, found, f"{found}: no {SLOWFAST_FOLDER}/{rel}.npz for it"))
        else:
            pairs.append(NpzPair(vid, resnet[rel], slowfast[rel]))
    return pairs, unpaired


def _load(path: Path, dim: int, what: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if FEATURE_KEY not in npz.files:
                raise NpzError(
                    f"{path}: no {FEATURE_KEY!r} array (it holds {', '.join(npz.files) or 'none'})"
                )
            arr = npz[FEATURE_KEY]
    except NpzError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise NpzError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise NpzError(
            f"{path}: {FEATURE_KEY!r} is {arr.shape}, expected (steps, {dim}) {what} features"
        )
    if arr.dtype.kind != "f":
        raise NpzError(f"{path}: {FEATURE_KEY!r} is {arr.dtype}, expected float16 or float32")
    if not np.isfinite(arr).all():
        raise NpzError(f"{path}: {FEATURE_KEY!r} holds NaN or infinite values")
    return arr


def load_npz_features(pair: NpzPair, frame_interval: float) -> tuple[VideoFeatures, int]:
    """Both files of a video as float16 features of equal length, and the steps cut off.

    The longer file is cut to the shorter (HERO's rule); more than one step of difference is
    logged, as it suggests the files come from different runs.
    """
    resnet = _load(pair.resnet, RESNET_DIM, "ResNet-152")
    slowfast = _load(pair.slowfast, SLOWFAST_DIM, "SlowFast")
    n = min(len(resnet), len(slowfast))
    if n == 0:
        raise NpzError(f"{pair.slowfast}: no feature steps (ResNet {len(resnet)}, SlowFast 0)")
    cut = max(len(resnet), len(slowfast)) - n
    if cut > 1:
        log.warning(
            "%s: ResNet has %d steps, SlowFast %d; keeping the first %d",
            pair.video_id,
            len(resnet),
            len(slowfast),
            n,
        )
    features = VideoFeatures(
        {
            "resnet": np.ascontiguousarray(resnet[:n], dtype=np.float16),
            "slowfast": np.ascontiguousarray(slowfast[:n], dtype=np.float16),
        },
        frame_interval=frame_interval,
    )
    return features, cut


# --- subtitles ---------------------------------------------------------------------------------


class SubtitleSource:
    """A video id's cues, from a folder of subtitle files, a HowTo100M caption JSON or a
    TVQA-style JSONL (:attr:`tv`)."""

    def __init__(self, location: str | os.PathLike[str] | None) -> None:
        self.location = None if location is None else Path(location)
        self._captions: dict[str, list[Cue]] | None = None
        self._bad: dict[str, SubtitleError] = {}
        self._files: dict[str, list[tuple[int, int, str, Path]]] = defaultdict(list)
        self.tv = False
        if self.location is None:
            return
        if self.location.is_file():
            suffix = self.location.suffix.lower()
            if suffix == ".jsonl":
                self.tv = True
                self._captions, errors = read_tvqa_jsonl_entries(self.location)
                for error in errors:
                    if error.video_id is None:  # a line that names no video: nobody to fail
                        log.warning("%s (skipped)", error)
                    else:
                        self._bad[error.video_id] = error
            elif suffix == ".json":
                self._captions = read_howto100m_json(self.location)
            else:
                raise InputError(
                    "--subtitles takes a folder of subtitle files, a HowTo100M caption .json or "
                    "a TVQA-style .jsonl (tv_subtitles.jsonl)",
                    str(self.location),
                )
        elif self.location.is_dir():
            self._index(self.location)
        else:
            raise InputError("no such file or folder", str(self.location))

    def _index(self, folder: Path) -> None:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            ext = path.suffix.lower().lstrip(".")
            if ext not in SUBTITLE_EXTENSIONS or any(p.startswith(".") for p in rel.parts):
                continue
            stem = path.name[: -len(path.suffix)]
            order = SUBTITLE_EXTENSIONS.index(ext)
            self._files[safe_id(stem)].append((0, order, "", path))
            base, dot, tag = stem.rpartition(".")
            if dot and base and 2 <= len(tag) <= 8 and tag.replace("-", "").isalnum():
                self._files[safe_id(base)].append((1, order, tag.lower(), path))

    def cues(self, video_id: str) -> tuple[list[Cue], str | None]:
        """``(cues in source seconds, where they came from)``; ``([], None)`` when none.

        Raises :class:`SubtitleError` for a file that cannot be read as its format says.
        """
        if video_id in self._bad:
            raise self._bad[video_id]
        if self._captions is not None:
            if video_id in self._captions:
                return self._captions[video_id], str(self.location)
            return [], None
        candidates = self._files.get(video_id)
        if not candidates:
            return [], None
        path = min(candidates)[3]  # exact name first, then vtt > srt > sbv, then language tag
        return read_subtitle_cues(str(path)), str(path)


# --- the import --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NpzVideo:
    """A video as its ``.npz`` pair tells it: what :func:`pipelines.assemble.clip_records`
    needs, and nothing more. The extractor recorded no frame size, frame rate or codec, so
    none is given (a clip record holds none of them either); the duration is ``steps × L``.

    Attributes:
        uri: the SlowFast file (a clip record's ``source``).
        video_id: the file name without ``.npz``, made safe.
        duration: seconds, ``steps × L``.
    """

    uri: str
    video_id: str
    duration: float

    @classmethod
    def of(cls, pair: NpzPair, features: VideoFeatures) -> NpzVideo:
        return cls(str(pair.slowfast), pair.video_id, features.num_steps * features.frame_interval)


def _dataset_config(
    options: NpzImportOptions, tokenizer: CueTokenizer | None, speaker_prefix: bool
) -> dict[str, Any]:
    record = None
    if tokenizer is not None:
        record = {
            "sha256": tokenizer.sha256,
            "vocab_size": tokenizer.vocab_size,
            "kind": "tokenize",
        }
        if tokenizer.speaker_prefix:
            record["speaker_prefix"] = True
    return {
        "frame_interval": options.frame_interval,
        "clip_length": options.clip_length,
        "imported_from": {"format": "hero-npz", "subtitles": options.subtitles is not None},
        # how cue text becomes token ids, for whoever tokenizes this dataset's cues later
        "speaker_prefix": speaker_prefix,
        "tokenizer": record,
    }


def import_npz(
    root: str | os.PathLike[str], output: str | os.PathLike[str], options: NpzImportOptions
) -> NpzImportSummary:
    """Turn the extractor's feature folders under ``root`` into a dataset at ``output``.

    Every video ends up in exactly one of the dataset's shards or ``errors.jsonl``.
    """
    started = time.monotonic()
    if not options.overwrite and (Path(output) / MANIFEST_NAME).exists():
        raise InputError("already holds a dataset; give --overwrite to replace it", str(output))
    if options.clip_length is not None:
        check_clip_length(options.clip_length, options.frame_interval)
    tokenizer = None
    if options.tokenizer:
        try:
            tokenizer = CueTokenizer.from_path(options.tokenizer)
        except TokenizerError as e:
            raise InputError(str(e)) from None
    pairs, unpaired = find_npz_pairs(root)
    subtitles = SubtitleSource(options.subtitles)
    speaker_prefix = subtitles.tv if options.speaker_prefix is None else options.speaker_prefix
    if tokenizer is not None:
        tokenizer = tokenizer.with_speaker_prefix(speaker_prefix)
    summary = NpzImportSummary(Path(output))
    mode = "overwrite" if options.overwrite else "create"
    config = _dataset_config(options, tokenizer, speaker_prefix)
    with (
        DatasetWriter(
            output, config, mode=mode, max_rows_per_shard=options.rows_per_shard
        ) as writer,
        Progress(force_terminal=None if options.progress else False) as progress,
    ):

        def fail(video_id: str, source: str, stage: str, error: BaseException) -> None:
            log.error("%s: %s", video_id, error)
            writer.record_failure(video_id=video_id, source=source, stage=stage, error=error)
            summary.failed.append((video_id, str(error)))

        for video_id, found, message in unpaired:
            fail(video_id, str(found), "import", NpzError(message))
        bar = progress.add(f"import {Path(root).name}", total=len(pairs))
        for pair in pairs:
            progress.advance(bar)
            try:
                features, cut = load_npz_features(pair, options.frame_interval)
            except NpzError as e:
                fail(pair.video_id, str(pair.slowfast), "import", e)
                continue
            try:
                cues, cue_source = subtitles.cues(pair.video_id)
            except (SubtitleError, OSError, ValueError) as e:
                fail(pair.video_id, str(pair.slowfast), "subtitles", e)
                continue
            try:
                records, _ = clip_records(
                    NpzVideo.of(pair, features),
                    features,
                    cues,
                    clip_length=options.clip_length,
                    tokenizer=tokenizer,
                )
            except ValueError as e:
                fail(pair.video_id, cue_source or str(pair.slowfast), "align", e)
                continue
            writer.write_video(records)
            summary.videos += 1
            summary.clips += len(records)
            summary.steps += features.num_steps
            summary.with_subtitles += cue_source is not None
            summary.trimmed += cut > 0
        progress.done(bar)
    summary.wall_s = time.monotonic() - started
    return summary
