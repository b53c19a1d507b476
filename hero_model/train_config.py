"""The options of ``hero train``: :class:`TrainConfig`, its presets and its YAML files.

A typed model of the one configuration system (:mod:`hero_data.configmodel`), in a module that
imports no torch, so that ``hero train --help`` shows the defaults from here quickly (checking
the task names imports :mod:`hero_model.batch`, when a config is validated).
:mod:`hero_model.train` re-exports every name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field, model_validator

from hero_data.configmodel import (
    ConfigModel,
    Device,
    Number,
    PathText,
    Text,
    Whole,
    as_tuple,
    conflict,
    read_mapping,
)
from hero_data.errors import OptionError
from hero_data.features import FeatureSet
from hero_model.config import preset_or_file

__all__ = [
    "PAPER_TASK_RATIOS",
    "TRAIN_CONFIG_NAMES",
    "TrainConfig",
    "TrainConfigError",
    "load_run_config",
    "load_train_config",
    "train_preset",
]

TRAIN_CONFIG_NAMES = ("base", "tiny")
"""Training presets :func:`load_train_config` knows without a file."""

PAPER_TASK_RATIOS = {"mlm": 2.0, "mnce": 2.0, "fom": 1.0, "vsm": 2.0}
"""MLM:MNCE:FOM:VSM = 2:2:1:2, the paper's best mix (HERO, Table 1)."""


Precision = Literal["auto", "bf16", "fp32"]
"""``auto``: bf16 autocast on a GPU that supports it, else float32; ``bf16``; ``fp32``
(the same for pretraining and finetuning: :mod:`hero_model.runtime`)."""
PRECISIONS: tuple[str, ...] = get_args(Precision)


class TrainConfigError(OptionError):
    """A training option that is unknown, of the wrong type or out of range."""


_Fraction = Annotated[Number, Field(ge=0, lt=1)]


