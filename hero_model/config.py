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

import difflib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from hero_data.errors import OptionError
from hero_data.schema import FEATURE_DIM
from hero_data.yamlfile import load_yaml

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


@dataclass(frozen=True)
class HeroConfig:
    """Every size and setting of the HERO model and its pretraining tasks.

    Sizes:
        vocab_size: tokens in the vocabulary (RoBERTa: 50,265); the embedding table is padded
            to :attr:`padded_vocab_size`, a multiple of 8, and logits are cut back.
        hidden, heads, ffn: Transformer width, attention heads, feed-forward width.
        cross_layers: layers of the Cross-modal Transformer (per cue: its tokens and frames).
        temporal_layers: layers of the Temporal Transformer (all steps of a clip).
        feature_dim: per-step visual feature, ResNet ‖ SlowFast (4352).
        max_steps: steps per clip the model takes (longer clips are cut, see
            :func:`hero_model.batch.make_batch`); also the frame-position table of the
            Cross-modal Transformer and the classes of the FOM head.
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

    vocab_size: int = 50265
    hidden: int = 768
    heads: int = 12
    ffn: int = 3072
    cross_layers: int = 6
    temporal_layers: int = 3
    feature_dim: int = FEATURE_DIM
    max_steps: int = 100
    max_tokens: int = 60
    max_text_positions: int = 514
    max_step_positions: int = 514
    dropout: float = 0.1
    attention_dropout: float = 0.1
    norm_eps: float = 1e-5
    encoder_norm_eps: float = 1e-12
    init_std: float = 0.02

    pad_id: int = 1
    cls_id: int = 0
    sep_id: int = 2
    mask_id: int = 50264
    random_token_low: int = 4
    random_token_high: int = 50264

    mlm_prob: float = 0.15
    mfm_prob: float = 0.15
    fom_prob: float = 0.15
    nce_temperature: float = 1.0
    vsm_queries: int = 5
    vsm_margin: float = 0.1
    vsm_kernel: int = 5
    vsm_local_weight: float = 0.01
    vsm_neg_ctx_weight: float = 8.0
    vsm_neg_q_weight: float = 8.0
    vsm_local_drop_prob: float = 0.8
    hard_negative_start_step: int = 20000
    hard_negative_pool: int = 20
    hard_negative_weight: float = 10.0

    def __post_init__(self) -> None:
        _validate(self)

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
        return asdict(self)


_INT_FIELDS = {f.name for f in fields(HeroConfig) if f.type == "int"}
_FLOAT_FIELDS = {f.name for f in fields(HeroConfig) if f.type == "float"}


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise HeroConfigError(message, key=key)


def _validate(c: HeroConfig) -> None:
    for name in sorted(_INT_FIELDS):
        v = getattr(c, name)
        _check(
            isinstance(v, int) and not isinstance(v, bool),
            name,
            f"{name} must be an integer, got {v!r}",
        )
    for name in sorted(_FLOAT_FIELDS):
        v = getattr(c, name)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        _check(ok, name, f"{name} must be a finite number, got {v!r}")
    positive = (
        "vocab_size", "hidden", "heads", "ffn", "cross_layers", "temporal_layers",
        "feature_dim", "max_steps", "max_tokens", "max_text_positions", "max_step_positions",
        "vsm_queries", "vsm_kernel", "hard_negative_pool",
    )  # fmt: skip
    for name in positive:
        _check(getattr(c, name) > 0, name, f"{name} must be positive, got {getattr(c, name)}")
    _check(
        c.hidden % c.heads == 0,
        "heads",
        f"hidden ({c.hidden}) must be a multiple of heads ({c.heads})",
    )
    _check(c.vsm_kernel % 2 == 1, "vsm_kernel", f"vsm_kernel must be odd, got {c.vsm_kernel}")
    for name in ("dropout", "attention_dropout", "vsm_local_drop_prob"):
        v = getattr(c, name)
        _check(0 <= v < 1, name, f"{name} must be in [0, 1), got {v}")
    for name in ("mlm_prob", "mfm_prob", "fom_prob"):
        v = getattr(c, name)
        _check(0 < v <= 1, name, f"{name} must be in (0, 1], got {v}")
    for name in ("norm_eps", "encoder_norm_eps", "init_std", "nce_temperature"):
        _check(getattr(c, name) > 0, name, f"{name} must be positive, got {getattr(c, name)}")
    for name in ("vsm_margin", "vsm_local_weight", "vsm_neg_ctx_weight", "vsm_neg_q_weight"):
        v = getattr(c, name)
        _check(v >= 0, name, f"{name} must be >= 0, got {v}")
    _check(
        c.hard_negative_weight > 0,
        "hard_negative_weight",
        f"hard_negative_weight must be positive, got {c.hard_negative_weight}",
    )
    _check(
        c.hard_negative_start_step >= -1,
        "hard_negative_start_step",
        f"hard_negative_start_step must be a step >= 0, or -1 for never; "
        f"got {c.hard_negative_start_step}",
    )
    _check(
        c.max_tokens + 1 <= c.max_text_positions,
        "max_tokens",
        f"max_tokens + 1 (a cue and its <s> or </s>) = {c.max_tokens + 1} must fit in "
        f"max_text_positions = {c.max_text_positions}",
    )
    _check(
        c.max_steps <= c.max_step_positions,
        "max_steps",
        f"max_steps ({c.max_steps}) must be <= max_step_positions ({c.max_step_positions})",
    )
    for name in ("pad_id", "cls_id", "sep_id", "mask_id"):
        v = getattr(c, name)
        _check(
            0 <= v < c.vocab_size,
            name,
            f"{name} {v} is outside the vocabulary 0..{c.vocab_size - 1}",
        )
    _check(
        len({c.pad_id, c.cls_id, c.sep_id, c.mask_id}) == 4,
        "mask_id",
        "pad_id, cls_id, sep_id and mask_id must be four different tokens",
    )
    _check(
        0 <= c.random_token_low < c.random_token_high <= c.vocab_size,
        "random_token_low",
        f"random tokens [{c.random_token_low}, {c.random_token_high}) must be a non-empty range "
        f"inside the vocabulary 0..{c.vocab_size - 1}",
    )


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
            max_steps=64,
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


def _coerce(key: str, value: Any) -> Any:
    if key in _FLOAT_FIELDS and not isinstance(value, bool):
        if isinstance(value, int):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads ``1e-5`` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                return value
    return value


def _apply(base: HeroConfig, values: dict[str, Any], source: str) -> HeroConfig:
    known = {f.name for f in fields(HeroConfig)}
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise HeroConfigError(f"unknown model config key {key!r}{hint}", source, str(key))
    try:
        return replace(base, **{k: _coerce(k, v) for k, v in values.items()})
    except HeroConfigError as e:
        raise HeroConfigError(e.problem, source, e.key) from None


def read_yaml_mapping(path: Path, error: type[OptionError], what: str, item: str) -> dict[str, Any]:
    """The mapping of ``item: value`` in the YAML file ``path`` (``{}`` when it is empty); else
    ``error`` naming the file (:func:`hero_data.yamlfile.load_yaml`'s rules and bounds). ``what``
    names the file's kind in messages ("model config")."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise error(f"cannot read the {what}: {e.strerror or e}", str(path)) from None
    data = load_yaml(raw, str(path), error)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(
            f"a {what} must be a mapping of {item}: value, got {type(data).__name__}", str(path)
        )
    return data


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
    values = read_yaml_mapping(path, error, what, item)
    parent = values.pop("extends", "base")
    if parent not in names:
        message = f"extends must be one of {', '.join(names)}, got {parent!r}"
        raise error(message, str(path), "extends")
    return preset(parent), values, str(path)


def build_config(name_or_path: str | Path, **overrides: Any) -> HeroConfig:
    """The config called ``name_or_path`` (``base``, ``tiny``) or read from that YAML file.

    ``overrides`` replace fields last (e.g. ``dropout=0.0``). Raises :class:`HeroConfigError`
    naming the file (or ``overrides``) and key for an unknown key or a bad value.
    """
    config, values, path = preset_or_file(
        name_or_path, CONFIG_NAMES, hero_config, HeroConfigError, "model config", "field"
    )
    if path is not None:
        config = _apply(config, values, path)
    return _apply(config, overrides, "overrides") if overrides else config
