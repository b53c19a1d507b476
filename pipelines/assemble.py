"""One video's features and cues -> its clip records (what a shard row holds).

Features come from one sequential decode of the whole video (global steps 0..N-1); clip k of
``C``-second clips takes steps ``k·C/L … (k+1)·C/L − 1``, which the step grid guarantees line up
because ``C`` is a whole number of steps.

The decoded frames decide the duration: when the container's duration gives another step count
than the frames did (a container that lies), the video's duration becomes ``N·L``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from align.video import Encoder, VideoCues, align_video
from extract.extractor import VideoFeatures
from hero_data.grid import check_clip_length, num_steps
from hero_data.schema import ClipRecord
from hero_data.types import Cue


class SourceVideo(Protocol):
    """All :func:`clip_records` needs to know of a video: a probed
    :class:`hero_data.types.VideoInfo` has it, and so has an import that knows no more (the
    ``.npz`` import: no frame size, rate or codec, which no clip record holds either)."""

    @property
    def uri(self) -> str:
        """Where the video is (a clip record's ``source``)."""
        ...

    @property
    def video_id(self) -> str:
        """The video's id."""
        ...

    @property
    def duration(self) -> float:
        """Seconds of video."""
        ...


def effective_duration(probed: float, steps: int, interval: float) -> float:
    """``probed`` if it yields ``steps`` steps, else ``steps · interval``."""
    if num_steps(probed, interval) == steps:
        return probed
    return steps * interval


def clip_records(
    video: SourceVideo,
    features: VideoFeatures,
    cues: Sequence[Cue],
    *,
    clip_length: float | None,
    tokenizer: Encoder | None = None,
) -> tuple[list[ClipRecord], VideoCues]:
    """The video's clips with their feature rows (every feature of ``features``, in its
    order), aligned cues and token ids.

    ``clip_length=None``: the whole video is one clip.
    """
    interval = features.frame_interval
    if features.first_step != 0:
        raise ValueError(f"{video.uri}: features must start at step 0 of the video")
    duration = effective_duration(video.duration, features.num_steps, interval)
    aligned = align_video(
        cues,
        duration,
        video_id=video.video_id,
        clip_length=clip_length,
        interval=interval,
        tokenizer=tokenizer,
    )
    per_clip = check_clip_length(clip_length, interval) if clip_length else features.num_steps
    records = []
    for k, clip in enumerate(aligned.clips):
        a = clip.alignment
        first = k * per_clip
        rows = slice(first, first + a.num_frames)
        records.append(
            ClipRecord(
                clip=clip.clip,
                source=video.uri,
                frame_interval=interval,
                features={name: column[rows] for name, column in features.features.items()},
                cues=a.cues,
                cue_token_ids=clip.token_ids,
                sub2frames=a.sub2frames,
                unique_sub2frames=a.unique_sub2frames,
                unmatched_frames=a.unmatched_frames,
            )
        )
    return records, aligned
