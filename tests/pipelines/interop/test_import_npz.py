"""``hero import npz``: the HERO extractor's feature folders -> a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from align.readers import SubtitleError
from align.tokenizer import CueTokenizer, train_byte_level_bpe
from align.video import align_video
from hero_data.reader import HeroDataset
from hero_data.schema import RESNET_DIM, SLOWFAST_DIM
from hero_data.types import Cue
from hero_data.writer import read_errors
from pipelines.cli.compat import import_
from pipelines.inputs import InputError
from pipelines.interop.import_npz import (
    NpzImportOptions,
    NpzPair,
    SubtitleSource,
    find_npz_pairs,
    import_npz,
    load_npz_features,
)

VTT = """WEBVTT

00:00:01.000 --> 00:00:04.500
crack the eggs into a bowl

00:00:58.000 --> 00:01:03.000
<v Ann>WHISK THEM WELL

00:01:10.000 --> 00:01:12.250
now the flour
"""

SRT = """1
00:00:02,000 --> 00:00:05,000
heat the pan

2
00:00:09,500 --> 00:00:11,000
flip it
"""


def _npz(path: Path, rows: int, dim: int, seed: int, **extra) -> np.ndarray:
    arr = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=arr, **extra)
    return arr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """An extractor output folder with good, uneven, unpaired and broken videos."""
    root = tmp_path_factory.mktemp("npz")
    r, s = root / "resnet_features", root / "slowfast_features"
    arrays = {
        "cook": (
            _npz(r / "cook.npz", 50, RESNET_DIM, 1),
            _npz(s / "cook.npz", 51, SLOWFAST_DIM, 2),
        ),
        "nested": (
            _npz(r / "part2" / "nested.npz", 8, RESNET_DIM, 3),
            _npz(s / "part2" / "nested.npz", 8, SLOWFAST_DIM, 4),
        ),
        "quiet": (
            _npz(r / "quiet.npz", 7, RESNET_DIM, 5),
            _npz(s / "quiet.npz", 6, SLOWFAST_DIM, 6),
        ),
    }
    _npz(r / "lonely.npz", 5, RESNET_DIM, 7)  # no slowfast partner
    _npz(r / "garbled.npz", 5, RESNET_DIM, 8)
    (s / "garbled.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    _npz(r / "nokey.npz", 5, RESNET_DIM, 9)
    np.savez(s / "nokey.npz", feats=np.zeros((5, SLOWFAST_DIM), np.float16))
    _npz(r / "narrow.npz", 5, RESNET_DIM, 10)
    _npz(s / "narrow.npz", 5, 2048, 11)
    subs = root / "subs"
    subs.mkdir()
    (subs / "cook.vtt").write_text(VTT)
    (subs / "nested.en.srt").write_text(SRT)
    (subs / "narrow.vtt").write_text(VTT)
    tokenizer = train_byte_level_bpe(
        [VTT, SRT], tmp_path_factory.mktemp("tok") / "tokenizer.json", 280
    )
    return {"root": root, "arrays": arrays, "subs": subs, "tokenizer": tokenizer}


@pytest.fixture(scope="module")
def imported(corpus, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("ds") / "ds"
    options = NpzImportOptions(
        subtitles=str(corpus["subs"]), tokenizer=str(corpus["tokenizer"]), progress=False
    )
    return out, import_npz(corpus["root"], out, options)


def test_features_are_the_npz_rows_cut_to_the_shorter_file(corpus, imported):
    out, summary = imported
    ds = HeroDataset.open(out)
    assert summary.videos == 3 and summary.clips == 4 and summary.trimmed == 2
    assert ds.clip_ids() == ["cook.0", "cook.1", "nested.0", "quiet.0"]
    resnet, slowfast = corpus["arrays"]["cook"]
    assert ds["cook.0"].features["resnet"].tobytes() == resnet[:40].tobytes()
    assert ds["cook.1"].features["slowfast"].tobytes() == slowfast[40:50].tobytes()  # 51 cut to 50
    clip = ds["cook.1"].clip
    assert (clip.start, clip.end) == (60.0, 75.0)  # duration = 50 steps x 1.5 s
    quiet = ds["quiet.0"]
    assert (
        quiet.num_frames == 6
        and quiet.features["resnet"].tobytes() == corpus["arrays"]["quiet"][0][:6].tobytes()
    )


def test_subtitles_are_aligned_and_tokenized_as_hero_run_does(corpus, imported):
    out, summary = imported
    ds = HeroDataset.open(out)
    assert summary.with_subtitles == 2
    tok = CueTokenizer.from_path(corpus["tokenizer"])
    cues = [
        Cue(1.0, 4.5, "crack the eggs into a bowl"),
        Cue(58.0, 63.0, "WHISK THEM WELL", "Ann"),
        Cue(70.0, 72.25, "now the flour"),
    ]
    expected = align_video(cues, 75.0, video_id="cook", clip_length=60.0, tokenizer=tok)
    for clip in expected.clips:
        record = ds[clip.clip.clip_id]
        assert record.cues == clip.alignment.cues
        assert record.unique_sub2frames == clip.alignment.unique_sub2frames
        assert record.sub2frames == clip.alignment.sub2frames
        assert record.cue_token_ids == clip.token_ids and record.cue_token_ids[0]
    nested = ds["nested.0"]  # nested.en.srt found by name with its language tag
    assert [c.text for c in nested.cues] == ["heat the pan", "flip it"]
    assert nested.cues[1].end == 11.0 and nested.num_frames == 8
    assert all(c.text == "" for c in ds["quiet.0"].cues)  # no subtitles: pseudo-cues
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert config["frame_interval"] == 1.5 and config["tokenizer"]["sha256"] == tok.sha256


def test_bad_files_are_recorded_and_the_rest_goes_on(corpus, imported):
    out, summary = imported
    errors = {e["video_id"]: e for e in read_errors(out)}
    assert sorted(errors) == ["garbled", "lonely", "narrow", "nokey"]
    root = corpus["root"]
    assert errors["lonely"]["message"].startswith(str(root / "resnet_features" / "lonely.npz"))
    assert "no slowfast_features/lonely.npz" in errors["lonely"]["message"]
    assert "garbled.npz: not a readable .npz file" in errors["garbled"]["message"]
    assert "nokey.npz: no 'features' array (it holds feats)" in errors["nokey"]["message"]
    assert (
        "narrow.npz: 'features' is (5, 2048), expected (steps, 2304)" in errors["narrow"]["message"]
    )
    assert {e["stage"] for e in errors.values()} == {"import"}
    assert len(summary.failed) == 4


def test_howto100m_json_and_whole_videos(corpus, tmp_path):
    captions = tmp_path / "caption.json"
    captions.write_text(
        json.dumps({"cook": {"start": [3, 61], "end": [8, 65], "text": ["a", "b"]}})
    )
    options = NpzImportOptions(subtitles=str(captions), clip_length=None, progress=False)
    summary = import_npz(corpus["root"], tmp_path / "ds", options)
    ds = HeroDataset.open(tmp_path / "ds")
    assert summary.with_subtitles == 1 and ds.clip_ids() == ["cook.0", "nested.0", "quiet.0"]
    cook = ds["cook.0"]
    assert cook.num_frames == 50 and [c.start for c in cook.cues] == [3.0, 61.0]
    assert cook.cue_token_ids == ()  # no tokenizer given


def test_broken_subtitle_fails_only_its_video(corpus, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "cook.srt").write_text("1\n00:00:02,000 --> nonsense\nhello\n")
    summary = import_npz(
        corpus["root"], tmp_path / "ds", NpzImportOptions(subtitles=str(subs), progress=False)
    )
    errors = {e["video_id"]: e for e in read_errors(tmp_path / "ds")}
    assert errors["cook"]["stage"] == "subtitles" and "cook.srt:2" in errors["cook"]["message"]
    assert summary.videos == 2


def test_load_rejects_non_finite_and_empty(tmp_path):
    pair = NpzPair("v", tmp_path / "r.npz", tmp_path / "s.npz")
    np.savez(pair.resnet, features=np.zeros((3, RESNET_DIM), np.float16))
    bad = np.zeros((3, SLOWFAST_DIM), np.float32)
    bad[1, 7] = np.nan
    np.savez(pair.slowfast, features=bad)
    with pytest.raises(ValueError, match=r"s\.npz: 'features' holds NaN"):
        load_npz_features(pair, 1.5)
    np.savez(pair.slowfast, features=np.zeros((0, SLOWFAST_DIM), np.float32))
    with pytest.raises(ValueError, match="no feature steps"):
        load_npz_features(pair, 1.5)
    np.savez(pair.slowfast, features=np.ones((3, SLOWFAST_DIM), np.float32))
    features, cut = load_npz_features(pair, 1.5)
    assert features["slowfast"].dtype == np.float16 and cut == 0


def test_layout_errors(tmp_path):
    with pytest.raises(InputError, match="no resnet_features/ folder"):
        find_npz_pairs(tmp_path)
    for folder in ("resnet_features/a", "resnet_features/b", "slowfast_features/a"):
        _npz(tmp_path / folder / "same.npz", 2, 8, 0)
    with pytest.raises(InputError, match="'same': a/same, b/same"):
        find_npz_pairs(tmp_path)
    with pytest.raises(InputError, match=r"HowTo100M caption \.json"):
        SubtitleSource(tmp_path / "resnet_features" / "a" / "same.npz")


def test_command_line(corpus, tmp_path):
    runner = CliRunner()
    args = ["npz", str(corpus["root"]), "--output", str(tmp_path / "ds"), "--no-progress"]
    result = runner.invoke(import_, [*args, "--clip-seconds", "4.5"])
    assert result.exit_code == 0, result.output
    assert "imported 3 videos -> 22 clips" in result.output and "failed: lonely" in result.output
    result = runner.invoke(import_, args)
    assert result.exit_code == 1 and "already holds a dataset" in result.output
    result = runner.invoke(import_, [*args, "--overwrite", "--clip-seconds", "4"])
    assert result.exit_code == 1 and "not a whole number of 1.5 s steps" in result.output
    assert "[1.5]" in runner.invoke(import_, ["npz", "--help"]).output


def test_subtitle_sources_name_what_they_take(tmp_path):
    other = tmp_path / "subs.txt"
    other.write_text("hello")
    with pytest.raises(InputError, match=r"subs\.txt.*TVQA-style \.jsonl"):
        SubtitleSource(other)
    empty = tmp_path / "tv.jsonl"
    empty.write_text("  \n")
    with pytest.raises(SubtitleError, match=r"tv\.jsonl: empty file"):
        SubtitleSource(empty)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"vid_name": "a", "sub": []}\nnot json\n{"vid_name": "b", "sub": 3}\n')
    source = SubtitleSource(broken)
    assert source.tv and source.cues("a") == ([], str(broken))
    with pytest.raises(SubtitleError, match=r"broken\.jsonl:3: b: missing or bad 'sub'"):
        source.cues("b")
