"""Subtitle readers: every shared fixture file, corpus formats, speakers, entities, fuzzing."""

from __future__ import annotations

import json
import logging
import pickle
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from align.readers import (
    ReadReport,
    SubtitleError,
    parse_cues,
    parse_cues_report,
    read_cues,
    read_cues_report,
    read_howto100m_json,
    read_howto100m_json_entries,
    read_howto100m_json_reports,
    read_tvqa_jsonl,
    read_tvqa_jsonl_entries,
    read_tvqa_jsonl_reports,
    split_speaker,
)
from hero_data.types import Cue


def _numbered(times: list[tuple[float, float]], first: int = 1) -> list[Cue]:
    return [Cue(s, e, f"Caption text #{k}") for k, (s, e) in enumerate(times, start=first)]


_SAMPLE_TIMES = [
    (0.5, 7.0),
    (7.0, 11.89),
    (11.89, 16.32),
    (16.32, 21.58),
    (21.58, 23.88),
    (23.88, 27.28),
    (27.28, 30.28),
    (30.28, 36.51),
    (36.51, 38.87),
    (38.87, 45.0),
    (45.0, 47.0),
    (47.0, 50.97),
    (50.97, 54.44),
    (54.44, 58.6),
    (58.6, 61.35),
    (61.35, 64.3),
]

# file name in ../shared/fixtures/subtitles -> the exact cues it reads as
VALID: dict[str, list[Cue]] = {
    "captions_with_bom.vtt": _numbered(_SAMPLE_TIMES[:4]),
    "comments.vtt": [
        Cue(135.0, 140.0, "- Ta en kopp varmt te. - Det är inte varmt."),
        Cue(140.0, 145.0, "- Har en kopp te. - Det smakar som te."),
        Cue(145.0, 150.0, "- Ta en kopp"),
    ],
    "cue_tags.vtt": [
        Cue(16.5, 18.5, "When the moon hits your eye"),
        Cue(18.5, 20.5, "Like a big-a pizza pie"),
        Cue(20.5, 21.5, "That's amore"),
    ],
    "metadata_headers.vtt": _numbered(_SAMPLE_TIMES[:2]),
    "metadata_headers_multiline.vtt": _numbered(_SAMPLE_TIMES[:2]),
    "no_captions.vtt": [],
    "one_caption.srt": _numbered(_SAMPLE_TIMES[:1]),
    "one_caption.vtt": _numbered(_SAMPLE_TIMES[:1]),
    "sample.srt": _numbered(_SAMPLE_TIMES[:5]),
    "sample.vtt": _numbered(_SAMPLE_TIMES),
    "styles.vtt": [Cue(0.0, 10.0, "- Hello world.")],
    "two_captions.sbv": [
        Cue(0.378, 11.378, "Caption text #1"),
        Cue(11.378, 12.305, "Caption text #2 (line 1) Caption text #2 (line 2)"),
    ],
    "using_identifiers.vtt": _numbered(_SAMPLE_TIMES[:6]),
    # Two cues without a blank line between them (the spec: a timing line after cue text starts
    # the next cue); word-timing and class tags removed; the last cue's " </c>" line is markup.
    "youtube_dl.vtt": [
        Cue(286.07, 286.47, "yeah"),
        Cue(286.47, 304.08, "yeah what"),
        Cue(304.08, 305.069, "this will happen is I'm telling"),
        Cue(305.069, 305.4, "this will happen is I'm telling"),
    ],
}


# The SBV files' cue times; #5 is written 0:00:17.484,0:00:16.543 and read as zero-length.
_SBV_TIMES = {
    1: (0.378, 11.378),
    2: (11.378, 12.305),
    3: (13.489, 15.489),
    4: (15.489, 16.234),
    5: (17.484, 17.484),
}


def _sbv(*numbers: int) -> list[Cue]:
    return [Cue(*_SBV_TIMES[k], f"Caption text #{k}") for k in numbers]


def _picked(*numbers: int) -> list[Cue]:
    """Cues ``#k`` of the sample's times, for the files that lose some of them."""
    return [Cue(*_SAMPLE_TIMES[k - 1], f"Caption text #{k}") for k in numbers]


