"""``hero extract``: features of given video files, one ``.npz`` per video (the loop itself:
:mod:`extract.batch`), or their sampling plans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from extract.config import ExtractConfig
from pipelines.cli.errors import friendly_errors
from pipelines.cli.options import extraction_options


@click.command()
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Folder for the .npz files (and errors.jsonl). Required unless --sampling-plan.",
)
@extraction_options
@click.option(
    "--sampling-plan",
    is_flag=True,
    help="Run no model: print, as one JSON object per video, the presentation time of the "
    "frame feeding each model input of every step.",
)
@click.option("--overwrite", is_flag=True, help="Redo videos whose .npz exists.")
@click.option(
    "--strict",
    is_flag=True,
    help="Exit with status 1 if any video failed. Without it, exit 1 only if videos were "
    "tried and none has its .npz.",
)
@friendly_errors
def extract(
    videos: tuple[Path, ...],
    output: Path | None,
    sampling_plan: bool,
    overwrite: bool,
    strict: bool,
    **flags: Any,
) -> None:
    """Extract HERO features of VIDEOS: one .npz per video in OUTPUT.

    A video is a file, or a folder of frames (.jpg/.png, ordered by the number in their names)
    holding frames.json with their rate, e.g. {"fps": 3} (docs/extraction.md).

    Each .npz holds one float16 array per extractor of --features, named after it: by default
    `resnet` (N x 2048, unit rows) and `slowfast` (N x 2304); `clip_vit_b32` is N x 512,
    `clip_rn50x4` N x 640, `milnce_s3d` N x 1024. Then `frame_interval` and `source`;
    N = ceil(duration / frame interval). Files are named
    <name>.<hash of the path>.npz, so same-named videos in different folders do not collide.
    Failed videos go to OUTPUT/errors.jsonl and the run goes on; finished ones are skipped when
    run again. Exit status 1 when videos were tried and none has its .npz (now or from an
    earlier run); --strict: when any video failed.

    With --sampling-plan nothing is extracted: for each video, one line of JSON says which
    source frame (its presentation time in seconds from the first frame) feeds each model
    input of --features: {"video", "frame_interval", "sampling", "steps": [{"step", "resnet",
    "slowfast_fast": [32 times], "slowfast_slow": [8 times]}, ...]} by default; a 2D extractor
    (resnet, clip_*) has its sample's time, milnce_s3d its 32 window frames' times.
    """
    # Options not given are left to the config model, which holds every default.
    cfg = ExtractConfig(**{k: v for k, v in flags.items() if v is not None})
    if sampling_plan:
        _print_sampling_plans(videos, cfg)
        return
    if output is None:
        raise click.UsageError("--output is required (unless --sampling-plan)")
    from extract.batch import extract_videos

    summary = extract_videos(videos, output, cfg, overwrite=overwrite)
    rate = summary.video_seconds / summary.wall_seconds if summary.wall_seconds else 0.0
    click.echo(
        f"extract: {len(summary.written)} written, {len(summary.skipped)} skipped (exist), "
        f"{len(summary.failed)} failed; {summary.steps} steps, {summary.video_seconds:.1f} s of "
        f"video in {summary.wall_seconds:.1f} s ({rate:.2f} video-s/s) -> {output}"
    )
    for _, message in summary.failed:
        click.echo(f"  failed: {message}", err=True)
    if summary.failed and not summary.written and not summary.skipped:
        click.echo("extract: no video succeeded", err=True)
        raise SystemExit(1)
    if strict and summary.failed:
        raise SystemExit(1)


def _print_sampling_plans(videos: tuple[Path, ...], cfg: ExtractConfig) -> None:
    from extract.sampling import sampling_plan

    for video in videos:
        plan = sampling_plan(
            video,
            cfg.frame_interval,
            sampling=cfg.sampling,
            backend=cfg.backend,
            features=cfg.features,
        )
        click.echo(json.dumps(plan))
