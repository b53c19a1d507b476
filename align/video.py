"""One video's subtitles end to end: clean, cut into clips, align to steps, tokenize.

This is what ``hero align`` prints and what the pipeline stores per clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from align.clean import CleanReport, clean_cues
from align.readers import ReadReport
from align.spans import Alignment, align_cues, cut_cues
from hero_data.grid import (
    DEFAULT_CLIP_LENGTH,
    DEFAULT_FRAME_INTERVAL,
    clip_windows,
    exact_seconds,
)
from hero_data.types import Clip, Cue


class Encoder(Protocol):
    """What tokenizing needs: ``align.tokenizer.CueTokenizer`` is one."""

    def encode_cues(self, cues: Sequence[Cue]) -> list[list[int]]: ...


@dataclass(frozen=True)
class ClipCues:
    """A clip with its aligned cues and, when a tokenizer was given, their token ids."""

    clip: Clip
    alignment: Alignment
    token_ids: tuple[tuple[int, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The ``hero align`` JSON form of one clip (unique spans as HERO's index pairs)."""
        a = self.alignment
        out: dict[str, Any] = {
            "clip_id": self.clip.clip_id,
            "start": self.clip.start,
            "end": self.clip.end,
            "num_frames": a.num_frames,
            "pseudo_cues": a.pseudo,
            "cues": [
                {"start": c.start, "end": c.end, "text": c.text, "speaker": c.speaker}
                for c in a.cues
            ],
            "sub2frames": [list(s) for s in a.sub2frames],
            "unique_sub2frames": [[k, list(s)] for k, s in enumerate(a.unique_sub2frames)],
            "unmatched_frames": list(a.unmatched_frames),
        }
        if self.token_ids:
            out["token_ids"] = [list(t) for t in self.token_ids]
        return out


@dataclass(frozen=True)
class VideoCues:
    """All clips of one video, and what reading, cleaning and alignment did, in counts."""

    video_id: str
    clips: tuple[ClipCues, ...]
    cleaning: CleanReport
    reading: ReadReport = field(default_factory=ReadReport)

    def report(self) -> dict[str, Any]:
        """Counts: the malformed cues the reader skipped (not read, so not in ``input``) and
        repaired (read), by reason; cleaning's; then clips, pseudo-cue clips, cues dropped or
        truncated."""
        cleaning = {k: v for k, v in self.cleaning.to_dict().items() if k != "type"}
        reading = self.reading.counts()
        return {
            "malformed_skipped": reading["skipped"],
            "malformed_repaired": reading["repaired"],
            **cleaning,
            "clips": len(self.clips),
            "clips_with_pseudo_cues": sum(c.alignment.pseudo for c in self.clips),
            "cues_dropped_after_clip_end": sum(c.alignment.dropped_after_end for c in self.clips),
            "long_last_cues_truncated": sum(c.alignment.truncated_last for c in self.clips),
        }

    def to_dict(self) -> dict[str, Any]:
        """The ``hero align`` JSON object."""
        return {"clips": [c.to_dict() for c in self.clips], "report": self.report()}


def align_video(
    cues: Sequence[Cue],
    duration: float,
    *,
    video_id: str,
    clip_length: float | None = DEFAULT_CLIP_LENGTH,
    interval: float = DEFAULT_FRAME_INTERVAL,
    tokenizer: Encoder | None = None,
    malformed: ReadReport | None = None,
) -> VideoCues:
    """Clean ``cues`` (source seconds), cut them into clips of ``clip_length`` s and align each.

    ``clip_length=None`` makes the whole video one clip (TV-style data). Pseudo-cues get no
    tokens (empty lists), as in HERO. ``malformed``: what the reader skipped and repaired to
    read ``cues``, carried into the report.
    """
    cleaned, report = clean_cues(cues)
    if clip_length is None:
        windows = [(0.0, duration)] if duration > 0 else []
    else:
        windows = clip_windows(duration, clip_length, interval)
    clips = []
    for k, (start, end) in enumerate(windows):
        clip = Clip(video_id, k, start, end)
        # The clip's length as cut_cues computes it: exact, without float noise.
        length = float(exact_seconds(end) - exact_seconds(start))
        alignment = align_cues(cut_cues(cleaned, start, end), length, interval)
        ids: tuple[tuple[int, ...], ...] = ()
        if tokenizer is not None:
            if alignment.pseudo:
                ids = tuple(() for _ in alignment.cues)
            else:
                ids = tuple(tuple(t) for t in tokenizer.encode_cues(alignment.cues))
        clips.append(ClipCues(clip, alignment, ids))
    return VideoCues(video_id, tuple(clips), report, malformed or ReadReport())
