"""``hero build how2r|how2qa|subtitle-queries`` and ``hero eval vcmr|qa``.

The groups here (:data:`build`, :data:`eval_`) are registered on the ``hero`` command in
``pipelines/cli/main.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipelines.cli.errors import friendly_errors

F = TypeVar("F", bound=Callable[..., Any])


def _echo_report(report: dict[str, Any], output: Path) -> None:
    rejected = ", ".join(f"{k} {v}" for k, v in report["rejected"].items()) or "none"
    splits = " / ".join(f"{k} {v['rows']}" for k, v in report["splits"].items())
    click.echo(
        f"{report['kind']}: {report['input_rows']} records -> {report['written']} written "
        f"({report['clipped']} clipped), {sum(report['rejected'].values())} rejected ({rejected})"
    )
    for key in ("crossing_boundary", "point_moments"):
        if key in report:
            click.echo(f"  {key.replace('_', ' ')}: {report[key]}")
    click.echo(f"  splits: {splits} -> {output} (report.json lists every rejected line)")


_output = click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for all.jsonl, train/val/test.jsonl and report.json.",
)
_seed = click.option(
    "--seed", type=int, default=0, help="Seed of the 80/10/10 split by video (and shuffles) [0]."
)
_overwrite = click.option("--overwrite", is_flag=True, help="Replace existing output files [off].")
_dataset = click.option(
    "--dataset",
    help="Keep only queries whose clip this dataset holds, with its clip lengths [none: "
    "build from the annotations alone].",
)


@click.group("build")
def build() -> None:
    """Build benchmarks: How2R, How2QA (released CSV files), subtitle queries (a dataset)."""


@build.command("how2r")
@click.argument("annotations", nargs=-1, required=True, type=click.Path(path_type=Path))
@_output
@_dataset
@_seed
@_overwrite
@friendly_errors
def how2r(
    annotations: tuple[Path, ...], output: Path, dataset: str | None, seed: int, overwrite: bool
) -> None:
    """How2R CSV files (youtube_id,[seg_start:seg_end],[start:end],description) -> TVR JSONL."""
    from build_benchmarks.clips import load_clip_index
    from build_benchmarks.how2r import build_how2r
    from build_benchmarks.outputs import write_benchmark

    clips = load_clip_index(dataset) if dataset is not None else None
    bench = build_how2r(annotations, clips)
    report = write_benchmark(output, bench, seed=seed, overwrite=overwrite)
    _echo_report(report, output)


@build.command("how2qa")
@click.argument("annotations", nargs=-1, required=True, type=click.Path(path_type=Path))
@_output
@_dataset
@_seed
@_overwrite
@click.option(
    "--adversarial",
    "adv_count",
    type=click.IntRange(min=0),
    default=0,
    help="Wrong answers per question taken from other questions' correct answers by "
    "adversarial matching; 0 turns it off [0].",
)
@click.option(
    "--adversarial-mode",
    type=click.Choice(["replace", "add"]),
    default="replace",
    help="replace the last N written wrong answers, or add N to them [replace].",
)
@click.option(
    "--adversarial-lambda",
    type=float,
    default=1.0,
    help="Weight of unlikeness to the correct answer against relevance to the question [1.0].",
)
@click.option(
    "--adversarial-chunk",
    type=click.IntRange(min=0),
    default=4000,
    help="Most questions per assignment (memory n², time up to n³); 0: the whole set [4000].",
)
@click.option(
    "--scorer-model",
    type=click.Path(path_type=Path),
    help="Local sentence-transformers model folder to score texts with (needs the optional "
    "sentence-transformers package: pip install 'hero-toolkit[embeddings]') [TF-IDF, no model].",
)
@friendly_errors
def how2qa(
    annotations: tuple[Path, ...],
    output: Path,
    dataset: str | None,
    seed: int,
    overwrite: bool,
    adv_count: int,
    adversarial_mode: str,
    adversarial_lambda: float,
    adversarial_chunk: int,
    scorer_model: Path | None,
) -> None:
    """How2QA CSV files (youtube_id,[start:end],wrong x3,question,correct) -> TVQA-style JSONL."""
    from build_benchmarks.adversarial import SentenceTransformerScorer, TextScorer, TfidfScorer
    from build_benchmarks.clips import load_clip_index
    from build_benchmarks.how2qa import AdversarialSettings, build_how2qa
    from build_benchmarks.outputs import write_benchmark

    settings = None
    scorer: TextScorer | None = None
    if adv_count:
        settings = AdversarialSettings(
            count=adv_count,
            mode=adversarial_mode,  # type: ignore[arg-type]
            lam=adversarial_lambda,
            chunk_size=adversarial_chunk or None,
        )
        scorer = SentenceTransformerScorer(scorer_model) if scorer_model else TfidfScorer()
    elif scorer_model is not None:
        raise click.UsageError(
            "--scorer-model is used by adversarial matching: add --adversarial N"
        )
    clips = load_clip_index(dataset) if dataset is not None else None
    bench = build_how2qa(annotations, clips, seed=seed, adversarial=settings, scorer=scorer)
    extra = {"scorer_model": str(scorer_model)} if scorer_model else {}
    report = write_benchmark(output, bench, seed=seed, overwrite=overwrite, settings=extra)
    _echo_report(report, output)


@build.command("subtitle-queries")
@click.option(
    "--dataset",
    required=True,
    help="The dataset whose cues become queries (a folder or s3://...).",
)
@_output
@click.option(
    "--min-words",
    type=click.IntRange(min=1),
    default=3,
    help="Fewest words a query keeps (after removing tags like [Music]) [3].",
)
@_seed
@_overwrite
@friendly_errors
def subtitle_queries(
    dataset: str, output: Path, min_words: int, seed: int, overwrite: bool
) -> None:
    """A How2R-style retrieval set from DATASET's own cues (each cue's span is its target)."""
    from build_benchmarks.outputs import write_benchmark
    from build_benchmarks.subtitle_queries import build_subtitle_queries

    bench = build_subtitle_queries(dataset, min_words=min_words)
    report = write_benchmark(output, bench, seed=seed, overwrite=overwrite)
    _echo_report(report, output)


@click.group("eval")
def eval_() -> None:
    """Score predictions: TVR metrics for moment retrieval, accuracy for QA."""


def _emit(results: dict[str, Any], output: Path | None) -> None:
    text = json.dumps(results, indent=2)
    if output is not None:
        try:
            output.write_text(text + "\n", encoding="utf-8")
        except OSError as e:
            raise click.ClickException(f"{output}: cannot write the results ({e})") from None
    click.echo(text)


_results = click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results JSON here [print only].",
)


@eval_.command("vcmr")
@click.option(
    "--submission",
    required=True,
    type=click.Path(path_type=Path),
    help="TVR submission JSON: video2idx and VCMR / SVMR / VR lists.",
)
@click.option(
    "--gt",
    required=True,
    type=click.Path(path_type=Path),
    help="Ground-truth JSONL (desc_id, vid_name, ts), e.g. test.jsonl of hero build.",
)
@_results
@friendly_errors
def vcmr(submission: Path, gt: Path, output: Path | None) -> None:
    """TVR metrics (VCMR / SVMR 0.5-r1 ... 0.7-r100, VR r1 ... r100), as the official script."""
    from build_benchmarks.evaluate import evaluate_retrieval, read_json, read_jsonl

    results = evaluate_retrieval(
        read_json(submission, "submission"),
        read_jsonl(gt, "ground-truth"),
        submission_source=str(submission),
        gt_source=str(gt),
    )
    _emit(results, output)


@eval_.command("qa")
@click.option(
    "--submission",
    required=True,
    type=click.Path(path_type=Path),
    help='Predictions JSON: {"qid": answer_idx, ...} or [{"qid", "answer_idx"}].',
)
@click.option(
    "--gt",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="Ground-truth JSONL (qid, answer_idx); repeat for several splits, each reported "
    "under its file name.",
)
@_results
@friendly_errors
def qa(submission: Path, gt: tuple[Path, ...], output: Path | None) -> None:
    """Multiple-choice accuracy, overall and per ground-truth file."""
    from build_benchmarks.evaluate import evaluate_qa, load_qa_predictions, read_jsonl

    names = [p.stem for p in gt]
    if len(set(names)) != len(names):
        names = [str(p) for p in gt]
    splits = {name: read_jsonl(p, "ground-truth") for name, p in zip(names, gt, strict=True)}
    results = evaluate_qa(
        load_qa_predictions(submission),
        splits,
        submission_source=str(submission),
        gt_sources={name: str(p) for name, p in zip(names, gt, strict=True)},
    )
    _emit(results, output)
