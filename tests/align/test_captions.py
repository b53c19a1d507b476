"""The HowTo100M caption index: lookups equal the whole-file reader, errors name file, line and
byte, memory stays bounded on 200 k videos, the cache is reused only for the same file."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from align import captions as captions_module
from align import jsonstream
from align.captions import (
    LANGUAGE_SAMPLE_CHARS,
    CaptionIndex,
    CaptionIndexError,
    caption_cache_dir,
    caption_text,
    source_identity,
)
from align.readers import (
    SubtitleError,
    read_howto100m_json_entries,
    read_howto100m_json_reports,
)
from hero_data.types import Cue

REPO = Path(__file__).resolve().parents[2]


def _build(tmp_path: Path, text: str | bytes, chunk: int = 1 << 22, **kw) -> CaptionIndex:
    source = tmp_path / f"caption-{uuid.uuid4().hex[:8]}.json"
    if isinstance(text, str):
        source.write_text(text, encoding="utf-8", newline="")
    else:
        source.write_bytes(text)
    return CaptionIndex.build(source, tmp_path / f"{source.stem}.capidx", chunk_bytes=chunk, **kw)


def _same_as_reader(index: CaptionIndex, source: Path) -> None:
    """Every video of ``source`` looks up exactly as the whole-file reader reads it (its cues,
    and what was skipped or repaired), and every malformed entry fails with the reader's line
    and problem, plus the byte of its key; strict, the same."""
    good, bad = read_howto100m_json_reports(source)
    assert list(index.video_ids()) == sorted([*good, *(e.video_id for e in bad)])
    assert len(index) == len(good) + len(bad)
    for vid, (cues, report) in good.items():
        assert vid in index
        got, got_report = index.cues_report(vid)
        assert got == cues, vid
        assert got_report.counts() == report.counts(), vid
        assert [e.problem for e in got_report.problems] == [e.problem for e in report.problems]
        assert [e.line for e in got_report.problems] == [e.line for e in report.problems]
        assert index.error(vid) is None
    _same_errors(index, source, bad)
    _, strict_bad = read_howto100m_json_entries(source, strict=True)
    _same_errors(index, source, strict_bad, strict=True)


def _same_errors(
    index: CaptionIndex, source: Path, bad: list[SubtitleError], strict: bool = False
) -> None:
    data = source.read_bytes()
    for expected in bad:
        assert expected.video_id is not None
        with pytest.raises(SubtitleError) as info:
            index.cues(expected.video_id, strict=strict)
        got = info.value
        assert (got.path, got.line, got.problem, got.video_id) == (
            str(source),
            expected.line,
            expected.problem,
            expected.video_id,
        )
        assert str(got) == f"{expected} (at byte {got.offset})"
        # The offset is where the video's key starts: its opening quote.
        assert got.offset is not None and data[got.offset : got.offset + 1] == b'"'
        key, _ = json.decoder.scanstring(data[got.offset + 1 :].decode("utf-8", "replace"), 0)
        assert key == expected.video_id
    assert [e.video_id for e in index.errors(strict=strict)] == [e.video_id for e in bad]


# --- exactly what the reader gives ----------------------------------------------------------------

# Hand-written, with what the released file does not have but a caption file may: indentation
# and CRLF line ends, non-ASCII text raw and escaped (a surrogate pair too), escaped keys, a
# video called "start", speakers, markup and entities, numeric strings and integers for times,
# unsorted cues, an empty entry, a repeated id (the last one counts), and malformed entries.
TRICKY = (
    '{\r\n  "a": {"start": [5.4, 0, 2.5], "end": [8.0, 2.5, 5.4],\r\n'
    '         "text": ["third", "first  one", "CHEF: second"]},\r\n'
    '  "caf\\u00e9": {"start": ["1.5"], "end": [" 2 "],\r\n'
    '    "text": ["Caf\\u00e9 &amp; cr\\u00e8me"]},\r\n'
    '  "b": {"start": [2], "end": [1], "text": ["backwards"]},\r\n'
    '  "start": {"start": [0], "end": [2],\r\n'
    '    "text": ["<i>a video</i> called\\nstart \\ud83d\\ude00"]},\r\n'
    '  "empty": {"start": [], "end": [], "text": []},\r\n'
    '  "dup": {"start": [0], "end": [1], "text": ["first dup"]},\r\n'
    '  "日本": {"start": [1e1], "end": [1.1e1], "text": ["こんにちは [Music]"]},\r\n'
    '  "c": {"start": [0, 1], "end": [1], "text": ["x", "y"]},\r\n'
    '  "d": [1, 2],\r\n'
    '  "n": 12345,\r\n'
    '  "e": {"start": [0], "end": [NaN], "text": ["nan"]},\r\n'
    '  "f": {"start": [true], "end": [1], "text": ["bool"]},\r\n'
    '  "g": {"start": [0], "end": [1], "text": [7]},\r\n'
    '  "dup": {"start": [3, 1], "end": [4, 2], "text": ["last", "dup"]}\r\n'
    "}\r\n"
)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 22])
@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_lookups_equal_the_reader(tmp_path: Path, chunk: int, newline: str) -> None:
    """Whatever the read size and line ends, the index gives the reader's cues and errors
    (a lone carriage return ends a line for both)."""
    index = _build(tmp_path, TRICKY.replace("\r\n", newline), chunk)
    _same_as_reader(index, Path(index.source))
    assert index.cues("dup") == [Cue(1.0, 2.0, "dup"), Cue(3.0, 4.0, "last")]
    assert index.cues("a")[1] == Cue(2.5, 5.4, "second", "CHEF")
    # "b" ends before it starts: repaired (strict, a malformed entry, as before recovery).
    assert [e.video_id for e in index.errors()] == ["c", "d", "n", "e", "f", "g"]
    assert [e.video_id for e in index.errors(strict=True)] == ["b", "c", "d", "n", "e", "f", "g"]
    assert index.cues("b") == [Cue(2.0, 2.0, "backwards")]
    assert index.report("b").counts() == {"skipped": {}, "repaired": {"end_before_start": 1}}
    assert index.meta["repeated_ids"] == 1 and index.meta["malformed"] == 6
    assert index.meta["videos_with_malformed_cues"] == 1


class _Trickle:
    """A stream that gives one byte per read, whatever is asked: every token gets cut."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def read(self, size: int = -1) -> bytes:
        out = self.data[self.at : self.at + 1]
        self.at += len(out)
        return out


