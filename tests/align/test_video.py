"""One video's subtitles end to end: clean, cut into clips, align, tokenize; `hero align`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from align.tokenizer import CueTokenizer, train_byte_level_bpe
from align.video import align_video
from hero_data.types import Cue
from pipelines.cli import main

CUES = [
    Cue(1.0, 4.0, "first words"),
    Cue(1.0, 4.0, "first words"),  # exact duplicate: merged
    Cue(20.0, 20.0, "zero length"),  # dropped
    Cue(30.0, 31.0, "   "),  # empty: dropped
    Cue(58.0, 62.5, "across the boundary", "ANN"),
    Cue(100.0, 103.0, "SHOUTING &amp; MORE"),
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> CueTokenizer:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    texts = ["first words", "across the boundary", "shouting & more", "some other words"]
    return CueTokenizer.from_path(train_byte_level_bpe(texts, path, vocab_size=300))


def test_clips_cues_and_the_boundary_cue():
    v = align_video(CUES, 130.0, video_id="vid")
    assert [c.clip.clip_id for c in v.clips] == ["vid.0", "vid.1", "vid.2"]
    assert [(c.clip.start, c.clip.end) for c in v.clips] == [(0, 60), (60, 120), (120, 130)]
    clip0, clip1, clip2 = (c.alignment for c in v.clips)
    assert [c.text for c in clip0.cues] == ["first words", "across the boundary"]
    assert (clip0.cues[1].start, clip0.cues[1].end) == (58.0, 60.0)  # clipped to clip 0
    assert (clip1.cues[0].start, clip1.cues[0].end) == (0.0, 2.5)  # and to clip 1
    assert clip1.cues[0].text == "across the boundary" and clip1.cues[1].start == 40.0
    assert clip0.sub2frames[1] == (38, 39) and clip1.sub2frames[0] == (0, 1)
    assert clip2.pseudo and clip2.num_frames == 7  # 10 s: pseudo-cues of 5 steps
    report = v.report()
    assert report["clips"] == 3 and report["clips_with_pseudo_cues"] == 1
    assert report["input"] == len(CUES)


def test_whole_video_as_one_clip():
    v = align_video(CUES, 130.0, video_id="tv", clip_length=None)
    assert [c.clip.clip_id for c in v.clips] == ["tv.0"]
    assert v.clips[0].alignment.num_frames == 87
    assert v.clips[0].alignment.cues[1] == Cue(58.0, 62.5, "across the boundary", "ANN")


def test_tokens_per_cue_and_none_for_pseudo_cues(tokenizer):
    v = align_video(CUES, 130.0, video_id="vid", tokenizer=tokenizer)
    clip0, _, clip2 = v.clips
    assert clip0.token_ids == tuple(tuple(tokenizer.encode(c.text)) for c in clip0.alignment.cues)
    assert all(clip0.token_ids)
    assert clip2.token_ids == ((), ())
    assert tokenizer.decode(list(v.clips[1].token_ids[1])) == "shouting & more"


def test_zero_length_video_has_no_clips():
    assert align_video(CUES, 0.0, video_id="v").clips == ()


def test_json_form():
    d = align_video(CUES, 61.0, video_id="vid").to_dict()
    clip = d["clips"][0]
    assert set(clip) >= {
        "clip_id",
        "start",
        "end",
        "cues",
        "sub2frames",
        "unique_sub2frames",
        "unmatched_frames",
    }
    assert clip["unique_sub2frames"][0][0] == 0  # [cue index, [steps]] pairs, as HERO's
    assert all(isinstance(s, int) for s in clip["unmatched_frames"])
    json.dumps(d)


# -- hero align ---------------------------------------------------------------------------------


def run(*args):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output, result.stderr if hasattr(result, "stderr") else ""


def test_hero_align_on_fixtures(shared_fixtures, tmp_path, tokenizer):
    sub = shared_fixtures / "subtitles" / "sample.vtt"
    code, out, _ = run("align", str(sub), "--duration", "90")
    assert code == 0, out
    data = json.loads(out)
    assert [c["clip_id"] for c in data["clips"]] == ["sample.0", "sample.1"]
    assert data["report"]["clips"] == 2
    for clip in data["clips"]:
        n = clip["num_frames"]
        steps = sorted(
            [s for _, span in clip["unique_sub2frames"] for s in span] + clip["unmatched_frames"]
        )
        assert steps == list(range(n))
    code, out, _ = run(
        "align",
        str(shared_fixtures / "subtitles" / "youtube_dl.vtt"),
        "--duration",
        "30",
        "--clip-seconds",
        "0",
        "--video-id",
        "yt",
    )
    assert code == 0, out
    assert json.loads(out)["clips"][0]["clip_id"] == "yt.0"


def test_hero_align_bad_input_exits_2(shared_fixtures, tmp_path):
    bad = shared_fixtures / "subtitles" / "invalid_timeframe.vtt"
    result = CliRunner().invoke(main, ["align", str(bad), "--duration", "60"])
    assert result.exit_code == 2
    assert str(bad) in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    good = shared_fixtures / "subtitles" / "sample.vtt"
    for args, message in [
        (["--duration", "-1"], "--duration must be a non-negative"),
        (["--duration", "60", "--clip-seconds", "59.9"], "not a whole number of 1.5 s steps"),
        (["--duration", "60", "--video-id", "../x"], "not a safe id"),
        (["--duration", "60", "--tokenizer", str(tmp_path / "none.json")], "none.json"),
    ]:
        result = CliRunner().invoke(main, ["align", str(good), *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output
    result = CliRunner().invoke(main, ["align", str(tmp_path / "missing.vtt"), "--duration", "9"])
    assert result.exit_code == 2 and "missing.vtt" in result.output
