"""A built benchmark checked against a dataset, tokenized, and turned into padded batches.

What is checked, each failure a :class:`FinetuneError` naming the file and the fault:

- the benchmark folder holds ``train.jsonl`` with records of the task's format (How2R:
  ``desc_id``, ``desc``, ``vid_name``, ``ts`` ``[start, end]``; How2QA: ``qid``, ``q``,
  ``a0`` ... , ``answer_idx``, ``ts`` ``"start-end"``, ``vid_name``), and ``val.jsonl`` or
  ``test.jsonl`` with some to evaluate;
- every ``vid_name`` is a clip of the dataset: records of missing clips are skipped and counted
  when some clips are there, and an error names the missing ids when none is;
- the dataset's cues are tokenized, and the ``--tokenizer`` given for the query and answer
  text is the one the dataset's manifest records (same sha256), so that query and cue ids mean
  the same words.

Batches (CPU tensors; B clips of at most T steps, S cue sequences) carry the keys
:class:`hero_model.model.HeroEncoder` reads: ``features`` (B, T, F) float16, ``step_mask``
(B, T), ``cue_ids`` (S, Lt), ``cue_num_tokens`` (S,), ``cue_clip`` (S,), ``cue_steps`` (S, Lf),
``cue_num_steps`` (S,). A clip keeps its first ``config.max_clip_steps`` steps; each cue that owns
a kept step (``unique_sub2frames``) is one sequence: its steps, then ``</s>`` and its first
``config.max_tokens`` tokens, as in HERO's pretraining context.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from align.tokenizer import CueTokenizer
from build_benchmarks.annotations import BenchmarkError
from build_benchmarks.evaluate import read_jsonl
from build_benchmarks.finetune.config import FinetuneError
from hero_data.grid import step_ceil, step_floor
from hero_data.reader import HeroDataset
from hero_data.schema import ClipRecord
from hero_model.batch import pad_rows
from hero_model.config import HeroConfig

log = logging.getLogger(__name__)

EVAL_SPLITS = ("val", "test")
"""Splits evaluated, when their file has records."""


# --- examples ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One How2R query.

    Attributes:
        desc_id: the query's id in the benchmark.
        desc: its text.
        clip_id: the clip holding its moment.
        ids: ``<s>`` then its first ``max_tokens`` token ids.
        span: first and last step (inclusive) of the moment, inside the clip's kept steps.
        row: the benchmark record, as read.
    """

    desc_id: Any
    desc: str
    clip_id: str
    ids: tuple[int, ...]
    span: tuple[int, int]
    row: dict[str, Any]


@dataclass(frozen=True)
class Question:
    """One How2QA question.

    Attributes:
        qid: the question's id.
        clip_id: the clip it is about.
        candidates: per answer, ``</s>`` question ``</s>`` answer token ids, cut to the text
            position table.
        answer_idx: the correct answer's position.
        span: first and last step of ``ts`` (inclusive), or ``(-1, -1)`` when it has none.
        row: the benchmark record, as read.
    """

    qid: Any
    clip_id: str
    candidates: tuple[tuple[int, ...], ...]
    answer_idx: int
    span: tuple[int, int]
    row: dict[str, Any]


@dataclass
class BenchSplits:
    """The examples of each split (only clips the dataset holds) and what was skipped.

    Attributes:
        examples: split name -> its :class:`Query` or :class:`Question` list.
        rows: split name -> the benchmark records kept (ground truth for the scorer).
        sources: split name -> its file.
        skipped: split name -> records skipped because the dataset lacks their clip.
        missing_clips: the clip ids the dataset lacks (sorted).
    """

    examples: dict[str, list[Any]]
    rows: dict[str, list[dict[str, Any]]]
    sources: dict[str, str]
    skipped: dict[str, int]
    missing_clips: list[str]


# --- tokenizer -----------------------------------------------------------------------------


