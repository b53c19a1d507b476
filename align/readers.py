"""Subtitle readers: WebVTT, SRT, SBV, TVQA jsonl and HowTo100M caption json -> :class:`Cue` lists.

All times are float seconds, computed from whole milliseconds so that the same timestamp text
always gives the same float. Every reader returns cues sorted by start (a stable sort, so cues
with equal starts keep their file order).

The subtitle parsers are our own line-based ones rather than webvtt-py's, so that every problem
names the file and the line it is on (webvtt-py reports neither, and returns cues that end
before they start). They follow the WebVTT spec where it matters for real files (only a truly
empty line ends a cue, so YouTube's " " text lines stay inside their cue; a timing line right
after cue text starts the next cue).

**Malformed cues are recovered from, by default** (as webvtt-py, pysrt and FFmpeg do): a cue
whose timing line is missing or malformed, that has no text, or whose text is not UTF-8 is
skipped; a cue that ends before it starts, or a timestamp with the other format's millisecond
separator, is repaired. Reading goes on at the next cue boundary (an empty line, or a timing
line). Each problem is counted by reason in a :class:`ReadReport` (:data:`SKIP_REASONS`,
:data:`REPAIR_REASONS`) and logged once with its file and line. A file is rejected with
:class:`SubtitleError` only when no cue at all can be read from it (a missing ``WEBVTT``
header, binary garbage, another format), or when it is empty or not of a known format. With
``strict=True`` the first malformed cue raises instead (the readers' behaviour before recovery).
docs/subtitles.md lists every rule.

Invariants of every cue a reader returns: ``start`` and ``end`` are finite, ``0 <= start <=
end``; ``text`` is a ``str`` that encodes to UTF-8 (no lone surrogate); ``speaker`` is ``None``
or such a ``str``. Anything else raises :class:`SubtitleError` (or ``OSError`` for a file that
cannot be opened); tests/align/test_readers_fuzz.py checks both on random and adversarial input.

Text clean-up, the same for every format: lines are joined with one space, markup tags are
removed (``<c>``, ``<i>``, ``<b>``, ``<u>``, ``<ruby>`` with its ``<rt>`` annotation dropped,
timestamp tags ``<00:00:01.000>``, class tags ``<c.colorE5E5E5>``, SRT's ``{\\an8}``), HTML
entities are decoded, runs of whitespace (``&nbsp;`` included) become one space, and a speaker
prefix becomes the cue's ``speaker`` (see :func:`split_speaker`). A text that is empty after
clean-up still gives a cue (with text ``""``); :func:`align.clean.clean_cues` drops it. Every
clean-up step takes time linear in the text (a 10 MB line is read in seconds, not hours).

Choices where files are debatable:

- A WebVTT file with a valid header and no cues (``no_captions.vtt``) reads as ``[]``; a file
  with no content at all, or only whitespace, is an error ("empty file").
- A cue with no text line at all is skipped (``no_text``); a text line that cleans to nothing
  (``" "``, ``"<c></c>"``) gives a cue with empty text, which cleaning drops.
- A cue whose end is before its start keeps its start and gets ``end = start``
  (``end_before_start``): its text is read, its span is unknown, so cleaning drops it as
  zero-length. end == start is allowed (zero-length cues are dropped by cleaning).
- SRT timestamps should use a comma before the milliseconds, SBV and WebVTT a dot; the other
  one is read as the same time (``timestamp_separator``, counted as a repair).
- Files should be UTF-8 (a BOM is fine). A cue whose text holds bytes that are not UTF-8 is
  skipped (``bad_text``); with ``strict=True`` the file is rejected at the first such byte. A
  missing file raises the usual ``OSError``.

Corpus files (TVQA jsonl, HowTo100M json) hold many videos. Inside an entry, a malformed cue
(a bad or negative time, a text that is not a string...) is skipped or repaired by the same
rules, and counted in that video's report. :func:`read_tvqa_jsonl` and
:func:`read_howto100m_json` raise at the first bad *entry* (not JSON, no ``vid_name``, lists of
different length, no cue readable at all...); a batch uses :func:`read_tvqa_jsonl_entries` and
:func:`read_howto100m_json_entries` instead, which return the good videos and one
:class:`SubtitleError` per bad entry (its ``video_id`` says whose), so one broken entry costs
one video, not the file. Whatever breaks the whole file (empty, invalid JSON in a HowTo100M
file, not an object of videos) raises in both.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hero_data.errors import HeroError
from hero_data.types import Cue

log = logging.getLogger(__name__)

__all__ = [
    "FORMATS",
    "REPAIR_REASONS",
    "SKIP_REASONS",
    "ReadReport",
    "SubtitleError",
    "decode_subtitles",
    "parse_cues",
    "parse_cues_report",
    "read_cues",
    "read_cues_report",
    "read_howto100m_json",
    "read_howto100m_json_entries",
    "read_howto100m_json_reports",
    "read_tvqa_jsonl",
    "read_tvqa_jsonl_entries",
    "read_tvqa_jsonl_reports",
    "split_speaker",
]

StrPath = str | os.PathLike[str]

FORMATS = ("vtt", "srt", "sbv")
"""Subtitle formats :func:`read_cues` reads, by file extension."""

SKIP_REASONS = ("bad_timing", "missing_timing", "no_text", "bad_text", "not_a_cue")
"""Why a recovering reader skips a cue (docs/subtitles.md has the rules):

- ``bad_timing``: its timing line, or a JSON time, is there but is not a valid time (a bad
  timestamp, a missing end, a time that is not a finite non-negative number);
- ``missing_timing``: text with no timing line before it (or a JSON cue without start or end);
- ``no_text``: a timing line with no text line after it (or a JSON cue without text);
- ``bad_text``: its text is not UTF-8 (undecodable bytes, a lone surrogate) or, in JSON, not a
  string;
- ``not_a_cue``: a JSON cue that is not an object (TVQA)."""

REPAIR_REASONS = ("end_before_start", "timestamp_separator")
"""Why a recovering reader changed a cue it returns:

- ``end_before_start``: the end is before the start; the end becomes the start (zero length,
  which cleaning then drops: the text is read, the span is unknown);
