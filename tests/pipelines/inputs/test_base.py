"""What the input sources share: local copies of remote files, subtitle files, the id checks
and the value types."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest

from align.readers import SubtitleError
from hero_data.types import Cue
from pipelines.inputs import (
    InputError,
    VideoInput,
    check_inputs,
    open_local,
    read_subtitle_cues,
    read_subtitle_cues_report,
)
from tests.pipelines.inputs.support import VTT, put, touch

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