def dataset_tokenizer(ds: HeroDataset) -> dict[str, Any]:
    """The tokenizer record of ``ds``'s manifest; error if its cues were not tokenized."""
    record = ds.manifest.config.get("tokenizer")
    if not isinstance(record, Mapping) or not record.get("sha256"):
        raise FinetuneError(
            f"{ds.root}: the dataset has no token ids (its manifest records no tokenizer); "
            "rebuild it with `hero run --tokenizer FILE` so that cues and queries can be read"
        )
    return dict(record)


def load_tokenizer(path: str | os.PathLike[str] | None, ds: HeroDataset) -> CueTokenizer:
    """The tokenizer at ``path``, checked to be the one ``ds`` was tokenized with."""
    record = dataset_tokenizer(ds)
    want = str(record["sha256"])
    if path is None:
        raise FinetuneError(
            f"{ds.root}: the query and answer text must be tokenized with the dataset's own "
            f"tokenizer ({record.get('kind', 'tokenizer')}, sha256 {want[:12]}...); give it "
            "with --tokenizer"
        )
    tokenizer = CueTokenizer.from_path(path)
    if tokenizer.sha256 != want:
        raise FinetuneError(
            f"{path}: not the tokenizer the dataset {ds.root} was tokenized with (sha256 "
            f"{tokenizer.sha256[:12]}..., the manifest records {want[:12]}...); token ids "
            "would not mean the same words"
        )
    return tokenizer


# --- reading the benchmark -------------------------------------------------------------------


def _read_split(bench: Path, split: str, required: bool) -> list[dict[str, Any]] | None:
    path = bench / f"{split}.jsonl"
    if not path.is_file():
        if required:
            raise FinetuneError(f"{path}: no such file (is {bench} a built benchmark?)")
        return None
    try:
        return read_jsonl(path, "benchmark")
    except BenchmarkError as e:
        raise FinetuneError(str(e)) from None


def _need(row: Mapping[str, Any], keys: Sequence[str], source: str, n: int) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise FinetuneError(f"{source}: record {n} lacks {', '.join(missing)}")


def moment_steps(start: float, end: float, interval: float, num_steps: int) -> tuple[int, int]:
    """First and last step (inclusive) of ``[start, end]`` seconds, inside ``num_steps`` steps.

    HERO's span labels (``get_st_ed_label``): ``first = floor(start / L)`` and
    ``last = max(ceil(end / L) − 1, first + 1)``, both then clamped to the clip's kept steps
    (so only a moment starting in the last step gets ``last == first``).
    """
    last = num_steps - 1
    first = min(max(step_floor(max(start, 0.0), interval), 0), last)
    final = min(max(step_ceil(max(end, 0.0), interval) - 1, first + 1), last)
    return first, final


def _ids(tokenizer: CueTokenizer, text: str, limit: int, source: str, what: str) -> list[int]:
    ids = tokenizer.encode(text)[:limit]
    if not ids:
        log.debug("%s: %s %r has no tokens", source, what, text)
    return ids


def _check_vocab(ids: Sequence[int], config: HeroConfig, source: str, what: str) -> None:
    if ids and max(ids) >= config.vocab_size:
        raise FinetuneError(
            f"{source}: {what}: token id {max(ids)} is outside the model's vocabulary of "
            f"{config.vocab_size} (a tokenizer of another model?)"
        )


def _query(
    row: dict[str, Any],
    n: int,
    source: str,
    record: ClipRecord,
    tokenizer: CueTokenizer,
    config: HeroConfig,
) -> Query:
    _need(row, ("desc_id", "desc", "vid_name", "ts"), source, n)
    ts = row["ts"]
    if not (
        isinstance(ts, (list, tuple))
        and len(ts) == 2
        and all(isinstance(t, (int, float)) and np.isfinite(t) for t in ts)
    ):
        raise FinetuneError(f"{source}: record {n}: ts must be [start, end] seconds, got {ts!r}")
    text = str(row["desc"])
    ids = [config.cls_id, *_ids(tokenizer, text, config.max_tokens, source, "query")]
    _check_vocab(ids, config, source, f"desc_id {row['desc_id']!r}")
    kept = min(record.num_frames, config.max_clip_steps)
    span = moment_steps(float(ts[0]), float(ts[1]), record.frame_interval, kept)
    return Query(row["desc_id"], text, str(row["vid_name"]), tuple(ids), span, row)