- ``timestamp_separator``: an SRT timestamp with a dot before the milliseconds, or a WebVTT one
  with a comma; read as the same time."""

MAX_PROBLEMS = 20
"""Problems a :class:`ReadReport` keeps as errors (all of them are counted)."""

LOGGED_PER_FILE = 10
"""Problems of one file logged one by one at WARNING; the others at DEBUG, plus one summary."""


class SubtitleError(HeroError, ValueError):
    """A subtitle file that cannot be read as its format says.

    Attributes:
        path: the file, as given.
        line: 1-based line number of the problem, or ``None`` when it is not on one line.
        problem: what is wrong, without the location.
        video_id: in a corpus file (TVQA, HowTo100M), the video whose entry is bad; ``None``
            when the problem is not one video's (or the entry does not say whose it is).
        offset: 0-based byte offset of the problem in the file, or ``None``. Set by the
            HowTo100M caption index (:mod:`align.captions`), whose files are often one line of
            several gigabytes; the message then ends with ``(at byte N)``.
    """

    def __init__(
        self,
        path: str,
        line: int | None,
        problem: str,
        video_id: str | None = None,
        offset: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        self.video_id = video_id
        self.offset = offset
        where = f"{path}:{line}" if line is not None else path
        at = f" (at byte {offset})" if offset is not None else ""
        super().__init__(f"{where}: {problem}{at}")

    def __reduce__(self) -> tuple[Any, ...]:  # keep pickling (Ray moves errors between workers)
        return (type(self), (self.path, self.line, self.problem, self.video_id, self.offset))


@dataclass(frozen=True)
class ReadReport:
    """What a reader skipped and repaired to read one video's cues; empty when nothing was.

    Attributes:
        skipped: cues left out, by reason (:data:`SKIP_REASONS`); they are not in the cues
            returned, so not in cleaning's ``input``.
        repaired: cues returned after a repair, by reason (:data:`REPAIR_REASONS`); they are
            in the cues returned.
        problems: the first :data:`MAX_PROBLEMS` problems as errors (file, line, what), in
            the order they were found.
    """

    skipped: Mapping[str, int] = field(default_factory=dict)
    repaired: Mapping[str, int] = field(default_factory=dict)
    problems: tuple[SubtitleError, ...] = ()

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def repaired_total(self) -> int:
        return sum(self.repaired.values())

    def counts(self) -> dict[str, dict[str, int]]:
        """``{"skipped": {reason: n}, "repaired": {reason: n}}``, reasons sorted, none zero."""
        return {
            "skipped": {k: v for k, v in sorted(self.skipped.items()) if v},
            "repaired": {k: v for k, v in sorted(self.repaired.items()) if v},
        }

    @classmethod
    def from_counts(cls, counts: Mapping[str, Mapping[str, int]] | None) -> ReadReport:
        """The report of :meth:`counts` (without its problems); ``None`` gives an empty one."""
        if not counts:
            return cls()
        return cls(dict(counts.get("skipped", {})), dict(counts.get("repaired", {})))


def _summary(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()) if n)


class _LogBudget:
    """The problems of one file logged one by one: the first :data:`LOGGED_PER_FILE` at
    WARNING, the rest at DEBUG and once in a summary line (:meth:`close`)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.left = LOGGED_PER_FILE
        self.quiet: Counter[str] = Counter()

    def log(self, error: SubtitleError, outcome: str, reason: str) -> None:
        if self.left > 0:
            self.left -= 1
            log.warning("%s; %s", error, outcome)
        else:
            self.debug(error, outcome, reason)

    def debug(self, error: SubtitleError, outcome: str, reason: str) -> None:
        self.quiet[reason] += 1
        log.debug("%s; %s", error, outcome)

    def close(self) -> None:
        if self.quiet:
            log.warning(
                "%s: %d more malformed cues (%s), logged at DEBUG only",
                self.source,
                sum(self.quiet.values()),
                _summary(self.quiet),
            )
            self.quiet.clear()


class _Malformed:
    """The malformed cues of one reading (a file, or one video's entry in a corpus file).

    Strict, the first problem raises it. Otherwise each is counted by reason; the first
    :data:`MAX_PROBLEMS` are kept and logged by :meth:`log` once the reading is accepted
    (a rejected one says its first problem in its error), the rest are logged as they come.
    """

    def __init__(
        self,
        source: str,
        strict: bool,
        budget: _LogBudget,
        video_id: str | None = None,
        offset: int | None = None,
    ) -> None:
        self.source = source
        self.strict = strict
        self.budget = budget
        self.video_id = video_id
        self.offset = offset
        self.skipped: Counter[str] = Counter()
        self.repaired: Counter[str] = Counter()
        self.kept: list[tuple[SubtitleError, str, str]] = []

    def skip(self, line: int | None, reason: str, problem: str) -> None:
        self._note(self.skipped, line, reason, problem, "cue skipped")

    def repair(self, line: int | None, reason: str, problem: str, outcome: str) -> None:
        self._note(self.repaired, line, reason, problem, outcome)

    def _note(
        self, counts: Counter[str], line: int | None, reason: str, problem: str, outcome: str
    ) -> None:
        error = SubtitleError(self.source, line, problem, self.video_id, self.offset)
        if self.strict:
            raise error
        counts[reason] += 1
        if len(self.kept) < MAX_PROBLEMS:
            self.kept.append((error, outcome, reason))
        else:  # past the kept ones (logged once the reading is accepted): DEBUG only
            self.budget.debug(error, outcome, reason)

    @property
    def count(self) -> int:
        return sum(self.skipped.values()) + sum(self.repaired.values())

    def nothing_read(self, what: str = "no cue could be read") -> SubtitleError:
        """The error of a reading that gave no cue while skipping some: its first problem."""
        first = self.kept[0][0]
        n = sum(self.skipped.values())
        return SubtitleError(
            self.source,
            first.line,
            f"{first.problem}; {what} ({n} malformed: {_summary(self.skipped)})",
            self.video_id,
            self.offset,
        )

    def log(self) -> None:
        for error, outcome, reason in self.kept:
            self.budget.log(error, outcome, reason)

    def report(self) -> ReadReport:
        return ReadReport(
            dict(self.skipped), dict(self.repaired), tuple(e for e, _, _ in self.kept)
        )


# --- text clean-up and speakers -------------------------------------------------------------