# file name -> (the cues it reads as, what the reader counts, the first problem: its line and
# regex, which strict=True raises). webvtt-py reads all of these files, and the same cues (with
# text) as we do: test_agrees_with_webvtt_py.
RECOVERED: dict[str, tuple[list[Cue], dict, int, str]] = {
    "invalid_timeframe.sbv": (
        _sbv(1, 2, 4, 5),
        {"skipped": {"bad_timing": 1}, "repaired": {"end_before_start": 1}},
        7,
        r"bad timestamp '0:00:13\.f89'",
    ),
    "invalid_timeframe.srt": (
        _picked(1, 2, 3, 4, 5),
        {"skipped": {}, "repaired": {"timestamp_separator": 1}},
        6,
        r"bad timestamp '00:00:11\.890' \(SRT needs a comma",
    ),
    "invalid_timeframe.vtt": (
        _picked(1, 3, 4, 5, 6, 7),
        {"skipped": {"bad_timing": 1}, "repaired": {}},
        6,
        r"bad timestamp '00:00:1d\.890'",
    ),
    # Two timing lines in a row: the first cue has no text (the spec: a timing line after a
    # timing line starts the next cue), the second is cue #2.
    "invalid_timeframe_in_cue_text.vtt": (
        [Cue(0.5, 7.0, "Caption text #1"), Cue(7.0, 10.89, "Caption text #2"), *_picked(3)],
        {"skipped": {"no_text": 1}, "repaired": {}},
        7,
        r"timing line where cue text was expected",
    ),
    "missing_caption_text.sbv": (
        _sbv(1, 3, 4, 5),
        {"skipped": {"no_text": 1}, "repaired": {"end_before_start": 1}},
        4,
        r"cue has no text",
    ),
    "missing_caption_text.srt": (
        _picked(1, 3, 4, 5),
        {"skipped": {"no_text": 1}, "repaired": {}},
        6,
        r"cue has no text",
    ),
    "missing_caption_text.vtt": (
        _picked(1, 3, 4, 5),
        {"skipped": {"no_text": 1}, "repaired": {}},
        6,
        r"cue has no text",
    ),
    "missing_timeframe.sbv": (
        _sbv(1, 3, 4, 5),
        {"skipped": {"missing_timing": 1}, "repaired": {"end_before_start": 1}},
        4,
        r"expected a timing line .*got 'Caption text #2'",
    ),
    "missing_timeframe.srt": (
        _picked(1, 3, 4, 5),
        {"skipped": {"missing_timing": 1}, "repaired": {}},
        6,
        r"missing timing line after cue number 2",
    ),
    "missing_timeframe.vtt": (
        _picked(1, 3, 4, 5, 6, 7),
        {"skipped": {"missing_timing": 1}, "repaired": {}},
        6,
        r"missing timing line 'start --> end' before 'Caption text #2'",
    ),
    # webvtt-py's valid sample: its last cue (line 14) runs from 0:00:17.484 back to
    # 0:00:16.543. Its text is read; its end becomes its start (no span can be trusted), so
    # cleaning drops it as zero-length.
    "sample.sbv": (
        [
            *_sbv(1, 2),
            Cue(13.489, 15.489, "Caption text #3 (line 1) Caption text #3 (line 2)"),
            *_sbv(4, 5),
        ],
        {"skipped": {}, "repaired": {"end_before_start": 1}},
        14,
        r"cue ends before it starts: 0:00:17\.484,0:00:16\.543",
    ),
}

# file name -> (line of the problem or None, regex for the problem): nothing in these reads as
# a cue, so they are rejected with or without strict.
BROKEN: dict[str, tuple[int | None, str]] = {
    "LICENSE.webvtt-py": (None, r"unsupported subtitle extension '\.webvtt-py'"),
    "empty.vtt": (None, r"empty file$"),
    "invalid.vtt": (1, r"missing WEBVTT header"),
    "invalid_format.sbv": (1, r"expected a timing line .*got 'some text'"),
    "invalid_format1.srt": (1, r"cue number 1 has no timing line after it"),
    "invalid_format2.srt": (1, r"expected a cue number or a timing line, got 'some text'"),
    "invalid_format3.srt": (2, r"missing timing line after cue number 1, got 'some text'"),
    "invalid_format4.srt": (1, r"expected a cue number or a timing line, got 'some text'"),
}


def _error_pattern(path: Path, line: int | None, problem: str) -> str:
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    return "^" + re.escape(where) + problem


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_fixture_reads_as_expected(shared_fixtures: Path, name: str):
    path = shared_fixtures / "subtitles" / name
    assert read_cues(path) == VALID[name]
    assert read_cues_report(path, strict=True) == (VALID[name], ReadReport())


@pytest.mark.parametrize("name", sorted(RECOVERED))
def test_malformed_fixture_keeps_its_good_cues_and_strict_rejects_it(
    shared_fixtures: Path, name: str, caplog
):
    path = shared_fixtures / "subtitles" / name
    cues, counts, line, problem = RECOVERED[name]
    with caplog.at_level(logging.WARNING, logger="align.readers"):
        got, report = read_cues_report(path)
    assert got == cues
    assert report.counts() == counts
    assert [e.line for e in report.problems][:1] == [line]
    # Each problem is logged once, naming the file and its line.
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == report.skipped_total + report.repaired_total
    assert logged[0].startswith(f"{path}:{line}: ")
    with pytest.raises(SubtitleError, match=_error_pattern(path, line, problem)) as info:
        read_cues(path, strict=True)
    assert (info.value.path, info.value.line) == (str(path), line)


@pytest.mark.parametrize("name", sorted(BROKEN))
@pytest.mark.parametrize("strict", [False, True])
def test_broken_fixture_names_file_line_and_problem(shared_fixtures: Path, name: str, strict):
    path = shared_fixtures / "subtitles" / name
    line, problem = BROKEN[name]
    with pytest.raises(SubtitleError, match=_error_pattern(path, line, problem)) as info:
        read_cues(path, strict=strict)
    assert info.value.path == str(path)
    assert info.value.line == line
    if not strict and line is not None and name != "invalid.vtt":
        assert "; no cue could be read (" in str(info.value)


def test_every_fixture_file_has_an_expectation(shared_fixtures: Path):
    names = {p.name for p in (shared_fixtures / "subtitles").iterdir()}
    assert not set(VALID) & set(BROKEN) and not set(VALID) & set(RECOVERED)
    assert not set(RECOVERED) & set(BROKEN)
    assert names == set(VALID) | set(BROKEN) | set(RECOVERED)


def test_every_fixture_file_parses_or_raises_subtitle_error(shared_fixtures: Path):
    """Runs over the folder as it is, so a new fixture file is covered before it is tabled."""
    for path in sorted((shared_fixtures / "subtitles").iterdir()):
        for fmt in (None, "vtt", "srt", "sbv"):
            for strict in (False, True):
                try:
                    cues = read_cues(path, fmt, strict=strict)
                except SubtitleError as e:
                    assert str(e).startswith(f"{path}:"), str(e)
                else:
                    assert [c.start for c in cues] == sorted(c.start for c in cues)


