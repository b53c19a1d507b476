"""``hero align``: one subtitle file to cues and frame spans, as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipelines.cli.errors import OneLineUsageErrors, friendly_errors


@click.command(cls=OneLineUsageErrors)
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
