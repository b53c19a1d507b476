"""Fuzzing the subtitle readers: random bytes, mutated fixture files, adversarial structures.

The property, for every reader (WebVTT, SRT, SBV, TVQA jsonl, HowTo100M json, and the HowTo100M
caption index), strict or recovering: it returns cues that satisfy the invariants documented in
:mod:`align.readers` (:func:`_check_cues`), with a report of known reasons whose problems name
the file and line, or it raises :class:`SubtitleError` naming the file and, unless the problem
is the file as a whole (:data:`WHOLE_FILE`), the position. Nothing else escapes, nothing hangs
(hypothesis' deadline; each adversarial case has a time bound) and memory stays bounded (the
10 MB line and the 1 M tiny cues are read in a fresh process whose peak RSS is measured).

The default tier tries few examples per reader (a few seconds in all); ``-m slow`` runs the
same properties with :data:`DEEP` examples each, and the 1 M-cue case. docs/subtitles.md
("Untrusted input") records how many cases the deep run tried and the measured figures.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from align.captions import CaptionIndex
from align.readers import (
    MAX_PROBLEMS,
    REPAIR_REASONS,
    SKIP_REASONS,
    ReadReport,
    SubtitleError,
    read_cues_report,
    read_howto100m_json_reports,
    read_tvqa_jsonl_reports,
)
from hero_data.types import Cue

REPO = Path(__file__).resolve().parents[2]
FIXTURES = (
    Path(os.environ["HERO_SHARED_FIXTURES"])
    if os.environ.get("HERO_SHARED_FIXTURES")
    else REPO.parent / "shared" / "fixtures"
) / "subtitles"

QUICK = 40
"""Examples per reader and kind of input in the default tier."""
DEEP = 2000
"""Examples per reader and kind of input in the slow tier."""

WHOLE_FILE = ("empty file", "unsupported subtitle format")
"""Problems of a file as a whole, whose error names the file without a line: an empty file (or
only whitespace), a format the readers do not know. Every other error has a line or a byte."""

READERS = ("vtt", "srt", "sbv", "tvqa", "howto100m", "caption_index")

TRIED: dict[str, int] = {}
"""Cases tried in this process, by test; the slow tier prints them (docs record them)."""


# -- the property ------------------------------------------------------------------------------


def _check_cues(cues: list[Cue]) -> None:
    """The invariants of every cue a reader returns (the module docstring of align.readers)."""
    assert isinstance(cues, list)
    previous = -math.inf
    for cue in cues:
        assert type(cue) is Cue
        assert type(cue.start) is float and type(cue.end) is float
        assert math.isfinite(cue.start) and math.isfinite(cue.end)
        assert 0.0 <= cue.start <= cue.end
        assert cue.start >= previous  # sorted by start
        previous = cue.start
        assert type(cue.text) is str
        cue.text.encode("utf-8")  # no lone surrogate
        assert cue.speaker is None or type(cue.speaker) is str
        if cue.speaker is not None:
            cue.speaker.encode("utf-8")


def _check_report(report: ReadReport, path: str) -> None:
    assert isinstance(report, ReadReport)
    assert set(report.skipped) <= set(SKIP_REASONS)
    assert set(report.repaired) <= set(REPAIR_REASONS)
    assert all(type(n) is int and n > 0 for n in [*report.skipped.values()])
    assert all(type(n) is int and n > 0 for n in [*report.repaired.values()])
    assert len(report.problems) == min(MAX_PROBLEMS, report.skipped_total + report.repaired_total)
    for problem in report.problems:
        _check_error(problem, path, whole_file_allowed=False)


def _check_error(error: BaseException, path: str, *, whole_file_allowed: bool = True) -> None:
    """A :class:`SubtitleError` naming ``path`` and a position (a line or a byte), unless it
    is about the file as a whole."""
    assert type(error) is SubtitleError, repr(error)
    assert error.path == path and str(error).startswith(f"{path}")
    located = error.line is not None or error.offset is not None
    if not located:
        assert whole_file_allowed and error.problem.startswith(WHOLE_FILE), str(error)
    if error.line is not None:
        assert type(error.line) is int and error.line >= 1
        assert str(error).startswith(f"{path}:{error.line}: ")
    str(error).encode("utf-8", "backslashreplace")  # printable on one line of stderr
    assert "\n" not in str(error)[len(path) :], str(error)


def _read(reader: str, path: str, strict: bool) -> Iterator[tuple[list[Cue], ReadReport]]:
    """Every video ``reader`` reads from ``path``; per-video errors checked here."""
    if reader in ("vtt", "srt", "sbv"):
        yield read_cues_report(path, reader, strict=strict)
    elif reader in ("tvqa", "howto100m"):
        read = read_tvqa_jsonl_reports if reader == "tvqa" else read_howto100m_json_reports
        videos, errors = read(path, strict=strict)
        for error in errors:
            _check_error(error, path, whole_file_allowed=False)
            assert error.video_id is None or type(error.video_id) is str
        for vid, got in videos.items():
            assert type(vid) is str
            yield got
    else:
        index = CaptionIndex.build(path, path + ".capidx")
        for vid in index.video_ids():
            try:
                yield index.cues_report(vid, strict=strict)
            except SubtitleError as e:
                _check_error(e, path, whole_file_allowed=False)


def check_reader(reader: str, path: str, strict: bool) -> None:
    """The property on one file: good cues and reports, or a SubtitleError, nothing else."""
    try:
        for cues, report in _read(reader, path, strict):
            _check_cues(cues)
            _check_report(report, path)
            if strict:
                assert report == ReadReport()
    except SubtitleError as e:
        _check_error(e, path)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hero-fuzz-") as folder:
        yield Path(folder)


def _file(scratch: Path, reader: str, data: bytes) -> str:
    ext = {"tvqa": "jsonl", "howto100m": "json", "caption_index": "json"}.get(reader, reader)
    path = scratch / f"fuzz-{reader}.{ext}"
    path.write_bytes(data)
    return str(path)


def _count(name: str) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1


# -- inputs --------------------------------------------------------------------------------------


def _fixture_bytes() -> dict[str, list[bytes]]:
    """The shared fixture files by format, and valid TVQA and HowTo100M files to mutate."""
    out: dict[str, list[bytes]] = {r: [] for r in READERS}
    if FIXTURES.is_dir():
        for path in sorted(FIXTURES.iterdir()):
            if path.suffix[1:] in ("vtt", "srt", "sbv"):
                out[path.suffix[1:]].append(path.read_bytes())
    sub = [{"text": "Chase : Hi.", "start": 0.5, "end": 1.5}, {"text": "b", "start": 2, "end": 3}]
    out["tvqa"] = [
        (
            json.dumps({"vid_name": "v1", "sub": sub})
            + "\n"
            + json.dumps({"vid_name": "v2", "sub": []})
        ).encode()
    ]
    entry = {"start": [0.0, 2.5], "end": [1.0, 3.0], "text": ["one", "two &amp; <i>three</i>"]}
    captions = json.dumps({"a": entry, "b": entry}, indent=1).encode()
    out["howto100m"] = [captions]
    out["caption_index"] = [captions]
    return out


SEEDS = _fixture_bytes()


@st.composite
def mutated(draw: st.DrawFn, reader: str) -> bytes:
    """A valid file of ``reader``'s format with a few random edits."""
    seeds = SEEDS[reader] or [b""]
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "flip", "token"]))
        if kind == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 200))]
        elif kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        else:
            data[at:at] = draw(st.sampled_from(TOKENS))
    return bytes(data)