# Opening and closing ruby-text tags; the text between the first opening tag and the next
# closing one is dropped (:func:`_drop_ruby_text`, one linear pass: a lazy ``<rt>.*?</rt>``
# regex scans to the end of the text from every unclosed ``<rt>``, quadratic time).
_RUBY_TAG = re.compile(r"<rt\b[^<>]*>|</rt\s*>", re.IGNORECASE)
# Only things that look like markup: <tag ...>, </tag>, <00:01.000>; a lone "<" or "a < b" stays.
_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<\d[\d:.]*>")
_ASS_OVERRIDE = re.compile(r"\{\\[^{}]*\}")
# The name must start with a non-space and stop at "<": otherwise an unclosed "<v a" makes the
# search quadratic (each attempt scans to the end, and backtracks over the blanks).
_VOICE = re.compile(r"<v(?:\.[^\s<>]*)?[ \t]+([^\s<>][^<>]*)>")

_NAME_WORD = r"[^\W\d_][\w'.\-]*"
_PAREN_SPEAKER = re.compile(rf"^[(\[]\s*({_NAME_WORD}(?:\s+[\w'.\-#]+){{0,3}})\s*:\s*[)\]]\s*")
_PAREN_SPEAKER_AFTER = re.compile(rf"^[(\[]\s*({_NAME_WORD}(?:\s+[\w'.\-#]+){{0,3}})\s*[)\]]:\s*")
_CAPS_SPEAKER = re.compile(r"^([^\W\d_][\w'.\-#]*(?:[ \t]+[\w'.\-#]+){0,3}):(?:\s+|$)")
_SPACED_SPEAKER = re.compile(r"^([A-Z][\w'.\-]*(?:[ \t]+[A-Z][\w'.\-]*){0,2})[ \t]+:(?:\s+|$)")


def split_speaker(text: str, *, spaced_colon: bool = False) -> tuple[str | None, str]:
    """Split a leading speaker prefix off ``text``: ``(speaker or None, rest)``.

    Recognized prefixes, at the very start of the text only:

    - a name in parentheses or brackets with a colon: ``(Joey:) Hi``, ``(Joey): Hi``,
      ``[Joey:] Hi``;
    - one to four all-caps words followed by a colon and a space: ``JOEY: Hi``,
      ``MAN #2: Hi`` (the words must contain at least two letters);
    - with ``spaced_colon=True`` (TVQA), one to three capitalized words, a space, then a
      colon: ``Chase : Hi``.

    Ordinary sentences are left alone: ``Note: ...``, ``at 10:30``, ``(laughs) Hi``.
    """
    stripped = text.strip()
    for pattern in (_PAREN_SPEAKER, _PAREN_SPEAKER_AFTER):
        m = pattern.match(stripped)
        if m:
            return m.group(1).strip(), stripped[m.end() :].strip()
    m = _CAPS_SPEAKER.match(stripped)
    if m:
        name = m.group(1)
        if name.isupper() and sum(ch.isalpha() for ch in name) >= 2:
            return name, stripped[m.end() :].strip()
    if spaced_colon:
        m = _SPACED_SPEAKER.match(stripped)
        if m:
            return m.group(1), stripped[m.end() :].strip()
    return None, text


def _drop_ruby_text(text: str) -> str:
    """``text`` without its ruby annotations: from an opening ``<rt>`` tag to the next
    closing one, tags included. An unclosed one (or a stray closing tag) stays."""
    if "<rt" not in text and "<RT" not in text and "<Rt" not in text and "<rT" not in text:
        return text
    pieces: list[str] = []
    kept = 0
    opened: int | None = None
    for m in _RUBY_TAG.finditer(text):
        if m.group().startswith("</"):
            if opened is not None:
                pieces.append(text[kept:opened])
                kept, opened = m.end(), None
        elif opened is None:
            opened = m.start()
    pieces.append(text[kept:])
    return "".join(pieces)


def _clean_text(raw: str, *, spaced_colon: bool = False) -> tuple[str | None, str]:
    """(speaker, text) from a cue's raw text (lines already joined with spaces)."""
    voice = _VOICE.search(raw)
    text = _drop_ruby_text(raw)
    text = _TAG.sub("", text)
    text = _ASS_OVERRIDE.sub("", text)
    text = " ".join(html.unescape(text).split())
    if voice:
        speaker = " ".join(html.unescape(voice.group(1)).split())
        return speaker or None, text
    speaker, text = split_speaker(text, spaced_colon=spaced_colon)
    return speaker, text


# --- shared line handling ---------------------------------------------------------------------

# A character that is not Unicode text: a lone surrogate, which is what an undecodable byte
# becomes when the bytes are decoded leniently (``surrogateescape``: U+DC80 to U+DCFF).
_NOT_TEXT = re.compile("[\ud800-\udfff]")


def decode_subtitles(data: bytes, source: str, *, strict: bool = False) -> str:
    """Subtitle bytes as text: UTF-8 (a BOM is dropped), line ends made ``\\n``.

    Strict, bytes that are not UTF-8 raise :class:`SubtitleError` with the line of the first.
    Otherwise each such byte becomes a lone surrogate (``surrogateescape``), so the parsers
    skip the cue it is in (``bad_text``) and read the others; a file of nothing but such
    bytes reads no cue and is rejected.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if strict:
            line = data[: e.start].count(b"\n") + 1
            raise SubtitleError(source, line, f"not UTF-8 text ({e.reason})") from None
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "surrogateescape")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes, path: str) -> str:
    """Strict :func:`decode_subtitles` (kept for callers of the old name)."""
    return decode_subtitles(data, path, strict=True)


@dataclass(frozen=True)
class _Skip:
    """A malformed cue that is skipped: why (one of :data:`SKIP_REASONS`) and what is wrong.
    What the timing and JSON cue parsers return instead of a cue's parts."""

    reason: str
    problem: str


def _ms(h: str | None, m: str, s: str, frac: str) -> int:
    return ((int(h or 0) * 60 + int(m)) * 60 + int(s)) * 1000 + int(frac.ljust(3, "0"))


def _text_problem(raw: str) -> str | None:
    """Why cue text ``raw`` is not Unicode text, or ``None`` when it is."""
    bad = _NOT_TEXT.search(raw)
    if bad is None:
        return None
    char = bad.group()
    if "\udc80" <= char <= "\udcff":
        return f"cue text is not UTF-8 (byte 0x{ord(char) - 0xDC00:02X}): {raw[:40]!r}"
    return f"cue text holds a lone surrogate {char!r}: {raw[:40]!r}"


