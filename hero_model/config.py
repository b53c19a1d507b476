"""The HERO model's sizes, token ids and pretraining-task settings: one frozen :class:`HeroConfig`.

Named configs come from one builder, :func:`hero_config`: ``base`` is HERO's pretraining model
(Li et al. 2020; 6 Cross-modal + 3 Temporal layers of 768, 12 heads, RoBERTa's vocabulary),
``tiny`` a few-thousand-parameter model of the same shape for tests. :func:`build_config`
takes a name or a YAML file (``configs/model/*.yaml``), plus keyword overrides, and validates
everything when the config is built; every error is a :class:`HeroConfigError` naming the file
(or ``overrides``) and the key.

A YAML file is a flat mapping of :class:`HeroConfig` fields; the optional key ``extends``
(``base`` by default) names the config that supplies the fields the file leaves out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, Field, model_validator

from hero_data.configmodel import (
    ConfigModel,
    Number,
    Whole,
    conflict,
    read_mapping,
)
from hero_data.errors import OptionError
from hero_data.features import DEFAULT_FEATURES, FeatureSet

C = TypeVar("C")

__all__ = [
    "CONFIG_NAMES",
    "HeroConfig",
    "HeroConfigError",
    "build_config",
    "hero_config",
]

CONFIG_NAMES = ("base", "tiny")
"""Names :func:`build_config` knows without a file."""


class HeroConfigError(OptionError):
    """A model config that is unknown, of the wrong type or out of range."""


def _yaml_float(value: Any) -> Any:
    """YAML 1.1 reads ``1e-5`` (no dot) as a string: a number field takes it as the number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


_Real = Annotated[Number, BeforeValidator(_yaml_float)]


