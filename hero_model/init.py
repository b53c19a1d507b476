"""Initialising HERO from RoBERTa-base, and loading the released HERO checkpoints.

:func:`load_roberta_into` fills the Cross-modal Transformer and the text embedder from a local
RoBERTa state dict (HuggingFace names, ``roberta.encoder.layer.N....``), taking every
``12 / cross_layers``-th layer (layers 1, 3, 5, 7, 9, 11 for 6 layers), as HERO did.

:func:`load_hero_checkpoint` reads a state dict saved by the reference implementation
(github.com/linjieli222/HERO, ``HeroForPretraining``; e.g. ``hero-tv-ht100.pt``) and maps its
names to ours with one table, :data:`REFERENCE_TABLE` (also in docs/model.md). Three entries
are transformed, not only renamed:

- HERO adds one token-type vector (row 1 of ``token_type_embeddings``) to every token and
  every frame before the LayerNorm; we add it into the text and frame position tables instead
  (``fold``), which gives the same embeddings;
- HERO's frame mask tables are ``Embedding(2, 4352)`` of which row 1 is the mask; row 0 is
  zero at the clip level, and at the frame level a frozen random vector that HERO adds to the
  unmasked frames of MFM batches only: we keep row 1 (``row1``) and drop row 0;
- the word embeddings and LM bias are padded to a multiple of 8 rows if they are not
  (``pad_vocab``).

Dropped: the two poolers (unused in pretraining), the ``pad`` buffers, the ``vocab_padded``
flag, and ``lm_head.decoder.weight`` (tied to the word embeddings; it must equal them).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hero_model.config import HeroConfig
from hero_model.model import HeroEncoder
from hero_model.runtime import CheckpointError, read_state_dict

__all__ = [
    "REFERENCE_IGNORED",
    "REFERENCE_TABLE",
    "LoadReport",
    "convert_hero_state_dict",
    "load_hero_checkpoint",
    "load_roberta_into",
    "reference_shapes",
]

logger = logging.getLogger(__name__)

_LAYER = (
    # (ours under a layer, reference under a layer)
    ("attention.query", "attention.self.query"),
    ("attention.key", "attention.self.key"),
    ("attention.value", "attention.self.value"),
    ("attention.out", "attention.output.dense"),
    ("attention.norm", "attention.output.LayerNorm"),
    ("ffn_in", "intermediate.dense"),
    ("ffn_out", "output.dense"),
    ("ffn_norm", "output.LayerNorm"),
)
_WB = ("weight", "bias")

_F, _C, _V, _Q = "v_encoder.f_encoder.", "v_encoder.c_encoder.", "v_encoder.", "q_feat_attn."
_FI = f"{_F}img_embeddings."
_QA = f"{_Q}query_self_attention."

REFERENCE_TABLE: tuple[tuple[str, str, str], ...] = (
    # (our name, reference name, how); {i} is a layer index, {wb} weight and bias
    ("encoder.text_embed.word.weight", f"{_F}embeddings.word_embeddings.weight", "pad_vocab"),
    ("encoder.text_embed.position.weight", f"{_F}embeddings.position_embeddings.weight", "fold"),
    ("encoder.text_embed.norm.{wb}", f"{_F}embeddings.LayerNorm.{{wb}}", "copy"),
    ("encoder.frame_embed.feature_norm.{wb}", f"{_FI}img_LayerNorm.{{wb}}", "copy"),
    ("encoder.frame_embed.proj.{wb}", f"{_FI}img_linear.{{wb}}", "copy"),
    ("encoder.frame_embed.position.weight", f"{_FI}position_embeddings.weight", "fold"),
    ("encoder.frame_embed.norm.{wb}", f"{_FI}LayerNorm.{{wb}}", "copy"),
    ("encoder.frame_embed.mask_vector", f"{_FI}mask_embedding.weight", "row1"),
    ("encoder.cross.layers.{i}.<layer>", f"{_F}encoder.layer.{{i}}.<layer>", "copy"),
    ("encoder.residual.norm.{wb}", f"{_V}frame_transform.LayerNorm.{{wb}}", "copy"),
    ("encoder.residual.proj.{wb}", f"{_V}frame_transform.net.1.{{wb}}", "copy"),
    ("encoder.residual.mask_vector", f"{_V}mask_embedding.weight", "row1"),
    ("encoder.step_embed.position.weight", f"{_C}embeddings.position_embeddings.weight", "copy"),
    ("encoder.step_embed.norm.{wb}", f"{_C}embeddings.LayerNorm.{{wb}}", "copy"),
    ("encoder.temporal.layers.{i}.<layer>", f"{_C}encoder.layer.{{i}}.<layer>", "copy"),
    ("mlm_head.dense.{wb}", f"{_F}lm_head.dense.{{wb}}", "copy"),
    ("mlm_head.norm.{wb}", f"{_F}lm_head.LayerNorm.{{wb}}", "copy"),
    ("mlm_head.bias", f"{_F}lm_head.bias", "pad_vocab"),
    ("feature_head.dense.{wb}", f"{_V}feat_regress.net.0.{{wb}}", "copy"),
    ("feature_head.norm.{wb}", f"{_V}feat_regress.net.2.{{wb}}", "copy"),
    ("feature_head.out.{wb}", f"{_V}feat_regress.net.3.{{wb}}", "copy"),
    ("order_head.dense.{wb}", f"{_V}fom_output.linear_1.{{wb}}", "copy"),
    ("order_head.norm.{wb}", f"{_V}fom_output.LayerNorm.{{wb}}", "copy"),
    ("order_head.out.{wb}", f"{_V}fom_output.linear_2.{{wb}}", "copy"),
    ("query_encoder.input_norm.{wb}", f"{_Q}query_input_proj.LayerNorm.{{wb}}", "copy"),
    ("query_encoder.input_proj.{wb}", f"{_Q}query_input_proj.net.1.{{wb}}", "copy"),
    ("query_encoder.position.weight", f"{_Q}query_pos_embed.position_embeddings.weight", "copy"),
    ("query_encoder.position_norm.{wb}", f"{_Q}query_pos_embed.LayerNorm.{{wb}}", "copy"),
    ("query_encoder.attention.query.{wb}", f"{_QA}self.query.{{wb}}", "copy"),
    ("query_encoder.attention.key.{wb}", f"{_QA}self.key.{{wb}}", "copy"),
    ("query_encoder.attention.value.{wb}", f"{_QA}self.value.{{wb}}", "copy"),
    ("query_encoder.attention.out.{wb}", f"{_QA}output.dense.{{wb}}", "copy"),
    ("query_encoder.attention.norm.{wb}", f"{_QA}output.LayerNorm.{{wb}}", "copy"),
    ("query_encoder.pool.weight", f"{_Q}modular_vector_mapping.weight", "copy"),
    ("vsm_query_proj.{wb}", "video_query_linear.{wb}", "copy"),
    ("vsm_start.weight", "video_st_predictor.weight", "copy"),
    ("vsm_end.weight", "video_ed_predictor.weight", "copy"),
)  # fmt: skip
"""Our parameter names <- the reference's, and how each is converted (see the module doc).
``<layer>`` stands for each of the Transformer layer entries (``attention.query`` <-
``attention.self.query``, ..., ``ffn_norm`` <- ``output.LayerNorm``), weight and bias."""

_TYPE_EMBEDDING = "v_encoder.f_encoder.embeddings.token_type_embeddings.weight"
_TIED = "v_encoder.f_encoder.lm_head.decoder.weight"

REFERENCE_IGNORED: tuple[str, ...] = (
    "v_encoder.f_encoder.pooler.dense.weight",
    "v_encoder.f_encoder.pooler.dense.bias",
    "v_encoder.c_encoder.pooler.dense.weight",
    "v_encoder.c_encoder.pooler.dense.bias",
    "v_encoder.pad",
    "v_encoder.f_encoder.pad",
    "vocab_padded",
)
"""Reference names that are read but not loaded (besides the type embedding, folded, and the
tied LM decoder, checked)."""


@dataclass
class LoadReport:
    """What a loader did.

    Attributes:
        loaded: our parameter names that were set from the file.
        kept: our parameter names the file did not set (they keep their values).
        ignored: names in the file that were not used.
    """

    loaded: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _expand(config: HeroConfig) -> list[tuple[str, str, str]]:
    """:data:`REFERENCE_TABLE` with layers and weight/bias spelt out."""
    rows = []
    for ours, ref, how in REFERENCE_TABLE:
        if "<layer>" in ours:
            n = config.cross_layers if ".cross." in ours else config.temporal_layers
            for i in range(n):
                for o, r in _LAYER:
                    for wb in _WB:
                        rows.append(
                            (
                                ours.replace("<layer>", f"{o}.{wb}").format(i=i),
                                ref.replace("<layer>", f"{r}.{wb}").format(i=i),
                                how,
                            )
                        )
        elif "{wb}" in ours:
            rows.extend((ours.format(wb=wb), ref.format(wb=wb), how) for wb in _WB)
        else:
            rows.append((ours, ref, how))
    return rows


def reference_shapes(config: HeroConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the reference ``HeroForPretraining`` state dict for ``config``
    (word embeddings padded; without the non-tensor ``vocab_padded`` flag)."""
    d, v = config.hidden, config.padded_vocab_size
    shapes: dict[str, tuple[int, ...]] = {}
    ours = _our_shapes(config)
    for name, ref, how in _expand(config):
        shape = ours[name]
        if how == "row1":
            shape = (2, *shape)
        shapes[ref] = shape
    shapes[_TYPE_EMBEDDING] = (2, d)
    shapes[_TIED] = (v, d)
    for enc in ("f_encoder", "c_encoder"):
        shapes[f"v_encoder.{enc}.pooler.dense.weight"] = (d, d)
        shapes[f"v_encoder.{enc}.pooler.dense.bias"] = (d,)
    shapes["v_encoder.pad"] = (8, d)
    shapes["v_encoder.f_encoder.pad"] = (8, d)
    return shapes


