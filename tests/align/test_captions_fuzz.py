"""HowTo100M caption JSON from elsewhere: the streaming index and the whole-file reader fuzzed
with random bytes, mutated caption files and hostile structures. Either the file is broken as a
whole (both raise SubtitleError naming the file and the position), or every video looks up as
the reader reads it: cues that meet the invariants, or a SubtitleError naming the video's line.

tests/align/test_captions.py already checks valid random files against the reader and invalid
JSON against ``json.loads``'s location; this adds bytes that are not JSON or not UTF-8, hostile
values, bounds on time and heap, and the deep run."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import pytest
from hypothesis import strategies as st

from align.captions import CaptionIndex
from align.readers import SubtitleError, read_howto100m_json_entries
from hero_data.types import Cue
from tests.fuzz_support import (
    DEPTHS,
    INVALID_UTF8,
    MB,
    NUMBER_TEXTS,
    bounded,
    json_values,
    mutations,
    nested,
    run_cases,
    run_measured,
)

SECONDS = 30


def heap_bound_mb(size: int) -> float:
    """Heap of an index build: 32 MiB and 12 times the file (one member is held whole; these
    files are one member or a few)."""
    return 32 + 12 * size / MB


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_located(e: SubtitleError, source: Path, data: bytes) -> None:
    assert e.path == str(source) and str(e).startswith(str(source))
    lines = data.count(b"\n") + data.count(b"\r") + 1
    assert e.line is None or 1 <= e.line <= lines, (e.line, lines)
    assert e.offset is None or 0 <= e.offset <= len(data)


def _check_cues(cues: list[Cue]) -> None:
    assert all(isinstance(c, Cue) for c in cues)
    assert all(math.isfinite(c.start) and math.isfinite(c.end) and c.end >= c.start for c in cues)
    assert [c.start for c in cues] == sorted(c.start for c in cues)


def check_caption_file(folder: Path, data: bytes, chunk: int = 1 << 22) -> str:
    """The property, for the index and the reader of one caption file; returns what happened
    (``"broken"`` or ``"read"``)."""
    source = folder / f"caption-{uuid.uuid4().hex[:8]}.json"
    source.write_bytes(data)
    out = folder / source.stem
    with bounded(SECONDS, heap_bound_mb(len(data))):
        try:
            index = CaptionIndex.build(source, out / "i.capidx", chunk_bytes=chunk)
        except SubtitleError as e:
            _check_located(e, source, data)
            assert list(out.iterdir()) == []  # no index, no temporary file left
            with pytest.raises(SubtitleError) as whole:  # the reader agrees: broken as a whole
                read_howto100m_json_entries(source)
            _check_located(whole.value, source, data)
            return "broken"
        ids = list(index.video_ids())
        for vid in ids:
            try:
                _check_cues(index.cues(vid))
            except SubtitleError as e:
                _check_located(e, source, data)
                assert e.video_id == vid and e.line is not None
    good, bad = read_howto100m_json_entries(source)
    assert ids == sorted(v for v in [*good, *(e.video_id for e in bad)] if _encodable(v))
    for vid, cues in good.items():
        if not _encodable(vid):
            continue
        _check_cues(cues)
        try:
            assert index.cues(vid) == cues
        except SubtitleError as e:  # documented: Arrow text cannot hold a lone surrogate
            assert "lone surrogate" in e.problem
    for e in bad:
        _check_located(e, source, data)
        if _encodable(e.video_id):
            with pytest.raises(SubtitleError) as info:
                index.cues(e.video_id)
            assert (info.value.line, info.value.problem) == (e.line, e.problem)
    return "read"


# --- strategies -----------------------------------------------------------------------------------

SEEDS = [
    json.dumps(
        {
            "vid_a": {"start": [0, 1.5, 3], "end": [1.5, 3, 4.25], "text": ["hi", "Bob: yes", ""]},
            "vid b": {"start": ["2"], "end": [3], "text": ["caf\u00e9 &amp; <b>tea</b>"]},
        },
        indent=1,
    ).encode(),
    b'{"x":{"start":[0],"end":[1],"text":["\\ud83d\\ude00"]},"y":{"start":[],"end":[],"text":[]}}',
    b'\xef\xbb\xbf{\r\n "z": {"text": ["a"], "end": [2], "start": [1]}\r\n}',
]
TOKENS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b'"',
    b"\\",
    b"\\u",
    b"\\ud800",
    b'"start"',
    b'"end"',
    b'"text"',
    b"null",
    b"true",
    b"\n",
    b"\r",
    b"\t",
    b"\x00",
    *(t.encode() for t in NUMBER_TEXTS),
]


def _entries() -> st.SearchStrategy[bytes]:
    times = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**20), 10**20),
        st.sampled_from(["1.5", "x", "", "1e999"]),
        json_values(3),
    )
    texts = st.one_of(st.text(max_size=10), json_values(3))
    entry = st.one_of(
        st.fixed_dictionaries(
            {
                "start": st.lists(times, max_size=4),
                "end": st.lists(times, max_size=4),
                "text": st.lists(texts, max_size=4),
            }
        ),
        json_values(6),
    )
    videos = st.dictionaries(st.text(max_size=8), entry, max_size=5)

    def dump(value: dict, indent: int | None, ascii_only: bool) -> bytes:
        text = json.dumps(value, indent=indent, ensure_ascii=ascii_only, allow_nan=True)
        return text.encode("utf-8", "surrogatepass")

    return st.builds(dump, videos, st.sampled_from([None, 1]), st.booleans())


HOSTILE = st.one_of(st.binary(max_size=512), mutations(SEEDS, TOKENS), _entries())


@DEPTHS
def test_fuzzed_caption_files_index_as_they_read(tmp_path, examples):
    def check(case: tuple[bytes, int]) -> None:
        data, chunk = case
        check_caption_file(tmp_path, data, chunk)

    run_cases(
        "caption json", examples, st.tuples(HOSTILE, st.sampled_from([1, 7, 64, 1 << 22])), check
    )


# --- adversarial files ----------------------------------------------------------------------------

ENTRY = '{"start": [0], "end": [1], "text": ["x"]}'
BIG = 10 * MB

ADVERSARIAL = [
    # (name, file, "broken" or "read", part of the first error: the file's, or a video's)
    ("deep nesting", '{"a": ' + nested(100_000) + "}", "broken", "invalid JSON"),
    ("deep in an entry", '{"a": {"start": ' + nested(100_000) + "}}", "broken", "invalid JSON"),
    ("deep top level", nested(100_000), "broken", "expected a JSON object"),
    # past Python's 4,300-digit limit: read as an infinity, so that cue alone is skipped
    (
        "digits",
        '{"a": {"start": [' + "9" * 5000 + ', 0], "end": [1, 1], "text": ["x", "y"]}}',
        "read",
        None,
    ),
    ("huge end", '{"a": {"start": [1e308], "end": [1e309], "text": ["x"]}}', "read", "inf"),
    ("NaN start", '{"a": {"start": [NaN], "end": [1], "text": ["x"]}}', "read", "nan"),
    ("Infinity", '{"a": {"start": [0], "end": [Infinity], "text": ["x"]}}', "read", "inf"),
    # a negative start is bad timing; the video's only cue, so the video fails (docs/subtitles.md)
    ("negative times", '{"a": {"start": [-5], "end": [-1], "text": ["x"]}}', "read", "negative"),
    ("end before start", '{"a": {"start": [-1], "end": [-5], "text": ["x"]}}', "read", "negative"),
    ("repeated video", f'{{"a": {ENTRY}, "a": {ENTRY}}}', "read", None),
    # the last "start" wins (3 > end 1): a cue ending before it starts is repaired, not an error
    (
        "repeated key",
        '{"a": {"start": [0], "start": [3], "end": [1], "text": ["x"]}}',
        "read",
        None,
    ),
    ("lone surrogate", '{"a": {"start": [0], "end": [1], "text": ["\\udc00"]}}', "read", "lone"),
    pytest.param(  # 12 s here: both parsers clean the text, under tracemalloc
        "10 MB text",
        '{"a": {"start": [0], "end": [1], "text": ["' + "x" * BIG + '"]}}',
        "read",
        None,
        marks=pytest.mark.slow,
        id="10 MB text",
    ),
    ("10 MB id", '{"' + "k" * BIG + f'": {ENTRY}}}', "read", None),
    ("10 MB of space", '{"a": ' + ENTRY + " " * BIG + "}", "read", None),
    ("10 MB unterminated", '{"a": ' + ENTRY + ', "b": ["' + "y" * BIG, "broken", "invalid JSON"),
]


@pytest.mark.parametrize(
    ("name", "text", "outcome", "message"),
    ADVERSARIAL,
    ids=[None if hasattr(a, "marks") else a[0] for a in ADVERSARIAL],
)
def test_adversarial_caption_files(tmp_path, name, text, outcome, message):
    data = text.encode("utf-8")
    assert check_caption_file(tmp_path, data) == outcome
    source = next(tmp_path.glob("caption-*.json"))
    if outcome == "broken":
        with pytest.raises(SubtitleError) as info:
            CaptionIndex.build(source, tmp_path / "again.capidx")
        assert message in info.value.problem
        return
    index = CaptionIndex.build(source, tmp_path / "again.capidx")
    errors = [str(e) for e in index.errors()]
    if message is None:
        assert errors == []
    else:
        assert len(errors) == 1 and message in errors[0] and ":1: video 'a' [0]: " in errors[0]


@pytest.mark.parametrize("bad", INVALID_UTF8)
def test_invalid_utf8_is_located(tmp_path, bad):
    data = b'{"a": ' + ENTRY.encode() + b',\n "b": {"text": ["' + bad + b'"]}}'
    assert check_caption_file(tmp_path, data, chunk=5) == "broken"
    source = next(tmp_path.glob("caption-*.json"))
    with pytest.raises(SubtitleError) as info:
        CaptionIndex.build(source, tmp_path / "again.capidx", chunk_bytes=5)
    assert info.value.line == 2 and info.value.problem.startswith("not UTF-8 text")
    assert info.value.offset == data.index(bad)


@pytest.mark.slow
def test_a_million_tiny_cues_within_bounds(tmp_path):
    """One video of 1 M empty cues, and 1 M videos of one cue: linear time, memory bounded."""
    one = tmp_path / "one.json"
    n = 1_000_000
    one.write_text(
        '{"a": {"start": ['
        + ",".join(["0"] * n)
        + '], "end": ['
        + ",".join(["1"] * n)
        + '], "text": ['
        + ",".join(['""'] * n)
        + "]}}"
    )
    many = tmp_path / "many.json"
    with open(many, "w") as f:
        f.write("{")
        f.write(",".join(f'"v{i}": {{"start": [0], "end": [1], "text": ["t"]}}' for i in range(n)))
        f.write("}")
    for source, videos, cues in ((one, 1, n), (many, n, 1)):
        out = run_measured(
            f"""
            from pathlib import Path
            from align.captions import CaptionIndex
            _mark()
            index = CaptionIndex.build({str(source)!r}, Path({str(tmp_path)!r}) / "i.capidx")
            first = next(iter(index.video_ids()))
            result = [len(index), len(index.cues(first))]
            """,
            timeout=600,
        )
        assert out["result"] == [videos, cues]
        print(
            f"\n{videos} videos of {cues} cues: {out['seconds']:.1f} s, +{out['rss_mb']:.0f} MiB"
            f" RSS over the imports, {out['rss_peak_mb']:.0f} MiB peak RSS in all"
        )
        assert out["rss_mb"] < 1024, out


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_a_byte_order_mark_cut_by_the_first_read(tmp_path, chunk):
    """Found by the fuzz: a read that held the mark alone was taken for the end of the file."""
    data = b"\xef\xbb\xbf" + f'{{"a": {ENTRY}}}'.encode()
    assert check_caption_file(tmp_path, data, chunk) == "read"


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [null], "b": 0.0}',  # a read ending at "0." once made the 0 a whole value
        '{"b": 1.5e-3, "a": ' + ENTRY + "}",
        '{"a": ' + ENTRY + ', "b": -12E+2}',
    ],
)
@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
def test_a_number_cut_by_a_read_is_read_whole(tmp_path, text, chunk):
    assert check_caption_file(tmp_path, text.encode(), chunk) == "read"
