"""``hero demo``: the chain as far as it is built, on a corpus it synthesizes itself.

Stages run today (each is the toolkit's real code; only the inputs are synthetic):

1. synthesize a small corpus in ``<output>/corpus``: video descriptions with durations, one
   WebVTT subtitle file per video (speakers, entities, a cue across a clip boundary, a
   duplicated cue), a video without subtitles, a zero-length video and a broken subtitle file;
2. train a small byte-level BPE tokenizer on the corpus text (``tokenizers``, no download) and
   load it the way a user's ``tokenizer.json`` is loaded;
3. per video: parse its subtitles, clean them, cut them into 60 s clips on the frame grid, align
   cues to steps by HERO's rule, tokenize;
4. write the clips to Arrow shards in ``<output>/dataset`` with the atomic writer, and each
   input that fails (zero-length video, broken subtitles) to its ``errors.jsonl``;
5. reopen the dataset with sha256 verification and check every clip reads back as written.

Not yet built, so not run: decoding and feature extraction (the features are seeded random
stand-ins, and the manifest says so), and Ray. Each joins this demo when it lands.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from align.readers import SubtitleError, read_cues
from align.tokenizer import CueTokenizer, train_byte_level_bpe
from align.video import align_video
from hero_data.grid import check_clip_length
from hero_data.manifest import MANIFEST_NAME, load_manifest
from hero_data.progress import track
from hero_data.reader import HeroDataset
from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord
from hero_data.types import Cue, VideoInfo
from hero_data.writer import DatasetWriter, ErrorLog

log = logging.getLogger(__name__)

_SENTENCES = (
    "crack the eggs into a bowl",
    "whisk them with milk and flour",
    "heat the pan and add butter",
    "pour a thin layer of batter",
    "wait until bubbles form",
    "then flip it over",
    "salt &amp; pepper to taste",
    "serve it warm with fruit",
)
_SPEAKERS = ("Ann", "Bo")


@dataclass(frozen=True)
class DemoConfig:
    """Options of ``hero demo``.

    Attributes:
        videos: synthetic videos with subtitles (three more inputs show the other paths: no
            subtitles, zero length, broken subtitles).
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
    """What the demo did: counts, and where it wrote."""

    dataset: Path
    corpus: Path
    inputs: int
    clips: int
    steps: int
    cues: int
    failed: int
    verified_clips: int