# --- format details -----------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_extension_is_case_insensitive_and_fmt_overrides_it(tmp_path: Path):
    srt = "1\n00:00:01,000 --> 00:00:02,500\nHi\n"
    assert read_cues(_write(tmp_path, "A.SRT", srt)) == [Cue(1.0, 2.5, "Hi")]
    assert read_cues(_write(tmp_path, "a.txt", srt), fmt="SRT") == [Cue(1.0, 2.5, "Hi")]
    assert read_cues(_write(tmp_path, "b.txt", srt), fmt=".srt") == [Cue(1.0, 2.5, "Hi")]
    with pytest.raises(SubtitleError, match=r"unsupported subtitle extension '\.txt'"):
        read_cues(tmp_path / "a.txt")
    with pytest.raises(SubtitleError, match=r"a\.txt: unsupported subtitle format 'ass'"):
        read_cues(tmp_path / "a.txt", fmt="ass")


def test_srt_given_as_vtt_and_vtt_given_as_srt(tmp_path: Path):
    path = _write(tmp_path, "x.vtt", "1\n00:00:01,000 --> 00:00:02,000\nHi\n")
    with pytest.raises(SubtitleError, match=_error_pattern(path, 1, "missing WEBVTT header")):
        read_cues(path)
    path = _write(tmp_path, "y.srt", "WEBVTT\n\n00:01.000 --> 00:02.000\nHi\n")
    with pytest.raises(SubtitleError, match=_error_pattern(path, 1, ".*looks like a WebVTT")):
        read_cues(path)


def test_vtt_settings_identifiers_notes_regions_and_crlf():
    text = (
        "WEBVTT\r\nKind: captions\r\n\r\nREGION\r\nid:fred width:40%\r\n\r\n"
        "NOTE a comment\r\n\r\nintro\r\n01:02.500 --> 1:01:02.000 align:start position:0%\r\n"
        "<v.loud Mary Ann>Hello &amp; <i>good</i>bye</v>\r\nsecond line\r\n"
    )
    assert parse_cues(text, "vtt") == [Cue(62.5, 3662.0, "Hello & goodbye second line", "Mary Ann")]


def test_vtt_keeps_a_whitespace_line_inside_its_cue():
    # YouTube's first cue: the old line is " ", which is text, not the end of the cue.
    text = "WEBVTT\n\n00:00.000 --> 00:01.000\n \nhello<00:00.500><c> world</c>\n"
    assert parse_cues(text, "vtt") == [Cue(0.0, 1.0, "hello world")]


@pytest.mark.parametrize(
    ("raw", "text", "speaker"),
    [
        ("<v Joey>How you doin'?", "How you doin'?", "Joey"),
        ("<v.first.loud Esme>It's a blue apple tree!</v>", "It's a blue apple tree!", "Esme"),
        ("<ruby>漢<rt>kan</rt></ruby>字", "漢字", None),
        ("<c.colorE5E5E5>a</c><00:00:01.000><u>b</u> <b>c</b>", "ab c", None),
        ("Tom &amp; Jerry &lt;3 &gt; you", "Tom & Jerry <3 > you", None),
        ("&lt;i&gt; is a tag", "<i> is a tag", None),
        ("no&nbsp;break&#39;s &quot;here&quot;", 'no break\'s "here"', None),
        ("a < b and c > d", "a < b and c > d", None),
        ("(Joey:) Hi &amp; bye", "Hi & bye", "Joey"),
        ("JOEY: hi", "hi", "JOEY"),
    ],
)
def test_cue_text_markup_entities_and_speakers(raw: str, text: str, speaker: str | None):
    vtt = f"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n{raw}\n"
    assert parse_cues(vtt, "vtt") == [Cue(1.0, 2.0, text, speaker)]


def test_srt_markup_speakers_missing_numbers_and_missing_blank_lines():
    text = (
        "\n\n3\n00:00:05,000 --> 00:00:06,000 X1:10 X2:20\n{\\an8}<i>RACHEL: Later</i>\n"
        "1\n00:00:01,000 --> 00:00:02,000\n<font color='red'>Hi</font>\n"
        "00:00:02,000 --> 00:00:03,000\nline one\nline two\n   \n"
    )
    assert parse_cues(text, "srt") == [
        Cue(1.0, 2.0, "Hi"),
        Cue(2.0, 3.0, "line one line two"),
        Cue(5.0, 6.0, "Later", "RACHEL"),
    ]


def test_readers_sort_by_start_stably():
    text = (
        "WEBVTT\n\n00:05.000 --> 00:06.000\nlate\n\n00:01.000 --> 00:03.000\nfirst\n\n"
        "00:01.000 --> 00:02.000\nsecond\n"
    )
    assert [c.text for c in parse_cues(text, "vtt")] == ["first", "second", "late"]


def test_zero_length_cue_is_read_and_end_before_start_is_made_zero_length(tmp_path: Path):
    assert parse_cues("0:00:01.000,0:00:01.000\nx\n", "sbv") == [Cue(1.0, 1.0, "x")]
    path = _write(tmp_path, "b.srt", "1\n00:00:02,000 --> 00:00:01,000\nx\n")
    cues, report = read_cues_report(path)
    assert cues == [Cue(2.0, 2.0, "x")] and report.counts()["repaired"] == {"end_before_start": 1}
    with pytest.raises(SubtitleError, match=_error_pattern(path, 2, "cue ends before it starts")):
        read_cues(path, strict=True)


