"""``hero inspect --clip ID --plot``: the timeline picture of one clip (pipelines/plot.py)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from extract.decode import iter_steps, probe
from extract.sampling import sampling_plan
from hero_data.reader import HeroDataset
from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord
from hero_data.types import Clip, Cue
from hero_data.writer import DatasetWriter
from pipelines import plot
from pipelines.cli.main import main
from pipelines.plot import (
    PSEUDO_COLOUR,
    UNMATCHED_COLOUR,
    assigned_cells,
    clip_layout,
    covered_cells,
    cue_colour,
    input_ticks,
    load_inputs,
    load_thumbnails,
    plot_clip,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A dataset of one 9.5 s video with cues (clips video00.0, video00.1, 9 s clips) and a
    4 s video without cues (silent.0), made with the in-process chain (no Ray needed here)."""
    from extract.extractor import ExtractConfig, FeatureExtractor
    from extract.synthetic import make_video
    from pipelines.assemble import clip_records

    root = tmp_path_factory.mktemp("plot")
    extractor = FeatureExtractor(ExtractConfig(random_weights=True, device="cpu"))
    cues = [
        Cue(0.5, 2.8, "crack the eggs", "ANN"),
        Cue(3.2, 6.0, "whisk them"),
        Cue(7.5, 9.4, "across the boundary"),
    ]
    out = root / "ds"
    with DatasetWriter(out, {"test": "plot"}) as writer:
        for name, duration, video_cues in (("video00", 9.5, cues), ("silent", 4.0, [])):
            path = make_video(root / f"{name}.mp4", duration=duration)
            records, _ = clip_records(
                probe(path), extractor.extract(path), video_cues, clip_length=9.0
            )
            writer.write_video(records)
    return out


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


def _shrink(image: np.ndarray, width: int, height: int) -> Image.Image:
    return Image.fromarray(image).resize((width, height), Image.Resampling.BOX)


