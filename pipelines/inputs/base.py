"""What every source of ``hero run`` inputs shares: the :class:`VideoInput` and
:class:`Listing` they produce, :class:`InputError`, reading a file from a local path or an fsspec
URL (``s3://``, ``gs://``, ``memory://``...), and :func:`check_inputs`, which runs before any
work starts (video ids must be unique).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from align.readers import ReadReport, SubtitleError, decode_subtitles, parse_cues_report
from hero_data.errors import HeroError
from hero_data.types import Cue, Tagged, check_id

log = logging.getLogger(__name__)

SUBTITLE_EXTENSIONS = ("vtt", "srt", "sbv")
"""Subtitle extensions, in the order :func:`list_folder` prefers them."""

LANG_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
"""A language tag, as in ``clip.en.vtt`` or ``--language pt-BR``."""
_DUPLICATES_SHOWN = 5
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
        fps: a frame folder's frame rate as its manifest row states it (``"3"``,
            ``"30000/1001"``), or ``None`` (a video file, or a folder with ``frames.json``).
    """

    TYPE: ClassVar[str] = "video_input"

    video_id: str
    video_uri: str
    subtitle_uri: str | None = None
    caption_key: str | None = None
    fps: str | None = None

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
        if self.fps is not None and not isinstance(self.fps, str):
            raise InputError(f"video {self.video_id!r}: fps must be a string or None")


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


def is_url(path: str) -> bool:
    return "://" in path or "::" in path


def extension(name: str) -> str:
    """Lower-case extension of a file name without the dot, ``""`` when there is none."""
    return posixpath.splitext(name)[1].lower().lstrip(".")


def _local_path(uri: str) -> str | None:
    """The local path of ``uri`` (a plain path or a ``file://`` URL), else ``None``."""
    if not is_url(uri):
        return uri
    fs, path = url_to_fs(uri)
    return path if isinstance(fs, LocalFileSystem) else None


@contextlib.contextmanager
def open_local(uri: str, *, tmp_dir: str | None = None) -> Iterator[str]:
    """A local, seekable copy of ``uri`` for as long as the ``with`` block runs.

    Local paths (and ``file://`` URLs) are yielded as they are. Anything else is downloaded
    through fsspec into a temporary file in ``tmp_dir`` (default: the system's), keeping the
    extension (FFmpeg guesses formats from it), and deleted afterwards. The decoder needs a
    local file: it seeks, and FFmpeg cannot read fsspec URLs. A remote folder (a frame folder,
    :mod:`extract.frames`) is copied whole, under its own name, into a temporary folder.
    """
    local = _local_path(uri)
    if local is not None:
        yield local
        return
    fs, path = url_to_fs(uri)
    if fs.isdir(path):  # a frame folder (extract.frames): its files, into a temporary folder
        folder = tempfile.mkdtemp(prefix="hero-", dir=tmp_dir)
        try:
            copy = os.path.join(folder, posixpath.basename(path.rstrip("/")) or "frames")
            os.mkdir(copy)
            for name in fs.find(path):
                rel = name[len(path.rstrip("/")) + 1 :]
                target = os.path.join(copy, *rel.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as out, fs.open(name, "rb") as src:
                    shutil.copyfileobj(src, out, _COPY_BUFFER)
            yield copy
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    fd, tmp = tempfile.mkstemp(prefix="hero-", suffix=posixpath.splitext(uri)[1][:16], dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out, fsspec.open(uri, "rb") as src:
            shutil.copyfileobj(src, out, _COPY_BUFFER)
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def read_bytes(uri: str) -> bytes:
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
        fmt = extension(uri)
        if fmt not in SUBTITLE_EXTENSIONS:
            raise SubtitleError(
                uri,
                None,
                f"unsupported subtitle extension {('.' + fmt) if fmt else '(none)'!r}; "
                "expected .vtt, .srt or .sbv",
            )
    text = decode_subtitles(read_bytes(uri), uri, strict=strict)
    return parse_cues_report(text, fmt, uri, strict=strict)


def read_subtitle_cues(uri: str, fmt: str | None = None, *, strict: bool = False) -> list[Cue]:
    """The cues of :func:`read_subtitle_cues_report`."""
    return read_subtitle_cues_report(uri, fmt, strict=strict)[0]


def file_stem(uri: str) -> str:
    """The file name of ``uri`` without its extension."""
    return posixpath.splitext(posixpath.basename(uri.rstrip("/")))[0]


def primary_language(tag: str) -> str:
    """The primary language of a tag: ``pt-BR`` -> ``pt``."""
    return tag.lower().replace("_", "-").split("-")[0]


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