# Files of one malformed cue: nothing can be read, so they are rejected with or without strict.
@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize(
    ("fmt", "text", "line", "problem"),
    [
        (
            "vtt",
            "WEBVTT\n\n00:00:01.000 --> 00:00:60.000\nx\n",
            3,
            r"bad timestamp '00:00:60\.000'",
        ),
        ("vtt", "WEBVTT\n\n00:00:01.000 -->\nx\n", 3, r"bad timestamp ''"),
        ("vtt", "WEBVTTX\n", 1, "missing WEBVTT header"),
        ("vtt", "WEBVTT\n\n1\n2\nx\n", 3, "missing timing line"),
        ("srt", "1\n00:00:01,000 --> \nx\n", 2, "bad timing line"),
        ("sbv", "0:00:01.000,0:00:02.000,0:00:03.000\nx\n", 1, "expected a timing line"),
        ("sbv", "0:00:01.000,0:00:02.000\n", 1, "cue has no text"),
    ],
)
def test_malformed_text_table(fmt: str, text: str, line: int, problem: str, strict: bool):
    with pytest.raises(SubtitleError, match=_error_pattern(Path("mem"), line, problem)):
        parse_cues(text, fmt, source="mem", strict=strict)


def test_the_other_millisecond_separator_is_read_as_the_same_time():
    for fmt, text in [
        ("srt", "1\n00:00:01.000 --> 00:00:02,000\nx\n"),
        ("vtt", "WEBVTT\n\n00:00:01,000 --> 00:00:02.000\nx\n"),
    ]:
        cues, report = parse_cues_report(text, fmt, source="mem")
        assert cues == [Cue(1.0, 2.0, "x")]
        assert report.counts() == {"skipped": {}, "repaired": {"timestamp_separator": 1}}
        needs = "a comma" if fmt == "srt" else "a dot"
        with pytest.raises(SubtitleError, match=rf"^mem:\d: bad timestamp .*needs {needs}"):
            parse_cues(text, fmt, source="mem", strict=True)


def test_bom_whitespace_only_and_bad_utf8(tmp_path: Path):
    path = _write(tmp_path, "bom.srt", b"\xef\xbb\xbf1\n00:00:01,000 --> 00:00:02,000\nx\n")
    assert read_cues(path) == [Cue(1.0, 2.0, "x")]
    path = _write(tmp_path, "blank.vtt", " \n\n\t\n")
    with pytest.raises(SubtitleError, match=_error_pattern(path, None, "empty file")):
        read_cues(path)
    path = _write(
        tmp_path, "latin1.srt", "1\n00:00:01,000 --> 00:00:02,000\ncafé\n".encode("cp1252")
    )
    with pytest.raises(SubtitleError, match=_error_pattern(path, 3, "not UTF-8 text")):
        read_cues(path, strict=True)
    # Recovering: the cue with the byte is skipped; it was the only one, so nothing is read.
    pattern = _error_pattern(path, 2, r"cue text is not UTF-8 \(byte 0xE9\): .*no cue could")
    with pytest.raises(SubtitleError, match=pattern):
        read_cues(path)
    path = _write(
        tmp_path,
        "two.srt",
        "1\n00:00:01,000 --> 00:00:02,000\ncafé\n\n2\n00:00:03,000 --> 00:00:04,000\nok\n".encode(
            "cp1252"
        ),
    )
    cues, report = read_cues_report(path)
    assert cues == [Cue(3.0, 4.0, "ok")] and report.counts()["skipped"] == {"bad_text": 1}


def test_subtitle_error_message_attributes_and_pickling():
    err = SubtitleError("a.vtt", 3, "bad")
    assert (str(err), err.path, err.line, err.problem) == ("a.vtt:3: bad", "a.vtt", 3, "bad")
    assert str(SubtitleError("a.vtt", None, "empty file")) == "a.vtt: empty file"
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.line, back.video_id) == ("a.vtt:3: bad", 3, None)
    assert isinstance(err, ValueError)
    entry = pickle.loads(pickle.dumps(SubtitleError("c.json", 7, "video 'v': bad", "v")))
    assert (str(entry), entry.video_id, entry.offset) == ("c.json:7: video 'v': bad", "v", None)
    located = pickle.loads(pickle.dumps(SubtitleError("c.json", 1, "video 'v': bad", "v", 734)))
    assert (str(located), located.offset) == ("c.json:1: video 'v': bad (at byte 734)", 734)


# --- speakers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "speaker", "rest"),
    [
        ("(Joey:) How you doin'?", "Joey", "How you doin'?"),
        ("(Dr. Green): Sit down.", "Dr. Green", "Sit down."),
        ("[Monica:] Hi", "Monica", "Hi"),
        ("JOEY: How you doin'?", "JOEY", "How you doin'?"),
        ("MR. GELLER: Hi", "MR. GELLER", "Hi"),
        ("MAN #2: Over here!", "MAN #2", "Over here!"),
        ("JOSÉ: Hola", "JOSÉ", "Hola"),
        ("NARRATOR:", "NARRATOR", ""),
        ("Note: this is a sentence.", None, "Note: this is a sentence."),
        ("Joey : not without spaced_colon", None, "Joey : not without spaced_colon"),
        ("(laughs) Stop it.", None, "(laughs) Stop it."),
        ("We meet at 10:30 sharp", None, "We meet at 10:30 sharp"),
        ("AT 10:30 WE MEET", None, "AT 10:30 WE MEET"),
        ("I: one letter is not a name", None, "I: one letter is not a name"),
        ("See http://example.com", None, "See http://example.com"),
        ("THE FIVE WORDS ARE HERE: no", None, "THE FIVE WORDS ARE HERE: no"),
        ("Plain text", None, "Plain text"),
        ("", None, ""),
    ],
)
def test_split_speaker(text: str, speaker: str | None, rest: str):
    assert split_speaker(text) == (speaker, rest)


