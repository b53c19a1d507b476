"""Decoding a video into feature steps: one sequential pass, a 2D sample and a 3D window per step.

Step ``i`` covers ``[i·L, (i+1)·L)`` seconds of the video (``L`` = frame interval, 1.5 s). Its
frames are chosen by presentation time, with the rules of :mod:`hero_data.grid`:

- A frame's time is its presentation timestamp as an exact fraction, ``pts · time_base``,
  relative to the video stream's first frame (the stream's ``start_time``, which FFmpeg derives
  from the first frame's pts; the first decoded frame's pts when the container has none). Frame
  counts and nominal rates from the container are never used to place frames, so variable
  frame rate is fine. (Each step reports the stream's average rate, :class:`StepTimes`, for
  the ``hero`` SlowFast rule of :mod:`extract.sampling`.)
- The frame *before* time ``t`` is the last decoded frame with time ``< t`` (strict), or the
  first frame if there is none.
- The 2D sample of step ``i`` is the frame before ``(i + ½)·L``; at the end of the video that is
  the last frame. This is exactly what ffmpeg's ``fps=1/L`` filter emits for output ``i``: with
  its default rounding (``near``) it gives output slot ``n`` of rate ``r`` the last frame whose
  time rounds (halves away from zero) to ``<= n``, i.e. whose time is ``< (n + ½)/r``. HERO's
  extractor sampled its 2D frames with that filter.
- Slot ``j`` (0 … ``round(L·30)`` − 1, 45 at L = 1.5 s) of step ``i``'s 3D window is the frame
  before ``i·L + (j + ½)/30``: the video resampled to 30 fps the way ``fps=30`` does. Slots past
  the end of the video repeat the last frame.
- The video lasts ``D`` = the end of its last frame (its time plus its duration, or ``1/fps``
  when the frame has none), and has ``ceil(D / L)`` steps (:func:`hero_data.grid.num_steps`).
  ``D`` is found when decoding reaches the end, so a container that lies about its duration (or
  a truncated file) changes nothing. :func:`probe` only reports what the container *says*, which
  may differ (e.g. a Matroska file's duration includes a longer audio track).
- Frames come out as displayed: the display matrix's rotation (a multiple of 90°) is applied.

Each frame a step uses is scaled once, so that its short side is 224 pixels (aspect ratio kept,
the long side truncated as HERO's extractor did, sample aspect ratio ignored); the 2D image is
that frame, a 3D slot is its centre 224×224 crop, starting at ``int((w − 224) / 2)``.
The PyAV path converts and scales in one swscale call straight from the decoder's YUV, bicubic,
as ffmpeg's ``scale`` filter did in HERO's extractor. Measured here (640×360 -> 398×224): about
1.1 ms a frame, against about 3 ms for a full-size RGB conversion followed by a bicubic resize
(swscale or torch). Frames that no step uses are decoded but never converted; with
``sampling`` set (the extractor sets it), neither are frames that only fill window slots the
SlowFast rule never reads (under the ``hero`` rule a 30 fps window feeds SlowFast 23 of its 45
slots, so about half the window's conversions are skipped).

Backends (``iter_steps(..., backend=...)``):

- ``"pyav"`` (default): PyAV's bundled FFmpeg, frame-threaded decoding. The default because it
  gives exact timestamps from the decoder itself, scales as HERO's ffmpeg pipeline did, and runs
  wherever PyAV does (decord ships x86-64 wheels only, see pyproject.toml). It is not the
  fastest here: through :func:`iter_steps` at L = 1.5 on a 2-core machine (shared, best of 3),
  flipping_a_pancake.mkv took 0.37 s with pyav and 0.33 s with decord, a 60 s 640×360 30 fps
  H.264 video of moving bars 2.09 s and 1.63 s, one of moving noise 3.48 s and 3.10 s; the
  difference is decord's cheaper scaler.
- ``"decord"``: decord's ``VideoReader``, read sequentially, scaling inside decord (its own
  FFmpeg's scale filter, which comes out closest to bilinear) and rotating by itself. Its
  timestamps are float32, so the exact times come from PyAV demuxing the file first (packets
  only, no decoding) and are checked against decord's to 1 ms. Same frames chosen as ``pyav``;
  pixels equal at the source size, within about 1 grey level on average once scaled.
- ``"torchcodec"``: only when torchcodec is installed (it is not in this project's lock file);
  exact times as for decord, scaling as for decord frames but with swscale's bicubic. Untested
  here. A video with a 180° rotation is refused, since its frames do not show whether
  torchcodec applied it. It decodes on the CPU: no device is passed to its ``VideoDecoder``
  (NVDEC, below, is the ``decoder`` option, not a backend).

With ``pixels="torch"`` (``pyav`` only) nothing is scaled here: each used frame's raw YUV
planes are copied out (:class:`extract.pixels.YUVFrame`) and steps come out as
:class:`StepPlanes`, for :func:`extract.pixels.convert` to scale and convert on the extraction
device in batches.

NVDEC (``iter_steps(..., decoder="nvdec" or "auto")``, with ``pixels="torch"``): torchcodec's
CUDA decoder decodes on the GPU; frame times come from PyAV's demuxing as for ``torchcodec``
above, the frames a step uses are fetched by index and stay on the GPU as
:class:`extract.pixels.RGBFrame` (RGB, full size) in the :class:`StepPlanes`, for
:func:`extract.pixels.convert` to scale there. With ``auto`` a video NVDEC cannot decode (its
codec, or torchcodec's ``cpu_fallback``; :mod:`extract.nvdec`) is decoded by PyAV instead,
``pixels="torch"`` as well; with ``nvdec`` it fails. Not yet run on a GPU.

Frame folders (:mod:`extract.frames`): a folder of still images with a ``frames.json`` stating
its fps stands for a video. Wherever a path is taken (:func:`iter_steps`, :func:`probe`,
:func:`extract.sampling.plan_steps`), a folder is read as one, whatever ``backend`` and
``decoder`` say (those are video decoders): frame ``k`` is at ``k / fps`` and lasts ``1 / fps``,
so the video lasts ``n / fps``, and steps, windows and sampling follow the rules above
unchanged. Frames are decoded by PyAV's image decoders (FFmpeg's ``mjpeg``, ``png``) on the
CPU, only when a step uses them, and converted like video frames: scaled by swscale from their
YUV or RGB, or, with ``pixels="torch"``, handed on as :class:`YUVFrame` (JPEG's 4:2:0 planes)
or as host :class:`RGBFrame` (PNG, other JPEG samplings).

Every failure (missing file, not a video, no video stream, data that stops the decoder, no
frame at all) raises :class:`DecodeError`, never a raw PyAV or decord exception. Errors met
while decoding are raised by the iterator, after the steps before them have been yielded.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from av.video.reformatter import Interpolation, VideoReformatter

from extract.pixels import TORCH_FORMATS, RGBFrame, YUVFrame, yuv_frame
from extract.sampling import SAMPLINGS, pathway_slots
from hero_data.errors import HeroError, OptionError
from hero_data.grid import (
    DEFAULT_FRAME_INTERVAL,
    MAX_FRAME_RATE,
    WINDOW_FPS,
    GridError,
    exact_seconds,
    frame_before,
    num_steps,
    sample_cutoff_2d,
    step_ceil,
    step_floor,
    window_cutoffs_3d,
)
from hero_data.types import VideoInfo, safe_id

log = logging.getLogger(__name__)

SHORT_SIDE = 224
"""Pixels of a frame's short side after scaling; also the side of the 3D window's crop."""

BACKENDS = ("pyav", "decord", "torchcodec")
"""Decoder backends :func:`iter_steps` knows; :func:`available_backends` says which work here."""

MAX_FRAME_PIXELS = 8192 * 8192
"""Most pixels a decoded frame may have (8K UHD, 7680×4320, has half as many). A larger frame
fails its video before it is converted: one such frame in RGB is 200 MB and more."""

MAX_VIDEO_SECONDS = 24 * 3600.0
"""Latest time a frame may show at, or the last frame end at (24 h). Steps between frames
repeat the frame before them, so a timestamp that jumps years ahead would otherwise make
millions of steps; such a video fails instead, with the time it reached."""

_INTERPOLATION = Interpolation.BICUBIC  # ffmpeg's scale filter default
_TIMESTAMP_TOLERANCE = 0.001  # seconds between decord's float32 times and the exact ones


class DecodeError(HeroError):
    """A video that cannot be decoded. ``path`` names the file; the message starts with it."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (Ray ships errors between processes)
        return (type(self), (self.path, self.problem))


