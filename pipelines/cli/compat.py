"""``hero export hero-lmdb``, ``hero import npz`` and ``hero import hero-lmdb``.

Interoperation with the original HERO code and its feature extractor (docs/hero-compat.md).
The click groups :data:`export` and :data:`import_` are registered on ``hero`` by
``pipelines/cli/main.py``; heavy modules are imported inside the commands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipelines.cli.errors import friendly_errors
from pipelines.cli.options import no_progress_option

F = TypeVar("F", bound=Callable[..., Any])

_CONTEXT = {"help_option_names": ["-h", "--help"]}


def _clip_length(clip_seconds: float, whole_videos: bool) -> float | None:
    if whole_videos:
        return None
    if not clip_seconds > 0:
        raise click.BadParameter(
            "must be positive (or use --whole-videos)", param_hint="--clip-seconds"
        )
    return clip_seconds


@click.group("export", context_settings=_CONTEXT)
def export() -> None:
    """Write a dataset in another toolkit's layout."""


@export.command("hero-lmdb")
@click.argument("dataset")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder to create: video_db/ (HERO's vfeat_db) and sub_db/ (its sub_txt_db).",
)
@click.option(
    "--frame-interval",
    metavar="SECONDS",
    help="vfeat_interval as your HERO config writes it; names <vfeat_version>_<this>/ and "
    "must equal the dataset's step [the dataset's, e.g. 1.5].",
)
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path),
    help="The tokenizer.json (or folder) the dataset was tokenized with: meta.json's special "
    "ids, and token ids for cues lacking them [ids recorded by an import].",
)
@click.option(
    "--no-subtitles", is_flag=True, help="Write the video features only [write both databases]."
)
@click.option(
    "--keys",
    type=click.Choice(["auto", "clip", "video"]),
    default="auto",
    help="Database keys: <video>.<k> clip ids, or video ids (one clip per video) [auto: "
    "video ids for whole-video datasets].",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT [refuse].")
@no_progress_option
@friendly_errors
def export_hero_lmdb_command(
    dataset: str,
    output: Path,
    frame_interval: str | None,
    tokenizer: Path | None,
    no_subtitles: bool,
    keys: str,
    overwrite: bool,
    no_progress: bool,
) -> None:
    """Write DATASET as the original HERO code's LMDB databases in OUTPUT.

    OUTPUT/video_db holds id2nframe.json and <vfeat_version>_<L>/ (the dataset's feature columns
    side by side per step, float16, msgpack; vfeat_version is VALUE's name for the feature set:
    resnet_slowfast for HERO's ResNet ‖ SlowFast, clip-vit_slowfast, ...); OUTPUT/sub_db the
    subtitle LMDB (lz4 msgpack: token ids, cue -> step maps) with meta.json, vid2len.json and
    vid2max_frame_sub_len.json. OUTPUT/clip_ids.json lists every key. Written into a temporary
    folder and renamed into place when complete.
    Needs: pip install 'hero-toolkit[hero-compat]'.
    """
    from pipelines.interop.lmdb_export import ExportOptions, export_hero_lmdb

    options = ExportOptions(
        frame_interval=frame_interval,
        tokenizer=str(tokenizer) if tokenizer else None,
        subtitles=not no_subtitles,
        keys=keys,  # type: ignore[arg-type]
        overwrite=overwrite,
        progress=not no_progress,
    )
    s = export_hero_lmdb(dataset, output, options)
    click.echo(
        f"exported {s.clips} clips ({s.steps} steps, {s.feature_bytes / 2**20:.1f} MiB of "
        f"features) in {s.wall_s:.1f} s -> {s.output}"
    )
    click.echo(f"  vfeat_db:   {s.video_db}  (features in {s.feature_db.name})")
    if s.sub_db is not None:
        extra = f"; {s.tokenized} clips tokenized now" if s.tokenized else ""
        extra += f"; {s.pseudo_filled} without cues got pseudo-cues" if s.pseudo_filled else ""
        click.echo(f"  sub_txt_db: {s.sub_db}{extra}")


@click.group("import", context_settings=_CONTEXT)
def import_() -> None:
    """Make a dataset from another toolkit's files."""


def _import_options(fn: F) -> F:
    """--output, --clip-seconds, --whole-videos, --tokenizer, --rows-per-shard, --overwrite."""
    decorators = [
        click.option(
            "--output",
            type=click.Path(path_type=Path),
            required=True,
            help="Dataset folder to create.",
        ),
        click.option(
            "--clip-seconds",
            type=float,
            default=60.0,
            help="Clip length, a whole number of steps [60].",
        ),
        click.option("--whole-videos", is_flag=True, help="Each video is one clip [off]."),
        click.option(
            "--rows-per-shard",
            type=click.IntRange(min=1),
            default=1024,
            help="Clips per shard [1024].",
        ),
        click.option("--overwrite", is_flag=True, help="Replace an existing dataset [refuse]."),
        no_progress_option,
    ]
    for decorate in reversed(decorators):
        fn = decorate(fn)
    return fn


@import_.command("npz")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--subtitles",
    type=click.Path(path_type=Path),
    help="Folder of subtitle files named like the videos (.vtt/.srt/.sbv, or <video>.<lang>."
    "<ext>), a HowTo100M caption .json, or a TVQA-style .jsonl keyed by vid_name (TVR's "
    "tv_subtitles.jsonl) [none: pseudo-cues].",
)
@click.option(
    "--speaker-prefix/--no-speaker-prefix",
    default=None,
    help="Tokenize a cue with a speaker as 'Speaker : text', as HERO's tv_subtitles.db; the "
    "speaker stays in its own field either way [on for a TVQA .jsonl, off otherwise].",
)
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path),
    help="tokenizer.json, or a folder with it or with vocab.json + merges.txt [no token ids].",
)
@click.option(
    "--frame-interval",
    type=float,
    default=1.5,
    help="Seconds per feature step the extractor used (its --clip_len) [1.5].",
)
@_import_options
@friendly_errors
def import_npz_command(
    folder: Path,
    subtitles: Path | None,
    speaker_prefix: bool | None,
    tokenizer: Path | None,
    frame_interval: float,
    output: Path,
    clip_seconds: float,
    whole_videos: bool,
    rows_per_shard: int,
    overwrite: bool,
    no_progress: bool,
) -> None:
    """Make a dataset from the HERO extractor's .npz feature folders.

    FOLDER holds resnet_features/<video>.npz and slowfast_features/<video>.npz, each with a
    "features" array (N x 2048 and N x 2304). A video's id is its file name. The two files of
    a video are cut to the shorter (they may differ by a step, as in HERO). Videos are cut
    into clips, subtitles aligned and tokenized as by `hero run`; TV subtitles (a TVQA .jsonl)
    as HERO's 'Speaker : text' strings. A bad file is recorded in OUTPUT/errors.jsonl and the
    rest go on.
    """
    from pipelines.interop.import_npz import NpzImportOptions, import_npz

    options = NpzImportOptions(
        subtitles=str(subtitles) if subtitles else None,
        speaker_prefix=speaker_prefix,
        tokenizer=str(tokenizer) if tokenizer else None,
        frame_interval=frame_interval,
        clip_length=_clip_length(clip_seconds, whole_videos),
        overwrite=overwrite,
        rows_per_shard=rows_per_shard,
        progress=not no_progress,
    )
    s = import_npz(folder, output, options)
    click.echo(
        f"imported {s.videos} videos -> {s.clips} clips, {s.steps} steps ({s.with_subtitles} "
        f"with subtitles; {s.trimmed} cut to the shorter file) in {s.wall_s:.1f} s -> {s.output}"
    )
    for video_id, message in s.failed:
        click.echo(f"  failed: {video_id}: {message}", err=True)


