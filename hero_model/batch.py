"""Batches for HERO's pretraining tasks: clip records in, padded CPU tensors out.

:func:`make_batch` is a pure function of ``(records, task, config, rng state)``: every random
choice (masked tokens and steps, shuffles, VSM queries, whether VSM computes its local loss)
comes from ``rng``, so a trainer that seeds ``rng`` per step reproduces its batches on resume.
Tensors are CPU and picklable, for DataLoader workers.

What the model sees of a record (HERO's ``max_clip_len`` / ``max_txt_len``):

- the first ``config.max_clip_steps`` steps of the clip, feature ``resnet ‖ slowfast`` (float16);
- per cue, its first ``config.max_tokens`` token ids, and the steps ``unique_sub2frames``
  assigns it that are among those steps. A cue whose assigned steps all fall past the cut is
  dropped (it belongs to the part that was cut); a cue with no assigned step at all is kept
  for MLM (text alone) but has nothing to add to the steps.

Keys (B clips, T = longest kept clip, S cue sequences, Lt = longest sequence text, Lf = most
steps in one sequence, Q queries):

============================  =========================================================
``features`` (B, T, F) f16    the steps' features, zero past each clip's end
``step_mask`` (B, T) bool     real steps
``cue_ids`` (S, Lt)           ``<s>`` (MLM) or ``</s>`` (context) then the cue's tokens,
                              padded with ``pad_id`` (HERO's prefixes)
``cue_num_tokens`` (S,)       tokens in ``cue_ids`` including the prefix (>= 1)
``cue_clip`` (S,)             which clip a sequence belongs to
``cue_steps`` (S, Lf)         the clip's steps in the sequence, in order, padded with 0
``cue_num_steps`` (S,)        steps in the sequence (0 for a text-only MLM cue)
``mlm_labels`` (S, Lt)        mlm: original token where predicted, else -1
``mfm_mask`` (B, T) bool      mffr, mnce: masked steps (only real ones)
``fom_order`` (B, T)          fom: position each step is moved to (identity if not shuffled)
``fom_targets`` (B, T)        fom: at a shuffled position, the original index; else -1
``query_ids`` (Q, Lq)         vsm: ``<s>`` then the query cue's tokens, padded
``query_num_tokens`` (Q,)     vsm: tokens in ``query_ids``
``query_clip`` (Q,)           vsm: the clip each query came from
``query_span`` (Q, 2)         vsm: the query cue's first and last step
``vsm_local`` () bool         vsm: whether this batch trains the local (start/end) loss
============================  =========================================================

Sequences: MLM makes one per cue that has tokens (its steps, then ``<s>`` and its masked
tokens); the other tasks make one per cue that owns at least one step (its steps, then
``</s>`` and its tokens; a VSM query cue keeps only ``</s>``: its text leaves the context).

Which records can serve a task: MLM needs a cue with tokens; FOM a clip of at least 2 steps;
VSM a cue with tokens that owns a step. Records that cannot are left out of the batch;
:func:`make_batch` returns ``None`` when none can.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from hero_data.errors import HeroError
from hero_data.schema import ClipRecord
from hero_model.config import HeroConfig

__all__ = ["TASKS", "BatchError", "make_batch", "pad_rows"]

TASKS = ("mlm", "mffr", "mnce", "fom", "vsm")
"""Pretraining tasks, as :meth:`hero_model.pretrain.HeroForPretraining.forward` names them."""


class BatchError(HeroError, ValueError):
    """A clip record that does not fit the model config (features of another width, token ids
    outside its vocabulary): a dataset made for another model or tokenizer. The message
    names the clip."""


@dataclass(frozen=True)
class _Cue:
    tokens: tuple[int, ...]
    steps: tuple[int, ...]  # kept steps, sorted
    cut: bool  # all its steps were past max_clip_steps


@dataclass(frozen=True)
class _Clip:
    features: np.ndarray  # (T, F) float16
    cues: tuple[_Cue, ...]


def _view(record: ClipRecord, config: HeroConfig) -> _Clip:
    cid = record.clip_id
    dim = record.feature_set.dim
    if dim != config.feature_dim:
        raise BatchError(
            f"clip {cid}: features are {dim}-d but the model config takes {config.feature_dim}"
        )
    # A ClipRecord has ceil(duration / L) >= 1 steps (it checks): none is a bug.
    assert record.num_frames > 0, f"clip {cid}: has no feature steps"
    t = min(record.num_frames, config.max_clip_steps)
    feats = np.concatenate([a[:t] for a in record.features.values()], axis=1)  # (t, F)
    n = len(record.cues)  # per-cue columns hold n entries, or none if their stage did not run
    tokens = record.cue_token_ids or ((),) * n
    spans = record.unique_sub2frames or ((),) * n
    cues = []
    for ids, span in zip(tokens, spans, strict=True):
        if ids and (max(ids) >= config.vocab_size or min(ids) < 0):
            bad = max(ids) if max(ids) >= config.vocab_size else min(ids)
            raise BatchError(
                f"clip {cid}: token id {bad} is outside the model's vocabulary "
                f"0..{config.vocab_size - 1} (was the dataset tokenized with another tokenizer?)"
            )
        kept = tuple(sorted(s for s in span if s < t))
        cues.append(_Cue(tuple(ids[: config.max_tokens]), kept, bool(span) and not kept))
    return _Clip(feats, tuple(cues))


def pad_rows(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """``rows`` of ints as one ``(len(rows), longest)`` int64 tensor, right-padded with
    ``value``."""
    if not rows:
        return torch.zeros((0, 0), dtype=torch.int64)
    tensors = [torch.tensor(r, dtype=torch.int64) for r in rows]
    return pad_sequence(tensors, batch_first=True, padding_value=value)  # (B, longest)


def _clip_tensors(clips: Sequence[_Clip]) -> dict[str, torch.Tensor]:
    t = max(c.features.shape[0] for c in clips)
    dim = clips[0].features.shape[1]
    feats = np.zeros((len(clips), t, dim), dtype=np.float16)
    mask = np.zeros((len(clips), t), dtype=bool)
    for i, c in enumerate(clips):
        feats[i, : c.features.shape[0]] = c.features
        mask[i, : c.features.shape[0]] = True
    return {"features": torch.from_numpy(feats), "step_mask": torch.from_numpy(mask)}


def _seq_tensors(
    seqs: Sequence[tuple[int, Sequence[int], Sequence[int]]], pad_id: int
) -> dict[str, torch.Tensor]:
    """(clip index, text ids with prefix, steps) per sequence -> the ``cue_*`` tensors."""
    return {
        "cue_ids": pad_rows([s[1] for s in seqs], pad_id),
        "cue_num_tokens": torch.tensor([len(s[1]) for s in seqs], dtype=torch.int64),
        "cue_clip": torch.tensor([s[0] for s in seqs], dtype=torch.int64),
        "cue_steps": pad_rows([s[2] for s in seqs], 0),
        "cue_num_steps": torch.tensor([len(s[2]) for s in seqs], dtype=torch.int64),
    }


def _context(
    clips: Sequence[_Clip], config: HeroConfig, drop_text: Sequence[set[int]] | None = None
) -> list[tuple[int, list[int], tuple[int, ...]]]:
    """One sequence per cue that owns a kept step: ``</s>`` + tokens (none if dropped)."""
    seqs = []
    for i, clip in enumerate(clips):
        for k, cue in enumerate(clip.cues):
            if not cue.steps:
                continue
            text = [] if drop_text is not None and k in drop_text[i] else list(cue.tokens)
            seqs.append((i, [config.sep_id, *text], cue.steps))
    return seqs


def _mask_tokens(
    tokens: Sequence[int], config: HeroConfig, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """BERT masking: each token picked with ``mlm_prob`` (at least one); a picked one becomes
    ``<mask>`` (80%), a random token (10%) or stays (10%).

    Returns (ids, labels), labels -1 where not picked.
    """
    ids = np.asarray(tokens, dtype=np.int64)
    n = len(ids)
    picked = rng.random(n) < config.mlm_prob
    if not picked.any():
        picked[rng.integers(n)] = True
    how = rng.random(n)
    rand = rng.integers(config.random_token_low, config.random_token_high, size=n)
    out = ids.copy()
    out[picked & (how < 0.8)] = config.mask_id
    swap = picked & (how >= 0.8) & (how < 0.9)
    out[swap] = rand[swap]
    labels = np.where(picked, ids, -1)
    return out.tolist(), labels.tolist()


def _mlm(
    clips: list[_Clip], config: HeroConfig, rng: np.random.Generator
) -> dict[str, torch.Tensor] | None:
    keep = [c for c in clips if any(cue.tokens and not cue.cut for cue in c.cues)]
    if not keep:
        return None
    seqs, labels = [], []
    for i, clip in enumerate(keep):
        for cue in clip.cues:
            if not cue.tokens or cue.cut:
                continue
            ids, lab = _mask_tokens(cue.tokens, config, rng)
            seqs.append((i, [config.cls_id, *ids], cue.steps))
            labels.append([-1, *lab])
    batch = _clip_tensors(keep) | _seq_tensors(seqs, config.pad_id)
    batch["mlm_labels"] = pad_rows(labels, -1)
    return batch


def _mfm(
    clips: list[_Clip], config: HeroConfig, rng: np.random.Generator
) -> dict[str, torch.Tensor] | None:
    batch = _clip_tensors(clips) | _seq_tensors(_context(clips, config), config.pad_id)
    mask = np.zeros(batch["step_mask"].shape, dtype=bool)
    for i, clip in enumerate(clips):
        t = clip.features.shape[0]
        m = rng.random(t) < config.mfm_prob
        if not m.any():
            m[rng.integers(t)] = True
        mask[i, :t] = m
    batch["mfm_mask"] = torch.from_numpy(mask)
    return batch


def _fom(
    clips: list[_Clip], config: HeroConfig, rng: np.random.Generator
) -> dict[str, torch.Tensor] | None:
    keep = [c for c in clips if c.features.shape[0] >= 2]
    if not keep:
        return None
    batch = _clip_tensors(keep) | _seq_tensors(_context(keep, config), config.pad_id)
    b, t = batch["step_mask"].shape
    order = np.tile(np.arange(t, dtype=np.int64), (b, 1))
    targets = np.full((b, t), -1, dtype=np.int64)
    for i, clip in enumerate(keep):
        n = clip.features.shape[0]
        chosen = np.flatnonzero(rng.random(n) < config.fom_prob)
        if len(chosen) < 2:  # at least two, so every clip has something to reorder
            extra = rng.choice(np.setdiff1d(np.arange(n), chosen), 2 - len(chosen), replace=False)
            chosen = np.sort(np.concatenate([chosen, extra]))
        moved_to = rng.permutation(chosen)
        order[i, chosen] = moved_to
        targets[i, moved_to] = chosen
    batch["fom_order"] = torch.from_numpy(order)
    batch["fom_targets"] = torch.from_numpy(targets)
    return batch


def _vsm(
    clips: list[_Clip], config: HeroConfig, rng: np.random.Generator
) -> dict[str, torch.Tensor] | None:
    eligible = [[k for k, cue in enumerate(c.cues) if cue.tokens and cue.steps] for c in clips]
    keep = [i for i, e in enumerate(eligible) if e]
    if not keep:
        return None
    kept = [clips[i] for i in keep]
    queries: list[set[int]] = []
    q_ids, q_clip, q_span = [], [], []
    for j, i in enumerate(keep):
        n = min(config.vsm_queries, len(eligible[i]))
        chosen = sorted(int(k) for k in rng.choice(eligible[i], n, replace=False))
        queries.append(set(chosen))
        for k in chosen:
            cue = clips[i].cues[k]
            q_ids.append([config.cls_id, *cue.tokens])
            q_clip.append(j)
            q_span.append((cue.steps[0], cue.steps[-1]))
    batch = _clip_tensors(kept) | _seq_tensors(_context(kept, config, queries), config.pad_id)
    batch["query_ids"] = pad_rows(q_ids, config.pad_id)
    batch["query_num_tokens"] = torch.tensor([len(q) for q in q_ids], dtype=torch.int64)
    batch["query_clip"] = torch.tensor(q_clip, dtype=torch.int64)
    batch["query_span"] = torch.tensor(q_span, dtype=torch.int64).view(-1, 2)
    batch["vsm_local"] = torch.tensor(bool(rng.random() >= config.vsm_local_drop_prob))
    return batch


_BUILDERS = {"mlm": _mlm, "mffr": _mfm, "mnce": _mfm, "fom": _fom, "vsm": _vsm}


def make_batch(
    records: Sequence[ClipRecord], task: str, config: HeroConfig, rng: np.random.Generator
) -> dict[str, torch.Tensor] | None:
    """Pad and tensorise ``records`` for ``task`` (one of :data:`TASKS`).

    All randomness comes from ``rng``. Returns CPU tensors (keys in the module docstring), or
    ``None`` when no record can serve the task. Raises :class:`BatchError` naming the clip
    for a record whose features or token ids do not fit ``config``. An unknown ``task`` is a
    bug of the caller (the training config checks the tasks it is given): ``ValueError``.
    """
    if task not in _BUILDERS:
        raise ValueError(f"unknown pretraining task {task!r}; tasks: {', '.join(TASKS)}")
    if not records:
        return None
    clips = [_view(r, config) for r in records]
    return _BUILDERS[task](clips, config, rng)