TOKENS = [
    b"\n",
    b"\n\n",
    b"\r",
    b" --> ",
    b"-->",
    b",",
    b".",
    b":",
    b"-",
    b"99999999999999999999",
    b"1e999",
    b"NaN",
    b"-Infinity",
    b"-1",
    b"\xff\xfe",
    b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
    b"\xef\xbb\xbf",
    b"\\ud800",
    b"<v ",
    b"<rt>",
    b"&#0;",
    b"&#x110000;",
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b'"start": ',
    b'"vid_name": "v1", ',
    b"WEBVTT",
    b"NOTE",
    b"\x00",
]


# -- the default tier: few examples --------------------------------------------------------------


def _fuzz(name: str, examples: int, data: st.SearchStrategy[bytes], reader: str):
    @settings(
        max_examples=examples,
        deadline=None if examples > QUICK else 5000,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(data=data, strict=st.booleans())
    def run(scratch: Path, data: bytes, strict: bool) -> None:
        _count(name)
        check_reader(reader, _file(scratch, reader, data), strict)

    return run


def _cases(examples: int) -> list[tuple[str, str, Callable]]:
    cases = []
    for reader in READERS:
        n = examples if reader != "caption_index" else max(10, examples // 4)
        cases.append((f"random-bytes-{reader}", reader, st.binary(max_size=3000), n))
        cases.append((f"mutated-{reader}", reader, mutated(reader), n))
    return [(name, reader, _fuzz(name, n, data, reader)) for name, reader, data, n in cases]


QUICK_CASES = _cases(QUICK)
DEEP_CASES = _cases(DEEP)


@pytest.mark.parametrize(("name", "reader", "run"), QUICK_CASES, ids=[c[0] for c in QUICK_CASES])
def test_fuzz_quick(scratch: Path, name: str, reader: str, run: Callable) -> None:
    run(scratch)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "reader", "run"), DEEP_CASES, ids=[c[0] for c in DEEP_CASES])
