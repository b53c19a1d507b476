"""``hero demo``: the chain as far as it is built, on a corpus it synthesizes itself.

Stages run today (each is real code of the toolkit, nothing is faked):

1. synthesize a small corpus: video descriptions with durations, and timed subtitle cues;
2. plan 60-second clips on the frame grid (``hero_data.grid``), rejecting bad clip lengths;
3. map each cue to the steps it covers (HERO's ``sub2frames`` rule, ``grid.steps_covering``);
4. write the clips to Arrow shards with the atomic writer, and an input that yields no clip
   (a zero-length video) to ``errors.jsonl``;
5. reopen the dataset with full checksum verification and check that every clip reads back
   equal to what was written.

Not yet built, so not run: decoding and feature extraction (the features are seeded random
stand-ins, and the manifest says so), subtitle parsing and the unique cue-per-step assignment,
Ray. Each lands with its own issue and then joins this demo.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from hero_data.grid import FrameGrid, check_clip_length, clip_windows
from hero_data.manifest import MANIFEST_NAME, load_manifest
from hero_data.progress import track
from hero_data.reader import HeroDataset
from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord
from hero_data.types import Clip, Cue, VideoInfo
from hero_data.writer import DatasetWriter, ErrorLog

log = logging.getLogger(__name__)

_WORDS = [
    "crack",
    "the",
    "eggs",
    "into",
    "a",
    "bowl",
    "whisk",
    "them",
    "with",
    "milk",
    "and",
    "flour",
    "heat",
    "the",
    "pan",
    "add",
    "butter",
    "pour",
    "a",
    "thin",
    "layer",
    "of",
    "batter",
    "wait",
    "until",
    "bubbles",
    "form",
    "then",
    "flip",
    "it",
    "over",
    "and",
    "serve",
    "warm",
]


@dataclass(frozen=True)
class DemoConfig:
    """Options of ``hero demo``.

    Attributes:
        videos: number of synthetic videos (one more, of zero length, shows the failure path).
        seed: seed of every random choice, so two runs write identical datasets.
        frame_interval: seconds per feature step.
        clip_length: seconds per clip; must be a whole number of steps.
    """

    videos: int = 4
    seed: int = 0
    frame_interval: float = 1.5
    clip_length: float = 60.0


@dataclass(frozen=True)
class DemoResult:
    """What the demo did: counts, and the dataset it wrote."""

    output: Path
    videos: int
    clips: int
    steps: int
    cues: int
    failed: int
    verified_clips: int


def _synth_videos(cfg: DemoConfig, rng: np.random.Generator) -> list[VideoInfo]:
    videos = []
    for i in range(cfg.videos):
        duration = round(float(rng.uniform(20.0, 200.0)), 3)
        videos.append(
            VideoInfo(
                uri=f"synthetic://demo/video{i:02d}.mp4",
                video_id=f"video{i:02d}",
                duration=duration,
                fps=Fraction(30000, 1001),
                width=640,
                height=360,
                codec="h264",
                has_audio=True,
            )
        )
    # A video with no frames: it must end up in errors.jsonl, not in the shards.
    videos.append(VideoInfo("synthetic://demo/empty.mp4", "empty", 0.0, Fraction(30), 640, 360))
    return videos


def _synth_cues(duration: float, rng: np.random.Generator) -> list[Cue]:
    """Clip-relative cues: 1-5 s of speech separated by 0-3 s pauses."""
    cues, t = [], float(rng.uniform(0.0, 2.0))
    while t < duration:
        end = min(duration, t + float(rng.uniform(1.0, 5.0)))
        words = rng.choice(_WORDS, size=int(rng.integers(3, 9)))
        cues.append(Cue(round(t, 3), round(end, 3), " ".join(words)))
        t = end + float(rng.uniform(0.0, 3.0))
    return cues


def _clip_record(
    video: VideoInfo,
    index: int,
    start: float,
    end: float,
    cfg: DemoConfig,
    rng: np.random.Generator,
) -> ClipRecord:
    clip = Clip(video.video_id, index, start, end)
    grid = FrameGrid.for_duration(clip.duration, cfg.frame_interval)
    cues = _synth_cues(clip.duration, rng)
    n = grid.num_steps
    return ClipRecord(
        clip=clip,
        source=video.uri,
        frame_interval=cfg.frame_interval,
        resnet=rng.standard_normal((n, RESNET_DIM), dtype=np.float32).astype(np.float16),
        slowfast=rng.standard_normal((n, SLOWFAST_DIM), dtype=np.float32).astype(np.float16),
        cues=tuple(cues),
        sub2frames=tuple(tuple(grid.steps_covering(c.start, c.end)) for c in cues),
    )


def dataset_config(cfg: DemoConfig) -> dict[str, Any]:
    """The manifest's config block for a demo dataset."""
    return {
        "demo": True,
        **asdict(cfg),
        "features": "synthetic: seeded random float16 stand-ins (no extraction yet)",
        "models": {"resnet": "none", "slowfast": "none"},
        "weights_sha256": {"resnet": "none", "slowfast": "none"},
        "tokenizer": None,
    }


def run_demo(output: str | Path, cfg: DemoConfig | None = None) -> DemoResult:
    """Run the demo into ``output`` (replaced if it holds an earlier demo, else must be new)."""
    cfg = cfg or DemoConfig()
    if cfg.videos < 1:
        raise ValueError(f"the demo needs at least one video, got {cfg.videos}")
    check_clip_length(cfg.clip_length, cfg.frame_interval)
    out = Path(output)
    if (out / MANIFEST_NAME).exists():
        if not load_manifest(out).config.get("demo"):
            raise FileExistsError(
                f"{out} holds a dataset that is not a demo; choose another folder"
            )
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose another folder")

    rng = np.random.default_rng(cfg.seed)
    videos = _synth_videos(cfg, rng)
    errors = ErrorLog(out)
    written: list[ClipRecord] = []
    failed = 0
    with DatasetWriter(out, dataset_config(cfg), mode="create", max_rows_per_shard=4) as writer:
        for video in track(videos, "demo: writing clips"):
            windows = clip_windows(video.duration, cfg.clip_length, cfg.frame_interval)
            if not windows:
                errors.record(
                    video_id=video.video_id,
                    source=video.uri,
                    stage="plan",
                    error_type="EmptyVideo",
                    message=f"{video.uri}: 0 s of video, no clip to make",
                )
                failed += 1
                continue
            for k, (start, end) in enumerate(windows):
                record = _clip_record(video, k, start, end, cfg, rng)
                writer.write(record)
                written.append(record)

    ds = HeroDataset.open(out, verify="full")
    if len(ds) != len(written):
        raise RuntimeError(f"wrote {len(written)} clips but {out} holds {len(ds)}")
    for i, expected in enumerate(track(written, "demo: verifying")):
        got = ds[i]
        same = (
            got.clip == expected.clip
            and np.array_equal(got.resnet, expected.resnet)
            and np.array_equal(got.slowfast, expected.slowfast)
            and got.cues == expected.cues
            and got.sub2frames == expected.sub2frames
        )
        if not same:
            raise RuntimeError(f"clip {expected.clip_id} did not read back as written")
    return DemoResult(
        output=out,
        videos=len(videos),
        clips=len(written),
        steps=sum(r.num_frames for r in written),
        cues=sum(len(r.cues) for r in written),
        failed=failed,
        verified_clips=len(ds),
    )