@pytest.mark.parametrize(
    ("text", "speaker", "rest"),
    [
        (" Chase : That's all this is?", "Chase", "That's all this is?"),
        ("Dr. Wilson : Hi", "Dr. Wilson", "Hi"),
        ("(House:) Idiot.", "House", "Idiot."),
        ("and then : what", None, "and then : what"),
        ("Why? : because", None, "Why? : because"),
    ],
)
def test_split_speaker_spaced_colon(text: str, speaker: str | None, rest: str):
    assert split_speaker(text, spaced_colon=True) == (speaker, rest)


# --- TVQA jsonl ---------------------------------------------------------------------------------


def _jsonl(tmp_path: Path, *lines: object, name: str = "tvqa.jsonl") -> Path:
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines)
    return _write(tmp_path, name, text + "\n")


def test_tvqa_jsonl(tmp_path: Path):
    path = _jsonl(
        tmp_path,
        {
            "vid_name": "house_s01e01_seg02_clip_00",
            "sub": [
                {"text": " Chase : That's all this is?", "start": 3.1, "end": 4.25},
                {"text": "  Foreman :  It&#39;s  <i>not</i> ", "start": 0, "end": 2},
            ],
        },
        "",
        {"vid_name": "friends_s01e01_seg01_clip_00", "sub": []},
    )
    assert read_tvqa_jsonl(path) == {
        "house_s01e01_seg02_clip_00": [
            Cue(0.0, 2.0, "It's not", "Foreman"),
            Cue(3.1, 4.25, "That's all this is?", "Chase"),
        ],
        "friends_s01e01_seg01_clip_00": [],
    }


_GOOD_TVQA = {"vid_name": "v0", "sub": [{"text": "a", "start": 0.0, "end": 1.0}]}


@pytest.mark.parametrize(
    ("second_line", "problem"),
    [
        ('{"vid_name": "v1", "sub": [', r"invalid JSON: Expecting value \(column 28\)"),
        ("[1, 2]", "expected a JSON object, got list"),
        ({"sub": []}, "missing or bad 'vid_name'"),
        ({"vid_name": "v1"}, "v1: missing or bad 'sub' list"),
        ({"vid_name": "v1", "sub": ["x"]}, r"v1 sub\[0\]: expected an object, got str"),
        ({"vid_name": "v1", "sub": [{"start": 0, "end": 1}]}, r"v1 sub\[0\]: missing text"),
        (
            {"vid_name": "v1", "sub": [{"text": "a", "start": "soon", "end": 1}]},
            r"v1 sub\[0\]: start is not a number of seconds: 'soon'",
        ),
        (
            {"vid_name": "v1", "sub": [{"text": "a", "start": 0, "end": True}]},
            r"v1 sub\[0\]: end is not a number of seconds: True",
        ),
        (
            {"vid_name": "v1", "sub": [{"text": "a", "start": 0, "end": 1e999}]},
            r"v1 sub\[0\]: end is not",
        ),
        (
            {"vid_name": "v1", "sub": [{"text": 7, "start": 0, "end": 1}]},
            r"v1 sub\[0\]: text is not a",
        ),
        (
            {"vid_name": "v1", "sub": [{"text": "a", "start": 2, "end": 1}]},
            r"v1 sub\[0\]: cue ends before it starts: 2\.0 > 1\.0",
        ),
        (_GOOD_TVQA, "duplicate vid_name 'v0'"),
    ],
)
def test_tvqa_jsonl_errors_name_the_line(tmp_path: Path, second_line: object, problem: str):
    path = _jsonl(tmp_path, _GOOD_TVQA, second_line)
    with pytest.raises(SubtitleError, match=_error_pattern(path, 2, problem)):
        read_tvqa_jsonl(path, strict=True)
    # Recovering: a line whose only cue is malformed still reads no cue, so it is still bad
    # (with the same first problem); a cue that ends before it starts is repaired.
    if "ends before" in problem:
        assert read_tvqa_jsonl(path)["v1"] == [Cue(2.0, 2.0, "a")]
    else:
        with pytest.raises(SubtitleError, match=_error_pattern(path, 2, problem)):
            read_tvqa_jsonl(path)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("x", "not_a_cue"),
        ({"start": 0, "end": 1}, "no_text"),
        ({"text": "a", "end": 1}, "missing_timing"),
        ({"text": "a", "start": "soon", "end": 1}, "bad_timing"),
        ({"text": "a", "start": -1, "end": 1}, "bad_timing"),
        ({"text": "a", "start": 0, "end": float("nan")}, "bad_timing"),
        ({"text": "a", "start": 0, "end": 1e999}, "bad_timing"),
        ({"text": ["a"], "start": 0, "end": 1}, "bad_text"),
        ({"text": "half \ud800", "start": 0, "end": 1}, "bad_text"),
    ],
)
def test_tvqa_one_malformed_cue_costs_that_cue(tmp_path: Path, bad: object, reason: str):
    good = [{"text": "a", "start": 0.0, "end": 1.0}, {"text": "b", "start": 2.0, "end": 3.0}]
    path = _jsonl(tmp_path, {"vid_name": "v", "sub": [good[0], bad, good[1]]})
    videos, errors = read_tvqa_jsonl_reports(path)
    assert errors == []
    cues, report = videos["v"]
    assert cues == [Cue(0.0, 1.0, "a"), Cue(2.0, 3.0, "b")]
    assert report.counts() == {"skipped": {reason: 1}, "repaired": {}}
    assert str(report.problems[0]).startswith(f"{path}:1: v sub[1]: ")
    with pytest.raises(SubtitleError, match=_error_pattern(path, 1, r"v sub\[1\]: ")):
        read_tvqa_jsonl(path, strict=True)


