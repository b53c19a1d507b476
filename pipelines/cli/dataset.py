"""``hero inspect`` (a dataset's summary, one clip's timeline, the plots) and ``hero upgrade``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pipelines.cli.errors import friendly_errors


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def print_summary(summary: dict[str, Any]) -> None:
    """A dataset's summary (:func:`hero_data.summary.summarize`) as tables: ``hero inspect``'s,
    and ``hero demo``'s at its end."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"HERO dataset {summary['dataset']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("videos", f"{summary['videos']:,}")
    table.add_row("clips", f"{summary['clips']:,}")
    table.add_row("hours", f"{summary['hours']:.3f}")
    table.add_row("steps", f"{summary['steps']:,}")
    table.add_row("cues", f"{summary['cues']:,}")
    names = "+".join(f"{c['name']}({c['dim']})" for c in summary["features"])
    table.add_row("features", f"{names} = {summary['feature_dim']} per step")
    table.add_row("failed inputs", f"{summary['failed_inputs']:,}")
    for kind, count in sorted(summary["failed_by_type"].items()):
        table.add_row(f"  failed: {kind}", f"{count:,}")
    table.add_row("shards", f"{len(summary['shards'])} ({_fmt_bytes(summary['bytes'])})")
    table.add_row("schema version", str(summary["schema_version"]))
    table.add_row("written by", f"hero {summary['toolkit_version']}, {summary['updated']}")
    console.print(table)
    if summary["shards"]:
        shards = Table(title="shards")
        shards.add_column("file")
        shards.add_column("clips", justify="right")
        shards.add_column("size", justify="right")
        for s in summary["shards"]:
            shards.add_row(s["name"], f"{s['rows']:,}", _fmt_bytes(s["bytes"]))
        console.print(shards)


def _print_clip(record: Any, as_json: bool) -> None:
    from dataclasses import asdict

    from hero_data.summary import clip_timeline

    steps = clip_timeline(record)
    if as_json:
        out = {
            "clip": record.clip.to_dict(),
            "source": record.source,
            "frame_interval": record.frame_interval,
            "num_frames": record.num_frames,
            "cues": [c.to_dict() for c in record.cues],
            "steps": [asdict(s) for s in steps],
        }
        click.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    clip = record.clip
    table = Table(
        title=f"clip {clip.clip_id}: [{clip.start:g}, {clip.end:g}) s of {record.source}, "
        f"{record.num_frames} steps of {record.frame_interval:g} s, {len(record.cues)} cues"
    )
    table.add_column("step", justify="right")
    table.add_column("seconds (clip)")
    table.add_column("covered by", justify="right")
    table.add_column("assigned cue", justify="right")
    table.add_column("text", overflow="fold")
    for s in steps:
        table.add_row(
            str(s.step),
            f"{s.start:7.2f} - {s.end:7.2f}",
            ",".join(map(str, s.covering)) or "-",
            "-" if s.cue is None else str(s.cue),
            s.text,
        )
    Console().print(table)


@click.command()
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--clip", "clip_id", metavar="ID", help="Show one clip's steps and their cues.")
@click.option(
    "--verify",
    is_flag=True,
    help="Re-hash every shard against the manifest's sha256, even shards already verified "
    "unchanged (reads all the data). Without it a shard is hashed only if this file has not "
    "been verified before.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PNG",
    help="Draw the dataset card (histograms, steps without a cue, failures, a few frames) to "
    "PNG; with --clip, the clip's timeline (frames, steps, cues, assignment) instead.",
)
@click.option(
    "--mark-inputs",
    is_flag=True,
    help="With --clip and --plot: mark the source frames that fed each model input (2D, "
    "SlowFast fast and slow), by the dataset's sampling rule.",
)
@friendly_errors
def inspect(
    dataset: str,
    as_json: bool,
    clip_id: str | None,
    verify: bool,
    plot_path: Path | None,
    mark_inputs: bool,
) -> None:
    """Summarize DATASET (a folder, or s3://..., gs://...): videos, clips, hours, steps, cues,
    failures, shards.

    --plot summary.png also draws the dataset's one-page card: histograms of clip duration,
    steps per clip, cues per clip and words per cue, the share of steps with no cue, the failed
    inputs by reason, and the frames of a few clips.

    With --clip ID, show that clip's steps and the cue assigned to each instead. Adding --plot
    out.png then draws the clip as a picture: each step's 2D sample decoded from the source
    video (placeholders when the video is missing), a time axis, the cues as bars, and which
    steps each cue covers and was assigned, in the cue's colour. With --mark-inputs it also
    marks, under the frames, the source frames that fed the models (the sampling plan).
    """
    from hero_data.reader import HeroDataset
    from hero_data.summary import summarize

    if mark_inputs and plot_path is None:
        raise click.UsageError("--mark-inputs marks the plot: give --plot PNG too")
    if mark_inputs and clip_id is None:
        raise click.UsageError("--mark-inputs marks one clip's plot: give it with --clip ID")
    ds = HeroDataset.open(dataset, verify="full" if verify else "auto")
    if clip_id is not None:
        record = ds[clip_id]
        _print_clip(record, as_json)
        if plot_path is not None:
            from pipelines.plot import load_inputs, load_thumbnails, plot_clip

            inputs = None
            if mark_inputs:
                # Datasets made before the rule was recorded used the uniform one.
                sampling = ds.manifest.config.get("sampling", "uniform")
                inputs = load_inputs(record, sampling)
            try:
                written = plot_clip(
                    record, plot_path, thumbnails=load_thumbnails(record), inputs=inputs
                )
            except OSError as e:
                raise click.ClickException(f"cannot write {plot_path}: {e}") from None
            click.echo(f"plot: {written}", err=as_json)  # stdout stays valid JSON with --json
        return
    summary = summarize(ds)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    if plot_path is not None:
        click.echo(f"plot: {_plot_card(ds, plot_path)}", err=as_json)


def _plot_card(ds: Any, out: Path) -> Path:
    """Draw ``ds``'s dataset card to ``out``; a path that cannot be written is a clear error."""
    from pipelines.plot_card import draw_dataset_card

    try:
        return draw_dataset_card(ds, out)
    except OSError as e:
        raise click.ClickException(f"cannot write {out}: {e}") from None


@click.command()
@click.argument("dataset")
@friendly_errors
def upgrade(dataset: str) -> None:
    """Upgrade DATASET (a folder, or s3://...) to this toolkit's dataset format, in place.

    Format 1 datasets (one manifest.json rewritten under a lock after every shard) become
    format 2 (commit records folded into the manifest; docs/dataset-format.md). Only
    manifest.json is rewritten, and the old .lock file removed: no shard is touched. Format 1
    datasets also open as they are, and the first run that appends to one upgrades it.
    """
    from hero_data.writer import upgrade_dataset

    before, after = upgrade_dataset(dataset)
    if before == after:
        click.echo(f"{dataset}: already dataset format {after}; nothing to do")
    else:
        click.echo(f"{dataset}: upgraded from dataset format {before} to {after} (manifest only)")
