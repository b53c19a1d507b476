"""How2QA: the released CSV annotations -> TVQA-style question records.

Input (no header, one question per record, exactly 7 fields; quote a field holding commas)::

    youtube_id,[start:end],wrong1,wrong2,wrong3,question,correct

with absolute seconds. Output, one JSON object per question (TVQA's fields)::

    {"qid": 3, "q": "...", "a0": "...", "a1": "...", "a2": "...", "a3": "...",
     "answer_idx": 2, "ts": "12.5-30", "vid_name": "abc.3"}

- The moment goes to the 60-second clip ``youtube_id.k`` holding most of it (the earlier clip
  on a tie); a moment crossing a clip boundary is cut to that clip and counted in
  ``crossing_boundary`` (and ``clipped``). ``ts`` is ``"start-end"`` in clip-relative seconds.
  A zero-length moment is kept (``point_moments``): the question still stands.
- The answers are shuffled per question with a generator seeded by ``(seed, qid)``, so the
  order does not depend on which other questions were built; ``answer_idx`` is the correct
  answer's position.
- ``qid`` is the record's running index over all input files (0-based, blank lines included).
- Rejected, with line numbers: unreadable records, too few or too many fields, bad video ids
  or spans, empty texts, a correct answer that is also among the wrong ones
  (``ambiguous_answers``), and with ``--dataset`` clips it does not hold.
- Adversarial matching (:mod:`build_benchmarks.adversarial`) can replace the last ``n`` written
  wrong answers, or add ``n`` more, with correct answers of other questions.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from build_benchmarks.adversarial import (
    MatchingConfig,
    TextScorer,
    TfidfScorer,
    adversarial_matching,
    normalize_answer,
)
from build_benchmarks.annotations import (
    CLIP_SECONDS,
    BuildReport,
    format_seconds,
    parse_span,
)
from build_benchmarks.clips import ClipIndex
from build_benchmarks.outputs import Benchmark
from hero_data.errors import OptionError
from hero_data.types import check_id

log = logging.getLogger(__name__)

_FIELDS = 7
_LAYOUT = "youtube_id,[start:end],wrong1,wrong2,wrong3,question,correct"
WRITTEN_WRONG = 3
"""Wrong answers per question in the release."""


@dataclass(frozen=True)
class AdversarialSettings:
    """How adversarial matching changes the wrong answers.

    Attributes:
        count: wrong answers to take from other questions (matching rounds).
        mode: ``"replace"`` the last ``count`` written wrong answers (``count`` <= 3), or
            ``"add"`` ``count`` answers to the three written ones.
        lam: λ of the matching weight (dissimilarity to the correct answer vs relevance).
        chunk_size: most questions per assignment (``None``: the whole set at once).
    """

    count: int = 1
    mode: Literal["replace", "add"] = "replace"
    lam: float = 1.0
    chunk_size: int | None = 4000

    def __post_init__(self) -> None:
        if self.mode not in ("replace", "add"):
            raise OptionError(f"adversarial mode must be 'replace' or 'add', got {self.mode!r}")
        if self.count < 1:
            raise OptionError(f"adversarial answers per question must be >= 1, got {self.count}")
        if self.mode == "replace" and self.count > WRITTEN_WRONG:
            raise OptionError(
                f"can replace at most {WRITTEN_WRONG} wrong answers, asked for {self.count}"
            )


def choose_clip(start: float, end: float, clip_seconds: float = CLIP_SECONDS) -> tuple[int, int]:
    """``(k, clips touched)``: the clip ``[k·C, (k+1)·C)`` holding most of ``[start, end]``.

    Ties go to the earlier clip; a zero-length moment belongs to the clip its time falls in.
    """
    first = math.floor(start / clip_seconds)
    if end <= start:
        return first, 1
    last = max(first, math.ceil(end / clip_seconds) - 1)
    # Clips strictly between the first and the last are covered whole, so the earliest of them
    # stands for all: three candidates, however long the moment (one of 1e300 s included).
    candidates = sorted({first, min(first + 1, last), last})
    overlaps = [min(end, (k + 1) * clip_seconds) - max(start, k * clip_seconds) for k in candidates]
    best = int(np.argmax(overlaps))
    return candidates[best], last - first + 1


def _shuffled(qid: int, seed: int, wrong: list[str], correct: str) -> tuple[list[str], int]:
    options = [*wrong, correct]
    perm = np.random.default_rng([seed, qid]).permutation(len(options))
    shuffled = [options[int(p)] for p in perm]
    return shuffled, int(np.flatnonzero(perm == len(options) - 1)[0])


def build_how2qa(
    paths: Sequence[str | os.PathLike[str]],
    clips: ClipIndex | None = None,
    *,
    seed: int = 0,
    adversarial: AdversarialSettings | None = None,
    scorer: TextScorer | None = None,
    clip_seconds: float = CLIP_SECONDS,
) -> Benchmark:
    """Read How2QA CSV files into question records (see the module docstring).

    ``scorer`` is used only with ``adversarial`` (default :class:`TfidfScorer`).
    """
    report = BuildReport("how2qa", [str(p) for p in paths])
    if clips is not None:
        report.extra["dataset"] = clips.root
    crossing = points = 0
    kept: list[dict[str, Any]] = []
    videos: list[str] = []
    for src, line, qid, fields in report.csv_rows(paths, _FIELDS):
        if len(fields) != _FIELDS:
            reason = "too_few_fields" if len(fields) < _FIELDS else "too_many_fields"
            hint = "" if len(fields) < _FIELDS else " (quote fields that contain commas)"
            report.reject(
                src, line, reason, f"{len(fields)} fields, expected {_FIELDS}: {_LAYOUT}{hint}"
            )
            continue
        video_id, span, w1, w2, w3, question, correct = (f.strip() for f in fields)
        wrong = [w1, w2, w3]
        try:
            check_id("video id", video_id)
        except ValueError as e:
            report.reject(src, line, "bad_video_id", str(e))
            continue
        try:
            start, end = parse_span(span)
        except ValueError as e:
            report.reject(src, line, "bad_moment", str(e))
            continue
        if end < start:
            report.reject(src, line, "bad_moment", f"moment ends before it starts: {span}")
            continue
        if not question or not correct or not all(wrong):
            report.reject(src, line, "empty_text", "the question or an answer is empty")
            continue
        if normalize_answer(correct) in {normalize_answer(w) for w in wrong}:
            report.reject(
                src,
                line,
                "ambiguous_answers",
                f"the correct answer {correct!r} is also among the wrong answers",
            )
            continue
        k, touched = choose_clip(start, end, clip_seconds)
        clip_id = f"{video_id}.{k}"
        if clips is not None and clip_id not in clips:
            report.reject(src, line, "missing_clip", f"clip {clip_id} is not in the dataset")
            continue
        clip_start = k * clip_seconds
        duration = clips.duration(clip_id) if clips is not None else clip_seconds
        clip_end = clip_start + duration
        if start > clip_end or (start == clip_end and end > start):
            report.reject(
                src,
                line,
                "outside_clip",
                f"moment {span} starts after clip {clip_id} ends ({clip_end:g} s in the dataset)",
            )
            continue
        if touched > 1:
            crossing += 1
        if start < clip_start or end > clip_end:
            report.clipped += 1
        if end == start:
            points += 1
        ts0 = max(start, clip_start) - clip_start
        ts1 = min(end, clip_end) - clip_start
        kept.append(
            {
                "qid": qid,
                "q": question,
                "correct": correct,
                "wrong": wrong,
                "ts": f"{format_seconds(ts0)}-{format_seconds(ts1)}",
                "vid_name": clip_id,
            }
        )
        videos.append(video_id)
        report.written += 1
    report.extra["crossing_boundary"] = crossing
    report.extra["point_moments"] = points
    if adversarial is not None:
        scorer = scorer or TfidfScorer()
        _match(kept, adversarial, scorer, seed)
        report.extra["adversarial"] = {
            "mode": adversarial.mode,
            "count": adversarial.count,
            "lambda": adversarial.lam,
            "chunk_size": adversarial.chunk_size,
            "scorer": type(scorer).__name__,
        }
    rows = []
    for item in kept:
        options, answer_idx = _shuffled(item["qid"], seed, item["wrong"], item["correct"])
        row: dict[str, Any] = {"qid": item["qid"], "q": item["q"]}
        row.update({f"a{i}": text for i, text in enumerate(options)})
        row.update({"answer_idx": answer_idx, "ts": item["ts"], "vid_name": item["vid_name"]})
        rows.append(row)
    report.check()
    log.info(
        "how2qa: %d records, %d written (%d crossing a clip boundary), %d rejected",
        report.input_rows,
        report.written,
        crossing,
        len(report.rejections),
    )
    return Benchmark(rows, videos, report)


def _match(
    kept: list[dict[str, Any]], settings: AdversarialSettings, scorer: TextScorer, seed: int
) -> None:
    """Replace or add wrong answers in ``kept`` (in place) by adversarial matching."""
    keep = WRITTEN_WRONG - settings.count if settings.mode == "replace" else WRITTEN_WRONG
    taken = [item["wrong"][:keep] for item in kept]
    config = MatchingConfig(
        rounds=settings.count, lam=settings.lam, chunk_size=settings.chunk_size, seed=seed
    )
    chosen = adversarial_matching(
        [item["q"] for item in kept], [item["correct"] for item in kept], taken, scorer, config
    )
    for item, picks, base in zip(kept, chosen, taken, strict=True):
        item["wrong"] = [*base, *(kept[j]["correct"] for j in picks)]
