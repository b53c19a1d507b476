"""Ranking for video corpus moment retrieval: model scores -> TVR submission predictions.

HERO's inference (``eval_vcmr.py``), as pure functions of arrays:

1. Clips are ranked per query by their global (query-clip) score; the first ``top_clips``
   are kept (ties: lower clip index first).
2. Each span ``[s, e]`` (steps, ``e`` inclusive) of a kept clip scores
   ``exp(α · (g − g_max)) · p_start[s] · p_end[e]``, ``g`` the clip's global score and
   ``g_max`` the query's best (``α = 0``: the span probability alone). Only spans inside the
   clip's steps with ``min_pred_l <= e − s < max_pred_l`` count: HERO's
   ``generate_min_max_length_mask`` with its defaults 2 and 16, i.e. moments of 3 to 16 steps.
3. The best ``max_predictions`` spans over all kept clips, best first (ties: better clip,
   then earlier start, then earlier end), become ``[clip index, start s, end s, score]`` with
   ``start = s·L`` and ``end = min((e + 1)·L, clip duration)`` seconds.

VR predictions are the clips in global-score order, ``[clip index, 0, 0, global score]``;
SVMR predictions rank spans inside one given clip (the ground truth's) the same way.
Ranking works in log space, so tiny probabilities do not underflow to ties.

:func:`temporal_nms` is HERO's optional non-maximum suppression (TVR's
``filter_vcmr_by_nms`` / ``post_processing_svmr_nms``): of the first ``max_before``
predictions, per clip, greedily keep the best and drop the later ones overlapping a kept one by
IoU > threshold (at most 100 kept per clip), then order what is left by score and keep the
first ``max_after``. HERO reports retrieval both without NMS and with NMS at IoU 0.5 from the
best 200 (``max_before_nms``) to 100 (``max_after_nms``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from build_benchmarks.evaluate import MAX_PREDICTIONS
from hero_data.configmodel import ConfigModel, Number, Whole, conflict


class RankingConfig(ConfigModel):
    """Settings of :func:`rank_vcmr`, :func:`rank_svmr` and the NMS report.

    Attributes:
        top_clips: clips per query whose spans are ranked (HERO's ``max_vcmr_video``).
        max_predictions: predictions kept per query (TVR scores the first 100; HERO's
            ``max_after_nms``).
        min_pred_l: a span ``[s, e]`` (steps, ``e`` inclusive) needs ``e − s >= min_pred_l``
            (HERO's ``min_pred_l``, 2: at least 3 steps).
        max_pred_l: ... and ``e − s < max_pred_l`` (HERO's ``max_pred_l``, 16: at most 16
            steps); ``None``: no limit.
        alpha: weight ``α`` of the global score in a span's score (HERO's ``q2c_alpha``).
        nms_threshold: IoU above which :func:`temporal_nms` drops a prediction (HERO's
            ``nms_thd``, 0.5); ``None``: no NMS report.
        max_before_nms: predictions ranked per query and handed to NMS (HERO's 200).
        query_batch: queries ranked at once (bounds memory: ``batch · top_clips · T²``).
    """

    top_clips: Whole = Field(100, ge=1)
    max_predictions: Whole = Field(MAX_PREDICTIONS, ge=1)
    min_pred_l: Whole = Field(2, ge=0)
    max_pred_l: Whole | None = 16
    alpha: Number = Field(20.0, ge=0)
    nms_threshold: Number | None = Field(0.5, ge=0, lt=1)
    max_before_nms: Whole = Field(200, ge=1)
    query_batch: Whole = Field(16, ge=1)

    @model_validator(mode="after")
    def _rules(self) -> RankingConfig:
        if self.max_pred_l is not None and self.max_pred_l <= self.min_pred_l:
            raise conflict(
                ["max_pred_l", "min_pred_l"],
                f"max_pred_l ({self.max_pred_l}) must be greater than min_pred_l "
                f"({self.min_pred_l}): no span would be allowed",
            )
        return self

    @property
    def candidates(self) -> int:
        """Predictions to rank per query: enough for the report and for NMS."""
        if self.nms_threshold is None:
            return self.max_predictions
        return max(self.max_predictions, self.max_before_nms)


DEFAULT_RANKING = RankingConfig()
"""HERO's ranking settings (the defaults)."""


@dataclass(frozen=True)
class RankedMoments:
    """Ranked predictions of ``Q`` queries, ``P`` slots each (padding where ``valid`` is False).

    Attributes:
        clip: ``(Q, P)`` clip indices (into the clips given).
        start: ``(Q, P)`` start, seconds (clip-relative).
        end: ``(Q, P)`` end, seconds.
        score: ``(Q, P)`` scores, best first.
        valid: ``(Q, P)`` which slots hold a prediction.
    """

    clip: np.ndarray
    start: np.ndarray
    end: np.ndarray
    score: np.ndarray
    valid: np.ndarray

    def rows(self, q: int) -> list[list[Any]]:
        """Query ``q``'s predictions as ``[clip, start, end, score]`` lists."""
        keep = self.valid[q]
        return [
            [int(c), float(s), float(e), float(x)]
            for c, s, e, x in zip(
                self.clip[q][keep],
                self.start[q][keep],
                self.end[q][keep],
                self.score[q][keep],
                strict=True,
            )
        ]

    def head(self, n: int) -> RankedMoments:
        """The first ``n`` predictions of every query."""
        return RankedMoments(
            self.clip[:, :n],
            self.start[:, :n],
            self.end[:, :n],
            self.score[:, :n],
            self.valid[:, :n],
        )


def _check_inputs(
    start_logprobs: np.ndarray, end_logprobs: np.ndarray, num_frames: np.ndarray
) -> None:
    if start_logprobs.shape != end_logprobs.shape:
        raise ValueError(
            f"start and end log-probabilities differ in shape: {start_logprobs.shape} vs "
            f"{end_logprobs.shape}"
        )
    for name, arr in (("start", start_logprobs), ("end", end_logprobs)):
        if np.isnan(arr).any():
            raise ValueError(f"{name} log-probabilities contain NaN")
    if (num_frames < 1).any() or (num_frames > start_logprobs.shape[-1]).any():
        raise ValueError(f"num_frames must be in 1..{start_logprobs.shape[-1]} (the step axis)")


def _span_mask(steps: int, config: RankingConfig) -> np.ndarray:
    """``(T, T)`` bool: ``[s, e]`` has an allowed length, ``min_pred_l <= e − s < max_pred_l``."""
    s = np.arange(steps)[:, None]
    e = np.arange(steps)[None, :]
    gap = e - s
    ok = gap >= config.min_pred_l
    if config.max_pred_l is not None:
        ok &= gap < config.max_pred_l
    return ok


def _rank_spans(
    weights: np.ndarray,
    clips: np.ndarray,
    start_lp: np.ndarray,
    end_lp: np.ndarray,
    frames: np.ndarray,
    durations: np.ndarray,
    frame_interval: float,
    config: RankingConfig,
) -> RankedMoments:
    """Best spans over ``K`` candidate clips per query.

    ``weights``/``clips``/``frames``/``durations``: ``(Q, K)``; ``start_lp``/``end_lp``:
    ``(Q, K, T)``.
    """
    n_q, k, t = start_lp.shape
    length_ok = _span_mask(t, config)  # (T, T)
    steps = np.arange(t)
    p = min(config.max_predictions, k * t * t)
    out_clip = np.zeros((n_q, p), dtype=np.int64)
    out_start = np.zeros((n_q, p))
    out_end = np.zeros((n_q, p))
    out_score = np.zeros((n_q, p))
    out_valid = np.zeros((n_q, p), dtype=bool)
    for lo in range(0, n_q, config.query_batch):
        hi = min(n_q, lo + config.query_batch)
        inside = steps[None, None, :] < frames[lo:hi, :, None]  # (B, K, T)
        # (B, K, T, T): log score of span [s, e] in clip k
        log_score = (
            weights[lo:hi, :, None, None] + start_lp[lo:hi, :, :, None] + end_lp[lo:hi, :, None, :]
        )
        ok = length_ok[None, None] & inside[:, :, :, None] & inside[:, :, None, :]
        log_score = np.where(ok, log_score, -np.inf).reshape(hi - lo, -1)  # (B, K·T·T)
        order = np.argsort(-log_score, axis=1, kind="stable")[:, :p]  # (B, P)
        best = np.take_along_axis(log_score, order, axis=1)
        kk, ss, ee = np.unravel_index(order, (k, t, t))
        rows = np.arange(hi - lo)[:, None]
        out_clip[lo:hi] = clips[lo:hi][rows, kk]
        out_start[lo:hi] = ss * frame_interval
        out_end[lo:hi] = np.minimum((ee + 1) * frame_interval, durations[lo:hi][rows, kk])
        out_score[lo:hi] = np.exp(best)
        out_valid[lo:hi] = np.isfinite(best)
    return RankedMoments(out_clip, out_start, out_end, out_score, out_valid)


def _durations(
    clip_durations: Sequence[float] | np.ndarray | None, frames: np.ndarray, interval: float
) -> np.ndarray:
    if clip_durations is None:
        return frames * interval
    d = np.asarray(clip_durations, dtype=np.float64)
    if d.shape != frames.shape:
        raise ValueError(f"clip_durations has shape {d.shape}, expected {frames.shape}")
    return d


def rank_vcmr(
    clip_scores: np.ndarray,
    start_logprobs: np.ndarray,
    end_logprobs: np.ndarray,
    num_frames: Sequence[int] | np.ndarray,
    *,
    frame_interval: float,
    clip_durations: Sequence[float] | np.ndarray | None = None,
    config: RankingConfig = DEFAULT_RANKING,
) -> tuple[RankedMoments, RankedMoments]:
    """``(VCMR moments, VR clips)`` for ``Q`` queries over ``N`` clips.

    Args:
        clip_scores: ``(Q, N)`` global query-clip scores (higher is better).
        start_logprobs: ``(Q, N, T)`` log-probability that the moment starts at each step
            (steps past a clip's ``num_frames`` are ignored).
        end_logprobs: ``(Q, N, T)`` log-probability that it ends at each step (inclusive).
        num_frames: ``(N,)`` steps of each clip.
        frame_interval: seconds per step ``L``.
        clip_durations: ``(N,)`` seconds; span ends are cut to them (default ``num_frames·L``).
        config: clips kept, span lengths, α, predictions kept.
    """
    scores = np.asarray(clip_scores, dtype=np.float64)
    start_lp = np.asarray(start_logprobs, dtype=np.float64)
    end_lp = np.asarray(end_logprobs, dtype=np.float64)
    frames = np.asarray(num_frames, dtype=np.int64)
    if scores.ndim != 2 or start_lp.ndim != 3 or start_lp.shape[:2] != scores.shape:
        raise ValueError(
            f"expected clip_scores (Q, N) and log-probabilities (Q, N, T); got {scores.shape} "
            f"and {start_lp.shape}"
        )
    if frames.shape != (scores.shape[1],):
        raise ValueError(f"num_frames has shape {frames.shape}, expected ({scores.shape[1]},)")
    if not np.isfinite(scores).all():
        raise ValueError("clip scores must be finite numbers")
    _check_inputs(start_lp, end_lp, frames)
    if not frame_interval > 0:
        raise ValueError(f"frame_interval must be positive, got {frame_interval}")
    durations = _durations(clip_durations, frames, frame_interval)
    n_q, n = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")  # (Q, N) best clip first
    rows = np.arange(n_q)[:, None]
    top = order[:, : min(config.top_clips, n)]  # (Q, K)
    top_scores = scores[rows, top]
    weights = config.alpha * (top_scores - top_scores[:, :1])  # (Q, K), <= 0
    moments = _rank_spans(
        weights,
        top,
        start_lp[rows, top],
        end_lp[rows, top],
        frames[top],
        durations[top],
        frame_interval,
        config,
    )
    vr_order = order[:, : min(config.max_predictions, n)]
    zeros = np.zeros(vr_order.shape)
    vr = RankedMoments(
        vr_order, zeros, zeros.copy(), scores[rows, vr_order], np.ones(vr_order.shape, bool)
    )
    return moments, vr


def rank_svmr(
    start_logprobs: np.ndarray,
    end_logprobs: np.ndarray,
    clip_index: Sequence[int] | np.ndarray,
    num_frames: Sequence[int] | np.ndarray,
    *,
    frame_interval: float,
    clip_durations: Sequence[float] | np.ndarray | None = None,
    config: RankingConfig = DEFAULT_RANKING,
) -> RankedMoments:
    """Spans inside one clip per query (SVMR: the ground truth's clip).

    Args:
        start_logprobs: ``(Q, T)`` start log-probabilities in that clip.
        end_logprobs: ``(Q, T)`` end log-probabilities.
        clip_index: ``(Q,)`` the clip's index (written into the predictions).
        num_frames: ``(Q,)`` the clip's steps.
        frame_interval: seconds per step.
        clip_durations: ``(Q,)`` seconds (default ``num_frames·L``).
        config: span lengths and predictions kept (``alpha``/``top_clips`` unused).
    """
    start_lp = np.asarray(start_logprobs, dtype=np.float64)
    end_lp = np.asarray(end_logprobs, dtype=np.float64)
    frames = np.asarray(num_frames, dtype=np.int64)
    clips = np.asarray(clip_index, dtype=np.int64)
    if start_lp.ndim != 2 or frames.shape != (start_lp.shape[0],) or clips.shape != frames.shape:
        raise ValueError(
            f"expected (Q, T) log-probabilities with (Q,) clip indices and num_frames; got "
            f"{start_lp.shape}, {clips.shape}, {frames.shape}"
        )
    _check_inputs(start_lp, end_lp, frames)
    durations = _durations(clip_durations, frames, frame_interval)
    return _rank_spans(
        np.zeros((len(frames), 1)),
        clips[:, None],
        start_lp[:, None],
        end_lp[:, None],
        frames[:, None],
        durations[:, None],
        frame_interval,
        config,
    )


def to_submission(
    clip_names: Sequence[str],
    desc_ids: Sequence[Any],
    *,
    vcmr: RankedMoments | None = None,
    svmr: RankedMoments | None = None,
    vr: RankedMoments | None = None,
    descs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A TVR submission: ``video2idx`` (clip name -> index) and the given task lists."""
    if len(set(clip_names)) != len(clip_names):
        raise ValueError("clip names must be unique")
    texts = list(descs) if descs is not None else [""] * len(desc_ids)
    out: dict[str, Any] = {"video2idx": {name: i for i, name in enumerate(clip_names)}}
    for task, ranked in (("VCMR", vcmr), ("SVMR", svmr), ("VR", vr)):
        if ranked is None:
            continue
        if ranked.clip.shape[0] != len(desc_ids):
            raise ValueError(
                f"{task}: {ranked.clip.shape[0]} ranked queries for {len(desc_ids)} ids"
            )
        out[task] = [
            {"desc_id": d, "desc": texts[q], "predictions": ranked.rows(q)}
            for q, d in enumerate(desc_ids)
        ]
    return out


NMS_PER_CLIP = 100
"""At most this many predictions of one clip survive :func:`temporal_nms` (TVR's
``temporal_non_maximum_suppression`` default, which ``filter_vcmr_by_nms`` does not change)."""


def temporal_nms(
    ranked: RankedMoments, *, threshold: float, max_before: int = 200, max_after: int = 100
) -> RankedMoments:
    """HERO's (TVR's) non-maximum suppression of each query's predictions.

    Per query: the first ``max_before`` valid predictions are grouped by clip. In each clip,
    in order of score (ties: the given order), a prediction is kept unless a kept one of the
    same clip overlaps it by IoU > ``threshold``; at most :data:`NMS_PER_CLIP` are kept per
    clip. The kept ones are ordered by score, ties going to the clip that appeared first in the
    given order and then to the given order (TVR sorts the clips' lists, concatenated in order
    of first appearance, with a stable sort), and the first ``max_after`` are returned.

    IoU is TVR's: ``max(0, min(e, e') − max(s, s')) / (max(e, e') − min(s, s'))``, 0 when the
    denominator is 0. Works for VCMR (many clips) and SVMR (one clip) predictions alike.
    """
    if not 0 <= threshold < 1:
        raise ValueError(f"NMS threshold must be in [0, 1), got {threshold}")
    if max_before < 1 or max_after < 1:
        raise ValueError("max_before and max_after must be positive")
    n_q = ranked.clip.shape[0]
    out_clip = np.zeros((n_q, max_after), dtype=np.int64)
    out_start = np.zeros((n_q, max_after))
    out_end = np.zeros((n_q, max_after))
    out_score = np.zeros((n_q, max_after))
    out_valid = np.zeros((n_q, max_after), dtype=bool)
    for q in range(n_q):
        picked = np.flatnonzero(ranked.valid[q])[:max_before]
        clip = ranked.clip[q, picked]
        start, end = ranked.start[q, picked], ranked.end[q, picked]
        score = ranked.score[q, picked]
        _, first_seen = np.unique(clip, return_index=True)
        group = np.searchsorted(np.unique(clip), clip)  # clip -> rank of its value
        group_rank = np.argsort(np.argsort(first_seen))[group]  # clip -> order of first appearance
        order = np.lexsort((np.arange(len(picked)), group_rank, -score))
        suppressed = np.zeros(len(picked), dtype=bool)
        kept_per_clip: dict[int, int] = {}
        kept: list[int] = []
        for i in order:
            c = int(clip[i])
            if suppressed[i] or kept_per_clip.get(c, 0) >= NMS_PER_CLIP:
                continue
            kept.append(i)
            kept_per_clip[c] = kept_per_clip.get(c, 0) + 1
            inter = np.maximum(0.0, np.minimum(end, end[i]) - np.maximum(start, start[i]))
            union = np.maximum(end, end[i]) - np.minimum(start, start[i])
            iou = np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)
            suppressed |= (clip == c) & (iou > threshold)
        keep = np.array(kept[:max_after], dtype=np.int64)
        n = len(keep)
        out_clip[q, :n] = clip[keep]
        out_start[q, :n] = start[keep]
        out_end[q, :n] = end[keep]
        out_score[q, :n] = score[keep]
        out_valid[q, :n] = True
    return RankedMoments(out_clip, out_start, out_end, out_score, out_valid)
