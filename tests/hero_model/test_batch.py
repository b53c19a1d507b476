"""make_batch: layout per task, truncation, determinism, and masking/reordering rates."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from hero_data.schema import RESNET_DIM, ClipRecord
from hero_data.types import Clip, Cue
from hero_model.batch import TASKS, BatchError, make_batch, pad_rows
from hero_model.config import build_config

CFG = build_config("tiny")


def record(
    vid: str, steps: int, spans: list[list[int]], tokens: list[list[int]] | None, seed: int = 0
) -> ClipRecord:
    """A clip of ``steps`` steps whose cue k owns ``spans[k]`` and has ``tokens[k]``."""
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((steps, 4352)).astype(np.float16)
    cues = tuple(
        Cue(1.5 * s[0], 1.5 * (s[-1] + 1), f"c{k}") if s else Cue(0.0, 0.1, f"c{k}")
        for k, s in enumerate(spans)
    )
    return ClipRecord(
        clip=Clip(vid, 0, 0.0, 1.5 * steps),
        source="x",
        frame_interval=1.5,
        features={"resnet": feats[:, :RESNET_DIM], "slowfast": feats[:, RESNET_DIM:]},
        cues=cues,
        cue_token_ids=tuple(tuple(t) for t in tokens) if tokens is not None else (),
        sub2frames=tuple(tuple(s) for s in spans),
        unique_sub2frames=tuple(tuple(s) for s in spans),
    )


def two_clips() -> list[ClipRecord]:
    return [
        record("a", 10, [[0, 1, 2], [3, 4], [7]], [[5, 6, 7], [8], [9, 10, 11, 12]], seed=1),
        record("b", 6, [[1, 2], [], [4, 5]], [[13, 14], [15, 16], [17]], seed=2),
    ]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_context_layout_and_features() -> None:
    recs = two_clips()
    b = make_batch(recs, "mffr", CFG, rng())
    assert b is not None
    assert b["features"].dtype == torch.float16 and b["features"].shape == (2, 10, 4352)
    assert b["step_mask"].sum(1).tolist() == [10, 6]
    assert torch.equal(b["features"][1, :6], torch.from_numpy(recs[1].visual()))
    assert not b["features"][1, 6:].any()
    # one sequence per cue that owns a step: </s> then its tokens; its steps in order
    assert b["cue_clip"].tolist() == [0, 0, 0, 1, 1]
    assert b["cue_num_steps"].tolist() == [3, 2, 1, 2, 2]
    assert b["cue_steps"][0].tolist() == [0, 1, 2] and b["cue_steps"][4, :2].tolist() == [4, 5]
    assert b["cue_num_tokens"].tolist() == [4, 2, 5, 3, 2]
    assert b["cue_ids"][3].tolist() == [CFG.sep_id, 13, 14, CFG.pad_id, CFG.pad_id]
    assert b["mfm_mask"].shape == (2, 10) and not (b["mfm_mask"] & ~b["step_mask"]).any()


def test_mlm_layout() -> None:
    b = make_batch(two_clips(), "mlm", CFG, rng())
    assert b is not None
    # every cue with tokens, including b's cue 1 that owns no step (text alone)
    assert b["cue_clip"].tolist() == [0, 0, 0, 1, 1, 1]
    assert b["cue_num_steps"].tolist() == [3, 2, 1, 2, 0, 2]
    assert (b["cue_ids"][:, 0] == CFG.cls_id).all()
    labels = b["mlm_labels"]
    assert (labels[:, 0] == -1).all()  # the <s> prefix is never predicted
    assert ((labels >= 0).sum(1) >= 1).all()  # at least one token per cue
    real = torch.arange(labels.shape[1])[None] < b["cue_num_tokens"][:, None]
    assert not (labels[~real] >= 0).any()


def test_vsm_layout_queries_leave_the_context() -> None:
    recs = two_clips()
    b = make_batch(recs, "vsm", CFG, rng())
    assert b is not None
    # clip a: 3 eligible cues, clip b: 2 (cue 1 owns no step) -> all become queries (5 max)
    assert b["query_clip"].tolist() == [0, 0, 0, 1, 1]
    assert b["query_span"].tolist() == [[0, 2], [3, 4], [7, 7], [1, 2], [4, 5]]
    assert b["query_ids"][1, :2].tolist() == [CFG.cls_id, 8]
    assert b["query_num_tokens"].tolist() == [4, 2, 5, 3, 2]
    # every context sequence is now </s> alone: the query texts left it
    assert b["cue_num_tokens"].tolist() == [1] * 5
    assert b["vsm_local"].dtype == torch.bool and b["vsm_local"].shape == ()


def test_vsm_picks_at_most_vsm_queries_per_clip() -> None:
    spans = [[i] for i in range(12)]
    recs = [record("a", 12, spans, [[5 + i] for i in range(12)])]
    counts = set()
    for seed in range(20):
        b = make_batch(recs, "vsm", CFG, rng(seed))
        assert b is not None and len(b["query_clip"]) == CFG.vsm_queries
        # queries' texts are gone from the context, the other seven cues keep theirs
        assert (b["cue_num_tokens"] == 1).sum() == CFG.vsm_queries
        counts.add(tuple(b["query_span"][:, 0].tolist()))
    assert len(counts) > 10  # which cues become queries varies with rng


def test_fom_layout() -> None:
    b = make_batch(two_clips(), "fom", CFG, rng())
    assert b is not None
    order, targets, mask = b["fom_order"], b["fom_targets"], b["step_mask"]
    for i in range(2):
        n = int(mask[i].sum())
        assert sorted(order[i, :n].tolist()) == list(range(n))  # a permutation of real steps
        assert order[i, n:].tolist() == list(range(n, order.shape[1]))  # padding stays
        moved = [s for s in range(n) if targets[i, s] >= 0]
        assert len(moved) >= 2
        for s in range(n):  # targets[new position] = original index
            if targets[i, s] >= 0:
                assert order[i, targets[i, s]] == s


def test_none_when_no_record_can_serve() -> None:
    untokenized = record("u", 8, [[0, 1], [2, 3]], None)
    one_step = record("o", 1, [[0]], [[5]])
    assert make_batch([untokenized], "mlm", CFG, rng()) is None
    assert make_batch([untokenized], "vsm", CFG, rng()) is None
    assert make_batch([one_step], "fom", CFG, rng()) is None
    assert make_batch([], "mnce", CFG, rng()) is None
    # records that cannot serve are left out, the others kept
    b = make_batch([untokenized, *two_clips()], "mlm", CFG, rng())
    assert b is not None and b["features"].shape[0] == 2
    # an untokenized clip still serves the frame tasks: its cues add </s> and frames
    b = make_batch([untokenized], "mnce", CFG, rng())
    assert b is not None and b["cue_num_tokens"].tolist() == [1, 1]
    # no cues at all: no sequences, the steps still go through
    bare = replace(untokenized, cues=(), sub2frames=(), unique_sub2frames=())
    b = make_batch([bare], "fom", CFG, rng())
    assert b is not None and b["cue_ids"].shape[0] == 0


def test_truncation_to_max_clip_steps_and_max_tokens() -> None:
    cfg = build_config("tiny", max_clip_steps=8, max_tokens=3)
    rec = record("t", 12, [[0, 1], [6, 7, 8, 9], [10, 11]], [[5, 6, 7, 8, 9], [10], [11]])
    b = make_batch([rec], "mffr", cfg, rng())
    assert b is not None and b["features"].shape[1] == 8
    assert b["cue_num_steps"].tolist() == [2, 2]  # cue 2 lies past the cut: dropped
    assert b["cue_ids"][0].tolist() == [cfg.sep_id, 5, 6, 7]
    b = make_batch([rec], "mlm", cfg, rng())
    assert b is not None and b["cue_clip"].tolist() == [0, 0]


def test_determinism_and_pickling() -> None:
    recs = two_clips()
    for task in TASKS:
        a = make_batch(recs, task, CFG, rng(3))
        b = make_batch(recs, task, CFG, rng(3))
        assert a is not None and b is not None and a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), task
        assert all(v.device.type == "cpu" for v in a.values())
        back = pickle.loads(pickle.dumps(a))
        assert all(torch.equal(a[k], back[k]) for k in a)
    masks = {
        tuple(make_batch(recs, "mnce", CFG, rng(s))["mfm_mask"].flatten().tolist())
        for s in range(8)
    }  # type: ignore[index]
    assert len(masks) > 1


def test_bad_records_and_task() -> None:
    bad_ids = record("bad", 4, [[0]], [[5, 64]])
    with pytest.raises(BatchError, match=r"clip bad.0: token id 64 is outside the model's vocab"):
        make_batch([bad_ids], "mlm", CFG, rng())
    with pytest.raises(ValueError, match=r"unknown pretraining task 'mfm'"):
        make_batch(two_clips(), "mfm", CFG, rng())
    small = build_config("tiny", feature_dim=2048)
    with pytest.raises(BatchError, match=r"clip a.0: features are 4352-d but the model config"):
        make_batch(two_clips(), "fom", small, rng())


# --- rates over many samples (seeded, with tolerances of ~5 standard errors) -------------------


def test_mlm_rates() -> None:
    cfg = build_config("tiny", max_tokens=120, max_text_positions=128)
    tokens = list(range(5, 64)) * 2  # 118 tokens: "at least one" almost never kicks in
    recs = [record(f"m{i}", 4, [[0, 1, 2, 3]], [tokens]) for i in range(4)]
    picked = masked = swapped = kept = total = 0
    generator = rng(0)
    for _ in range(50):
        b = make_batch(recs, "mlm", cfg, generator)
        assert b is not None
        labels, ids = b["mlm_labels"][:, 1:], b["cue_ids"][:, 1:]
        sel = labels >= 0
        total += labels.numel()
        picked += int(sel.sum())
        masked += int((ids[sel] == cfg.mask_id).sum())
        same = ids[sel] == labels[sel]
        kept += int(same.sum())
        other = sel & (ids != cfg.mask_id) & (ids != labels)
        swapped += int(other.sum())
        assert ((ids[other] >= cfg.random_token_low) & (ids[other] < cfg.random_token_high)).all()
        assert torch.equal(labels[sel], torch.tensor(tokens * 4).view(4, -1)[sel])
    p = picked / total
    assert abs(p - 0.15) < 5 * np.sqrt(0.15 * 0.85 / total)
    # a random replacement can draw the original token (1 in 59): it then counts as kept
    for share, expected in ((masked, 0.8), (swapped, 0.1 * 58 / 59), (kept, 0.1 + 0.1 / 59)):
        assert abs(share / picked - expected) < 5 * np.sqrt(expected * (1 - expected) / picked)


def test_mlm_at_least_one_token_per_cue() -> None:
    recs = [record("s", 4, [[0], [1], [2], [3]], [[5], [6], [7], [8]])]
    for seed in range(30):
        b = make_batch(recs, "mlm", CFG, rng(seed))
        assert b is not None and ((b["mlm_labels"] >= 0).sum(1) == 1).all()


def test_mfm_rate_and_at_least_one() -> None:
    recs = [record(f"f{i}", 64, [], []) for i in range(4)]
    generator = rng(1)
    hits = total = 0
    for _ in range(40):
        b = make_batch(recs, "mffr", CFG, generator)
        assert b is not None
        hits += int(b["mfm_mask"].sum())
        total += b["mfm_mask"].numel()
    assert abs(hits / total - 0.15) < 5 * np.sqrt(0.15 * 0.85 / total)
    tiny = [record("t", 2, [], [])]
    for seed in range(20):
        b = make_batch(tiny, "mnce", CFG, rng(seed))
        assert b is not None and int(b["mfm_mask"].sum()) >= 1


def test_fom_rate() -> None:
    recs = [record(f"o{i}", 64, [], []) for i in range(4)]
    generator = rng(2)
    hits = total = 0
    for _ in range(40):
        b = make_batch(recs, "fom", CFG, generator)
        assert b is not None
        hits += int((b["fom_targets"] >= 0).sum())
        total += b["fom_targets"].numel()
    assert abs(hits / total - 0.15) < 5 * np.sqrt(0.15 * 0.85 / total)


def test_vsm_local_rate() -> None:
    generator = rng(4)
    local = [bool(make_batch(two_clips(), "vsm", CFG, generator)["vsm_local"]) for _ in range(400)]  # type: ignore[index]
    share = sum(local) / len(local)
    assert abs(share - (1 - CFG.vsm_local_drop_prob)) < 5 * np.sqrt(0.16 / 400)


@pytest.mark.parametrize(
    ("rows", "value"),
    [
        ([[5, 6, 7], [1], [], [2, 3]], 1),
        ([(4,), (9, 9, 9, 9)], -1),
        ([[], []], 0),
        ([], 1),
        ([[2**40, -3]], 7),
    ],
)
def test_pad_rows_matches_a_plain_loop(rows, value) -> None:
    width = max((len(r) for r in rows), default=0)
    expected = np.full((len(rows), width), value, dtype=np.int64)
    for i, r in enumerate(rows):
        expected[i, : len(r)] = r
    got = pad_rows(rows, value)
    assert got.dtype == torch.int64 and got.shape == expected.shape
    assert np.array_equal(got.numpy(), expected)
