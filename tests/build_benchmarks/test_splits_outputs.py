"""Splits by video (deterministic, 80/10/10) and the atomic, refuse-unless-overwrite writer."""

from __future__ import annotations

import json
import os

import pytest

from build_benchmarks.annotations import BuildReport
from build_benchmarks.outputs import OUTPUT_FILES, Benchmark, write_benchmark
from build_benchmarks.splits import split_by_video, split_sizes


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, [0, 0, 0]),
        (1, [1, 0, 0]),
        (3, [3, 0, 0]),
        (10, [8, 1, 1]),
        (15, [12, 2, 1]),
        (101, [81, 10, 10]),
    ],
)
def test_split_sizes(n, expected):
    assert split_sizes(n) == expected
    assert sum(split_sizes(n)) == n


def test_split_by_video_is_deterministic_and_order_free():
    ids = [f"v{i}" for i in range(200)]
    a = split_by_video(ids, seed=1)
    assert a == split_by_video(list(reversed(ids)) + ids[:50], seed=1)  # order, repeats
    assert a != split_by_video(ids, seed=2)
    counts = {s: sum(1 for v in a.values() if v == s) for s in ("train", "val", "test")}
    assert counts == {"train": 160, "val": 20, "test": 20}
    with pytest.raises(ValueError):
        split_sizes(5, (0.5, -0.1, 0.6))


def bench_of(n_videos: int, per_video: int = 3) -> Benchmark:
    rows, videos = [], []
    for v in range(n_videos):
        for k in range(per_video):
            rows.append({"desc_id": len(rows), "vid_name": f"v{v}.{k}", "desc": "ünï"})
            videos.append(f"v{v}")
    report = BuildReport("test", ["in.csv"], input_rows=len(rows) + 1, written=len(rows))
    report.reject("in.csv", 7, "blank_line", "blank line")
    return Benchmark(rows, videos, report)


def test_write_and_refuse_and_overwrite(tmp_path):
    out = tmp_path / "bench"
    report = write_benchmark(out, bench_of(20), seed=4)
    assert sorted(os.listdir(out)) == sorted(OUTPUT_FILES)  # no temporary files left
    splits = {}
    for s in ("train", "val", "test"):
        rows = [json.loads(line) for line in (out / f"{s}.jsonl").read_text().splitlines()]
        splits[s] = {r["vid_name"].split(".")[0] for r in rows}
        assert report["splits"][s]["rows"] == len(rows)
    assert not (splits["train"] & splits["val"] or splits["train"] & splits["test"])
    assert not splits["val"] & splits["test"]
    assert [len(splits[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    assert "ünï" in (out / "all.jsonl").read_text(encoding="utf-8")
    saved = json.loads((out / "report.json").read_text())
    assert saved["rejected"] == {"blank_line": 1} and saved["settings"]["seed"] == 4
    with pytest.raises(FileExistsError, match=r"all\.jsonl: exists; pass --overwrite"):
        write_benchmark(out, bench_of(2))
    assert json.loads((out / "report.json").read_text())["written"] == 60  # untouched
    write_benchmark(out, bench_of(2), overwrite=True)
    assert json.loads((out / "report.json").read_text())["written"] == 6


def test_counts_that_do_not_add_up_are_a_bug(tmp_path):
    bench = bench_of(2)
    bench.report.input_rows += 1
    with pytest.raises(AssertionError, match="inputs but"):
        write_benchmark(tmp_path / "x", bench)
    assert not (tmp_path / "x").exists()


def test_a_failed_write_leaves_no_partial_files(tmp_path, monkeypatch):
    out = tmp_path / "bench"
    write_benchmark(out, bench_of(3))
    calls = []
    real_replace = os.replace

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_benchmark(out, bench_of(5), overwrite=True)
    monkeypatch.undo()
    # temporaries removed; no report.json: the folder does not claim to hold a complete build
    assert sorted(os.listdir(out)) == sorted(set(OUTPUT_FILES) - {"report.json"})