def _record(cues: list[Cue], sub2frames, unique, unmatched, duration: float = 9.0) -> ClipRecord:
    n = -int(-duration // 1.5)
    return ClipRecord(
        clip=Clip("vid", 2, 18.0, 18.0 + duration),
        source="/nowhere/vid.mp4",
        frame_interval=1.5,
        resnet=np.zeros((n, RESNET_DIM), np.float16),
        slowfast=np.zeros((n, SLOWFAST_DIM), np.float16),
        cues=tuple(cues),
        sub2frames=sub2frames,
        unique_sub2frames=unique,
        unmatched_frames=unmatched,
    )


def test_inspect_plot_writes_a_png_that_grows_with_the_clip(dataset, tmp_path):
    sizes = {}
    for clip_id in ("video00.0", "silent.0"):
        out = tmp_path / f"{clip_id}.png"
        result = CliRunner().invoke(
            main, ["inspect", str(dataset), "--clip", clip_id, "--plot", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert f"plot: {out}" in result.output
        assert f"clip {clip_id}" in result.output  # the step table is still printed
        pixels = _png(out)
        record = HeroDataset.open(dataset)[clip_id]
        layout = clip_layout(record, (224, 398))  # the demo's 320x180 video at short side 224
        assert pixels.shape == (layout.height, layout.width, 3)
        thumb_h = layout.thumbs[1] - layout.thumbs[0]
        assert pixels.shape[0] > thumb_h + 150  # axis, assignment rows, cues and legend below
        assert pixels.shape[1] >= layout.origin + record.num_frames * layout.step_px
        sizes[record.num_frames] = pixels.shape[1]
    assert sizes[6] > sizes[3]


def test_inspect_plot_with_json_keeps_stdout_json(dataset, tmp_path):
    out = tmp_path / "clip.png"
    args = ["inspect", str(dataset), "--clip", "video00.0", "--json", "--plot", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_frames"] == 6
    assert f"plot: {out}" in result.stderr
    _png(out)


# -- the dataset card: `hero inspect DATASET --plot summary.png` -----------------------------


def _card_data(fig) -> dict[str, object]:
    """What a card figure draws, by panel gid: each histogram's (counts, edges), the steps
    with and without a cue (bar widths), the failures (reason -> bar width), each thumbnail's
    image (or None) and title."""
    from matplotlib.patches import StepPatch

    axes = {ax.get_gid(): ax for ax in fig.axes}
    data: dict[str, object] = {}
    for name in ("clip_seconds", "steps", "cues_per_clip", "words_per_cue"):
        (patch,) = [p for p in axes[name].patches if isinstance(p, StepPatch)]
        values, edges, _ = patch.get_data()
        data[name] = (tuple(values.tolist()), tuple(edges.tolist()))
    data["cue_share"] = tuple(p.get_width() for p in axes["cue_share"].patches)
    data["cue_share_title"] = axes["cue_share"].get_title()
    fail = axes["failures"]
    data["failures"] = {
        label.get_text(): p.get_width()
        for label, p in zip(fail.get_yticklabels(), fail.patches, strict=True)
    }
    data["thumbs"] = [
        (
            axes[f"thumb{k}"].get_title(),
            axes[f"thumb{k}"].get_images()[0].get_array().data
            if axes[f"thumb{k}"].get_images()
            else None,
        )
        for k in range(sum(g.startswith("thumb") for g in axes if g))
    ]
    return data


@pytest.fixture
def drawn_cards(monkeypatch) -> list:
    """The figures ``plot_card`` draws in a test."""
    from pipelines import plot_card

    figures = []
    real = plot_card.card_figure

    def spy(card, images=None):
        figures.append(real(card, images))
        return figures[-1]

    monkeypatch.setattr(plot_card, "card_figure", spy)
    return figures


def test_inspect_plot_without_clip_draws_the_dataset_card(dataset, tmp_path, drawn_cards):
    from hero_data.summary import dataset_card

    out = tmp_path / "summary.png"
    result = CliRunner().invoke(main, ["inspect", str(dataset), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert "clips" in result.output and f"plot: {out}" in result.output  # the table, then it
    assert _png(out).shape == (1100, 1200, 3)
    ds = HeroDataset.open(dataset)
    card = dataset_card(ds)
    (fig,) = drawn_cards
    data = _card_data(fig)
    for name in ("clip_seconds", "steps", "cues_per_clip", "words_per_cue"):
        hist = getattr(card, name)
        assert data[name] == (tuple(map(float, hist.counts)), hist.edges), name
    # 9 s, 0.5 s and 4 s clips: 6 + 1 + 3 steps; the silent clip's 3 steps have no cue
    assert card.steps_total == 10 and card.steps_without_cue >= 3
    with_cue = card.steps_total - card.steps_without_cue
    assert data["cue_share"] == (with_cue, card.steps_without_cue)
    assert f"{100 * card.share_without_cue:.1f} % of 10 steps" in data["cue_share_title"]
    assert data["failures"] == {}  # none in this dataset
    # each clip's frame is the decoded 2D sample of its middle step
    assert [t for t, _ in data["thumbs"]] == [f"{c} @ {s:.1f} s" for c, _, s in card.thumbnails]
    for (clip_id, source, _), (_, image) in zip(card.thumbnails, data["thumbs"], strict=True):
        record = ds[clip_id]
        middle = record.num_frames // 2
        steps = iter_steps(source, 1.5, start=record.clip.start, end=record.clip.end)
        np.testing.assert_array_equal(image, list(steps)[middle].image)


def test_card_figure_draws_failures_by_reason_and_no_video_boxes():
    from hero_data.summary import DatasetCard, histogram
    from pipelines.plot_card import card_figure

    card = DatasetCard(
        dataset="/data/ds",
        clip_seconds=histogram([60.0, 60.0, 12.5]),
        steps=histogram([40, 40, 9]),
        cues_per_clip=histogram([3, 0, 1]),
        words_per_cue=histogram([4, 7, 2, 9]),
        steps_total=89,
        steps_without_cue=30,
        failed_by_reason={"DecodeError": 5, "SubtitleError": 2, "Timeout": 7},
        thumbnails=(("a.0", "/gone/a.mp4", 30.75), ("b.0", "/gone/b.mp4", 6.75)),
    )
    data = _card_data(card_figure(card))
    assert data["failures"] == {"Timeout": 7, "DecodeError": 5, "SubtitleError": 2}
    assert data["cue_share"] == (59, 30)
    assert "33.7 % of 89 steps" in data["cue_share_title"]
    for name in ("clip_seconds", "steps", "cues_per_clip", "words_per_cue"):
        hist = getattr(card, name)
        assert data[name] == (tuple(map(float, hist.counts)), hist.edges), name
    assert data["thumbs"] == [("a.0 @ 30.8 s", None), ("b.0 @ 6.8 s", None)]
    with pytest.raises(ValueError, match="1 images for 2 thumbnails"):
        card_figure(card, [None])


def test_card_thumbnails_of_a_missing_video_are_none_with_a_warning(dataset, caplog):
    from hero_data.summary import dataset_card
    from pipelines.plot_card import load_card_thumbnails

    card = dataset_card(HeroDataset.open(dataset))
    moved = dataclasses.replace(
        card, thumbnails=tuple((c, "/nowhere/v.mp4", s) for c, _, s in card.thumbnails)
    )
    with caplog.at_level(logging.WARNING):
        images = load_card_thumbnails(moved, {c: 1.5 for c, _, _ in card.thumbnails})
    assert images == [None] * len(card.thumbnails)
    assert "cannot decode /nowhere/v.mp4" in caplog.text


def test_inspect_plot_card_with_json_and_its_errors(dataset, tmp_path):
    out = tmp_path / "summary.png"
    result = CliRunner().invoke(main, ["inspect", str(dataset), "--json", "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["clips"] == 3 and f"plot: {out}" in result.stderr
    _png(out)
    bad = tmp_path / "no-such-folder" / "summary.png"
    result = CliRunner().invoke(main, ["inspect", str(dataset), "--plot", str(bad)])
    assert result.exit_code == 1 and f"cannot write {bad}" in result.output
    assert "Traceback" not in result.output and not bad.parent.exists()
    result = CliRunner().invoke(
        main, ["inspect", str(dataset), "--plot", str(out), "--mark-inputs"]
    )
    assert result.exit_code == 2 and "give it with --clip ID" in result.output


def test_load_thumbnails_are_the_decoded_2d_samples(dataset):
    ds = HeroDataset.open(dataset)
    whole = [s.image for s in iter_steps(ds["video00.0"].source, 1.5)]  # the whole video
    assert len(whole) == 7
    for clip_id, first in (("video00.0", 0), ("video00.1", 6)):
        record = ds[clip_id]
        thumbs = load_thumbnails(record)
        assert thumbs is not None and len(thumbs) == record.num_frames
        steps = iter_steps(
            record.source, record.frame_interval, start=record.clip.start, end=record.clip.end
        )
        for got, want, global_ in zip(thumbs, steps, whole[first:], strict=False):
            assert got.shape == (224, 398, 3) and got.dtype == np.uint8
            np.testing.assert_array_equal(got, want.image)
            np.testing.assert_array_equal(got, global_)  # the clip's own window of the video


def test_plot_places_each_thumbnail_over_its_step(dataset, tmp_path):
    record = HeroDataset.open(dataset)["video00.0"]
    thumbs = load_thumbnails(record)
    assert thumbs is not None
    pixels = _png(plot_clip(record, tmp_path / "clip.png", thumbnails=thumbs)).astype(np.float64)
    layout = clip_layout(record, thumbs[0].shape)
    for i, thumb in enumerate(thumbs):
        left, top, right, bottom = layout.thumbnail_box(i, thumb.shape)
        x0, x1 = layout.step_columns(i)
        assert x0 <= left < right <= x1 and layout.thumbs[0] <= top < bottom <= layout.thumbs[1]
        assert right - left >= layout.step_px - 4  # a 16:9 frame fills its cell's width
        region = pixels[top:bottom, left:right]
        diffs = [  # against each step's frame, shrunk to the box by another filter
            np.abs(region - np.asarray(_shrink(t, right - left, bottom - top), np.float64)).mean()
            for t in thumbs
        ]
        assert diffs[i] < 4.0, diffs  # resampling differs a little, the picture is the same
        assert diffs[i] == min(diffs), diffs  # and it is this step's frame, not a neighbour's


def test_assigned_cells_take_the_owning_cues_colour(tmp_path):
    # Cue 0 covers steps 0-2 but loses step 2 to cue 1 (HERO's IoU rule); 4 and 5 unmatched.
    cues = [Cue(0.5, 4.0, "crack the eggs", "ANN"), Cue(3.5, 6.0, "whisk them")]
    record = _record(cues, ((0, 1, 2), (2, 3)), ((0, 1), (2, 3)), (4, 5))
    colours = [cue_colour(c, k) for k, c in enumerate(cues)]
    assert colours[0] != colours[1] and UNMATCHED_COLOUR not in colours
    layout = clip_layout(record, None)
    _png(plot_clip(record, tmp_path / "hand.png", thumbnails=None))  # draws these cells
    assigned = assigned_cells(record, layout)
    assert [(c.step, c.cue, c.fill, c.colour) for c in assigned] == [
        (0, 0, "solid", colours[0]),
        (1, 0, "solid", colours[0]),
        (2, 1, "solid", colours[1]),
        (3, 1, "solid", colours[1]),
        (4, None, "unmatched", UNMATCHED_COLOUR),
        (5, None, "unmatched", UNMATCHED_COLOUR),
    ]
    for cell in assigned:  # each in its step's columns, on the assigned row
        x0, x1 = layout.step_columns(cell.step)
        assert x0 < cell.box[0] < cell.box[2] < x1 and cell.box[1::2] == layout.assigned
    # "covers": one slice per covering cue, top to bottom; at step 2 cue 0's slice is only
    # outlined (it covers the step, cue 1 got it), cue 1's is filled.
    covered = covered_cells(record, layout)
    assert [(c.step, c.cue, c.fill) for c in covered] == [
        (0, 0, "solid"),
        (1, 0, "solid"),
        (2, 0, "outline"),
        (2, 1, "solid"),
        (3, 1, "solid"),
    ]
    top, bottom = layout.covered
    (lost, won) = (c for c in covered if c.step == 2)
    assert lost.colour == colours[0] and won.colour == colours[1]
    assert top == lost.box[1] < lost.box[3] < won.box[1] < won.box[3] < bottom
    assert all(c.box[1:4:2] == (top, bottom - 1) for c in covered if c.step != 2)
    # Each cue's bar lies over its [start, end) span; they overlap in time: two lanes.
    assert [p.lane for p in layout.placements] == [0, 1]
    bars = [layout.cue_bar(p) for p in layout.placements]
    for cue, bar in zip(cues, bars, strict=True):
        assert (bar[0], bar[2] + 1) == (layout.x(cue.start), layout.x(cue.end))
        assert layout.cues[0] <= bar[1] < bar[3] <= layout.cues[1]
    assert bars[0][3] <= bars[1][1]  # lane 1 under lane 0
    labels = [p.label for p in layout.placements]
    assert labels == ["c0 ANN: crack the eggs", "c1 whisk them"]


def test_pseudo_cues_are_hatched_grey(tmp_path):
    record = _record([Cue(0.0, 4.0, "")], ((0, 1, 2),), ((0, 1, 2),), (), duration=4.0)
    layout = clip_layout(record, None)
    _png(plot_clip(record, tmp_path / "pseudo.png", thumbnails=None))
    assert layout.placements[0].label == "c0 (pseudo-cue)"
    for cells in (assigned_cells(record, layout), covered_cells(record, layout)):
        assert [(c.step, c.cue, c.fill, c.colour) for c in cells] == [
            (i, 0, "hatched", PSEUDO_COLOUR) for i in range(3)
        ]
    assert PSEUDO_COLOUR not in plot.PALETTE


def test_missing_video_draws_placeholders_and_warns(dataset, tmp_path, caplog):
    record = HeroDataset.open(dataset)["video00.0"]
    gone = dataclasses.replace(record, source=str(tmp_path / "gone.mp4"))
    with caplog.at_level(logging.WARNING, logger="pipelines.plot"):
        assert load_thumbnails(gone) is None
    assert "gone.mp4" in caplog.text and "no such file" in caplog.text
    # Through the command: a dataset whose source video is gone still gets its picture.
    with DatasetWriter(tmp_path / "ds", {"test": True}) as writer:
        writer.write(gone)
    out = tmp_path / "gone.png"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipelines.plot"):
        result = CliRunner().invoke(
            main, ["inspect", str(tmp_path / "ds"), "--clip", "video00.0", "--plot", str(out)]
        )
    assert result.exit_code == 0, result.output
    assert "gone.mp4" in caplog.text
    layout = clip_layout(gone, None)  # no frames: the layout of "no video" boxes
    assert _png(out).shape == (layout.height, layout.width, 3)
    assert layout.title_lines[-1][0].startswith("no video: the source is missing")
    assert not any("no video" in text for text, _ in clip_layout(record, (224, 398)).title_lines)


def test_load_thumbnails_pads_or_truncates_a_decode_of_another_length(
    dataset, tmp_path, caplog, monkeypatch
):
    silent = HeroDataset.open(dataset)["silent.0"]  # a 4 s video: 3 steps
    longer = dataclasses.replace(
        silent,
        clip=Clip("silent", 0, 0.0, 9.0),
        resnet=np.zeros((6, RESNET_DIM), np.float16),
        slowfast=np.zeros((6, SLOWFAST_DIM), np.float16),
        cues=(),
        cue_token_ids=(),
        sub2frames=(),
        unique_sub2frames=(),
        unmatched_frames=(),
    )
    with caplog.at_level(logging.WARNING, logger="pipelines.plot"):
        thumbs = load_thumbnails(longer)
    assert thumbs is not None and len(thumbs) == 6
    assert "decoded 3 steps" in caplog.text and "the clip has 6" in caplog.text
    assert all((t == 128).all() for t in thumbs[3:]) and not (thumbs[2] == 128).all()
    _png(plot_clip(longer, tmp_path / "padded.png", thumbnails=thumbs))

    real = iter_steps
    monkeypatch.setattr(plot, "iter_steps", lambda *a, **k: [*real(*a, **k), *real(*a, **k)])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipelines.plot"):
        thumbs = load_thumbnails(silent)
    assert thumbs is not None and len(thumbs) == 3 and "dropped" in caplog.text


def test_plot_clip_refuses_a_wrong_number_of_thumbnails(tmp_path):
    record = _record([Cue(0.5, 4.0, "x")], ((0, 1, 2),), ((0, 1, 2),), (3, 4, 5))
    with pytest.raises(ValueError, match="5 thumbnails for 6 steps"):
        plot_clip(record, tmp_path / "x.png", thumbnails=[np.zeros((224, 398, 3), np.uint8)] * 5)


# --- the model inputs' frames ------------------------------------------------------------------


def test_load_inputs_is_the_clips_part_of_the_sampling_plan(dataset):
    ds = HeroDataset.open(dataset)
    whole = sampling_plan(ds["video00.0"].source, 1.5, sampling="hero")["steps"]
    for clip_id, first in (("video00.0", 0), ("video00.1", 6)):
        record = ds[clip_id]
        inputs = load_inputs(record, "hero")
        assert inputs == whole[first : first + record.num_frames]
    gone = dataclasses.replace(ds["video00.0"], source="/nowhere/gone.mp4")
    assert load_inputs(gone, "hero") is None


def test_plot_marks_each_input_frame_in_its_lane(dataset, tmp_path):
    record = HeroDataset.open(dataset)["video00.1"]  # clip [9, 9.5) s: one step
    inputs = load_inputs(record, "hero")
    assert inputs is not None
    pixels = _png(plot_clip(record, tmp_path / "c.png", thumbnails=None, inputs=inputs))
    layout = clip_layout(record, None, inputs=True)
    assert pixels.shape == (layout.height, layout.width, 3)
    assert layout.inputs[1] - layout.inputs[0] == 48 and layout.steps[0] > layout.inputs[1]
    assert clip_layout(record, None).steps[0] == layout.thumbs[1] + 2  # no row without inputs
    ticks = input_ticks(record, layout, inputs)
    rows = []
    for key in ("resnet", "slowfast_fast", "slowfast_slow"):
        times = inputs[0][key] if isinstance(inputs[0][key], list) else [inputs[0][key]]
        want = {layout.x(t - record.clip.start): times.count(t) for t in times}
        mine = [t for t in ticks if t.input == key]
        assert {t.x: t.count for t in mine} == want, key
        assert len(mine) == len(set(times))  # one tick per distinct frame
        (row,) = {(t.top, t.bottom) for t in mine}
        assert layout.inputs[0] <= row[0] < row[1] < layout.inputs[1]
        rows.append(row)
    assert rows[0][1] < rows[1][0] and rows[1][1] < rows[2][0]  # lanes top to bottom


def test_inspect_mark_inputs(dataset, tmp_path):
    out = tmp_path / "m.png"
    args = ["inspect", str(dataset), "--clip", "video00.0", "--plot", str(out), "--mark-inputs"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    record = HeroDataset.open(dataset)["video00.0"]
    assert _png(out).shape[0] == clip_layout(record, (224, 398), inputs=True).height
    result = CliRunner().invoke(
        main, ["inspect", str(dataset), "--clip", "video00.0", "--mark-inputs"]
    )
    assert result.exit_code == 2
    assert "--mark-inputs marks the plot: give --plot PNG too" in result.output