class TrainConfig(ConfigModel):
    """Every option of ``hero train``; validated when built (:class:`TrainConfigError`).

    Attributes:
        model: model config: ``base``, ``tiny`` or a model YAML file
            (:func:`hero_model.config.build_config`).
        model_overrides: model config fields to replace (e.g. ``{dropout: 0.0}``).
        data: dataset folders to train on (mixed, see :mod:`hero_model.data`).
        mix_weights: share of the clips drawn from each dataset (one per dataset); ``None``:
            in proportion to their sizes (each clip once per pass).
        tasks: relative frequency of each pretraining task (``mlm``, ``mffr``, ``mnce``,
            ``fom``, ``vsm``); tasks left out or at 0 are not trained.
        batch_size: clips per micro-batch, per worker.
        accumulation: micro-batches whose gradients are summed per optimizer step.
        max_steps: optimizer steps of the whole run (the schedule's length).
        warmup_steps: steps of linear warm-up (then linear decay to the end).
        lr: peak learning rate.
        betas, eps, weight_decay: AdamW's (no decay for biases and norm weights).
        grad_clip: clip the global gradient norm to this; 0: no clipping.
        precision: ``auto`` (bf16 autocast on a GPU that supports it, else fp32), ``bf16``,
            ``fp32``.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        seed: seed of the model initialisation, the sampler, the task draws and the masks.
        checkpoint_every: steps between checkpoints (one is also written at the end).
        keep_checkpoints: newest checkpoints kept; older ones are deleted.
        log_every: steps between logged metrics (TensorBoard, metrics.jsonl, progress bar).
        loader_workers: DataLoader processes building batches (0: in the training process).
        prefetch: micro-batches each loader process keeps ready.
        init_roberta: RoBERTa-base state dict to initialise the text layers from.
        init_hero: reference HERO checkpoint to initialise the whole model from.
    """

    error = TrainConfigError

    model: PathText = "base"
    model_overrides: dict[str, Any] = Field(default_factory=dict)
    data: Annotated[tuple[Text, ...], BeforeValidator(as_tuple)] = ()
    mix_weights: (
        Annotated[tuple[Annotated[Number, Field(gt=0)], ...], BeforeValidator(as_tuple)] | None
    ) = None
    tasks: dict[str, Annotated[Number, Field(ge=0)]] = Field(
        default_factory=lambda: dict(PAPER_TASK_RATIOS)
    )
    batch_size: Whole = Field(32, ge=1)
    accumulation: Whole = Field(2, ge=1)
    max_steps: Whole = Field(100_000, ge=1)
    warmup_steps: Whole = Field(10_000, ge=0)
    lr: Number = Field(3e-5, gt=0)
    betas: Annotated[tuple[_Fraction, _Fraction], BeforeValidator(as_tuple)] = (0.9, 0.98)
    eps: Number = Field(1e-6, gt=0)
    weight_decay: Number = Field(0.01, ge=0)
    grad_clip: Number = Field(1.0, ge=0)
    precision: Precision = "auto"
    device: Device = "auto"
    seed: Whole = Field(77, ge=0)
    checkpoint_every: Whole = Field(2000, ge=1)
    keep_checkpoints: Whole = Field(3, ge=1)
    log_every: Whole = Field(50, ge=1)
    loader_workers: Whole = Field(4, ge=0)
    prefetch: Whole = Field(4, ge=1)
    init_roberta: PathText | None = None
    init_hero: PathText | None = None

    @model_validator(mode="after")
    def _rules(self) -> TrainConfig:
        from hero_model.batch import TASKS

        if self.warmup_steps >= self.max_steps:
            raise conflict(
                ["warmup_steps", "max_steps"],
                f"warmup_steps ({self.warmup_steps}) must be less than max_steps "
                f"({self.max_steps})",
            )
        if self.mix_weights is not None and self.data and len(self.mix_weights) != len(self.data):
            raise conflict(
                ["mix_weights", "data"],
                f"{len(self.mix_weights)} mix_weights for {len(self.data)} datasets",
            )
        for name in self.tasks:
            if name not in TASKS:
                raise conflict(["tasks"], f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
        if not any(r > 0 for r in self.tasks.values()):
            raise conflict(["tasks"], "at least one task needs a ratio above 0")
        if self.init_roberta and self.init_hero:
            raise conflict(
                ["init_hero", "init_roberta"], "give init_roberta or init_hero, not both"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-able dict of every option (:func:`load_train_config` reads it)."""
        return self.model_dump(mode="json")

    def task_ratios(self) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """The trained tasks (ratio > 0) in the model's task order, and their ratios."""
        from hero_model.batch import TASKS

        names = tuple(t for t in TASKS if self.tasks.get(t, 0) > 0)
        return names, tuple(float(self.tasks[t]) for t in names)

    def hero_config(self, features: FeatureSet | None = None) -> Any:
        """The :class:`hero_model.config.HeroConfig` this run trains: on data of ``features``,
        its ``feature_dim`` is that set's (:func:`hero_model.config.for_features`)."""
        from hero_model.config import build_config, for_features

        config = build_config(self.model, **dict(self.model_overrides))
        return config if features is None else for_features(config, features, self.model_overrides)


# -- loading -------------------------------------------------------------------------------


def train_preset(name: str) -> TrainConfig:
    """The named training preset: ``base`` (HERO's TV pretraining recipe) or ``tiny`` (tests).

    ``base`` is the reference's ``pretrain-tv-16gpu`` recipe: 32 clips per GPU, 2 accumulation
    steps, AdamW (lr 3e-5, betas 0.9/0.98, weight decay 0.01), 10k warm-up steps of 100k, gradient
    norm clipped to 1, seed 77. ``tiny`` trains the tiny model for a few steps on CPU.
    """
    if name == "base":
        return TrainConfig()
    if name == "tiny":
        return TrainConfig(
            model="tiny",
            batch_size=4,
            accumulation=1,
            max_steps=200,
            warmup_steps=20,
            lr=1e-3,
            seed=0,
            checkpoint_every=100,
            keep_checkpoints=2,
            log_every=10,
            loader_workers=1,
            prefetch=2,
        )
    raise TrainConfigError(
        f"unknown training config {name!r}; named configs: {', '.join(TRAIN_CONFIG_NAMES)}"
    )


def load_train_config(
    name_or_path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None
) -> TrainConfig:
    """The preset ``name_or_path`` (``base``, ``tiny``) or the YAML file there, then overrides.

    A YAML file is a mapping of :class:`TrainConfig` options; ``extends: base|tiny`` (default
    ``base``) names the preset supplying the options it leaves out. ``overrides`` (e.g. from
    the command line; ``None`` values are ignored) win over both. The model config is built too,
    so that every error shows here, as a :class:`TrainConfigError` (or the model's
    ``HeroConfigError``) naming the file or ``command line`` and the key.
    """
    source = str(name_or_path)
    config, values, path = preset_or_file(
        source,
        TRAIN_CONFIG_NAMES,
        train_preset,
        TrainConfigError,
        "training config",
        "option",
    )
    if path is not None:
        config = config.merged(values, path)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if given:
        config = config.merged(given, "command line")
        source = "command line"
    try:
        config.hero_config()
    except ValueError as e:
        raise TrainConfigError(f"model config {config.model!r}: {e}", source, "model") from None
    return config


def load_run_config(
    run_dir: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None
) -> TrainConfig:
    """The training config a run was started with (``RUN_DIR/config.yaml``), then overrides."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise TrainConfigError(
            "not found: not a run folder, or its run never started; give --config", str(path)
        )
    values = read_mapping(str(path), TrainConfigError, "training options").get("train")
    if not isinstance(values, dict):
        raise TrainConfigError("has no 'train' section", str(path))
    config = TrainConfig().merged(values, str(path))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return config.merged(given, "command line") if given else config
