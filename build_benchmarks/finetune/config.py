"""The options of ``hero finetune``: :class:`FinetuneConfig`, from a YAML file and flags.

A typed model of the one configuration system (:mod:`hero_data.configmodel`), in a module that
imports neither torch nor the recipe, so that ``hero finetune --help`` shows the defaults from
here quickly. ``configs/finetune.example.yaml`` lists every option with its default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError

from build_benchmarks.vcmr import RankingConfig
from hero_data.configmodel import (
    ConfigModel,
    Device,
    Flag,
    Number,
    PathText,
    Whole,
    as_tuple,
    option_error,
    read_mapping,
)
from hero_data.errors import HeroError, OptionError
from hero_model.train_config import Precision

__all__ = [
    "FinetuneConfig",
    "FinetuneConfigError",
    "FinetuneError",
    "load_finetune_config",
]


class FinetuneError(HeroError, ValueError):
    """Inputs that cannot be finetuned on (benchmark, dataset, tokenizer, checkpoint)."""


class FinetuneConfigError(OptionError, FinetuneError):
    """A finetuning option that is unknown, of the wrong type or out of range (a
    :class:`FinetuneError` too, as callers caught before)."""


_Fraction = Annotated[Number, Field(ge=0, lt=1)]


class FinetuneConfig(ConfigModel):
    """Options of a finetuning run.

    Attributes:
        checkpoint: a ``hero train`` run folder (its newest checkpoint), a checkpoint folder
            (``model.pt`` + ``meta.json``) or its ``model.pt``; ``None``: random weights.
        model: model config (``base``, ``tiny`` or a YAML file) when there is no checkpoint;
            with one it must match the checkpoint's (``None``: the checkpoint's; ``base``
            without one).
        model_overrides: model config fields to replace (e.g. ``{"dropout": 0.0}``).
        tokenizer: the dataset's tokenizer file, for the query / question / answer text.
        epochs: passes over ``train.jsonl``.
        max_steps: at most this many optimizer updates (``None``: ``epochs`` decide; 0:
            evaluate the initial weights).
        batch_size: queries (how2r) or questions (how2qa) per update.
        lr: peak learning rate.
        lr_mul: the heads added for the task (How2QA's answer and span heads; How2R adds
            none: its VSM head comes from pretraining) learn at ``lr_mul × lr``, as HERO's
            ``lr_mul`` (10 in its video-QA configs).
        betas: AdamW's (HERO: 0.9, 0.98).
        eps: AdamW's epsilon (HERO's AdamW: 1e-6).
        warmup: share of the updates spent warming up linearly.
        weight_decay: AdamW weight decay (not on biases and norms).
        grad_clip: global gradient-norm limit; 0: none.
        seed: seed of initialisation, shuffling and dropout.
        device: ``auto`` (a GPU if there is one), ``cpu``, ``cuda``, ``cuda:N``.
        precision: ``auto`` (bf16 autocast on a GPU that has bf16, else fp32), ``bf16`` (refused
            on a GPU without it), ``fp32``.
        hard_negative_start_step: How2R: the update from which the hinge losses weight the
            hardest negatives (HERO's TVR finetuning: 2000); ``None``: the model config's.
        qa_span_weight: weight of How2QA's span loss (HERO: 0.4 on TVQA-style sets).
        qa_in_cues: append each candidate's QA text to every cue in the Cross-modal
            Transformer too, as HERO does (costs a Cross-modal pass per candidate).
        eval_batch: queries, clips or questions per evaluation forward pass.
        ranking: VCMR/SVMR ranking (clips kept, span lengths in steps, α); in a YAML file, a
            mapping of :class:`~build_benchmarks.vcmr.RankingConfig` fields.
        log_every: updates between log lines.
        overwrite: replace an earlier run's outputs in the run folder.
    """

    error = FinetuneConfigError

    checkpoint: PathText | None = None
    model: PathText | None = None
    model_overrides: dict[str, Any] = Field(default_factory=dict)
    tokenizer: PathText | None = None
    epochs: Whole = Field(3, ge=1)
    max_steps: Whole | None = Field(None, ge=0)
    batch_size: Whole = Field(32, ge=1)
    lr: Number = Field(5e-5, gt=0)
    lr_mul: Number = Field(10.0, gt=0)
    betas: Annotated[tuple[_Fraction, _Fraction], BeforeValidator(as_tuple)] = (0.9, 0.98)
    eps: Number = Field(1e-6, gt=0)
    warmup: Number = Field(0.1, ge=0, lt=1)
    weight_decay: Number = Field(0.01, ge=0)
    grad_clip: Number = Field(1.0, ge=0)
    seed: Whole = Field(0, ge=0)
    device: Device = "auto"
    precision: Precision = "auto"
    hard_negative_start_step: Whole | None = Field(2000, ge=-1)
    qa_span_weight: Number = Field(0.4, ge=0)
    qa_in_cues: Flag = True
    eval_batch: Whole = Field(32, ge=1)
    ranking: RankingConfig = RankingConfig()
    log_every: Whole = Field(50, ge=1)
    overwrite: Flag = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every option."""
        return self.model_dump(mode="json")


def load_finetune_config(
    path: str | os.PathLike[str] | None, overrides: Mapping[str, Any] | None = None
) -> FinetuneConfig:
    """The :class:`FinetuneConfig` of defaults < the YAML file ``path`` (if any) < ``overrides``
    (command-line flags; ``None`` values are flags not given). ``ranking`` in either is a
    mapping of :class:`RankingConfig` fields, the flags' replacing the file's one by one.
    Raises :class:`FinetuneConfigError` naming the file or ``command line`` and the key."""
    values = read_mapping(os.fspath(path), FinetuneConfigError) if path is not None else {}
    source = os.fspath(path) if path is not None else "command line"
    try:
        cfg = FinetuneConfig.model_validate(values)
    except ValidationError as e:
        raise option_error(e, FinetuneConfigError, source, model=FinetuneConfig) from None
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if isinstance(given.get("ranking"), Mapping):
        given["ranking"] = {**cfg.ranking.model_dump(), **given["ranking"]}
    if not given:
        return cfg
    return cfg.merged(given, "command line")