def _cue(
    m: _Malformed,
    line: int,
    timing: tuple[int, int, str, str | None],
    text_lines: list[str],
) -> Cue | None:
    """The cue of a parsed block (``timing``: start and end in ms, the timing as written, and
    the problem of a timestamp written with the other millisecond separator, or ``None``),
    repaired where the rules say; ``None`` (counted) when its text is not Unicode text."""
    start_ms, end_ms, tokens, separator = timing
    raw = " ".join(text_lines)
    problem = _text_problem(raw)
    if problem is not None:
        m.skip(line, "bad_text", problem)
        return None
    if separator is not None:
        m.repair(line, "timestamp_separator", separator, "read as the same time")
    if end_ms < start_ms:
        m.repair(
            line,
            "end_before_start",
            f"cue ends before it starts: {tokens}",
            "its end is set to its start (cleaning drops it as zero-length)",
        )
        end_ms = start_ms
    speaker, text = _clean_text(raw)
    return Cue(start_ms / 1000, end_ms / 1000, text, speaker)


def _strict_separator(m: _Malformed, line: int, timing: tuple[int, int, str, str | None]) -> None:
    """Strict, a timestamp with the wrong separator is the first problem of its cue, even of
    a cue without text (as before recovery, when the timing line was checked first)."""
    if m.strict and timing[3] is not None:
        m.repair(line, "timestamp_separator", timing[3], "")


def _sorted(cues: list[Cue]) -> list[Cue]:
    return sorted(cues, key=lambda c: c.start)


def _block_end(lines: list[str], i: int, boundary: Callable[[list[str], int], bool]) -> int:
    """Index of the first line from ``i`` that ends a block: empty (whitespace only), or a cue
    boundary of the format (a timing line)."""
    n = len(lines)
    while i < n and lines[i].strip() and not boundary(lines, i):
        i += 1
    return i


# --- WebVTT -------------------------------------------------------------------------------------

_VTT_TS = re.compile(r"^(?:(\d{1,9}):)?([0-5]\d):([0-5]\d)([.,])(\d{3})$")


def _keyword(line: str, word: str) -> bool:
    return line == word or line.startswith((word + " ", word + "\t"))


def _vtt_timing(line: str) -> tuple[int, int, str, str | None] | _Skip:
    """(start ms, end ms, the timing as written, the problem of a comma before the
    milliseconds or ``None``) of a WebVTT timing line, or what is wrong with it."""
    left, _, right = line.partition("-->")
    rest = right.split(None, 1)
    tokens = (left.strip(), rest[0] if rest else "")
    out = []
    separator = None
    for tok in tokens:
        ts = _VTT_TS.match(tok)
        if not ts:
            return _Skip(
                "bad_timing",
                f"bad timestamp {tok[:40]!r} (WebVTT wants [HH:]MM:SS.mmm): {line.strip()[:80]!r}",
            )
        h, m, s, sep, frac = ts.groups()
        if sep == "," and separator is None:
            separator = (
                f"bad timestamp {tok!r} (WebVTT needs a dot before the milliseconds): "
                f"{line.strip()[:80]!r}"
            )
        out.append(_ms(h, m, s, frac))
    return out[0], out[1], f"{tokens[0]} --> {tokens[1]}", separator


def _vtt_boundary(lines: list[str], i: int) -> bool:
    return "-->" in lines[i]


def _parse_vtt(text: str, m: _Malformed) -> list[Cue]:
    lines = text.split("\n")
    first = lines[0].strip()
    if not _keyword(first, "WEBVTT"):
        raise SubtitleError(m.source, 1, f"missing WEBVTT header, first line is {first[:40]!r}")
    i, n = 1, len(lines)
    # Header: metadata ("Kind: captions", YouTube's "Style:" lines) up to the first empty line.
    while i < n and lines[i] != "" and "-->" not in lines[i]:
        i += 1
    cues: list[Cue] = []
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if _keyword(line, "NOTE") or (
            (_keyword(line, "STYLE") or _keyword(line, "REGION")) and "-->" not in line
        ):
            while i < n and lines[i] != "":
                i += 1
            continue
        if "-->" not in line:  # a cue identifier, which must be followed by the timing line
            if i + 1 < n and "-->" in lines[i + 1]:
                i += 1
            else:
                m.skip(
                    i + 1,
                    "missing_timing",
                    f"missing timing line 'start --> end' before {line.strip()[:40]!r}",
                )
                i = _block_end(lines, i + 1, _vtt_boundary)
                continue
        timing_no = i + 1
        timing = _vtt_timing(lines[i])
        i += 1
        text_lines: list[str] = []
        # Only a truly empty line ends a cue; a timing line after its text starts the next.
        while i < n and lines[i] != "" and "-->" not in lines[i]:
            text_lines.append(lines[i])
            i += 1
        if isinstance(timing, _Skip):
            m.skip(timing_no, timing.reason, timing.problem)
            continue
        if not text_lines:
            _strict_separator(m, timing_no, timing)
            if i < n and "-->" in lines[i]:
                m.skip(i + 1, "no_text", "timing line where cue text was expected")
            else:
                m.skip(timing_no, "no_text", "cue has no text")
            continue
        cue = _cue(m, timing_no, timing, text_lines)
        if cue is not None:
            cues.append(cue)
    return cues


# --- SRT ----------------------------------------------------------------------------------------

_SRT_TS = re.compile(r"^(\d{1,9}):([0-5]\d):([0-5]\d)([,.])(\d{3})$")
_SRT_TIMING = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)(?:\s.*)?$")


def _srt_timing(line: str) -> tuple[int, int, str, str | None] | _Skip:
    """(start ms, end ms, the timing as written, the problem of a dot before the milliseconds
    or ``None``) of an SRT timing line, or what is wrong with it."""
    m = _SRT_TIMING.match(line)
    if not m:
        return _Skip(
            "bad_timing",
            f"bad timing line {line.strip()[:80]!r} (SRT wants HH:MM:SS,mmm --> HH:MM:SS,mmm)",
        )
    out = []
    separator = None
    for tok in m.groups():
        ts = _SRT_TS.match(tok)
        if not ts:
            return _Skip("bad_timing", f"bad timestamp {tok[:40]!r}: {line.strip()[:80]!r}")
        h, mm, s, sep, frac = ts.groups()
        if sep == "." and separator is None:
            separator = (
                f"bad timestamp {tok!r} (SRT needs a comma before the milliseconds): "
                f"{line.strip()[:80]!r}"
            )
        out.append(_ms(h, mm, s, frac))
    return out[0], out[1], f"{m.group(1)} --> {m.group(2)}", separator


