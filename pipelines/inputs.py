"""What a ``hero run`` processes: videos, their subtitle files, and where both come from.

Inputs come from a folder (:func:`list_folder`), a manifest (:func:`read_manifest`, CSV or
JSONL) or the HowTo100M recipe (:func:`howto100m_inputs`: a folder of videos plus the caption
JSON). Every location is a local path or an fsspec URL (``s3://``, ``gs://``, ``memory://``...).
:func:`check_inputs` runs before any work starts: video ids must be unique.

Folder rules (:func:`list_folder`):

- Videos: extensions in :data:`VIDEO_EXTENSIONS`; subtitles: :data:`SUBTITLE_EXTENSIONS`
  (case-insensitive). Files and folders whose name starts with ``.`` are skipped (macOS's
  ``._clip.mp4`` resource forks, ``.git``).
- A video's id is its path relative to the root, without extension, ``/`` -> ``__``, made safe
  with :func:`hero_data.types.safe_id`: ``a b/c?.mp4`` -> ``a_b__c_``. Two files with the same
  name in different folders get different ids; two names that only become equal when made safe
  (``a b/c.mp4``, ``a_b/c.mp4``) are caught by :func:`check_inputs`.
- A subtitle belongs to the video in the same folder with the same path without extension
  (stems compare case-sensitively, extensions not): ``a/clip.mp4`` <-> ``a/clip.vtt``. When
  there is none, a ``a/clip.<lang>.<ext>`` file is used (``<lang>`` a language tag like ``en``,
  ``pt-BR``, ``en-orig``). Among several candidates the choice is deterministic: an exact stem
  match first; then, for language-tagged files, the tag equal to ``subtitle_language``, then
  one with the same primary language (``en-US`` for ``en``); then format order vtt, srt, sbv;
  then tag and path in alphabetical order. Candidates not chosen are reported in
  ``Listing.extra_subtitles``; subtitle files that belong to no video in
  ``Listing.orphan_subtitles``. Neither is an error.

Language filtering (:func:`howto100m_inputs`) uses ``py3langid`` (0.4, BSD): a pure-Python
wheel of 4.6 MB that carries its naive Bayes model (``py3langid/data/model.npz.xz``, 97
languages) inside, needs only numpy, is deterministic and gives calibrated probabilities
(``norm_probs``), about 0.6 ms for 2,000 characters. The alternatives were worse here:
``langid`` 1.1.6 (the original, same model) ships only a 2016 sdist that must be built;
``langdetect`` is an sdist, slower, and random unless seeded; ``lingua-language-detector`` is
accurate but its wheel is 96 MB; ``fasttext`` ships no model (``lid.176.bin`` is a download).
It is imported only when a language filter is asked for.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import logging
import os
import posixpath
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from align.captions import CaptionIndex
from align.readers import ReadReport, SubtitleError, decode_subtitles, parse_cues_report
from hero_data.errors import HeroError
from hero_data.types import Cue, Tagged, check_id, safe_id

log = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_COLUMNS",
    "SUBTITLE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "InputError",
    "Listing",
    "VideoInput",
    "check_inputs",
    "detect_language",
    "howto100m_inputs",
    "list_folder",
    "load_inputs",
    "open_local",
    "read_manifest",
    "read_subtitle_cues",
    "read_subtitle_cues_report",
]

VIDEO_EXTENSIONS = ("mp4", "mkv", "mov", "webm", "avi", "m4v", "mpg", "mpeg", "flv", "ts")
"""Extensions (lower case, no dot) that :func:`list_folder` takes for videos."""

SUBTITLE_EXTENSIONS = ("vtt", "srt", "sbv")
"""Subtitle extensions, in the order :func:`list_folder` prefers them."""

MANIFEST_COLUMNS = ("video", "subtitle", "video_id")
"""Columns (CSV) or keys (JSONL) of a manifest; only ``video`` is required."""

LANGUAGE_PACKAGE = "py3langid"
"""The language detector :func:`detect_language` imports (see the module docstring)."""

_LANG_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_MANIFEST_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_DUPLICATES_SHOWN = 5
MAX_PATH_CHARS = 4096
"""Longest video or subtitle path (or URL) a manifest may give: Linux's ``PATH_MAX``."""
_SHOWN_CHARS = 80  # of a bad value, in an error message
_COPY_BUFFER = 8 << 20


