"""What a ``hero run`` processes: videos, their subtitle files, and where both come from.

Inputs come from a folder (:mod:`~pipelines.inputs.folder`, :func:`list_folder`), a manifest
(:mod:`~pipelines.inputs.manifest`, :func:`read_manifest`, CSV or JSONL) or the HowTo100M recipe
(:mod:`~pipelines.inputs.howto100m`, :func:`howto100m_inputs`: a folder of videos plus the
caption JSON); what they share is :mod:`~pipelines.inputs.base`. Every location is a local path
or an fsspec URL. :func:`check_inputs` runs before any work starts: video ids must be unique.
"""

from __future__ import annotations

import posixpath

from pipelines.inputs.base import (
    SUBTITLE_EXTENSIONS,
    InputError,
    Listing,
    VideoInput,
    check_inputs,
    open_local,
    read_subtitle_cues,
    read_subtitle_cues_report,
)
from pipelines.inputs.folder import VIDEO_EXTENSIONS, list_folder
from pipelines.inputs.howto100m import detect_language, howto100m_inputs
from pipelines.inputs.manifest import MANIFEST_COLUMNS, MANIFEST_SUFFIXES, read_manifest

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


def load_inputs(source: str, *, subtitle_language: str | None = None) -> Listing:
    """:func:`read_manifest` for a ``.csv``/``.jsonl`` file, else :func:`list_folder`."""
    if posixpath.splitext(source)[1].lower() in MANIFEST_SUFFIXES:
        return Listing(tuple(read_manifest(source)))
    return list_folder(source, subtitle_language=subtitle_language)