def answer_keys(row: Mapping[str, Any]) -> list[str]:
    """``a0``, ``a1``, ... in order, as many as the record has (4, or more with ``add``)."""
    keys = []
    while f"a{len(keys)}" in row:
        keys.append(f"a{len(keys)}")
    return keys


def _parse_ts(ts: Any) -> tuple[float, float] | None:
    if not isinstance(ts, str):
        return None
    parts = ts.split("-")
    if len(parts) != 2:
        return None
    try:
        start, end = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if not (np.isfinite(start) and np.isfinite(end)) or end < start:
        return None
    return start, end


def qa_text(question: Sequence[int], answer: Sequence[int], config: HeroConfig) -> tuple[int, ...]:
    """``</s>`` question ``</s>`` answer (HERO's QA input), cut to the text position table."""
    ids = [config.sep_id, *question, config.sep_id, *answer]
    return tuple(ids[: config.max_text_positions])


def _question(
    row: dict[str, Any],
    n: int,
    source: str,
    record: ClipRecord,
    tokenizer: CueTokenizer,
    config: HeroConfig,
) -> Question:
    _need(row, ("qid", "q", "vid_name", "answer_idx", "ts", "a0", "a1"), source, n)
    keys = answer_keys(row)
    answer = row["answer_idx"]
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(keys):
        raise FinetuneError(
            f"{source}: qid {row['qid']!r}: answer_idx must index one of its {len(keys)} "
            f"answers, got {answer!r}"
        )
    q_ids = _ids(tokenizer, str(row["q"]), config.max_tokens, source, "question")
    candidates = []
    for key in keys:
        a_ids = _ids(tokenizer, str(row[key]), config.max_tokens, source, "answer")
        ids = qa_text(q_ids, a_ids, config)
        _check_vocab(ids, config, source, f"qid {row['qid']!r}")
        candidates.append(ids)
    ts = _parse_ts(row["ts"])
    kept = min(record.num_frames, config.max_clip_steps)
    span = (-1, -1)
    if ts is not None:
        span = moment_steps(ts[0], ts[1], record.frame_interval, kept)
    else:
        log.debug("%s: qid %r: no usable ts %r; no span loss", source, row["qid"], row["ts"])
    return Question(row["qid"], str(row["vid_name"]), tuple(candidates), int(answer), span, row)