class InputError(HeroError, ValueError):
    """Inputs that cannot be used as given: names the file (and line) when there is one.

    Attributes:
        problem: what is wrong, without the location.
        source: the manifest, folder or file concerned, or ``None``.
        line: 1-based line in ``source``, or ``None``.
    """

    def __init__(self, problem: str, source: str | None = None, line: int | None = None) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        where = source if line is None or source is None else f"{source}:{line}"
        super().__init__(f"{where}: {problem}" if where else problem)

    def __reduce__(self) -> tuple[Any, ...]:  # keep pickling (Ray moves errors between workers)
        return (type(self), (self.problem, self.source, self.line))


@dataclass(frozen=True)
class VideoInput(Tagged):
    """One video to process (``to_dict``/``from_dict`` from :class:`hero_data.types.Tagged`).

    Attributes:
        video_id: unique in the run, safe as a file-name part (:func:`check_id`).
        video_uri: local path or fsspec URL of the video file.
        subtitle_uri: its subtitle file (``.vtt``, ``.srt``, ``.sbv``), or ``None``.
        caption_key: HowTo100M: the key of its entry in the caption JSON (look its cues up
            in the :class:`align.captions.CaptionIndex` that :func:`howto100m_inputs`
            returns), or ``None``.
    """

    TYPE: ClassVar[str] = "video_input"

    video_id: str
    video_uri: str
    subtitle_uri: str | None = None
    caption_key: str | None = None

    def __post_init__(self) -> None:
        try:
            check_id("video id", self.video_id)
        except ValueError as e:
            raise InputError(str(e), self.video_uri) from None
        if not isinstance(self.video_uri, str) or not self.video_uri:
            raise InputError(f"video {self.video_id!r}: empty video path")
        if self.subtitle_uri is not None and (
            not isinstance(self.subtitle_uri, str) or not self.subtitle_uri
        ):
            raise InputError(f"video {self.video_id!r}: subtitle must be a path or None")
        if self.caption_key is not None and not isinstance(self.caption_key, str):
            raise InputError(f"video {self.video_id!r}: caption key must be a string or None")


@dataclass(frozen=True)
class Listing:
    """What :func:`list_folder` found.

    Attributes:
        inputs: the videos, sorted by path.
        orphan_subtitles: subtitle files that belong to no video (URIs, sorted).
        extra_subtitles: subtitle files of a video that has several, not chosen (URIs, sorted).
    """

    inputs: tuple[VideoInput, ...]
    orphan_subtitles: tuple[str, ...] = ()
    extra_subtitles: tuple[str, ...] = ()


# --- locations ------------------------------------------------------------------------------


def _is_url(path: str) -> bool:
    return "://" in path or "::" in path


def _extension(name: str) -> str:
    """Lower-case extension of a file name without the dot, ``""`` when there is none."""
    return posixpath.splitext(name)[1].lower().lstrip(".")


def _local_path(uri: str) -> str | None:
    """The local path of ``uri`` (a plain path or a ``file://`` URL), else ``None``."""
    if not _is_url(uri):
        return uri
    fs, path = url_to_fs(uri)
    return path if isinstance(fs, LocalFileSystem) else None


