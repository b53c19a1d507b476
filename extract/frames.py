"""Frame folders: a folder of ordered still images that stands for a video.

TVQA and TVR distribute their videos as folders of JPEG frames at 3 fps. Such a folder is one
video when its frame rate is stated: by the run's manifest (an ``fps`` column, passed here as
``fps``), or by a side file in the folder, :data:`FRAMES_FILE` (``frames.json``)::

    s01e02_seg02_clip_00/
        frames.json         {"fps": 3}
        00001.jpg           frame 0, shown from 0 s to 1/3 s
        00002.jpg           frame 1, shown from 1/3 s to 2/3 s
        ...

Rules (:func:`read_frame_folder`):

- ``fps`` is a JSON number, or a fraction as a string (``"30000/1001"``), in
  ``(0, MAX_FRAME_RATE]``; it is the only key. A rate stated both in the manifest and in
  ``frames.json`` must be the same one.
- Frames are the files ending in ``.jpg``, ``.jpeg`` or ``.png`` (any case); files whose name
  starts with ``.`` and any other file or sub-folder are ignored. They are ordered by the last
  number in their name (``00001.jpg``, ``frame_12.png``, ``img7-v2.jpg`` → 2): every frame
  needs one, and no two may share one. Gaps in the numbering are allowed (logged): frame
  ``k`` of the order shows at ``k / fps`` whatever its number, and the video lasts
  ``n / fps`` for ``n`` frames.
- A frame is decoded by PyAV's image decoders (FFmpeg's ``mjpeg`` and ``png``) only when a step
  uses it, and every frame decoded must have the size of the first one decoded. Frames are
  taken as stored: no EXIF orientation is applied.

Every problem (no fps stated, a bad fps, two that differ, no frame, a frame without a number,
an unreadable or odd-sized frame) is a :class:`extract.decode.DecodeError` naming the folder
and the problem, so a run records that input as failed and goes on. :mod:`extract.decode`
turns a frame folder into steps exactly as it does a video's frames
(:func:`extract.decode.iter_steps` and :func:`extract.decode.probe` take the folder's path).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from typing import Any

import av

from extract.decode import MAX_VIDEO_SECONDS, DecodeError
from hero_data.grid import MAX_FRAME_RATE, parse_frame_rate

log = logging.getLogger(__name__)

FRAMES_FILE = "frames.json"
"""The side file that makes a folder of images one video: ``{"fps": 3}``."""

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")
"""Extensions (lower case, no dot) of the files that are a frame folder's frames."""

_NUMBER = re.compile(r"\d+")
_MAX_FRAMES_FILE_BYTES = 4096  # frames.json holds one number


@dataclass(frozen=True)
class FrameFolder:
    """A frame folder read by :func:`read_frame_folder`.

    Attributes:
        path: the folder.
        fps: frames per second, exact (``frames.json``'s ``fps``).
        files: names of the frame files in their order; frame ``k`` shows from ``k / fps``
            to ``(k + 1) / fps`` seconds.
    """

    path: str
    fps: Fraction
    files: tuple[str, ...]

    @property
    def times(self) -> list[Fraction]:
        """Each frame's time, seconds: ``k / fps``."""
        return [k / self.fps for k in range(len(self.files))]

    @property
    def duration(self) -> Fraction:
        """Seconds the frames last: ``n / fps``."""
        return len(self.files) / self.fps


def _fps(value: Any, path: str, where: str = FRAMES_FILE) -> Fraction:
    """An ``fps`` (``where`` stated it) as an exact fraction, or a :class:`DecodeError`."""
    bad = (
        f"{where}: fps must be a number of frames per second in (0, {MAX_FRAME_RATE}] "
        f'(e.g. {{"fps": 3}}, or "30000/1001"), got {value!r:.40}'
    )
    try:
        return parse_frame_rate(value)
    except ValueError:
        raise DecodeError(path, bad) from None


