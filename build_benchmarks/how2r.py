"""How2R: the released CSV annotations -> TVR-style query records.

Input (no header, one query per record)::

    youtube_id,[seg_start:seg_end],[moment_start:moment_end],description

with absolute seconds. The segment is the 60-second window ``[60k, 60(k+1))`` of the video,
i.e. our clip ``youtube_id.k``. The description is the rest of the record, so a description
with unquoted commas is read whole (a trailing empty field, as in the test release, is
dropped). Output, one JSON object per query (TVR's fields)::

    {"desc_id": 7, "desc": "...", "vid_name": "abc.3", "ts": [12.5, 30.0], "duration": 60.0}

``ts`` is clip-relative seconds. A moment sticking out of its clip is cut to it (``clipped``);
one with no overlap, zero length, or an unreadable record is rejected with its line number.
``desc_id`` is the record's running index over all input files (0-based, blank lines
included), so the same annotations give the same ids whatever ``--dataset`` filters out.
With a dataset, only queries whose clip it holds are kept, and ``duration`` is the clip's real
length (a video's last clip may be shorter than 60 s; moments are cut to it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from build_benchmarks.annotations import (
    CLIP_SECONDS,
    BuildReport,
    clean_seconds,
    parse_span,
)
from build_benchmarks.clips import ClipIndex
from build_benchmarks.outputs import Benchmark
from hero_data.types import check_id

log = logging.getLogger(__name__)

_FIELDS = 4


def clip_of_segment(seg_start: float, seg_end: float, clip_seconds: float = CLIP_SECONDS) -> int:
    """Index k of the clip ``[k·C, (k+1)·C)`` a segment is; ``ValueError`` if it is none."""
    k = seg_start / clip_seconds
    length = seg_end - seg_start
    if k != int(k) or not 0 < length <= clip_seconds:
        raise ValueError(
            f"segment [{seg_start:g}:{seg_end:g}] is not a clip window: it must start at a "
            f"multiple of {clip_seconds:g} s and last at most {clip_seconds:g} s"
        )
    return int(k)


def build_how2r(
    paths: Sequence[str | os.PathLike[str]],
    clips: ClipIndex | None = None,
    clip_seconds: float = CLIP_SECONDS,
) -> Benchmark:
    """Read How2R CSV files into query records (see the module docstring)."""
    report = BuildReport("how2r", [str(p) for p in paths])
    if clips is not None:
        report.extra["dataset"] = clips.root
    rows: list[dict] = []
    videos: list[str] = []
    for src, line, desc_id, fields in report.csv_rows(paths, _FIELDS):
        if len(fields) < _FIELDS:
            report.reject(
                src,
                line,
                "too_few_fields",
                f"{len(fields)} fields, expected {_FIELDS}: "
                "youtube_id,[seg_start:seg_end],[start:end],description",
            )
            continue
        video_id = fields[0].strip()
        desc = ",".join(fields[3:]).strip()
        try:
            check_id("video id", video_id)
        except ValueError as e:
            report.reject(src, line, "bad_video_id", str(e))
            continue
        try:
            seg_start, seg_end = parse_span(fields[1])
            k = clip_of_segment(seg_start, seg_end, clip_seconds)
        except ValueError as e:
            report.reject(src, line, "bad_segment", str(e))
            continue
        try:
            start, end = parse_span(fields[2])
        except ValueError as e:
            report.reject(src, line, "bad_moment", str(e))
            continue
        if end < start:
            report.reject(src, line, "bad_moment", f"moment ends before it starts: {fields[2]}")
            continue
        if end == start:
            report.reject(src, line, "zero_length", f"moment {fields[2]} has zero length")
            continue
        if not desc:
            report.reject(src, line, "empty_description", "the description is empty")
            continue
        if end <= seg_start or start >= seg_end:
            report.reject(
                src,
                line,
                "outside_segment",
                f"moment {fields[2]} does not overlap its segment {fields[1]}",
            )
            continue
        clip_id = f"{video_id}.{k}"
        if clips is not None and clip_id not in clips:
            report.reject(src, line, "missing_clip", f"clip {clip_id} is not in the dataset")
            continue
        duration = clips.duration(clip_id) if clips is not None else seg_end - seg_start
        clip_end = seg_start + duration
        if start >= clip_end:
            report.reject(
                src,
                line,
                "outside_clip",
                f"moment {fields[2]} starts after clip {clip_id} ends "
                f"({clip_end:g} s in the dataset)",
            )
            continue
        ts = [
            clean_seconds(max(start, seg_start) - seg_start),
            clean_seconds(min(end, clip_end) - seg_start),
        ]
        if start < seg_start or end > clip_end:
            report.clipped += 1
        rows.append(
            {
                "desc_id": desc_id,
                "desc": desc,
                "vid_name": clip_id,
                "ts": ts,
                "duration": clean_seconds(duration),
            }
        )
        videos.append(video_id)
        report.written += 1
    report.check()
    log.info(
        "how2r: %d records, %d written (%d clipped), %d rejected",
        report.input_rows,
        report.written,
        report.clipped,
        len(report.rejections),
    )
    return Benchmark(rows, videos, report)
