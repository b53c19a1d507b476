"""``hero demo``: the whole chain built so far, on a corpus it synthesizes itself.

Stages (each is the toolkit's real code; only the inputs are synthetic):

1. write a small corpus to ``<output>/corpus``: H.264 videos of moving bars (PyAV, no ffmpeg
   binary), one WebVTT file per video (speakers, an entity, a cue across a clip boundary, an
   exact duplicate), a video without subtitles, a truncated video and a broken subtitle file;
2. train a small byte-level BPE tokenizer on the subtitle text (no download) and load it as a
   user's ``tokenizer.json`` is loaded;
3. per video: probe it, decode it once into 2D and 3D inputs per 1.5 s step, run ResNet-152 and
   SlowFast-R50 (seeded random weights: no pretrained weights can be downloaded, so the
   features are meaningless, which the manifest records), read, clean, cut and align its cues,
   tokenize them, and assemble its clips;
4. write the clips to Arrow shards in ``<output>/dataset`` with the atomic writer, and each
   failing input (truncated video, broken subtitles) to its ``errors.jsonl``;
5. reopen the dataset with sha256 verification and check every clip reads back as written.

Clips are 9 s (6 steps) by default so that short videos still show clip boundaries; real runs
use 60 s. Not yet built, so not run: the Ray pipeline (``hero run``).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from align.readers import SubtitleError, read_cues
from align.tokenizer import CueTokenizer, train_byte_level_bpe
from extract.decode import DecodeError, probe
from extract.extractor import ExtractConfig, FeatureExtractor
from extract.synthetic import make_video
from hero_data.grid import check_clip_length
from hero_data.manifest import MANIFEST_NAME, load_manifest
from hero_data.progress import Progress
from hero_data.reader import HeroDataset
from hero_data.schema import ClipRecord
from hero_data.types import Cue
from hero_data.writer import DatasetWriter, ErrorLog
from pipelines.assemble import clip_records

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
_BOUNDARY_TEXT = "this cue crosses the clip boundary"


@dataclass(frozen=True)
class DemoConfig:
    """Options of ``hero demo``.

    Attributes:
        videos: synthetic videos with subtitles (three more inputs show the other paths: no
            subtitles, a truncated video, broken subtitles).
        seed: seed of every random choice, so two runs write identical datasets.
        frame_interval: seconds per feature step.
        clip_length: seconds per clip; must be a whole number of steps.
        min_duration, max_duration: range of the videos' durations, seconds.
    """

    videos: int = 2
    seed: int = 0
    frame_interval: float = 1.5
    clip_length: float = 9.0
    min_duration: float = 8.0
    max_duration: float = 16.0


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


def _synth_cues(duration: float, clip_length: float, rng: np.random.Generator) -> list[Cue]:
    """Source-time cues: 1-4 s of speech, 0-2 s pauses, some with a speaker prefix."""
    cues, t = [], float(rng.uniform(0.0, 1.0))
    while t < duration - 1.0:
        end = min(duration, t + float(rng.uniform(1.0, 4.0)))
        text = str(rng.choice(_SENTENCES))
        if rng.random() < 0.3:
            text = f"{str(rng.choice(_SPEAKERS)).upper()}: {text}"
        cues.append(Cue(round(t, 3), round(end, 3), text))
        t = end + float(rng.uniform(0.0, 2.0))
    if duration > clip_length + 2:  # a cue across the first clip boundary, and its duplicate
        boundary = Cue(clip_length - 1.5, clip_length + 1.25, _BOUNDARY_TEXT)
        cues += [boundary, boundary]
    return sorted(cues, key=lambda c: c.start)


def _synth_corpus(cfg: DemoConfig, corpus: Path, rng: np.random.Generator):
    """(video path, subtitle path or None) pairs, written to ``corpus``."""
    corpus.mkdir(parents=True)
    inputs: list[tuple[Path, Path | None]] = []
    for i in range(cfg.videos):
        duration = round(float(rng.uniform(cfg.min_duration, cfg.max_duration)), 2)
        video = make_video(corpus / f"video{i:02d}.mp4", duration=duration, seed=i, audio=i == 0)
        sub = corpus / f"video{i:02d}.vtt"
        _write_vtt(sub, _synth_cues(duration, cfg.clip_length, rng))
        inputs.append((video, sub))
    inputs.append((make_video(corpus / "silent.mp4", duration=4.0, seed=7), None))
    truncated = corpus / "truncated.mp4"
    full = make_video(corpus / ".full.mp4", duration=2.0, seed=8)
    truncated.write_bytes(full.read_bytes()[:2000])  # the header is cut: no frame decodes
    full.unlink()
    inputs.append((truncated, None))
    make_video(corpus / "broken.mp4", duration=3.0, seed=9)
    broken = corpus / "broken.vtt"
    broken.write_text("WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nends before it starts\n")
    inputs.append((corpus / "broken.mp4", broken))
    return inputs


def _config(
    cfg: DemoConfig, extractor: FeatureExtractor, tokenizer: CueTokenizer
) -> dict[str, Any]:
    return {
        "demo": True,
        **asdict(cfg),
        "extraction": extractor.describe(),
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


def run_demo(
    output: str | Path, cfg: DemoConfig | None = None, extractor: FeatureExtractor | None = None
) -> DemoResult:
    """Run the demo into ``output`` (an earlier demo there is replaced, else it must be new).

    ``extractor``: reuse already-loaded models (tests); by default seeded random weights.
    """
    cfg = cfg or DemoConfig()
    if cfg.videos < 1:
        raise ValueError(f"the demo needs at least one video, got {cfg.videos}")
    check_clip_length(cfg.clip_length, cfg.frame_interval)
    out = Path(output)
    _prepare(out)
    corpus, dataset = out / "corpus", out / "dataset"
    rng = np.random.default_rng(cfg.seed)
    inputs = _synth_corpus(cfg, corpus, rng)
    texts = [*_SENTENCES, _BOUNDARY_TEXT]
    tokenizer = CueTokenizer.from_path(
        train_byte_level_bpe(texts, corpus / "tokenizer.json", vocab_size=400)
    )
    if extractor is None:
        extractor = FeatureExtractor(
            ExtractConfig(frame_interval=cfg.frame_interval, random_weights=True)
        )

    errors = ErrorLog(dataset)
    written: list[ClipRecord] = []
    failed = 0
    config = _config(cfg, extractor, tokenizer)
    with (
        DatasetWriter(dataset, config, max_rows_per_shard=4) as writer,
        Progress() as progress,
    ):
        overall = progress.add("demo: videos", total=len(inputs))
        for video_path, sub in inputs:
            stage = "probe"
            try:
                info = probe(video_path)
                stage = "subtitles"
                cues = read_cues(sub) if sub is not None else []
                stage = "extract"
                bar = progress.add(f"  {video_path.name}: steps")
                features = extractor.extract(
                    video_path, on_step=lambda _, bar=bar: progress.advance(bar)
                )
                progress.done(bar)
                records, _ = clip_records(
                    info, features, cues, clip_length=cfg.clip_length, tokenizer=tokenizer
                )
            except (DecodeError, SubtitleError) as e:
                errors.record(
                    video_id=video_path.stem, source=str(video_path), stage=stage, error=e
                )
                failed += 1
            else:
                for record in records:
                    writer.write(record)
                    written.append(record)
            progress.advance(overall)
        progress.done(overall)

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
    for i, expected in enumerate(written):
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