def load_bench(
    task: str,
    bench_dir: str | os.PathLike[str],
    ds: HeroDataset,
    tokenizer: CueTokenizer,
    config: HeroConfig,
) -> tuple[BenchSplits, dict[str, ClipRecord]]:
    """Read, check and tokenize ``train`` and the evaluated splits of the benchmark.

    Returns the splits and the dataset's records of every clip they name.
    """
    bench = Path(bench_dir)
    if not bench.is_dir():
        raise FinetuneError(f"{bench}: no such benchmark folder")
    raw: dict[str, list[dict[str, Any]]] = {}
    train = _read_split(bench, "train", required=True)
    assert train is not None
    raw["train"] = train
    for split in EVAL_SPLITS:
        rows = _read_split(bench, split, required=False)
        if rows:
            raw[split] = rows
    if not raw["train"]:
        raise FinetuneError(f"{bench / 'train.jsonl'}: no records to train on")
    if len(raw) == 1:
        raise FinetuneError(f"{bench}: val.jsonl and test.jsonl hold no records to evaluate")
    names = {split: [str(r.get("vid_name", "")) for r in rows] for split, rows in raw.items()}
    wanted = sorted({c for ids in names.values() for c in ids})
    have = set(ds.clip_ids())
    missing = [c for c in wanted if c not in have]
    if missing and len(missing) == len(wanted):
        shown = ", ".join(missing[:5]) + (
            f" ... ({len(missing)} in all)" if len(missing) > 5 else ""
        )
        raise FinetuneError(
            f"{bench}: none of the benchmark's clips is in the dataset {ds.root} (missing "
            f"{shown}); was the benchmark built for another dataset (hero build --dataset)?"
        )
    records = {c: ds[c] for c in wanted if c in have}
    make = _query if task == "how2r" else _question
    out = BenchSplits({}, {}, {}, {}, missing)
    for split, rows in raw.items():
        source = str(bench / f"{split}.jsonl")
        kept = [(n, r) for n, r in enumerate(rows, 1) if str(r.get("vid_name", "")) in records]
        out.skipped[split] = len(rows) - len(kept)
        if not kept:
            if split == "train":
                raise FinetuneError(
                    f"{source}: none of its {len(rows)} records names a clip of the dataset "
                    f"{ds.root}: nothing to train on"
                )
            log.warning("%s: no record names a clip of %s; not evaluated", source, ds.root)
            continue
        out.sources[split] = source
        out.rows[split] = [r for _, r in kept]
        out.examples[split] = [
            make(r, n, source, records[str(r["vid_name"])], tokenizer, config) for n, r in kept
        ]
    if len(out.examples) == 1:
        raise FinetuneError(
            f"{bench}: no val or test record names a clip of the dataset {ds.root}: nothing to "
            "evaluate"
        )
    if missing:
        log.warning(
            "%s: %d clips are not in the dataset %s (e.g. %s); skipped %s",
            bench,
            len(missing),
            ds.root,
            ", ".join(missing[:3]),
            ", ".join(f"{n} {s} records" for s, n in out.skipped.items() if n),
        )
    return out, records


# --- batches -------------------------------------------------------------------------------


def clip_batch(
    records: Sequence[ClipRecord],
    config: HeroConfig,
    extra_text: Sequence[Sequence[int]] | None = None,
) -> dict[str, torch.Tensor]:
    """The encoder's input for ``records`` (keys in the module docstring).

    ``extra_text[i]``, when given, is appended to the text of every cue of clip ``i`` (HERO's
    video QA appends the question and answer), the whole cut to ``max_text_positions``.
    """
    t = max(min(r.num_frames, config.max_clip_steps) for r in records)
    feats = np.zeros((len(records), t, config.feature_dim), dtype=np.float16)
    mask = np.zeros((len(records), t), dtype=bool)
    seq_ids: list[list[int]] = []
    seq_clip: list[int] = []
    seq_steps: list[list[int]] = []
    for i, r in enumerate(records):
        n = min(r.num_frames, config.max_clip_steps)
        dim = r.feature_set.dim
        if dim != config.feature_dim:
            raise FinetuneError(
                f"clip {r.clip_id}: features are {dim}-d but the model takes {config.feature_dim}"
            )
        lo = 0
        for array in r.features.values():  # the columns side by side, in set order
            feats[i, :n, lo : lo + array.shape[1]] = array[:n]
            lo += array.shape[1]
        mask[i, :n] = True
        tokens = r.cue_token_ids or ((),) * len(r.cues)
        spans = r.unique_sub2frames or ((),) * len(r.cues)
        extra = list(extra_text[i]) if extra_text is not None else []
        for ids, span in zip(tokens, spans, strict=True):
            steps = sorted(s for s in span if s < n)
            if not steps:
                continue
            if ids and max(ids) >= config.vocab_size:
                raise FinetuneError(
                    f"clip {r.clip_id}: token id {max(ids)} is outside the model's vocabulary "
                    f"of {config.vocab_size} (was the dataset tokenized for another model?)"
                )
            text = [config.sep_id, *ids[: config.max_tokens], *extra]
            seq_ids.append(text[: config.max_text_positions])
            seq_clip.append(i)
            seq_steps.append(steps)
    return {
        "features": torch.from_numpy(feats),
        "step_mask": torch.from_numpy(mask),
        "cue_ids": pad_rows(seq_ids, config.pad_id),
        "cue_num_tokens": torch.tensor([len(s) for s in seq_ids], dtype=torch.int64),
        "cue_clip": torch.tensor(seq_clip, dtype=torch.int64),
        "cue_steps": pad_rows(seq_steps, 0),
        "cue_num_steps": torch.tensor([len(s) for s in seq_steps], dtype=torch.int64),
    }