def test_members_read_a_byte_at_a_time_are_what_json_loads_gives() -> None:
    text = TRICKY.replace("NaN", "-Infinity")  # a value that equals itself
    members = jsonstream.ObjectMembers(_Trickle(text.encode()), "caption.json", 1 << 20)
    got = [(key, value) for key, value, _ in members]

    def plain(value):  # nested objects as dicts, as the members' values are
        if isinstance(value, tuple):
            return {k: plain(v) for k, v in value}
        return [plain(v) for v in value] if isinstance(value, list) else value

    top = json.loads(text, object_pairs_hook=tuple)  # every member, a repeated key twice
    assert got == [(key, plain(value)) for key, value in top]


def test_a_malformed_cue_costs_its_cue_and_a_malformed_entry_its_own_video(
    tmp_path: Path, caplog
) -> None:
    text = (
        '{"ok1": {"start": [0], "end": [1], "text": ["one"]}, '
        '"bad": {"start": [0, 2, 3], "end": [1, 1.5, -1], "text": ["x", "y", "z"]}, '
        '"broken": {"start": [0, 2], "end": [1], "text": ["x", "y"]}, '
        '"ok2": {"start": [0], "end": [1], "text": ["two"]}}'
    )
    index = _build(tmp_path, text)
    assert index.cues("ok1") == [Cue(0.0, 1.0, "one")]
    assert index.cues("ok2") == [Cue(0.0, 1.0, "two")]
    byte = text.index('"bad"')
    with caplog.at_level(logging.WARNING, logger="align.captions"):
        cues, report = index.cues_report("bad")
    assert cues == [Cue(0.0, 1.0, "x"), Cue(2.0, 2.0, "y")]
    assert report.counts() == {
        "skipped": {"bad_timing": 1},
        "repaired": {"end_before_start": 1},
    }
    first = (
        f"{index.source}:1: video 'bad' [1]: cue ends before it starts: 2.0 > 1.5 (at byte {byte})"
    )
    assert [str(e) for e in report.problems] == [
        first,
        f"{index.source}:1: video 'bad' [2]: end is negative: -1.0 (at byte {byte})",
    ]
    assert caplog.messages == [
        f"{first}; 1 malformed cues of this video skipped, 1 repaired "
        "(bad_timing 1, end_before_start 1)"
    ]
    assert index.error("bad") is None and index.report("ok1").counts()["skipped"] == {}
    with pytest.raises(SubtitleError) as info:
        index.cues("bad", strict=True)
    assert str(info.value) == first
    assert (info.value.video_id, info.value.line, info.value.offset) == ("bad", 1, byte)
    with pytest.raises(SubtitleError, match=r":1: video 'broken': lists of different length"):
        index.cues("broken")
    with pytest.raises(KeyError):
        index.cues("absent")
    assert "absent" not in index and 3 not in index and "bad" in index


