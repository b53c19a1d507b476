"""Inputs from a folder of videos (local or an fsspec URL) and the subtitle files beside them.

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
- Frame folders (:mod:`extract.frames`): a folder holding ``frames.json`` (``{"fps": 3}``) is
  one video made of the images in it; nothing inside it is listed apart. Its id is its path
  relative to the root, ``/`` -> ``__``, made safe (no extension is cut: ``a/ep.01/`` ->
  ``a__ep.01``), and its subtitle is matched as a video file's, with the folder's name as the
  stem: ``a/ep01/`` <-> ``a/ep01.vtt`` (or ``a/ep01.en.vtt``). A root that is itself a frame
  folder is one video, named after the root.
"""

from __future__ import annotations

import logging
import posixpath
from collections import defaultdict
from collections.abc import Iterable

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from hero_data.types import safe_id
from pipelines.inputs.base import (
    LANG_TAG,
    SUBTITLE_EXTENSIONS,
    InputError,
    Listing,
    VideoInput,
    extension,
    primary_language,
)

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = ("mp4", "mkv", "mov", "webm", "avi", "m4v", "mpg", "mpeg", "flv", "ts")
"""Extensions (lower case, no dot) that :func:`list_folder` takes for videos."""


# --- folders ----------------------------------------------------------------------------------


def _relative(path: str, base: str) -> str | None:
    prefix = base.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def _split(rel: str) -> tuple[str, str, str]:
    """(folder, stem, extension) of a relative path."""
    folder, name = posixpath.split(rel)
    stem, ext = posixpath.splitext(name)
    return folder, stem, ext.lower().lstrip(".")


def _folder_id(rel: str, frames: bool = False) -> str:
    """Id of a video file (its path without extension) or of a frame folder (its path)."""
    folder, stem, _ = _split(rel)
    joined = rel if frames else f"{folder}/{stem}" if folder else stem
    return safe_id(joined.replace("/", "__"))


def _video_key(rel: str, frame_dirs: set[str]) -> tuple[str, str]:
    """(folder, stem) a video's subtitles are matched on; a frame folder's stem is its name."""
    if rel in frame_dirs:
        return posixpath.split(rel)
    folder, stem, _ = _split(rel)
    return folder, stem


def _frame_dirs(rels: list[str]) -> set[str]:
    """The outermost folders (relative paths, ``""`` for the root) holding ``frames.json``."""
    from extract.frames import FRAMES_FILE  # here: extract.decode imports torch (1 s)

    found = sorted(posixpath.dirname(rel) for rel in rels if posixpath.basename(rel) == FRAMES_FILE)
    outer: set[str] = set()
    for folder in found:  # sorted: a folder comes before the folders inside it
        if not any(folder == o or folder.startswith(o + "/") or o == "" for o in outer):
            outer.add(folder)
    return outer


def _pick_order(rel: str, tag: str, language: str | None) -> tuple[int, int, str, str]:
    if language is None:
        rank = 2
    elif tag.lower().replace("_", "-") == language.lower().replace("_", "-"):
        rank = 0
    elif primary_language(tag) == primary_language(language):
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

    rels = [
        rel
        for rel in (_relative(name, base) for name in names)
        if rel is not None and not any(part.startswith(".") for part in rel.split("/"))
    ]
    frame_dirs = _frame_dirs(rels)
    if "" in frame_dirs:  # the root itself is one video
        name = posixpath.basename(base.rstrip("/")) or "frames"
        return Listing((VideoInput(safe_id(name), root.rstrip("/") if not local else base),))
    videos: list[str] = sorted(frame_dirs)
    subtitles: list[str] = []
    for rel in rels:
        if any(rel.startswith(d + "/") for d in frame_dirs):
            continue  # a frame folder's own files
        ext = extension(rel)
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
        folder, stem = _video_key(rel, frame_dirs)
        candidates = by_stem.get((folder, stem))
        if candidates:
            chosen[rel] = min(candidates, key=lambda s: _pick_order(s, "", None))
            claimed.update(candidates)

    tagged: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for rel in subtitles:
        folder, stem, _ = _split(rel)
        base_stem, dot, tag = stem.rpartition(".")
        if rel not in claimed and dot and base_stem and LANG_TAG.match(tag):
            tagged[(folder, base_stem)].append((tag, rel))
    for rel in videos:
        folder, stem = _video_key(rel, frame_dirs)
        candidates_tagged = tagged.get((folder, stem))
        if not candidates_tagged:
            continue
        claimed.update(s for _, s in candidates_tagged)
        if rel not in chosen:
            _, chosen[rel] = min(
                candidates_tagged, key=lambda t: _pick_order(t[1], t[0], subtitle_language)
            )

    inputs = tuple(
        VideoInput(
            _folder_id(rel, rel in frame_dirs),
            uri(rel),
            uri(chosen[rel]) if rel in chosen else None,
        )
        for rel in videos
    )
    used = set(chosen.values())
    orphans = tuple(uri(s) for s in sorted(set(subtitles) - claimed))
    extras = tuple(uri(s) for s in sorted(claimed - used))
    if not inputs:
        log.warning(
            "%s: no video files (%s) and no frame folders (with frames.json)",
            root,
            ", ".join(VIDEO_EXTENSIONS),
        )
    if orphans:
        log.warning(
            "%s: %d subtitle files belong to no video, e.g. %s", root, len(orphans), orphans[0]
        )
    if extras:
        log.info(
            "%s: %d alternative subtitle files not used, e.g. %s", root, len(extras), extras[0]
        )
    return Listing(inputs, orphans, extras)
