"""Run inputs: folder listing and subtitle matching, manifests, id checks, remote files."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pickle
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from align.readers import SubtitleError
from hero_data.types import Cue, check_id
from hero_data.writer import ErrorLog, read_errors
from pipelines import inputs
from pipelines.inputs import (
    InputError,
    Listing,
    VideoInput,
    check_inputs,
    howto100m_inputs,
    list_folder,
    load_inputs,
    open_local,
    read_manifest,
    read_subtitle_cues,
    read_subtitle_cues_report,
)

VTT = "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nhello there\n"


def touch(root: Path, *names: str, data: bytes = b"x") -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture
def mem() -> Iterator[str]:
    """A fresh ``memory://`` folder, removed afterwards (the memory filesystem is global)."""
    root = f"memory://hero-test-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def put(url: str, data: bytes | str = b"x") -> None:
    with fsspec.open(url, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def by_id(listing: Listing) -> dict[str, VideoInput]:
    return {v.video_id: v for v in listing.inputs}


# --- folders ----------------------------------------------------------------------------------


def test_nested_folders_same_names_and_skipped_files(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "a/b/clip.mp4",
        "a/b/clip.vtt",
        "x/clip.mp4",
        "top.MKV",
        "notes.txt",
        "._top.mp4",  # macOS resource fork
        ".cache/z.mp4",
    )
    listing = list_folder(str(tmp_path))
    assert [v.video_id for v in listing.inputs] == ["a__b__clip", "top", "x__clip"]
    videos = by_id(listing)
    assert videos["a__b__clip"].video_uri == f"{tmp_path}/a/b/clip.mp4"
    assert videos["a__b__clip"].subtitle_uri == f"{tmp_path}/a/b/clip.vtt"
    assert videos["x__clip"].subtitle_uri is None
    assert videos["top"].video_uri == f"{tmp_path}/top.MKV"
    assert listing.orphan_subtitles == ()
    check_inputs(listing.inputs)


def test_not_recursive_lists_the_top_folder_only(tmp_path: Path) -> None:
    touch(tmp_path, "a.mp4", "a.srt", "sub/b.mp4")
    listing = list_folder(str(tmp_path), recursive=False)
    assert [(v.video_id, Path(v.subtitle_uri or "").name) for v in listing.inputs] == [
        ("a", "a.srt")
    ]


def test_every_video_extension_in_any_case(tmp_path: Path) -> None:
    names = [
        f"v{k}.{ext.upper() if k % 2 else ext}" for k, ext in enumerate(inputs.VIDEO_EXTENSIONS)
    ]
    touch(tmp_path, *names, "v.gif", "v.mp3")
    assert len(list_folder(str(tmp_path)).inputs) == len(inputs.VIDEO_EXTENSIONS)


@pytest.mark.parametrize(
    ("files", "language", "chosen", "extra", "orphans"),
    [
        (["clip.vtt"], None, "clip.vtt", [], []),
        (["clip.VTT"], None, "clip.VTT", [], []),
        (["clip.srt", "clip.sbv", "clip.vtt"], None, "clip.vtt", ["clip.sbv", "clip.srt"], []),
        (["clip.sbv", "clip.srt"], None, "clip.srt", ["clip.sbv"], []),
        (["clip.en.vtt"], None, "clip.en.vtt", [], []),
        (["clip.vtt", "clip.en.vtt"], "en", "clip.vtt", ["clip.en.vtt"], []),
        (["clip.fr.vtt", "clip.en.vtt"], None, "clip.en.vtt", ["clip.fr.vtt"], []),
        (["clip.fr.vtt", "clip.en.vtt"], "fr", "clip.fr.vtt", ["clip.en.vtt"], []),
        (["clip.de.vtt", "clip.en-US.srt"], "en", "clip.en-US.srt", ["clip.de.vtt"], []),
        (["clip.en-US.vtt", "clip.en.srt"], "en", "clip.en.srt", ["clip.en-US.vtt"], []),
        (["clip.en-orig.vtt"], "en", "clip.en-orig.vtt", [], []),
        (["clip.final.vtt"], None, None, [], ["clip.final.vtt"]),
        (["Clip.vtt"], None, None, [], ["Clip.vtt"]),
        (["other.vtt", "clip.srt"], None, "clip.srt", [], ["other.vtt"]),
        (["sub/clip.vtt"], None, None, [], ["sub/clip.vtt"]),
    ],
)
def test_subtitle_matching(
    tmp_path: Path,
    files: list[str],
    language: str | None,
    chosen: str | None,
    extra: list[str],
    orphans: list[str],
) -> None:
    touch(tmp_path, "clip.mp4", *files)
    listing = list_folder(str(tmp_path), subtitle_language=language)
    (video,) = listing.inputs
    assert video.subtitle_uri == (f"{tmp_path}/{chosen}" if chosen else None)
    assert listing.extra_subtitles == tuple(f"{tmp_path}/{n}" for n in extra)
    assert listing.orphan_subtitles == tuple(f"{tmp_path}/{n}" for n in orphans)


def test_a_subtitle_named_exactly_after_a_video_is_that_videos(tmp_path: Path) -> None:
    touch(tmp_path, "clip.mp4", "clip.en.mp4", "clip.en.vtt")
    videos = by_id(list_folder(str(tmp_path)))
    assert videos["clip"].subtitle_uri is None
    assert videos["clip.en"].subtitle_uri == f"{tmp_path}/clip.en.vtt"


def test_orphan_subtitles_are_reported_not_raised(tmp_path, caplog) -> None:
    touch(tmp_path, "a.mp4", "b.vtt", "c/d.srt")
    with caplog.at_level(logging.WARNING, logger="pipelines.inputs"):
        listing = list_folder(str(tmp_path))
    assert listing.orphan_subtitles == (f"{tmp_path}/b.vtt", f"{tmp_path}/c/d.srt")
    assert "2 subtitle files belong to no video" in caplog.text


def test_unsafe_names_become_safe_ids(tmp_path: Path) -> None:
    touch(tmp_path, "a b/c?.mp4", "a b/c?.vtt", "-x y.mp4", "ü.mp4", "..a/b.mp4", "a.b.mp4")
    listing = list_folder(str(tmp_path))
    videos = by_id(listing)
    assert sorted(videos) == ["-x_y", "_", "a.b", "a_b__c_"]  # ..a/ is hidden (starts with .)
    assert videos["a_b__c_"].video_uri == f"{tmp_path}/a b/c?.mp4"
    assert videos["a_b__c_"].subtitle_uri == f"{tmp_path}/a b/c?.vtt"
    for vid in videos:
        check_id("video id", vid)


def test_names_that_become_equal_are_duplicates(tmp_path: Path) -> None:
    touch(tmp_path, "a b/c.mp4", "a_b/c.mp4", "a b/c.mkv")
    listing = list_folder(str(tmp_path))
    with pytest.raises(InputError, match=r"1 video ids are used by more than one video") as e:
        check_inputs(listing.inputs)
    for name in ("a b/c.mp4", "a b/c.mkv", "a_b/c.mp4"):
        assert f"{tmp_path}/{name}" in str(e.value)


def test_missing_or_file_root(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        list_folder(str(tmp_path / "nope"))
    touch(tmp_path, "a.mp4")
    with pytest.raises(InputError, match="not a folder"):
        list_folder(str(tmp_path / "a.mp4"))


def test_empty_folder_gives_an_empty_listing(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="pipelines.inputs"):
        assert list_folder(str(tmp_path)) == Listing(())
    assert "no video files" in caplog.text


def test_remote_folder(mem: str) -> None:
    put(f"{mem}/videos/a b/clip.mp4", b"video-1")
    put(f"{mem}/videos/a b/clip.en.vtt", VTT)
    put(f"{mem}/videos/x/clip.webm", b"video-2")
    put(f"{mem}/videos/lost.srt", "1\n00:00:01,000 --> 00:00:02,000\nhi\n")
    listing = list_folder(f"{mem}/videos/")
    assert listing.inputs == (
        VideoInput("a_b__clip", f"{mem}/videos/a b/clip.mp4", f"{mem}/videos/a b/clip.en.vtt"),
        VideoInput("x__clip", f"{mem}/videos/x/clip.webm", None),
    )
    assert listing.orphan_subtitles == (f"{mem}/videos/lost.srt",)
    with open_local(listing.inputs[0].video_uri) as local:
        assert Path(local).read_bytes() == b"video-1"
        assert local.endswith(".mp4")
    assert not os.path.exists(local)
    assert read_subtitle_cues(listing.inputs[0].subtitle_uri or "") == [
        Cue(1.0, 2.5, "hello there")
    ]


# --- local copies and subtitles ---------------------------------------------------------------


def test_open_local_keeps_local_paths(tmp_path: Path) -> None:
    touch(tmp_path, "v.mp4", data=b"abc")
    path = str(tmp_path / "v.mp4")
    with open_local(path) as local:
        assert local == path
    with open_local(f"file://{path}") as local:
        assert local == path
    assert Path(path).read_bytes() == b"abc"  # never deleted


def test_open_local_deletes_the_copy_after_an_error(mem: str, tmp_path: Path) -> None:
    put(f"{mem}/v.mkv", b"\x00" * 100_000)
    with pytest.raises(RuntimeError), open_local(f"{mem}/v.mkv", tmp_dir=str(tmp_path)) as local:
        assert Path(local).parent == tmp_path
        assert Path(local).read_bytes() == b"\x00" * 100_000
        raise RuntimeError("decoder failed")
    assert list(tmp_path.iterdir()) == []


def test_open_local_missing_remote_file(mem: str) -> None:
    with pytest.raises(FileNotFoundError), open_local(f"{mem}/none.mp4"):
        pass


def test_read_subtitle_cues_local_remote_and_format(tmp_path: Path, mem: str) -> None:
    touch(tmp_path, "a.vtt", data=VTT.encode())
    assert read_subtitle_cues(str(tmp_path / "a.vtt")) == [Cue(1.0, 2.5, "hello there")]
    put(f"{mem}/a.txt", "\ufeff" + VTT)  # BOM, and a format given explicitly
    assert read_subtitle_cues(f"{mem}/a.txt", fmt="vtt") == [Cue(1.0, 2.5, "hello there")]
    with pytest.raises(SubtitleError, match=r"a\.txt: unsupported subtitle extension '\.txt'"):
        read_subtitle_cues(f"{mem}/a.txt")
    with pytest.raises(FileNotFoundError):
        read_subtitle_cues(f"{mem}/gone.vtt")


def test_read_subtitle_cues_not_utf8_names_file_and_line(mem: str) -> None:
    url = f"{mem}/latin1.srt"
    put(url, "1\n00:00:01,000 --> 00:00:02,000\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(SubtitleError, match=r"latin1\.srt:3: not UTF-8 text") as e:
        read_subtitle_cues(url, strict=True)
    assert e.value.path == url
    # Recovering, its one cue is skipped: nothing is left to read.
    with pytest.raises(SubtitleError, match=r"latin1\.srt:2: cue text is not UTF-8 \(byte 0xE9"):
        read_subtitle_cues(url)


def test_read_subtitle_cues_report_skips_a_malformed_cue_of_a_remote_file(mem: str) -> None:
    url = f"{mem}/a.vtt"
    put(url, VTT + "\n00:00:03.000 --> 00:00:0x.000\nbad\n\n00:00:04.000 --> 00:00:05.000\nok\n")
    cues, report = read_subtitle_cues_report(url)
    assert cues == [Cue(1.0, 2.5, "hello there"), Cue(4.0, 5.0, "ok")]
    assert report.counts() == {"skipped": {"bad_timing": 1}, "repaired": {}}
    with pytest.raises(SubtitleError, match=r"a\.vtt:\d+: bad timestamp '00:00:0x\.000'"):
        read_subtitle_cues_report(url, strict=True)


# --- manifests --------------------------------------------------------------------------------


def test_csv_manifest(tmp_path: Path, caplog) -> None:
    manifest = tmp_path / "lists" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "\ufeffvideo,subtitle,video_id,notes\n"
        "v/a.mp4,v/a.vtt,,first\n"
        "\n"
        "/abs/b.mkv,,b-1,\n"
        "s3://bucket/c d.mp4,s3://bucket/c.srt,,\n"
        '"../e, f.mp4",,,"multi\nline"\n'
        "g.mp4\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="pipelines.inputs"):
        rows = read_manifest(str(manifest))
    base = tmp_path / "lists"
    assert rows == [
        VideoInput("a", str(base / "v/a.mp4"), str(base / "v/a.vtt")),
        VideoInput("b-1", "/abs/b.mkv", None),
        VideoInput("c_d", "s3://bucket/c d.mp4", "s3://bucket/c.srt"),
        VideoInput("e__f", str(tmp_path / "e, f.mp4"), None),
        VideoInput("g", str(base / "g.mp4"), None),
    ]
    assert "m.csv:1: unknown column 'notes' ignored" in caplog.text


def test_jsonl_manifest_and_remote_relative_paths(mem: str, caplog) -> None:
    url = f"{mem}/sets/m.jsonl"
    lines = [
        {"video": "a.mp4", "subtitle": "subs/a.vtt", "video_id": "A"},
        {"video": "../shared/b.mp4", "subtitle": None, "extra": 1},
        {"video": "gs://other/c.mp4"},
    ]
    put(url, "\n".join(json.dumps(x) for x in lines[:2]) + "\n\n" + json.dumps(lines[2]) + "\n")
    with caplog.at_level(logging.WARNING, logger="pipelines.inputs"):
        rows = read_manifest(url)
    assert rows == [
        VideoInput("A", f"{mem}/sets/a.mp4", f"{mem}/sets/subs/a.vtt"),
        VideoInput("b", f"{mem}/shared/b.mp4", None),
        VideoInput("c", "gs://other/c.mp4", None),
    ]
    assert "m.jsonl:2: unknown column 'extra' ignored" in caplog.text


CSV_ERRORS = [
    ("path,subtitle\na.mp4,\n", 1, r"no 'video' column in the header \['path', 'subtitle'\]"),
    ("video,video\na.mp4,b.mp4\n", 1, r"repeated columns \['video'\]"),
    ("video,subtitle\na.mp4,\n ,a.vtt\n", 3, r"empty 'video'"),
    ("video,video_id\na.mp4,a/b\n", 2, r"video_id 'a/b' is not a safe id"),
    ("video,video_id\na.mp4,.a\n", 2, r"video_id '.a' is not a safe id"),
    ("video\nx/a.mp4\n\ny/a.mkv\n", 4, r"video id 'a' is already used on line 2; give each"),
    ("video,video_id\na.mp4,k\nb.mp4,k\n", 3, r"video id 'k' is already used on line 2$"),
    ("video,subtitle\na.mp4,a.txt\n", 2, r"subtitle 'a.txt' has an unsupported extension"),
    ("video\na.mp4,b\n", 2, r"2 fields but the header has 1"),
    ("video\n", 1, r"no rows after the header"),
    ('video\n"a.mp4\n', 2, r"bad CSV: unexpected end of data"),
    ('video\n"a.mp4"x\n', 2, r"bad CSV: ',' expected after"),
]


@pytest.mark.parametrize(("text", "line", "message"), CSV_ERRORS)
def test_csv_manifest_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as e:
        read_manifest(str(path))
    assert (e.value.source, e.value.line) == (str(path), line)
    assert str(e.value).startswith(f"{path}:{line}: ")


JSONL_ERRORS = [
    ('{"video": "a.mp4"}\n{"video": "b.mp4",\n', 2, r"invalid JSON: .* \(column \d+\)"),
    ('{"video": "a.mp4"}\n["b.mp4"]\n', 2, r"expected a JSON object, got list"),
    ('\n{"subtitle": "a.vtt"}\n', 2, r"no 'video' key \(keys: \['subtitle'\]\)"),
    ('{"video": ""}\n', 1, r"empty 'video'"),
    ('{"video": 5}\n', 1, r"'video' must be a string, got 5"),
    ('{"video": "a.mp4", "video_id": "a b"}\n', 1, r"video_id 'a b' is not a safe id"),
    ('{"video": "a.mp4", "video_id": 7}\n', 1, r"'video_id' must be a string, got 7"),
]


@pytest.mark.parametrize(("text", "line", "message"), JSONL_ERRORS)
def test_jsonl_manifest_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as e:
        read_manifest(str(path))
    assert (e.value.source, e.value.line) == (str(path), line)


def test_manifest_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"m\.txt: unknown manifest format"):
        read_manifest(str(tmp_path / "m.txt"))
    with pytest.raises(InputError, match=r"none\.csv: no such file"):
        read_manifest(str(tmp_path / "none.csv"))
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(InputError, match=r"empty\.jsonl: empty manifest"):
        read_manifest(str(tmp_path / "empty.jsonl"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match=r"empty\.csv: empty manifest"):
        read_manifest(str(tmp_path / "empty.csv"))
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(InputError, match=r"folder\.csv: is a folder, not a manifest file"):
        read_manifest(str(tmp_path / "folder.csv"))
    (tmp_path / "latin.csv").write_bytes(b"video\nvid\xe9o.mp4\n")
    with pytest.raises(InputError, match=r"latin\.csv:2: not UTF-8 text"):
        read_manifest(str(tmp_path / "latin.csv"))


def test_load_inputs_picks_manifest_or_folder(tmp_path: Path) -> None:
    touch(tmp_path, "v/a.mp4")
    (tmp_path / "m.csv").write_text("video\nv/a.mp4\n")
    assert load_inputs(str(tmp_path / "m.csv")).inputs == (
        VideoInput("a", str(tmp_path / "v/a.mp4")),
    )
    assert load_inputs(str(tmp_path / "v")).inputs == (VideoInput("a", str(tmp_path / "v/a.mp4")),)


# --- checks and value types -------------------------------------------------------------------


def test_check_inputs_lists_the_first_duplicates_with_their_files() -> None:
    items = [VideoInput(f"v{k % 7}", f"/data/{k}.mp4") for k in range(21)]
    with pytest.raises(InputError) as e:
        check_inputs(items)
    message = str(e.value)
    assert message.startswith("7 video ids are used by more than one video: 'v0': /data/0.mp4, ")
    assert "'v4': /data/4.mp4, /data/11.mp4, /data/18.mp4;" in message
    assert "'v5'" not in message
    assert "; and 2 more. Rename the files, or list them in a manifest" in message
    check_inputs(items[:7])


def test_check_inputs_warns_about_a_video_listed_twice(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="pipelines.inputs"):
        check_inputs([VideoInput("a", "/v.mp4"), VideoInput("b", "/v.mp4")])
    assert "listed more than once" in caplog.text


def test_video_input_round_trip_and_checks() -> None:
    item = VideoInput("a.b-c_1", "s3://b/a.mp4", "s3://b/a.vtt")
    assert VideoInput.from_dict(json.loads(json.dumps(item.to_dict()))) == item
    assert item.to_dict()["type"] == "video_input"
    with pytest.raises(ValueError, match="expected a 'video_input' record"):
        VideoInput.from_dict({"type": "cue", "video_id": "a", "video_uri": "x"})
    with pytest.raises(ValueError, match="unknown fields"):
        VideoInput.from_dict({**item.to_dict(), "size": 3})
    with pytest.raises(ValueError, match="missing 1 required"):
        VideoInput.from_dict({"type": "video_input", "video_id": "a"})
    with pytest.raises(InputError, match=r"/v\.mp4: video id '\.\./x' is not a safe id"):
        VideoInput("../x", "/v.mp4")
    with pytest.raises(InputError, match="empty video path"):
        VideoInput("a", "")


def test_input_error_pickles() -> None:
    error = InputError("bad", "m.csv", 3)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.source, copy.line) == ("m.csv:3: bad", "m.csv", 3)


# --- HowTo100M --------------------------------------------------------------------------------

CAPTIONS = {
    "vidEN": {"start": [0, 2], "end": [2, 4], "text": ["so today we make", "a cake"]},
    "vidFR": {"start": [0], "end": [3], "text": ["bonjour à tous"]},
    "vidMUSIC": {"start": [0], "end": [3], "text": ["[Music]"]},
    "vidEMPTY": {"start": [], "end": [], "text": []},
    "noVideo": {"start": [0], "end": [1], "text": ["x"]},
}

FAKE_LANGUAGES = {
    "so today we make a cake": ("en", 0.99),
    "bonjour à tous": ("fr", 0.97),
    "[Music]": ("de", 0.1),
}


@pytest.fixture
def howto(mem: str) -> tuple[str, str]:
    for name in ("vidEN.mp4", "vidEN.vtt", "part1/vidFR.mp4", "vidMUSIC.mp4", "vidEMPTY.mp4"):
        put(f"{mem}/videos/{name}")
    put(f"{mem}/videos/nocaps.mp4")
    put(f"{mem}/caption.json", json.dumps(CAPTIONS))
    return f"{mem}/videos", f"{mem}/caption.json"


@pytest.fixture
def fake_detector(monkeypatch) -> list[str]:
    seen: list[str] = []

    def detect(text: str) -> tuple[str, float]:
        seen.append(text)
        return FAKE_LANGUAGES.get(text, ("und", 0.0))

    monkeypatch.setattr(inputs, "detect_language", detect)
    return seen


def test_howto100m_language_filter(howto: tuple[str, str], fake_detector: list[str]) -> None:
    videos, caption_json = howto
    kept, captions, excluded = howto100m_inputs(videos, caption_json, language="en")
    assert [(v.video_id, v.caption_key) for v in kept] == [
        ("nocaps", None),
        ("vidEMPTY", "vidEMPTY"),
        ("vidEN", "vidEN"),
        ("vidMUSIC", "vidMUSIC"),
    ]
    assert all(v.subtitle_uri is None for v in kept)  # vidEN.vtt gives way to the JSON
    assert captions.cues("vidEN") == [Cue(0.0, 2.0, "so today we make"), Cue(2.0, 4.0, "a cake")]
    assert excluded == [
        {
            "video_id": "part1__vidFR",  # matched by its file's stem
            "video_uri": f"{videos}/part1/vidFR.mp4",
            "reason": "language",
            "language": "fr",
            "confidence": 0.97,
        }
    ]
    # "" first: the detector is loaded before any work. Then each caption entry's text once,
    # in file order, while the index is built ("noVideo" too); vidEMPTY has no text to detect.
    assert fake_detector == ["", "so today we make a cake", "bonjour à tous", "[Music]", "x"]
    # The index is reused: nothing is detected again, and the result is the same.
    again = howto100m_inputs(videos, caption_json, language="en")
    assert fake_detector[5:] == [""]
    assert again[0] == kept and again[2] == excluded and again[1].path == captions.path


def test_howto100m_without_language_detects_nothing(
    howto: tuple[str, str], fake_detector: list[str]
) -> None:
    kept, captions, excluded = howto100m_inputs(*howto, language=None)
    assert len(kept) == 5 and excluded == [] and fake_detector == []
    [fr] = [v for v in kept if v.video_id == "part1__vidFR"]
    assert fr.caption_key == "vidFR" and captions.language("vidFR") is None
    assert captions.cues("vidFR") == [Cue(0.0, 3.0, "bonjour à tous")]


def test_howto100m_min_confidence(howto: tuple[str, str], fake_detector: list[str]) -> None:
    _, _, excluded = howto100m_inputs(*howto, language="en", min_confidence=0.98)
    assert excluded == []
    _, _, excluded = howto100m_inputs(*howto, language="en", min_confidence=0.05)
    assert [x["video_id"] for x in excluded] == ["part1__vidFR", "vidMUSIC"]
    with pytest.raises(InputError, match="min_confidence must be in"):
        howto100m_inputs(*howto, min_confidence=2.0)
    with pytest.raises(InputError, match="language must be a language code"):
        howto100m_inputs(*howto, language="english!")


def test_howto100m_ambiguous_stem_is_not_matched(mem: str, fake_detector: list[str]) -> None:
    put(f"{mem}/v/a/vidEN.mp4")
    put(f"{mem}/v/b/vidEN.mp4")
    put(f"{mem}/c.json", json.dumps({"vidEN": CAPTIONS["vidEN"]}))
    kept, _, _ = howto100m_inputs(f"{mem}/v", f"{mem}/c.json")
    assert [(v.video_id, v.caption_key) for v in kept] == [("a__vidEN", None), ("b__vidEN", None)]


_BACKWARDS = {"start": [0, 2], "end": [2, 1], "text": ["a", "b"]}


@pytest.mark.parametrize(
    ("strict", "entry", "problem"),
    [
        # strict: one malformed cue fails the video, as before the readers recovered
        (True, _BACKWARDS, "video 'vidEN' [1]: cue ends before it starts: 2.0 > 1.0"),
        (
            False,
            {"start": [0, 2], "end": [2], "text": ["a", "b"]},
            "video 'vidEN': lists of different length {'start': 2, 'end': 1, 'text': 2}",
        ),
    ],
)
def test_howto100m_bad_caption_entry_fails_that_video_only(
    howto: tuple[str, str],
    fake_detector: list[str],
    tmp_path: Path,
    strict: bool,
    entry: dict,
    problem: str,
) -> None:
    """One malformed entry fails its video (an errors.jsonl row's fields, with the caption
    file, line and byte); the others go on, and the language filter still runs."""
    videos, captions = howto
    entries = {**CAPTIONS, "vidEN": entry}
    text = json.dumps(entries, indent=1)
    put(captions, text)
    line = text.splitlines().index(' "vidEN": {') + 1
    byte = text.encode().index(b'"vidEN"')
    kept, index, excluded = howto100m_inputs(videos, captions, language="en", strict=strict)
    assert [(v.video_id, v.caption_key) for v in kept] == [
        ("nocaps", None),
        ("vidEMPTY", "vidEMPTY"),
        ("vidMUSIC", "vidMUSIC"),
    ]
    with pytest.raises(SubtitleError) as info:  # looking it up fails the same way
        index.cues("vidEN", strict=strict)
    assert (info.value.video_id, info.value.line, info.value.offset) == ("vidEN", line, byte)
    assert excluded == [
        {
            "video_id": "part1__vidFR",
            "video_uri": f"{videos}/part1/vidFR.mp4",
            "reason": "language",
            "language": "fr",
            "confidence": 0.97,
        },
        {
            "video_id": "vidEN",
            "video_uri": f"{videos}/vidEN.mp4",
            "reason": "bad_captions",
            "stage": "subtitles",
            "error_type": "SubtitleError",
            "error": f"{captions}:{line}: {problem} (at byte {byte})",
        },
    ]
    # The fields are what hero_data's ErrorLog records as a failed input.
    failed = excluded[1]
    ErrorLog(tmp_path).record(
        video_id=failed["video_id"],
        source=failed["video_uri"],
        stage=failed["stage"],
        error_type=failed["error_type"],
        message=failed["error"],
    )
    (row,) = read_errors(tmp_path)
    assert (row["video_id"], row["stage"], row["error_type"]) == (
        "vidEN",
        "subtitles",
        "SubtitleError",
    )


def test_howto100m_malformed_cue_costs_that_cue_unless_strict(
    howto: tuple[str, str], fake_detector: list[str]
) -> None:
    videos, captions = howto
    put(captions, json.dumps({**CAPTIONS, "vidEN": _BACKWARDS}))
    kept, index, excluded = howto100m_inputs(videos, captions, language=None)
    assert "vidEN" in [v.video_id for v in kept] and excluded == []
    cues, report = index.cues_report("vidEN")
    assert cues == [Cue(0.0, 2.0, "a"), Cue(2.0, 2.0, "b")]
    assert report.counts() == {"skipped": {}, "repaired": {"end_before_start": 1}}
    kept, _, excluded = howto100m_inputs(videos, captions, language=None, strict=True)
    assert "vidEN" not in [v.video_id for v in kept]
    assert [(x["video_id"], x["reason"]) for x in excluded] == [("vidEN", "bad_captions")]


def test_howto100m_bad_entry_matched_by_stem_and_remote_file_named(
    mem: str, fake_detector: list[str]
) -> None:
    put(f"{mem}/v/a.mp4")
    put(f"{mem}/v/sub/b.mp4")
    text = '{"a": {"start": [0], "end": [1], "text": ["x"]},\n"b": {"start": [0]}}'
    put(f"{mem}/c.json", text)
    kept, _, excluded = howto100m_inputs(f"{mem}/v", f"{mem}/c.json", language=None)
    assert [(v.video_id, v.caption_key) for v in kept] == [("a", "a")]
    assert [(x["video_id"], x["reason"]) for x in excluded] == [("sub__b", "bad_captions")]
    # The remote file's own name (it is streamed, never copied), and the byte of "b".
    assert excluded[0]["error"] == (
        f"{mem}/c.json:2: video 'b': missing or bad 'end' list: NoneType (at byte 49)"
    )
    assert text[49:52] == '"b"'


def test_howto100m_caption_file_broken_as_a_whole_still_raises(mem: str) -> None:
    put(f"{mem}/v/a.mp4")
    put(f"{mem}/c.json", '{"a": {"start": [0],')
    with pytest.raises(SubtitleError, match=rf"^{mem}/c\.json:1: invalid JSON"):
        howto100m_inputs(f"{mem}/v", f"{mem}/c.json", language=None)
    put(f"{mem}/c.json", "[]")
    with pytest.raises(SubtitleError, match=rf"^{mem}/c\.json:1: expected a JSON object of videos"):
        howto100m_inputs(f"{mem}/v", f"{mem}/c.json", language=None)


def test_missing_detector_package_is_a_clear_error(howto, monkeypatch) -> None:
    inputs._language_identifier.cache_clear()
    monkeypatch.setitem(sys.modules, "py3langid", None)
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)
    try:
        with pytest.raises(InputError, match=r"^language filtering needs py3langid: pip install"):
            howto100m_inputs(*howto, language="en")
    finally:
        inputs._language_identifier.cache_clear()


@pytest.mark.skipif(
    importlib.util.find_spec("py3langid") is None,
    reason="py3langid is not installed (the language filter's optional dependency)",
)
def test_real_detector_tells_english_from_french(howto: tuple[str, str]) -> None:
    assert inputs.detect_language("so now you take the screwdriver and turn it")[0] == "en"
    lang, confidence = inputs.detect_language("alors on prend le tournevis et on le tourne")
    assert lang == "fr" and 0.5 < confidence <= 1.0
    _, _, excluded = howto100m_inputs(*howto, language="en")
    assert [x["video_id"] for x in excluded] == ["part1__vidFR"]