def _looks_like_srt_timing(line: str) -> bool:
    """One token, ``-->``, one token, at least one of them a timestamp: a timing line, good
    or bad (``a --> b`` in a cue's text is not one)."""
    if "-->" not in line:
        return False
    m = _SRT_TIMING.match(line)
    return bool(m and (_SRT_TS.match(m.group(1)) or _SRT_TS.match(m.group(2))))


def _srt_boundary(lines: list[str], i: int) -> bool:
    """A cue starts at line ``i``: its timing line, or its number followed by one (SRT files
    often leave out the empty line between cues)."""
    if _looks_like_srt_timing(lines[i]):
        return True
    return (
        lines[i].strip().isdigit() and i + 1 < len(lines) and _looks_like_srt_timing(lines[i + 1])
    )


def _parse_srt(text: str, m: _Malformed) -> list[Cue]:
    lines = text.split("\n")
    n = len(lines)
    cues: list[Cue] = []
    i = 0
    while i < n:
        line = lines[i].strip()
        if not line:
            i += 1
            continue
        if line.isdigit():
            if i + 1 >= n or not lines[i + 1].strip():
                m.skip(
                    i + 1, "missing_timing", f"cue number {line[:20]} has no timing line after it"
                )
                i += 1
                continue
            if "-->" not in lines[i + 1]:
                m.skip(
                    i + 2,
                    "missing_timing",
                    f"missing timing line after cue number {line[:20]}, "
                    f"got {lines[i + 1].strip()[:40]!r}",
                )
                i = _block_end(lines, i + 2, _srt_boundary)
                continue
            i += 1
        elif "-->" not in line:
            hint = " (this looks like a WebVTT file)" if _keyword(line, "WEBVTT") else ""
            m.skip(
                i + 1,
                "missing_timing",
                f"expected a cue number or a timing line, got {line[:40]!r}{hint}",
            )
            i = _block_end(lines, i + 1, _srt_boundary)
            continue
        timing_no = i + 1
        timing = _srt_timing(lines[i])
        i += 1
        text_lines: list[str] = []
        while i < n and lines[i].strip() and not _srt_boundary(lines, i):
            text_lines.append(lines[i])
            i += 1
        if isinstance(timing, _Skip):
            m.skip(timing_no, timing.reason, timing.problem)
            continue
        if not text_lines:
            _strict_separator(m, timing_no, timing)
            m.skip(timing_no, "no_text", "cue has no text")
            continue
        cue = _cue(m, timing_no, timing, text_lines)
        if cue is not None:
            cues.append(cue)
    return cues


# --- SBV (YouTube) ------------------------------------------------------------------------------

_SBV_TS = re.compile(r"^(\d{1,9}):([0-5]\d):([0-5]\d)\.(\d{3})$")


def _sbv_timing(line: str) -> tuple[int, int, str] | _Skip:
    """(start ms, end ms, the timing as written) of an SBV timing line, or why it is skipped:
    two comma-separated parts that are not both timestamps are a bad timing
    line, anything else is not a timing line at all."""
    parts = line.strip().split(",")
    if len(parts) != 2:
        return _Skip(
            "missing_timing",
            f"expected a timing line 'H:MM:SS.mmm,H:MM:SS.mmm', got {line.strip()[:40]!r}",
        )
    out = []
    for tok in parts:
        ts = _SBV_TS.match(tok.strip())
        if not ts:
            return _Skip(
                "bad_timing",
                f"bad timestamp {tok.strip()[:40]!r} (SBV wants H:MM:SS.mmm): "
                f"{line.strip()[:80]!r}",
            )
        out.append(_ms(*ts.groups()))
    return out[0], out[1], f"{parts[0].strip()},{parts[1].strip()}"


def _is_sbv_timing(line: str) -> bool:
    parts = line.strip().split(",")
    return len(parts) == 2 and all(_SBV_TS.match(p.strip()) for p in parts)


def _sbv_boundary(lines: list[str], i: int) -> bool:
    return _is_sbv_timing(lines[i])


def _parse_sbv(text: str, m: _Malformed) -> list[Cue]:
    lines = text.split("\n")
    n = len(lines)
    cues: list[Cue] = []
    i = 0
    while i < n:
        if not lines[i].strip():
            i += 1
            continue
        timing_no = i + 1
        timing = _sbv_timing(lines[i])
        i += 1
        if isinstance(timing, _Skip):
            m.skip(timing_no, timing.reason, timing.problem)
            i = _block_end(lines, i, _sbv_boundary)
            continue
        text_lines: list[str] = []
        while i < n and lines[i].strip() and not _is_sbv_timing(lines[i]):
            text_lines.append(lines[i])
            i += 1
        if not text_lines:
            m.skip(timing_no, "no_text", "cue has no text")
            continue
        cue = _cue(m, timing_no, (*timing, None), text_lines)
        if cue is not None:
            cues.append(cue)
    return cues


_PARSERS: dict[str, Callable[[str, _Malformed], list[Cue]]] = {
    "vtt": _parse_vtt,
    "srt": _parse_srt,
    "sbv": _parse_sbv,
}


def parse_cues_report(
    text: str, fmt: str, source: str = "<string>", *, strict: bool = False
) -> tuple[list[Cue], ReadReport]:
    """Cues of subtitle ``text`` in format ``fmt`` (``vtt``, ``srt`` or ``sbv``), sorted by
    start, and what was skipped or repaired to read them (module docstring).

    ``source`` names the text in errors and log lines (a path or URI). Times are seconds.
    Raises :class:`SubtitleError` for an unknown format, an empty text, a text from which no
    cue can be read, and, when ``strict``, at the first malformed cue.
    """
    key = fmt.lower().lstrip(".")
    if key not in _PARSERS:
        raise SubtitleError(
            source, None, f"unsupported subtitle format {fmt!r}; expected one of {FORMATS}"
        )
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise SubtitleError(source, None, "empty file")
    budget = _LogBudget(source)
    m = _Malformed(source, strict, budget)
    cues = _PARSERS[key](text, m)
    if not cues and m.skipped:
        raise m.nothing_read()
    m.log()
    budget.close()
    return _sorted(cues), m.report()


