"""``hero extract``: features for given video files, one ``.npz`` per video.

Each video is probed, decoded once and run through both models; its ``.npz`` is written
atomically under a name unique to its path (:func:`extract.extractor.npz_name`). A video that
fails is recorded in ``<output>/errors.jsonl`` and the run goes on. Videos whose ``.npz`` already
exists are skipped unless ``overwrite``, so re-running after an interruption finishes the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from extract.decode import DecodeError, probe
from extract.extractor import ExtractConfig, FeatureExtractor, npz_name, write_npz
from hero_data.grid import num_steps
from hero_data.progress import Progress
from hero_data.writer import ErrorLog

log = logging.getLogger(__name__)


@dataclass
class ExtractSummary:
    """What a ``hero extract`` run did."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (video, message)
    steps: int = 0
    video_seconds: float = 0.0
    wall_seconds: float = 0.0


def extract_videos(
    videos: Sequence[str | Path],
    output: str | Path,
    config: ExtractConfig,
    *,
    overwrite: bool = False,
    extractor: FeatureExtractor | None = None,
) -> ExtractSummary:
    """Extract each video's features into ``output``; see the module docstring."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    errors = ErrorLog(out)
    summary = ExtractSummary()
    started = time.monotonic()
    todo = []
    for video in map(Path, videos):
        target = out / npz_name(video)
        if target.exists() and not overwrite:
            log.info("skipping %s: %s exists", video, target)
            summary.skipped.append(target)
        else:
            todo.append((video, target))
    if todo and extractor is None:
        extractor = FeatureExtractor(config)
    with Progress() as progress:
        overall = progress.add("videos", total=len(todo))
        for video, target in todo:
            try:
                info = probe(video)
                bar = progress.add(
                    video.name, total=num_steps(info.duration, config.frame_interval)
                )
                try:
                    assert extractor is not None
                    features = extractor.extract(
                        video, on_step=lambda _, bar=bar: progress.advance(bar)
                    )
                finally:
                    progress.done(bar)
                if features.num_steps == 0:
                    raise DecodeError(video, "no frame decoded")
                write_npz(target, features, str(video))
            except (DecodeError, OSError, ValueError, RuntimeError) as e:
                log.error("%s: %s", video, e)
                errors.record(video_id=video.stem, source=str(video), stage="extract", error=e)
                summary.failed.append((str(video), str(e)))
            else:
                summary.written.append(target)
                summary.steps += features.num_steps
                summary.video_seconds += info.duration
            progress.advance(overall)
        progress.done(overall)
    summary.wall_seconds = time.monotonic() - started
    return summary