def _read_fps(path: str, stated: str | None = None) -> Fraction:
    """The folder's fps: ``stated`` (the manifest's), else ``frames.json``'s; both must
    agree where both are given."""
    side = os.path.join(path, FRAMES_FILE)
    fps = None if stated is None else _fps(stated, path, "the manifest")
    try:
        with open(side, "rb") as f:
            data = f.read(_MAX_FRAMES_FILE_BYTES + 1)
    except FileNotFoundError:
        if fps is not None:
            return fps
        raise DecodeError(
            path,
            f"a folder without {FRAMES_FILE}: a folder of frames states its frame rate in "
            f'{FRAMES_FILE}, e.g. {{"fps": 3}}, or in the manifest\'s fps column',
        ) from None
    except OSError as e:
        raise DecodeError(path, f"cannot read {FRAMES_FILE} ({e})") from e
    if len(data) > _MAX_FRAMES_FILE_BYTES:
        raise DecodeError(path, f"{FRAMES_FILE} is larger than {_MAX_FRAMES_FILE_BYTES} bytes")
    try:
        obj = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:
        raise DecodeError(path, f"{FRAMES_FILE} is not valid JSON ({e})") from None
    if not isinstance(obj, dict) or "fps" not in obj:
        raise DecodeError(
            path, f'{FRAMES_FILE} must be a JSON object with "fps", e.g. {{"fps": 3}}'
        )
    unknown = sorted(k for k in obj if k != "fps")
    if unknown:
        raise DecodeError(
            path, f'{FRAMES_FILE}: unknown keys {unknown!r:.80}; "fps" is the only one'
        )
    own = _fps(obj["fps"], path)
    if fps is not None and own != fps:
        raise DecodeError(
            path, f"the manifest states fps {fps}, its {FRAMES_FILE} {own}: give one rate"
        )
    return own


def read_frame_folder(path: str | os.PathLike[str], fps: str | None = None) -> FrameFolder:
    """The frame rate and ordered frame files of a frame folder (rules in the module
    docstring); reads no image. ``fps``: the rate the manifest states (``"3"``,
    ``"30000/1001"``), if any. Raises :class:`DecodeError` naming the folder."""
    name = os.fspath(path)
    if not os.path.isdir(name):
        raise DecodeError(name, "no such folder")
    fps_ = _read_fps(name, fps)
    try:
        entries = os.listdir(name)
    except OSError as e:
        raise DecodeError(name, f"cannot list the folder ({e})") from e
    numbered: dict[int, str] = {}
    for entry in entries:
        stem, ext = os.path.splitext(entry)
        if entry.startswith(".") or ext.lower().lstrip(".") not in IMAGE_EXTENSIONS:
            continue
        if not os.path.isfile(os.path.join(name, entry)):
            continue
        digits = _NUMBER.findall(stem)
        if not digits:
            raise DecodeError(
                name,
                f"frame {entry!r} has no number in its name: frames are ordered by the number "
                "in their names (00001.jpg, 00002.jpg, ...)",
            )
        number = int(digits[-1])
        if number in numbered:
            first, second = sorted((numbered[number], entry))
            raise DecodeError(
                name, f"frames {first!r} and {second!r} have the same number {number}"
            )
        numbered[number] = entry
    if not numbered:
        raise DecodeError(
            name, f"no frames: no {', '.join('.' + e for e in IMAGE_EXTENSIONS)} file"
        )
    order = sorted(numbered)
    gaps = sum(1 for a, b in pairwise(order) if b != a + 1)
    if gaps:
        log.warning(
            "%s: the frame numbers have %d gaps (frames are timed by their order, not number)",
            name,
            gaps,
        )
    folder = FrameFolder(name, fps_, tuple(numbered[n] for n in order))
    if folder.duration > MAX_VIDEO_SECONDS:
        raise DecodeError(
            name,
            f"{len(order):,} frames at {fps_} fps last {float(folder.duration):.6g} s, more than "
            f"the {MAX_VIDEO_SECONDS:g} s a video may last",
        )
    return folder


def read_image(path: str, file: str) -> tuple[Any, str]:
    """Frame ``file`` of folder ``path``, decoded by PyAV: ``(av.VideoFrame, codec name)``.

    JPEG frames come out in their YUV (``yuvj420p`` mostly), PNG frames in RGB; the decoders
    in :mod:`extract.decode` convert either. Any failure is a :class:`DecodeError` naming the
    folder and the file.
    """
    where = os.path.join(path, file)
    try:
        with av.open(where, mode="r") as container:
            if not container.streams.video:
                raise DecodeError(path, f"frame {file!r}: not an image")
            stream = container.streams.video[0]
            frame = next(iter(container.decode(stream)), None)
            codec = stream.codec_context.name
    except av.FFmpegError as e:
        raise DecodeError(path, f"frame {file!r} is not a readable image ({e})") from e
    except OSError as e:
        raise DecodeError(path, f"cannot read frame {file!r} ({e})") from e
    if frame is None:
        raise DecodeError(path, f"frame {file!r}: no image decoded")
    return frame, codec