def test_tvqa_entries_keep_the_good_lines(tmp_path: Path):
    path = _jsonl(
        tmp_path,
        _GOOD_TVQA,
        '{"vid_name": "broken json", ',
        {"vid_name": "v2", "sub": [{"text": "a", "start": 3, "end": 1}]},
        {"vid_name": "v3", "sub": [{"text": "b", "start": 0, "end": 1}]},
        {"vid_name": "v3", "sub": []},
        {"vid_name": "v4", "sub": [{"text": "c", "start": 1, "end": 2}]},
    )
    cues, errors = read_tvqa_jsonl_entries(path)
    assert cues == {
        "v0": [Cue(0.0, 1.0, "a")],
        "v2": [Cue(3.0, 3.0, "a")],  # its end before its start: made zero-length
        "v4": [Cue(1.0, 2.0, "c")],
    }
    assert [(e.line, e.video_id) for e in errors] == [(2, None), (5, "v3")]
    assert str(errors[0]).startswith(f"{path}:2: invalid JSON")
    assert str(errors[1]) == f"{path}:5: duplicate vid_name 'v3'"
    with pytest.raises(SubtitleError, match=_error_pattern(path, 2, "invalid JSON")):
        read_tvqa_jsonl(path)
    # Strict, the malformed cue makes its line bad, as before recovery.
    cues, errors = read_tvqa_jsonl_entries(path, strict=True)
    assert cues == {"v0": [Cue(0.0, 1.0, "a")], "v4": [Cue(1.0, 2.0, "c")]}
    assert [(e.line, e.video_id) for e in errors] == [(2, None), (3, "v2"), (5, "v3")]
    assert str(errors[1]) == f"{path}:3: v2 sub[0]: cue ends before it starts: 3.0 > 1.0"


def test_tvqa_bytes_that_are_not_utf8_cost_their_cue(tmp_path: Path):
    lines = [
        b'{"vid_name": "v", "sub": [{"text": "caf\xe9", "start": 0, "end": 1},'
        b' {"text": "ok", "start": 1, "end": 2}]}',
        b'{"vid_name": "w\xe9", "sub": []}',
        b'{"vid_name": "x", "sub": [{"text": "fine", "start": 0, "end": 1}]}',
    ]
    path = _write(tmp_path, "tv.jsonl", b"\n".join(lines) + b"\n")
    videos, errors = read_tvqa_jsonl_reports(path)
    assert {vid: cues for vid, (cues, _) in videos.items()} == {
        "v": [Cue(1.0, 2.0, "ok")],
        "x": [Cue(0.0, 1.0, "fine")],
    }
    assert videos["v"][1].counts()["skipped"] == {"bad_text": 1}
    assert [(e.line, str(e)) for e in errors] == [
        (2, f"{path}:2: 'vid_name' is not Unicode text: 'w\\udce9'")
    ]
    with pytest.raises(SubtitleError, match=_error_pattern(path, 1, "not UTF-8 text")):
        read_tvqa_jsonl_entries(path, strict=True)


def test_tvqa_jsonl_numeric_strings_and_empty_file(tmp_path: Path):
    path = _jsonl(tmp_path, {"vid_name": "v", "sub": [{"text": "a", "start": "1", "end": "2.5"}]})
    assert read_tvqa_jsonl(path) == {"v": [Cue(1.0, 2.5, "a")]}
    path = _write(tmp_path, "empty.jsonl", "\n\n")
    with pytest.raises(SubtitleError, match=_error_pattern(path, None, "empty file")):
        read_tvqa_jsonl(path)


# --- HowTo100M json -----------------------------------------------------------------------------


def _json(tmp_path: Path, obj: object) -> Path:
    return _write(tmp_path, "caption.json", json.dumps(obj, indent=1))


def test_howto100m_json(tmp_path: Path):
    path = _json(
        tmp_path,
        {
            "-0Ja_sNXxzE": {
                "start": [5.4, 0.0, 2.5],
                "end": [8.0, 2.5, 5.4],
                "text": ["third", "first  one", "CHEF: second"],
            },
            "empty": {"start": [], "end": [], "text": []},
        },
    )
    assert read_howto100m_json(path) == {
        "-0Ja_sNXxzE": [
            Cue(0.0, 2.5, "first one"),
            Cue(2.5, 5.4, "second", "CHEF"),
            Cue(5.4, 8.0, "third"),
        ],
        "empty": [],
    }


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ({"v": [1]}, "video 'v': expected an object, got list"),
        ({"v": {"start": [0], "end": [1]}}, "video 'v': missing or bad 'text' list: NoneType"),
        (
            {"v": {"start": [0, 1], "end": [1, 2], "text": ["a"]}},
            r"video 'v': lists of different length \{'start': 2, 'end': 2, 'text': 1\}",
        ),
        (
            {"v": {"start": [0, "x"], "end": [1, 2], "text": ["a", "b"]}},
            r"video 'v' \[1\]: start is not a number of seconds: 'x'",
        ),
        ({"v": {"start": [0], "end": [None], "text": ["a"]}}, r"video 'v' \[0\]: end is not a"),
        ({"v": {"start": [0], "end": [1], "text": [None]}}, r"video 'v' \[0\]: text is not a"),
        ({"v": {"start": [3], "end": [1], "text": ["a"]}}, r"video 'v' \[0\]: cue ends before"),
    ],
)
def test_howto100m_json_errors_name_the_file_line_and_video(
    tmp_path: Path, obj: object, problem: str
):
    path = _json(tmp_path, obj)  # indented: the key "v" is on line 2
    with pytest.raises(SubtitleError, match=_error_pattern(path, 2, problem)) as info:
        read_howto100m_json(path, strict=True)
    assert (info.value.line, info.value.video_id) == (2, "v")
    # Recovering: the entry is still bad when no cue of it can be read (with the same first
    # problem); the one with a good cue, and the backwards one, are read.
    if r"\[1\]" in problem:
        assert read_howto100m_json(path) == {"v": [Cue(0.0, 1.0, "a")]}
    elif "cue ends before" in problem:
        assert read_howto100m_json(path) == {"v": [Cue(3.0, 3.0, "a")]}
    else:
        with pytest.raises(SubtitleError, match=_error_pattern(path, 2, problem)):
            read_howto100m_json(path)


