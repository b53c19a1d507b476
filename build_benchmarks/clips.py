"""Which clips a dataset holds, and how long each is: what ``--dataset`` filters against."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from build_benchmarks.annotations import CLIP_SECONDS, BenchmarkError
from hero_data.reader import HeroDataset


@dataclass(frozen=True)
class ClipIndex:
    """Clip ids of a dataset and their durations.

    Attributes:
        root: the dataset folder.
        durations: ``clip_id -> duration`` in seconds (a video's last clip may be shorter than
            the clip length).
    """

    root: str
    durations: dict[str, float]

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self.durations

    def duration(self, clip_id: str) -> float:
        """Seconds; ``KeyError`` if the dataset has no such clip."""
        return self.durations[clip_id]


def load_clip_index(
    dataset: str | os.PathLike[str], clip_seconds: float = CLIP_SECONDS
) -> ClipIndex:
    """The clips of the dataset at ``dataset``.

    The annotations name 60-second clips ``v.k``; a dataset cut to another clip length (its
    manifest's ``config.clip_length``, ``None`` meaning one clip per video) has different clips,
    so it is refused with a clear error instead of matching nothing.
    """
    root = Path(dataset)
    ds = HeroDataset.open(root)
    config = ds.manifest.config
    if "clip_length" in config and config["clip_length"] != clip_seconds:
        length = config["clip_length"]
        what = "one clip per video" if length is None else f"{length} s clips"
        raise BenchmarkError(
            f"{root}: the dataset has {what}, but the annotations name {clip_seconds:g} s "
            "clips; build the dataset with the default clip length"
        )
    table = ds.table(["clip_id", "clip_start", "clip_end"])
    ids = table.column("clip_id").to_pylist()
    starts = table.column("clip_start").to_pylist()
    ends = table.column("clip_end").to_pylist()
    return ClipIndex(str(root), {c: e - s for c, s, e in zip(ids, starts, ends, strict=True)})