class HeroConfig(ConfigModel):
    """Every size and setting of the HERO model and its pretraining tasks.

    Sizes:
        vocab_size: tokens in the vocabulary (RoBERTa: 50,265); the embedding table is padded
            to :attr:`padded_vocab_size`, a multiple of 8, and logits are cut back.
        hidden, heads, ffn: Transformer width, attention heads, feed-forward width.
        cross_layers: layers of the Cross-modal Transformer (per cue: its tokens and steps).
        temporal_layers: layers of the Temporal Transformer (all steps of a clip).
        feature_dim: per-step visual input: the dataset's feature columns side by side
            (:attr:`hero_data.features.FeatureSet.dim`). Training and finetuning set it from
            the data (:func:`for_features`); the value here (HERO's ResNet ‖ SlowFast, 4352)
            is the default for a model built without data.
        max_clip_steps: steps per clip the model takes (longer clips are cut, see
            :func:`hero_model.batch.make_batch`); also the rows of the Cross-modal
            Transformer's step position table (HERO's "frame position" table) and the classes
            of the FOM head.
        max_tokens: token ids per cue the model takes (longer cues are cut).
        max_text_positions: rows of the text position table (RoBERTa's 514).
        max_step_positions: rows of the Temporal Transformer's step position table (514).
        dropout: dropout on embeddings, residual branches and the feature projection.
        attention_dropout: dropout on attention probabilities.
        norm_eps: epsilon of the embedding and head LayerNorms (1e-5, as HERO).
        encoder_norm_eps: epsilon of the Transformer layers' LayerNorms (HERO's config left
            RoBERTa's 1e-5 out and got BERT's 1e-12).
        init_std: standard deviation of the normal initialisation of linear and embedding
            weights.

    Token ids (RoBERTa's by default; ``tiny`` uses the layout of
    ``align.tokenizer.train_byte_level_bpe``, where ``<mask>`` is 4):
        pad_id, cls_id, sep_id, mask_id: ``<pad>``, ``<s>``, ``</s>``, ``<mask>``.
        random_token_low, random_token_high: MLM's random replacements are drawn from
            ``[low, high)``.

    Tasks:
        mlm_prob: share of a cue's tokens MLM predicts (80% masked, 10% random, 10% kept).
        mfm_prob: share of a clip's steps MFFR and MNCE mask.
        fom_prob: share of a clip's steps FOM shuffles.
        nce_temperature: MNCE logits are divided by this.
        vsm_queries: cues per clip that become VSM queries (at most).
        vsm_margin: hinge margin of VSM's global (clip-level) losses.
        vsm_kernel: kernel of the two 1-D convolutions giving start and end logits.
        vsm_local_weight, vsm_neg_ctx_weight, vsm_neg_q_weight: weights of the local
            (start/end) loss and of the hinge losses against negative clips / queries.
        vsm_local_drop_prob: probability a VSM batch skips the local loss (HERO: 0.8).
        hard_negative_start_step: training step from which hinge losses weight negatives by
            rank; -1 never (see :attr:`hero_model.pretrain.HeroForPretraining.train_step`).
        hard_negative_pool: the hardest this-many negatives get ``hard_negative_weight``;
            the others get 0.1.
        hard_negative_weight: weight of the hardest negatives.
    """

    error = HeroConfigError
    # max_steps also meant the trainer's optimizer steps; the model's is steps per clip.
    renamed = MappingProxyType({"max_steps": "max_clip_steps"})

    vocab_size: Whole = Field(50265, gt=0)
    hidden: Whole = Field(768, gt=0)
    heads: Whole = Field(12, gt=0)
    ffn: Whole = Field(3072, gt=0)
    cross_layers: Whole = Field(6, gt=0)
    temporal_layers: Whole = Field(3, gt=0)
    feature_dim: Whole = Field(DEFAULT_FEATURES.dim, gt=0)
    max_clip_steps: Whole = Field(100, gt=0)
    max_tokens: Whole = Field(60, gt=0)
    max_text_positions: Whole = Field(514, gt=0)
    max_step_positions: Whole = Field(514, gt=0)
    dropout: _Real = Field(0.1, ge=0, lt=1)
    attention_dropout: _Real = Field(0.1, ge=0, lt=1)
    norm_eps: _Real = Field(1e-5, gt=0)
    encoder_norm_eps: _Real = Field(1e-12, gt=0)
    init_std: _Real = Field(0.02, gt=0)

    pad_id: Whole = 1
    cls_id: Whole = 0
    sep_id: Whole = 2
    mask_id: Whole = 50264
    random_token_low: Whole = 4
    random_token_high: Whole = 50264

    mlm_prob: _Real = Field(0.15, gt=0, le=1)
    mfm_prob: _Real = Field(0.15, gt=0, le=1)
    fom_prob: _Real = Field(0.15, gt=0, le=1)
    nce_temperature: _Real = Field(1.0, gt=0)
    vsm_queries: Whole = Field(5, gt=0)
    vsm_margin: _Real = Field(0.1, ge=0)
    vsm_kernel: Whole = Field(5, gt=0)
    vsm_local_weight: _Real = Field(0.01, ge=0)
    vsm_neg_ctx_weight: _Real = Field(8.0, ge=0)
    vsm_neg_q_weight: _Real = Field(8.0, ge=0)
    vsm_local_drop_prob: _Real = Field(0.8, ge=0, lt=1)
    hard_negative_start_step: Whole = 20000
    hard_negative_pool: Whole = Field(20, gt=0)
    hard_negative_weight: _Real = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _rules(self) -> HeroConfig:
        c = self
        if c.hidden % c.heads:
            raise conflict(
                ["heads", "hidden"], f"hidden ({c.hidden}) must be a multiple of heads ({c.heads})"
            )
        if c.vsm_kernel % 2 == 0:
            raise conflict(["vsm_kernel"], f"vsm_kernel must be odd, got {c.vsm_kernel}")
        if c.hard_negative_start_step < -1:
            raise conflict(
                ["hard_negative_start_step"],
                "hard_negative_start_step must be a step >= 0, or -1 for never; "
                f"got {c.hard_negative_start_step}",
            )
        if c.max_tokens + 1 > c.max_text_positions:
            raise conflict(
                ["max_tokens", "max_text_positions"],
                f"max_tokens + 1 (a cue and its <s> or </s>) = {c.max_tokens + 1} must fit in "
                f"max_text_positions = {c.max_text_positions}",
            )
        if c.max_clip_steps > c.max_step_positions:
            raise conflict(
                ["max_clip_steps", "max_step_positions"],
                f"max_clip_steps ({c.max_clip_steps}) must be <= max_step_positions "
                f"({c.max_step_positions})",
            )
        for name in ("pad_id", "cls_id", "sep_id", "mask_id"):
            v = getattr(c, name)
            if not 0 <= v < c.vocab_size:
                raise conflict(
                    [name, "vocab_size"],
                    f"{name} {v} is outside the vocabulary 0..{c.vocab_size - 1}",
                )
        if len({c.pad_id, c.cls_id, c.sep_id, c.mask_id}) != 4:
            raise conflict(
                ["mask_id"], "pad_id, cls_id, sep_id and mask_id must be four different tokens"
            )
        if not 0 <= c.random_token_low < c.random_token_high <= c.vocab_size:
            raise conflict(
                ["random_token_low", "random_token_high"],
                f"random tokens [{c.random_token_low}, {c.random_token_high}) must be a "
                f"non-empty range inside the vocabulary 0..{c.vocab_size - 1}",
            )
        return self

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the word embedding table: :attr:`vocab_size` rounded up to a multiple of 8."""
        return -(-self.vocab_size // 8) * 8

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden // self.heads

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (YAML/JSON-able; :func:`build_config` reads it back)."""
        return self.model_dump(mode="json")


