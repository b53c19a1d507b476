"""Inputs of the HowTo100M recipe: a folder of videos plus the caption JSON, optionally kept
to one language.

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

import functools
import logging
from collections import Counter
from typing import Any

from align.captions import CaptionIndex
from pipelines.inputs.base import (
    LANG_TAG,
    InputError,
    VideoInput,
    file_stem,
    primary_language,
)
from pipelines.inputs.folder import list_folder

log = logging.getLogger(__name__)

LANGUAGE_PACKAGE = "py3langid"
"""The language detector :func:`detect_language` imports (see the module docstring)."""


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
    if language is not None and not LANG_TAG.match(language):
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
    stems = Counter(file_stem(v.video_uri) for v in listing.inputs)

    inputs: list[VideoInput] = []
    excluded: list[dict[str, Any]] = []
    used: set[str] = set()
    matched = failed = 0
    for item in listing.inputs:
        key: str | None = item.video_id
        if key not in captions:
            stem = file_stem(item.video_uri)
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
            if (
                primary_language(found) != primary_language(language or "")
                and confidence >= min_confidence
            ):
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
