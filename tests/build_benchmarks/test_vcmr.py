"""Ranking model scores into VCMR / SVMR / VR predictions, against a brute-force loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from build_benchmarks.evaluate import evaluate_retrieval
from build_benchmarks.vcmr import (
    RankedMoments,
    RankingConfig,
    rank_svmr,
    rank_vcmr,
    temporal_nms,
    to_submission,
)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def brute_force(scores, st, ed, frames, interval, durations, cfg):
    """Every allowed span of every top clip, scored and sorted in plain Python."""
    out = []
    for q in range(scores.shape[0]):
        clips = sorted(range(scores.shape[1]), key=lambda n: (-scores[q, n], n))[: cfg.top_clips]
        best = scores[q, clips[0]]
        spans = []
        for rank, n in enumerate(clips):
            for s in range(frames[n]):
                for e in range(s, frames[n]):
                    if e - s < cfg.min_pred_l:
                        continue
                    if cfg.max_pred_l is not None and e - s >= cfg.max_pred_l:
                        continue
                    lp = cfg.alpha * (scores[q, n] - best) + st[q, n, s] + ed[q, n, e]
                    spans.append((-lp, rank, s, e, n))
        spans.sort()
        out.append(
            [
                [n, s * interval, min((e + 1) * interval, durations[n]), math.exp(-neg)]
                for neg, _, s, e, n in spans[: cfg.max_predictions]
            ]
        )
    return out


@pytest.mark.parametrize(
    "cfg",
    [
        RankingConfig(top_clips=3, max_predictions=25, min_pred_l=0, max_pred_l=4, alpha=2.0),
        RankingConfig(top_clips=10, max_predictions=100, min_pred_l=1, max_pred_l=None),
        RankingConfig(top_clips=2, max_predictions=7, alpha=0.0, query_batch=2),
        RankingConfig(top_clips=4, max_predictions=60, max_pred_l=5),
    ],
)
def test_matches_brute_force(cfg):
    rng = np.random.default_rng(0)
    n_q, n, t = 5, 6, 8
    scores = rng.standard_normal((n_q, n))
    st = log_softmax(rng.standard_normal((n_q, n, t)))
    ed = log_softmax(rng.standard_normal((n_q, n, t)))
    frames = np.array([8, 5, 8, 3, 8, 1])
    durations = np.array([11.5, 7.5, 12.0, 4.0, 12.0, 1.0])
    moments, vr = rank_vcmr(
        scores, st, ed, frames, frame_interval=1.5, clip_durations=durations, config=cfg
    )
    expected = brute_force(scores, st, ed, frames, 1.5, durations, cfg)
    for q in range(n_q):
        got = moments.rows(q)
        assert [r[:3] for r in got] == [r[:3] for r in expected[q]]
        np.testing.assert_allclose([r[3] for r in got], [r[3] for r in expected[q]], rtol=1e-9)
        scores_q = [r[3] for r in got]
        assert scores_q == sorted(scores_q, reverse=True)
        assert [r[0] for r in vr.rows(q)] == sorted(range(n), key=lambda c: -scores[q, c])


def test_ties_go_to_the_better_clip_then_earlier_spans():
    flat = np.zeros((1, 2, 3))  # equal span probabilities everywhere
    moments, _ = rank_vcmr(
        np.array([[0.5, 0.5]]),
        flat,
        flat,
        [3, 3],
        frame_interval=1.0,
        config=RankingConfig(max_predictions=4, min_pred_l=0, max_pred_l=2),
    )
    assert [r[:3] for r in moments.rows(0)] == [[0, 0, 1], [0, 0, 2], [0, 1, 2], [0, 1, 3]]


def test_span_limit_and_short_clips():
    rng = np.random.default_rng(1)
    st = log_softmax(rng.standard_normal((3, 4, 10)))
    ed = log_softmax(rng.standard_normal((3, 4, 10)))
    cfg = RankingConfig(max_predictions=100, min_pred_l=0, max_pred_l=3)
    frames = [10, 2, 10, 6]
    moments, _ = rank_vcmr(
        rng.standard_normal((3, 4)), st, ed, frames, frame_interval=1.5, config=cfg
    )
    for q in range(3):
        for clip, start, end, _ in moments.rows(q):
            assert 0 < end - start <= 3 * 1.5 + 1e-9
            assert end <= frames[clip] * 1.5
    # fewer valid spans than slots: only real predictions come out
    few, _ = rank_vcmr(
        np.zeros((1, 1)), st[:1, :1], ed[:1, :1], [2], frame_interval=1.5, config=cfg
    )
    assert len(few.rows(0)) == 3  # [0,0], [0,1], [1,1]


def test_svmr_ranks_inside_the_given_clip():
    rng = np.random.default_rng(2)
    st = log_softmax(rng.standard_normal((2, 6)))
    ed = log_softmax(rng.standard_normal((2, 6)))
    frames = [6, 4]
    every = RankingConfig(min_pred_l=0, max_pred_l=None)
    ranked = rank_svmr(st, ed, [4, 1], frames, frame_interval=2.0, config=every)
    for q, clip in enumerate([4, 1]):
        rows = ranked.rows(q)
        assert {r[0] for r in rows} == {clip}
        assert len(rows) == frames[q] * (frames[q] + 1) // 2  # every span, none past the clip
        s, e = round(rows[0][1] / 2), round(rows[0][2] / 2) - 1
        best = max(st[q, a] + ed[q, b] for a in range(frames[q]) for b in range(a, frames[q]))
        assert st[q, s] + ed[q, e] == pytest.approx(best)


def test_round_trip_through_the_scorer():
    # spans peaked on the truth and a global score favouring the right clip: all metrics 100
    n_q, n, t = 4, 5, 40
    gt_clip = [0, 3, 3, 1]
    gt_steps = [(2, 5), (10, 19), (0, 0), (30, 39)]
    scores = np.zeros((n_q, n))
    st = np.full((n_q, n, t), -20.0)
    ed = np.full((n_q, n, t), -20.0)
    for q, (c, (s, e)) in enumerate(zip(gt_clip, gt_steps, strict=True)):
        scores[q, c] = 5.0
        st[q, :, s] = 0.0
        ed[q, :, e] = 0.0
    cfg = RankingConfig(min_pred_l=0, max_pred_l=None)
    moments, vr = rank_vcmr(scores, st, ed, [t] * n, frame_interval=1.5, config=cfg)
    svmr = rank_svmr(
        st[np.arange(n_q), gt_clip],
        ed[np.arange(n_q), gt_clip],
        gt_clip,
        [t] * n_q,
        frame_interval=1.5,
        config=cfg,
    )
    names = [f"vid{i}.0" for i in range(n)]
    sub = to_submission(names, [10, 11, 12, 13], vcmr=moments, svmr=svmr, vr=vr)
    gt = [
        {"desc_id": 10 + q, "vid_name": names[c], "ts": [s * 1.5, (e + 1) * 1.5]}
        for q, (c, (s, e)) in enumerate(zip(gt_clip, gt_steps, strict=True))
    ]
    res = evaluate_retrieval(sub, gt)
    assert all(v == 100.0 for task in res.values() for v in task.values())
    assert sub["video2idx"] == {name: i for i, name in enumerate(names)}


def test_bad_inputs():
    z = np.zeros((1, 2, 4))
    with pytest.raises(ValueError, match="num_frames"):
        rank_vcmr(np.zeros((1, 2)), z, z, [5, 4], frame_interval=1.5)
    with pytest.raises(ValueError, match="differ in shape"):
        rank_vcmr(np.zeros((1, 2)), z, z[..., :3], [4, 3], frame_interval=1.5)
    with pytest.raises(ValueError, match="NaN"):
        rank_vcmr(np.zeros((1, 2)), z * np.nan, z, [4, 4], frame_interval=1.5)
    with pytest.raises(ValueError, match="max_pred_l"):
        RankingConfig(min_pred_l=3, max_pred_l=3)
    with pytest.raises(ValueError, match="min_pred_l must be at least 0, got -1"):
        RankingConfig(min_pred_l=-1)
    with pytest.raises(ValueError, match="nms_threshold"):
        RankingConfig(nms_threshold=1.0)
    with pytest.raises(ValueError, match="max_before_nms must be at least 1, got 0"):
        RankingConfig(max_before_nms=0)


# --- HERO's span rule and NMS -------------------------------------------------------------


def test_default_spans_are_heros_min_max_length_mask():
    # HERO's generate_min_max_length_mask(min_l=2, max_l=16): upper triangle from diagonal 2,
    # minus the one from diagonal 16, i.e. 2 <= e - s < 16 (moments of 3 to 16 steps).
    t = 40
    ones = np.ones((t, t))
    hero_mask = np.triu(ones, k=2) * (1 - np.triu(ones, k=16))
    expected = {(s, e) for s, e in zip(*np.nonzero(hero_mask), strict=True)}
    flat = np.zeros((1, t))
    cfg = RankingConfig(max_predictions=t * t)
    ranked = rank_svmr(flat, flat, [0], [t], frame_interval=1.5, config=cfg)
    got = {(round(r[1] / 1.5), round(r[2] / 1.5) - 1) for r in ranked.rows(0)}
    assert got == expected
    moments, _ = rank_vcmr(np.zeros((1, 2)), flat[:, None].repeat(2, 1), flat[:, None].repeat(
        2, 1), [t, 7], frame_interval=1.5, config=cfg)  # fmt: skip
    lengths = {round((r[2] - r[1]) / 1.5) for r in moments.rows(0)}
    assert lengths == set(range(3, 17))
    assert {r[0] for r in moments.rows(0) if r[2] > 7 * 1.5} == {0}  # none past clip 1's end


def _iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return 0.0 if union == 0 else inter / union


def _reference_one_clip(preds, threshold, cap=100):
    """TVR's temporal NMS of one clip's [start, end, score] lists, as a plain loop."""
    if len(preds) == 1:
        return preds
    left = sorted(preds, key=lambda p: p[2], reverse=True)  # stable for ties
    kept = []
    while len(left) > 1 and len(kept) < cap:
        top, rest = left[0], left[1:]
        left = [p for p in rest if _iou(top, p) <= threshold]
        kept.append(top)
    if len(kept) < cap and left:
        kept.append(left[0])
    return kept


def _reference_nms(rows, threshold, max_before, max_after):
    """TVR's filter_vcmr_by_nms: group by clip (first appearance), NMS each, sort, cut."""
    groups: dict[int, list[list[float]]] = {}
    for clip, start, end, score in rows[:max_before]:
        groups.setdefault(clip, []).append([start, end, score])
    merged = [
        [clip, *p] for clip, preds in groups.items() for p in _reference_one_clip(preds, threshold)
    ]
    return sorted(merged, key=lambda p: p[3], reverse=True)[:max_after]


