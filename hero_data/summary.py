"""What ``hero inspect`` shows: a dataset's totals, and one clip's steps with their cues."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.compute as pc

from hero_data.grid import step_bounds
from hero_data.reader import HeroDataset
from hero_data.schema import ClipRecord


def summarize(ds: HeroDataset) -> dict[str, Any]:
    """Totals of a dataset: videos, clips, hours, steps, cues, failures by type, shards, and its
    feature set."""
    table = ds.table(["video_id", "clip_start", "clip_end", "num_frames", "cues"])
    seconds = pc.sum(pc.subtract(table["clip_end"], table["clip_start"])).as_py() or 0.0
    errors = ds.errors
    return {
        "dataset": str(ds.root),
        "schema_version": ds.manifest.schema_version,
        "features": ds.feature_set.to_json(),
        "feature_dim": ds.feature_dim,
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


# -- the dataset card: what ``hero inspect DATASET --plot`` draws --------------------------------


@dataclass(frozen=True)
class Histogram:
    """Counts of values in bins: bin ``i`` is ``[edges[i], edges[i + 1])`` (the last one
    closed). ``values`` are the data it was made from."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    values: tuple[float, ...]


def histogram(values: list[float] | tuple[float, ...], bins: int = 20) -> Histogram:
    """:class:`Histogram` of ``values`` in at most ``bins`` equal bins (one bin per integer
    when the values are integers spanning fewer than ``bins``)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return Histogram((0.0, 1.0), (0,), ())
    lo, hi = float(data.min()), float(data.max())
    if np.all(data == np.round(data)) and hi - lo + 1 <= bins:
        edges = np.arange(lo, hi + 2)  # one bin per integer value
    else:
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    counts, edges = np.histogram(data, bins=edges)
    return Histogram(
        tuple(float(e) for e in edges), tuple(int(c) for c in counts), tuple(data.tolist())
    )


@dataclass(frozen=True)
class DatasetCard:
    """A dataset's shape, for its one-page picture.

    Attributes:
        dataset: where it is.
        clip_seconds: clip durations (seconds).
        steps: steps per clip.
        cues_per_clip: cues per clip (pseudo-cues, the empty ones a cue-less clip gets, not
            counted).
        words_per_cue: words (whitespace-separated) of each real cue.
        steps_total: steps in all clips.
        steps_without_cue: steps no cue was assigned (``unmatched_frames``, and the steps of
            the pseudo-cues of a clip without cues).
        failed_by_reason: failed inputs by error type (``errors.jsonl``).
        thumbnails: a few clips to show, spread over the dataset: ``(clip_id, source,
            source second)`` of each one's middle step.
    """

    dataset: str
    clip_seconds: Histogram
    steps: Histogram
    cues_per_clip: Histogram
    words_per_cue: Histogram
    steps_total: int
    steps_without_cue: int
    failed_by_reason: dict[str, int]
    thumbnails: tuple[tuple[str, str, float], ...]

    @property
    def share_without_cue(self) -> float:
        """Fraction (0-1) of all steps with no cue assigned."""
        return self.steps_without_cue / self.steps_total if self.steps_total else 0.0


def dataset_card(ds: HeroDataset, *, bins: int = 20, thumbnails: int = 6) -> DatasetCard:
    """The figures of :class:`DatasetCard`, from the small columns only (no features)."""
    table = ds.table(
        [
            "clip_id",
            "source",
            "clip_start",
            "clip_end",
            "frame_interval",
            "num_frames",
            "cues",
            "unique_sub2frames",
            "unmatched_frames",
        ]
    )
    starts = table["clip_start"].to_pylist()
    seconds = [e - s for s, e in zip(starts, table["clip_end"].to_pylist(), strict=True)]
    steps = table["num_frames"].to_pylist()
    all_cues = table["cues"].to_pylist()
    cues = [[c for c in clip if c["text"]] for clip in all_cues]
    words = [len(c["text"].split()) for clip in cues for c in clip]
    unmatched = pc.sum(pc.list_value_length(table["unmatched_frames"])).as_py() or 0
    # a clip without cues gets pseudo-cues (empty text) that own its steps: no cue either
    pseudo = sum(
        len(owned)
        for clip, spans in zip(all_cues, table["unique_sub2frames"].to_pylist(), strict=True)
        for c, owned in zip(clip, spans, strict=True)
        if not c["text"]
    )
    n = len(table)
    picks = sorted({round(i * (n - 1) / max(thumbnails - 1, 1)) for i in range(thumbnails)})
    ids, sources = table["clip_id"].to_pylist(), table["source"].to_pylist()
    intervals = table["frame_interval"].to_pylist()
    thumbs = tuple(
        (ids[i], sources[i], starts[i] + (steps[i] // 2 + 0.5) * intervals[i])
        for i in (picks if n else [])
    )
    return DatasetCard(
        dataset=str(ds.root),
        clip_seconds=histogram(seconds, bins),
        steps=histogram(steps, bins),
        cues_per_clip=histogram([len(c) for c in cues], bins),
        words_per_cue=histogram(words, bins),
        steps_total=int(sum(steps)),
        steps_without_cue=int(unmatched + pseudo),
        failed_by_reason=dict(Counter(str(e.get("error_type", "?")) for e in ds.errors)),
        thumbnails=thumbs,
    )
