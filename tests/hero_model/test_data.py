"""Dataset mixing, the seeded resumable sampler, the per-step plan and the DataLoader wiring."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from hero_data.manifest import DatasetError
from hero_data.writer import DatasetWriter
from hero_model.config import build_config
from hero_model.data import (
    BatchPlan,
    DataMixError,
    MixSampler,
    PretrainBatches,
    describe_sources,
    make_loader,
)

TASKS = ("mlm", "mnce", "fom", "vsm")
RATIOS = (2.0, 2.0, 1.0, 2.0)


@pytest.fixture
def write_dataset(record_factory):
    """``write(root, clips, interval=, tokenizer=)``: a dataset of 12 s clips with 2 cues each."""

    def write(root: Path, clips: int, *, interval: float = 1.5, tokenizer: str = "t1") -> Path:
        config = {"frame_interval": interval, "tokenizer": {"sha256": tokenizer, "vocab_size": 64}}
        with DatasetWriter(root, config) as w:
            for k in range(clips):
                name = f"{root.name}{k}"
                w.write(record_factory(name, 0, 12.0, interval=interval, seed=k, n_cues=2))
        return root

    return write


# -- sampler -------------------------------------------------------------------------------


def test_each_clip_once_per_epoch_without_weights():
    s = MixSampler((5, 3, 4), seed=1)
    assert s.epoch_size == 12 and s.quotas == (5, 3, 4)
    for epoch in range(3):
        seen = s.draws(epoch * 12, 12)
        assert sorted(seen) == sorted((i, r) for i, n in enumerate((5, 3, 4)) for r in range(n))
    # Epochs are shuffled differently.
    assert s.draws(0, 12) != s.draws(12, 12)


def test_sampler_is_a_pure_function_of_seed_and_draw():
    a, b = MixSampler((7, 9), seed=3), MixSampler((7, 9), seed=3)
    assert a.draws(0, 50) == b.draws(0, 50)
    assert [b.locate(k) for k in (49, 3, 17)] == [a.locate(49), a.locate(3), a.locate(17)]
    assert MixSampler((7, 9), seed=4).draws(0, 50) != a.draws(0, 50)


def test_mixing_weights_set_the_share_of_draws():
    s = MixSampler((10, 90), (3.0, 1.0), seed=0)
    assert s.quotas == (75, 25)
    counts = Counter(i for i, _ in s.draws(0, 400))
    assert counts == {0: 300, 1: 100}
    # The small dataset, drawn 7.5 times per epoch, cycles through all its clips evenly.
    rows = Counter(r for i, r in s.draws(0, 400) if i == 0)
    assert set(rows) == set(range(10)) and set(rows.values()) == {30}


def test_weights_round_to_whole_slots_with_at_least_one_each():
    s = MixSampler((3, 3, 4), (1.0, 1.0, 1000.0), seed=0)
    assert sum(s.quotas) == 10 and min(s.quotas) == 1
    with pytest.raises(ValueError, match="every dataset or for none"):
        MixSampler((3, 3), (1.0, None), seed=0)


# -- plan ----------------------------------------------------------------------------------


def test_task_ratios_and_determinism():
    plan = BatchPlan(seed=5, tasks=TASKS, ratios=RATIOS, batch_size=2)
    tasks = [plan.task(s) for s in range(4000)]
    share = {t: n / len(tasks) for t, n in Counter(tasks).items()}
    for t, r in zip(TASKS, RATIOS, strict=True):
        assert share[t] == pytest.approx(r / sum(RATIOS), abs=0.025)
    again = BatchPlan(seed=5, tasks=TASKS, ratios=RATIOS, batch_size=9, world_size=4, rank=3)
    assert [again.task(s) for s in range(200)] == tasks[:200]  # same for every worker
    other = BatchPlan(seed=6, tasks=TASKS, ratios=RATIOS, batch_size=2)
    assert [other.task(s) for s in range(200)] != tasks[:200]


def test_accumulation_and_workers_take_the_same_draws_and_streams():
    one = BatchPlan(seed=1, tasks=TASKS, ratios=RATIOS, batch_size=3, accumulation=2)
    two = [
        BatchPlan(seed=1, tasks=TASKS, ratios=RATIOS, batch_size=3, world_size=2, rank=r)
        for r in range(2)
    ]
    for step in (0, 1, 7):
        for j in range(2):
            assert one.first_draw(step, j) == two[j].first_draw(step, 0)
            assert one.rng(step, j).random() == two[j].rng(step, 0).random()
    # Draws of consecutive steps tile the draw numbers without gaps or overlaps.
    firsts = sorted(one.first_draw(s, a) for s in range(4) for a in range(2))
    assert firsts == list(range(0, 24, 3))
    assert one.rng(3, 0).random() != one.rng(3, 1).random() != one.rng(4, 1).random()


def test_resumed_plan_continues_the_draws():
    full = BatchPlan(seed=0, tasks=TASKS, ratios=RATIOS, batch_size=2, accumulation=2)
    later = BatchPlan(
        seed=0,
        tasks=TASKS,
        ratios=RATIOS,
        batch_size=2,
        accumulation=2,
        start_step=5,
        start_draw=full.draws_before(5),
    )
    for step in (5, 6, 9):
        for a in range(2):
            assert later.first_draw(step, a) == full.first_draw(step, a)
    with pytest.raises(ValueError, match="before this plan's first step"):
        later.first_draw(4, 0)


# -- datasets ------------------------------------------------------------------------------


def test_describe_sources(tmp_path, write_dataset):
    a = write_dataset(tmp_path / "a", 4)
    b = write_dataset(tmp_path / "b", 6)
    sources = describe_sources([a, b], [2, 1])
    assert [(s.clips, s.weight, s.frame_interval) for s in sources] == [
        (4, 2.0, 1.5),
        (6, 1.0, 1.5),
    ]
    assert sources[0].max_token_id == 4  # make_record's cues hold ids k .. k+3


def test_incompatible_or_missing_datasets_are_refused(tmp_path, write_dataset):
    a = write_dataset(tmp_path / "a", 2)
    with pytest.raises(DatasetError, match="no such dataset folder"):
        describe_sources([a, tmp_path / "missing"])
    fine = write_dataset(tmp_path / "fine", 2, interval=1.0)
    with pytest.raises(DataMixError, match=r"frame interval 1 s, but .*a has 1.5 s"):
        describe_sources([a, fine])
    other = write_dataset(tmp_path / "other", 2, tokenizer="t2")
    with pytest.raises(DataMixError, match="another tokenizer"):
        describe_sources([a, other])
    with pytest.raises(DataMixError, match="2 mixing weights for 1 datasets"):
        describe_sources([a], [1, 2])
    with pytest.raises(DataMixError, match="positive"):
        describe_sources([a], [0])
    with pytest.raises(DataMixError, match="named twice"):
        describe_sources([a, tmp_path / "a"])
    with DatasetWriter(tmp_path / "empty", {"frame_interval": 1.5}):
        pass
    with pytest.raises(DataMixError, match="has no clips"):
        describe_sources([tmp_path / "empty"])


# -- loader --------------------------------------------------------------------------------


def _batches(paths, start_step=0, start_draw=0, accumulation=2) -> PretrainBatches:
    sources = describe_sources(paths)
    plan = BatchPlan(
        seed=3,
        tasks=TASKS,
        ratios=RATIOS,
        batch_size=2,
        accumulation=accumulation,
        start_step=start_step,
        start_draw=start_draw,
    )
    return PretrainBatches(
        [s.path for s in sources],
        MixSampler.from_sources(sources, 3),
        plan,
        build_config("tiny"),
        4,
    )


def _same(x, y) -> bool:
    if x.batch is None or y.batch is None:
        return x.batch is y.batch
    return x.batch.keys() == y.batch.keys() and all(
        torch.equal(x.batch[k], y.batch[k]) for k in x.batch
    )


def test_loader_workers_and_resume_give_the_same_batches(tmp_path, write_dataset):
    paths = [write_dataset(tmp_path / "a", 5), write_dataset(tmp_path / "b", 3)]
    batches = _batches(paths)
    assert len(batches) == 8  # 4 steps x 2 micro-batches
    inline = list(make_loader(batches, num_workers=0))
    parallel = list(make_loader(batches, num_workers=2, prefetch_factor=2))
    assert [(m.step, m.micro) for m in parallel] == [(s, a) for s in range(4) for a in range(2)]
    assert all(_same(x, y) for x, y in zip(inline, parallel, strict=True))
    assert {m.task for m in inline} <= set(TASKS)
    assert all(m.clips == 2 and m.feature_steps == 16 and m.tokens == 16 for m in inline)
    # 16 draws over 8 clips: every clip twice.
    drawn = Counter(c for m in inline for c in m.clip_ids)
    assert len(drawn) == 8 and set(drawn.values()) == {2}

    resumed = list(make_loader(_batches(paths, 2, batches.plan.draws_before(2)), num_workers=0))
    assert [(m.step, m.micro) for m in resumed] == [(s, a) for s in (2, 3) for a in range(2)]
    assert all(_same(x, y) for x, y in zip(inline[4:], resumed, strict=True))


def test_loader_leaves_the_global_torch_rng_alone(tmp_path, write_dataset):
    batches = _batches([write_dataset(tmp_path / "a", 3)], accumulation=1)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    next(iter(make_loader(batches, num_workers=0)))
    assert torch.equal(torch.rand(3), expected)
