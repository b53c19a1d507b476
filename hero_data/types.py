"""Core value types: small frozen dataclasses, changed only by making copies.

Times are float seconds everywhere. Each type serializes to a plain dict carrying a ``type`` tag
(:meth:`to_dict`) and comes back with :meth:`from_dict`, which checks the tag.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace
from fractions import Fraction
from typing import Any, ClassVar, TypeVar

from hero_data.errors import IdError

T = TypeVar("T", bound="Tagged")

_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_\-.]*$")


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


def check_id(kind: str, value: str) -> str:
    """Return ``value`` if it is safe as a file-name part, else raise :class:`IdError` (a
    ``ValueError``).

    Safe: non-empty, at most 200 characters of letters, digits, ``_``, ``-`` and ``.``, not
    starting with ``.`` (so no ``..``, no slashes, no control characters).
    """
    if not isinstance(value, str) or len(value) > 200 or not _SAFE_ID.fullmatch(value):
        raise IdError(
            f"{kind} {value!r} is not a safe id: use 1-200 letters, digits, '_', '-' or '.', "
            "not starting with '.'"
        )
    return value


def safe_id(name: str) -> str:
    """``name`` made into a safe id (see :func:`check_id`): other characters become ``_``.

    Leading dots are dropped and the result is cut to 200 characters; an empty result is
    ``"_"``. Different names can map to the same id: callers that need unique ids check that.
    """
    out = re.sub(r"[^A-Za-z0-9_\-.]", "_", name).lstrip(".")[:200]
    return out or "_"


class Tagged:
    """Base of frozen dataclasses serialized as plain dicts with a ``type`` tag (``TYPE``)."""

    TYPE: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict with a ``type`` tag."""
        out: dict[str, Any] = {"type": self.TYPE}
        for k, v in asdict(self).items():  # type: ignore[call-overload]
            out[k] = str(v) if isinstance(v, Fraction) else v
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Inverse of :meth:`to_dict`; ``ValueError`` on a wrong tag, unknown or missing field."""
        data = dict(data)
        tag = data.pop("type", None)
        if tag != cls.TYPE:
            raise ValueError(f"expected a {cls.TYPE!r} record, got type {tag!r}")
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{cls.TYPE}: unknown fields {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as e:  # a required field is missing
            raise ValueError(f"{cls.TYPE}: {e}") from None


@dataclass(frozen=True)
class VideoInfo(Tagged):
    """What probing a video file tells us.

    Attributes:
        uri: local path or filesystem URI (``s3://…``) of the file.
        video_id: the video's id, unique in a corpus and safe as a file-name part.
        duration: seconds of video stream (from presentation timestamps where known).
        fps: average frame rate as an exact fraction, frames per second (e.g. 30000/1001).
        width: coded width in pixels, before rotation.
        height: coded height in pixels, before rotation.
        rotation: display rotation in degrees clockwise: 0, 90, 180 or 270.
        codec: video codec name as FFmpeg reports it (``h264``, ``vp9``...).
        has_audio: whether the file has an audio stream.
    """

    TYPE: ClassVar[str] = "video_info"

    uri: str
    video_id: str
    duration: float
    fps: Fraction
    width: int
    height: int
    rotation: int = 0
    codec: str = ""
    has_audio: bool = False

    def __post_init__(self) -> None:
        check_id("video id", self.video_id)
        if _finite("duration", self.duration) < 0:
            raise ValueError(f"{self.uri}: negative duration {self.duration} s")
        fps = Fraction(self.fps) if not isinstance(self.fps, Fraction) else self.fps
        if fps <= 0:
            raise ValueError(f"{self.uri}: frame rate must be positive, got {self.fps}")
        object.__setattr__(self, "fps", fps)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"{self.uri}: bad frame size {self.width}x{self.height}")
        if self.rotation not in (0, 90, 180, 270):
            raise ValueError(f"{self.uri}: rotation must be 0/90/180/270, got {self.rotation}")

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown, after rotation."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class Cue(Tagged):
    """One subtitle cue.

    Attributes:
        start: start in seconds (source- or clip-relative, as the holder says).
        end: end in seconds, ``end >= start``.
        text: the cue's text, cleaned of markup.
        speaker: speaker name when the subtitle names one, else ``None``.
    """

    TYPE: ClassVar[str] = "cue"

    start: float
    end: float
    text: str
    speaker: str | None = None

    def __post_init__(self) -> None:
        start, end = _finite("cue start", self.start), _finite("cue end", self.end)
        if end < start:
            raise ValueError(f"cue ends ({end} s) before it starts ({start} s): {self.text!r}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.end - self.start

    def shifted(self, offset: float) -> Cue:
        """A copy moved by ``offset`` seconds (e.g. ``-clip.start`` to make it clip-relative)."""
        return replace(self, start=self.start + offset, end=self.end + offset)


@dataclass(frozen=True)
class Clip(Tagged):
    """A window of a video: clip ``index`` of ``video_id``, ``[start, end)`` source seconds.

    Its id is ``f"{video_id}.{index}"``, HERO's naming for 60 s clips.
    """

    TYPE: ClassVar[str] = "clip"

    video_id: str
    index: int
    start: float
    end: float

    def __post_init__(self) -> None:
        check_id("video id", self.video_id)
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise ValueError(f"clip index must be a non-negative int, got {self.index!r}")
        start, end = _finite("clip start", self.start), _finite("clip end", self.end)
        if not 0 <= start < end:
            raise ValueError(
                f"clip {self.video_id}.{self.index}: need 0 <= start < end, got [{start}, {end})"
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @property
    def clip_id(self) -> str:
        """``<video_id>.<index>``."""
        return f"{self.video_id}.{self.index}"

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.end - self.start
