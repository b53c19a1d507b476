"""Agreement with webvtt-py, run beside our readers on every subtitle fixture file.

For each file webvtt-py parses, we read every cue with text that it reads (same times, same
text once whitespace is joined), and `hero align`'s report counts at least that many cues in
``input``. For each file it rejects, we reject it too. The one place where the texts differ is
listed, with why ours is the right reading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import webvtt
from click.testing import CliRunner

from align.readers import SubtitleError, read_cues
from pipelines.cli.main import main

_READ = {".vtt": webvtt.read, ".srt": webvtt.from_srt, ".sbv": webvtt.from_sbv}

# (file, start in ms) -> why our text for that cue differs from webvtt-py's.
TEXT_DIFFERS = {
    ("missing_timeframe.srt", 500): (
        "webvtt-py glues the next block ('2', 'Caption text #2': a cue whose timing line is "
        "missing, after an empty line) onto cue #1's text; we skip that block"
    ),
}


def _fixture_files() -> list:
    env = os.environ.get("HERO_SHARED_FIXTURES")
    root = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "fixtures"
    folder = root / "subtitles"
    if not folder.is_dir():
        reason = f"subtitle fixtures not found at {folder} (set HERO_SHARED_FIXTURES)"
        return [pytest.param(None, id="no-fixtures", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(p, id=p.name) for p in sorted(folder.iterdir())]


def _ms(timestamp: str) -> int:
    """webvtt-py's ``HH:MM:SS.mmm`` as whole milliseconds (its ``*_in_seconds`` truncate)."""
    hours, minutes, rest = timestamp.split(":")
    seconds, millis = rest.split(".")
    return ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(millis)


def _webvtt_py(path: Path) -> list[tuple[int, int, str]] | None:
    """(start ms, end ms, text with whitespace joined) of each cue webvtt-py reads with text,
    or ``None`` when it rejects the file (or has no reader for its extension)."""
    read = _READ.get(path.suffix)
    if read is None:
        return None
    try:
        captions = list(read(str(path)))
    except webvtt.errors.MalformedFileError:
        return None
    return [
        (_ms(c.start), _ms(c.end), " ".join(c.text.split())) for c in captions if c.text.strip()
    ]


@pytest.mark.parametrize("path", _fixture_files())
def test_we_read_every_cue_with_text_that_webvtt_py_reads(path: Path):
    theirs = _webvtt_py(path)
    if theirs is None:
        with pytest.raises(SubtitleError):
            read_cues(path)
        return
    ours = {round(c.start * 1000): c for c in read_cues(path)}
    assert len(ours) >= len(theirs)
    for start, end, text in theirs:
        cue = ours.get(start)
        assert cue is not None, f"{path.name}: webvtt-py's cue at {start} ms is missing"
        # A cue that ends before it starts is read with its end at its start.
        assert round(cue.end * 1000) == max(end, start), (path.name, start)
        if (path.name, start) not in TEXT_DIFFERS:
            assert (cue.text, cue.speaker) == (text, None), (path.name, start)
    result = CliRunner().invoke(main, ["align", str(path), "--duration", "60"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["report"]["input"] >= len(theirs)


def test_the_listed_differences_are_real(shared_fixtures: Path):
    """Each listed difference is one: webvtt-py's text for that cue is not ours."""
    for (name, start), _ in TEXT_DIFFERS.items():
        path = shared_fixtures / "subtitles" / name
        theirs = {s: text for s, _, text in _webvtt_py(path) or []}
        ours = {round(c.start * 1000): c.text for c in read_cues(path)}
        assert theirs[start] != ours[start]