def test_byte_offsets_count_utf8_bytes_and_a_bom(tmp_path: Path) -> None:
    text = '{"é": {"start": [0], "end": [1], "text": ["ü"]},\n "x": {"start": [1], "end": [0]}}'
    data = b"\xef\xbb\xbf" + text.encode()
    index = _build(tmp_path, data, chunk=5)
    assert index.cues("é") == [Cue(0.0, 1.0, "ü")]
    error = index.error("x")
    assert error is not None and error.line == 2
    assert error.offset == data.index(b'"x"') == 3 + len(text[: text.index('"x"')].encode())


def test_a_lone_surrogate_costs_its_cue_or_its_video_is_left_out(tmp_path: Path, caplog) -> None:
    """JSON may escape half a surrogate pair; no Arrow (UTF-8) text can hold it."""
    text = (
        '{"a": {"start": [0, 1], "end": [1, 2], "text": ["fine", "half \\ud800 a pair"]},\n'
        ' "\\udfff": {"start": [0], "end": [1], "text": ["x"]},\n'
        ' "b": {"start": [0], "end": [1], "text": ["b"]}}'
    )
    with caplog.at_level(logging.WARNING, logger="align.captions"):
        index = _build(tmp_path, text)
    assert index.cues("a") == [Cue(0.0, 1.0, "fine")]
    assert index.report("a").counts()["skipped"] == {"bad_text": 1}
    with pytest.raises(SubtitleError, match=r":1: video 'a' \[1\]: text holds a lone surrogate"):
        index.cues("a", strict=True)
    assert list(index.video_ids()) == ["a", "b"] and index.meta["unusable_ids"] == 1
    assert ":2: video id '\\udfff' is not Unicode text" in caplog.text


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    entries=st.dictionaries(
        st.text(max_size=6),
        st.one_of(
            st.builds(
                lambda cues: {
                    "start": [c[0] for c in cues],
                    "end": [c[0] + c[1] for c in cues],
                    "text": [c[2] for c in cues],
                },
                st.lists(
                    st.tuples(
                        st.one_of(st.integers(0, 10**6), st.floats(0, 1e6)),
                        st.one_of(st.integers(-2, 50), st.floats(-1, 100)),
                        st.text(max_size=12),
                    ),
                    max_size=4,
                ),
            ),
            st.just([1]),
            st.fixed_dictionaries({"start": st.just([0])}),
        ),
        max_size=8,
    ),
    indent=st.sampled_from([None, 0, 2]),
    ascii_only=st.booleans(),
    chunk=st.integers(1, 40),
)
def test_random_files_look_up_as_the_reader_reads_them(
    tmp_path: Path, entries: dict, indent: int | None, ascii_only: bool, chunk: int
) -> None:
    text = json.dumps(entries, indent=indent, ensure_ascii=ascii_only)
    index = _build(tmp_path, text, chunk)
    _same_as_reader(index, Path(index.source))


