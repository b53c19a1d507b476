"""``hero run``: a video corpus to a HERO dataset, on Ray (the job itself: :mod:`pipelines.run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipelines.cli.errors import friendly_errors
from pipelines.cli.options import extraction_options, no_progress_option, shown, verbose


def _run_default(name: str) -> str:
    """The default of ``hero run``'s own option ``name`` (:class:`pipelines.config.RunConfig`),
    for a flag's help: defaults are written once, in the config models."""
    from pipelines.config import RunConfig

    return shown(RunConfig.default_of(name))


def _print_run_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    run = report["this_run"]
    table = Table(title=f"hero run -> {report['output']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("inputs", f"{report['inputs']:,}")
    table.add_row("videos ok (dataset)", f"{report['videos_ok']:,}")
    table.add_row("videos failed", f"{report['videos_failed']:,}")
    for reason, count in sorted(report["failed_by_reason"].items()):
        table.add_row(f"  failed: {reason}", f"{count:,}")
    if report["excluded_by_language"]:
        table.add_row("excluded (language)", f"{len(report['excluded_by_language']):,}")
    table.add_row("clips (dataset)", f"{report['dataset']['clips']:,}")
    table.add_row("this run: videos ok", f"{run['videos_ok']:,}")
    table.add_row("this run: clips / steps", f"{run['clips']:,} / {run['steps']:,}")
    if run.get("videos_with_malformed_cues"):
        skipped = sum(run["malformed_skipped"].values())
        repaired = sum(run["malformed_repaired"].values())
        table.add_row(
            "this run: malformed cues skipped / repaired",
            f"{skipped:,} / {repaired:,} in {len(run['videos_with_malformed_cues']):,} videos",
        )
    table.add_row("this run: video-hours", f"{run['video_hours']:.4f}")
    table.add_row("wall time", f"{run['wall_s']:.1f} s")
    table.add_row("video-hours per hour", f"{run['video_hours_per_hour']:.3f}")
    if run.get("worker_restarts"):
        table.add_row("worker restarts", f"{run['worker_restarts']:,}")
    for stage, seconds in run["stage_worker_s"].items():
        table.add_row(f"  {stage} (worker-s)", f"{seconds:.1f}")
    if report["unaccounted"]:
        table.add_row("[red]unaccounted", ", ".join(report["unaccounted"][:5]))
    Console().print(table)


@click.command()
@click.option(
    "--input",
    "input_",
    help="Folder of videos (+ subtitles by name), or a .csv/.jsonl manifest (video; optional "
    "subtitle, video_id, and fps for a folder of frames); local or any fsspec URL.",
)
@click.option(
    "--output", help="Dataset: a folder, or s3://bucket/prefix, gs://... (created, or resumed)."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="YAML file with any of these options; flags override it.",
)
@click.option("--subtitles", help="HowTo100M caption JSON as the subtitle source.")
@click.option(
    "--language",
    help="With --subtitles: keep videos whose captions are in this language (e.g. en).",
)
@click.option("--clip-seconds", type=float, help=f"Clip length [{_run_default('clip_length')}].")
@click.option("--whole-videos", is_flag=True, default=None, help="Each video is one clip.")
@extraction_options
@click.option("--workers", type=int, help="Extraction actors [auto].")
@click.option("--cpus-per-worker", type=float, help="CPU cores per extraction actor [auto].")
@click.option(
    "--gpus-per-worker",
    type=float,
    help=f"GPUs per extraction actor [{_run_default('gpus_per_worker')}].",
)
@click.option("--tokenizer", help="tokenizer.json or a folder with vocab.json + merges.txt.")
@click.option("--video-timeout", type=float, help="Seconds per video [max(300, 4 x duration)].")
@click.option(
    "--max-attempts",
    type=int,
    help=f"Tries per video when workers die [{_run_default('max_attempts')}].",
)
@click.option(
    "--rows-per-shard",
    type=int,
    help=f"Clips per shard, at most [{_run_default('rows_per_shard')}].",
)
@click.option(
    "--compact-every",
    type=float,
    help="Seconds between folds of commit records into manifest.json "
    f"[{_run_default('compact_every_s')}].",
)
@click.option("--address", help="Ray cluster address (or RAY_ADDRESS) [start Ray here].")
@click.option(
    "--strict",
    is_flag=True,
    default=None,
    help="Exit 1 if any video failed. Without it, exit 1 only if videos were tried and none "
    "is in the dataset.",
)
@click.option(
    "--strict-subtitles",
    is_flag=True,
    default=None,
    help="A malformed subtitle cue fails its video [skip or repair it, and count it].",
)
@click.option(
    "--overwrite",
    is_flag=True,
    default=None,
    help="Replace an existing dataset made with another config.",
)
@no_progress_option
@friendly_errors
def run(
    config_file: Path | None,
    whole_videos: bool | None,
    no_progress: bool,
    input_: str | None,
    **flags: Any,
) -> None:
    """Turn a video corpus into a HERO dataset (Ray; local unless --address).

    Probe, decode once, extract the --features set (ResNet-152 + SlowFast-R50 by default, as
    HERO), read and align subtitles, tokenize, and write Arrow shards. Re-running the same
    command after any interruption finishes the job without redoing or duplicating anything;
    failed videos are listed in OUTPUT/errors.jsonl; OUTPUT/report.json holds the summary.

    Exit status 1 when this run tried videos and none of the inputs is in the dataset (an
    empty corpus, or one already done, is not a failure); --strict: when any video failed.
    """
    from hero_data.storage import open_storage
    from pipelines.config import build_config, load_config
    from pipelines.ray_logs import ray_logs, stop_ray
    from pipelines.run import run_pipeline

    overrides = {"input": input_, **flags}
    overrides["clip_length"] = overrides.pop("clip_seconds")
    overrides["video_timeout_s"] = overrides.pop("video_timeout")
    overrides["compact_every_s"] = overrides.pop("compact_every")
    file_values = load_config(str(config_file)) if config_file else {}
    cfg = build_config(file_values, overrides, source=str(config_file) if config_file else None)
    if whole_videos:
        cfg = cfg.model_copy(update={"clip_length": None})
    logs = ray_logs(cfg.output, verbose=verbose() > 0)
    click.echo(f"Ray's own log lines go to {logs.place.describe()}", err=True)
    with logs:
        try:
            report = run_pipeline(cfg, progress=not no_progress)
        finally:
            stop_ray()
    _print_run_report(report)
    click.echo(f"report: {open_storage(cfg.output).uri('report.json')}")
    run_now = report["this_run"]
    if sum(run_now["videos_failed"].values()) and not report["videos_ok"]:
        click.echo("hero run: no input succeeded (see errors.jsonl)", err=True)
        raise SystemExit(1)
    if cfg.strict and report["videos_failed"]:
        raise SystemExit(1)
