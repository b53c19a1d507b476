"""The ``hero`` command line. Only commands that are built are listed here."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from hero_data import __version__
from pipelines.cli_bench import build, eval_
from pipelines.cli_compat import export, import_
from pipelines.cli_errors import OneLineUsageErrors, friendly_errors
from pipelines.cli_finetune import finetune
from pipelines.cli_train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hero")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """HERO toolkit: raw videos and subtitles to HERO training data, and HERO itself.

    Quick look: `hero demo` builds a small dataset from a corpus it synthesizes;
    `hero inspect DATASET` summarizes a dataset.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Progress lines (off a terminal: one every few seconds) are shown without -v.
    logging.getLogger("hero.progress").setLevel(min(level, logging.INFO))


def _verbose() -> int:
    """The ``-v`` count given to ``hero``."""
    ctx = click.get_current_context(silent=True)
    return int(ctx.find_root().params.get("verbose", 0) or 0) if ctx is not None else 0


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _print_summary(summary: dict[str, Any]) -> None:
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


@main.command()
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
        _print_summary(summary)
    if plot_path is not None:
        click.echo(f"plot: {_plot_card(ds, plot_path)}", err=as_json)


def _plot_card(ds: Any, out: Path) -> Path:
    """Draw ``ds``'s dataset card to ``out``; a path that cannot be written is a clear error."""
    from pipelines.plot_card import draw_dataset_card

    try:
        return draw_dataset_card(ds, out)
    except OSError as e:
        raise click.ClickException(f"cannot write {out}: {e}") from None


@main.command()
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


_SAMPLING_HELP = (
    "SlowFast's frame choice: hero (HERO's extractor: depends on the frame rate, repeats the "
    "window's last frame) or uniform (32 frames spread evenly)."
)


def _run_default(name: str) -> str:
    """The default of ``hero run`` option ``name`` (an extraction option or the run's own), for
    a flag's help: defaults are written once, in the config models."""
    from extract.config import ExtractConfig
    from pipelines.config import RunConfig

    model = ExtractConfig if name in ExtractConfig.model_fields else RunConfig
    value = model.default_of(name)
    return f"{value:g}" if isinstance(value, float) else str(value)


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