def available_backends() -> list[str]:
    """Names of the backends usable in this environment, default first."""
    found = ["pyav"]
    for name in ("decord", "torchcodec"):
        if importlib.util.find_spec(name) is not None:
            found.append(name)
    return found


@dataclass(frozen=True)
class StepTimes:
    """Which source frames one feature step uses, by presentation time.

    Attributes:
        index: the step's index in the video (global: step ``i`` covers ``[i·L, (i+1)·L)``).
        image_time: seconds from the stream's first frame to the frame of the 2D sample.
        window_times: per 3D window slot (``round(L·30)``, 45 at L = 1.5 s), seconds from the
            stream's first frame to the frame in that slot (repeats included).
        frame_rate: the video stream's average frame rate, frames per second (ffprobe's
            ``avg_frame_rate``; FFmpeg's guess when the container has none). The ``hero``
            SlowFast sampling depends on it (:mod:`extract.sampling`).
    """

    index: int
    image_time: Fraction
    window_times: tuple[Fraction, ...]
    frame_rate: Fraction


@dataclass(frozen=True, eq=False)
class StepFrames:
    """The decoded inputs of one feature step.

    Attributes:
        index: the step's index in the video (global: step ``i`` covers ``[i·L, (i+1)·L)``
            source seconds, whatever ``start`` the decode began at).
        image: (H, W, 3) uint8 RGB, the 2D sample scaled so its short side is 224 (aspect
            kept, no crop), in display orientation.
        window: (T, 224, 224, 3) uint8 RGB, the 3D window: T = round(L·30) frames (45 at
            L = 1.5 s) at 30 fps, each scaled to short side 224 and centre-cropped.
        times: which source frames these are (:class:`StepTimes`).
        extra: the same 2D sample scaled from the decoded frame to other short sides, by
            side (:func:`iter_steps`' ``image_sides``; CLIP RN50x4 reads 288).
    """

    index: int
    image: np.ndarray
    window: np.ndarray
    times: StepTimes
    extra: Mapping[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class StepPlanes:
    """One feature step's frames as the decoder gave them, for pixel work elsewhere
    (:func:`iter_steps` with ``pixels="torch"``; :mod:`extract.pixels` converts them).

    Attributes:
        index: as :class:`StepFrames`'.
        image: the 2D sample's frame: its YUV planes on the host
            (:class:`~extract.pixels.YUVFrame`), or, decoded by NVDEC, its RGB on the device
            (:class:`~extract.pixels.RGBFrame`).
        window: per 3D window slot, its frame, or None for a slot no model reads (the same
            object where slots, or steps, share a frame).
        size: (width, height) of a frame as displayed once scaled (short side 224).
        times: which source frames these are (:class:`StepTimes`).
    """

    index: int
    image: YUVFrame | RGBFrame
    window: tuple[YUVFrame | RGBFrame | None, ...]
    size: tuple[int, int]
    times: StepTimes


# --- opening and probing --------------------------------------------------------------------


def _open(path: str) -> Any:
    """``av.open(path)`` for reading, every failure a :class:`DecodeError`."""
    if not os.path.exists(path) and "://" not in path:
        raise DecodeError(path, "no such file")
    try:
        return av.open(path, mode="r")
    except av.FFmpegError as e:
        raise DecodeError(path, f"not a readable video file ({e})") from e
    except OSError as e:
        raise DecodeError(path, f"cannot open ({e})") from e


def _video_stream(container: Any, path: str) -> Any:
    if not container.streams.video:
        raise DecodeError(path, "no video stream")
    return container.streams.video[0]


def _frame_rate(stream: Any, path: str) -> Fraction:
    """The stream's average frame rate (ffprobe's ``avg_frame_rate``), else FFmpeg's guess;
    rates outside ``(0, MAX_FRAME_RATE]`` are skipped."""
    claimed = [stream.average_rate, stream.guessed_rate, stream.base_rate]
    for rate in claimed:
        if rate and 0 < rate <= MAX_FRAME_RATE:
            return Fraction(rate)
    said = ", ".join(f"{float(r):g}" for r in claimed if r) or "none"
    raise DecodeError(
        path,
        f"the video stream has no usable frame rate (it claims {said} fps; "
        f"expected more than 0 and at most {MAX_FRAME_RATE})",
    )


def _check_size(width: int, height: int, path: str) -> None:
    """A :class:`DecodeError` for a frame of more than :data:`MAX_FRAME_PIXELS`."""
    if width * height > MAX_FRAME_PIXELS:
        raise DecodeError(
            path,
            f"a frame of {width}×{height} pixels: more than the {MAX_FRAME_PIXELS:,} "
            "a frame may have",
        )


def _check_time(seconds: Fraction, path: str, what: str) -> None:
    """A :class:`DecodeError` for a frame time past :data:`MAX_VIDEO_SECONDS`."""
    if seconds > MAX_VIDEO_SECONDS:
        raise DecodeError(
            path,
            f"{what} at {float(seconds):.6g} s, past the {MAX_VIDEO_SECONDS:g} s a video "
            "may last (timestamps that jump ahead?)",
        )


@dataclass(frozen=True)
class _StreamInfo:
    """What a frame source says about its stream before its first frame."""

    frame_rate: Fraction  # _frame_rate's


def _clockwise(frame: Any) -> int:
    """Display rotation of a decoded frame, degrees clockwise, rounded to a quarter turn.

    PyAV's ``frame.rotation`` is the display matrix's angle counterclockwise (-90 for a
    phone video to be turned a quarter clockwise); flips in the matrix are ignored.
    """
    return (-round(frame.rotation / 90) * 90) % 360


def _next_frame(frames: Iterator[Any], path: str, after: Fraction | None) -> Any:
    """``next(frames)``, a decoder error raised as :class:`DecodeError`; None at the end."""
    try:
        return next(frames)
    except StopIteration:
        return None
    except av.FFmpegError as e:
        where = "before the first frame" if after is None else f"after {float(after):.3f} s"
        raise DecodeError(path, f"decoding stopped {where}: {e}") from e


class _Ahead:
    """Iterates ``items`` in a background thread, ``size`` items ahead of the consumer.

    PyAV releases the GIL while decoding and while scaling, so on a multi-core machine decoding
    the next frames overlaps converting this one (measured: 4.80 -> 3.74 s for 60 s of 720p
    H.264 on 2 cores, same pixels). Exceptions are re-raised to the consumer; :meth:`close`
    stops the thread (call it before touching the container from another thread).
    """

    _END = object()

    def __init__(self, items: Iterator[Any], size: int = 8) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items: Iterator[Any]) -> None:
        try:
            for item in items:
                if not self._put((item, None)):
                    return
            self._put((self._END, None))
        except BaseException as e:  # raised in the consumer
            self._put((None, e))

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item, error = self._q.get()
        if error is not None:
            raise error
        if item is self._END:
            self._q.put((self._END, None))  # stay exhausted
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def probe(
    path: str | os.PathLike[str], video_id: str | None = None, fps: str | None = None
) -> VideoInfo:
    """What a video file is, read with PyAV; decodes its first frame (for the rotation).

    ``video_id`` defaults to the file's stem made safe (:func:`hero_data.types.safe_id`).
    ``fps``: a frame folder's rate as the manifest states it (:mod:`extract.frames`); a video
    file given one is a :class:`DecodeError` (its own timestamps time it).
    ``duration`` is what the container says: the video stream's duration, else the
    container's (which may include a longer audio track), else 0.0. :func:`iter_steps` counts
    its steps from the decoded frames instead, so the two can disagree for a lying file.
    """
    name = os.fspath(path)
    if os.path.isdir(name):
        return _probe_folder(name, video_id, fps)
    _no_fps_for_a_file(name, fps)
    with _open(name) as container:
        stream = _video_stream(container, name)
        fps = _frame_rate(stream, name)
        first = _next_frame(container.decode(stream), name, None)
        if first is None:
            raise DecodeError(name, "no frame decoded")
        _check_size(first.width, first.height, name)
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        return VideoInfo(
            uri=name,
            video_id=video_id if video_id is not None else safe_id(Path(name).stem),
            duration=max(duration, 0.0),
            fps=fps,
            width=first.width,
            height=first.height,
            rotation=_clockwise(first),
            codec=stream.codec_context.name,
            has_audio=bool(container.streams.audio),
        )