def parse_cues(text: str, fmt: str, source: str = "<string>", *, strict: bool = False) -> list[Cue]:
    """The cues of :func:`parse_cues_report`. For text read from a remote filesystem;
    :func:`read_cues` reads a local file."""
    return parse_cues_report(text, fmt, source, strict=strict)[0]


def _format_of(name: str, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    found = Path(name).suffix.lower().lstrip(".")
    if found not in _PARSERS:
        raise SubtitleError(
            name,
            None,
            f"unsupported subtitle extension {Path(name).suffix or '(none)'!r}; "
            "expected .vtt, .srt or .sbv",
        )
    return found


def read_cues_report(
    path: StrPath, fmt: str | None = None, *, strict: bool = False
) -> tuple[list[Cue], ReadReport]:
    """Cues of one video's subtitle file (WebVTT, SRT or SBV), sorted by start (seconds), and
    what was skipped or repaired to read them.

    ``fmt`` defaults to the file's extension (case-insensitive). Raises :class:`SubtitleError`
    for an unsupported extension, an empty file, a file from which no cue can be read, and,
    when ``strict``, at the first malformed cue, with the file and line.
    """
    name = os.fspath(path)
    fmt = _format_of(name, fmt)
    with open(name, "rb") as f:
        data = f.read()
    return parse_cues_report(decode_subtitles(data, name, strict=strict), fmt, name, strict=strict)


def read_cues(path: StrPath, fmt: str | None = None, *, strict: bool = False) -> list[Cue]:
    """The cues of :func:`read_cues_report` (skips and repairs are logged)."""
    return read_cues_report(path, fmt, strict=strict)[0]


# --- corpus formats: TVQA jsonl, HowTo100M json -------------------------------------------------


def _seconds(value: Any) -> float | None:
    """Seconds from a JSON number (or numeric string); ``None`` when it is not a finite one."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, (int, float, str)):
        return None
    try:
        out = float(value)
    except (ValueError, OverflowError):
        return None
    return out + 0.0 if math.isfinite(out) else None  # + 0.0: -0.0 becomes 0.0


def _shown(value: Any) -> str:
    """A JSON value as a problem shows it: short, and never the whole of a big structure."""
    if value is None or isinstance(value, (bool, int, float, str)):
        text = repr(value) if not isinstance(value, int) or abs(value) < 10**40 else "a huge int"
        return text if len(text) <= 40 else text[:37] + "..."
    return f"a {type(value).__name__}"


_JSON_BACKWARDS = "its end is set to its start (cleaning drops it as zero-length)"


def _json_cue(
    start: Any, end: Any, text: Any, where: str
) -> tuple[float, float, str, str | None] | _Skip:
    """One JSON cue: (start, end, raw text, the problem of an end before the start or
    ``None``), the end already repaired; or why it is skipped."""
    times = []
    for key, value in (("start", start), ("end", end)):
        seconds = _seconds(value)
        if seconds is None:
            problem = f"{where}: {key} is not a number of seconds: {_shown(value)}"
            return _Skip("bad_timing", problem)
        if seconds < 0:
            return _Skip("bad_timing", f"{where}: {key} is negative: {seconds}")
        times.append(seconds)
    s, e = times
    if not isinstance(text, str):
        return _Skip("bad_text", f"{where}: text is not a string: {_shown(text)}")
    bad = _NOT_TEXT.search(text)
    if bad is not None:
        return _Skip(
            "bad_text",
            f"{where}: text holds a lone surrogate {bad.group()!r}, which is not Unicode text",
        )
    if e < s:
        return s, s, text, f"{where}: cue ends before it starts: {s} > {e}"
    return s, e, text, None


def json_int(digits: str) -> int | float:
    """A JSON integer, or a signed infinity for one over Python's digit limit (4300 digits).

    The ``parse_int`` of every JSON reader here: without it, one such integer (a time of five
    thousand digits) makes ``json.loads`` fail for the whole file, where a time of ``1e999``
    (infinity) only costs its cue. As an infinity it is a malformed time, skipped as
    ``bad_timing`` like any other.
    """
    try:
        return int(digits)
    except ValueError:
        return -math.inf if digits.startswith("-") else math.inf


def _json_line(path: str, no: int, line: str) -> Any:
    try:
        return json.loads(line, parse_int=json_int)
    except json.JSONDecodeError as e:
        raise SubtitleError(path, no, f"invalid JSON: {e.msg} (column {e.colno})") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer over Python's digit limit
        raise SubtitleError(path, no, f"invalid JSON: {str(e)[:200]}") from None


def _tvqa_video(
    path: str, no: int, obj: Any, strict: bool, budget: _LogBudget
) -> tuple[str, list[Cue], _Malformed]:
    """(vid_name, cues, its malformed cues) of one TVQA jsonl line, parsed as ``obj``."""
    if not isinstance(obj, dict):
        raise SubtitleError(path, no, f"expected a JSON object, got {type(obj).__name__}")
    vid, subs = obj.get("vid_name"), obj.get("sub")
    if not isinstance(vid, str) or not vid:
        raise SubtitleError(path, no, f"missing or bad 'vid_name': {_shown(vid)}")
    if _NOT_TEXT.search(vid):
        raise SubtitleError(path, no, f"'vid_name' is not Unicode text: {vid[:40]!r}")
    if not isinstance(subs, list):
        raise SubtitleError(
            path, no, f"{vid}: missing or bad 'sub' list: {type(subs).__name__}", vid
        )
    m = _Malformed(path, strict, budget, video_id=vid)
    cues = []
    for k, item in enumerate(subs):
        where = f"{vid} sub[{k}]"
        if not isinstance(item, dict):
            m.skip(no, "not_a_cue", f"{where}: expected an object, got {type(item).__name__}")
            continue
        missing = [key for key in ("start", "end", "text") if key not in item]
        if missing:
            reason = "no_text" if missing == ["text"] else "missing_timing"
            m.skip(no, reason, f"{where}: missing {', '.join(missing)}")
            continue
        parsed = _json_cue(item["start"], item["end"], item["text"], where)
        if isinstance(parsed, _Skip):
            m.skip(no, parsed.reason, parsed.problem)
            continue
        start, end, raw, backwards = parsed
        if backwards is not None:
            m.repair(no, "end_before_start", backwards, _JSON_BACKWARDS)
        speaker, text = _clean_text(raw, spaced_colon=True)
        cues.append(Cue(start, end, text, speaker))
    if not cues and m.skipped:
        raise m.nothing_read("no cue of this video could be read")
    return vid, _sorted(cues), m


def _read_text(name: str, *, strict: bool = True) -> str:
    with open(name, "rb") as f:
        data = decode_subtitles(f.read(), name, strict=strict)
    if not data.strip():
        raise SubtitleError(name, None, "empty file")
    return data


def read_tvqa_jsonl_reports(
    path: StrPath, *, strict: bool = False
) -> tuple[dict[str, tuple[list[Cue], ReadReport]], list[SubtitleError]]:
    """TVQA subtitles read line by line: ``({vid_name: (cues, report)}, errors)``.

    Inside a line, a malformed cue is skipped or repaired and counted in the video's
    :class:`ReadReport` (with ``strict``, it makes the line bad). A bad line (invalid JSON, no
    ``vid_name``, no ``sub`` list, no cue readable, bytes that are not UTF-8 in its
    ``vid_name``...) gives one error, with its line and, when the line names one, its
    ``video_id``, and the other lines are still read. A ``vid_name`` on two lines is an error on
    the later line, and that video gets no cues (which line is right is unknown). Errors are in
    line order. An empty file raises; so does a file that is not UTF-8 when ``strict``.
    """
    name = os.fspath(path)
    out: dict[str, tuple[list[Cue], ReadReport]] = {}
    errors: list[SubtitleError] = []
    seen: set[str] = set()
    budget = _LogBudget(name)
    for no, line in enumerate(_read_text(name, strict=strict).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            vid, cues, malformed = _tvqa_video(name, no, _json_line(name, no, line), strict, budget)
        except SubtitleError as e:
            errors.append(e)
            if e.video_id is not None:
                seen.add(e.video_id)
                out.pop(e.video_id, None)
            continue
        if vid in seen:
            errors.append(SubtitleError(name, no, f"duplicate vid_name {vid!r}", vid))
            out.pop(vid, None)
            continue
        seen.add(vid)
        malformed.log()
        out[vid] = (cues, malformed.report())
    budget.close()
    return out, errors


def read_tvqa_jsonl_entries(
    path: StrPath, *, strict: bool = False
) -> tuple[dict[str, list[Cue]], list[SubtitleError]]:
    """TVQA subtitles read line by line: ``({vid_name: cues}, errors)``, for a batch. Rules as
    :func:`read_tvqa_jsonl_reports`."""
    videos, errors = read_tvqa_jsonl_reports(path, strict=strict)
    return {vid: cues for vid, (cues, _) in videos.items()}, errors


def read_tvqa_jsonl(path: StrPath, *, strict: bool = False) -> dict[str, list[Cue]]:
    """TVQA subtitles: ``{vid_name: cues}`` from jsonl lines ``{"vid_name", "sub": [...]}``.

    Each ``sub`` item is ``{"text", "start", "end"}`` with times in seconds. TVQA marks speakers
    as ``"Chase : text"``; that prefix (and the general ones of :func:`split_speaker`) becomes the
    speaker. Blank lines are skipped; a repeated ``vid_name`` is an error. A malformed cue is
    skipped or repaired (``strict``: it is an error). The first bad line raises
    :class:`SubtitleError` (file and line); :func:`read_tvqa_jsonl_entries` goes on.
    """
    out, errors = read_tvqa_jsonl_entries(path, strict=strict)
    if errors:
        raise errors[0]
    return out


class _EntryProblem(Exception):
    """What is wrong with one HowTo100M entry (located by the caller)."""


Problem = tuple[str, str, bool]
"""A malformed cue of a HowTo100M entry: (reason, problem, repaired)."""


def _howto100m_rows(
    vid: str, entry: Any
) -> tuple[list[float], list[float], list[str], list[Problem]]:
    """One HowTo100M entry's (starts, ends, raw texts) of the cues read, in file order, and its
    malformed cues (:data:`Problem`, in file order; the repaired ones are among the cues read).
    Raises :class:`_EntryProblem` saying what is wrong with an entry that gives no cue."""
    if not isinstance(entry, dict):
        raise _EntryProblem(f"video {vid!r}: expected an object, got {type(entry).__name__}")
    lists: dict[str, list[Any]] = {}
    for key in ("start", "end", "text"):
        value = entry.get(key)
        if not isinstance(value, list):
            raise _EntryProblem(
                f"video {vid!r}: missing or bad {key!r} list: {type(value).__name__}"
            )
        lists[key] = value
    sizes = {key: len(value) for key, value in lists.items()}
    if len(set(sizes.values())) != 1:
        raise _EntryProblem(f"video {vid!r}: lists of different length {sizes}")
    starts: list[float] = []
    ends: list[float] = []
    texts: list[str] = []
    problems: list[Problem] = []
    for k, (start, end, raw) in enumerate(zip(*lists.values(), strict=True)):
        parsed = _json_cue(start, end, raw, f"video {vid!r} [{k}]")
        if isinstance(parsed, _Skip):
            problems.append((parsed.reason, parsed.problem, False))
            continue
        if parsed[3] is not None:
            problems.append(("end_before_start", parsed[3], True))
        starts.append(parsed[0])
        ends.append(parsed[1])
        texts.append(parsed[2])
    if not starts and problems:
        skipped = Counter(reason for reason, _, repaired in problems if not repaired)
        raise _EntryProblem(
            f"{problems[0][1]}; no cue of this video could be read "
            f"({sum(skipped.values())} malformed: {_summary(skipped)})"
        )
    return starts, ends, texts, problems


def _howto100m_cues(starts: list[float], ends: list[float], texts: list[str]) -> list[Cue]:
    """Cues of the rows of :func:`_howto100m_rows`: text cleaned, sorted."""
    cues = []
    for start, end, raw in zip(starts, ends, texts, strict=True):
        speaker, text = _clean_text(raw)
        cues.append(Cue(start, end, text, speaker))
    return _sorted(cues)


def _replay(m: _Malformed, line: int | None, problems: list[Problem]) -> None:
    """Count (or, strict, raise) the malformed cues of one HowTo100M entry."""
    for reason, problem, repaired in problems:
        if repaired:
            m.repair(line, reason, problem, _JSON_BACKWARDS)
        else:
            m.skip(line, reason, problem)


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _key_lines(text: str, wanted: set[str]) -> dict[str, int]:
    """1-based line of each ``wanted`` key of the top-level object of valid JSON ``text``.

    Walks the object with the json module's own scanner (so escaped keys such as ``"caf\\u00e9"``
    are found), taking the last occurrence of a repeated key as ``json.loads`` does.
    """
    decoder = json.JSONDecoder(parse_int=json_int)
    lines: dict[str, int] = {}
    line, counted = 1, 0
    i = _JSON_SPACE.match(text, 0).end()
    if not text.startswith("{", i):
        return lines
    i = _JSON_SPACE.match(text, i + 1).end()
    while text.startswith('"', i):
        key, end = json.decoder.scanstring(text, i + 1)
        if key in wanted:
            line += text.count("\n", counted, i)
            counted = i
            lines[key] = line
        i = _JSON_SPACE.match(text, end).end() + 1  # past the ':'
        _, i = decoder.raw_decode(text, _JSON_SPACE.match(text, i).end())
        i = _JSON_SPACE.match(text, i).end()
        if not text.startswith(",", i):
            break
        i = _JSON_SPACE.match(text, i + 1).end()
    return lines


def _too_deep_at(text: str) -> tuple[int, int]:
    """(line, column), 1-based, of the top-level member value (or of the top-level value)
    that nests too deeply for the json module, in ``text`` on which ``json.loads`` raised
    ``RecursionError``. What comes before it is valid JSON, since json.loads got that far."""
    decoder = json.JSONDecoder(parse_int=json_int)
    i = _JSON_SPACE.match(text, 0).end()
    if text.startswith("{", i):
        i = _JSON_SPACE.match(text, i + 1).end()
        try:
            while text.startswith('"', i):
                _, end = json.decoder.scanstring(text, i + 1)
                i = _JSON_SPACE.match(text, _JSON_SPACE.match(text, end).end() + 1).end()
                try:
                    _, end = decoder.raw_decode(text, i)
                except RecursionError:
                    break
                i = _JSON_SPACE.match(text, end).end()
                if not text.startswith(",", i):
                    break
                i = _JSON_SPACE.match(text, i + 1).end()
        except ValueError:  # not expected (json.loads got past it); the place reached is kept
            pass
    line = text.count("\n", 0, i) + 1
    return line, i - (text.rfind("\n", 0, i) + 1) + 1


def read_howto100m_json_reports(
    path: StrPath, *, strict: bool = False
) -> tuple[dict[str, tuple[list[Cue], ReadReport]], list[SubtitleError]]:
    """HowTo100M captions read video by video: ``({video_id: (cues, report)}, errors)``.

    Inside an entry, a malformed cue is skipped or repaired and counted in the video's
    :class:`ReadReport`, located at the line of the video's key (``strict``: it makes the
    entry bad). A bad entry (not an object, a missing list, lists of different length, no cue
    readable) gives one error naming the file, the line where its video id's key is, and the
    problem, with ``video_id`` set; the other videos are still read. Videos and errors are in
    file order. A file that is empty, not UTF-8, not JSON or not an object raises.
    """
    name = os.fspath(path)
    data = _read_text(name)
    try:
        obj = json.loads(data, parse_int=json_int)
    except json.JSONDecodeError as e:
        raise SubtitleError(name, e.lineno, f"invalid JSON: {e.msg} (column {e.colno})") from None
    except RecursionError:  # e.g. ten thousand "[": say where, as the caption index does
        line, column = _too_deep_at(data)
        problem = f"invalid JSON: nested too deeply (column {column})"
        raise SubtitleError(name, line, problem) from None
    if not isinstance(obj, dict):
        first_line = data[: len(data) - len(data.lstrip())].count("\n") + 1
        raise SubtitleError(
            name, first_line, f"expected a JSON object of videos, got {type(obj).__name__}"
        )
    rows: dict[str, tuple[list[float], list[float], list[str], list[Problem]] | _EntryProblem]
    rows = {}
    for vid, entry in obj.items():
        try:
            rows[vid] = _howto100m_rows(vid, entry)
        except _EntryProblem as e:
            rows[vid] = e
    located = {vid for vid, r in rows.items() if isinstance(r, _EntryProblem) or r[3]}
    lines = _key_lines(data, located) if located else {}
    out: dict[str, tuple[list[Cue], ReadReport]] = {}
    errors: list[SubtitleError] = []
    budget = _LogBudget(name)
    for vid, r in rows.items():
        if isinstance(r, _EntryProblem):
            errors.append(SubtitleError(name, lines.get(vid), str(r), vid))
            continue
        m = _Malformed(name, strict, budget, video_id=vid)
        try:
            _replay(m, lines.get(vid), r[3])
        except SubtitleError as e:
            errors.append(e)
            continue
        m.log()
        out[vid] = (_howto100m_cues(r[0], r[1], r[2]), m.report())
    budget.close()
    return out, errors


def read_howto100m_json_entries(
    path: StrPath, *, strict: bool = False
) -> tuple[dict[str, list[Cue]], list[SubtitleError]]:
    """HowTo100M captions read video by video: ``({video_id: cues}, errors)``, for a batch.
    Rules as :func:`read_howto100m_json_reports`."""
    videos, errors = read_howto100m_json_reports(path, strict=strict)
    return {vid: cues for vid, (cues, _) in videos.items()}, errors


def read_howto100m_json(path: StrPath, *, strict: bool = False) -> dict[str, list[Cue]]:
    """HowTo100M captions: ``{video_id: cues}`` from ``{id: {"start": [..], "end": [..],
    "text": [..]}}`` (parallel lists, times in seconds).

    A malformed cue is skipped or repaired (``strict``: it is an error). The first bad entry
    raises :class:`SubtitleError` naming the file, the line of the video's key and the
    problem; :func:`read_howto100m_json_entries` goes on past it.
    """
    out, errors = read_howto100m_json_entries(path, strict=strict)
    if errors:
        raise errors[0]
    return out