@contextlib.contextmanager
def open_local(uri: str, *, tmp_dir: str | None = None) -> Iterator[str]:
    """A local, seekable copy of ``uri`` for as long as the ``with`` block runs.

    Local paths (and ``file://`` URLs) are yielded as they are. Anything else is downloaded
    through fsspec into a temporary file in ``tmp_dir`` (default: the system's), keeping the
    extension (FFmpeg guesses formats from it), and deleted afterwards. The decoder needs a
    local file: it seeks, and FFmpeg cannot read fsspec URLs.
    """
    local = _local_path(uri)
    if local is not None:
        yield local
        return
    fd, tmp = tempfile.mkstemp(prefix="hero-", suffix=posixpath.splitext(uri)[1][:16], dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out, fsspec.open(uri, "rb") as src:
            shutil.copyfileobj(src, out, _COPY_BUFFER)
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _read_bytes(uri: str) -> bytes:
    local = _local_path(uri)
    with open(local, "rb") if local is not None else fsspec.open(uri, "rb") as f:
        return f.read()


def read_subtitle_cues_report(
    uri: str, fmt: str | None = None, *, strict: bool = False
) -> tuple[list[Cue], ReadReport]:
    """Cues of one subtitle file, local or remote, sorted by start (seconds), and what was
    skipped or repaired to read them.

    Same rules and errors as :func:`align.readers.read_cues_report` (the bytes are decoded the
    same way, then :func:`align.readers.parse_cues_report`): ``fmt`` defaults to the extension;
    malformed cues are skipped or repaired (``strict``: the first raises); a file from which no
    cue can be read raises :class:`SubtitleError` naming ``uri`` and the line; a missing file
    raises ``FileNotFoundError``.
    """
    if fmt is None:
        fmt = _extension(uri)
        if fmt not in SUBTITLE_EXTENSIONS:
            raise SubtitleError(
                uri,
                None,
                f"unsupported subtitle extension {('.' + fmt) if fmt else '(none)'!r}; "
                "expected .vtt, .srt or .sbv",
            )
    text = decode_subtitles(_read_bytes(uri), uri, strict=strict)
    return parse_cues_report(text, fmt, uri, strict=strict)


def read_subtitle_cues(uri: str, fmt: str | None = None, *, strict: bool = False) -> list[Cue]:
    """The cues of :func:`read_subtitle_cues_report`."""
    return read_subtitle_cues_report(uri, fmt, strict=strict)[0]


# --- folders ----------------------------------------------------------------------------------


def _relative(path: str, base: str) -> str | None:
    prefix = base.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def _split(rel: str) -> tuple[str, str, str]:
    """(folder, stem, extension) of a relative path."""
    folder, name = posixpath.split(rel)
    stem, ext = posixpath.splitext(name)
    return folder, stem, ext.lower().lstrip(".")


def _folder_id(rel: str) -> str:
    folder, stem, _ = _split(rel)
    joined = f"{folder}/{stem}" if folder else stem
    return safe_id(joined.replace("/", "__"))


def _primary(tag: str) -> str:
    return tag.lower().replace("_", "-").split("-")[0]


def _pick_order(rel: str, tag: str, language: str | None) -> tuple[int, int, str, str]:
    if language is None:
        rank = 2
    elif tag.lower().replace("_", "-") == language.lower().replace("_", "-"):
        rank = 0
    elif _primary(tag) == _primary(language):
        rank = 1
    else:
        rank = 2
    return rank, SUBTITLE_EXTENSIONS.index(_split(rel)[2]), tag.lower(), rel


def list_folder(
    root: str, *, recursive: bool = True, subtitle_language: str | None = None
) -> Listing:
    """Videos under ``root`` (a local folder or fsspec URL) with their subtitle files.

    Matching and id rules are in the module docstring; ``subtitle_language`` (e.g. ``"en"``)
    breaks ties between language-tagged subtitles. Raises :class:`InputError` when ``root`` is
    not a folder. Run :func:`check_inputs` on the result before starting work.
    """
    fs, base = url_to_fs(root)
    if not fs.exists(base):
        raise InputError("no such folder", root)
    if not fs.isdir(base):
        raise InputError("not a folder (give a folder of videos or a .csv/.jsonl manifest)", root)
    local = isinstance(fs, LocalFileSystem)
    if recursive:
        names: Iterable[str] = fs.find(base)
    else:
        names = [e["name"] for e in fs.ls(base, detail=True) if e.get("type") == "file"]

    def uri(rel: str) -> str:
        return f"{base.rstrip('/')}/{rel}" if local else f"{root.rstrip('/')}/{rel}"

    videos: list[str] = []
    subtitles: list[str] = []
    for name in names:
        rel = _relative(name, base)
        if rel is None or any(part.startswith(".") for part in rel.split("/")):
            continue
        ext = _extension(rel)
        if ext in VIDEO_EXTENSIONS:
            videos.append(rel)
        elif ext in SUBTITLE_EXTENSIONS:
            subtitles.append(rel)
    videos.sort()

    by_stem: dict[tuple[str, str], list[str]] = defaultdict(list)
    for rel in subtitles:
        folder, stem, _ = _split(rel)
        by_stem[(folder, stem)].append(rel)

    chosen: dict[str, str] = {}  # video rel -> subtitle rel
    claimed: set[str] = set()
    for rel in videos:
        folder, stem, _ = _split(rel)
        candidates = by_stem.get((folder, stem))
        if candidates:
            chosen[rel] = min(candidates, key=lambda s: _pick_order(s, "", None))
            claimed.update(candidates)

    tagged: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for rel in subtitles:
        folder, stem, _ = _split(rel)
        base_stem, dot, tag = stem.rpartition(".")
        if rel not in claimed and dot and base_stem and _LANG_TAG.match(tag):
            tagged[(folder, base_stem)].append((tag, rel))
    for rel in videos:
        folder, stem, _ = _split(rel)
        candidates_tagged = tagged.get((folder, stem))
        if not candidates_tagged:
            continue
        claimed.update(s for _, s in candidates_tagged)
        if rel not in chosen:
            _, chosen[rel] = min(
                candidates_tagged, key=lambda t: _pick_order(t[1], t[0], subtitle_language)
            )

    inputs = tuple(
        VideoInput(_folder_id(rel), uri(rel), uri(chosen[rel]) if rel in chosen else None)
        for rel in videos
    )
    used = set(chosen.values())
    orphans = tuple(uri(s) for s in sorted(set(subtitles) - claimed))
    extras = tuple(uri(s) for s in sorted(claimed - used))
    if not inputs:
        log.warning("%s: no video files (%s)", root, ", ".join(VIDEO_EXTENSIONS))
    if orphans:
        log.warning(
            "%s: %d subtitle files belong to no video, e.g. %s", root, len(orphans), orphans[0]
        )
    if extras:
        log.info(
            "%s: %d alternative subtitle files not used, e.g. %s", root, len(extras), extras[0]
        )
    return Listing(inputs, orphans, extras)


# --- manifests --------------------------------------------------------------------------------


def _manifest_base(path: str) -> str:
    """Where relative manifest entries start: the folder (local, absolute) or the URL prefix
    up to the last ``/`` (remote)."""
    if _is_url(path):
        return path[: path.rfind("/") + 1]
    return os.path.dirname(os.path.abspath(path))


def _resolve(value: str, base: str) -> str:
    if _is_url(value) or os.path.isabs(value):
        return value
    if not _is_url(base):
        return os.path.normpath(os.path.join(base, value))
    head, sep, rest = base.rpartition("://")
    return f"{head}{sep}{posixpath.normpath(posixpath.join(rest, value))}"


def _file_stem(uri: str) -> str:
    return posixpath.splitext(posixpath.basename(uri.rstrip("/")))[0]


def _manifest_id(uri: str) -> str:
    """Id of a manifest row without ``video_id``: the file's stem made safe."""
    return safe_id(_file_stem(uri))


def _shown(value: Any) -> str:
    """``repr(value)``, cut to a readable length (a manifest value may be megabytes long)."""
    try:
        text = repr(value)
    except RecursionError:  # a list nested nearly as deep as the JSON decoder allows
        return f"a deeply nested {type(value).__name__}"
    return text if len(text) <= _SHOWN_CHARS else f"{text[: _SHOWN_CHARS - 5]}...{text[-2:]}"


def _row(
    path: str, line: int, base: str, values: dict[str, Any], ids: dict[str, int]
) -> VideoInput:
    """One manifest row (``values`` has only known keys) as a :class:`VideoInput`."""
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise InputError(f"{key!r} must be a string, got {_shown(value)}", path, line)
        if isinstance(value, str) and len(value) > MAX_PATH_CHARS:
            raise InputError(
                f"{key!r} is {len(value):,} characters long, more than a path may be "
                f"({MAX_PATH_CHARS:,}): {_shown(value)}",
                path,
                line,
            )
    video = (values.get("video") or "").strip()
    if not video:
        raise InputError("empty 'video'", path, line)
    subtitle = (values.get("subtitle") or "").strip() or None
    given_id = (values.get("video_id") or "").strip()
    if subtitle is not None and _extension(subtitle) not in SUBTITLE_EXTENSIONS:
        raise InputError(
            f"subtitle {subtitle!r} has an unsupported extension; expected .vtt, .srt or .sbv",
            path,
            line,
        )
    video_uri = _resolve(video, base)
    if given_id:
        try:
            video_id = check_id("video_id", given_id)
        except ValueError:
            raise InputError(
                f"video_id {_shown(given_id)} is not a safe id: use 1-200 letters, digits, "
                "'_', '-' or '.', not starting with '.'",
                path,
                line,
            ) from None
    else:
        video_id = _manifest_id(video_uri)
    if video_id in ids:
        raise InputError(
            f"video id {video_id!r} is already used on line {ids[video_id]}"
            + ("" if given_id else "; give each video its own 'video_id'"),
            path,
            line,
        )
    ids[video_id] = line
    return VideoInput(video_id, video_uri, _resolve(subtitle, base) if subtitle else None)


def _warn_unknown(path: str, unknown: dict[str, int]) -> None:
    for key, line in list(unknown.items())[:_DUPLICATES_SHOWN]:
        log.warning(
            "%s:%d: unknown column %s ignored (known: %s)",
            path,
            line,
            _shown(key),
            ", ".join(MANIFEST_COLUMNS),
        )
    if len(unknown) > _DUPLICATES_SHOWN:
        log.warning("%s: %d more unknown columns ignored", path, len(unknown) - _DUPLICATES_SHOWN)


def _read_csv(path: str, text: str, base: str) -> list[VideoInput]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    header_line = 0
    out: list[VideoInput] = []
    ids: dict[str, int] = {}
    line = 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header, header_line = [cell.strip() for cell in row], start
                dupes = sorted(k for k, n in Counter(header).items() if n > 1)
                if dupes:
                    raise InputError(f"repeated columns {_shown(dupes)}", path, start)
                if "video" not in header:
                    raise InputError(
                        f"no 'video' column in the header {_shown(header)}; columns are "
                        f"{', '.join(MANIFEST_COLUMNS)} (only 'video' is required)",
                        path,
                        start,
                    )
                _warn_unknown(path, {k: start for k in header if k not in MANIFEST_COLUMNS})
                continue
            if len(row) > len(header):
                raise InputError(f"{len(row)} fields but the header has {len(header)}", path, start)
            values = {k: v for k, v in zip(header, row, strict=False) if k in MANIFEST_COLUMNS}
            out.append(_row(path, start, base, values, ids))
    except csv.Error as e:
        raise InputError(f"bad CSV: {e}", path, line) from None
    if header is None:
        raise InputError("empty manifest (a CSV manifest needs a header with 'video')", path)
    if not out:
        raise InputError("no rows after the header", path, header_line)
    return out


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (``json.loads`` keeps the last)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return out


def _read_jsonl(path: str, text: str, base: str) -> list[VideoInput]:
    out: list[VideoInput] = []
    ids: dict[str, int] = {}
    unknown: dict[str, int] = {}
    for no, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw, object_pairs_hook=_unique_keys)
        except _RepeatedKey as e:
            raise InputError(f"key {_shown(e.key)} given twice in one object", path, no) from None
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", path, no) from None
        except (ValueError, RecursionError) as e:
            raise InputError(f"invalid JSON: {e}", path, no) from None
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", path, no)
        if "video" not in obj:
            raise InputError(f"no 'video' key (keys: {_shown(sorted(obj))})", path, no)
        for key in obj:
            if key not in MANIFEST_COLUMNS:
                unknown.setdefault(key, no)
        values = {k: v for k, v in obj.items() if k in MANIFEST_COLUMNS}
        out.append(_row(path, no, base, values, ids))
    _warn_unknown(path, unknown)
    if not out:
        raise InputError("empty manifest", path)
    return out


