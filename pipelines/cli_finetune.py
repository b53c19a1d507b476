"""``hero finetune how2r|how2qa``: finetune HERO on a built benchmark, evaluate, print the scores.

The command object here (:data:`finetune`) is registered on the ``hero`` command in
``pipelines/cli.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pipelines.cli_errors import friendly_errors


def _echo_metrics(metrics: dict[str, Any], run: Path) -> None:
    train = metrics["train"]
    losses = ""
    if "first_loss" in train:
        losses = f", loss {train['first_loss']:.4f} -> {train['mean_last_loss']:.4f}"
    click.echo(
        f"finetune {metrics['task']}: {train['steps']} steps on {train['examples']} training "
        f"examples in {train['wall_s']:.1f} s{losses} (init: {metrics['init']})"
    )
    skipped = {s: n for s, n in metrics["skipped"].items() if n}
    if skipped:
        click.echo(
            "  skipped (clip not in the dataset): "
            + ", ".join(f"{s} {n}" for s, n in skipped.items())
        )
    for split in ("val", "test"):
        if split not in metrics:
            continue
        scores = metrics[split]
        if metrics["task"] == "how2qa":
            click.echo(
                f"  {split}: accuracy {scores['accuracy']:.2f}% "
                f"({scores['correct']}/{scores['total']})"
            )
            continue
        nms = scores.get("nms")
        for task in ("VCMR", "SVMR", "VR"):
            values = ", ".join(f"{k} {v:.2f}" for k, v in scores[task].items())
            label = f"{task}, no NMS" if nms is not None and task in nms else task
            click.echo(f"  {split} {label}: {values}")
        if nms is not None:
            for task in ("VCMR", "SVMR"):
                values = ", ".join(f"{k} {v:.2f}" for k, v in nms[task].items())
                click.echo(f"  {split} {task}, NMS {nms['threshold']:g}: {values}")
    click.echo(f"  metrics: {run / 'metrics.json'}; predictions: {run}/predictions_*.json")


@click.command("finetune")
@click.argument("task", type=click.Choice(["how2r", "how2qa"]))
@click.option(
    "--bench",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Benchmark folder written by `hero build how2r|how2qa` (train/val/test.jsonl).",
)
@click.option(
    "--data",
    "dataset",
    required=True,
    help="Dataset (`hero run` output: a folder or s3://...) holding the benchmark's clips.",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder: metrics.json, predictions_<split>.json (how2r: and _nms.json), model.pt, "
    "train_log.jsonl.",
)
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    help="`hero train` run folder, checkpoint folder or its model.pt, or a released HERO "
    "checkpoint file (hero-tv-ht100.pt) [none: RANDOM weights].",
)
@click.option(
    "--config",
    "model",
    metavar="base|tiny|FILE.yaml",
    help="Model config without --checkpoint or with a released HERO checkpoint file; with a "
    "`hero train` checkpoint it must match it [base; with a `hero train` checkpoint: its own].",
)
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path),
    help="The dataset's tokenizer (tokenizer.json or folder), for the query and answer text; "
    "must have the sha256 the dataset's manifest records [required].",
)
@click.option("--epochs", type=click.IntRange(min=1), default=3, help="Passes over train [3].")
@click.option(
    "--max-steps",
    type=click.IntRange(min=0),
    help="At most this many updates; 0 evaluates the initial weights [none: --epochs decide].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=32,
    help="Queries (how2r) or questions (how2qa) per update [32].",
)
@click.option("--lr", type=float, default=5e-5, help="Peak learning rate (AdamW) [5e-05].")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="Seed [0].")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N [auto: GPU if any].")
@click.option(
    "--precision",
    type=click.Choice(["auto", "bf16", "fp32"]),
    default="auto",
    help="auto: bf16 autocast on a GPU, else fp32 [auto].",
)
@click.option(
    "--eval-batch",
    type=click.IntRange(min=1),
    default=32,
    help="Queries, clips or questions per evaluation pass [32].",
)
@click.option(
    "--lr-mul",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    help="Learning-rate multiplier of the heads the task adds (how2qa's answer and span "
    "heads; how2r adds none), HERO's lr_mul [10].",
)
@click.option(
    "--min-pred-l",
    type=click.IntRange(min=0),
    default=2,
    help="how2r: predicted moments [s, e] (steps, e inclusive) need e - s >= this, HERO's "
    "min_pred_l [2: at least 3 steps].",
)
@click.option(
    "--max-pred-l",
    type=click.IntRange(min=1),
    default=16,
    help="how2r: ... and e - s < this, HERO's max_pred_l [16: at most 16 steps].",
)
@click.option(
    "--nms-thd",
    type=float,
    default=0.5,
    help="how2r: also score the predictions after non-maximum suppression at this IoU, as "
    "HERO's nms_thd; -1: no NMS report [0.5].",
)
@click.option(
    "--max-before-nms",
    type=click.IntRange(min=1),
    default=200,
    help="how2r: predictions per query handed to NMS, HERO's max_before_nms [200].",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier run in --output [off].")
@friendly_errors
def finetune(
    task: str,
    bench: Path,
    dataset: str,
    output: Path,
    checkpoint: Path | None,
    model: str | None,
    tokenizer: Path | None,
    min_pred_l: int,
    max_pred_l: int,
    nms_thd: float,
    max_before_nms: int,
    **flags: Any,
) -> None:
    """Finetune HERO on a How2R or How2QA benchmark and score it on val (and test).

    Trains on BENCH/train.jsonl, evaluates every split with records (val, test) with the
    official TVR metrics (how2r: VCMR, SVMR, VR, without and with NMS, as HERO reports them)
    or accuracy (how2qa), writes the predictions and metrics.json to OUTPUT and prints the
    scores. --checkpoint also takes a released HERO checkpoint file (hero-tv-ht100.pt), whose
    sizes --config gives (base by default).

    Example: hero finetune how2r --bench how2r --data ds --tokenizer tok.json
    --checkpoint runs/pre --output runs/how2r
    """

    from build_benchmarks.finetune import FinetuneConfig, run_finetune
    from build_benchmarks.vcmr import RankingConfig

    if nms_thd != -1 and not 0 <= nms_thd < 1:
        raise click.BadParameter(
            f"{nms_thd} is not an IoU in [0, 1), nor -1 (no NMS)", param_hint="--nms-thd"
        )
    if max_pred_l <= min_pred_l:
        raise click.BadParameter(
            f"{max_pred_l} must be greater than --min-pred-l {min_pred_l}: no moment would be "
            "allowed",
            param_hint="--max-pred-l",
        )

    if checkpoint is None:
        click.secho(
            "WARNING: no --checkpoint: finetuning starts from RANDOM weights; the scores say "
            "nothing about HERO.",
            fg="red",
            err=True,
        )
    cfg = FinetuneConfig(
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        model=model,
        tokenizer=str(tokenizer) if tokenizer is not None else None,
        ranking=RankingConfig(
            min_pred_l=min_pred_l,
            max_pred_l=max_pred_l,
            nms_threshold=None if nms_thd == -1 else nms_thd,
            max_before_nms=max_before_nms,
        ),
        **flags,
    )
    metrics = run_finetune(task, bench, dataset, output, cfg)
    _echo_metrics(metrics, output)
    click.echo(json.dumps({k: metrics[k] for k in ("val", "test") if k in metrics}))
