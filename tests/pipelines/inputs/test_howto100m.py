"""Inputs of the HowTo100M recipe: the caption JSON matched to videos, the language filter."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from align.readers import SubtitleError
from hero_data.types import Cue
from hero_data.writer import ErrorLog, read_errors
from pipelines.inputs import (
    InputError,
    howto100m,
    howto100m_inputs,
)
from tests.pipelines.inputs.support import put

# --- HowTo100M --------------------------------------------------------------------------------

CAPTIONS = {
    "vidEN": {"start": [0, 2], "end": [2, 4], "text": ["so today we make", "a cake"]},
    "vidFR": {"start": [0], "end": [3], "text": ["bonjour à tous"]},
    "vidMUSIC": {"start": [0], "end": [3], "text": ["[Music]"]},
    "vidEMPTY": {"start": [], "end": [], "text": []},
    "noVideo": {"start": [0], "end": [1], "text": ["x"]},
}

FAKE_LANGUAGES = {
    "so today we make a cake": ("en", 0.99),
    "bonjour à tous": ("fr", 0.97),
    "[Music]": ("de", 0.1),
}


@pytest.fixture
def howto(mem: str) -> tuple[str, str]:
    for name in ("vidEN.mp4", "vidEN.vtt", "part1/vidFR.mp4", "vidMUSIC.mp4", "vidEMPTY.mp4"):
        put(f"{mem}/videos/{name}")
    put(f"{mem}/videos/nocaps.mp4")
    put(f"{mem}/caption.json", json.dumps(CAPTIONS))
    return f"{mem}/videos", f"{mem}/caption.json"


@pytest.fixture
def fake_detector(monkeypatch) -> list[str]:
    seen: list[str] = []

    def detect(text: str) -> tuple[str, float]:
        seen.append(text)
        return FAKE_LANGUAGES.get(text, ("und", 0.0))

    monkeypatch.setattr(howto100m, "detect_language", detect)
    return seen


def test_howto100m_language_filter(howto: tuple[str, str], fake_detector: list[str]) -> None:
    videos, caption_json = howto
    kept, captions, excluded = howto100m_inputs(videos, caption_json, language="en")
    assert [(v.video_id, v.caption_key) for v in kept] == [
        ("nocaps", None),
        ("vidEMPTY", "vidEMPTY"),
        ("vidEN", "vidEN"),
        ("vidMUSIC", "vidMUSIC"),
    ]
    assert all(v.subtitle_uri is None for v in kept)  # vidEN.vtt gives way to the JSON
    assert captions.cues("vidEN") == [Cue(0.0, 2.0, "so today we make"), Cue(2.0, 4.0, "a cake")]
    assert excluded == [
        {
            "video_id": "part1__vidFR",  # matched by its file's stem
            "video_uri": f"{videos}/part1/vidFR.mp4",
            "reason": "language",
            "language": "fr",
            "confidence": 0.97,
        }
    ]
    # "" first: the detector is loaded before any work. Then each caption entry's text once,
    # in file order, while the index is built ("noVideo" too); vidEMPTY has no text to detect.
    assert fake_detector == ["", "so today we make a cake", "bonjour à tous", "[Music]", "x"]
    # The index is reused: nothing is detected again, and the result is the same.
    again = howto100m_inputs(videos, caption_json, language="en")
    assert fake_detector[5:] == [""]
    assert again[0] == kept and again[2] == excluded and again[1].path == captions.path


def test_howto100m_without_language_detects_nothing(
    howto: tuple[str, str], fake_detector: list[str]
) -> None:
    kept, captions, excluded = howto100m_inputs(*howto, language=None)
    assert len(kept) == 5 and excluded == [] and fake_detector == []
    [fr] = [v for v in kept if v.video_id == "part1__vidFR"]
    assert fr.caption_key == "vidFR" and captions.language("vidFR") is None
    assert captions.cues("vidFR") == [Cue(0.0, 3.0, "bonjour à tous")]


def test_howto100m_min_confidence(howto: tuple[str, str], fake_detector: list[str]) -> None:
    _, _, excluded = howto100m_inputs(*howto, language="en", min_confidence=0.98)
    assert excluded == []
    _, _, excluded = howto100m_inputs(*howto, language="en", min_confidence=0.05)
    assert [x["video_id"] for x in excluded] == ["part1__vidFR", "vidMUSIC"]
    with pytest.raises(InputError, match="min_confidence must be in"):
        howto100m_inputs(*howto, min_confidence=2.0)
    with pytest.raises(InputError, match="language must be a language code"):
        howto100m_inputs(*howto, language="english!")


def test_howto100m_ambiguous_stem_is_not_matched(mem: str, fake_detector: list[str]) -> None:
    put(f"{mem}/v/a/vidEN.mp4")
    put(f"{mem}/v/b/vidEN.mp4")
    put(f"{mem}/c.json", json.dumps({"vidEN": CAPTIONS["vidEN"]}))
    kept, _, _ = howto100m_inputs(f"{mem}/v", f"{mem}/c.json")
    assert [(v.video_id, v.caption_key) for v in kept] == [("a__vidEN", None), ("b__vidEN", None)]


_BACKWARDS = {"start": [0, 2], "end": [2, 1], "text": ["a", "b"]}


@pytest.mark.parametrize(
    ("strict", "entry", "problem"),
    [
        # strict: one malformed cue fails the video, as before the readers recovered
        (True, _BACKWARDS, "video 'vidEN' [1]: cue ends before it starts: 2.0 > 1.0"),
        (
            False,
            {"start": [0, 2], "end": [2], "text": ["a", "b"]},
            "video 'vidEN': lists of different length {'start': 2, 'end': 1, 'text': 2}",
        ),
    ],
)
def test_howto100m_bad_caption_entry_fails_that_video_only(
    howto: tuple[str, str],
    fake_detector: list[str],
    tmp_path: Path,
    strict: bool,
    entry: dict,
    problem: str,
) -> None:
    """One malformed entry fails its video (an errors.jsonl row's fields, with the caption
    file, line and byte); the others go on, and the language filter still runs."""
    videos, captions = howto
    entries = {**CAPTIONS, "vidEN": entry}
    text = json.dumps(entries, indent=1)
    put(captions, text)
    line = text.splitlines().index(' "vidEN": {') + 1
    byte = text.encode().index(b'"vidEN"')
    kept, index, excluded = howto100m_inputs(videos, captions, language="en", strict=strict)
    assert [(v.video_id, v.caption_key) for v in kept] == [
        ("nocaps", None),
        ("vidEMPTY", "vidEMPTY"),
        ("vidMUSIC", "vidMUSIC"),
    ]
    with pytest.raises(SubtitleError) as info:  # looking it up fails the same way
        index.cues("vidEN", strict=strict)
    assert (info.value.video_id, info.value.line, info.value.offset) == ("vidEN", line, byte)
    assert excluded == [
        {
            "video_id": "part1__vidFR",
            "video_uri": f"{videos}/part1/vidFR.mp4",
            "reason": "language",
            "language": "fr",
            "confidence": 0.97,
        },
        {
            "video_id": "vidEN",
            "video_uri": f"{videos}/vidEN.mp4",
            "reason": "bad_captions",
            "stage": "subtitles",
            "error_type": "SubtitleError",
            "error": f"{captions}:{line}: {problem} (at byte {byte})",
        },
    ]
    # The fields are what hero_data's ErrorLog records as a failed input.
    failed = excluded[1]
    ErrorLog(tmp_path).record(
        video_id=failed["video_id"],
        source=failed["video_uri"],
        stage=failed["stage"],
        error_type=failed["error_type"],
        message=failed["error"],
    )
    (row,) = read_errors(tmp_path)
    assert (row["video_id"], row["stage"], row["error_type"]) == (
        "vidEN",
        "subtitles",
        "SubtitleError",
    )


def test_howto100m_malformed_cue_costs_that_cue_unless_strict(
    howto: tuple[str, str], fake_detector: list[str]
) -> None:
    videos, captions = howto
    put(captions, json.dumps({**CAPTIONS, "vidEN": _BACKWARDS}))
    kept, index, excluded = howto100m_inputs(videos, captions, language=None)
    assert "vidEN" in [v.video_id for v in kept] and excluded == []
    cues, report = index.cues_report("vidEN")
    assert cues == [Cue(0.0, 2.0, "a"), Cue(2.0, 2.0, "b")]
    assert report.counts() == {"skipped": {}, "repaired": {"end_before_start": 1}}
    kept, _, excluded = howto100m_inputs(videos, captions, language=None, strict=True)
    assert "vidEN" not in [v.video_id for v in kept]
    assert [(x["video_id"], x["reason"]) for x in excluded] == [("vidEN", "bad_captions")]


def test_howto100m_bad_entry_matched_by_stem_and_remote_file_named(
    mem: str, fake_detector: list[str]
) -> None:
    put(f"{mem}/v/a.mp4")
    put(f"{mem}/v/sub/b.mp4")
    text = '{"a": {"start": [0], "end": [1], "text": ["x"]},\n"b": {"start": [0]}}'
    put(f"{mem}/c.json", text)
    kept, _, excluded = howto100m_inputs(f"{mem}/v", f"{mem}/c.json", language=None)
    assert [(v.video_id, v.caption_key) for v in kept] == [("a", "a")]
    assert [(x["video_id"], x["reason"]) for x in excluded] == [("sub__b", "bad_captions")]
    # The remote file's own name (it is streamed, never copied), and the byte of "b".
    assert excluded[0]["error"] == (
        f"{mem}/c.json:2: video 'b': missing or bad 'end' list: NoneType (at byte 49)"
    )
    assert text[49:52] == '"b"'


def test_howto100m_caption_file_broken_as_a_whole_still_raises(mem: str) -> None:
    put(f"{mem}/v/a.mp4")
    put(f"{mem}/c.json", '{"a": {"start": [0],')
    with pytest.raises(SubtitleError, match=rf"^{mem}/c\.json:1: invalid JSON"):
        howto100m_inputs(f"{mem}/v", f"{mem}/c.json", language=None)
    put(f"{mem}/c.json", "[]")
    with pytest.raises(SubtitleError, match=rf"^{mem}/c\.json:1: expected a JSON object of videos"):
        howto100m_inputs(f"{mem}/v", f"{mem}/c.json", language=None)


def test_missing_detector_package_is_a_clear_error(howto, monkeypatch) -> None:
    howto100m._language_identifier.cache_clear()
    monkeypatch.setitem(sys.modules, "py3langid", None)
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)
    try:
        with pytest.raises(InputError, match=r"^language filtering needs py3langid: pip install"):
            howto100m_inputs(*howto, language="en")
    finally:
        howto100m._language_identifier.cache_clear()


@pytest.mark.skipif(
    importlib.util.find_spec("py3langid") is None,
    reason="py3langid is not installed (the language filter's optional dependency)",
)
def test_real_detector_tells_english_from_french(howto: tuple[str, str]) -> None:
    assert howto100m.detect_language("so now you take the screwdriver and turn it")[0] == "en"
    lang, confidence = howto100m.detect_language("alors on prend le tournevis et on le tourne")
    assert lang == "fr" and 0.5 < confidence <= 1.0
    _, _, excluded = howto100m_inputs(*howto, language="en")
    assert [x["video_id"] for x in excluded] == ["part1__vidFR"]