def read_manifest(path: str) -> list[VideoInput]:
    """The videos a CSV or JSONL manifest lists, in file order.

    CSV: a header naming columns of :data:`MANIFEST_COLUMNS` (``video`` required), one video
    per row. JSONL: one object per line with the same keys. Blank lines are skipped; unknown
    columns are logged and ignored. Relative paths are resolved against the manifest's folder
    (or URL prefix for a remote manifest); absolute paths and URLs are kept. ``video_id``
    defaults to the video file's stem made safe; a given one must pass :func:`check_id`.
    Errors raise :class:`InputError` with the manifest and line.
    """
    kind = _MANIFEST_SUFFIXES.get(posixpath.splitext(path)[1].lower())
    if kind is None:
        raise InputError("unknown manifest format: use a .csv or .jsonl file", path)
    try:
        data = _read_bytes(path)
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a manifest file", path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text ({e.reason})", path, line) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    base = _manifest_base(path)
    return _read_csv(path, text, base) if kind == "csv" else _read_jsonl(path, text, base)


def load_inputs(source: str, *, subtitle_language: str | None = None) -> Listing:
    """:func:`read_manifest` for a ``.csv``/``.jsonl`` file, else :func:`list_folder`."""
    if posixpath.splitext(source)[1].lower() in _MANIFEST_SUFFIXES:
        return Listing(tuple(read_manifest(source)))
    return list_folder(source, subtitle_language=subtitle_language)


