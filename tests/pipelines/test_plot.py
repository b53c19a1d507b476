"""``hero inspect --plot``: the timeline picture of one clip (pipelines/plot.py) and the dataset
card (pipelines/plot_card.py).

The pictures are checked through matplotlib's object model (each row an axes found by its gid,
its patches, images, texts and tick labels), not by their pixels. The plotting tests draw
synthetic records; the ``dataset`` fixture writes real (synthetic) videos, so that frames and
sampling plans are decoded from them, with placeholder features: the plot never reads them.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.colors import to_rgba

from extract.decode import iter_steps, probe
from extract.sampling import sampling_plan
from hero_data.grid import num_steps
from hero_data.reader import HeroDataset
from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord
from hero_data.types import Clip, Cue
from hero_data.writer import DatasetWriter
from pipelines import plot
from pipelines.cli.main import main
from pipelines.plot import (
    END_COLOUR,
    HATCH_COLOUR,
    INPUT_COLOURS,
    MAX_STEP_PX,
    MAX_WIDTH,
    PALETTE,
    PSEUDO_COLOUR,
    PSEUDO_HATCH,
    UNMATCHED_COLOUR,
    clip_figure,
    cue_colour,
    load_inputs,
    load_thumbnails,
    plot_clip,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A dataset of one 9.5 s video with cues (clips video00.0, video00.1, 9 s clips) and a
    4 s video without cues (silent.0). The videos are real files, the features zeros: the
    pictures decode their frames from the sources and never read the features."""
    from extract.extractor import VideoFeatures
    from extract.synthetic import make_video
    from pipelines.assemble import clip_records

    root = tmp_path_factory.mktemp("plot")
    cues = [
        Cue(0.5, 2.8, "crack the eggs", "ANN"),
        Cue(3.2, 6.0, "whisk them"),
        Cue(7.5, 9.4, "across the boundary"),
    ]
    out = root / "ds"
    with DatasetWriter(out, {"test": "plot"}) as writer:
        for name, duration, video_cues in (("video00", 9.5, cues), ("silent", 4.0, [])):
            path = make_video(root / f"{name}.mp4", duration=duration)
            video = probe(path)
            n = num_steps(video.duration, 1.5)
            features = VideoFeatures(
                {
                    "resnet": np.zeros((n, RESNET_DIM), np.float16),
                    "slowfast": np.zeros((n, SLOWFAST_DIM), np.float16),
                },
                1.5,
            )
            records, _ = clip_records(video, features, video_cues, clip_length=9.0)
            writer.write_video(records)
    return out


def _png(path: Path) -> np.ndarray:
    """The RGB pixels of the PNG file ``path`` (which must decode as one)."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(path, format="png")[:, :, :3]


def _record(cues: list[Cue], sub2frames, unique, unmatched, duration: float = 9.0) -> ClipRecord:
    n = -int(-duration // 1.5)
    return ClipRecord(
        clip=Clip("vid", 2, 18.0, 18.0 + duration),
        source="/nowhere/vid.mp4",
        frame_interval=1.5,
        features={
            "resnet": np.zeros((n, RESNET_DIM), np.float16),
            "slowfast": np.zeros((n, SLOWFAST_DIM), np.float16),
        },
        cues=tuple(cues),
        sub2frames=sub2frames,
        unique_sub2frames=unique,
        unmatched_frames=unmatched,
    )


def _axes(fig) -> dict:
    """The figure's rows by gid."""
    return {ax.get_gid(): ax for ax in fig.axes if ax.get_gid()}


def _patches(ax, prefix: str) -> dict:
    """``ax``'s patches whose gid starts with ``prefix``, by gid."""
    return {p.get_gid(): p for p in ax.patches if (p.get_gid() or "").startswith(prefix)}


def _texts(ax) -> list[str]:
    """The texts drawn in ``ax``'s data (not the notes beside it, such as its row labels)."""
    from matplotlib.text import Annotation

    return [t.get_text() for t in ax.texts if not isinstance(t, Annotation)]


def _notes(ax) -> list[str]:
    """The notes ``ax`` places beside its data (annotations)."""
    from matplotlib.text import Annotation

    return [t.get_text() for t in ax.texts if isinstance(t, Annotation)]


def _x_span(patch) -> tuple[float, float]:
    return patch.get_x(), patch.get_x() + patch.get_width()


def _y_span(patch) -> tuple[float, float]:
    return patch.get_y(), patch.get_y() + patch.get_height()