@main.command()
@click.option(
    "--input",
    "input_",
    help="Folder of videos (+ subtitles by name), or a .csv/.jsonl "
    "manifest; local or any fsspec URL.",
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
@click.option(
    "--frame-interval", type=float, help=f"Seconds per step [{_run_default('frame_interval')}]."
)
@click.option("--clip-seconds", type=float, help=f"Clip length [{_run_default('clip_length')}].")
@click.option("--whole-videos", is_flag=True, default=None, help="Each video is one clip.")
@click.option("--backend", type=click.Choice(["pyav", "decord", "torchcodec"]), help="Decoder.")
@click.option("--device", help="auto (GPU actors when GPUs exist), cpu, cuda.")
@click.option(
    "--batch-size", type=int, help=f"Steps per model batch [{_run_default('batch_size')}]."
)
@click.option(
    "--compile",
    is_flag=True,
    default=None,
    help="torch.compile the models (CUDA only): slower start, faster batches.",
)
@click.option("--workers", type=int, help="Extraction actors [auto].")
@click.option("--cpus-per-worker", type=float, help="CPU cores per extraction actor [auto].")
@click.option(
    "--gpus-per-worker",
    type=float,
    help=f"GPUs per extraction actor [{_run_default('gpus_per_worker')}].",
)
@click.option(
    "--sampling",
    type=click.Choice(["hero", "uniform"]),
    help=f"{_SAMPLING_HELP} [{_run_default('sampling')}]",
)
@click.option("--resnet-weights", help="ResNet-152 ImageNet state dict [torch hub cache].")
@click.option(
    "--slowfast-weights", help="SLOWFAST_8x8_R50.pkl (as HERO) or .pyth [the .pkl, hub cache]."
)
@click.option(
    "--random-weights",
    is_flag=True,
    default=None,
    help="Seeded random weights: meaningless features, for trying the tool out.",
)
@click.option(
    "--offline",
    is_flag=True,
    default=None,
    help="Never download a missing weight file (also: HERO_OFFLINE=1).",
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
@click.option("--no-progress", is_flag=True, help="No per-stage progress bars.")
@friendly_errors
def run(
    config_file: Path | None,
    whole_videos: bool | None,
    no_progress: bool,
    input_: str | None,
    **flags: Any,
) -> None:
    """Turn a video corpus into a HERO dataset (Ray; local unless --address).

    Probe, decode once, extract ResNet-152 + SlowFast-R50 features, read and align subtitles,
    tokenize, and write Arrow shards. Re-running the same command after any interruption
    finishes the job without redoing or duplicating anything; failed videos are listed in
    OUTPUT/errors.jsonl; OUTPUT/report.json holds the summary.

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
    logs = ray_logs(cfg.output, verbose=_verbose() > 0)
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


@main.command()
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Folder for the .npz files (and errors.jsonl). Required unless --sampling-plan.",
)
@click.option(
    "--frame-interval", type=float, default=1.5, show_default=True, help="Seconds per step."
)
@click.option(
    "--sampling",
    type=click.Choice(["hero", "uniform"]),
    default="hero",
    show_default=True,
    help=_SAMPLING_HELP,
)
@click.option(
    "--sampling-plan",
    is_flag=True,
    help="Run no model: print, as one JSON object per video, the presentation time of the "
    "frame feeding each model input of every step.",
)
@click.option(
    "--backend",
    type=click.Choice(["pyav", "decord", "torchcodec"]),
    default="pyav",
    show_default=True,
    help="Video decoder.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (CUDA when available), cpu, or cuda[:N].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Steps per model batch.",
)
@click.option(
    "--pixels",
    type=click.Choice(["auto", "swscale", "torch"]),
    default="auto",
    show_default=True,
    help="Where frames are scaled and converted to RGB: swscale (CPU, in the decode thread), "
    "torch (raw YUV planes sent to --device and converted there in batches; pyav backend "
    "only), auto (torch on CUDA, swscale on CPU).",
)
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    help="torch.compile the models (CUDA only, ignored on CPU): slower start, faster batches.",
)
@click.option(
    "--resnet-weights",
    type=click.Path(path_type=Path),
    help="ResNet-152 ImageNet state dict (default: resnet152-394f9c45.pth in the torch hub "
    "cache, downloaded if missing).",
)
@click.option(
    "--slowfast-weights",
    type=click.Path(path_type=Path),
    help="SLOWFAST_8x8_R50.pkl (Caffe2, as HERO) or SLOWFAST_8x8_R50.pyth (default: the .pkl "
    "in the torch hub cache, downloaded if missing; a bare published name is looked up there).",
)
@click.option(
    "--random-weights",
    is_flag=True,
    help="Seeded random weights: meaningless features, for trying the tool out.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Never download a missing weight file (also: HERO_OFFLINE=1).",
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
    frame_interval: float,
    sampling: str,
    sampling_plan: bool,
    backend: str,
    device: str,
    batch_size: int,
    pixels: str,
    compile_: bool,
    resnet_weights: Path | None,
    slowfast_weights: Path | None,
    random_weights: bool,
    offline: bool,
    overwrite: bool,
    strict: bool,
) -> None:
    """Extract HERO features of VIDEOS: one .npz per video in OUTPUT.

    Each .npz holds `resnet` (N x 2048, float16, unit rows), `slowfast` (N x 2304, float16),
    `frame_interval` and `source`, N = ceil(duration / frame interval). Files are named
    <name>.<hash of the path>.npz, so same-named videos in different folders do not collide.
    Failed videos go to OUTPUT/errors.jsonl and the run goes on; finished ones are skipped when
    run again. Exit status 1 when videos were tried and none has its .npz (now or from an
    earlier run); --strict: when any video failed.

    With --sampling-plan nothing is extracted: for each video, one line of JSON says which
    source frame (its presentation time in seconds from the first frame) feeds each model
    input: {"video", "frame_interval", "sampling", "steps": [{"step", "resnet",
    "slowfast_fast": [32 times], "slowfast_slow": [8 times]}, ...]}.
    """
    if sampling_plan:
        _print_sampling_plans(videos, frame_interval, sampling, backend)
        return
    if output is None:
        raise click.UsageError("--output is required (unless --sampling-plan)")
    from extract.extractor import ExtractConfig
    from pipelines.extract_videos import extract_videos

    cfg = ExtractConfig(
        frame_interval=frame_interval,
        backend=backend,
        device=device,
        batch_size=batch_size,
        pixels=pixels,
        compile=compile_,
        sampling=sampling,
        resnet_weights=str(resnet_weights) if resnet_weights else None,
        slowfast_weights=str(slowfast_weights) if slowfast_weights else None,
        random_weights=random_weights,
        offline=True if offline else None,
    )
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


def _print_sampling_plans(
    videos: tuple[Path, ...], frame_interval: float, sampling: str, backend: str
) -> None:
    from extract.sampling import sampling_plan

    for video in videos:
        plan = sampling_plan(video, frame_interval, sampling=sampling, backend=backend)
        click.echo(json.dumps(plan))


@main.command()
@click.option(
    "--resnet-weights",
    type=click.Path(path_type=Path),
    help="Check this ResNet-152 file instead of the default one.",
)
@click.option(
    "--slowfast-weights",
    type=click.Path(path_type=Path),
    help="Check this SlowFast file instead of the default one.",
)
@click.option("--download", is_flag=True, help="Download missing published files first.")
@click.option(
    "--offline", is_flag=True, help="Never download, even with --download (also: HERO_OFFLINE=1)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@friendly_errors
def weights(
    resnet_weights: Path | None,
    slowfast_weights: Path | None,
    download: bool,
    offline: bool,
    as_json: bool,
) -> None:
    """List the models' weight files: where each is, whether its checksum matches.

    One row per file: ResNet-152's and SlowFast's default files (the ones HERO used) and
    SlowFast's alternative, or the files given. "found" is where the file is (the torch hub
    cache, a given path, or missing); "checksum" compares its sha256 with the published prefix
    (torchvision publishes one; PySlowFast and PyTorchVideo do not); "loads" reads it and fits
    it to the architecture. Exit status 1 if a default or given file is missing or fails.
    """
    from dataclasses import asdict

    from extract.models import weight_file_status
    from extract.weights import WEIGHT_FILES

    offline_flag = True if offline else None
    rows = [
        weight_file_status("resnet152", resnet_weights, download=download, offline=offline_flag)
    ]
    rows.append(
        weight_file_status(
            "slowfast_r50", slowfast_weights, download=download, offline=offline_flag
        )
    )
    if slowfast_weights is None:
        for f in WEIGHT_FILES:
            if f.model == "slowfast_r50" and not f.default:
                rows.append(weight_file_status("slowfast_r50", f.file_name))
    bad = [r for r in rows[:2] if r.loads != "ok"]
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="weight files")
        for column in ("model", "file", "default", "found", "checksum", "loads"):
            table.add_column(column)
        for r in rows:
            table.add_row(
                r.model,
                r.file_name,
                "yes" if r.default else "-",
                r.found,
                r.checksum or "-",
                "-" if r.found == "missing" else ("ok" if r.loads == "ok" else "NO"),
            )
        Console().print(table)
        for r in rows:
            click.echo(f"{r.file_name}: {r.path}" + (f" (sha256 {r.sha256})" if r.sha256 else ""))
        for r in rows:
            if r.found == "missing":
                fetch = f"`hero weights --download` fetches it from {r.url}" if r.url else ""
                click.echo(f"{r.file_name}: missing; {fetch or r.loads}", err=True)
            elif r.loads != "ok":
                click.echo(f"{r.file_name}: {r.loads}", err=True)
    if bad:
        raise SystemExit(1)


@main.command(cls=OneLineUsageErrors)
@click.argument("subtitle_file", type=click.Path(path_type=Path))
@click.option("--duration", type=float, required=True, help="Video duration, seconds.")
@click.option(
    "--frame-interval", type=float, default=1.5, show_default=True, help="Seconds per step."
)
@click.option(
    "--clip-seconds",
    type=float,
    default=60.0,
    show_default=True,
    help="Clip length; 0 makes the whole video one clip.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["vtt", "srt", "sbv", "tvqa"]),
    help="Subtitle format; tvqa: a TVQA-style .jsonl of videos (TVR's tv_subtitles.jsonl) "
    "(default: from the file extension, .jsonl is tvqa).",
)
@click.option(
    "--video-id",
    help="Id for clip ids (default: the file name, made safe); with tvqa, the vid_name of the "
    "entry to align (needed when the file holds several).",
)
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path),
    help="tokenizer.json, or a folder with it or with vocab.json + merges.txt.",
)
@click.option(
    "--speaker-prefix/--no-speaker-prefix",
    default=None,
    help="Tokenize a cue with a speaker as 'Speaker : text', as HERO's tv_subtitles.db "
    "[on for tvqa, off otherwise].",
)
@click.option(
    "--strict-subtitles",
    is_flag=True,
    help="Reject the file at its first malformed cue (default: skip or repair it, count it "
    "in the report's malformed_skipped / malformed_repaired, and log it).",
)
@friendly_errors(exit_code=2, names="subtitle_file")
def align(
    subtitle_file: Path,
    duration: float,
    frame_interval: float,
    clip_seconds: float,
    fmt: str | None,
    video_id: str | None,
    tokenizer: Path | None,
    speaker_prefix: bool | None,
    strict_subtitles: bool,
) -> None:
    """Align one subtitle file to the step grid; print clips, cues and spans as JSON.

    Cues are cleaned (rolling captions collapsed, empty/zero-length cues dropped, duplicates
    merged), cut into clips (a cue across a boundary goes to both, clipped), and mapped to steps
    by HERO's rule. Cue times in the output are clip-relative seconds. A TVQA .jsonl holds many
    videos: --video-id picks one; its speakers ('Chase : text') go to the cues' speaker field
    and, by default, back into the tokenized text, as HERO tokenized TV subtitles. A malformed
    cue is skipped or repaired, logged, and counted in the report (malformed_skipped,
    malformed_repaired); --strict-subtitles rejects the file instead. Bad input (a file from
    which no cue can be read...): one line on stderr naming SUBTITLE_FILE and the problem, exit
    status 2 (a usage error, such as a missing --duration, is one line too).
    """
    from align.readers import SubtitleError, read_cues_report, read_tvqa_jsonl_reports
    from align.tokenizer import CueTokenizer
    from align.video import align_video
    from hero_data.errors import OptionError
    from hero_data.types import check_id, safe_id

    if not (duration >= 0) or duration == float("inf"):
        problem = f"--duration must be a non-negative number of seconds, got {duration}"
        raise OptionError(problem, key="--duration")
    tv = fmt == "tvqa" or (fmt is None and subtitle_file.suffix.lower() == ".jsonl")
    vid = check_id("--video-id", video_id) if video_id else safe_id(subtitle_file.stem)
    toker = None
    if tokenizer:
        prefix = tv if speaker_prefix is None else speaker_prefix
        toker = CueTokenizer.from_path(tokenizer, speaker_prefix=prefix)
    if tv:
        entries, errors = read_tvqa_jsonl_reports(subtitle_file, strict=strict_subtitles)
        if errors:  # a bad line (or, strict, a malformed cue): the file as a whole is bad
            raise errors[0]
        videos = {name: cues for name, (cues, _) in entries.items()}
        examples = ", ".join(sorted(videos)[:3]) or "none"
        if video_id is None:
            if len(videos) != 1:
                raise SubtitleError(
                    str(subtitle_file),
                    None,
                    f"holds {len(videos)} videos; choose one with --video-id (e.g. {examples})",
                )
            (name,) = videos
            vid = safe_id(name)
        elif video_id not in videos:
            raise SubtitleError(
                str(subtitle_file),
                None,
                f"no entry with vid_name {video_id!r} ({len(videos)} videos, e.g. {examples})",
            )
        else:
            name = video_id
        cues, malformed = entries[name]
    else:
        cues, malformed = read_cues_report(subtitle_file, fmt, strict=strict_subtitles)
    result = align_video(
        cues,
        duration,
        malformed=malformed,
        video_id=vid,
        clip_length=clip_seconds or None,
        interval=frame_interval,
        tokenizer=toker,
    )
    click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))


@main.command()
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
@click.option("--no-progress", is_flag=True, help="No per-stage progress bars.")
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
    result = run_demo(output, cfg, progress=not no_progress, verbose=_verbose() > 0)
    ds = HeroDataset.open(result.dataset)
    _print_summary(summarize(ds))
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


for _command in (build, eval_, export, finetune, import_, train):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(prog_name="hero"))