def hero_config(name: str) -> HeroConfig:
    """The named config: ``base`` (HERO's pretraining model) or ``tiny`` (tests)."""
    if name == "base":
        return HeroConfig()
    if name == "tiny":
        return HeroConfig(
            vocab_size=64,
            hidden=32,
            heads=2,
            ffn=64,
            cross_layers=2,
            temporal_layers=1,
            max_clip_steps=64,
            max_tokens=16,
            max_text_positions=32,
            max_step_positions=64,
            mask_id=4,
            random_token_low=5,
            random_token_high=64,
            vsm_queries=5,
            hard_negative_pool=4,
        )
    raise HeroConfigError(
        f"unknown model config {name!r}; named configs: {', '.join(CONFIG_NAMES)}"
    )


def preset_or_file(
    name_or_path: str | Path,
    names: tuple[str, ...],
    preset: Callable[[str], C],
    error: type[OptionError],
    what: str,
    item: str,
) -> tuple[C, dict[str, Any], str | None]:
    """``(config, values, path)`` for a config given by name or by YAML file.

    A name in ``names`` gives ``(preset(name), {}, None)``. A file gives the preset its
    ``extends`` key names (default ``base``), the file's other values, and its path, for the
    caller to apply. Errors are ``error``, naming the file and key.
    """
    if isinstance(name_or_path, str) and name_or_path in names:
        return preset(name_or_path), {}, None
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        raise error(
            f"unknown {what} {str(name_or_path)!r}: not a named config "
            f"({', '.join(names)}) nor a YAML file"
        )
    if not path.is_file():
        raise error(f"{what} file not found", str(path))
    values = read_mapping(str(path), error, f"{what} {item}s")
    parent = values.pop("extends", "base")
    if parent not in names:
        message = f"extends must be one of {', '.join(names)}, got {parent!r}"
        raise error(message, str(path), "extends")
    return preset(parent), values, str(path)


def for_features(
    config: HeroConfig, features: FeatureSet, overrides: Mapping[str, Any]
) -> HeroConfig:
    """``config`` taking ``features``' per-step input (``feature_dim`` = its total dim): the
    data decides the input size. An explicit ``feature_dim`` in ``overrides`` that disagrees is
    a :class:`HeroConfigError`."""
    wanted = overrides.get("feature_dim")
    if wanted is not None and wanted != features.dim:
        raise HeroConfigError(
            f"feature_dim {wanted!r} does not match the data's feature set "
            f"{features.describe()} ({features.dim} per step); leave feature_dim out, the "
            "data sets it",
            "overrides",
            "feature_dim",
        )
    return config.updated(feature_dim=features.dim)


def build_config(name_or_path: str | Path, **overrides: Any) -> HeroConfig:
    """The config called ``name_or_path`` (``base``, ``tiny``) or read from that YAML file.

    ``overrides`` replace fields last (e.g. ``dropout=0.0``). Raises :class:`HeroConfigError`
    naming the file (or ``overrides``) and key for an unknown key or a bad value.
    """
    config, values, path = preset_or_file(
        name_or_path, CONFIG_NAMES, hero_config, HeroConfigError, "model config", "field"
    )
    if path is not None:
        config = config.merged(values, path)
    return config.merged(overrides, "overrides") if overrides else config
