"""Subtitle readers: WebVTT, SRT, SBV, TVQA jsonl and HowTo100M caption json -> :class:`Cue` lists.

All times are float seconds, computed from whole milliseconds so that the same timestamp text
always gives the same float. Every reader returns cues sorted by start (a stable sort, so cues
with equal starts keep their file order).

The subtitle parsers are our own line-based ones rather than webvtt-py's, so that every error
names the file and the line it is on (webvtt-py reports neither). They follow the WebVTT spec
where it matters for real files (only a truly empty line ends a cue, so YouTube's " " text lines
stay inside their cue; a timing line right after cue text starts the next cue) and are strict
elsewhere: anything malformed raises :class:`SubtitleError` instead of being skipped.

Text clean-up, the same for every format: lines are joined with one space, markup tags are
removed (``<c>``, ``<i>``, ``<b>``, ``<u>``, ``<ruby>`` with its ``<rt>`` annotation dropped,
timestamp tags ``<00:00:01.000>``, class tags ``<c.colorE5E5E5>``, SRT's ``{\\an8}``), HTML
entities are decoded, runs of whitespace (``&nbsp;`` included) become one space, and a speaker
prefix becomes the cue's ``speaker`` (see :func:`split_speaker`). A text that is empty after
clean-up still gives a cue (with text ``""``); :func:`align.clean.clean_cues` drops it.

Choices where files are debatable:

- A WebVTT file with a valid header and no cues (``no_captions.vtt``) reads as ``[]``; a file
  with no content at all, or only whitespace, is an error ("empty file").
- A cue with no text line at all is an error ("cue has no text"); a text line that cleans to
  nothing (``" "``, ``"<c></c>"``) is not.
- A cue whose end is before its start is an error; end == start is allowed (zero-length cues are
  dropped by cleaning).
- SRT timestamps must use a comma before the milliseconds, SBV and WebVTT a dot.
- Files must be UTF-8 (a BOM is fine). A missing file raises the usual ``OSError``.

Corpus files (TVQA jsonl, HowTo100M json) hold many videos. :func:`read_tvqa_jsonl` and
:func:`read_howto100m_json` are strict: the first bad entry raises. A batch uses
:func:`read_tvqa_jsonl_entries` and :func:`read_howto100m_json_entries` instead, which return
the good videos and one :class:`SubtitleError` per bad entry (its ``video_id`` says whose), so
one broken entry costs one video, not the file. Whatever breaks the whole file (not UTF-8,
empty, invalid JSON in a HowTo100M file, not an object of videos) raises in both.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hero_data.types import Cue

__all__ = [
    "FORMATS",
    "SubtitleError",
    "parse_cues",
    "read_cues",
    "read_howto100m_json",
    "read_howto100m_json_entries",
    "read_tvqa_jsonl",
    "read_tvqa_jsonl_entries",
    "split_speaker",
]

StrPath = str | os.PathLike[str]

FORMATS = ("vtt", "srt", "sbv")
"""Subtitle formats :func:`read_cues` reads, by file extension."""


class SubtitleError(ValueError):
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


def _decode(data: bytes, path: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SubtitleError(path, line, f"not UTF-8 text ({e.reason})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _ms(h: str | None, m: str, s: str, frac: str) -> int:
    return ((int(h or 0) * 60 + int(m)) * 60 + int(s)) * 1000 + int(frac.ljust(3, "0"))


def _cue(path: str, line: int, start_ms: int, end_ms: int, raw: str, tokens: str) -> Cue:
    if end_ms < start_ms:
        raise SubtitleError(path, line, f"cue ends before it starts: {tokens}")
    speaker, text = _clean_text(raw)
    return Cue(start_ms / 1000, end_ms / 1000, text, speaker)


def _sorted(cues: list[Cue]) -> list[Cue]:
    return sorted(cues, key=lambda c: c.start)


# --- WebVTT -------------------------------------------------------------------------------------

_VTT_TS = re.compile(r"^(?:(\d{1,9}):)?([0-5]\d):([0-5]\d)\.(\d{3})$")


def _keyword(line: str, word: str) -> bool:
    return line == word or line.startswith((word + " ", word + "\t"))


def _vtt_timing(path: str, no: int, line: str) -> tuple[int, int, str]:
    left, _, right = line.partition("-->")
    rest = right.split(None, 1)
    tokens = (left.strip(), rest[0] if rest else "")
    out = []
    for tok in tokens:
        ts = _VTT_TS.match(tok)
        if not ts:
            raise SubtitleError(
                path, no, f"bad timestamp {tok!r} (WebVTT wants [HH:]MM:SS.mmm): {line.strip()!r}"
            )
        out.append(_ms(*ts.groups()))
    return out[0], out[1], f"{tokens[0]} --> {tokens[1]}"


def _parse_vtt(text: str, path: str) -> list[Cue]:
    lines = text.split("\n")
    first = lines[0].strip()
    if not _keyword(first, "WEBVTT"):
        raise SubtitleError(path, 1, f"missing WEBVTT header, first line is {first[:40]!r}")
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
                raise SubtitleError(
                    path, i + 1, f"missing timing line 'start --> end' before {line.strip()!r}"
                )
        timing_no = i + 1
        start, end, tokens = _vtt_timing(path, timing_no, lines[i])
        i += 1
        text_lines: list[str] = []
        while i < n and lines[i] != "":
            if "-->" in lines[i]:
                if not text_lines:
                    raise SubtitleError(path, i + 1, "timing line where cue text was expected")
                break  # the spec: a timing line after cue text starts the next cue
            text_lines.append(lines[i])
            i += 1
        if not text_lines:
            raise SubtitleError(path, timing_no, "cue has no text")
        cues.append(_cue(path, timing_no, start, end, " ".join(text_lines), tokens))
    return cues


# --- SRT ----------------------------------------------------------------------------------------

_SRT_TS = re.compile(r"^(\d{1,9}):([0-5]\d):([0-5]\d),(\d{3})$")
_SRT_TIMING = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)(?:\s.*)?$")


def _srt_timing(path: str, no: int, line: str) -> tuple[int, int, str]:
    m = _SRT_TIMING.match(line)
    if not m:
        raise SubtitleError(
            path, no, f"bad timing line {line.strip()!r} (SRT wants HH:MM:SS,mmm --> HH:MM:SS,mmm)"
        )
    out = []
    for tok in m.groups():
        ts = _SRT_TS.match(tok)
        if not ts:
            hint = " (SRT needs a comma before the milliseconds)" if "." in tok else ""
            raise SubtitleError(path, no, f"bad timestamp {tok!r}{hint}: {line.strip()!r}")
        out.append(_ms(*ts.groups()))
    return out[0], out[1], f"{m.group(1)} --> {m.group(2)}"


def _is_srt_timing(line: str) -> bool:
    m = _SRT_TIMING.match(line)
    return bool(m and _SRT_TS.match(m.group(1)) and _SRT_TS.match(m.group(2)))


def _parse_srt(text: str, path: str) -> list[Cue]:
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
                raise SubtitleError(path, i + 1, f"cue number {line} has no timing line after it")
            i += 1
            if "-->" not in lines[i]:
                raise SubtitleError(
                    path,
                    i + 1,
                    f"missing timing line after cue number {line}, got {lines[i].strip()!r}",
                )
        elif "-->" not in line:
            hint = " (this looks like a WebVTT file)" if _keyword(line, "WEBVTT") else ""
            raise SubtitleError(
                path, i + 1, f"expected a cue number or a timing line, got {line[:40]!r}{hint}"
            )
        timing_no = i + 1
        start, end, tokens = _srt_timing(path, timing_no, lines[i])
        i += 1
        text_lines: list[str] = []
        while i < n and lines[i].strip():
            nxt = lines[i + 1] if i + 1 < n else ""
            # A missing blank line between cues: the next cue's number and timing, or timing.
            if _is_srt_timing(lines[i]) or (lines[i].strip().isdigit() and _is_srt_timing(nxt)):
                break
            text_lines.append(lines[i])
            i += 1
        if not text_lines:
            raise SubtitleError(path, timing_no, "cue has no text")
        cues.append(_cue(path, timing_no, start, end, " ".join(text_lines), tokens))
    return cues


# --- SBV (YouTube) ------------------------------------------------------------------------------

_SBV_TS = re.compile(r"^(\d{1,9}):([0-5]\d):([0-5]\d)\.(\d{3})$")


def _sbv_timing(path: str, no: int, line: str) -> tuple[int, int, str]:
    parts = line.strip().split(",")
    if len(parts) != 2:
        raise SubtitleError(
            path, no, f"expected a timing line 'H:MM:SS.mmm,H:MM:SS.mmm', got {line.strip()!r}"
        )
    out = []
    for tok in parts:
        ts = _SBV_TS.match(tok.strip())
        if not ts:
            raise SubtitleError(
                path, no, f"bad timestamp {tok.strip()!r} (SBV wants H:MM:SS.mmm): {line.strip()!r}"
            )
        out.append(_ms(*ts.groups()))
    return out[0], out[1], f"{parts[0].strip()},{parts[1].strip()}"


def _is_sbv_timing(line: str) -> bool:
    parts = line.strip().split(",")
    return len(parts) == 2 and all(_SBV_TS.match(p.strip()) for p in parts)


def _parse_sbv(text: str, path: str) -> list[Cue]:
    lines = text.split("\n")
    n = len(lines)
    cues: list[Cue] = []
    i = 0
    while i < n:
        if not lines[i].strip():
            i += 1
            continue
        timing_no = i + 1
        start, end, tokens = _sbv_timing(path, timing_no, lines[i])
        i += 1
        text_lines: list[str] = []
        while i < n and lines[i].strip() and not _is_sbv_timing(lines[i]):
            text_lines.append(lines[i])
            i += 1
        if not text_lines:
            raise SubtitleError(path, timing_no, "cue has no text")
        cues.append(_cue(path, timing_no, start, end, " ".join(text_lines), tokens))
    return cues


_PARSERS: dict[str, Callable[[str, str], list[Cue]]] = {
    "vtt": _parse_vtt,
    "srt": _parse_srt,
    "sbv": _parse_sbv,
}


def parse_cues(text: str, fmt: str, source: str = "<string>") -> list[Cue]:
    """Cues of subtitle ``text`` in format ``fmt`` (``vtt``, ``srt`` or ``sbv``), sorted by start.

    ``source`` names the text in errors (a path or URI). Times are seconds. For text read from
    a remote filesystem; :func:`read_cues` reads a local file.
    """
    key = fmt.lower().lstrip(".")
    if key not in _PARSERS:
        raise SubtitleError(
            source, None, f"unsupported subtitle format {fmt!r}; expected one of {FORMATS}"
        )
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise SubtitleError(source, None, "empty file")
    return _sorted(_PARSERS[key](text, source))


def read_cues(path: StrPath, fmt: str | None = None) -> list[Cue]:
    """Cues of one video's subtitle file (WebVTT, SRT or SBV), sorted by start; seconds.

    ``fmt`` defaults to the file's extension (case-insensitive). Raises :class:`SubtitleError`
    for an unsupported extension or malformed content, with the file and line.
    """
    name = os.fspath(path)
    if fmt is None:
        fmt = Path(name).suffix.lower().lstrip(".")
        if fmt not in _PARSERS:
            raise SubtitleError(
                name,
                None,
                f"unsupported subtitle extension {Path(name).suffix or '(none)'!r}; "
                "expected .vtt, .srt or .sbv",
            )
    with open(name, "rb") as f:
        data = f.read()
    return parse_cues(_decode(data, name), fmt, name)


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
    return out if math.isfinite(out) else None


def _json_times(start: Any, end: Any, text: Any, where: str) -> tuple[float, float, str] | str:
    """(start, end, text) of one JSON cue, or the problem with it as a string."""
    s, e = _seconds(start), _seconds(end)
    if s is None:
        return f"{where}: start is not a number of seconds: {start!r}"
    if e is None:
        return f"{where}: end is not a number of seconds: {end!r}"
    if not isinstance(text, str):
        return f"{where}: text is not a string: {text!r}"
    if e < s:
        return f"{where}: cue ends before it starts: {s} > {e}"
    return s, e, text


def _json_line(path: str, no: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise SubtitleError(path, no, f"invalid JSON: {e.msg} (column {e.colno})") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer over Python's digit limit
        raise SubtitleError(path, no, f"invalid JSON: {e}") from None


def _tvqa_video(path: str, no: int, obj: Any) -> tuple[str, list[Cue]]:
    """(vid_name, cues) of one TVQA jsonl line, parsed as ``obj``."""
    if not isinstance(obj, dict):
        raise SubtitleError(path, no, f"expected a JSON object, got {type(obj).__name__}")
    vid, subs = obj.get("vid_name"), obj.get("sub")
    if not isinstance(vid, str) or not vid:
        raise SubtitleError(path, no, f"missing or bad 'vid_name': {vid!r}")

    def fail(problem: str) -> SubtitleError:
        return SubtitleError(path, no, problem, vid)

    if not isinstance(subs, list):
        raise fail(f"{vid}: missing or bad 'sub' list: {type(subs).__name__}")
    cues = []
    for k, item in enumerate(subs):
        where = f"{vid} sub[{k}]"
        if not isinstance(item, dict):
            raise fail(f"{where}: expected an object, got {type(item).__name__}")
        missing = [key for key in ("start", "end", "text") if key not in item]
        if missing:
            raise fail(f"{where}: missing {', '.join(missing)}")
        parsed = _json_times(item["start"], item["end"], item["text"], where)
        if isinstance(parsed, str):
            raise fail(parsed)
        speaker, text = _clean_text(parsed[2], spaced_colon=True)
        cues.append(Cue(parsed[0], parsed[1], text, speaker))
    return vid, _sorted(cues)


def _read_text(name: str) -> str:
    with open(name, "rb") as f:
        data = _decode(f.read(), name)
    if not data.strip():
        raise SubtitleError(name, None, "empty file")
    return data


def read_tvqa_jsonl_entries(path: StrPath) -> tuple[dict[str, list[Cue]], list[SubtitleError]]:
    """TVQA subtitles read line by line: ``({vid_name: cues}, errors)``, for a batch.

    A bad line (invalid JSON, a bad cue...) gives one error, with its line and, when the line
    names one, its ``video_id``, and the other lines are still read. A ``vid_name`` on two lines
    is an error on the later line, and that video gets no cues (which line is right is unknown).
    Errors are in line order. An empty or non-UTF-8 file raises. Rules as
    :func:`read_tvqa_jsonl`.
    """
    name = os.fspath(path)
    out: dict[str, list[Cue]] = {}
    errors: list[SubtitleError] = []
    seen: set[str] = set()
    for no, line in enumerate(_read_text(name).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            vid, cues = _tvqa_video(name, no, _json_line(name, no, line))
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
        out[vid] = cues
    return out, errors


def read_tvqa_jsonl(path: StrPath) -> dict[str, list[Cue]]:
    """TVQA subtitles: ``{vid_name: cues}`` from jsonl lines ``{"vid_name", "sub": [...]}``.

    Each ``sub`` item is ``{"text", "start", "end"}`` with times in seconds. TVQA marks speakers
    as ``"Chase : text"``; that prefix (and the general ones of :func:`split_speaker`) becomes the
    speaker. Blank lines are skipped; a repeated ``vid_name`` is an error. Strict: the first bad
    line raises :class:`SubtitleError` (file and line); :func:`read_tvqa_jsonl_entries` goes on.
    """
    out, errors = read_tvqa_jsonl_entries(path)
    if errors:
        raise errors[0]
    return out


class _EntryProblem(Exception):
    """What is wrong with one HowTo100M entry (located by the caller)."""


def _howto100m_rows(vid: str, entry: Any) -> tuple[list[float], list[float], list[str]]:
    """One HowTo100M entry's (starts, ends, raw texts), in file order; raises
    :class:`_EntryProblem` saying what is wrong with it."""
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
    for k, (start, end, raw) in enumerate(zip(*lists.values(), strict=True)):
        parsed = _json_times(start, end, raw, f"video {vid!r} [{k}]")
        if isinstance(parsed, str):
            raise _EntryProblem(parsed)
        starts.append(parsed[0])
        ends.append(parsed[1])
        texts.append(parsed[2])
    return starts, ends, texts


def _howto100m_cues(starts: list[float], ends: list[float], texts: list[str]) -> list[Cue]:
    """Cues of one valid HowTo100M entry (:func:`_howto100m_rows`): text cleaned, sorted."""
    cues = []
    for start, end, raw in zip(starts, ends, texts, strict=True):
        speaker, text = _clean_text(raw)
        cues.append(Cue(start, end, text, speaker))
    return _sorted(cues)


def _howto100m_video(vid: str, entry: Any) -> list[Cue]:
    return _howto100m_cues(*_howto100m_rows(vid, entry))


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _key_lines(text: str, wanted: set[str]) -> dict[str, int]:
    """1-based line of each ``wanted`` key of the top-level object of valid JSON ``text``.

    Walks the object with the json module's own scanner (so escaped keys such as ``"caf\\u00e9"``
    are found), taking the last occurrence of a repeated key as ``json.loads`` does.
    """
    decoder = json.JSONDecoder()
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


def read_howto100m_json_entries(
    path: StrPath,
) -> tuple[dict[str, list[Cue]], list[SubtitleError]]:
    """HowTo100M captions read video by video: ``({video_id: cues}, errors)``, for a batch.

    A bad entry gives one error naming the file, the line where its video id's key is, and the
    problem, with ``video_id`` set; the other videos are still read. Errors are in file order.
    A file that is empty, not UTF-8, not JSON or not an object raises. Rules as
    :func:`read_howto100m_json`.
    """
    name = os.fspath(path)
    data = _read_text(name)
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as e:
        raise SubtitleError(name, e.lineno, f"invalid JSON: {e.msg} (column {e.colno})") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer over Python's digit limit
        raise SubtitleError(name, None, f"invalid JSON: {e}") from None
    if not isinstance(obj, dict):
        first_line = data[: len(data) - len(data.lstrip())].count("\n") + 1
        raise SubtitleError(
            name, first_line, f"expected a JSON object of videos, got {type(obj).__name__}"
        )
    out: dict[str, list[Cue]] = {}
    problems: dict[str, str] = {}
    for vid, entry in obj.items():
        try:
            out[vid] = _howto100m_video(vid, entry)
        except _EntryProblem as e:
            problems[vid] = str(e)
    if not problems:
        return out, []
    lines = _key_lines(data, set(problems))
    errors = [SubtitleError(name, lines.get(vid), p, vid) for vid, p in problems.items()]
    return out, errors


def read_howto100m_json(path: StrPath) -> dict[str, list[Cue]]:
    """HowTo100M captions: ``{video_id: cues}`` from ``{id: {"start": [..], "end": [..],
    "text": [..]}}`` (parallel lists, times in seconds).

    Strict: the first bad entry raises :class:`SubtitleError` naming the file, the line of the
    video's key and the problem; :func:`read_howto100m_json_entries` goes on past it.
    """
    out, errors = read_howto100m_json_entries(path)
    if errors:
        raise errors[0]
    return out