# --- a file broken as a whole -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "line", "problem", "offset"),
    [
        (b"", None, "empty file", None),
        (b" \n\t\r\n", None, "empty file", None),
        (b"\n\n[1]\n", 3, "expected a JSON object of videos, got list", 2),
        (b"  42", 1, "expected a JSON object of videos, got number", 2),
        (b"  x", 1, "invalid JSON: Expecting value (column 3)", 2),
        (
            b'{"a": {"start": [0],',
            1,
            "invalid JSON: Expecting property name enclosed in double quotes (column 21)",
            20,
        ),
        (b'{"a": {"start": [0, ', 1, "invalid JSON: Expecting value (column 21)", 20),
        (b'{"a": 1,\n "b": 2\n "c": 3}', 3, "invalid JSON: Expecting ',' delimiter (column 2)", 18),
        (b'{"a": 1}\n\n x', 3, "invalid JSON: Extra data (column 2)", 11),
        (
            b'{"a": 1,}',
            1,
            "invalid JSON: Expecting property name enclosed in double quotes (column 9)",
            8,
        ),
        (b'{"a" 1}', 1, "invalid JSON: Expecting ':' delimiter (column 6)", 5),
        (b'{"a": {"t": "x\ny"}}', 1, "invalid JSON: Invalid control character at (column 15)", 14),
        (b'{"a": 1}\n{"b": 2}', 2, "invalid JSON: Extra data (column 1)", 9),
        (b'{"a": 1,\r "b": 2\r\n "c"}', 3, "invalid JSON: Expecting ',' delimiter (column 2)", 19),
        (b'{"a": "\xc3\xa9\xff"}', 1, "not UTF-8 text (invalid start byte)", 9),
        (b'{"a": 1,\n\n "b": "\xc3', 3, "not UTF-8 text (unexpected end of data)", 17),
    ],
)
@pytest.mark.parametrize("chunk", [3, 1 << 22])
def test_a_file_broken_as_a_whole_raises_with_line_column_and_byte(
    tmp_path: Path, data: bytes, line: int | None, problem: str, offset: int | None, chunk: int
) -> None:
    source = tmp_path / "caption.json"
    source.write_bytes(data)
    with pytest.raises(SubtitleError) as info:
        CaptionIndex.build(source, tmp_path / "out" / "i.capidx", chunk_bytes=chunk)
    assert (info.value.line, info.value.problem, info.value.offset) == (line, problem, offset)
    assert str(info.value).startswith(f"{source}:{line}: " if line else f"{source}: ")
    assert os.listdir(tmp_path / "out") == []  # no index, no temporary file


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    where=st.integers(0, 10**6),
    insert=st.sampled_from(
        ["", ",", "}", "]", '"', ":", "x", "1", " ", "{", "[", "\\", "\\u00", "1e", "-Inf", "\n"]
    ),
    cut=st.integers(0, 2),
    chunk=st.integers(1, 30),
)
def test_invalid_json_is_located_where_json_loads_locates_it(
    tmp_path: Path, where: int, insert: str, cut: int, chunk: int
) -> None:
    """Break a valid file at a random place: the index fails exactly where (line, column, byte)
    and as ``json.loads`` does, or, when the text is still valid JSON, reads it all."""
    text = json.dumps(
        {"a": {"start": [0, 1.5], "end": [1, 2]}, "b": {"t": "x é 😀"}, "c": [1, {"d": None}]},
        indent=1,
    )
    at = where % (len(text) + 1)
    broken = text[:at] + insert + text[at + cut :]
    try:
        parsed = json.loads(broken)
    except json.JSONDecodeError as e:
        if not broken.strip() or not broken.lstrip().startswith("{"):
            return  # not an object at all: its own message (tested above)
        with pytest.raises(SubtitleError) as info:
            _build(tmp_path, broken, chunk)
        assert info.value.problem == f"invalid JSON: {e.msg} (column {e.colno})"
        assert (info.value.line, info.value.offset) == (e.lineno, len(broken[: e.pos].encode()))
        return
    if isinstance(parsed, dict):
        index = _build(tmp_path, broken, chunk)
        assert sorted(index.video_ids()) == sorted(parsed)


def test_an_entry_longer_than_the_limit_is_an_error(tmp_path: Path, monkeypatch) -> None:
    """Memory stays bounded whatever the file holds: a string left open is not read whole."""
    monkeypatch.setattr(jsonstream, "MAX_MEMBER_CHARS", 1000)
    text = '{"a": {"start": [0], "end": [1], "text": ["x"]},\n "b": {"text": ["' + "y" * 5000
    with pytest.raises(SubtitleError) as info:
        _build(tmp_path, text, 64)
    assert (
        info.value.problem
        == "an entry longer than 1,000 characters (is a string left unterminated?)"
    )
    assert (info.value.line, info.value.offset) == (2, text.index('"b"'))


