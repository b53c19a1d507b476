"""``hero train``: HERO pretraining on one or more datasets (one process, or Ray Train)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipelines.cli.errors import friendly_errors
from pipelines.cli.options import no_progress_option, training_device_options


def _parse_tasks(value: str | None) -> dict[str, float] | None:
    if value is None:
        return None
    out: dict[str, float] = {}
    for part in value.split(","):
        name, sep, ratio = part.partition("=")
        try:
            out[name.strip()] = float(ratio)
        except ValueError:
            sep = ""
        if not sep:
            raise click.BadParameter(
                f"expected task=ratio pairs like mlm=2,mnce=2,fom=1,vsm=2, got {part!r}",
                param_hint="--tasks",
            )
    return out


def _parse_weights(value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(w) for w in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers like 3,1, got {value!r}", param_hint="--mix-weights"
        ) from None


def _print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    rate = summary.get("steps_per_s")
    click.echo(
        f"train: step {summary['step']}/{summary['max_steps']} "
        f"({summary['steps_this_run']} this run in {summary['wall_s']:.1f} s"
        + (f", {rate:.3g} steps/s" if rate else "")
        + f") on {summary['world_size']} worker(s)"
    )
    if summary["steps_this_run"] == 0 and summary["step"] == summary["max_steps"]:
        click.echo(
            f"  nothing to train: the run is at its last step ({summary['step']}); resume with "
            "a larger --max-steps to train on"
        )
    losses = summary.get("last_losses") or {}
    if losses:
        click.echo("  last losses: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(losses.items())))
    if summary.get("checkpoint"):
        click.echo(f"  checkpoint:  {summary['checkpoint']}")
    click.echo(f"  summary:     {run_dir / 'summary.json'}")
    click.echo(f"  tensorboard: tensorboard --logdir {run_dir / 'tb'}")


def _train_default(name: str) -> str:
    """The ``base`` default of training option ``name``, for a flag's help (defaults are
    written once, in :class:`~hero_model.train_config.TrainConfig`)."""
    from hero_model.train_config import TrainConfig

    value = TrainConfig.default_of(name)
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" for k, v in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


@click.command()
@click.option(
    "--data",
    "data",
    multiple=True,
    help="A dataset (hero run's output: a folder or s3://...); repeat to mix several [the "
    "config's data].",
)
@click.option(
    "--mix-weights",
    metavar="W1,W2,...",
    help="Share of clips drawn from each --data dataset, in order [by dataset size].",
)
@click.option(
    "--config",
    "config",
    metavar="base|tiny|FILE.yaml",
    help="Training config: a preset or a YAML file (configs/train/) [base; with --resume: the "
    "run's own].",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run folder: checkpoints, TensorBoard logs, metrics.jsonl, curves.png, summary.json.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --output from its last checkpoint, with the same options; only "
    "--max-steps (and how the run is carried out: device, loader, logging) may change.",
)
@click.option(
    "--max-steps",
    type=int,
    help=f"Optimizer steps of the run [config: {_train_default('max_steps')} base]. With "
    "--resume: a new total, not below the checkpoint's step; the learning-rate schedule is "
    "rebuilt for it (docs/training.md).",
)
@click.option(
    "--warmup-steps",
    type=int,
    help=f"Linear warm-up steps [config: {_train_default('warmup_steps')} base].",
)
@click.option(
    "--batch-size",
    type=int,
    help=f"Clips per micro-batch per worker [config: {_train_default('batch_size')} base].",
)
@click.option(
    "--accumulation",
    type=int,
    help=f"Micro-batches per optimizer step [config: {_train_default('accumulation')} base].",
)
@click.option("--lr", type=float, help=f"Peak learning rate [config: {_train_default('lr')} base].")
@click.option(
    "--tasks",
    metavar="TASK=RATIO,...",
    help="Task ratios, e.g. mlm=2,mnce=2,fom=1,vsm=2 (tasks: mlm, mffr, mnce, fom, vsm) "
    f"[config: {_train_default('tasks')}].",
)
@click.option(
    "--seed",
    type=int,
    help=f"Seed of init, sampling and masks [config: {_train_default('seed')} base].",
)
@click.option(
    "--checkpoint-every",
    type=int,
    help=f"Steps between checkpoints [config: {_train_default('checkpoint_every')} base].",
)
@click.option(
    "--log-every",
    type=int,
    help=f"Steps between logged metrics [config: {_train_default('log_every')} base].",
)
@click.option(
    "--loader-workers",
    type=int,
    help=f"DataLoader processes per worker [config: {_train_default('loader_workers')} base].",
)
@training_device_options(lambda name: f"config: {_train_default(name)}")
@click.option(
    "--init-roberta",
    type=click.Path(dir_okay=False, path_type=Path),
    help="RoBERTa-base state dict to initialise the text layers from [none].",
)
@click.option(
    "--init-hero",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Reference HERO checkpoint to initialise the model from [none].",
)
@click.option(
    "--stop-at",
    type=int,
    metavar="STEP",
    help="Stop after this step with a checkpoint (resume later with --resume) [max steps].",
)
@click.option(
    "--num-workers",
    type=click.IntRange(min=1),
    help="Data-parallel Ray Train workers, one per GPU [none: train in this process].",
)
@click.option("--address", help="Ray cluster address, with --num-workers [a private local Ray].")
@click.option(
    "--cpus-per-worker",
    type=float,
    default=1.0,
    show_default=True,
    help="CPUs Ray reserves per worker, with --num-workers.",
)
@no_progress_option
@friendly_errors
def train(
    data: tuple[str, ...],
    mix_weights: str | None,
    config: str | None,
    output: Path,
    resume: bool,
    tasks: str | None,
    init_roberta: Path | None,
    init_hero: Path | None,
    stop_at: int | None,
    num_workers: int | None,
    address: str | None,
    cpus_per_worker: float,
    no_progress: bool,
    **flags: Any,
) -> None:
    """Pretrain HERO on one or more datasets (`hero run` output), mixed by --mix-weights.

    Each step trains one task, drawn by ratio (MLM:MNCE:FOM:VSM = 2:2:1:2 by default), with
    AdamW, warm-up then linear decay, gradient clipping, accumulation and bf16 autocast on a
    GPU. OUTPUT gets checkpoints every --checkpoint-every steps, TensorBoard logs (OUTPUT/tb),
    metrics.jsonl, curves.png (loss per task, learning rate, data wait; redrawn at each
    checkpoint) and summary.json; --resume continues exactly where the last checkpoint left
    off. --num-workers N trains on N GPUs (or CPU processes) with Ray Train, on this machine or
    on the cluster at --address (OUTPUT and the datasets must then be on shared storage).

    Example: hero train --data tv --data howto --mix-weights 1,1 --config base --output runs/a
    """
    from hero_model.train import load_run_config, load_train_config

    overrides: dict[str, Any] = dict(flags)
    if data:
        overrides["data"] = tuple(str(p) for p in data)
    overrides["mix_weights"] = _parse_weights(mix_weights)
    overrides["tasks"] = _parse_tasks(tasks)
    overrides["init_roberta"] = str(init_roberta) if init_roberta else None
    overrides["init_hero"] = str(init_hero) if init_hero else None
    for path, flag in ((init_roberta, "--init-roberta"), (init_hero, "--init-hero")):
        if path is not None and not path.is_file():
            raise click.ClickException(f"{path}: no such file (given with {flag})")
    if resume and config is None:
        cfg = load_run_config(output, overrides)
    else:
        cfg = load_train_config(config or "base", overrides)
    if not cfg.data:
        raise click.UsageError("name a dataset with --data (or `data:` in the config file)")

    try:
        if num_workers is None:
            import logging

            from hero_model.train import run_training

            if address:
                raise click.UsageError("--address needs --num-workers")
            logging.getLogger("hero.progress").setLevel(logging.INFO)
            summary = run_training(
                cfg, output, resume=resume, stop_at=stop_at, progress=not no_progress
            )
        else:
            from hero_model.distributed import train_distributed

            summary = train_distributed(
                cfg,
                output,
                num_workers=num_workers,
                address=address,
                cpus_per_worker=cpus_per_worker,
                resume=resume,
                stop_at=stop_at,
                progress=not no_progress,
            )
    except Exception as e:  # a Ray Train failure wraps the worker's error: say so, in one line
        if type(e).__name__ in ("TrainingFailedError", "WorkerGroupError", "ControllerError"):
            raise click.ClickException(f"Ray Train run failed: {e}") from None
        raise
    _print_summary(summary, output)