def test_fuzz_deep(scratch: Path, name: str, reader: str, run: Callable) -> None:
    before = TRIED.get(name, 0)
    run(scratch)
    print(f"fuzz {name}: {TRIED[name] - before} cases")


# -- adversarial structures ----------------------------------------------------------------------


def _vtt(cues: str) -> bytes:
    return ("WEBVTT\n\n" + cues).encode()


def _tvqa(*lines: str) -> bytes:
    return "\n".join(lines).encode()


ADVERSARIAL: list[tuple[str, str, bytes]] = [
    ("vtt", "nan-time", _vtt("NaN --> 00:01.000\nx\n\n00:02.000 --> 00:03.000\nok\n")),
    ("vtt", "negative-time", _vtt("-00:01.000 --> 00:01.000\nx\n\n00:02.000 --> 00:03.000\nok\n")),
    ("vtt", "huge-hours", _vtt("9" * 5000 + ":00:00.000 --> 00:01.000\nx\n")),
    ("vtt", "huge-fraction", _vtt("00:00.000 --> 00:01." + "0" * 5000 + "\nx\n")),
    ("vtt", "invalid-utf8", _vtt("00:00.000 --> 00:01.000\n") + b"\xc3\x28\xff\n"),
    ("vtt", "nested-tags", _vtt("00:00.000 --> 00:01.000\n" + "<c>" * 200_000 + "x\n")),
    ("vtt", "unclosed-tags", _vtt("00:00.000 --> 00:01.000\n" + "<v a" * 200_000 + "\n")),
    ("vtt", "unclosed-ruby", _vtt("00:00.000 --> 00:01.000\n" + "<rt>a" * 200_000 + "\n")),
    ("vtt", "arrows", _vtt(" --> " * 200_000 + "\n")),
    ("srt", "only-numbers", b"1\n" * 300_000),
    ("srt", "huge-index", b"9" * 100_000 + b"\n00:00:00,000 --> 00:00:01,000\nx\n"),
    ("sbv", "commas", b"," * 1_000_000 + b"\n"),
    ("sbv", "nul-bytes", b"\x00" * 1_000_000),
    ("tvqa", "deep-nesting", _tvqa("[" * 100_000 + "]" * 100_000)),
    ("tvqa", "deep-nesting-in-sub", _tvqa('{"vid_name": "v", "sub": ' + "[" * 100_000)),
    (
        "tvqa",
        "duplicate-keys",
        _tvqa(
            '{"vid_name": "a", "vid_name": "b", "sub": [{"text": "x", "start": 0, "end": 1}],'
            ' "sub": [{"text": "y", "start": 0, "end": 1, "start": -5}]}',
            '{"vid_name": "c", "sub": [{"text": "z", "start": 0, "end": 1}]}',
        ),
    ),
    (
        "tvqa",
        "huge-int",
        _tvqa(
            '{"vid_name": "v", "sub": [{"text": "ok", "start": 0, "end": 1}, '
            '{"text": "x", "start": 1' + "0" * 5000 + ', "end": 1}]}'
        ),
    ),
    (
        "tvqa",
        "huge-float",
        _tvqa('{"vid_name": "v", "sub": [{"text": "x", "start": 1e999, "end": 1}]}'),
    ),
    (
        "tvqa",
        "nan-and-negative",
        _tvqa(
            '{"vid_name": "v", "sub": [{"text": "x", "start": NaN, "end": 1}, '
            '{"text": "y", "start": -Infinity, "end": 1}, {"text": "z", "start": -1, "end": 1}, '
            '{"text": "ok", "start": 0, "end": 1}]}'
        ),
    ),
    (
        "tvqa",
        "invalid-utf8",
        b'{"vid_name": "v\xff", "sub": []}\n'
        b'{"vid_name": "w", "sub": [{"text": "\xc3(", "start": 0, "end": 1}]}',
    ),
    ("tvqa", "lone-surrogate", _tvqa('{"vid_name": "\\ud800", "sub": []}')),
    ("howto100m", "deep-nesting", ("[" * 100_000 + "]" * 100_000).encode()),
    (
        "howto100m",
        "deep-nesting-in-entry",
        ('{"v": {"start": ' + "[" * 100_000 + "]" * 100_000 + "}}").encode(),
    ),
    (
        "howto100m",
        "duplicate-keys",
        b'{"v": {"start": [0], "end": [1], "text": ["a"], "start": [5]}, '
        b'"v": {"start": [0], "end": [1], "text": ["b"]}}',
    ),
    (
        "howto100m",
        "huge-int",
        ('{"v": {"start": [0, 1' + "0" * 5000 + '], "end": [1, 2], "text": ["ok", "a"]}}').encode(),
    ),
    (
        "howto100m",
        "nan-negative",
        b'{"v": {"start": [NaN, -1, 0, Infinity], "end": [1, 1, -0.0, 1], '
        b'"text": ["a", "b", "c", "d"]}}',
    ),
    ("howto100m", "invalid-utf8", b'{"v": {"start": [0], "end": [1], "text": ["\xff"]}}'),
]
for _r, _name, _data in list(ADVERSARIAL):
    if _r == "howto100m":
        ADVERSARIAL.append(("caption_index", _name, _data))