def check_inputs(inputs: Sequence[VideoInput]) -> None:
    """Raise :class:`InputError` unless every video id is unique (call before any work).

    The message lists the first few repeated ids with their files. Ids themselves are checked
    by :class:`VideoInput` (manifests name the line of an unsafe one).
    """
    sources: dict[str, list[str]] = defaultdict(list)
    for item in inputs:
        sources[item.video_id].append(item.video_uri)
    repeated = [(vid, uris) for vid, uris in sources.items() if len(uris) > 1]
    if repeated:
        shown = "; ".join(
            f"{vid!r}: {', '.join(uris[:3])}{' ...' if len(uris) > 3 else ''}"
            for vid, uris in repeated[:_DUPLICATES_SHOWN]
        )
        more = len(repeated) - _DUPLICATES_SHOWN
        raise InputError(
            f"{len(repeated)} video ids are used by more than one video: {shown}"
            + (f"; and {more} more" if more > 0 else "")
            + ". Rename the files, or list them in a manifest with a 'video_id' column"
        )
    uri_counts = Counter(item.video_uri for item in inputs)
    twice = [uri for uri, n in uri_counts.items() if n > 1]
    if twice:
        log.warning(
            "%d videos are listed more than once under different ids, e.g. %s", len(twice), twice[0]
        )