# --- language -----------------------------------------------------------------------------------


def test_languages_are_detected_once_per_video_while_indexing(tmp_path: Path) -> None:
    long_text = "word " * 2000
    text = json.dumps(
        {
            "en": {"start": [4, 0], "end": [5, 2], "text": ["a cake", "CHEF: so today we make"]},
            "fr": {"start": [0], "end": [3], "text": ["bonjour à tous"]},
            "silent": {"start": [0], "end": [1], "text": ["<i></i>"]},
            "none": {"start": [], "end": [], "text": []},
            "bad": {"start": [1, 2], "end": [0], "text": ["x"]},
            "long": {"start": [0, 1], "end": [1, 2], "text": [long_text, "tail"]},
        }
    )
    seen: list[str] = []

    def detect(sample: str) -> tuple[str, float]:
        seen.append(sample)
        return ("fr" if "bonjour" in sample else "en"), 0.25 + len(seen) / 10

    index = _build(tmp_path, text, detect=detect, detector="fake 1")
    # Cleaned and sorted cue texts (the speaker is not text), cut to the sample size.
    assert seen == ["so today we make a cake", "bonjour à tous", long_text[:LANGUAGE_SAMPLE_CHARS]]
    assert index.language("en") == ("en", 0.35)
    assert index.language("fr") == ("fr", 0.45)
    assert index.language("long") == ("en", 0.55)
    assert [index.language(v) for v in ("silent", "none", "bad")] == [None, None, None]
    assert index.detector == "fake 1"
    with pytest.raises(KeyError):
        index.language("absent")
    assert _build(tmp_path, text).language("en") is None  # no detector, no languages


def test_caption_text() -> None:
    cues = [Cue(0, 1, "a"), Cue(1, 2, ""), Cue(2, 3, "b c")]
    assert caption_text(cues) == "a b c"
    assert caption_text(cues, limit=3) == "a b"


# --- the cache ----------------------------------------------------------------------------------


def _caption_file(path: Path, n: int = 3, word: str = "w") -> Path:
    entries = {f"v{i}": {"start": [i], "end": [i + 1], "text": [f"{word} {i}"]} for i in range(n)}
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


def _no_build(*args, **kwargs):
    raise AssertionError("the cached index should have been used")


def test_for_file_caches_in_the_toolkit_cache_and_reuses(tmp_path: Path, monkeypatch) -> None:
    source = _caption_file(tmp_path / "caption.json")
    first = CaptionIndex.for_file(source)
    assert first.path.parent == caption_cache_dir()
    assert caption_cache_dir() == Path(os.environ["HERO_CACHE_DIR"]) / "captions"
    assert first.path.suffix == ".capidx" and first.cues("v1") == [Cue(1.0, 2.0, "w 1")]
    monkeypatch.setattr(captions_module, "_build_file", _no_build)
    again = CaptionIndex.for_file(str(source))
    assert again.path == first.path and again.cues("v2") == [Cue(2.0, 3.0, "w 2")]
    assert again.meta["source"]["location"] == str(source)


def test_for_file_rebuilds_when_the_file_changes(tmp_path: Path) -> None:
    source = _caption_file(tmp_path / "caption.json")
    first = CaptionIndex.for_file(source, tmp_path / "cache")
    # The same size, other bytes (and another mtime): another identity.
    _caption_file(source, word="x")
    second = CaptionIndex.for_file(source, tmp_path / "cache")
    assert second.path != first.path and second.cues("v0") == [Cue(0.0, 1.0, "x 0")]
    # Only the modification time.
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = CaptionIndex.for_file(source, tmp_path / "cache")
    assert third.path not in (first.path, second.path)
    # Another detector: its own index.
    fourth = CaptionIndex.for_file(
        source, tmp_path / "cache", detect=lambda t: ("en", 1.0), detector="d"
    )
    assert fourth.path != third.path and fourth.language("v0") == ("en", 1.0)
    assert len(list((tmp_path / "cache").iterdir())) == 4


def test_for_file_rebuilds_a_damaged_cached_index(tmp_path: Path, caplog) -> None:
    source = _caption_file(tmp_path / "caption.json")
    first = CaptionIndex.for_file(source, tmp_path / "cache")
    data = first.path.read_bytes()
    first.path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="align.captions"):
        again = CaptionIndex.for_file(source, tmp_path / "cache")
    assert "truncated caption index" in caplog.text
    assert again.path == first.path and again.cues("v0") == [Cue(0.0, 1.0, "w 0")]