@pytest.mark.parametrize(
    ("start", "end", "text", "reason"),
    [
        ("x", 1, "b", "bad_timing"),
        (-0.5, 1, "b", "bad_timing"),
        (0, None, "b", "bad_timing"),
        (0, float("inf"), "b", "bad_timing"),
        (0, 1, None, "bad_text"),
        (0, 1, "half \udfff", "bad_text"),
    ],
)
def test_howto100m_one_malformed_cue_costs_that_cue(tmp_path, start, end, text, reason):
    entry = {"start": [0.0, start, 2.0], "end": [1.0, end, 3.0], "text": ["a", text, "c"]}
    path = _json(tmp_path, {"v": entry})
    videos, errors = read_howto100m_json_reports(path)
    assert errors == []
    cues, report = videos["v"]
    assert cues == [Cue(0.0, 1.0, "a"), Cue(2.0, 3.0, "c")]
    assert report.counts() == {"skipped": {reason: 1}, "repaired": {}}
    assert str(report.problems[0]).startswith(f"{path}:2: video 'v' [1]: ")
    with pytest.raises(SubtitleError, match=_error_pattern(path, 2, r"video 'v' \[1\]: ")):
        read_howto100m_json(path, strict=True)


def test_howto100m_json_not_an_object_names_its_first_line(tmp_path: Path):
    path = _write(tmp_path, "caption.json", "\n\n[1]\n")
    pattern = _error_pattern(path, 3, "expected a JSON object of videos, got list")
    with pytest.raises(SubtitleError, match=pattern):
        read_howto100m_json(path)
    with pytest.raises(SubtitleError, match=pattern):  # the whole file: no entry to skip
        read_howto100m_json_entries(path)


_GOOD_ENTRY = {"start": [0.0], "end": [1.5], "text": ["fine"]}

# Hand-written, so the line of each key is known: "b" on 4, "caf\u00e9" (escaped) on 5, and
# "d" (after a nested "start" key, the same text as a video id below) on 7.
_CAPTIONS_WITH_BAD_ENTRIES = """{
  "a": {"start": [0], "end": [1.5],
        "text": ["fine"]},
  "b": {"start": [2], "end": [1], "text": ["backwards"]},
  "caf\\u00e9": {"start": [0], "end": [1]},
  "start": {"start": [0], "end": [2], "text": ["a video called start"]},
  "d": {"start": [0, 1], "end": [1], "text": ["x", "y"]}
}
"""


def test_howto100m_entries_keep_the_good_videos_and_locate_the_bad(tmp_path: Path):
    path = _write(tmp_path, "caption.json", _CAPTIONS_WITH_BAD_ENTRIES)
    cues, errors = read_howto100m_json_entries(path)
    assert cues == {
        "a": [Cue(0.0, 1.5, "fine")],
        "b": [Cue(2.0, 2.0, "backwards")],  # its end before its start: made zero-length
        "start": [Cue(0.0, 2.0, "a video called start")],
    }
    assert [(e.video_id, e.line) for e in errors] == [("café", 5), ("d", 7)]
    assert str(errors[0]).startswith(f"{path}:5: video 'café': missing or bad 'text' list")
    assert str(errors[1]).startswith(f"{path}:7: video 'd': lists of different length")
    # read_howto100m_json stops at the first bad entry, with the same message.
    with pytest.raises(SubtitleError, match=_error_pattern(path, 5, r"video 'café'")):
        read_howto100m_json(path)
    # Strict, the backwards cue makes its entry bad too, as before recovery.
    cues, errors = read_howto100m_json_entries(path, strict=True)
    assert [(e.video_id, e.line) for e in errors] == [("b", 4), ("café", 5), ("d", 7)]
    assert str(errors[0]) == f"{path}:4: video 'b' [0]: cue ends before it starts: 2.0 > 1.0"


def test_howto100m_repeated_key_is_located_where_json_takes_it(tmp_path: Path):
    text = '{"v": {"start": [0], "end": [1], "text": ["x"]},\n"w": {},\n"v": [1]}'
    path = _write(tmp_path, "caption.json", text)
    cues, errors = read_howto100m_json_entries(path)
    assert cues == {}  # json.loads keeps the last "v", which is bad; "w" lacks its lists
    assert [(e.video_id, e.line) for e in errors] == [("v", 3), ("w", 2)]


def test_howto100m_invalid_json_names_the_line(tmp_path: Path):
    path = _write(tmp_path, "caption.json", '{\n  "v": {\n    "start": [0,,\n')
    with pytest.raises(SubtitleError, match=_error_pattern(path, 3, "invalid JSON")):
        read_howto100m_json(path)
    # An integer over Python's digit limit is a bad time, not invalid JSON (see below).
    path = _write(tmp_path, "huge.json", '{"v": {"start": [' + "9" * 5000 + "]}}")
    with pytest.raises(SubtitleError, match=_error_pattern(path, 1, "video 'v': missing or bad")):
        read_howto100m_json(path)
    path = _write(tmp_path, "blank.json", "")
    with pytest.raises(SubtitleError, match=_error_pattern(path, None, "empty file")):
        read_howto100m_json(path)