# --- HowTo100M --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _language_identifier() -> Any:
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        raise InputError(
            f"language filtering needs {LANGUAGE_PACKAGE}: pip install {LANGUAGE_PACKAGE}"
        ) from None
    if not hasattr(LanguageIdentifier, "from_model_file"):
        raise InputError(
            f"language filtering needs {LANGUAGE_PACKAGE}>=0.4: pip install -U {LANGUAGE_PACKAGE}"
        )
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability 0..1) of ``text``'s language, by py3langid.

    Raises :class:`InputError` when py3langid is not installed. Loading the model takes about
    two seconds, once per process.
    """
    lang, confidence = _language_identifier().classify(text)
    return str(lang), float(confidence)


def _detector_name() -> str:
    """Names the language detector in the caption index, so that an index made with another
    detector (or another py3langid) is not reused."""
    try:
        from importlib.metadata import version

        found = version(LANGUAGE_PACKAGE)
    except Exception:  # not installed: detect_language has already said so
        found = "?"
    return f"{detect_language.__module__}.{detect_language.__qualname__} {LANGUAGE_PACKAGE}={found}"


def howto100m_inputs(
    videos_root: str,
    captions_json: str,
    *,
    language: str | None = "en",
    min_confidence: float = 0.5,
    cache_dir: str | None = None,
    strict: bool = False,
) -> tuple[list[VideoInput], CaptionIndex, list[dict[str, Any]]]:
    """HowTo100M: videos under ``videos_root``, cues from its caption JSON.

    Returns ``(inputs, captions, excluded)``. ``captions`` is the
    :class:`align.captions.CaptionIndex` of ``captions_json`` (built once, streamed, then
    reused from ``cache_dir``, default ``<toolkit cache>/captions/``, while the file is
    unchanged); nothing here holds the cues. A video's captions are the JSON entry named by its
    id, else by its file's stem (videos kept in sub-folders) when that stem is unique; such a
    video gets ``caption_key`` (look its cues up with ``captions.cues(caption_key)``) and
    ``subtitle_uri=None``: the JSON is its one source of cues. Videos without captions are
    kept, with ``caption_key=None``.

    ``excluded`` lists the videos left out, one dict each, by ``reason``:

    - ``"bad_captions"``: the video's caption entry is malformed (not an object, lists of
      different lengths, no cue readable...; with ``strict``, also a single malformed cue,
      which is otherwise skipped or repaired when the cues are looked up). The video is a
      failed input, not a silent loss: the dict has
      ``{"video_id", "video_uri", "reason", "stage": "subtitles", "error_type", "error"}``,
      the fields of an ``errors.jsonl`` row, and ``error`` names the caption file, the line
      of the video's entry, the problem and the entry's byte offset. The other videos go on.
    - ``"language"``: with ``language`` (an ISO 639-1 code such as ``"en"``), the caption text
      is detected, with probability at least ``min_confidence``, as another language; an
      uncertain detection (music, a few words) keeps the video. The dict has ``{"video_id",
      "video_uri", "reason", "language", "confidence"}``. Languages are detected once per
      caption entry, while the index is built (with :func:`detect_language`), and stored in it.

    A caption file that is broken as a whole (not JSON, not an object of videos) raises
    :class:`SubtitleError`.
    """
    if language is not None and not _LANG_TAG.match(language):
        raise InputError(f"language must be a language code like 'en', got {language!r}")
    if not 0.0 <= min_confidence <= 1.0:
        raise InputError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
    if language is not None:
        detect_language("")  # a missing detector fails now, not after reading the captions
    listing = list_folder(videos_root, subtitle_language=language)
    if language is not None:
        captions = CaptionIndex.for_file(
            captions_json, cache_dir, detect=detect_language, detector=_detector_name()
        )
    else:
        captions = CaptionIndex.for_file(captions_json, cache_dir)
    stems = Counter(_file_stem(v.video_uri) for v in listing.inputs)

    inputs: list[VideoInput] = []
    excluded: list[dict[str, Any]] = []
    used: set[str] = set()
    matched = failed = 0
    for item in listing.inputs:
        key: str | None = item.video_id
        if key not in captions:
            stem = _file_stem(item.video_uri)
            key = stem if stems[stem] == 1 and stem in captions else None
        if key is None:
            inputs.append(item)
            continue
        used.add(key)
        matched += 1
        bad = captions.error(key, strict=strict)
        if bad is not None:
            failed += 1
            excluded.append(
                {
                    "video_id": item.video_id,
                    "video_uri": item.video_uri,
                    "reason": "bad_captions",
                    "stage": "subtitles",
                    "error_type": type(bad).__name__,
                    "error": str(bad),
                }
            )
            continue
        detected = captions.language(key) if language is not None else None
        if detected is not None:
            found, confidence = detected
            if _primary(found) != _primary(language or "") and confidence >= min_confidence:
                excluded.append(
                    {
                        "video_id": item.video_id,
                        "video_uri": item.video_uri,
                        "reason": "language",
                        "language": found,
                        "confidence": round(confidence, 4),
                    }
                )
                continue
        if item.subtitle_uri is not None:
            log.debug(
                "%s: captions from %s, not %s", item.video_id, captions_json, item.subtitle_uri
            )
        inputs.append(VideoInput(item.video_id, item.video_uri, None, caption_key=key))

    missing = len(listing.inputs) - matched
    if missing:
        log.warning(
            "%d of %d videos have no captions in %s", missing, len(listing.inputs), captions_json
        )
    if len(captions) > len(used):
        log.info(
            "%d caption entries have no video under %s", len(captions) - len(used), videos_root
        )
    if failed:
        log.warning("%d videos failed: their entries in %s are malformed", failed, captions_json)
    if len(excluded) > failed:
        log.warning(
            "%d videos excluded: captions not in language %r", len(excluded) - failed, language
        )
    return inputs, captions, excluded