def _no_fps_for_a_file(path: str, fps: str | None) -> None:
    if fps is not None:
        raise DecodeError(
            path, f"the manifest states fps {fps} for a video file: only frame folders take one"
        )


def _probe_folder(path: str, video_id: str | None, fps: str | None) -> VideoInfo:
    """:func:`probe` of a frame folder: its frame count and fps, and its first frame's size.

    Unlike a container's claim, the duration ``n / fps`` is exactly what decoding finds."""
    from extract.frames import read_frame_folder, read_image

    folder = read_frame_folder(path, fps)
    first, codec = read_image(path, folder.files[0])
    _check_size(first.width, first.height, path)
    return VideoInfo(
        uri=path,
        video_id=video_id if video_id is not None else safe_id(Path(path).name),
        duration=float(folder.duration),
        fps=folder.fps,
        width=first.width,
        height=first.height,
        codec=codec,
    )


# --- scaling ----------------------------------------------------------------------------------


def scaled_size(width: int, height: int, short_side: int = SHORT_SIDE) -> tuple[int, int]:
    """(width, height) with the short side ``short_side`` and the aspect ratio kept.

    The long side is truncated, as HERO's extractor computed it (``int(w * 224 / h)``):
    426×240 -> 397×224, 225×127 -> 396×224. (Integer floor division gives the same number: a
    quotient of two integers below 2**26 is never within a float's rounding of an integer
    unless it is one.)
    """
    if width <= height:
        return short_side, height * short_side // width
    return width * short_side // height, short_side


