"""Manifests from elsewhere (CSV and JSONL): fuzzed until only InputError, naming the manifest
and the line, comes out; adversarial rows; a million rows within bounds."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import strategies as st

from hero_data.types import check_id
from pipelines.inputs import (
    MANIFEST_COLUMNS,
    SUBTITLE_EXTENSIONS,
    InputError,
    VideoInput,
    read_manifest,
)
from pipelines.inputs.manifest import MAX_PATH_CHARS
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

SECONDS = 20


def heap_bound_mb(size: int) -> float:
    """The heap a manifest read may use: 16 MiB and 12 times the file (it is read whole)."""
    return 16 + 12 * size / MB


def check_manifest(path: Path) -> list[VideoInput] | InputError:
    """The property: videos meeting the documented invariants, or an InputError naming the
    manifest and a line of it."""
    data = path.read_bytes()
    with bounded(SECONDS, heap_bound_mb(len(data))):
        try:
            out = read_manifest(str(path))
        except InputError as e:
            assert e.source == str(path) and str(e).startswith(f"{path}")
            lines = data.count(b"\n") + data.count(b"\r") + 1
            assert e.line is None or 1 <= e.line <= lines, (e.line, lines)
            return e
    assert out and all(isinstance(v, VideoInput) for v in out)
    ids = [v.video_id for v in out]
    assert len(set(ids)) == len(ids)
    for v in out:
        check_id("video id", v.video_id)
        assert isinstance(v.video_uri, str) and v.video_uri
        assert len(v.video_uri) <= MAX_PATH_CHARS + len(str(path.parent)) + 1
        assert v.subtitle_uri is None or v.subtitle_uri.rsplit(".", 1)[-1].lower() in (
            SUBTITLE_EXTENSIONS
        )
    return out


# --- seeds and strategies -------------------------------------------------------------------------

CSV_SEEDS = [
    b"video,subtitle,video_id\na.mp4,a.vtt,a\nsub/b.mkv,,b\n",
    b'\xef\xbb\xbfvideo\r\n"c, d.mp4"\r\ns3://bucket/e.mp4\r\n',
    b"subtitle,video\nx.srt,x.mp4\n\n,y.webm\n",
]
JSONL_SEEDS = [
    b'{"video": "a.mp4", "subtitle": "a.vtt", "video_id": "a"}\n{"video": "b/c.mkv"}\n',
    b'\n{"video_id": "z", "video": "s3://b/z.mp4", "extra": [1, 2]}\r\n',
]
TOKENS = [b",", b'"', b"\n", b"\r", b"\x00", b"{", b"}", b"[", b":", b'"video"', b"\\u0000"]
TOKENS += [t.encode() for t in NUMBER_TEXTS]


def _csv_rows() -> st.SearchStrategy[bytes]:
    cell = st.one_of(st.text(max_size=12), st.sampled_from(["a.mp4", "x.vtt", "", " ", "video"]))
    header = st.lists(st.sampled_from([*MANIFEST_COLUMNS, "other", ""]), min_size=1, max_size=4)
    rows = st.lists(st.lists(cell, max_size=5), max_size=6)

    def write(head: list[str], body: list[list[str]], quoting: int) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, quoting=quoting)
        writer.writerow(head)
        writer.writerows(body)
        return out.getvalue().encode("utf-8", "surrogatepass")

    return st.builds(write, header, rows, st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))


def _jsonl_rows() -> st.SearchStrategy[bytes]:
    keys = st.one_of(st.sampled_from(MANIFEST_COLUMNS), st.text(max_size=6))
    values = st.one_of(st.sampled_from(["a.mp4", "b.vtt", "c", ""]), json_values(8))
    line = st.one_of(st.dictionaries(keys, values, max_size=4), json_values(6))

    def write(objs: list) -> bytes:
        text = "\n".join(json.dumps(o, allow_nan=True) for o in objs) + "\n"
        return text.encode("utf-8", "surrogatepass")

    return st.builds(write, st.lists(line, max_size=6))


STRATEGIES = {
    "csv": st.one_of(st.binary(max_size=512), mutations(CSV_SEEDS, TOKENS), _csv_rows()),
    "jsonl": st.one_of(st.binary(max_size=512), mutations(JSONL_SEEDS, TOKENS), _jsonl_rows()),
}


@DEPTHS
@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_fuzzed_manifests_read_or_raise_input_error(tmp_path, kind, examples):
    path = tmp_path / f"manifest.{kind}"

    def check(data: bytes) -> None:
        path.write_bytes(data)
        check_manifest(path)

    run_cases(f"manifest {kind}", examples, STRATEGIES[kind], check)


# --- adversarial rows -----------------------------------------------------------------------------

LONG = "a" * (10 * MB)

ADVERSARIAL = [
    # (file name, content, expected: number of videos, or (line, part of the message))
    ("deep.jsonl", '{"video": ' + nested(100_000) + "}\n", (1, "invalid JSON")),
    ("deep_value.jsonl", '{"video": ' + nested(400) + "}\n", (1, "must be a string, got [[[[")),
    ("deep_extra.jsonl", '{"video": "a.mp4", "x": ' + nested(400) + "}\n", 1),
    ("digits.jsonl", '{"video": "a.mp4"}\n{"video": ' + "9" * 5000 + "}\n", (2, "invalid JSON")),
    ("huge.jsonl", '{"video": 1e999}\n', (1, "'video' must be a string, got inf")),
    ("nan.jsonl", '{"video": NaN}\n', (1, "'video' must be a string, got nan")),
    ("negative.jsonl", '{"video": -1}\n', (1, "'video' must be a string, got -1")),
    ("dup.jsonl", '{"video": "a.mp4", "video": "b.mp4"}\n', (1, "key 'video' given twice")),
    ("dup_deep.jsonl", '{"video": "a.mp4", "x": {"k": 1, "k": 2}}\n', (1, "'k' given twice")),
    ("dup.csv", "video,subtitle,video\na.mp4,,b.mp4\n", (1, "repeated columns ['video']")),
    ("same_id.csv", "video\na.mp4\nsub/a.mp4\n", (3, "video id 'a' is already used on line 2")),
    ("nul.csv", "video\na\x00.mp4\n", 1),
    ("long.jsonl", '{"video": "' + LONG + '.mp4"}\n', (1, "more than a path may be (4,096)")),
    ("long_extra.jsonl", '{"video": "a.mp4", "note": "' + LONG + '"}\n', 1),
    ("long.csv", "video\n" + LONG + ".mp4\n", (2, "field larger than field limit")),
    ("long_id.jsonl", '{"video": "a.mp4", "video_id": "' + LONG + '"}\n', (1, "more than a path")),
    (
        "bad_id.jsonl",
        '{"video": "a.mp4", "video_id": "../' + "a" * 4000 + '"}\n',
        (1, "not a safe id"),
    ),
    ("keys.jsonl", json.dumps({f"k{i}": i for i in range(100_000)}) + "\n", (1, "no 'video' key")),
]


@pytest.mark.parametrize(("name", "text", "expected"), ADVERSARIAL, ids=[a[0] for a in ADVERSARIAL])
def test_adversarial_manifests(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    got = check_manifest(path)
    if isinstance(expected, int):
        assert isinstance(got, list) and len(got) == expected
    else:
        line, message = expected
        assert isinstance(got, InputError), got
        assert got.line == line and message in got.problem, got
        assert len(str(got)) < len(str(path)) + 400  # a bad value is shown cut, not whole


@pytest.mark.parametrize("bad", INVALID_UTF8)
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_invalid_utf8_names_its_line(tmp_path, bad, kind):
    path = tmp_path / f"m.{kind}"
    head = b"video\na.mp4\n" if kind == "csv" else b'{"video": "a.mp4"}\n'
    path.write_bytes(head + b"b" + bad + b".mp4\n")
    got = check_manifest(path)
    assert isinstance(got, InputError) and got.line == 3 if kind == "csv" else got.line == 2
    assert "not UTF-8 text" in got.problem


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_million_tiny_rows_within_bounds(tmp_path, kind):
    """1 M rows (a HowTo100M-sized corpus): linear time, memory a few hundred bytes a row."""
    path = tmp_path / f"m.{kind}"
    row = "v{}.mp4\n" if kind == "csv" else '{{"video": "v{}.mp4"}}\n'
    with open(path, "w", encoding="utf-8") as f:
        f.write("video\n" if kind == "csv" else "")
        f.writelines(row.format(i) for i in range(1_000_000))
    out = run_measured(
        f"""
        from pipelines.inputs import read_manifest
        _mark()
        videos = read_manifest({str(path)!r})
        result = [len(videos), videos[-1].video_id]
        """,
        timeout=300,
    )
    assert out["result"] == [1_000_000, "v999999"]
    print(
        f"\n1M {kind} rows: {out['seconds']:.1f} s, +{out['rss_mb']:.0f} MiB RSS over the"
        f" imports, {out['rss_peak_mb']:.0f} MiB peak RSS in all"
    )
    assert out["rss_mb"] < 800, out
