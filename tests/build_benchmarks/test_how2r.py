"""How2R builder: the released CSV format with its awkward cases, dataset filtering, counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from build_benchmarks.annotations import BenchmarkError, parse_span
from build_benchmarks.clips import load_clip_index
from build_benchmarks.how2r import build_how2r, clip_of_segment
from build_benchmarks.outputs import write_benchmark

# One line per case; the comment says what the builder must do with it.
CSV_LINES = [
    "vidA,[0:60],[12.5:30.0],A man cuts wood.",  # 1 plain
    'vidA,[60:120],[61.0:75.5],"In the garage, a woodworker talks."',  # 2 quoted comma
    "vidA,[60:120],[100:110],He says, then does, it",  # 3 unquoted commas: rest of the line
    "vidB,[180:240],[212.855:241.7],Käse «fondue» 寿司 — ünïcode",  # 4 end past segment: clip
    "vidB,[120:180],[110.0:130.0],starts before its segment",  # 5 start before: clipped
    "vidB,[0:60],[120.35:120.96],no overlap at all",  # 6 outside_segment
    "vidB,[0:60],[5.0:5.0],zero length",  # 7 zero_length
    "vidC,[0:60]",  # 8 too_few_fields
    "",  # 9 blank_line
    "vidC,[30:90],[40:50],segment not on the 60 s grid",  # 10 bad_segment
    "vidC,[0:60],[50:40],ends before it starts",  # 11 bad_moment
    "vidC,[0:60],[abc:40],unparseable moment",  # 12 bad_moment
    "bad/id,[0:60],[1:2],slash in the id",  # 13 bad_video_id
    "vidC,[0:60],[1:2],",  # 14 empty_description
    'vidC,[0:60],[1:2],"stray "quote" inside',  # 15 bad_csv
    "vidD,[0:60],[0.0:6.3],trailing comma as in the test release,",  # 16 trailing comma
]


@pytest.fixture
def how2r_csv(tmp_path: Path) -> Path:
    path = tmp_path / "how2r.csv"
    path.write_text("\n".join(CSV_LINES) + "\n", encoding="utf-8")
    return path


def by_line(bench) -> dict[int, dict]:
    return {row["desc_id"] + 1: row for row in bench.rows}  # desc_id = record index


def test_parse_span_table():
    assert parse_span("[12.5:30]") == (12.5, 30.0)
    assert parse_span(" [ 0 : 60 ] ") == (0.0, 60.0)
    for bad in ("12:30", "[12;30]", "[a:1]", "[-1:3]", "[1:inf]", "[1:2:3]"):
        with pytest.raises(ValueError):
            parse_span(bad)


def test_clip_of_segment():
    assert clip_of_segment(180, 240) == 3
    assert clip_of_segment(0, 45.5) == 0  # a short last segment is still clip 0
    for seg in ((30, 90), (0, 61), (60, 60)):
        with pytest.raises(ValueError):
            clip_of_segment(*seg)


def test_build_from_annotations_alone(how2r_csv):
    bench = build_how2r([how2r_csv])
    rep = bench.report
    assert rep.input_rows == len(CSV_LINES)
    assert rep.written + sum(rep.rejected.values()) == rep.input_rows
    rows = by_line(bench)
    assert sorted(rows) == [1, 2, 3, 4, 5, 16]
    assert rows[1] == {
        "desc_id": 0,
        "desc": "A man cuts wood.",
        "vid_name": "vidA.0",
        "ts": [12.5, 30.0],
        "duration": 60.0,
    }
    assert rows[2]["desc"] == "In the garage, a woodworker talks."
    assert rows[2]["ts"] == [1.0, 15.5]
    assert rows[3]["desc"] == "He says, then does, it"
    assert rows[4] == {
        "desc_id": 3,
        "desc": "Käse «fondue» 寿司 — ünïcode",
        "vid_name": "vidB.3",
        "ts": [32.855, 60.0],  # float noise of 212.855 - 180 rounded away
        "duration": 60.0,
    }
    assert rows[5]["ts"] == [0.0, 10.0]
    assert rows[16]["desc"] == "trailing comma as in the test release"
    assert rep.clipped == 2
    assert rep.rejected == {
        "bad_csv": 1,
        "bad_moment": 2,
        "bad_segment": 1,
        "bad_video_id": 1,
        "blank_line": 1,
        "empty_description": 1,
        "outside_segment": 1,
        "too_few_fields": 1,
        "zero_length": 1,
    }
    lines = {r.line: r.reason for r in rep.rejections}
    assert lines[6] == "outside_segment" and lines[7] == "zero_length"
    assert lines[8] == "too_few_fields" and lines[9] == "blank_line"
    assert all(r.source == str(how2r_csv) for r in rep.rejections)
    assert bench.videos == ["vidA", "vidA", "vidA", "vidB", "vidB", "vidD"]


def test_dataset_filters_and_sets_durations(how2r_csv, make_dataset):
    # vidB's clip 3 ends at 225 s in the dataset (a short last clip); vidA.1 is missing.
    root = make_dataset([("vidA", 0, 60.0, None), ("vidB", 2, 60.0, None), ("vidB", 3, 45.0, None)])
    clips = load_clip_index(root)
    bench = build_how2r([how2r_csv], clips)
    rows = by_line(bench)
    assert sorted(rows) == [1, 4, 5]
    assert rows[4]["ts"] == [32.855, 45.0] and rows[4]["duration"] == 45.0
    assert bench.report.rejected["missing_clip"] == 3  # lines 2, 3 (vidA.1) and 16 (vidD.0)
    missing = [r for r in bench.report.rejections if r.reason == "missing_clip"]
    assert [r.line for r in missing] == [2, 3, 16]
    assert "vidA.1" in missing[0].detail
    assert bench.report.input_rows == bench.report.written + len(bench.report.rejections)


def test_moment_after_a_short_clip_is_outside_clip(tmp_path, make_dataset):
    path = tmp_path / "a.csv"
    path.write_text("v,[0:60],[50:55],after the video ends\n", encoding="utf-8")
    clips = load_clip_index(make_dataset([("v", 0, 30.0, None)]))
    bench = build_how2r([path], clips)
    assert bench.report.rejected == {"outside_clip": 1}


def test_dataset_with_other_clip_length_is_refused(make_dataset):
    root = make_dataset([("v", 0, 30.0, None)], config={"frame_interval": 1.5, "clip_length": 30.0})
    with pytest.raises(BenchmarkError, match=r"30\.0 s clips"):
        load_clip_index(root)


def test_desc_ids_run_over_files(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("v,[0:60],[1:2],one\nv,[0:60],[2:3],two\n", encoding="utf-8")
    b.write_text("w,[0:60],[1:2],three\n", encoding="utf-8")
    bench = build_how2r([a, b])
    assert [r["desc_id"] for r in bench.rows] == [0, 1, 2]
    assert bench.report.inputs == [str(a), str(b)]


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(BenchmarkError, match="no such annotation file"):
        build_how2r([tmp_path / "missing.csv"])
    latin = tmp_path / "latin.csv"
    latin.write_bytes("v,[0:60],[1:2],caf\xe9\n".encode("latin-1"))
    with pytest.raises(BenchmarkError, match=r"latin\.csv: not UTF-8"):
        build_how2r([latin])


def test_written_outputs_are_consistent(how2r_csv, tmp_path):
    out = tmp_path / "out"
    report = write_benchmark(out, build_how2r([how2r_csv]), seed=3)
    all_rows = [json.loads(x) for x in (out / "all.jsonl").read_text().splitlines()]
    split_rows = {
        s: [json.loads(x) for x in (out / f"{s}.jsonl").read_text().splitlines()]
        for s in ("train", "val", "test")
    }
    assert sorted(r["desc_id"] for rows in split_rows.values() for r in rows) == sorted(
        r["desc_id"] for r in all_rows
    )
    saved = json.loads((out / "report.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["input_rows"] == saved["written"] + sum(saved["rejected"].values())
    assert len(saved["rejections"]) == sum(saved["rejected"].values())
    assert {s: v["rows"] for s, v in saved["splits"].items()} == {
        s: len(r) for s, r in split_rows.items()
    }