def text_batch(texts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ids (N, L) and lengths (N,) of ``texts``."""
    return pad_rows(texts, pad_id), torch.tensor([len(t) for t in texts], dtype=torch.int64)


def retrieval_batch(
    queries: Sequence[Query],
    records: Mapping[str, ClipRecord],
    config: HeroConfig,
    *,
    local: bool = True,
) -> dict[str, torch.Tensor]:
    """A VSM batch: the queries' clips (each once, in first-seen order) and the queries.

    Adds ``query_ids`` (Q, Lq), ``query_num_tokens`` (Q,), ``query_clip`` (Q,) indexing the
    clips, ``query_span`` (Q, 2) first and last step, ``vsm_local`` (``local``: whether the
    batch trains the start/end loss).
    """
    clips: dict[str, int] = {}
    for q in queries:
        clips.setdefault(q.clip_id, len(clips))
    batch = clip_batch([records[c] for c in clips], config)
    ids, lengths = text_batch([q.ids for q in queries], config.pad_id)
    batch["query_ids"] = ids
    batch["query_num_tokens"] = lengths
    batch["query_clip"] = torch.tensor([clips[q.clip_id] for q in queries], dtype=torch.int64)
    batch["query_span"] = torch.tensor([q.span for q in queries], dtype=torch.int64).view(-1, 2)
    batch["vsm_local"] = torch.tensor(local)
    return batch


def qa_batch(
    questions: Sequence[Question],
    records: Mapping[str, ClipRecord],
    config: HeroConfig,
    *,
    qa_in_cues: bool = True,
) -> dict[str, torch.Tensor]:
    """A video-QA batch: one row per (question, candidate), C = most candidates.

    Keys: the clip keys of :func:`clip_batch` over the B·C rows (row ``b·C + c``: question b's
    clip with candidate c's text appended to its cues when ``qa_in_cues``), ``qa_ids``
    (B·C, Lq) and ``qa_num_tokens`` (B·C,), ``candidate_mask`` (B, C) real candidates,
    ``targets`` (B,) the correct candidate, ``span_targets`` (B, 2) first and last step or -1.
    A missing candidate (a question with fewer answers) gets ``</s>`` alone, masked out.
    """
    c = max(len(q.candidates) for q in questions)
    texts: list[tuple[int, ...]] = []
    rows: list[ClipRecord] = []
    cand_mask = np.zeros((len(questions), c), dtype=bool)
    for b, q in enumerate(questions):
        for k in range(c):
            real = k < len(q.candidates)
            texts.append(q.candidates[k] if real else (config.sep_id,))
            cand_mask[b, k] = real
            rows.append(records[q.clip_id])
    batch = clip_batch(rows, config, texts if qa_in_cues else None)
    ids, lengths = text_batch(texts, config.pad_id)
    batch["qa_ids"] = ids
    batch["qa_num_tokens"] = lengths
    batch["candidate_mask"] = torch.from_numpy(cand_mask)
    batch["targets"] = torch.tensor([q.answer_idx for q in questions], dtype=torch.int64)
    batch["span_targets"] = torch.tensor([q.span for q in questions], dtype=torch.int64).view(-1, 2)
    return batch