# --- fuzzing: only SubtitleError ever escapes ---------------------------------------------------

_PIECES = st.sampled_from(
    [
        "WEBVTT",
        "\n",
        "\n\n",
        " ",
        "-->",
        " --> ",
        "00:00:01.000",
        "00:01,500",
        "0:00:02.000,0:00:03.000",
        "00:00:01,000",
        "1",
        ":",
        ".",
        ",",
        "NOTE",
        "STYLE",
        "<v Bob>",
        "<c>",
        "</c>",
        "<00:01.000>",
        "&amp;",
        "&",
        "JOE: ",
        "(A:) ",
        "text",
        "\ufeff",
        "\r",
        "é",
    ]
)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=30), fmt=st.sampled_from(["vtt", "srt", "sbv"]))
def test_parse_cues_raises_only_subtitle_error(pieces: list[str], fmt: str):
    try:
        cues = parse_cues("".join(pieces), fmt)
    except SubtitleError:
        return
    assert all(isinstance(c, Cue) and c.end >= c.start for c in cues)
    assert [c.start for c in cues] == sorted(c.start for c in cues)


def test_many_malformed_cues_log_ten_warnings_and_one_summary(tmp_path: Path, caplog):
    """25 bad cues: the first 10 are logged one by one at WARNING, the other 15 at DEBUG only
    (those past the 20 a report keeps too), and once in a summary."""
    bad = "".join(f"00:00:0{k % 10}.000 --> 00:00:0x.000\nbad {k}\n\n" for k in range(25))
    path = _write(tmp_path, "many.vtt", "WEBVTT\n\n" + bad + "00:00:30.000 --> 00:00:31.000\nok\n")
    with caplog.at_level(logging.DEBUG, logger="align.readers"):
        cues, report = read_cues_report(path)
    assert cues == [Cue(30.0, 31.0, "ok")] and report.skipped == {"bad_timing": 25}
    assert len(report.problems) == 20
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(warnings) == 11 and len(debug) == 15
    assert all(m.startswith(f"{path}:") and "bad 0" not in m for m in warnings[:10])
    assert warnings[-1] == f"{path}: 15 more malformed cues (bad_timing 15), logged at DEBUG only"


def test_a_json_integer_over_pythons_digit_limit_costs_its_cue_not_the_file(tmp_path: Path):
    """Found by fuzzing: json.loads refuses an integer of over 4300 digits, which made one such
    time reject a whole HowTo100M file (every video in it) or a TVQA line. It is now read as
    an infinity, a bad time: that cue is skipped, as with 1e999."""
    huge = "1" + "0" * 5000
    tv = _write(
        tmp_path,
        "tv.jsonl",
        '{"vid_name": "v", "sub": [{"text": "a", "start": 0, "end": 1}, '
        f'{{"text": "b", "start": {huge}, "end": 1}}]}}\n',
    )
    videos, errors = read_tvqa_jsonl_reports(tv)
    assert errors == [] and videos["v"][0] == [Cue(0.0, 1.0, "a")]
    assert videos["v"][1].counts() == {"skipped": {"bad_timing": 1}, "repaired": {}}
    assert "start is not a number of seconds: inf" in str(videos["v"][1].problems[0])
    caption = _write(
        tmp_path,
        "caption.json",
        f'{{"v": {{"start": [0, -{huge}], "end": [1, 2], "text": ["a", "b"]}},\n'
        '"w": {"start": [0], "end": [1], "text": ["c"]}}',
    )
    videos, errors = read_howto100m_json_reports(caption)
    assert errors == [] and videos["v"][0] == [Cue(0.0, 1.0, "a")]
    assert videos["v"][1].counts() == {"skipped": {"bad_timing": 1}, "repaired": {}}
    assert videos["w"][0] == [Cue(0.0, 1.0, "c")]


def test_howto100m_json_nested_too_deeply_names_the_line(tmp_path: Path):
    """Found by fuzzing: a value nested deeper than the json module's recursion limit gave an
    error with no line; it now names the line and column of the member that is too deep."""
    deep = "[" * 100_000 + "]" * 100_000
    path = _write(tmp_path, "caption.json", '{"a": {"start": [0]},\n "b": ' + deep + "}")
    with pytest.raises(SubtitleError, match=_error_pattern(path, 2, "invalid JSON: nested too")):
        read_howto100m_json_entries(path)
    path = _write(tmp_path, "deep.json", "\n" + deep)
    with pytest.raises(SubtitleError, match=_error_pattern(path, 2, r".* \(column 1\)")):
        read_howto100m_json_entries(path)


def test_howto100m_one_cue_ending_before_it_starts_is_repaired_and_strict_rejects(tmp_path):
    """The repair of the HowTo100M reader, beside the skips above: kept with end = start (so
    cleaning drops it as zero-length), counted once; strict, the entry is bad."""
    entry = {"start": [0.0, 1.5, 2.0], "end": [1.0, 1.0, 3.0], "text": ["a", "b", "c"]}
    path = _json(tmp_path, {"v": entry})
    videos, errors = read_howto100m_json_reports(path)
    assert errors == []
    cues, report = videos["v"]
    assert cues == [Cue(0.0, 1.0, "a"), Cue(1.5, 1.5, "b"), Cue(2.0, 3.0, "c")]
    assert report.counts() == {"skipped": {}, "repaired": {"end_before_start": 1}}
    pattern = _error_pattern(path, 2, r"video 'v' \[1\]: cue ends before it starts: 1.5 > 1.0")
    with pytest.raises(SubtitleError, match=pattern):
        read_howto100m_json(path, strict=True)
    videos, errors = read_howto100m_json_reports(path, strict=True)
    assert videos == {} and [e.video_id for e in errors] == ["v"]
