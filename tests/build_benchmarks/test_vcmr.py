"""Ranking model scores into VCMR / SVMR / VR predictions, against a brute-force loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from build_benchmarks.evaluate import evaluate_retrieval
from build_benchmarks.vcmr import RankingConfig, rank_svmr, rank_vcmr, to_submission


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
                    length = e - s + 1
                    if length < cfg.min_span_steps:
                        continue
                    if cfg.max_span_steps is not None and length > cfg.max_span_steps:
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
        RankingConfig(top_clips=3, max_predictions=25, max_span_steps=4, alpha=2.0),
        RankingConfig(top_clips=10, max_predictions=100, min_span_steps=2, max_span_steps=None),
        RankingConfig(top_clips=2, max_predictions=7, alpha=0.0, query_batch=2),
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
        config=RankingConfig(max_predictions=4, max_span_steps=2),
    )
    assert [r[:3] for r in moments.rows(0)] == [[0, 0, 1], [0, 0, 2], [0, 1, 2], [0, 1, 3]]


def test_span_limit_and_short_clips():
    rng = np.random.default_rng(1)
    st = log_softmax(rng.standard_normal((3, 4, 10)))
    ed = log_softmax(rng.standard_normal((3, 4, 10)))
    cfg = RankingConfig(max_predictions=100, max_span_steps=3)
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
    ranked = rank_svmr(st, ed, [4, 1], frames, frame_interval=2.0)
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
    cfg = RankingConfig(max_span_steps=None)
    moments, vr = rank_vcmr(scores, st, ed, [t] * n, frame_interval=1.5, config=cfg)
    svmr = rank_svmr(
        st[np.arange(n_q), gt_clip],
        ed[np.arange(n_q), gt_clip],
        gt_clip,
        [t] * n_q,
        frame_interval=1.5,
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
    with pytest.raises(ValueError, match="max_span_steps"):
        RankingConfig(min_span_steps=3, max_span_steps=2)
