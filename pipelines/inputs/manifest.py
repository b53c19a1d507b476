"""Inputs from a manifest: a CSV or JSONL file listing the videos (and their subtitle files),
local or an fsspec URL, read whole before any work starts (docs/untrusted-input.md)."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import posixpath
from collections import Counter
from typing import Any

from hero_data.grid import MAX_FRAME_RATE, parse_frame_rate
from hero_data.types import check_id, safe_id
from pipelines.inputs.base import (
    SUBTITLE_EXTENSIONS,
    InputError,
    VideoInput,
    extension,
    file_stem,
    is_url,
    read_bytes,
)

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("video", "subtitle", "video_id", "fps")
"""Columns (CSV) or keys (JSONL) of a manifest; only ``video`` is required. ``fps`` is a frame
folder's frame rate (:mod:`extract.frames`), in place of its ``frames.json``."""

MANIFEST_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
"""File suffixes read as a manifest, and their kind."""
MAX_PATH_CHARS = 4096
"""Longest video or subtitle path (or URL) a manifest may give: Linux's ``PATH_MAX``."""
_SHOWN_CHARS = 80  # of a bad value, in an error message
_UNKNOWN_SHOWN = 5  # unknown columns warned about one by one


# --- manifests --------------------------------------------------------------------------------


def _manifest_base(path: str) -> str:
    """Where relative manifest entries start: the folder (local, absolute) or the URL prefix
    up to the last ``/`` (remote)."""
    if is_url(path):
        return path[: path.rfind("/") + 1]
    return os.path.dirname(os.path.abspath(path))


def _resolve(value: str, base: str) -> str:
    if is_url(value) or os.path.isabs(value):
        return value
    if not is_url(base):
        return os.path.normpath(os.path.join(base, value))
    head, sep, rest = base.rpartition("://")
    return f"{head}{sep}{posixpath.normpath(posixpath.join(rest, value))}"


def _manifest_id(uri: str) -> str:
    """Id of a manifest row without ``video_id``: the file's stem made safe."""
    return safe_id(file_stem(uri))


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
    fps = _fps(values.pop("fps", None), path, line)
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
    if subtitle is not None and extension(subtitle) not in SUBTITLE_EXTENSIONS:
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
    subtitle_uri = _resolve(subtitle, base) if subtitle else None
    return VideoInput(video_id, video_uri, subtitle_uri, fps=fps)


def _fps(value: Any, path: str, line: int) -> str | None:
    """A row's ``fps`` (a JSON number, or a string: ``3``, ``29.97``, ``30000/1001``) as an
    exact fraction's text (``"3"``, ``"2997/100"``), None where the row has none
    (:func:`hero_data.grid.parse_frame_rate`'s rules)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return str(parse_frame_rate(value))
    except ValueError:
        raise InputError(
            f"'fps' must be a number of frames per second in (0, {MAX_FRAME_RATE}] (3, 29.97, "
            f"30000/1001), got {_shown(value)}",
            path,
            line,
        ) from None


def _warn_unknown(path: str, unknown: dict[str, int]) -> None:
    for key, line in list(unknown.items())[:_UNKNOWN_SHOWN]:
        log.warning(
            "%s:%d: unknown column %s ignored (known: %s)",
            path,
            line,
            _shown(key),
            ", ".join(MANIFEST_COLUMNS),
        )
    if len(unknown) > _UNKNOWN_SHOWN:
        log.warning("%s: %d more unknown columns ignored", path, len(unknown) - _UNKNOWN_SHOWN)


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
    kind = MANIFEST_SUFFIXES.get(posixpath.splitext(path)[1].lower())
    if kind is None:
        raise InputError("unknown manifest format: use a .csv or .jsonl file", path)
    try:
        data = read_bytes(path)
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
