"""``hero demo``: the whole chain, on a corpus it synthesizes itself (nothing is downloaded).

1. write a small corpus to ``<output>/corpus``: H.264 videos of moving bars (PyAV, no ffmpeg
   binary), one WebVTT file per video (speakers, an entity, a cue across a clip boundary, an
   exact duplicate), a video without subtitles, a corrupt (truncated) video and a broken
   subtitle file;
2. train a small byte-level BPE tokenizer on the subtitle text and save it as
   ``corpus/tokenizer.json`` (stands in for RoBERTa's, which cannot be downloaded here);
3. run ``hero run`` on the corpus (Ray, this machine) into ``<output>/dataset``, with seeded
   random model weights: the features are real computations but meaningless, which the
   manifest records and a warning says, with how to provide the pretrained weights;
4. reopen the dataset with sha256 verification and check that every input is accounted for,
   in the shards or in ``errors.jsonl``;
5. pretrain the ``tiny`` HERO on it for 100 steps (``pretrain_steps``; ``hero train``, all four
   tasks)
   into ``<output>/pretrain``;
6. build a How2R-style retrieval benchmark from the dataset's own cues (``hero build
   subtitle-queries``) into ``<output>/bench``, split by video 60/20/20 (the demo has few
   videos; the builder's default is 80/10/10);
7. finetune the pretrained model on it (``hero finetune how2r``) into ``<output>/finetune`` and
   score the held-out videos' queries with the TVR metrics (``metrics.json``);
8. draw the dataset card (``summary.png``), the pretraining's curves (``curves.png``) and the
   timeline of a clip with cues into ``<output>/pictures/``.

Ray's own log lines go to ``<output>/dataset/logs/``, not to the terminal.

Steps 5-7 use one torch thread: the tiny model runs several times faster that way on a
2-core machine than with torch's default of one thread per core.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from align.tokenizer import CueTokenizer, train_byte_level_bpe
from extract.synthetic import make_video
from hero_data.errors import OptionError
from hero_data.grid import check_clip_length
from hero_data.reader import HeroDataset
from hero_data.types import Cue

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
_MANNER = (
    "slowly",
    "for two minutes",
    "with a spoon",
    "on low heat",
    "in a large bowl",
    "until golden",
    "carefully",
    "one more time",
    "with a fork",
    "right away",
    "gently",
    "as shown",
)  # appended to the sentences so that cues differ enough to make retrieval queries
_SPEAKERS = ("Ann", "Bo")
_BOUNDARY_TEXT = "this cue crosses the clip boundary"


@dataclass(frozen=True)
class DemoConfig:
    """Options of ``hero demo``.

    Attributes:
        videos: synthetic videos with subtitles (three more inputs show the other paths: no
            subtitles, a corrupt video, broken subtitles).
        seed: seed of every random choice, so two runs write identical datasets.
        frame_interval: seconds per feature step.
        clip_length: seconds per clip; must be a whole number of steps.
        min_duration, max_duration: range of the videos' durations, seconds.
        train: run steps 5-7 (pretraining, benchmark, finetuning); they need at least two
            videos with subtitles (one to train on, one to evaluate).
        pretrain_steps: optimizer steps of the tiny pretraining.
        finetune_steps: optimizer steps of the tiny finetuning.
    """

    videos: int = 3
    seed: int = 0
    frame_interval: float = 1.5
    clip_length: float = 60.0
    min_duration: float = 90.0
    max_duration: float = 150.0
    train: bool = True
    pretrain_steps: int = 100
    finetune_steps: int = 40


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
    pretrain: Path | None = None
    bench: Path | None = None
    finetune: Path | None = None
    metrics: dict[str, Any] | None = None
    ray_log: Path | None = None
    pictures: dict[str, Path] = field(default_factory=dict)


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
        text = f"{rng.choice(_SENTENCES)} {rng.choice(_MANNER)}"
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
    # Its one cue's timestamp cannot be read, so no cue can: the file fails its video (a file
    # with some good cues would keep them, its malformed ones skipped and counted).
    broken.write_text("WEBVTT\n\n00:00:02.000 --> 00:00:0x.000\nno time can be read here\n")
    inputs.append((corpus / "broken.mp4", broken))
    return inputs


_MARKER = ".hero-demo"  # marks a folder this demo made, so a later demo may replace it


def _prepare(output: Path) -> None:
    """Empty ``output`` if an earlier demo made it; refuse any other non-empty folder."""
    if (output / _MARKER).exists():
        shutil.rmtree(output)
    elif output.exists() and any(output.iterdir()):
        raise FileExistsError(
            f"{output} exists, is not empty and is not an earlier demo; choose another folder"
        )
    output.mkdir(parents=True, exist_ok=True)
    (output / _MARKER).write_text("made by hero demo; a later hero demo may replace it\n")


RANDOM_WEIGHTS_NOTICE = (
    "hero demo uses seeded RANDOM model weights (it downloads nothing): the features it writes "
    "are real computations but meaningless. For real features run `hero run` without "
    "--random-weights: the files HERO used, resnet152-394f9c45.pth and SLOWFAST_8x8_R50.pkl, "
    "are then read from the torch hub cache ($TORCH_HOME/hub/checkpoints, by default "
    "~/.cache/torch/hub/checkpoints) and downloaded there when missing (`hero weights "
    "--download` fetches them ahead), or give --resnet-weights / --slowfast-weights; "
    "see docs/extraction.md."
)


def run_demo(
    output: str | Path,
    cfg: DemoConfig | None = None,
    *,
    progress: bool = True,
    verbose: bool = False,
) -> DemoResult:
    """Run the demo into ``output`` (an earlier demo there is replaced, else it must be new).
    Ray's own log lines go to ``<output>/dataset/logs/`` (also to the terminal if
    ``verbose``)."""
    from pipelines.config import RunConfig
    from pipelines.ray_logs import ray_logs, stop_ray
    from pipelines.run import run_pipeline

    cfg = cfg or DemoConfig()
    if cfg.videos < 1:
        raise OptionError(f"the demo needs at least one video, got {cfg.videos}")
    if not 0 < cfg.min_duration <= cfg.max_duration:
        raise OptionError("need 0 < min_duration <= max_duration")
    check_clip_length(cfg.clip_length, cfg.frame_interval)
    out = Path(output)
    _prepare(out)
    corpus, dataset = out / "corpus", out / "dataset"
    rng = np.random.default_rng(cfg.seed)
    inputs = _synth_corpus(cfg, corpus, rng)
    tokenizer = train_byte_level_bpe(
        [*_SENTENCES, *_MANNER, _BOUNDARY_TEXT], corpus / "tokenizer.json", vocab_size=400
    )
    log.warning(RANDOM_WEIGHTS_NOTICE)
    run_cfg = RunConfig(
        input=str(corpus),
        output=str(dataset),
        random_weights=True,
        device="cpu",
        tokenizer=str(tokenizer),
        frame_interval=cfg.frame_interval,
        clip_length=cfg.clip_length,
        rows_per_shard=4,
    )
    logs = ray_logs(dataset, verbose=verbose)
    with logs:
        try:
            report = run_pipeline(run_cfg, progress=progress)
        finally:
            stop_ray()
    if report["unaccounted"]:
        raise RuntimeError(f"inputs neither in the dataset nor failed: {report['unaccounted']}")
    ds = HeroDataset.open(dataset, verify="full")
    records = list(ds)
    result = DemoResult(
        dataset=dataset,
        corpus=corpus,
        inputs=len(inputs),
        clips=len(records),
        steps=sum(r.num_frames for r in records),
        cues=sum(len(r.cues) for r in records),
        failed=report["videos_failed"],
        verified_clips=len(ds),
        ray_log=logs.place.path,
    )
    if cfg.train and cfg.videos < 2:
        log.warning("demo: pretraining and the benchmark need 2 videos or more; skipped")
    elif cfg.train:
        result = replace(result, **_train_and_evaluate(cfg, out, dataset, tokenizer, progress))
    return replace(result, pictures=_pictures(out / "pictures", ds, result.pretrain))


def _pictures(folder: Path, ds: HeroDataset, pretrain: Path | None) -> dict[str, Path]:
    """The demo's pictures: the dataset card (as ``hero inspect DATASET --plot`` draws it), the
    pretraining's curves (those of ``RUN_DIR/curves.png``) when it trained, and the timeline
    of the first clip with cues (as ``hero inspect --clip ID --plot`` draws it)."""
    from hero_model.curves import draw_curves
    from pipelines.plot import load_thumbnails, plot_clip
    from pipelines.plot_card import draw_dataset_card

    folder.mkdir(parents=True, exist_ok=True)
    pictures = {"dataset card": draw_dataset_card(ds, folder / "summary.png")}
    if pretrain is not None:
        pictures["training curves"] = draw_curves(pretrain, folder / "curves.png")
    ids = sorted(ds.clip_ids())
    clip_id = next((c for c in ids if any(x.text for x in ds[c].cues)), ids[0])
    record = ds[clip_id]
    path = plot_clip(record, folder / f"{clip_id}.png", thumbnails=load_thumbnails(record))
    pictures[f"clip {clip_id}'s timeline"] = path
    return pictures


def _train_and_evaluate(
    cfg: DemoConfig, out: Path, dataset: Path, tokenizer: Path, progress: bool
) -> dict[str, Any]:
    """Steps 5-7: tiny pretraining, a subtitle-query benchmark, finetuning and its scores."""
    import torch

    from build_benchmarks.finetune import FinetuneConfig, run_finetune
    from build_benchmarks.outputs import write_benchmark
    from build_benchmarks.subtitle_queries import build_subtitle_queries
    from hero_model.train import load_train_config, run_training

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        vocab_size = CueTokenizer.from_path(tokenizer).vocab_size
        train_cfg = load_train_config(
            "tiny",
            {
                "data": [str(dataset)],
                "max_steps": cfg.pretrain_steps,
                "warmup_steps": max(1, cfg.pretrain_steps // 10),
                "checkpoint_every": cfg.pretrain_steps,
                "device": "cpu",
                "seed": cfg.seed,
                "model_overrides": {"vocab_size": vocab_size},
            },
        )
        pretrain = out / "pretrain"
        run_training(train_cfg, pretrain, progress=progress)
        bench = out / "bench"
        write_benchmark(
            bench, build_subtitle_queries(dataset), seed=cfg.seed, fractions=(0.6, 0.2, 0.2)
        )
        finetune = out / "finetune"
        metrics = run_finetune(
            "how2r",
            bench,
            dataset,
            finetune,
            FinetuneConfig(
                checkpoint=str(pretrain),
                tokenizer=str(tokenizer),
                epochs=1000,  # the steps decide
                max_steps=cfg.finetune_steps,
                batch_size=8,
                lr=1e-3,
                seed=cfg.seed,
                device="cpu",
            ),
        )
    finally:
        torch.set_num_threads(threads)
    return {"pretrain": pretrain, "bench": bench, "finetune": finetune, "metrics": metrics}
