"""The loop of ``hero extract``: features for given video files, one ``.npz`` per video.

Each video is probed (all first: one progress bar counts the steps to do), decoded once and
run through the configured extractors (``resnet`` and ``slowfast`` by default); its ``.npz``,
one array per feature name, is written
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
from hero_data.types import VideoInfo
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
    # Probing first (container headers only) gives the steps to do, so that the one bar counts
    # steps and its ETA follows the video time left, not the number of files.
    infos: dict[Path, VideoInfo | Exception] = {}
    for video, _ in todo:
        try:
            infos[video] = probe(video)
        except (DecodeError, OSError, ValueError) as e:
            infos[video] = e
    expected = {
        v: num_steps(i.duration, config.frame_interval)
        for v, i in infos.items()
        if not isinstance(i, Exception)
    }
    with Progress() as progress:
        bar = progress.add("extract", total=sum(expected.values()), unit="steps")
        for k, (video, target) in enumerate(todo):
            before = progress.figures(bar)["done"]
            progress.describe(bar, f"extract video {k + 1}/{len(todo)} ({video.name})")
            try:
                info = infos[video]
                if isinstance(info, Exception):
                    raise info
                assert extractor is not None
                features = extractor.extract(video, on_step=lambda _: progress.advance(bar))
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
            # a video that failed, or decoded another number of steps, counts as planned
            progress.update(bar, done=before + expected.get(video, 0))
        progress.describe(
            bar, f"extract: {len(summary.written)} written, {len(summary.failed)} failed"
        )
        progress.done(bar)
    summary.wall_seconds = time.monotonic() - started
    return summary