def test_open_rejects_what_is_not_an_index(tmp_path: Path) -> None:
    path = tmp_path / "x.capidx"
    path.write_bytes(b"not an index at all" * 10)
    with pytest.raises(CaptionIndexError, match=r"x\.capidx: not a caption index$"):
        CaptionIndex.open(path)
    index = _build(tmp_path, '{"a": {"start": [0], "end": [1], "text": ["x"]}}')
    data = bytearray(index.path.read_bytes())
    trailer = json.dumps(index.meta).encode()
    assert data.endswith(trailer + len(trailer).to_bytes(8, "little") + b"HEROCAPS")
    other = data.replace(b'"format": 2', b'"format": 9')
    path.write_bytes(bytes(other))
    with pytest.raises(CaptionIndexError, match="caption index format 9, this toolkit reads 2"):
        CaptionIndex.open(path)
    path.write_bytes(bytes(data[:-3]))
    with pytest.raises(CaptionIndexError, match="truncated caption index"):
        CaptionIndex.open(path)


def test_a_cache_folder_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    source = _caption_file(tmp_path / "caption.json")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(CaptionIndexError) as info:
        CaptionIndex.for_file(source, tmp_path / "a-file" / "cache")
    assert str(info.value).startswith(
        f"{tmp_path / 'a-file' / 'cache'}: cannot write a caption index in this folder ("
    )
    assert str(info.value).endswith("); give another cache folder, or set $HERO_CACHE_DIR")


def test_an_index_pickles_as_its_path(tmp_path: Path) -> None:
    index = _build(tmp_path, TRICKY)
    back = pickle.loads(pickle.dumps(index))
    assert back.path == index.path and back.source == index.source
    assert back.cues("a") == index.cues("a")


def test_a_caption_file_changed_while_indexed_is_not_cached(tmp_path: Path) -> None:
    source = _caption_file(tmp_path / "caption.json")

    def detect(text: str) -> tuple[str, float]:  # runs mid-build: change the file then
        with open(source, "a", encoding="utf-8") as f:
            f.write(" ")
        return "en", 1.0

    with pytest.raises(SubtitleError, match=r"caption\.json: changed while it was being indexed"):
        CaptionIndex.for_file(source, tmp_path / "cache", detect=detect)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_remote_caption_file_is_streamed(tmp_path: Path) -> None:
    url = f"memory://hero-captions-{uuid.uuid4().hex}/caption.json"
    try:
        with fsspec.open(url, "wb") as f:
            f.write(TRICKY.encode())
        identity = source_identity(url)
        assert (identity.location, identity.size) == (url, len(TRICKY.encode()))
        index = CaptionIndex.for_file(url, tmp_path / "cache")
        assert index.source == url and index.cues("a")[0] == Cue(0.0, 2.5, "first one")
        assert index.error("b") is None
        error = index.error("b", strict=True)
        assert error is not None and str(error).startswith(f"{url}:6: video 'b' [0]")
    finally:
        fsspec.filesystem("memory").rm(url.rsplit("/", 1)[0], recursive=True)