def _random_ranked(rng, n_q, p, clips, steps, tie_levels):
    """Predictions sorted by score (ties kept in a shuffled order), some rows padded."""
    clip = rng.integers(0, clips, (n_q, p))
    s = rng.integers(0, steps - 1, (n_q, p))
    length = rng.integers(1, 8, (n_q, p))
    start = s * 1.5
    end = np.minimum(s + length, steps) * 1.5
    score = rng.integers(1, tie_levels + 1, (n_q, p)) / tie_levels  # many ties
    order = np.argsort(-score, axis=1, kind="stable")
    take = np.take_along_axis
    valid = np.ones((n_q, p), dtype=bool)
    valid[0, p // 2 :] = False  # a query with fewer predictions
    return RankedMoments(
        take(clip, order, 1), take(start, order, 1), take(end, order, 1), take(score, order, 1),
        valid,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("threshold", "max_before", "max_after", "clips", "tie_levels"),
    [
        (0.5, 200, 100, 6, 5),  # HERO's settings
        (0.5, 60, 100, 3, 1000),
        (0.0, 200, 30, 8, 3),  # any overlap suppresses
        (0.7, 40, 10, 1, 4),  # one clip: SVMR
        (0.9, 300, 150, 1, 50),  # the 100-per-clip cap binds
    ],
)
def test_nms_matches_the_plain_loop(threshold, max_before, max_after, clips, tie_levels):
    rng = np.random.default_rng([int(threshold * 10), max_before, clips])
    steps = 200 if max_after > 100 else 30
    ranked = _random_ranked(rng, 6, 320, clips, steps, tie_levels)
    out = temporal_nms(ranked, threshold=threshold, max_before=max_before, max_after=max_after)
    for q in range(6):
        expected = _reference_nms(ranked.rows(q), threshold, max_before, max_after)
        assert out.rows(q) == expected
    plain = ranked.head(max_after)
    assert any(out.rows(q) != plain.rows(q) for q in range(6))  # it did suppress something
    if max_after > 100:  # the cap: one clip keeps exactly 100
        assert max(np.bincount(out.clip[q][out.valid[q]]).max() for q in range(6)) == 100


def test_nms_ties_go_to_the_clip_seen_first():
    # scores 0.9 (clip 1), 0.5 (clip 2), 0.5 (clip 1): TVR lists clip 1's before clip 2's
    ranked = RankedMoments(
        np.array([[1, 2, 1]]),
        np.array([[0.0, 0.0, 30.0]]),
        np.array([[3.0, 3.0, 33.0]]),
        np.array([[0.9, 0.5, 0.5]]),
        np.ones((1, 3), dtype=bool),
    )
    out = temporal_nms(ranked, threshold=0.5)
    assert [r[0] for r in out.rows(0)] == [1, 1, 2]
    with pytest.raises(ValueError, match="threshold"):
        temporal_nms(ranked, threshold=1.5)
