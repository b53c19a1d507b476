"""How2R / How2QA annotation CSVs and `hero eval`'s JSON inputs from elsewhere: fuzzed until
only rows meeting the builders' invariants, rejections naming the line, or BenchmarkError
naming the file come out; adversarial records within bounds."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import strategies as st

from build_benchmarks.annotations import MAX_DETAIL, MAX_SECONDS, BenchmarkError
from build_benchmarks.evaluate import read_json, read_jsonl
from build_benchmarks.how2qa import build_how2qa, choose_clip
from build_benchmarks.how2r import build_how2r
from build_benchmarks.outputs import write_benchmark
from hero_data.types import check_id
from tests.build_benchmarks.test_how2qa import CSV_LINES as HOW2QA_LINES
from tests.build_benchmarks.test_how2r import CSV_LINES as HOW2R_LINES
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
)

SECONDS = 20


def heap_bound_mb(size: int) -> float:
    """The heap a build may use: 16 MiB and 32 times the file (it is read whole, and a record
    of 20 bytes becomes a row dict of about 500)."""
    return 16 + 32 * size / MB


def _lines(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") + 1


def _check_how2r_row(row: dict) -> None:
    video, k = row["vid_name"].rsplit(".", 1)
    check_id("video id", video)
    assert k.isdigit() and int(k) * 60 <= MAX_SECONDS
    assert 0 < row["duration"] <= 60
    start, end = row["ts"]
    assert 0 <= start < end <= row["duration"], row
    assert row["desc"] and row["desc"] == row["desc"].strip()


def _check_how2qa_row(row: dict) -> None:
    video, k = row["vid_name"].rsplit(".", 1)
    check_id("video id", video)
    assert k.isdigit() and int(k) * 60 <= MAX_SECONDS
    start, end = (float(t) for t in row["ts"].split("-"))
    assert 0 <= start <= end <= 60, row
    options = [row[f"a{i}"] for i in range(4)]
    assert 0 <= row["answer_idx"] < 4 and all(options) and row["q"]


BUILDERS = {"how2r": (build_how2r, _check_how2r_row), "how2qa": (build_how2qa, _check_how2qa_row)}


def check_build(kind: str, path: Path, out: Path | None = None) -> object:
    """The property: rows meeting the builder's invariants and counts that add up, every
    rejection naming a line of the file with a short detail; or BenchmarkError naming the
    file. With ``out``, the benchmark is written there too."""
    data = path.read_bytes()
    build, check_row = BUILDERS[kind]
    with bounded(SECONDS, heap_bound_mb(len(data))):
        try:
            bench = build([path])
        except BenchmarkError as e:
            assert str(e).startswith(f"{path}: "), e
            return e
    report = bench.report
    assert report.written == len(bench.rows) and report.input_rows >= report.written
    report.check()
    for row in bench.rows:
        check_row(row)
    for r in report.rejections:
        assert r.source == str(path) and 1 <= r.line <= _lines(data), (r, _lines(data))
        assert len(r.detail) <= MAX_DETAIL
    if out is not None:
        write_benchmark(out, bench, overwrite=True)
        written = (out / "all.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
        assert [json.loads(line) for line in written] == bench.rows
    return bench


def _seed(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


TOKENS = [
    b",",
    b'"',
    b"[",
    b"]",
    b":",
    b"\n",
    b"\r",
    b"\x00",
    b"1e308",
    b"NaN",
    b"-1",
    b"\xef\xbb\xbf",
]


def _records(fields: int) -> st.SearchStrategy[bytes]:
    """CSV records of hostile fields: spans of hostile numbers, odd ids, quotes, NULs."""
    number = st.one_of(
        st.sampled_from(NUMBER_TEXTS),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(-(10**20), 10**20).map(str),
    )
    span = st.tuples(number, number).map(lambda t: f"[{t[0]}:{t[1]}]")
    text = st.one_of(st.text(max_size=12), st.sampled_from(["", " ", '"a, b"', "a" * 300]))
    field = st.one_of(span, text, st.sampled_from(["vidA", "bad/id", "..", "a" * 201]))
    record = st.lists(field, min_size=fields - 2, max_size=fields + 1).map(",".join)
    return st.lists(record, max_size=8).map(lambda rows: "\n".join(rows).encode("utf-8", "replace"))


STRATEGIES = {
    "how2r": st.one_of(
        st.binary(max_size=512), mutations([_seed(HOW2R_LINES)], TOKENS), _records(4)
    ),
    "how2qa": st.one_of(
        st.binary(max_size=512), mutations([_seed(HOW2QA_LINES)], TOKENS), _records(7)
    ),
}


@DEPTHS
@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_fuzzed_annotations_build_or_reject_by_line(tmp_path, kind, examples):
    path = tmp_path / f"{kind}.csv"
    out = tmp_path / "out"

    def check(data: bytes) -> None:
        path.write_bytes(data)
        check_build(kind, path, out)

    run_cases(f"{kind} csv", examples, STRATEGIES[kind], check)


# --- adversarial records --------------------------------------------------------------------------

LONG = "a" * (10 * MB)
ADVERSARIAL = [
    # (kind, name, content, expected: rows written, or (line, reason, part of the detail))
    ("how2qa", "moment of 1e9 s", "v,[0:1e9],a,b,c,q,d\n", 1),  # was a hang: 1.7e7 overlaps
    ("how2qa", "moment past 1e9 s", "v,[0:1e300],a,b,c,q,d\n", (1, "bad_moment", "31 years")),
    ("how2r", "segment at 1e300", "v,[1e300:1e300],[1:2],d\n", (1, "bad_segment", "31 years")),
    ("how2r", "NaN moment", "v,[0:60],[nan:2],d\n", (1, "bad_moment", "'nan' is not")),
    ("how2r", "negative moment", "v,[0:60],[-1:2],d\n", (1, "bad_moment", "'-1' is not")),
    ("how2r", "5000 digits", "v,[0:60],[1:" + "9" * 5000 + "],d\n", (1, "bad_moment", "…")),
    ("how2r", "10 MB description", "v,[0:60],[1:2]," + LONG + "\n", (1, "bad_csv", "limit")),
    ("how2r", "10 MB id", LONG + ",[0:60],[1:2],d\n", (1, "bad_csv", "field limit")),
    ("how2r", "100 KB id", "a" * 100_000 + ",[0:60],[1:2],d\n", (1, "bad_video_id", "…")),
    ("how2r", "100 KB moment", "v,[0:60],[1:" + "1" * 100_000 + "],d\n", (1, "bad_moment", "…")),
    ("how2qa", "NUL", "v,[0:1],a\x00,b,c,q,d\n", 1),
    ("how2qa", "repeated", "v,[0:1],a,b,c,q,d\n" * 3, 3),
    ("how2qa", "stray quote then good", 'v,[0:1],"a,b,c,q,d\nv,[0:1],a,b,c,q,d\n', 0),
    ("how2r", "30,000 tiny records", "v,[0:60],[1:2],d\n" * 30_000, 30_000),
]


@pytest.mark.parametrize(
    ("kind", "name", "text", "expected"), ADVERSARIAL, ids=[a[1] for a in ADVERSARIAL]
)
def test_adversarial_annotations(tmp_path, kind, name, text, expected):
    path = tmp_path / f"{kind}.csv"
    path.write_text(text, encoding="utf-8")
    got = check_build(kind, path)
    if isinstance(expected, int):
        assert len(got.rows) == expected, got.report.rejections[:3]
    else:
        line, reason, detail = expected
        assert got.report.rejections, got.rows[:1]
        first = got.report.rejections[0]
        assert (first.line, first.reason) == (line, reason) and detail in first.detail, first


@pytest.mark.parametrize("bad", INVALID_UTF8)
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_invalid_utf8_names_the_file_and_offset(tmp_path, kind, bad):
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(_seed(HOW2R_LINES if kind == "how2r" else HOW2QA_LINES)[:40] + bad + b"\n")
    got = check_build(kind, path)
    assert isinstance(got, BenchmarkError) and "not UTF-8 text (bad byte at offset 40)" in str(got)


@pytest.mark.parametrize(
    ("start", "end"), [(0.0, 1e9), (59.0, 1e9), (1.0, 121.0), (30.0, 90.0), (0.0, 60.0)]
)
def test_choose_clip_of_long_moments_matches_the_enumeration(start, end):
    first, last = math.floor(start / 60), max(math.floor(start / 60), math.ceil(end / 60) - 1)
    with bounded(1, None):
        k, touched = choose_clip(start, end)
    assert touched == last - first + 1
    if touched < 10_000:  # the obvious reference: every clip's overlap, the earliest best
        overlaps = [min(end, (j + 1) * 60) - max(start, j * 60) for j in range(first, last + 1)]
        assert k == first + overlaps.index(max(overlaps))


# --- hero eval's JSON and JSONL inputs ------------------------------------------------------------

JSON_SEEDS = [
    json.dumps([{"desc_id": 0, "vid_name": "v.0", "ts": [1.0, 2.5], "duration": 60.0}]).encode(),
    b'{"desc_id": 1, "predictions": [["v.0", 1.0, 2.0, 0.9]]}\n{"desc_id": 2}\n',
]
JSON_TOKENS = [b"{", b"}", b"[", b"]", b'"', b"\\", b"NaN", b"\xe2\x80\xa8", b"\n", b"9" * 5000]


def _json_files() -> st.SearchStrategy[bytes]:
    line = json_values(10).map(lambda v: json.dumps(v, allow_nan=True))
    return st.lists(line, max_size=5).map(
        lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")
    )


JSON_FILES = st.one_of(st.binary(max_size=512), mutations(JSON_SEEDS, JSON_TOKENS), _json_files())


@DEPTHS
def test_fuzzed_eval_json_reads_or_names_the_file(tmp_path, examples):
    path = tmp_path / "pred.json"
    line_error = re.compile(rf"^{re.escape(str(path))}:(\d+): ")

    def check(data: bytes) -> None:
        path.write_bytes(data)
        with bounded(SECONDS, heap_bound_mb(len(data))):
            for read in (read_json, read_jsonl):
                try:
                    got = read(path, "predictions")
                except BenchmarkError as e:
                    m = line_error.match(str(e))
                    assert m or str(e).startswith(f"{path}: "), e
                    # lines end at \n, \r\n or a lone \r, as the readers count them
                    breaks = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
                    assert m is None or 1 <= int(m.group(1)) <= breaks + 1
                    continue
                if read is read_jsonl:
                    assert all(isinstance(item, dict) for item in got)

    run_cases("eval json", examples, JSON_FILES, check)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (nested(100_000), "nested too deep"),
        ("9" * 5000, "(?i)exceeds the limit"),
        ('{"a": "\u2028"}', None),  # a JSON string may hold U+2028: one line, not two
        ('{"a": NaN}', None),
    ],
)
def test_adversarial_eval_json(tmp_path, text, message):
    path = tmp_path / "pred.jsonl"
    path.write_text(text + "\n", encoding="utf-8")
    for read in (read_json, read_jsonl):
        if message is None:
            assert read(path, "predictions")
            continue
        with bounded(SECONDS, 64), pytest.raises(BenchmarkError, match=message) as info:
            read(path, "predictions")
        assert str(info.value).startswith(str(path))
