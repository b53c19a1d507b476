"""``hero finetune how2r|how2qa``: finetune HERO on a built benchmark, evaluate, print the scores.

The command object here (:data:`finetune`) is registered on the ``hero`` command in
``pipelines/cli/main.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from build_benchmarks.finetune.config import (
    FinetuneConfig,
    FinetuneConfigError,
    load_finetune_config,
)
from build_benchmarks.vcmr import RankingConfig
from hero_data.configmodel import read_mapping
from pipelines.cli.errors import friendly_errors
from pipelines.cli.options import training_device_options


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


def _default(name: str) -> str:
    """The model's default of option ``name``, for a flag's help (defaults are written once,
    in :class:`FinetuneConfig`)."""
    value = FinetuneConfig.default_of(name)
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _ranking_default(name: str) -> Any:
    return RankingConfig.default_of(name)


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
    "--config",
    "config_file",
    metavar="FILE.yaml",
    help="Finetuning config: a YAML file of any of these options "
    "(configs/finetune.example.yaml); flags override it. (A model config, base|tiny or a "
    "model YAML file, is still taken here as --model, with a warning.)",
)
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    help="`hero train` run folder, checkpoint folder or its model.pt, or a released HERO "
    "checkpoint file (hero-tv-ht100.pt) [none: RANDOM weights].",
)
@click.option(
    "--model",
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
@click.option(
    "--epochs", type=click.IntRange(min=1), help=f"Passes over train [{_default('epochs')}]."
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=0),
    help="At most this many updates; 0 evaluates the initial weights [none: --epochs decide].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help=f"Queries (how2r) or questions (how2qa) per update [{_default('batch_size')}].",
)
@click.option("--lr", type=float, help=f"Peak learning rate (AdamW) [{_default('lr')}].")
@click.option("--seed", type=click.IntRange(min=0), help=f"Seed [{_default('seed')}].")
@training_device_options(_default)
@click.option(
    "--eval-batch",
    type=click.IntRange(min=1),
    help=f"Queries, clips or questions per evaluation pass [{_default('eval_batch')}].",
)
@click.option(
    "--lr-mul",
    type=click.FloatRange(min=0, min_open=True),
    help="Learning-rate multiplier of the heads the task adds (how2qa's answer and span "
    f"heads; how2r adds none), HERO's lr_mul [{_default('lr_mul')}].",
)
@click.option(
    "--min-pred-l",
    type=click.IntRange(min=0),
    help="how2r: predicted moments [s, e] (steps, e inclusive) need e - s >= this, HERO's "
    f"min_pred_l [{_ranking_default('min_pred_l')}: at least 3 steps].",
)
@click.option(
    "--max-pred-l",
    type=click.IntRange(min=1),
    help="how2r: ... and e - s < this, HERO's max_pred_l "
    f"[{_ranking_default('max_pred_l')}: at most 16 steps].",
)
@click.option(
    "--nms-thd",
    type=float,
    help="how2r: also score the predictions after non-maximum suppression at this IoU, as "
    f"HERO's nms_thd; -1: no NMS report [{_ranking_default('nms_threshold')}].",
)
@click.option(
    "--max-before-nms",
    type=click.IntRange(min=1),
    help="how2r: predictions per query handed to NMS, HERO's max_before_nms "
    f"[{_ranking_default('max_before_nms')}].",
)
@click.option(
    "--overwrite", is_flag=True, default=None, help="Replace an earlier run in --output [off]."
)
@friendly_errors
def finetune(
    task: str,
    bench: Path,
    dataset: str,
    output: Path,
    config_file: str | None,
    checkpoint: Path | None,
    model: str | None,
    tokenizer: Path | None,
    min_pred_l: int | None,
    max_pred_l: int | None,
    nms_thd: float | None,
    max_before_nms: int | None,
    **flags: Any,
) -> None:
    """Finetune HERO on a How2R or How2QA benchmark and score it on val (and test).

    Trains on BENCH/train.jsonl, evaluates every split with records (val, test) with the
    official TVR metrics (how2r: VCMR, SVMR, VR, without and with NMS, as HERO reports them)
    or accuracy (how2qa), writes the predictions and metrics.json to OUTPUT and prints the
    scores. --checkpoint also takes a released HERO checkpoint file (hero-tv-ht100.pt), whose
    sizes --model gives (base by default). --config FILE.yaml holds any of the options
    (configs/finetune.example.yaml); flags given win over it.

    Example: hero finetune how2r --bench how2r --data ds --tokenizer tok.json
    --checkpoint runs/pre --output runs/how2r
    """
    from build_benchmarks.finetune import run_finetune

    if nms_thd is not None and nms_thd != -1 and not 0 <= nms_thd < 1:
        raise click.BadParameter(
            f"{nms_thd} is not an IoU in [0, 1), nor -1 (no NMS)", param_hint="--nms-thd"
        )
    if max_pred_l is not None and min_pred_l is not None and max_pred_l <= min_pred_l:
        raise click.BadParameter(
            f"{max_pred_l} must be greater than --min-pred-l {min_pred_l}: no moment would be "
            "allowed",
            param_hint="--max-pred-l",
        )
    if config_file is not None and _is_model_config(config_file):
        click.secho(
            f"WARNING: --config {config_file} is a model config: give it as --model (--config "
            "now takes a finetuning config file)",
            fg="yellow",
            err=True,
        )
        model, config_file = model or config_file, None
    ranking = {
        "min_pred_l": min_pred_l,
        "max_pred_l": max_pred_l,
        "nms_threshold": None if nms_thd == -1 else nms_thd,
        "max_before_nms": max_before_nms,
    }
    ranking = {k: v for k, v in ranking.items() if v is not None}
    if nms_thd == -1:
        ranking["nms_threshold"] = None
    overrides = {
        **flags,
        "checkpoint": checkpoint,
        "model": model,
        "tokenizer": tokenizer,
        "ranking": ranking or None,
    }
    cfg = load_finetune_config(config_file, overrides)
    if cfg.checkpoint is None:
        click.secho(
            "WARNING: no --checkpoint: finetuning starts from RANDOM weights; the scores say "
            "nothing about HERO.",
            fg="red",
            err=True,
        )
    metrics = run_finetune(task, bench, dataset, output, cfg)
    _echo_metrics(metrics, output)
    click.echo(json.dumps({k: metrics[k] for k in ("val", "test") if k in metrics}))


def _is_model_config(value: str) -> bool:
    """Whether ``--config value`` names a model config (as before ``--model`` existed): a
    named one, or a YAML file whose keys are all model config fields (or ``extends``)."""
    from hero_model.config import CONFIG_NAMES, HeroConfig

    if value in CONFIG_NAMES:
        return True
    try:
        values = read_mapping(value, FinetuneConfigError)
    except FinetuneConfigError:
        return False
    return bool(values) and set(values) <= {*HeroConfig.model_fields, "extends"}
