"""One video's subtitles end to end: clean, cut into clips, align, tokenize; `hero align`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from align.readers import SubtitleError, read_cues
from align.tokenizer import CueTokenizer, train_byte_level_bpe
from align.video import align_video
from hero_data.types import Cue
from pipelines.cli.main import main

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
    return result.exit_code, result.stdout, result.stderr


CLIP_KEYS = {
    "clip_id",
    "start",
    "end",
    "num_frames",
    "pseudo_cues",
    "cues",
    "sub2frames",
    "unique_sub2frames",
    "unmatched_frames",
}
CUE_KEYS = {"start", "end", "text", "speaker"}
REPORT_KEYS = {
    "malformed_skipped",
    "malformed_repaired",
    "input",
    "empty_dropped",
    "zero_length_dropped",
    "duplicates_merged",
    "rolling_collapsed",
    "output",
    "rolling_trimmed",
    "clips",
    "clips_with_pseudo_cues",
    "cues_dropped_after_clip_end",
    "long_last_cues_truncated",
}


def _subtitle_fixture_files() -> list:
    """Every file in ../shared/fixtures/subtitles, listed when the tests are collected."""
    env = os.environ.get("HERO_SHARED_FIXTURES")
    root = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "fixtures"
    folder = root / "subtitles"
    if not folder.is_dir():
        reason = f"subtitle fixtures not found at {folder} (set HERO_SHARED_FIXTURES)"
        return [pytest.param(None, id="no-fixtures", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(p, id=p.name) for p in sorted(folder.iterdir())]


def _check_documented_json(out: str, *, tokens: bool = False) -> dict:
    data = json.loads(out)
    assert set(data) == {"clips", "report"}
    assert set(data["report"]) == REPORT_KEYS
    for clip in data["clips"]:
        assert set(clip) == (CLIP_KEYS | {"token_ids"} if tokens else CLIP_KEYS)
        assert all(set(cue) == CUE_KEYS for cue in clip["cues"])
        assert len(clip["sub2frames"]) == len(clip["cues"]) == len(clip["unique_sub2frames"])
        assert [k for k, _ in clip["unique_sub2frames"]] == list(range(len(clip["cues"])))
        steps = [s for _, span in clip["unique_sub2frames"] for s in span]
        assert sorted(steps + clip["unmatched_frames"]) == list(range(clip["num_frames"]))
    return data


@pytest.mark.parametrize("path", _subtitle_fixture_files())
def test_hero_align_on_every_fixture_file(path: Path):
    """Exit 0 with the documented JSON for a file the reader takes, else exit 2 with one line
    on stderr naming the file (never a traceback)."""
    try:
        read_cues(path)
    except SubtitleError:
        readable = False
    else:
        readable = True
    code, out, err = run("align", str(path), "--duration", "400")
    if readable:
        assert code == 0, err
        assert err == ""
        data = _check_documented_json(out)
        assert [c["clip_id"] for c in data["clips"]] == [f"{path.stem}.{k}" for k in range(7)]
    else:
        assert code == 2, out
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: {path}"), err


def test_hero_align_on_sample(shared_fixtures):
    sub = shared_fixtures / "subtitles" / "sample.vtt"
    code, out, _ = run("align", str(sub), "--duration", "90")
    assert code == 0, out
    data = _check_documented_json(out)
    assert [c["clip_id"] for c in data["clips"]] == ["sample.0", "sample.1"]
    assert data["report"]["clips"] == 2


def _youtube_dl(shared_fixtures, *args: str) -> dict:
    sub = shared_fixtures / "subtitles" / "youtube_dl.vtt"
    code, out, err = run("align", str(sub), "--duration", "310", *args)
    assert code == 0, err
    return _check_documented_json(out, tokens="--tokenizer" in args)


def test_hero_align_collapses_youtube_rolling_captions(shared_fixtures):
    # Its cues run from 286.07 s to 305.4 s: clips 4 = [240, 300) and 5 = [300, 310).
    data = _youtube_dl(shared_fixtures, "--video-id", "yt")
    clips = data["clips"]
    assert [c["clip_id"] for c in clips] == [f"yt.{k}" for k in range(6)]
    assert [c["pseudo_cues"] for c in clips] == [True] * 4 + [False] * 2
    cues = [[(c["start"], c["end"], c["text"]) for c in clip["cues"]] for clip in clips[4:]]
    assert cues == [
        # clip-relative, and no float noise: 286.07 - 240 is 46.07, not 46.06999999999999
        [(46.07, 46.47, "yeah"), (46.47, 60.0, "what")],
        # "what" runs on to 304.08: in both clips, clipped to each
        [(0.0, 4.08, "what"), (4.08, 5.4, "this will happen is I'm telling")],
    ]
    assert clips[4]["unique_sub2frames"] == [[0, [30]], [1, list(range(31, 40))]]
    assert clips[5]["unique_sub2frames"] == [[0, [0, 1, 2]], [1, [3]]]
    assert data["report"] == {
        "malformed_skipped": {},
        "malformed_repaired": {},
        "input": 4,
        "empty_dropped": 0,
        "zero_length_dropped": 0,
        "duplicates_merged": 0,
        "rolling_collapsed": 1,
        "output": 3,
        "rolling_trimmed": 1,
        "clips": 6,
        "clips_with_pseudo_cues": 4,
        "cues_dropped_after_clip_end": 0,
        "long_last_cues_truncated": 0,
    }
    whole = _youtube_dl(shared_fixtures, "--clip-seconds", "0", "--video-id", "yt")
    assert [c["clip_id"] for c in whole["clips"]] == ["yt.0"]
    assert [c["text"] for c in whole["clips"][0]["cues"]] == [
        "yeah",
        "what",
        "this will happen is I'm telling",
    ]


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok-cli") / "tokenizer.json"
    texts = ["yeah what", "this will happen is I'm telling", "some other words"] * 3
    return train_byte_level_bpe(texts, path, vocab_size=300)


def test_hero_align_with_a_tokenizer_gives_token_ids(shared_fixtures, tokenizer_file):
    tokenizer = CueTokenizer.from_path(tokenizer_file)
    data = _youtube_dl(shared_fixtures, "--tokenizer", str(tokenizer_file))
    for clip in data["clips"]:
        ids = clip.pop("token_ids")
        assert len(ids) == len(clip["cues"])
        if clip["pseudo_cues"]:
            assert ids == [[]] * len(clip["cues"])
        else:
            assert ids == [tokenizer.encode(c["text"]) for c in clip["cues"]]
            assert all(ids)
            assert [tokenizer.decode(i) for i in ids] == [c["text"] for c in clip["cues"]]
    assert sum(not c["pseudo_cues"] for c in data["clips"]) == 2


def test_hero_align_bad_input_exits_2_with_one_line(shared_fixtures, tmp_path):
    for bad, args in [
        (shared_fixtures / "subtitles" / "invalid_format2.srt", []),  # no cue can be read
        (shared_fixtures / "subtitles" / "invalid_timeframe.vtt", ["--strict-subtitles"]),
    ]:
        code, out, err = run("align", str(bad), "--duration", "60", *args)
        assert code == 2 and out == ""
        assert err.startswith(f"Error: {bad}:") and "Traceback" not in err
        assert len(err.splitlines()) == 1
    good = shared_fixtures / "subtitles" / "sample.vtt"
    for args, message in [
        (["--duration", "-1"], "--duration must be a non-negative"),
        (["--duration", "60", "--clip-seconds", "59.9"], "not a whole number of 1.5 s steps"),
        (["--duration", "60", "--video-id", "../x"], "not a safe id"),
        (["--duration", "60", "--tokenizer", str(tmp_path / "none.json")], "none.json"),
    ]:
        code, out, err = run("align", str(good), *args)
        assert code == 2, (args, out)
        assert len(err.splitlines()) == 1, err
        assert err.startswith(f"Error: {good}: ") and message in err, err
    code, _, err = run("align", str(tmp_path / "missing.vtt"), "--duration", "9")
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"Error: {tmp_path / 'missing.vtt'}: No such file")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{sub}"], "Missing option '--duration'"),
        (["{sub}", "--duration", "abc"], "Invalid value for '--duration': 'abc'"),
        (["{sub}", "--duration", "9", "--frame-interval", "x"], "'--frame-interval'"),
        (["{sub}", "--duration", "9", "--format", "ass"], "'--format'"),
        (["{sub}", "--duration", "9", "--no-such-flag"], "No such option"),
        (["--duration", "9"], "Missing argument 'SUBTITLE_FILE'"),
    ],
)
def test_hero_align_usage_errors_are_one_line(shared_fixtures, args, message):
    sub = str(shared_fixtures / "subtitles" / "sample.vtt")
    code, out, err = run("align", *(a.replace("{sub}", sub) for a in args))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("Error: ") and message in err and "Usage:" not in err


def test_other_commands_keep_clicks_usage_errors():
    code, _, err = run("inspect")
    assert code == 2 and err.startswith("Usage: ") and len(err.splitlines()) > 1
    assert "inspect [OPTIONS] DATASET" in err


def test_hero_align_reads_tv_subtitles_with_heros_token_ids(tmp_path):
    from tests.conftest import TV_SUBS, TV_TOKENS_WITH_SPEAKER, TV_TOKENS_WITHOUT_SPEAKER, hand_bpe

    vocab = hand_bpe(tmp_path / "roberta")
    lines = [
        {"vid_name": name, "sub": [{"text": t, "start": s, "end": e} for t, s, e in TV_SUBS]}
        for name in ("house_s01", "house_s02")
    ]
    tv = tmp_path / "tv_subtitles.jsonl"
    tv.write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = ["align", str(tv), "--duration", "9", "--clip-seconds", "0"]
    args += ["--tokenizer", str(tmp_path / "roberta"), "--video-id", "house_s02"]
    code, out, err = run(*args)
    assert code == 0, err
    (clip,) = json.loads(out)["clips"]
    assert clip["clip_id"] == "house_s02.0"
    assert [c["speaker"] for c in clip["cues"]] == ["Chase", "House", None, "MAN"]
    assert clip["token_ids"] == [[vocab[t] for t in cue] for cue in TV_TOKENS_WITH_SPEAKER]
    code, out, err = run(*args, "--no-speaker-prefix")
    assert code == 0, err
    expected = [[vocab[t] for t in cue] for cue in TV_TOKENS_WITHOUT_SPEAKER]
    assert json.loads(out)["clips"][0]["token_ids"] == expected
    for extra, message in (
        ([], "holds 2 videos; choose one with --video-id"),
        (["--video-id", "house_s09"], "no entry with vid_name 'house_s09'"),
    ):
        code, out, err = run("align", str(tv), "--duration", "9", *extra)
        assert code == 2 and out == "" and len(err.splitlines()) == 1, err
        assert err.startswith(f"Error: {tv}: ") and message in err, err


# -- hero align: one malformed cue of each kind ------------------------------------------------


# What a file of three good cues (at 1, 5 and 7 s) holds in the middle, per format and reason:
# (format, reason, the bad cue's text, whether the reader repairs it rather than skipping it,
# the line of the problem that --strict-subtitles names, counted from the bad cue's first line).
MALFORMED_CUES = [
    ("vtt", "bad_timing", "00:00:03.000 --> 00:00:0x.000\nbad time\n\n", False, 0),
    ("vtt", "missing_timing", "no timing line before me\n\n", False, 0),
    ("vtt", "no_text", "00:00:03.000 --> 00:00:04.000\n\n", False, 0),
    ("vtt", "bad_text", "00:00:03.000 --> 00:00:04.000\ncaf\udce9\n\n", False, 1),
    ("vtt", "end_before_start", "00:00:04.000 --> 00:00:03.000\nbackwards\n\n", True, 0),
    ("vtt", "timestamp_separator", "00:00:03,000 --> 00:00:04,000\ncommas\n\n", True, 0),
    ("srt", "bad_timing", "2\n00:00:03,000 --> 00:00:0x,000\nbad time\n\n", False, 1),
    ("srt", "missing_timing", "2\nno timing line before me\n\n", False, 1),
    ("srt", "no_text", "2\n00:00:03,000 --> 00:00:04,000\n\n", False, 1),
    ("srt", "bad_text", "2\n00:00:03,000 --> 00:00:04,000\ncaf\udce9\n\n", False, 2),
    ("srt", "end_before_start", "2\n00:00:04,000 --> 00:00:03,000\nbackwards\n\n", True, 1),
    ("srt", "timestamp_separator", "2\n00:00:03.000 --> 00:00:04.000\ndots\n\n", True, 1),
    ("sbv", "bad_timing", "0:00:03.000,0:00:0x.000\nbad time\n\n", False, 0),
    ("sbv", "missing_timing", "no timing line before me\n\n", False, 0),
    ("sbv", "no_text", "0:00:03.000,0:00:04.000\n\n", False, 0),
    ("sbv", "bad_text", "0:00:03.000,0:00:04.000\ncaf\udce9\n\n", False, 1),
    ("sbv", "end_before_start", "0:00:04.000,0:00:03.000\nbackwards\n\n", True, 0),
]


def _file_with(tmp_path: Path, fmt: str, bad: str) -> tuple[Path, int]:
    """A subtitle file of three good cues with ``bad`` after the first; the line ``bad``
    starts on."""
    times = [(1, 2), (5, 6), (7, 8)]
    if fmt == "vtt":
        good = [f"00:00:0{a}.000 --> 00:00:0{b}.000\ngood {a}\n\n" for a, b in times]
        head = "WEBVTT\n\n"
    elif fmt == "srt":
        good = [
            f"{k}\n00:00:0{a},000 --> 00:00:0{b},000\ngood {a}\n\n"
            for k, (a, b) in zip((1, 3, 4), times, strict=True)
        ]
        head = ""
    else:
        good = [f"0:00:0{a}.000,0:00:0{b}.000\ngood {a}\n\n" for a, b in times]
        head = ""
    text = head + good[0] + bad + good[1] + good[2]
    path = tmp_path / f"one_bad.{fmt}"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    line = (head + good[0]).count("\n") + 1
    return path, line


@pytest.mark.parametrize(
    ("fmt", "reason", "bad", "repaired", "at"),
    MALFORMED_CUES,
    ids=[f"{f}-{r}" for f, r, *_ in MALFORMED_CUES],
)
def test_hero_align_keeps_the_other_cues_counts_the_bad_one_and_strict_rejects_it(
    tmp_path: Path, fmt: str, reason: str, bad: str, repaired: bool, at: int
):
    path, line = _file_with(tmp_path, fmt, bad)
    code, out, err = run("align", str(path), "--duration", "10", "--clip-seconds", "0")
    assert code == 0, err
    report = _check_documented_json(out)["report"]
    texts = [c["text"] for c in json.loads(out)["clips"][0]["cues"]]
    if repaired:
        assert report["malformed_repaired"] == {reason: 1}
        assert report["malformed_skipped"] == {}
        assert report["input"] == 4  # the repaired cue is read
    else:
        assert report["malformed_skipped"] == {reason: 1}
        assert report["malformed_repaired"] == {}
        assert report["input"] == 3  # the skipped cue is not
    assert texts[0] == "good 1" and texts[-2:] == ["good 5", "good 7"]
    if reason == "end_before_start":  # read, but zero-length: cleaning drops it
        assert report["zero_length_dropped"] == 1 and report["output"] == 3
    drops = ("empty_dropped", "zero_length_dropped", "duplicates_merged", "rolling_collapsed")
    assert report["input"] == report["output"] + sum(report[k] for k in drops)
    code, out, err = run("align", str(path), "--duration", "10", "--strict-subtitles")
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"Error: {path}:{line + at}: "), err


# (reason, the bad item of a TVQA entry's "sub" list, repaired)
MALFORMED_TVQA = [
    ("not_a_cue", "x", False),
    ("missing_timing", {"text": "t", "end": 4}, False),
    ("no_text", {"start": 3, "end": 4}, False),
    ("bad_timing", {"text": "t", "start": "soon", "end": 4}, False),
    ("bad_text", {"text": None, "start": 3, "end": 4}, False),
    ("end_before_start", {"text": "backwards", "start": 4, "end": 3}, True),
]


@pytest.mark.parametrize(("reason", "bad", "repaired"), MALFORMED_TVQA)
def test_hero_align_tvqa_keeps_the_other_cues_and_strict_rejects(
    tmp_path: Path, reason: str, bad: object, repaired: bool
):
    good = [{"text": f"good {a}", "start": a, "end": a + 1} for a in (1, 5, 7)]
    tv = tmp_path / "tv.jsonl"
    tv.write_text(json.dumps({"vid_name": "v", "sub": [good[0], bad, *good[1:]]}) + "\n")
    code, out, err = run("align", str(tv), "--duration", "10", "--clip-seconds", "0")
    assert code == 0, err
    data = _check_documented_json(out)
    key = "malformed_repaired" if repaired else "malformed_skipped"
    assert data["report"][key] == {reason: 1}
    assert data["report"]["input"] == (4 if repaired else 3)
    assert [c["text"] for c in data["clips"][0]["cues"]][-2:] == ["good 5", "good 7"]
    code, out, err = run("align", str(tv), "--duration", "10", "--strict-subtitles")
    assert code == 2 and out == ""
    assert err.startswith(f"Error: {tv}:1: v sub[1]: ") and len(err.splitlines()) == 1, err


def test_the_readme_shows_every_report_key_of_hero_align():
    """The README's `hero align` output block names every key of the report, the malformed-cue
    counts included, and the option that makes them errors."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("- `hero align SUBTITLE_FILE") :]
    section = section[: section.index("\n- `hero ", 1)]
    block = section[section.index('"report": {') :]
    assert all(f'"{key}"' in block for key in REPORT_KEYS), REPORT_KEYS
    assert "--strict-subtitles" in section
