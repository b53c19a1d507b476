"""``hero demo``: the whole chain on a corpus it synthesizes (the chain itself:
:mod:`pipelines.demo`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipelines.cli.dataset import print_summary
from pipelines.cli.errors import friendly_errors
from pipelines.cli.options import no_progress_option, verbose


@click.command()
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("hero-demo"),
    show_default=True,
    help="Folder for the corpus and dataset (an earlier demo there is replaced).",
)
@click.option(
    "--videos",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Synthetic videos with subtitles to make.",
)
@click.option(
    "--min-duration", type=float, default=90.0, show_default=True, help="Shortest video, seconds."
)
@click.option(
    "--max-duration", type=float, default=150.0, show_default=True, help="Longest video, seconds."
)
@click.option("--clip-seconds", type=float, default=60.0, show_default=True, help="Clip length.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@no_progress_option
@friendly_errors
def demo(
    output: Path,
    videos: int,
    min_duration: float,
    max_duration: float,
    clip_seconds: float,
    seed: int,
    no_progress: bool,
) -> None:
    """The whole chain on a corpus synthesized on the spot (nothing is downloaded).

    Writes OUTPUT/corpus (H.264 videos of 90-150 s with WebVTT subtitles, a video without
    subtitles, a corrupt video, a broken subtitle file, and a tokenizer trained on the text),
    then runs `hero run` on it into OUTPUT/dataset with seeded random model weights (the
    features are meaningless; the warning says how to use the pretrained ones), verifies the
    dataset and shows it; then pretrains the tiny HERO on it (OUTPUT/pretrain), builds a
    retrieval benchmark from its cues (OUTPUT/bench), finetunes on it and scores the held-out
    videos (OUTPUT/finetune/metrics.json). It ends by drawing the dataset card, the
    pretraining's curves and one clip's timeline into OUTPUT/pictures and printing their
    paths. Measured: 7 min 9 s on 2 CPU cores with the defaults (BENCHMARKS.md).
    """
    from hero_data.reader import HeroDataset
    from hero_data.summary import summarize
    from pipelines.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        videos=videos,
        seed=seed,
        clip_length=clip_seconds,
        min_duration=min_duration,
        max_duration=max_duration,
    )
    result = run_demo(output, cfg, progress=not no_progress, verbose=verbose() > 0)
    ds = HeroDataset.open(result.dataset)
    print_summary(summarize(ds))
    click.echo(
        f"demo: {result.inputs} inputs -> {result.clips} clips ({result.steps} steps, "
        f"{result.cues} cues); {result.failed} failed inputs in errors.jsonl; "
        f"{result.verified_clips} clips verified (sha256)."
    )
    click.echo(f"  corpus:  {result.corpus}")
    click.echo(f"  dataset: {result.dataset} (report.json, errors.jsonl inside)")
    if result.metrics is not None:
        click.echo(f"  pretraining (tiny HERO, all four tasks): {result.pretrain}")
        click.echo(f"  benchmark (queries from the dataset's cues): {result.bench}")
        click.echo(f"  finetuning (how2r) and its scores: {result.finetune}/metrics.json")
        splits = json.loads((result.bench / "report.json").read_text())["splits"]
        for split in ("val", "test"):
            if split in result.metrics:
                m = result.metrics[split]
                click.echo(
                    f"    {split} ({splits[split]['rows']} queries, {splits[split]['videos']} "
                    f"video(s)): VR r1 {m['VR']['r1']}, VCMR 0.5-r1 {m['VCMR']['0.5-r1']}, "
                    f"SVMR 0.5-r1 {m['SVMR']['0.5-r1']} (percent)"
                )
        click.echo(
            f"    (random-weight features and {cfg.pretrain_steps} tiny pretraining steps: this "
            "shows the chain works end to end; the scores mean nothing)"
        )
    click.echo(f"  Ray's own log lines: {result.ray_log}")
    if result.pictures:
        click.echo("  pictures:")
        for what, path in result.pictures.items():
            click.echo(f"    {what}: {path}")
    first = ds.clip_ids()[0]
    click.echo(f"  next:    hero inspect {result.dataset} --clip {first} --plot {first}.png")