def crop_offset(size: int, side: int = SHORT_SIDE) -> int:
    """First pixel of the centre crop of ``side`` pixels from ``size``: ``int((size − side) / 2)``
    as in HERO's extractor (the extra pixel of an odd margin is on the right / bottom)."""
    return (size - side) // 2


def _rot90_turns(clockwise: int) -> int:
    """``np.rot90``'s ``k`` (counterclockwise quarter turns) for a clockwise rotation."""
    return (-clockwise // 90) % 4


class _Frame:
    """One decoded frame: its exact time, and its scaled images, each made once and on demand.

    ``scale(source, side)`` makes the image at short side ``side``. The source (the decoder's
    frame) is kept while the frame is, as a 2D sample may be wanted at a second side; the
    selection holds one frame at a time.
    """

    __slots__ = ("_images", "_scale", "_source", "duration", "time")

    def __init__(
        self,
        time: Fraction,
        duration: Fraction | None,
        source: Any,
        scale: Callable[[Any, int], Any],
    ) -> None:
        self.time = time
        self.duration = duration
        self._source = source
        self._scale = scale
        self._images: dict[int, Any] = {}

    def image(self, side: int) -> Any:
        """(H, W, 3) uint8 RGB, short side ``side``, display orientation, C-contiguous (or the
        frame's :class:`YUVFrame` / :class:`RGBFrame`, whatever ``side``, when the source
        hands frames on unscaled)."""
        if side not in self._images:
            self._images[side] = self._scale(self._source, side)
        return self._images[side]


# --- the selection: frames in, steps out --------------------------------------------------------


class _Step:
    """Step ``index`` being filled: its cutoffs in time order and what has been chosen.

    With ``side`` None only the chosen frames' times are kept (no pixels are made).
    """

    def __init__(
        self,
        index: int,
        interval: float,
        window_fps: int,
        side: int | None,
        rate: Fraction,
        used: frozenset[int] | None = None,
        planes: bool = False,
        image_sides: tuple[int, ...] = (),
    ) -> None:
        self.index = index
        self.rate = rate
        cuts = [(c, j) for j, c in enumerate(window_cutoffs_3d(index, interval, window_fps))]
        cuts.append((sample_cutoff_2d(index, interval), -1))  # -1: the 2D sample
        self.cutoffs = sorted(cuts, key=lambda cj: cj[0])
        self.filled = 0
        self.side = side
        self.used = used  # window slots given pixels; None: all of them
        self.planes = planes
        self.image_sides = image_sides  # more short sides of the 2D sample (not with planes)
        self.image: Any = None
        self.extra: dict[int, np.ndarray] = {}
        self.image_time: Fraction | None = None
        self.window_times: list[Fraction] = [Fraction(0)] * (len(cuts) - 1)
        self.window: Any = None
        if planes:
            self.window = [None] * (len(cuts) - 1)
        elif side is not None:
            # zeros, not empty: a slot no model reads stays black instead of holding garbage
            self.window = np.zeros((len(cuts) - 1, side, side, 3), np.uint8)

    @property
    def next_cutoff(self) -> Fraction:
        return self.cutoffs[self.filled][0]

    @property
    def done(self) -> bool:
        return self.filled == len(self.cutoffs)

    def fill_next(self, frame: _Frame) -> None:
        """Give the next cutoff (in time order) this frame."""
        slot = self.cutoffs[self.filled][1]
        self.filled += 1
        if slot < 0:
            self.image_time = frame.time
        else:
            self.window_times[slot] = frame.time
        if self.side is None or (slot >= 0 and self.used is not None and slot not in self.used):
            return  # no pixels wanted: the frame is never converted for this slot
        img = frame.image(self.side)
        if self.planes:  # a YUVFrame, shared (never written to)
            if slot < 0:
                self.image = img
            else:
                self.window[slot] = img
            return
        if slot < 0:
            self.image = img.copy()
            self.extra = {s: frame.image(s).copy() for s in self.image_sides}
        else:
            assert self.window is not None
            h, w = img.shape[:2]
            top, left = crop_offset(h, self.side), crop_offset(w, self.side)
            self.window[slot] = img[top : top + self.side, left : left + self.side]

    def times(self) -> StepTimes:
        assert self.image_time is not None
        return StepTimes(self.index, self.image_time, tuple(self.window_times), self.rate)

    def result(self) -> StepFrames | StepPlanes | StepTimes:
        if self.side is None:
            return self.times()
        assert self.image is not None and self.window is not None
        if self.planes:
            image: YUVFrame | RGBFrame = self.image
            size = scaled_size(*image.display_size, self.side)
            return StepPlanes(self.index, image, tuple(self.window), size, self.times())
        return StepFrames(self.index, self.image, self.window, self.times(), self.extra)


def _select(
    frames: Iterator[_StreamInfo | _Frame],
    path: str,
    *,
    first_step: int,
    stop_step: int | None,
    interval: float,
    window_fps: int,
    side: int | None,
    sampling: str | None = None,
    planes: bool = False,
    image_sides: tuple[int, ...] = (),
) -> Iterator[StepFrames | StepPlanes | StepTimes]:
    """Steps ``first_step`` … (``stop_step`` or the end) from frames in decoding order.

    ``frames`` starts with the stream's :class:`_StreamInfo`. Holds the step being filled and
    the last frame seen (the frame *before* every cutoff not yet filled); a frame whose time
    does not increase is dropped. ``side`` None: :class:`StepTimes` only, no pixels.
    ``sampling``: only the window slots this SlowFast rule reads get pixels.
    """
    if stop_step is not None and stop_step <= first_step:
        return
    info = next(frames)
    assert isinstance(info, _StreamInfo)
    used = None
    if sampling is not None:
        window_len = len(window_cutoffs_3d(first_step, interval, window_fps))
        slots = pathway_slots(sampling, window_len, info.frame_rate)
        used = frozenset(slots.fast) | frozenset(slots.slow)

    def new_step(index: int) -> _Step:
        return _Step(index, interval, window_fps, side, info.frame_rate, used, planes, image_sides)

    step = new_step(first_step)
    prev: _Frame | None = None
    dropped = 0
    for frame in frames:
        assert isinstance(frame, _Frame)
        if prev is not None and frame.time <= prev.time:
            dropped += 1
            continue
        _check_time(frame.time, path, "a frame")
        # Every cutoff at or before this frame's time gets the frame before it.
        while step.next_cutoff <= frame.time:
            step.fill_next(prev if prev is not None else frame)
            if step.done:
                yield step.result()
                if stop_step is not None and step.index + 1 >= stop_step:
                    return
                step = new_step(step.index + 1)
        prev = frame
    if dropped:
        log.warning("%s: dropped %d frames whose time did not increase", path, dropped)
    if prev is None:
        raise DecodeError(path, "no frame decoded")
    if prev.duration is None:  # only the last frame must know how long it lasts
        raise DecodeError(path, "the last frame has no duration")
    end = prev.time + prev.duration  # D, the end of the last frame
    _check_time(end, path, "the last frame ends")
    count = num_steps(float(end), interval)
    if stop_step is not None:
        count = min(count, stop_step)
    # The video has ended: the last frame is before every cutoff left.
    while step.index < count:
        while not step.done:
            step.fill_next(prev)
        yield step.result()
        step = new_step(step.index + 1)


# --- backends: each yields _Frame in decoding order ---------------------------------------------


def _swscale_rgb(reformatter: Any, frame: Any, side: int, turns: int) -> np.ndarray:
    """A PyAV frame -> (H, W, 3) uint8 RGB, short side ``side``, in one swscale call (bicubic),
    then ``turns`` counterclockwise quarter turns."""
    width, height = scaled_size(frame.width, frame.height, side)
    rgb = reformatter.reformat(
        frame, width, height, format="rgb24", interpolation=_INTERPOLATION
    ).to_ndarray()  # (H, W, 3)
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _pyav_frames(
    path: str, start: Fraction, first_cutoff: Fraction, planes: bool = False
) -> Iterator[_StreamInfo | _Frame]:
    """The stream's info, then decoded frames from the keyframe before ``start`` (relative
    seconds) on.

    A thread decodes ahead (:class:`_Ahead`) while this one times and scales frames; with
    ``planes`` a frame's "image" is a copy of its YUV planes (:class:`YUVFrame`), not scaled.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        rate = _frame_rate(stream, path)
        fallback = 1 / rate
        yield _StreamInfo(rate)
        origin = stream.start_time  # pts of the first frame, per FFmpeg
        seeked = False
        if start > 0 and origin is not None:
            container.seek(
                origin + math.floor(start / stream.time_base), stream=stream, backward=True
            )
            seeked = True
        reformatter = VideoReformatter()
        turns = 0

        def scale(frame: Any, side: int) -> np.ndarray:
            return _swscale_rgb(reformatter, frame, side, turns)

        def copy_planes(frame: Any, side: int) -> YUVFrame:
            return yuv_frame(frame, turns)  # unscaled: the extraction device scales it

        decoded = _Ahead(container.decode(stream))
        try:
            time: Fraction | None = None
            duration: Fraction | None = None
            first = True
            while (frame := _next_frame(decoded, path, time)) is not None:
                _check_size(frame.width, frame.height, path)
                base = frame.time_base or stream.time_base
                if origin is None and frame.pts is not None:
                    origin = frame.pts
                if frame.pts is not None:
                    time = Fraction(frame.pts - origin) * base
                elif time is not None:  # no timestamp: right after the previous frame
                    time = time + (duration or fallback)
                else:
                    time = Fraction(0)
                duration = Fraction(frame.duration) * base if frame.duration else fallback
                if first:
                    turns = _rot90_turns(_clockwise(frame))
                    first = False
                if seeked and time >= first_cutoff and time > 0:
                    # The seek landed past what the first step needs: decode from the start.
                    log.debug(
                        "%s: seek to %s s overshot to %s s; decoding from 0", path, start, time
                    )
                    seeked = False
                    decoded.close()  # the container is ours again before seeking it
                    container.seek(0)
                    decoded = _Ahead(container.decode(stream))
                    time = None
                    continue
                seeked = False
                yield _Frame(time, duration, frame, copy_planes if planes else scale)
        finally:
            decoded.close()


@dataclass(frozen=True)
class _Index:
    """What the decord and torchcodec backends learn from PyAV before decoding."""

    times: list[Fraction]  # exact frame times in presentation order, seconds
    last_duration: Fraction  # seconds the last frame lasts (1/fps when the file does not say)
    frame_rate: Fraction  # _frame_rate's
    rotation: int  # clockwise degrees
    display: tuple[int, int]  # (height, width) of a frame as displayed, full size
    codec: str  # FFmpeg's name of the stream's codec ("h264")


def _index(path: str) -> _Index:
    """Frame times by demuxing (no decoding but the first frame's, for the rotation).

    The decord and torchcodec backends number frames in presentation order, as this does.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        rate = _frame_rate(stream, path)
        base = stream.time_base
        codec = stream.codec_context.name
        first = _next_frame(container.decode(stream), path, None)
        if first is None:
            raise DecodeError(path, "no frame decoded")
        _check_size(first.width, first.height, path)
        rotation = _clockwise(first)
        swap = rotation in (90, 270)
        display = (first.width, first.height) if swap else (first.height, first.width)
        container.seek(0)
        durations: dict[int, int] = {}
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size:
                    durations[packet.pts] = packet.duration or 0
        except av.FFmpegError as e:
            raise DecodeError(path, f"demuxing failed: {e}") from e
        origin = stream.start_time
    if not durations:
        raise DecodeError(path, "no frame in the video stream")
    pts = sorted(durations)
    origin = origin if origin is not None else pts[0]
    times = [Fraction(p - origin) * base for p in pts]
    last = Fraction(durations[pts[-1]]) * base
    return _Index(times, last or 1 / rate, rate, rotation, display, codec)


def _rgb_scaler() -> Callable[[np.ndarray, int], np.ndarray]:
    """``scale(rgb, side)``: a full-size (H, W, 3) RGB frame scaled to short side ``side``,
    bicubic, with swscale."""
    reformatter = VideoReformatter()

    def scale(rgb: np.ndarray, side: int) -> np.ndarray:
        height, width = rgb.shape[:2]
        w, h = scaled_size(width, height, side)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        return reformatter.reformat(frame, w, h, interpolation=_INTERPOLATION).to_ndarray()

    return scale


def _as_decoded(rgb: np.ndarray, side: int) -> np.ndarray:
    """decord's frame, scaled while decoding to the one size it was opened with."""
    return np.ascontiguousarray(rgb)


def _decord_frames(
    path: str, start: Fraction, first_cutoff: Fraction, side: int
) -> Iterator[_StreamInfo | _Frame]:
    import decord

    index = _index(path)
    yield _StreamInfo(index.frame_rate)
    times = index.times
    height, width = index.display
    size = scaled_size(width, height, side)
    # decord scales after rotating; -1 keeps the full size (and PyAV's exact pixels).
    w, h = size if size != (width, height) else (-1, -1)
    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), width=w, height=h, num_threads=0)
        count = len(reader)
        floats = reader.get_frame_timestamp(range(count))[:, 0] if count else []
    except Exception as e:  # decord raises DECORDError, RuntimeError...
        raise DecodeError(path, f"decord cannot open it: {e}") from e
    if count != len(times):
        raise DecodeError(path, f"decord counts {count} frames, the container {len(times)}")
    # decord's times are float32 seconds from its own origin: compare the offsets.
    for k in (0, count // 2, count - 1):
        ours, theirs = float(times[k] - times[0]), float(floats[k] - floats[0])
        if abs(ours - theirs) > _TIMESTAMP_TOLERANCE * max(1.0, abs(ours) / 1000):
            raise DecodeError(path, f"decord's frame {k} is at {theirs} s, PyAV's at {ours} s")
    first = frame_before(times, first_cutoff)
    try:
        reader.seek_accurate(first)
        for k in range(first, count):
            rgb = reader.next().asnumpy()  # (H, W, 3) scaled, rotation applied by decord
            if rgb.shape[:2] != size[::-1]:
                raise DecodeError(
                    path,
                    f"decord gives {rgb.shape[1]}x{rgb.shape[0]} frames, "
                    f"expected {size[0]}x{size[1]} as displayed",
                )
            duration = index.last_duration if k == count - 1 else None
            yield _Frame(times[k], duration, rgb, _as_decoded)
    except DecodeError:
        raise
    except Exception as e:
        raise DecodeError(path, f"decord stopped decoding: {e}") from e


def _torchcodec_frames(
    path: str, start: Fraction, first_cutoff: Fraction
) -> Iterator[_StreamInfo | _Frame]:
    from torchcodec.decoders import VideoDecoder

    index = _index(path)
    yield _StreamInfo(index.frame_rate)
    times = index.times
    if index.rotation == 180 or (index.rotation and index.display[0] == index.display[1]):
        raise DecodeError(path, "torchcodec backend: cannot tell if this rotation is applied")
    try:
        decoder = VideoDecoder(path, dimension_order="NHWC", seek_mode="exact")
        count = len(decoder)
    except Exception as e:
        raise DecodeError(path, f"torchcodec cannot open it: {e}") from e
    if count != len(times):
        raise DecodeError(path, f"torchcodec counts {count} frames, the container {len(times)}")
    scale = _rgb_scaler()
    turns = _rot90_turns(index.rotation)
    try:
        for k in range(frame_before(times, first_cutoff), count):
            rgb = decoder[k].numpy()  # (H, W, 3)
            if rgb.shape[:2] != index.display:  # coded orientation: rotate it here
                rgb = np.rot90(rgb, turns)
            duration = index.last_duration if k == count - 1 else None
            yield _Frame(times[k], duration, rgb, scale)
    except DecodeError:
        raise
    except Exception as e:
        raise DecodeError(path, f"torchcodec stopped decoding: {e}") from e


def _nvdec_frames(
    path: str, start: Fraction, first_cutoff: Fraction, device: str, fallback: bool
) -> Iterator[_StreamInfo | _Frame]:
    """Frames decoded by NVDEC through torchcodec (:mod:`extract.nvdec`), as
    :class:`~extract.pixels.RGBFrame` on ``device``, made for the frames a step uses only.

    A video NVDEC does not take (its codec, torchcodec's ``cpu_fallback``, a rotation whose
    handling cannot be told, one torchcodec cannot open or counts differently) is decoded by
    :func:`_pyav_frames` (planes) with ``fallback``, and is a :class:`DecodeError` without.
    An error once frames have come out is a :class:`DecodeError` either way.
    """
    from extract import nvdec

    index = _index(path)

    def refused(why: str) -> Iterator[_StreamInfo | _Frame]:
        if not fallback:
            raise DecodeError(path, f"NVDEC cannot decode it: {why}")
        nvdec.tell(f"NVDEC: {why}: such videos are decoded on the CPU")
        log.info("%s: decoding on the CPU, not NVDEC: %s", path, why)
        return _pyav_frames(path, start, first_cutoff, planes=True)

    why = nvdec.unsupported_codec(index.codec)
    if why is None and (
        index.rotation == 180 or (index.rotation and index.display[0] == index.display[1])
    ):
        why = f"a {index.rotation}° rotation (its frames do not show whether torchcodec applied it)"
    if why is not None:
        yield from refused(why)
        return
    from torchcodec.decoders import VideoDecoder

    try:
        decoder = VideoDecoder(path, device=device, dimension_order="NHWC", seek_mode="exact")
        count = len(decoder)
    except Exception as e:  # PyAV opened it: under auto, PyAV decodes it
        yield from refused(f"torchcodec cannot open it on {device} ({e})")
        return
    why = nvdec.cpu_fallback_reason(decoder)
    if why is None and count != len(index.times):
        why = f"torchcodec counts {count} frames, the container {len(index.times)}"
    elif why is not None:
        why = f"torchcodec would decode it on the CPU ({why})"
    if why is not None:
        del decoder
        yield from refused(why)
        return
    times = index.times
    yield _StreamInfo(index.frame_rate)
    turns = _rot90_turns(index.rotation)

    def fetch(k: int, side: int) -> RGBFrame:  # unscaled: the pixel work scales it
        try:
            rgb = decoder.get_frame_at(k).data  # (H, W, 3) uint8 on the device (NHWC)
        except Exception as e:
            raise DecodeError(path, f"NVDEC stopped decoding at frame {k}: {e}") from e
        if tuple(rgb.shape[:2]) != index.display:  # coded orientation: rotate it here
            rgb = torch.rot90(rgb, turns, dims=(0, 1))
        return RGBFrame(rgb.contiguous())

    for k in range(frame_before(times, first_cutoff), count):
        duration = index.last_duration if k == count - 1 else None
        yield _Frame(times[k], duration, k, fetch)


def _folder_frames(
    path: str, first_cutoff: Fraction, planes: bool = False, fps: str | None = None
) -> Iterator[_StreamInfo | _Frame]:
    """A frame folder's (:mod:`extract.frames`) fps, then its frames from the one before
    ``first_cutoff`` on, each decoded only if a step asks for its pixels.

    A frame decoded with another size than the first one decoded is a :class:`DecodeError`.
    """
    from extract.frames import read_frame_folder, read_image

    folder = read_frame_folder(path, fps)
    yield _StreamInfo(folder.fps)
    reformatter = VideoReformatter()
    size: tuple[int, int] | None = None  # (width, height) of the first frame decoded
    first_file = ""

    last: tuple[str, Any] | None = None  # the file decoded last, kept for a second size

    def decode(file: str) -> Any:
        nonlocal size, first_file, last
        if last is not None and last[0] == file:
            return last[1]
        frame, _ = read_image(path, file)
        _check_size(frame.width, frame.height, path)
        if size is None:
            size, first_file = (frame.width, frame.height), file
        elif (frame.width, frame.height) != size:
            raise DecodeError(
                path,
                f"frame {file!r} is {frame.width}×{frame.height}, frame {first_file!r} "
                f"{size[0]}×{size[1]}: all frames of a folder must have one size",
            )
        last = (file, frame)
        return frame

    def scale(file: str, side: int) -> np.ndarray:
        return _swscale_rgb(reformatter, decode(file), side, 0)

    as_yuv: bool | None = None  # chosen by the first frame, so that all frames convert together

    def copy_planes(file: str, side: int) -> YUVFrame | RGBFrame:
        nonlocal as_yuv
        frame = decode(file)
        if as_yuv is None:
            as_yuv = frame.format.name in TORCH_FORMATS  # JPEG's 4:2:0
        if as_yuv:
            return yuv_frame(frame, 0)
        # PNG (RGB), or JPEG in 4:4:4 / 4:2:2 / grey: RGB, not a lossy trip through 4:2:0
        return RGBFrame(torch.from_numpy(frame.to_ndarray(format="rgb24")))  # (H, W, 3)

    times = folder.times
    lasts = 1 / folder.fps
    for k in range(frame_before(times, first_cutoff), len(times)):
        yield _Frame(times[k], lasts, folder.files[k], copy_planes if planes else scale)


# --- the public iterator ----------------------------------------------------------------------


def iter_steps(
    path: str | os.PathLike[str],
    interval: float = DEFAULT_FRAME_INTERVAL,
    *,
    start: float = 0.0,
    end: float | None = None,
    backend: str = "pyav",
    short_side: int = SHORT_SIDE,
    image_sides: Sequence[int] = (),
    window_fps: int = WINDOW_FPS,
    sampling: str | None = None,
    pixels: str = "swscale",
    decoder: str = "cpu",
    device: str | torch.device = "cuda",
    fps: str | None = None,
) -> Iterator[StepFrames] | Iterator[StepPlanes]:
    """The steps of ``[start, end)`` source seconds of a video, in order, from one decode.

    ``start`` must be a whole number of steps (``start = k·L``); decoding seeks to the keyframe
    before it and goes forward. Steps are those with ``i·L`` in ``[start, end)`` and ``i <
    ceil(D / L)``, ``D`` being where the last frame ends (see the module docstring for the
    exact rules). Streaming: at most one step's window, the last frame and the decoder's own
    buffers are held. Arguments are checked when called (``ValueError``); problems with the
    file raise :class:`DecodeError` from the iteration.

    ``sampling`` (``hero`` or ``uniform``, :mod:`extract.sampling`): convert only the window
    slots that rule feeds to SlowFast (:func:`extract.sampling.pathway_slots`); the others
    stay zero and a frame only they use is decoded but never converted. The slots it does
    fill are identical to those of ``sampling=None`` (every slot converted).

    ``image_sides``: more short sides at which the 2D sample is given (:attr:`StepFrames.extra`),
    each scaled from the decoded frame in its own swscale call, so a side's image is exactly
    ``iter_steps(short_side=side)``'s. Not with the ``decord`` backend, which scales while
    decoding, to ``short_side`` only. With ``pixels="torch"`` the step carries the frame
    unscaled and :func:`extract.extractor.planes_to_inputs` makes every side.

    ``pixels``: ``swscale`` (default) yields :class:`StepFrames`, converted here; ``torch``
    yields :class:`StepPlanes`, the frames' YUV planes unconverted, for
    :func:`extract.pixels.convert` on the extraction device (``pyav`` backend only).

    ``decoder`` (:mod:`extract.nvdec`): ``cpu`` decodes with ``backend``; ``nvdec`` with
    NVDEC on ``device`` (``pixels="torch"``; the steps' frames are then
    :class:`~extract.pixels.RGBFrame` on ``device``); ``auto`` with NVDEC where it can, video
    by video, else as ``cpu`` (PyAV). ``nvdec`` where NVDEC is unusable raises
    :class:`extract.nvdec.NvdecUnavailable` when called.

    ``fps``: a frame folder's rate as the manifest states it (:func:`probe`'s).
    """
    if pixels not in ("swscale", "torch"):
        raise OptionError(f"pixels must be 'swscale' or 'torch' here, got {pixels!r}")
    if pixels == "torch" and backend != "pyav":
        raise OptionError(f"pixels='torch' needs the pyav backend, not {backend!r}")
    extra = tuple(sorted({s for s in image_sides if s != short_side}))
    for s in extra:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"image_sides must be positive ints, got {s!r}")
    if extra and backend == "decord" and pixels == "swscale":
        raise OptionError(
            f"the decord backend scales frames while decoding, to short side {short_side} only; "
            f"a 2D sample at short side {', '.join(map(str, extra))} needs the pyav or "
            "torchcodec backend"
        )
    from extract.nvdec import resolve_decoder

    decoder = resolve_decoder(decoder, torch.device(device), pixels)
    return _iterate(  # type: ignore[return-value]
        path,
        interval,
        start,
        end,
        backend,
        short_side,
        window_fps,
        pixels=True,
        sampling=sampling,
        planes=pixels == "torch",
        nvdec=None if decoder == "cpu" else (str(device), decoder == "auto"),
        image_sides=() if pixels == "torch" else extra,
        fps=fps,
    )