@pytest.mark.parametrize(
    ("reader", "name", "data"), ADVERSARIAL, ids=[f"{r}-{n}" for r, n, _ in ADVERSARIAL]
)
@pytest.mark.parametrize("strict", [False, True])
def test_adversarial_structure(scratch: Path, reader: str, name: str, data: bytes, strict: bool):
    path = _file(scratch, reader, data)
    started = time.monotonic()
    check_reader(reader, path, strict)
    assert time.monotonic() - started < 10.0, f"{name} took too long"


# -- size: a line of 10 MB, 1 M tiny cues (a fresh process, its peak RSS measured) --------------

_MEASURE = textwrap.dedent(
    """
    import json, sys, time

    def status_mib(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise LookupError(field)

    from align.readers import read_cues_report, read_tvqa_jsonl_reports
    reader, path = sys.argv[1], sys.argv[2]
    before = status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from here
    started = time.monotonic()
    if reader == "tvqa":
        videos, errors = read_tvqa_jsonl_reports(path)
        n = sum(len(cues) for cues, _ in videos.values())
    else:
        cues, report = read_cues_report(path, reader)
        n = len(cues)
    seconds = time.monotonic() - started
    print(json.dumps({"cues": n, "seconds": seconds, "rss_mib": status_mib("VmHWM") - before}))
    """
)


def measure(reader: str, path: Path) -> dict[str, float]:
    """Cues read, seconds and peak RSS growth (MiB) of a fresh process reading ``path``."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, reader, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_10_mb_line_is_read_in_bounded_time_and_memory(tmp_path: Path) -> None:
    """One cue of 10 MB of text (words, tags, entities): under 20 s, and under 40 bytes of
    peak RSS per byte of the file (the bytes, their text, the lines, the cleaned text)."""
    text = "<i>word</i> &amp; <c.x>more</c> " * (10 * 2**20 // 32)
    path = tmp_path / "long.vtt"
    path.write_text("WEBVTT\n\n00:00.000 --> 00:01.000\n" + text + "\n", encoding="utf-8")
    got = measure("vtt", path)
    assert got["cues"] == 1
    assert got["seconds"] < 20.0, got
    assert got["rss_mib"] < 40 * path.stat().st_size / 2**20, got


def _tiny_cues(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("WEBVTT\n\n")
        for k in range(n):
            s = k % 3_600_000  # ms; times repeat past an hour, which is allowed
            f.write(f"{s // 60000:02d}:{s // 1000 % 60:02d}.{s % 1000:03d} --> ")
            f.write(f"{s // 60000:02d}:{s // 1000 % 60:02d}.{s % 1000:03d}\nw\n\n")


TINY_CUES = 1_000_000
TINY_SECONDS = 120.0
"""Bound on reading 1 M tiny cues on this project's 2-core machine (measured: docs/subtitles.md)."""
TINY_BYTES_PER_CUE = 600
"""Bound on peak RSS growth per cue read: the file's text and its lines (about 30 bytes a cue
each), the Cue objects and their floats and strings, the list sorted (measured: docs)."""


@pytest.mark.slow
def test_a_million_tiny_cues_in_bounded_time_and_memory(tmp_path: Path) -> None:
    path = tmp_path / "tiny.vtt"
    _tiny_cues(path, TINY_CUES)
    got = measure("vtt", path)
    print(f"1 M tiny cues ({path.stat().st_size / 2**20:.0f} MiB): {got}")
    assert got["cues"] == TINY_CUES
    assert got["seconds"] < TINY_SECONDS, got
    assert got["rss_mib"] * 2**20 < TINY_BYTES_PER_CUE * TINY_CUES, got
