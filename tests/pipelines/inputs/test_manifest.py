"""Inputs from a CSV or JSONL manifest: rows, relative and remote paths, errors naming the
file and line; load_inputs picks a manifest or a folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pipelines.inputs import (
    InputError,
    VideoInput,
    load_inputs,
    read_manifest,
)
from tests.pipelines.inputs.support import put, touch

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
    (
        "video,fps\nf1,3\nf2,fast\n",
        3,
        r"'fps' must be a number of frames per second in \(0, 10000\] \(3, 29.97, "
        r"30000/1001\), got 'fast'",
    ),
    ("video,fps\nf1,0\n", 2, r"'fps' must be a number of frames .*, got '0'"),
    ("video,fps\nf1,3/0\n", 2, r"'fps' must be a number of frames .*, got '3/0'"),
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
    ('{"video": "f", "fps": -3}\n', 1, r"'fps' must be a number of frames .*, got -3"),
    ('{"video": "f", "fps": true}\n', 1, r"'fps' must be a number of frames .*, got True"),
    ('{"video": "f", "fps": [3]}\n', 1, r"'fps' must be a number of frames .*, got \[3\]"),
    ('{"video": "f", "fps": NaN}\n', 1, r"'fps' must be a number of frames .*, got nan"),
    ('{"video": "f", "fps": "1e99999999"}\n', 1, r"'fps' must be a number .*, got '1e99999999'"),
    ('{"video": "f", "fps": 20000}\n', 1, r"'fps' must be a number .*, got 20000"),
    ('{"video": "f", "fps": 1' + "0" * 4000 + "}\n", 1, r"'fps' must be a number .*, got 10000"),
]


def test_a_frame_folders_fps_is_read_exactly(tmp_path: Path) -> None:
    """The ``fps`` column (CSV text, or a JSON number or string) as an exact fraction's text,
    for the frame folder it belongs to; no value, no fps."""
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("video,fps\nf1,3\nf2,29.97\nf3,30000/1001\nv.mp4,\n")
    jsonl = tmp_path / "m.jsonl"
    rows = [
        {"video": "f1", "fps": 3},
        {"video": "f2", "fps": 29.97},
        {"video": "f3", "fps": " 3.0 "},
    ]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [v.fps for v in read_manifest(str(csv_path))] == ["3", "2997/100", "30000/1001", None]
    assert [v.fps for v in read_manifest(str(jsonl))] == ["3", "2997/100", "3"]


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
