"""Inputs from a folder: listing, subtitle matching by name and language, ids, remote folders."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from hero_data.types import Cue, check_id
from pipelines.inputs import (
    VIDEO_EXTENSIONS,
    InputError,
    Listing,
    VideoInput,
    check_inputs,
    list_folder,
    open_local,
    read_subtitle_cues,
)
from tests.pipelines.inputs.support import VTT, by_id, put, touch

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
    names = [f"v{k}.{ext.upper() if k % 2 else ext}" for k, ext in enumerate(VIDEO_EXTENSIONS)]
    touch(tmp_path, *names, "v.gif", "v.mp3")
    assert len(list_folder(str(tmp_path)).inputs) == len(VIDEO_EXTENSIONS)


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


# --- frame folders ------------------------------------------------------------------------------


def test_a_folder_with_frames_json_is_one_video(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "show/ep.01/frames.json",
        "show/ep.01/00001.jpg",
        "show/ep.01/inner/x.mp4",  # inside a frame folder: not a video of its own
        "show/ep.01/00001.vtt",
        "show/ep.01.vtt",
        "show/plain/00001.jpg",  # no frames.json: not a video
        "show/clip.mp4",
    )
    listing = list_folder(str(tmp_path))
    videos = by_id(listing)
    assert sorted(videos) == ["show__clip", "show__ep.01"]
    assert videos["show__ep.01"].video_uri == f"{tmp_path}/show/ep.01"
    assert videos["show__ep.01"].subtitle_uri == f"{tmp_path}/show/ep.01.vtt"
    assert listing.orphan_subtitles == ()
    check_inputs(listing.inputs)


def test_a_root_that_is_a_frame_folder_is_one_video(tmp_path: Path) -> None:
    touch(tmp_path, "clip 7/frames.json", "clip 7/00001.jpg")
    listing = list_folder(str(tmp_path / "clip 7"))
    assert listing.inputs == (VideoInput("clip_7", f"{tmp_path}/clip 7"),)


def test_open_local_copies_a_remote_frame_folder(mem: str) -> None:
    put(f"{mem}/ep01/frames.json", b'{"fps": 3}')
    put(f"{mem}/ep01/00001.jpg", b"jpeg")
    with open_local(f"{mem}/ep01") as path:
        assert os.path.basename(path) == "ep01"
        assert sorted(os.listdir(path)) == ["00001.jpg", "frames.json"]
        assert Path(path, "frames.json").read_bytes() == b'{"fps": 3}'
    assert not os.path.exists(path)