def _vtt_time(t: float) -> str:
    ms = round(t * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _write_vtt(path: Path, cues: list[Cue]) -> None:
    lines = ["WEBVTT", ""]
    for c in cues:
        lines += [f"{_vtt_time(c.start)} --> {_vtt_time(c.end)}", c.text, ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def _synth_cues(duration: float, rng: np.random.Generator) -> list[Cue]:
    """Source-time cues: 1-5 s of speech, 0-3 s pauses, some with a speaker prefix."""
    cues, t = [], float(rng.uniform(0.0, 2.0))
    while t < duration - 1.0:
        end = min(duration, t + float(rng.uniform(1.0, 5.0)))
        text = str(rng.choice(_SENTENCES))
        if rng.random() < 0.3:
            text = f"{str(rng.choice(_SPEAKERS)).upper()}: {text}"
        cues.append(Cue(round(t, 3), round(end, 3), text))
        t = end + float(rng.uniform(0.0, 3.0))
    if duration > 62:  # one cue across the first clip boundary, and its exact duplicate
        cues.append(Cue(58.5, 61.25, "this cue crosses the clip boundary"))
        cues.append(Cue(58.5, 61.25, "this cue crosses the clip boundary"))
    return sorted(cues, key=lambda c: c.start)


def _synth_corpus(cfg: DemoConfig, corpus: Path, rng: np.random.Generator):
    """(video, subtitle path or None) pairs; their files are written to ``corpus``."""
    corpus.mkdir(parents=True)
    inputs: list[tuple[VideoInfo, Path | None]] = []
    for i in range(cfg.videos):
        duration = round(float(rng.uniform(20.0, 200.0)), 3)
        vid = f"video{i:02d}"
        info = VideoInfo(
            f"synthetic://demo/{vid}.mp4",
            vid,
            duration,
            Fraction(30000, 1001),
            640,
            360,
            codec="h264",
            has_audio=True,
        )
        sub = corpus / f"{vid}.vtt"
        _write_vtt(sub, _synth_cues(duration, rng))
        inputs.append((info, sub))
    silent = VideoInfo("synthetic://demo/silent.mp4", "silent", 45.0, Fraction(25), 640, 360)
    inputs.append((silent, None))  # no subtitles: pseudo-cues
    empty = VideoInfo("synthetic://demo/empty.mp4", "empty", 0.0, Fraction(30), 640, 360)
    inputs.append((empty, None))  # no frames: fails
    broken = corpus / "broken.vtt"
    broken.write_text("WEBVTT\n\n00:00:05.000 --> 00:00:02.000\nends before it starts\n")
    inputs.append(
        (VideoInfo("synthetic://demo/broken.mp4", "broken", 30.0, Fraction(30), 640, 360), broken)
    )
    return inputs


def _train_tokenizer(corpus: Path) -> Path:
    """A small byte-level BPE trained on the corpus sentences, saved as tokenizer.json."""
    texts = [*_SENTENCES, "this cue crosses the clip boundary"]
    return train_byte_level_bpe(texts, corpus / "tokenizer.json", vocab_size=400)


def _config(cfg: DemoConfig, tokenizer: CueTokenizer) -> dict[str, Any]:
    return {
        "demo": True,
        **asdict(cfg),
        "features": "synthetic: seeded random float16 stand-ins (no extraction yet)",
        "models": {"resnet": "none", "slowfast": "none"},
        "weights_sha256": {"resnet": "none", "slowfast": "none"},
        "tokenizer": tokenizer.describe(),
    }


def _prepare(output: Path) -> None:
    dataset = output / "dataset"
    if (dataset / MANIFEST_NAME).exists():
        if not load_manifest(dataset).config.get("demo"):
            raise FileExistsError(f"{dataset} holds a dataset that is not a demo; choose another")
        shutil.rmtree(output)
    elif output.exists() and any(output.iterdir()):
        raise FileExistsError(f"{output} exists and is not empty; choose another folder")


def run_demo(output: str | Path, cfg: DemoConfig | None = None) -> DemoResult:
    """Run the demo into ``output`` (an earlier demo there is replaced, else it must be new)."""
    cfg = cfg or DemoConfig()
    if cfg.videos < 1:
        raise ValueError(f"the demo needs at least one video, got {cfg.videos}")
    check_clip_length(cfg.clip_length, cfg.frame_interval)
    out = Path(output)
    _prepare(out)
    corpus, dataset = out / "corpus", out / "dataset"
    rng = np.random.default_rng(cfg.seed)
    inputs = _synth_corpus(cfg, corpus, rng)
    tokenizer = CueTokenizer.from_path(_train_tokenizer(corpus))

    errors = ErrorLog(dataset)
    written: list[ClipRecord] = []
    failed = 0
    with DatasetWriter(dataset, _config(cfg, tokenizer), max_rows_per_shard=4) as writer:
        for video, sub in track(inputs, "demo: videos"):
            try:
                cues = read_cues(sub) if sub is not None else []
            except SubtitleError as e:
                errors.record(video_id=video.video_id, source=str(sub), stage="subtitles", error=e)
                failed += 1
                continue
            aligned = align_video(
                cues,
                video.duration,
                video_id=video.video_id,
                clip_length=cfg.clip_length,
                interval=cfg.frame_interval,
                tokenizer=tokenizer,
            )
            if not aligned.clips:
                errors.record(
                    video_id=video.video_id,
                    source=video.uri,
                    stage="plan",
                    error_type="EmptyVideo",
                    message=f"{video.uri}: 0 s of video, no clip to make",
                )
                failed += 1
                continue
            for clip in aligned.clips:
                a, n = clip.alignment, clip.alignment.num_frames
                record = ClipRecord(
                    clip=clip.clip,
                    source=video.uri,
                    frame_interval=cfg.frame_interval,
                    resnet=rng.standard_normal((n, RESNET_DIM), np.float32).astype(np.float16),
                    slowfast=rng.standard_normal((n, SLOWFAST_DIM), np.float32).astype(np.float16),
                    cues=a.cues,
                    cue_token_ids=clip.token_ids,
                    sub2frames=a.sub2frames,
                    unique_sub2frames=a.unique_sub2frames,
                    unmatched_frames=a.unmatched_frames,
                )
                writer.write(record)
                written.append(record)

    ds = HeroDataset.open(dataset, verify="full")
    if len(ds) != len(written):
        raise RuntimeError(f"wrote {len(written)} clips but {dataset} holds {len(ds)}")
    fields = (
        "clip",
        "source",
        "cues",
        "cue_token_ids",
        "sub2frames",
        "unique_sub2frames",
        "unmatched_frames",
    )
    for i, expected in enumerate(track(written, "demo: verifying")):
        got = ds[i]
        same = all(getattr(got, f) == getattr(expected, f) for f in fields)
        if not (
            same
            and np.array_equal(got.resnet, expected.resnet)
            and np.array_equal(got.slowfast, expected.slowfast)
        ):
            raise RuntimeError(f"clip {expected.clip_id} did not read back as written")
    return DemoResult(
        dataset=dataset,
        corpus=corpus,
        inputs=len(inputs),
        clips=len(written),
        steps=sum(r.num_frames for r in written),
        cues=sum(len(r.cues) for r in written),
        failed=failed,
        verified_clips=len(ds),
    )