def _our_shapes(config: HeroConfig) -> dict[str, tuple[int, ...]]:
    from hero_model.pretrain import HeroForPretraining

    with torch.device("meta"):
        model = HeroForPretraining(config)
    return {k: tuple(t.shape) for k, t in model.state_dict().items()}


def _normalise(state: Mapping[str, Any]) -> dict[str, Any]:
    """TF-style ``gamma``/``beta`` LayerNorm names -> ``weight``/``bias``; ``module.`` (DDP)
    prefixes dropped."""
    out = {}
    for k, v in state.items():
        k = k.removeprefix("module.")
        k = re.sub(r"\.gamma$", ".weight", k)
        k = re.sub(r"\.beta$", ".bias", k)
        out[k] = v
    return out


def _read_state(path: str | Path, what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} checkpoint not found")
    if path.suffix == ".safetensors":
        raise CheckpointError(
            f"{path}: .safetensors files are not supported (the safetensors package is not a "
            "dependency); use the PyTorch .bin/.pt state dict"
        )
    return read_state_dict(path)


def _list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _pad_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    if t.shape[0] >= rows:
        return t
    pad = t.new_zeros((rows - t.shape[0], *t.shape[1:]))
    return torch.cat([t, pad])


def convert_hero_state_dict(
    state: Mapping[str, Any], config: HeroConfig, *, source: str = "checkpoint", strict: bool = True
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Reference HERO names -> ours, with :data:`REFERENCE_TABLE`'s conversions.

    Returns (our state dict, report). With ``strict``, raises :class:`CheckpointError` (naming
    ``source``) for names the table does not know, reference names it needs that are missing,
    shapes that differ from ``config``'s, and an LM decoder that differs from the word
    embeddings; without it, logs those and converts what it can.
    """
    state = _normalise(state)
    ours = _our_shapes(config)
    rows = _expand(config)
    problems: list[str] = []
    report = LoadReport()
    type_row = None
    if _TYPE_EMBEDDING in state:
        t = state[_TYPE_EMBEDDING]
        type_row = t[1] if t.shape[0] >= 2 else t[0]  # HERO uses row 1 (type id 1) everywhere
    out: dict[str, torch.Tensor] = {}
    missing = []
    for name, ref, how in rows:
        if ref not in state:
            missing.append(ref)
            continue
        value = state[ref]
        if not isinstance(value, torch.Tensor):
            problems.append(f"{ref} is a {type(value).__name__}, not a tensor")
            continue
        if how == "row1":
            if value.ndim != 2 or value.shape[0] != 2:
                problems.append(f"{ref}: expected a (2, dim) mask table, got {tuple(value.shape)}")
                continue
            if value[0].abs().max() > 0:
                logger.info("%s: dropping row 0 of %s (norm %.3g)", source, ref, value[0].norm())
            value = value[1]
        elif how == "pad_vocab":
            value = _pad_rows(value, config.padded_vocab_size)
        elif how == "fold":
            if type_row is None:
                missing.append(_TYPE_EMBEDDING)
                continue
            if value.ndim == 2 and value.shape[1] == type_row.shape[0]:
                value = value.float() + type_row.float()
        if tuple(value.shape) != ours[name]:
            problems.append(
                f"{ref} has shape {tuple(value.shape)}, the model's {name} {ours[name]}"
                + _shape_hint(name)
            )
            continue
        out[name] = value
    known = {r for _, r, _ in rows} | set(REFERENCE_IGNORED) | {_TYPE_EMBEDDING, _TIED}
    unknown = sorted(k for k in state if k not in known)
    report.ignored = sorted(k for k in state if k in REFERENCE_IGNORED or k not in known)
    if _TIED in state and "encoder.text_embed.word.weight" in out:
        tied = _pad_rows(state[_TIED], config.padded_vocab_size)
        word = out["encoder.text_embed.word.weight"]
        if tied.shape != word.shape or not torch.equal(tied.to(word.dtype), word):
            problems.append(f"{_TIED} differs from the word embeddings; our model ties them")
    missing = sorted(set(missing))
    if missing:
        problems.append(f"missing {len(missing)} reference names: {_list(missing)}")
    if unknown:
        problems.append(
            f"{len(unknown)} names the reference table does not know: {_list(unknown)} "
            "(a finetuned or other model's checkpoint? load it with strict=False)"
        )
    if problems:
        message = f"{source}: cannot load as a HERO checkpoint: " + "; ".join(problems)
        if strict:
            raise CheckpointError(message)
        logger.warning("%s", message)
    report.loaded = sorted(out)
    report.kept = sorted(set(ours) - set(out))
    return out, report


def _shape_hint(name: str) -> str:
    hints = {
        "frame_embed.position": " (set max_clip_steps to the checkpoint's rows)",
        "order_head.out": " (set max_clip_steps to the checkpoint's rows)",
        "text_embed.word": " (vocab_size differs)",
        "mlm_head.bias": " (vocab_size differs)",
        "position": " (max_text_positions / max_step_positions differ)",
    }
    for key, hint in hints.items():
        if key in name:
            return hint
    return ""


def _assign(model: nn.Module, values: Mapping[str, torch.Tensor], source: str) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in values.items():
            target = params.get(name)
            if target is None:
                raise CheckpointError(f"{source}: the model has no parameter {name}")
            if target.shape != value.shape:
                raise CheckpointError(
                    f"{source}: {name} has shape {tuple(value.shape)}, the model "
                    f"{tuple(target.shape)}"
                )
            target.copy_(value)


def _model_config(model: nn.Module) -> HeroConfig:
    config = getattr(model, "config", None)
    if not isinstance(config, HeroConfig) or not isinstance(
        getattr(model, "encoder", None), HeroEncoder
    ):
        raise TypeError(f"expected a HeroForPretraining, got {type(model).__name__}")
    return config


def load_hero_checkpoint(
    model: nn.Module,
    path: str | Path | Mapping[str, Any],
    *,
    strict: bool = True,
    source: str | None = None,
) -> LoadReport:
    """Load a reference HERO checkpoint (e.g. ``hero-tv-ht100.pt``) into ``model``.

    ``model`` is a :class:`~hero_model.pretrain.HeroForPretraining`; ``path`` the file, or an
    already loaded state dict (``source`` then names it in messages). See
    :func:`convert_hero_state_dict` for ``strict`` (for another model holding a HeroEncoder,
    convert and keep the ``encoder.`` entries). Returns a :class:`LoadReport`.
    """
    config = _model_config(model)
    if source is None:
        source = str(path) if not isinstance(path, Mapping) else "state dict"
    state = _read_state(path, "HERO") if not isinstance(path, Mapping) else dict(path)
    values, report = convert_hero_state_dict(state, config, source=source, strict=strict)
    _assign(model, values, source)
    logger.info(
        "%s: loaded %d tensors, kept %d, ignored %d",
        source,
        len(report.loaded),
        len(report.kept),
        len(report.ignored),
    )
    return report


_ROBERTA_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")


def load_roberta_into(model: nn.Module, path: str | Path | Mapping[str, Any]) -> LoadReport:
    """Initialise the Cross-modal Transformer and the text embedder from RoBERTa.

    ``path`` is a local RoBERTa state dict (HuggingFace names, with or without the
    ``roberta.`` prefix) or the dict itself. Loaded: word embeddings (padded to a multiple of
    8), position embeddings plus the token-type vector (which HERO added to tokens and frames:
    it is also added to our frame position table), the embedding LayerNorm, and layers
    ``g-1, 2g-1, ...`` (``g = checkpoint layers / cross_layers``; 1, 3, ..., 11 for 6 of 12)
    into the Cross-modal layers. The LM head and pooler are not loaded (HERO's loader skipped
    them too), nor anything else. Raises :class:`CheckpointError` naming the file when the
    vocabulary, width or positions do not match the model's config.
    """
    config = _model_config(model)
    source = str(path) if not isinstance(path, Mapping) else "state dict"
    raw = _read_state(path, "RoBERTa") if not isinstance(path, Mapping) else dict(path)
    state = {k.removeprefix("roberta."): v for k, v in _normalise(raw).items()}
    needed = [
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
    ]
    lacking = [k for k in needed if k not in state]
    layers = sorted({int(m.group(1)) for k in state if (m := _ROBERTA_LAYER.match(k))})
    if lacking or not layers:
        what = _list(lacking) if lacking else "encoder.layer.N.*"
        raise CheckpointError(
            f"{source}: not a RoBERTa state dict (no {what}; expected HuggingFace names such "
            "as roberta.encoder.layer.0.attention.self.query.weight)"
        )
    n_ckpt, n = len(layers), config.cross_layers
    if layers != list(range(n_ckpt)) or n > n_ckpt:
        raise CheckpointError(
            f"{source}: has layers {layers[0]}..{layers[-1]} ({n_ckpt}); the model needs "
            f"{n} Cross-modal layers from a contiguous stack of at least that many"
        )
    gap = n_ckpt // n
    chosen = [gap * (j + 1) - 1 for j in range(n)]
    word = state["embeddings.word_embeddings.weight"]
    if word.shape[0] != config.vocab_size or word.shape[1] != config.hidden:
        raise CheckpointError(
            f"{source}: word embeddings are {tuple(word.shape)}, the model config has "
            f"vocab_size {config.vocab_size} and hidden {config.hidden}"
        )
    pos = state["embeddings.position_embeddings.weight"]
    if pos.shape[0] != config.max_text_positions:
        raise CheckpointError(
            f"{source}: {pos.shape[0]} position embeddings, the model config has "
            f"max_text_positions {config.max_text_positions}"
        )
    type_vec = state.get("embeddings.token_type_embeddings.weight")
    type_row = type_vec[0] if type_vec is not None else torch.zeros_like(pos[0])
    params = dict(model.named_parameters())
    p = "encoder."
    frame_pos = params[f"{p}frame_embed.position.weight"].detach().clone()
    values = {
        f"{p}text_embed.word.weight": _pad_rows(word, config.padded_vocab_size),
        f"{p}text_embed.position.weight": pos + type_row,
        f"{p}text_embed.norm.weight": state["embeddings.LayerNorm.weight"],
        f"{p}text_embed.norm.bias": state["embeddings.LayerNorm.bias"],
        f"{p}frame_embed.position.weight": frame_pos + type_row.to(frame_pos),
    }
    used = set(needed) | {"embeddings.token_type_embeddings.weight"}
    for dst, src in enumerate(chosen):
        for ours, ref in _LAYER:
            for wb in _WB:
                key = f"encoder.layer.{src}.{ref}.{wb}"
                if key not in state:
                    raise CheckpointError(f"{source}: missing {key}")
                values[f"{p}cross.layers.{dst}.{ours}.{wb}"] = state[key]
                used.add(key)
    _assign(model, values, source)
    report = LoadReport(
        loaded=sorted(values),
        kept=sorted(set(params) - set(values)),
        ignored=sorted(k for k in state if k not in used),
    )
    logger.info(
        "%s: RoBERTa layers %s -> Cross-modal layers 0..%d; %d tensors loaded",
        source,
        chosen,
        n - 1,
        len(values),
    )
    return report