@pytest.fixture
def drawn_clips(monkeypatch) -> list:
    """The figures ``plot_clip`` draws in a test."""
    figures = []
    real = plot.clip_figure

    def spy(record, thumbnails, inputs=None):
        figures.append(real(record, thumbnails, inputs))
        return figures[-1]

    monkeypatch.setattr(plot, "clip_figure", spy)
    return figures


def test_inspect_plot_draws_the_clips_frames_to_a_png(dataset, tmp_path, drawn_clips):
    widths = {}
    for clip_id in ("video00.0", "silent.0"):
        out = tmp_path / f"{clip_id}.png"
        result = CliRunner().invoke(
            main, ["inspect", str(dataset), "--clip", clip_id, "--plot", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert f"plot: {out}" in result.output
        assert f"clip {clip_id}" in result.output  # the step table is still printed
        fig = drawn_clips[-1]
        width, height = fig.get_size_inches() * fig.dpi
        assert _png(out).shape == (round(height), round(width), 3)
        record = HeroDataset.open(dataset)[clip_id]
        # the frames shown are the decoded 2D samples of the clip's steps, in order
        shown = [im.get_array() for im in _axes(fig)["frames"].get_images()]
        thumbs = load_thumbnails(record)
        assert thumbs is not None and len(shown) == record.num_frames == len(thumbs)
        for got, want in zip(shown, thumbs, strict=True):
            np.testing.assert_array_equal(got, want)
        assert fig.texts[0].get_text() == f"clip {clip_id}"
        widths[record.num_frames] = width
    assert widths[6] > widths[3]


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


def _thumbs(shapes) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]


def test_each_frame_fills_its_steps_cell_keeping_its_shape():
    record = _record([Cue(0.5, 4.0, "x")], ((0, 1, 2),), ((0, 1, 2),), (3, 4, 5))
    # 16:9 frames and one 4:3 (the tallest sets the row's height): each keeps its shape
    thumbs = _thumbs([(224, 398)] * 3 + [(224, 298)] + [(224, 398)] * 2)
    fig = clip_figure(record, thumbs)
    frames = _axes(fig)["frames"]
    assert frames.get_xlim() == (0.0, 9.0) and frames.get_ylim() == (0.0, 1.0)
    row_w, row_h = frames.get_position().size * fig.get_size_inches()  # inches
    step_w = row_w / record.num_frames
    assert step_w * fig.dpi == MAX_STEP_PX  # a short clip: the widest steps
    images = frames.get_images()
    assert len(images) == 6
    for i, (image, thumb) in enumerate(zip(images, thumbs, strict=True)):
        np.testing.assert_array_equal(image.get_array(), thumb)
        left, right, bottom, top = image.get_extent()
        assert i * 1.5 < left < right < (i + 1) * 1.5 and -1e-9 <= bottom < top <= 1 + 1e-9
        w_in, h_in = (right - left) / 1.5 * step_w, (top - bottom) * row_h
        assert w_in / h_in == pytest.approx(thumb.shape[1] / thumb.shape[0])
        assert (left + right) / 2 == pytest.approx((i + 0.5) * 1.5)  # centred in the cell
        if i == 3:  # the tallest fills the row's height
            assert (bottom, top) == pytest.approx((0.0, 1.0))
        else:  # the others the cell's width, less a pixel each side
            assert right - left == pytest.approx(1.5 - 2 * 1.5 / MAX_STEP_PX)


def test_assigned_cells_take_the_owning_cues_colour():
    # Cue 0 covers steps 0-2 but loses step 2 to cue 1 (HERO's IoU rule); 4 and 5 unmatched.
    cues = [Cue(0.5, 4.0, "crack the eggs", "ANN"), Cue(3.5, 6.0, "whisk them")]
    record = _record(cues, ((0, 1, 2), (2, 3)), ((0, 1), (2, 3)), (4, 5))
    colours = [to_rgba(cue_colour(c, k)) for k, c in enumerate(cues)]
    assert colours[0] != colours[1] and to_rgba(UNMATCHED_COLOUR) not in colours
    rows = _axes(clip_figure(record, None))
    assigned = _patches(rows["assigned"], "assigned ")
    assert [(g, p.get_facecolor()) for g, p in assigned.items()] == [
        ("assigned 0", colours[0]),
        ("assigned 1", colours[0]),
        ("assigned 2", colours[1]),
        ("assigned 3", colours[1]),
        ("assigned 4", to_rgba(UNMATCHED_COLOUR)),
        ("assigned 5", to_rgba(UNMATCHED_COLOUR)),
    ]
    for i, cell in enumerate(assigned.values()):  # each inside its step
        x0, x1 = _x_span(cell)
        assert i * 1.5 < x0 < x1 < (i + 1) * 1.5 and x1 - x0 > 1.4
    assert _texts(rows["assigned"]) == ["c0", "c0", "c1", "c1", "none", "none"]
    assert rows["assigned"].get_ylabel() == "assigned"
    # "covers": one slice per covering cue, top to bottom; at step 2 cue 0's slice is only
    # outlined (it covers the step, cue 1 got it), cue 1's is filled.
    covers = _patches(rows["covers"], "covers ")
    assert list(covers) == [f"covers {i} c{c}" for i, c in ((0, 0), (1, 0), (2, 0), (2, 1), (3, 1))]
    assert [p.get_fill() for p in covers.values()] == [True, True, False, True, True]
    lost, won = covers["covers 2 c0"], covers["covers 2 c1"]
    assert lost.get_edgecolor() == colours[0] and won.get_facecolor() == colours[1]
    assert 0 <= won.get_y() < _y_span(won)[1] < lost.get_y() < _y_span(lost)[1] <= 1
    assert _y_span(covers["covers 0 c0"]) == pytest.approx((0.02, 0.98))  # the whole row
    for gid, p in covers.items():  # in its step's columns
        step = int(gid.split()[1])
        assert _x_span(p) == _x_span(assigned[f"assigned {step}"])


def test_cue_bars_lie_over_their_spans_in_lanes_that_do_not_collide():
    cues = [Cue(0.5, 4.0, "crack the eggs", "ANN"), Cue(3.5, 6.0, "whisk them")]
    record = _record(cues, ((0, 1, 2), (2, 3)), ((0, 1), (2, 3)), (4, 5))
    fig = clip_figure(record, None)
    row = _axes(fig)["cues"]
    bars = _patches(row, "cue ")
    assert [_x_span(b) for b in bars.values()] == [pytest.approx(s) for s in ((0.5, 4), (3.5, 6))]
    assert [b.get_facecolor() for b in bars.values()] == [to_rgba(PALETTE[0]), to_rgba(PALETTE[1])]
    # they overlap in time: two lanes, lane 1 under lane 0 (the y axis points down)
    assert row.get_ylim() == (2.0, 0.0)
    assert _y_span(bars["cue 0"])[1] <= 1 <= bars["cue 1"].get_y()
    assert _texts(row) == ["c0 ANN: crack the eggs", "c1 whisk them"]
    assert [t.get_gid() for t in row.texts if t.get_gid()] == ["cue 0", "cue 1"]

    # Forty cues with long labels on a 60 s clip: drawn, no label overlaps another bar or
    # label of its lane, and all stay inside the picture.
    many = [Cue(k * 1.4, k * 1.4 + 1.2, f"cue number {k} says something") for k in range(40)]
    spans = tuple((k,) for k in range(40))
    fig = clip_figure(_record(many, spans, spans, (), duration=60.0), None)
    fig.canvas.draw()
    row = _axes(fig)["cues"]
    lanes: dict[float, list[tuple[float, float]]] = {}
    for k in range(40):
        bar = _patches(row, f"cue {k}")[f"cue {k}"]
        (label,) = [t for t in row.texts if t.get_gid() == f"cue {k}"]
        for box in (bar.get_window_extent(), label.get_window_extent()):
            lanes.setdefault(bar.get_y(), []).append((box.x0, box.x1))
            assert box.x0 >= 0 and box.x1 <= fig.bbox.width
    assert len(lanes) > 1
    for boxes in lanes.values():
        boxes.sort()
        for (_, end), (start, _) in itertools.pairwise(boxes):
            assert end <= start + 0.5, boxes  # touching at most (rounding)


def test_pseudo_cues_are_hatched_grey():
    record = _record([Cue(0.0, 4.0, "")], ((0, 1, 2),), ((0, 1, 2),), (), duration=4.0)
    fig = clip_figure(record, None)
    rows = _axes(fig)
    cells = [
        *_patches(rows["assigned"], "assigned ").values(),
        *_patches(rows["covers"], "covers ").values(),
        *_patches(rows["cues"], "cue ").values(),
    ]
    assert len(cells) == 7
    for cell in cells:
        assert cell.get_facecolor() == to_rgba(PSEUDO_COLOUR)
        assert cell.get_hatch() == PSEUDO_HATCH and cell.get_edgecolor() == to_rgba(HATCH_COLOUR)
    assert _texts(rows["cues"]) == ["c0 (pseudo-cue)"]
    assert PSEUDO_COLOUR not in PALETTE
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "pseudo-cue (empty text)" in legend


def test_title_time_axis_step_indices_and_legend():
    # 8.2 s: the last of 6 steps is short, a dashed red line marks the clip's end
    record = _record([Cue(0.5, 4.0, "x")], ((0, 1, 2),), ((0, 1, 2),), (3, 4, 5), duration=8.2)
    fig = clip_figure(record, _thumbs([(224, 398)] * 6))
    assert [t.get_text() for t in fig.texts if t.get_gid() == "title"] == [
        "clip vid.2",
        "source: /nowhere/vid.mp4",
        "[18, 26.2) source seconds (8.2 s) · 6 steps of L = 1.5 s · 1 cue",
    ]
    rows = _axes(fig)
    # top to bottom: frames, assigned, covers, cues (no inputs row without inputs)
    assert sorted(rows, key=lambda g: -rows[g].get_position().y0) == [
        "frames",
        "assigned",
        "covers",
        "cues",
    ]
    (steps,) = [a for a in rows["frames"].child_axes if a.get_gid() == "steps"]  # above it
    assert [t.get_text() for t in steps.get_xticklabels()] == [str(i) for i in range(6)]
    assert list(steps.get_xticks()) == [(i + 0.5) * 1.5 for i in range(6)]
    fig.canvas.draw()  # the time axis' labels are made when drawn
    axis = rows["cues"]
    labels = [t.get_text() for t in axis.get_xticklabels() if 0 <= t.get_position()[0] <= 9]
    assert labels == [f"{t}\n{18 + t}" for t in range(10)]  # clip seconds over source seconds
    assert all(rows[g].get_xlim() == (0.0, 9.0) for g in ("frames", "assigned", "covers"))
    for gid in ("frames", "assigned", "covers", "cues"):
        (end,) = [line for line in rows[gid].lines if line.get_gid() == "clip_end"]
        assert end.get_xdata() == [8.2, 8.2] and end.get_color() == END_COLOUR
    assert _notes(rows["frames"]) == ["step", "clip end (8.2 s)"]
    assert _notes(axis) == ["clip s\nsource s"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "cue bar, its colour",
        "step assigned to the cue (c<k> on it)",
        "covered by the cue, not assigned",
        "step no cue was assigned",
        "clip end (short last step)",
    ]
    legend = fig.legends[0].get_window_extent()  # (drawn above) in columns that fit the width
    assert legend.x1 <= fig.bbox.width and legend.y0 >= 0
    whole = clip_figure(_record([Cue(0.5, 4.0, "x")], ((0, 1, 2),), ((0, 1, 2),), (3, 4, 5)), None)
    assert not any(line.get_gid() == "clip_end" for ax in whole.axes for line in ax.lines)
    assert len(whole.legends[0].get_texts()) == 4


def test_a_long_clip_narrows_its_steps_to_fit_the_width(tmp_path):
    def step_px(fig, n: int) -> float:
        return _axes(fig)["frames"].get_position().width * fig.get_size_inches()[0] * fig.dpi / n

    # 400 steps: narrower steps, the picture as wide as allowed (less than one step's rounding)
    record = _record([], (), (), tuple(range(400)), duration=600.0)
    fig = clip_figure(record, None)
    assert MAX_WIDTH - 400 < fig.get_size_inches()[0] * fig.dpi <= MAX_WIDTH
    assert step_px(fig, 400) == pytest.approx(round(step_px(fig, 400)))  # whole pixels
    assert step_px(fig, 400) < MAX_STEP_PX
    # 1000 steps would be narrower than MIN_STEP_PX: the picture grows instead
    many = clip_figure(_record([], (), (), tuple(range(1000)), duration=1500.0), None)
    assert step_px(many, 1000) == pytest.approx(plot.MIN_STEP_PX)
    assert _texts(_axes(fig)["cues"]) == ["(no cues)"]
    assert _texts(_axes(fig)["assigned"]) == []  # "none" does not fit in a 9-pixel cell
    out = plot_clip(record, tmp_path / "long.png", thumbnails=None)
    width, height = fig.get_size_inches() * fig.dpi
    assert _png(out).shape == (round(height), round(width), 3)


def test_missing_video_draws_placeholders_and_warns(dataset, tmp_path, caplog, drawn_clips):
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
    (fig,) = drawn_clips
    _png(out)
    frames = _axes(fig)["frames"]
    assert frames.get_images() == []
    boxes = _patches(frames, "no video ")
    assert [_x_span(b)[0] // 1.5 for b in boxes.values()] == list(range(6))
    assert _texts(frames).count("no video") == 6
    (warning,) = [t for t in fig.texts if t.get_text().startswith("no video: the source is")]
    assert warning.get_gid() == "title" and warning.get_color() == END_COLOUR
    shown = clip_figure(record, load_thumbnails(record))
    assert not any(t.get_text().startswith("no video") for t in shown.texts)


def test_load_thumbnails_pads_or_truncates_a_decode_of_another_length(
    dataset, tmp_path, caplog, monkeypatch
):
    silent = HeroDataset.open(dataset)["silent.0"]  # a 4 s video: 3 steps
    longer = dataclasses.replace(
        silent,
        clip=Clip("silent", 0, 0.0, 9.0),
        features={
            "resnet": np.zeros((6, RESNET_DIM), np.float16),
            "slowfast": np.zeros((6, SLOWFAST_DIM), np.float16),
        },
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


def test_inputs_row_marks_each_input_frame_in_its_lane():
    record = _record([Cue(0.5, 2.0, "x")], ((0, 1),), ((0, 1),), (), duration=3.0)
    # source seconds (the clip starts at 18 s): the fast pathway repeats its first frame 3 times
    inputs = [
        {
            "resnet": 18.0 + (i + 0.5) * 1.5,
            "slowfast_fast": [18.0 + i * 1.5] * 3 + [18.0 + i * 1.5 + j * 0.05 for j in (1, 2)],
            "slowfast_slow": [18.0 + i * 1.5, 18.0 + i * 1.5 + 0.2],
        }
        for i in range(2)
    ]
    rows = _axes(clip_figure(record, None, inputs))
    lanes = rows["inputs"]
    assert [t.get_text() for t in lanes.get_yticklabels()] == ["2D", "fast", "slow"]
    ticks = {c.get_gid(): c for c in lanes.collections if c.get_gid() in INPUT_COLOURS}
    assert list(ticks) == ["resnet", "slowfast_fast", "slowfast_slow"]
    want = {
        "resnet": [0.75, 2.25],
        "slowfast_fast": [0.0, 0.05, 0.1, 1.5, 1.55, 1.6],  # one tick per distinct frame
        "slowfast_slow": [0.0, 0.2, 1.5, 1.7],
    }
    ys = []
    for key, lines in ticks.items():
        segments = lines.get_segments()
        assert sorted(s[0][0] for s in segments) == pytest.approx(want[key]), key
        assert all(s[0][0] == s[1][0] for s in segments)  # vertical
        (y,) = {(min(s[0][1], s[1][1]), max(s[0][1], s[1][1])) for s in segments}
        ys.append(y)
        assert to_rgba(lines.get_color()[0]) == to_rgba(INPUT_COLOURS[key])
    assert ys[0][0] > ys[1][1] and ys[1][0] > ys[2][1]  # lanes top to bottom, apart
    counts = [(t.get_text(), t.get_gid(), t.get_position()[0]) for t in lanes.texts]
    assert [(text, gid) for text, gid, _ in counts] == [("x3", "slowfast_fast")] * 2
    assert [x for *_, x in counts] == pytest.approx([0.0, 1.5], abs=0.05)  # by its frame
    assert "inputs" not in _axes(clip_figure(record, None))


def test_inspect_mark_inputs(dataset, tmp_path, drawn_clips):
    out = tmp_path / "m.png"
    args = ["inspect", str(dataset), "--clip", "video00.1", "--plot", str(out), "--mark-inputs"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    _png(out)
    record = HeroDataset.open(dataset)["video00.1"]  # clip [9, 9.5) s: one step
    (plan,) = load_inputs(record, "uniform")  # the dataset records no rule: the uniform one
    lanes = _axes(drawn_clips[-1])["inputs"]
    drawn = {c.get_gid(): sorted(s[0][0] for s in c.get_segments()) for c in lanes.collections}
    for key in ("resnet", "slowfast_fast", "slowfast_slow"):
        times = plan[key] if isinstance(plan[key], list) else [plan[key]]
        assert drawn[key] == pytest.approx(sorted({t - 9.0 for t in times})), key
    result = CliRunner().invoke(
        main, ["inspect", str(dataset), "--clip", "video00.0", "--mark-inputs"]
    )
    assert result.exit_code == 2
    assert "--mark-inputs marks the plot: give --plot PNG too" in result.output
