"""The dataset card's figures (what `hero inspect DATASET --plot` draws), checked against the
records they come from."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hero_data.reader import HeroDataset
from hero_data.summary import dataset_card, histogram
from hero_data.types import Cue
from hero_data.writer import DatasetWriter


@pytest.fixture
def dataset(tmp_path, record_factory):
    pseudo = replace(  # a clip without cues: two pseudo-cues own its 8 steps
        record_factory("c", 0, 12.0, n_cues=0, seed=3),
        cues=(Cue(0.0, 7.5, ""), Cue(7.5, 12.0, "")),
        cue_token_ids=((), ()),
        sub2frames=((0, 1, 2, 3, 4), (5, 6, 7)),
        unique_sub2frames=((0, 1, 2, 3, 4), (5, 6, 7)),
        unmatched_frames=(),
    )
    records = [
        record_factory("a", 0, 60.0, n_cues=3),
        record_factory("a", 1, 30.0, n_cues=1, seed=1),
        record_factory("b", 0, 12.0, n_cues=0, seed=2),
        pseudo,
    ]
    with DatasetWriter(tmp_path / "ds", {"frame_interval": 1.5}) as w:
        for r in records:
            w.write(r)
        w.record_failure(video_id="x", source="x.mp4", stage="probe", error_type="DecodeError")
        w.record_failure(video_id="y", source="y.mp4", stage="probe", error_type="DecodeError")
        w.record_failure(video_id="e", source="e.vtt", stage="subtitles", error_type="Bad")
    return HeroDataset.open(tmp_path / "ds"), records


def test_the_card_holds_the_records_figures(dataset):
    ds, records = dataset
    card = dataset_card(ds, thumbnails=6)
    by_id = {r.clip_id: r for r in records}
    order = ds.clip_ids()
    assert card.clip_seconds.values == tuple(by_id[c].clip.duration for c in order)
    assert card.steps.values == tuple(by_id[c].num_frames for c in order)
    real = {c: [x for x in by_id[c].cues if x.text] for c in order}  # pseudo-cues left out
    assert card.cues_per_clip.values == tuple(len(real[c]) for c in order)
    words = [len(c.text.split()) for cid in order for c in real[cid]]
    assert sorted(card.words_per_cue.values) == sorted(words) and len(words) == 4
    assert card.steps_total == 40 + 20 + 8 + 8
    # the unmatched steps, and the 8 steps the pseudo-cues own
    assert card.steps_without_cue == sum(len(r.unmatched_frames) for r in records) + 8
    assert card.share_without_cue == card.steps_without_cue / 76
    assert card.failed_by_reason == {"DecodeError": 2, "Bad": 1}
    # every clip shown (4 < 6), at its middle step's 2D sample time in source seconds
    assert [t[0] for t in card.thumbnails] == order
    for clip_id, source, t in card.thumbnails:
        r = by_id[clip_id]
        assert source == r.source
        assert t == r.clip.start + (r.num_frames // 2 + 0.5) * r.frame_interval


def test_histograms_count_every_value_once():
    h = histogram([0, 1, 1, 3], bins=20)  # small integers: one bin per value
    assert h.edges == (0.0, 1.0, 2.0, 3.0, 4.0) and h.counts == (1, 2, 0, 1)
    h = histogram([0.5, 10.0, 59.9, 60.0], bins=4)
    assert h.edges == (0.5, 15.375, 30.25, 45.125, 60.0) and h.counts == (2, 0, 0, 2)
    assert sum(histogram([7.0] * 5).counts) == 5
    assert histogram([]).counts == (0,)