def iter_step_times(
    path: str | os.PathLike[str],
    interval: float = DEFAULT_FRAME_INTERVAL,
    *,
    start: float = 0.0,
    end: float | None = None,
    backend: str = "pyav",
    window_fps: int = WINDOW_FPS,
) -> Iterator[StepTimes]:
    """:func:`iter_steps`' choice of frames, as times only: the same decode and selection, but
    no frame is converted or scaled. For the sampling plan (:mod:`extract.sampling`)."""
    return _iterate(path, interval, start, end, backend, SHORT_SIDE, window_fps, pixels=False)  # type: ignore[return-value]


def _iterate(
    path: str | os.PathLike[str],
    interval: float,
    start: float,
    end: float | None,
    backend: str,
    short_side: int,
    window_fps: int,
    *,
    pixels: bool,
    sampling: str | None = None,
    planes: bool = False,
    nvdec: tuple[str, bool] | None = None,
    image_sides: tuple[int, ...] = (),
    fps: str | None = None,
) -> Iterator[StepFrames | StepPlanes | StepTimes]:
    """``nvdec``: (device, fall back to the CPU) to decode with NVDEC (``planes`` only)."""
    if sampling is not None and sampling not in SAMPLINGS:
        raise OptionError(f"unknown sampling {sampling!r}; choose one of {list(SAMPLINGS)}")
    if backend not in BACKENDS:
        raise OptionError(f"unknown decoder backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend not in available_backends():
        raise OptionError(
            f"decoder backend {backend!r} is not installed; available: {available_backends()}"
        )
    if isinstance(short_side, bool) or not isinstance(short_side, int) or short_side < 1:
        raise ValueError(f"short_side must be a positive int, got {short_side!r}")
    if isinstance(window_fps, bool) or not isinstance(window_fps, int) or window_fps < 1:
        raise ValueError(f"window_fps must be a positive int, got {window_fps!r}")
    window_cutoffs_3d(0, interval, window_fps)  # checks the interval and the window length
    first_step = step_floor(start, interval)
    if first_step < 0 or step_ceil(start, interval) != first_step:
        raise GridError(
            f"start must be a non-negative whole number of {interval} s steps, got {start!r}"
        )
    stop_step = None
    if end is not None:
        stop_step = step_ceil(end, interval)
        if stop_step <= first_step:
            raise GridError(f"end {end!r} s must be after start {start!r} s")
    name = os.fspath(path)
    begin = first_step * exact_seconds(interval)
    # The earliest cutoff of the first step: decoding must start before it.
    first_cutoff = min(
        window_cutoffs_3d(first_step, interval, window_fps)[0],
        sample_cutoff_2d(first_step, interval),
    )
    folder = os.path.isdir(name)
    if not folder:
        _no_fps_for_a_file(name, fps)
    if folder:  # a frame folder, whatever the video decoder
        frames = _folder_frames(name, first_cutoff, planes=planes, fps=fps)
    elif nvdec is not None:
        frames = _nvdec_frames(name, begin, first_cutoff, *nvdec)
    elif backend == "decord":  # decord scales while decoding, to one size
        frames = _decord_frames(name, begin, first_cutoff, short_side)
    elif backend == "torchcodec":
        frames = _torchcodec_frames(name, begin, first_cutoff)
    else:
        frames = _pyav_frames(name, begin, first_cutoff, planes=planes)
    side = short_side if pixels else None
    return _steps(
        frames,
        name,
        first_step,
        stop_step,
        interval,
        window_fps,
        side,
        sampling,
        planes,
        image_sides,
    )


def _steps(
    frames: Iterator[_StreamInfo | _Frame],
    name: str,
    first_step: int,
    stop_step: int | None,
    interval: float,
    window_fps: int,
    side: int | None,
    sampling: str | None,
    planes: bool = False,
    image_sides: tuple[int, ...] = (),
) -> Iterator[StepFrames | StepPlanes | StepTimes]:
    try:
        yield from _select(
            frames,
            name,
            first_step=first_step,
            stop_step=stop_step,
            interval=interval,
            window_fps=window_fps,
            side=side,
            sampling=sampling,
            planes=planes,
            image_sides=image_sides,
        )
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
