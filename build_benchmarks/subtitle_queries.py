"""Subtitle queries: a How2R-style retrieval set made from a dataset's own cues.

Every cue of every clip is a candidate query whose target moment is the cue's span in its clip,
so any corpus with subtitles yields a moment-retrieval benchmark. Output records are the same
as :mod:`build_benchmarks.how2r`'s (``desc_id``, ``desc``, ``vid_name``, ``ts``, ``duration``);
``desc_id`` is the cue's running index over the dataset (clips in dataset order, cues in clip
order). A cue is rejected, and counted, when:

- ``empty``: its text is empty (the pseudo-cues of clips without subtitles have empty text);
- ``tags_only``: nothing is left once sound tags and markers are removed (``[Music]``,
  ``(applause)``, ``♪``, ``>>``); a cue that keeps words keeps them without the tags;
- ``too_few_words``: fewer than ``min_words`` words are left;
- ``zero_length``: it has no duration in its clip;
- ``boundary_part``: it is the smaller part of a cue cut by a clip boundary (the dataset
  stores such a cue in both clips; the clip holding most of it keeps the query, ties to the
  earlier clip);
- ``duplicate``: its text (case, spacing and punctuation aside) occurs more than once in the
  set: such a query has more than one right answer, so every copy is dropped.

A retrieval model that reads subtitles can find these queries by text matching alone; they
measure retrieval over the corpus's own language, not vision.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from build_benchmarks.annotations import BuildReport, clean_seconds
from build_benchmarks.outputs import Benchmark
from hero_data.reader import HeroDataset

log = logging.getLogger(__name__)

_TAGS = re.compile(r"\[[^\]]*\]|\([^)]*\)|[♪♫♬♩]|>>+")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_TOUCH_S = 1e-6


def strip_tags(text: str) -> str:
    """The text without sound tags and markers, whitespace collapsed."""
    return " ".join(_TAGS.sub(" ", text).split())


def _dedupe_key(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.casefold()).split())


@dataclass
class _Candidate:
    desc_id: int
    video_id: str
    clip_id: str
    clip_index: int
    duration: float
    start: float
    end: float
    text: str


def build_subtitle_queries(dataset: str | os.PathLike[str], min_words: int = 3) -> Benchmark:
    """Queries from the cues of the dataset at ``dataset`` (see the module docstring)."""
    if min_words < 1:
        raise ValueError(f"min_words must be at least 1, got {min_words}")
    root = Path(dataset)
    ds = HeroDataset.open(root)
    table = ds.table(["clip_id", "video_id", "clip_index", "clip_start", "clip_end", "cues"])
    report = BuildReport("subtitle-queries", [str(root)])
    report.extra["min_words"] = min_words
    src = str(root)
    candidates: list[_Candidate] = []
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    for row in range(table.num_rows):
        duration = columns["clip_end"][row] - columns["clip_start"][row]
        clip_id = columns["clip_id"][row]
        for cue in columns["cues"][row]:
            desc_id = report.input_rows
            report.input_rows += 1
            text = cue["text"] or ""
            where = f"clip {clip_id} [{cue['start']:g}, {cue['end']:g}]"
            if not text.strip():
                report.reject(src, desc_id, "empty", f"{where}: empty text (a pseudo-cue)")
                continue
            desc = strip_tags(text)
            if not desc:
                report.reject(src, desc_id, "tags_only", f"{where}: only tags: {text!r}")
                continue
            if len(desc.split()) < min_words:
                report.reject(
                    src,
                    desc_id,
                    "too_few_words",
                    f"{where}: fewer than {min_words} words: {desc!r}",
                )
                continue
            start, end = max(0.0, cue["start"]), min(cue["end"], duration)
            if end <= start:
                report.reject(src, desc_id, "zero_length", f"{where}: no duration in the clip")
                continue
            candidates.append(
                _Candidate(
                    desc_id,
                    columns["video_id"][row],
                    clip_id,
                    columns["clip_index"][row],
                    duration,
                    start,
                    end,
                    desc,
                )
            )
    candidates = _drop_boundary_parts(candidates, report, src)
    counts = Counter(_dedupe_key(c.text) for c in candidates)
    rows: list[dict[str, Any]] = []
    videos: list[str] = []
    for c in sorted(candidates, key=lambda c: c.desc_id):
        if counts[_dedupe_key(c.text)] > 1:
            report.reject(
                src,
                c.desc_id,
                "duplicate",
                f"clip {c.clip_id}: text occurs {counts[_dedupe_key(c.text)]} times: {c.text!r}",
            )
            continue
        rows.append(
            {
                "desc_id": c.desc_id,
                "desc": c.text,
                "vid_name": c.clip_id,
                "ts": [clean_seconds(c.start), clean_seconds(c.end)],
                "duration": clean_seconds(c.duration),
            }
        )
        videos.append(c.video_id)
        report.written += 1
    report.rejections.sort(key=lambda r: r.line)
    report.check()
    log.info(
        "subtitle queries: %d cues, %d written, %d rejected",
        report.input_rows,
        report.written,
        len(report.rejections),
    )
    return Benchmark(rows, videos, report)


def _drop_boundary_parts(
    candidates: list[_Candidate], report: BuildReport, src: str
) -> list[_Candidate]:
    """Keep only the larger part of each cue that a clip boundary cut in two."""
    # A cut cue ends at its clip's end in clip k and starts at 0 in clip k + 1, same text.
    ends_at_boundary = {
        (c.video_id, c.clip_index, c.text): c
        for c in candidates
        if abs(c.end - c.duration) <= _TOUCH_S
    }
    dropped: set[int] = set()
    for c in candidates:
        if c.start > _TOUCH_S:
            continue
        prev = ends_at_boundary.get((c.video_id, c.clip_index - 1, c.text))
        if prev is None or prev.desc_id in dropped:
            continue
        loser = c if (c.end - c.start) <= (prev.end - prev.start) else prev
        winner = prev if loser is c else c
        dropped.add(loser.desc_id)
        report.reject(
            src,
            loser.desc_id,
            "boundary_part",
            f"clip {loser.clip_id}: the smaller part of a cue cut by a clip boundary "
            f"(kept in {winner.clip_id}): {loser.text!r}",
        )
    return [c for c in candidates if c.desc_id not in dropped]