@import_.command("hero-lmdb")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--sub-db",
    type=click.Path(path_type=Path),
    help="HERO's subtitle database folder (sub_txt_db) [FOLDER/sub_db when present].",
)
@click.option("--no-subtitles", is_flag=True, help="Import the video features only [off].")
@click.option(
    "--feature-db",
    metavar="NAME",
    help="Feature LMDB folder to read when there are several [the only one].",
)
@click.option(
    "--frame-interval",
    type=float,
    help="Seconds per step [from the folder name, <vfeat_version>_<L>].",
)
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path),
    help="Decodes cue text from token ids when the database has none [text left unknown].",
)
@_import_options
@friendly_errors
def import_hero_lmdb_command(
    folder: Path,
    sub_db: Path | None,
    no_subtitles: bool,
    feature_db: str | None,
    frame_interval: float | None,
    tokenizer: Path | None,
    output: Path,
    clip_seconds: float,
    whole_videos: bool,
    rows_per_shard: int,
    overwrite: bool,
    no_progress: bool,
) -> None:
    """Make a dataset from HERO's LMDB databases (e.g. its released ones).

    FOLDER is an export of `hero export hero-lmdb`, or HERO's video database folder
    (id2nframe.json + <vfeat_version>_<L>/, e.g. resnet_slowfast_1.5; the version names the
    feature set, and an unknown one is refused). Keys <video>.<k> are clip k of a video, starting
    at k x --clip-seconds; other keys are whole videos. HERO's databases hold no cue times:
    they come from the value's `sub` list when it agrees with the steps, else are rebuilt from
    the steps each cue covers. A clip that cannot be read fails its video (errors.jsonl).
    Needs: pip install 'hero-toolkit[hero-compat]'.
    """
    from pipelines.interop.lmdb_import import LmdbImportOptions, import_hero_lmdb

    options = LmdbImportOptions(
        sub_db=str(sub_db) if sub_db else None,
        subtitles=not no_subtitles,
        feature_db=feature_db,
        frame_interval=frame_interval,
        clip_length=_clip_length(clip_seconds, whole_videos),
        tokenizer=str(tokenizer) if tokenizer else None,
        overwrite=overwrite,
        rows_per_shard=rows_per_shard,
        progress=not no_progress,
    )
    s = import_hero_lmdb(folder, output, options)
    click.echo(
        f"imported {s.videos} videos -> {s.clips} clips, {s.steps} steps from "
        f"{s.feature_db.name} ({s.frame_interval:g} s per step) in {s.wall_s:.1f} s -> {s.output}"
    )
    if s.sub_db is not None:
        click.echo(
            f"  subtitles: {s.clips - s.without_subtitles} clips from {s.sub_db}; cue times "
            f"rebuilt from steps in {s.times_rebuilt}; {s.cues_dropped} cues without steps "
            f"dropped; {s.subtitle_keys_unused} entries matched no clip"
        )
    for video_id in s.failed_videos:
        click.echo(f"  failed: {video_id} (see {s.output / 'errors.jsonl'})", err=True)