_CONCURRENT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from align.captions import CaptionIndex

    # Each process waits, its index written to its temporary file, until both are there, so
    # that both build it and both rename it into place.
    rename = os.replace
    def replace(src, dst):
        ready = Path(sys.argv[2]) / f"ready-{os.getpid()}"
        ready.touch()
        deadline = time.monotonic() + 60
        while len(list(Path(sys.argv[2]).glob("ready-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        print("built")
        rename(src, dst)
    os.replace = replace
    index = CaptionIndex.for_file(sys.argv[1], sys.argv[2])
    print(index.path, len(index), index.cues("v59999")[0].text)
    """
)


def test_two_processes_indexing_at_once_both_get_a_whole_index(tmp_path: Path) -> None:
    source = _caption_file(tmp_path / "caption.json", n=60_000)
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONCURRENT, str(source), str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    built, results = zip(*(out.strip().split("\n") for out, _ in outputs), strict=True)
    assert built == ("built", "built")  # both wrote a whole index, then renamed it
    [result] = set(results)
    path, count, text = result.split(" ", 2)
    assert (count, text) == ("60000", "w 59999")
    indexes = [p for p in cache.iterdir() if not p.name.startswith("ready-")]
    assert indexes == [Path(path)]  # one whole index, no temporary file left
    assert CaptionIndex.open(path).cues("v0") == [Cue(0.0, 1.0, "w 0")]


# --- at corpus size: bounded memory -------------------------------------------------------------


def _video(i: int, most_cues: int) -> tuple[str, list[float], list[float], list[str], bool]:
    """Video ``i`` of the synthetic corpus: (id, starts, ends, texts, malformed). Ids are unique
    and not in sorted order in the file; every 20011th entry has a cue ending before it starts."""
    vid = f"{i * 2654435761 % 2**32:08x}_{i % 7}"
    k = i % (most_cues + 1)
    starts = [float(i % 89) + 2.5 * j for j in range(k)]
    ends = [s + 1.25 for s in starts]
    texts = [f"step {j} of video {i}" for j in range(k)]
    bad = i % 20011 == 7
    if bad:
        starts, ends, texts = [3.0, 5.0], [4.0, 4.5], ["fine", "backwards"]
    return vid, starts, ends, texts, bad


def _write_corpus(path: Path, videos: int, most_cues: int) -> dict[str, int]:
    """The released layout (one line, ``json.dump``'s separators); the byte offset of each
    malformed entry's key."""
    bad_offsets = {}
    written = 1
    with open(path, "w", encoding="ascii") as f:
        f.write("{")
        for i in range(videos):
            vid, starts, ends, texts, bad = _video(i, most_cues)
            head = ", " if i else ""
            if bad:
                bad_offsets[vid] = written + len(head)
            entry = (
                f'{head}"{vid}": {{"start": [{", ".join(map(repr, starts))}], '
                f'"end": [{", ".join(map(repr, ends))}], '
                f'"text": [{", ".join(chr(34) + t + chr(34) for t in texts)}]}}'
            )
            f.write(entry)
            written += len(entry)
        f.write("}")
    return bad_offsets


_PEAK_RSS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    def status_mib(field):
        # This process's own figures: getrusage's ru_maxrss would start at the parent's peak
        # (Linux keeps it across exec), hiding what the child itself used.
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise LookupError(field)

    how, source, warm = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    warm.write_text(json.dumps({"w": {"start": [0], "end": [1], "text": ["warm"]}}))
    if how == "index":
        from align.captions import CaptionIndex
        # First a tiny index: pyarrow sets itself up once (about 40 MiB), whatever the file.
        CaptionIndex.build(warm, str(warm) + ".capidx").cues("w")
        read = lambda: CaptionIndex.build(source, source + ".capidx")
    else:  # what hero run did before the index: the whole file at once
        from align.readers import read_howto100m_json_entries
        read_howto100m_json_entries(warm)
        read = lambda: read_howto100m_json_entries(source)
    before = status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from here
    read()
    print(json.dumps({"before": before, "after": status_mib("VmHWM")}))
    """
)


def _peak_growth_mib(how: str, source: Path, tmp_path: Path) -> float:
    """How much a fresh process's peak RSS grows while it reads ``source`` ``how``."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, how, str(source), str(tmp_path / f"warm-{how}.json")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600,
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return figures["after"] - figures["before"]


def _bound_mib(videos: int) -> float:
    """Peak RSS growth allowed to build the index of a file of ``videos`` videos.

    48 MiB whatever the file: the read chunk (4 MiB of bytes, its text, and the buffer it is
    joined to), one batch of 64 k cues as Python objects and as Arrow, 64 k video rows as
    Python objects, and the allocators' slack (about 30 MiB measured). Plus 128 bytes a video:
    the video table (about 45 bytes a video in Arrow), the sort's permutation (8) and one
    sorted column, and what the allocators keep of the chunks it was gathered in: 50 MiB were
    measured for 200 k videos, 156 MiB for 1.22 M. Nothing grows with the cues or the text.
    """
    return 48 + 128 * videos / 2**20


def _check_corpus(index: CaptionIndex, videos: int, most_cues: int, bad: dict, every: int):
    assert len(index) == videos and index.meta["malformed"] == 0
    assert index.meta["videos_with_malformed_cues"] == len(bad)
    ids = list(index.video_ids())
    assert ids == sorted(ids) and len(set(ids)) == videos
    for i in range(0, videos, every):
        vid, starts, ends, texts, malformed = _video(i, most_cues)
        if not malformed:
            assert index.cues(vid) == [Cue(*c) for c in zip(starts, ends, texts, strict=True)]
    for vid, offset in bad.items():
        assert index.cues(vid) == [Cue(3.0, 4.0, "fine"), Cue(5.0, 5.0, "backwards")]
        with pytest.raises(SubtitleError) as info:
            index.cues(vid, strict=True)
        assert str(info.value) == (
            f"{index.source}:1: video '{vid}' [1]: cue ends before it starts: 5.0 > 4.5 "
            f"(at byte {offset})"
        )


def test_200k_videos_are_indexed_in_bounded_memory(tmp_path: Path) -> None:
    """The index of 200 k videos grows a process by less than the bound; reading the file
    whole, as before, grows it by more (about 215 MiB on this 17 MB file)."""
    videos, most_cues = 200_000, 2
    source = tmp_path / "caption.json"
    bad = _write_corpus(source, videos, most_cues)
    bound = _bound_mib(videos)
    indexed = _peak_growth_mib("index", source, tmp_path)
    assert indexed < bound, f"indexing grew the process by {indexed:.1f} MiB, bound {bound:.1f}"
    whole = _peak_growth_mib("whole", source, tmp_path)
    assert whole > bound, f"reading whole grew it by {whole:.1f} MiB, bound {bound:.1f}"
    _check_corpus(CaptionIndex.open(str(source) + ".capidx"), videos, most_cues, bad, every=97)


@pytest.mark.slow
def test_a_full_size_corpus_is_indexed_in_bounded_memory_and_every_lookup_is_exact(
    tmp_path: Path,
) -> None:
    """HowTo100M's 1.2 M videos (with fewer cues each than the real file: memory must not
    depend on them), every video looked up."""
    videos, most_cues = 1_220_000, 6
    source = tmp_path / "caption.json"
    bad = _write_corpus(source, videos, most_cues)
    bound = _bound_mib(videos)
    indexed = _peak_growth_mib("index", source, tmp_path)
    assert indexed < bound, f"indexing grew the process by {indexed:.1f} MiB, bound {bound:.1f}"
    _check_corpus(CaptionIndex.open(str(source) + ".capidx"), videos, most_cues, bad, every=1)


@pytest.mark.parametrize(
    ("start", "end", "text", "reason", "repaired"),
    [
        ("x", 1, "b", "bad_timing", False),
        (-0.5, 1, "b", "bad_timing", False),
        (0, None, "b", "bad_timing", False),
        (0, float("nan"), "b", "bad_timing", False),
        (0, 1, None, "bad_text", False),
        (0, 1, "half \udfff", "bad_text", False),
        (1.5, 1.0, "b", "end_before_start", True),
    ],
)
def test_one_malformed_cue_of_each_kind_costs_that_cue_and_strict_fails_the_video(
    tmp_path: Path, start, end, text, reason: str, repaired: bool
) -> None:
    """HowTo100M entries, per reason: the other cues are kept, exactly one skip (or repair) is
    counted, and strict fails the video with the line, the cue and the byte."""
    entry = {"start": [0.0, start, 2.0], "end": [1.0, end, 3.0], "text": ["a", text, "c"]}
    other = {"start": [0.0], "end": [1.0], "text": ["fine"]}
    index = _build(tmp_path, json.dumps({"v": entry, "w": other}))
    cues, report = index.cues_report("v")
    kept = [Cue(0.0, 1.0, "a"), Cue(2.0, 3.0, "c")]
    if repaired:
        assert cues == [kept[0], Cue(1.5, 1.5, "b"), kept[1]]
        assert report.counts() == {"skipped": {}, "repaired": {reason: 1}}
    else:
        assert cues == kept
        assert report.counts() == {"skipped": {reason: 1}, "repaired": {}}
    with pytest.raises(SubtitleError, match=r":1: video 'v' \[1\]: .* \(at byte 1\)$"):
        index.cues("v", strict=True)
    assert index.cues("w", strict=True) == [Cue(0.0, 1.0, "fine")]
