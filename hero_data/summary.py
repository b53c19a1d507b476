"""What ``hero inspect`` shows: a dataset's totals, and one clip's steps with their cues."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc

from hero_data.grid import step_bounds
from hero_data.reader import HeroDataset
from hero_data.schema import ClipRecord


def summarize(ds: HeroDataset) -> dict[str, Any]:
    """Totals of a dataset: videos, clips, hours, steps, cues, failures by type, shards."""
    table = ds.table(["video_id", "clip_start", "clip_end", "num_frames", "cues"])
    seconds = pc.sum(pc.subtract(table["clip_end"], table["clip_start"])).as_py() or 0.0
    errors = ds.errors
    return {
        "dataset": str(ds.root),
        "schema_version": ds.manifest.schema_version,
        "toolkit_version": ds.manifest.toolkit_version,
        "created": ds.manifest.created,
        "updated": ds.manifest.updated,
        "videos": len(pc.unique(table["video_id"])) if len(table) else 0,
        "clips": len(table),
        "hours": seconds / 3600.0,
        "steps": pc.sum(table["num_frames"]).as_py() or 0,
        "cues": pc.sum(pc.list_value_length(table["cues"])).as_py() or 0,
        "failed_inputs": len(errors),
        "failed_by_type": dict(Counter(str(e.get("error_type", "?")) for e in errors)),
        "shards": [{"name": s.name, "rows": s.rows, "bytes": s.bytes} for s in ds.shards],
        "bytes": sum(s.bytes for s in ds.shards),
        "config": ds.manifest.config,
    }


@dataclass(frozen=True)
class StepRow:
    """One step of a clip's timeline.

    Attributes:
        step: step index.
        start: clip-relative start, seconds.
        end: clip-relative end, seconds (the clip's end for a short last step).
        covering: indices of the cues covering the step (``sub2frames``).
        cue: index of the cue assigned to the step (``unique_sub2frames``), or ``None``.
        text: the assigned cue's text; with none assigned, the covering cues' texts joined
            by " / " ("" when no cue covers the step).
    """

    step: int
    start: float
    end: float
    covering: tuple[int, ...]
    cue: int | None
    text: str


def clip_timeline(record: ClipRecord) -> list[StepRow]:
    """Each step of ``record`` with the cue assigned to it, in step order."""
    owner: dict[int, int] = {}
    for cue_index, steps in enumerate(record.unique_sub2frames):
        for s in steps:
            owner[s] = cue_index
    covering: dict[int, list[int]] = {}
    for cue_index, steps in enumerate(record.sub2frames):
        for s in steps:
            covering.setdefault(s, []).append(cue_index)
    duration = record.clip.duration
    rows = []
    for i in range(record.num_frames):
        start, end = step_bounds(i, record.frame_interval)
        c = owner.get(i)
        if c is not None:
            text = record.cues[c].text
        else:
            text = " / ".join(record.cues[k].text for k in covering.get(i, ()))
        rows.append(StepRow(i, start, min(end, duration), tuple(covering.get(i, ())), c, text))
    return rows
