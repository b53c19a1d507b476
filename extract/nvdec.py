"""NVDEC: decoding on the GPU's hardware video decoder, through torchcodec, when it is usable.

The ``decoder`` option (:class:`extract.config.ExtractConfig`) chooses where videos are
decoded:

- ``cpu``: the ``backend`` (PyAV by default) on the CPU, as always;
- ``nvdec``: torchcodec's CUDA decoder (``VideoDecoder(path, device="cuda")``, NVIDIA's
  NVDEC). The frames stay on the GPU and the pixel work is done there
  (:mod:`extract.pixels`), so it needs a CUDA extraction device and ``torch`` pixels. When
  it cannot be used at all (torchcodec not installed or not loadable, no CUDA) the extractor
  refuses to start, with one :class:`~hero_data.errors.OptionError` naming what is missing;
  a video whose codec NVDEC cannot decode fails, with a message saying so;
- ``auto`` (default): ``nvdec`` when all of that is there (logged once when it is not, with
  the reason), and per video: a video NVDEC cannot decode is decoded on the CPU (PyAV,
  ``torch`` pixels) instead, with a log line naming the codec.

Why torchcodec is not a dependency: its wheels link against the system's FFmpeg libraries
(``libavcodec`` and friends, of a major version its README lists), which a fresh machine or a
plain CI image does not have, so that a default install with it would fail to load it there
(PyAV, the default decoder, bundles its own FFmpeg instead). It is an extra installed by hand,
outside ``uv.lock``; this module looks for it at run time. docs/extraction.md gives the install
command.

Which codecs (:data:`NVDEC_CODECS`): torchcodec hands NVDEC only the codecs its NVDEC
interface maps (``validate_codec_support`` in ``BetaCudaDeviceInterface.cpp``, torchcodec
0.11 to 0.17): H.264, HEVC, AV1, VP9, VP8 and MPEG-4 Part 2. Anything else (MPEG-2, MJPEG,
ProRes …) is decided from the probed codec name alone, before any decoder is opened. Whether
this GPU's NVDEC takes a video of a mapped codec (AV1 needs an NVDEC generation that has it:
issue 15 names the H100 as one without; 4:2:2 chroma, 10-bit depth and the largest sizes vary
by generation too) torchcodec decides by asking the driver (``cuvidGetDecoderCaps``) when the
decoder is opened, and reports through ``VideoDecoder.cpu_fallback``: a decoder that would
fall back to its own CPU decoding is not used; the video goes to our CPU path (``auto``) or
fails (``nvdec``) with torchcodec's reason in the message.

Frames and times: exact presentation times come from PyAV's demuxing of the file
(:func:`extract.decode.iter_steps`' ``torchcodec`` backend does the same), torchcodec is asked
for frames by index, in presentation order, only for frames a step uses, and the selection
(which frame feeds which input) is the CPU path's, so the sampling plan is the same. torchcodec
converts each frame it hands out to RGB at full size on the GPU with its own colour matrix;
:func:`extract.pixels.convert` then scales it with the torch path's bicubic filter. Pixels
therefore differ slightly from swscale's (which converts and scales in one pass, with its own
arithmetic at even widths); see docs/extraction.md.

None of this has run on a GPU yet: the task that wrote it had no GPU. The same code has run
with torchcodec 0.17.0's decoder opened on the CPU instead (tests/extract/test_nvdec.py, where
torchcodec loads); the tests that need NVDEC are marked ``gpu``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any

import torch

from hero_data.errors import OptionError

log = logging.getLogger(__name__)

DECODERS = ("auto", "cpu", "nvdec")
"""Where videos are decoded (see the module docstring), default first."""

NVDEC_CODECS = {
    "h264": "H.264 / AVC",
    "hevc": "H.265 / HEVC",
    "av1": "AV1",
    "vp9": "VP9",
    "vp8": "VP8",
    "mpeg4": "MPEG-4 Part 2",
}
"""FFmpeg codec names (as :func:`extract.decode.probe` reports them) that torchcodec's CUDA
decoder passes to NVDEC; other codecs it would decode on the CPU. Whether a given GPU decodes
one of these is for torchcodec to say (``cpu_fallback``)."""

INSTALL_HINT = "pip install torchcodec, and FFmpeg's shared libraries: docs/extraction.md"

_told: set[str] = set()  # reasons already logged, so that each is logged once per process


class NvdecUnavailable(OptionError):
    """``decoder: nvdec`` was asked for where it cannot run (what is missing is named)."""


def missing(device: torch.device) -> str | None:
    """Why NVDEC cannot be used to extract on ``device``; None when it can.

    Checks, in order: a CUDA extraction device, CUDA itself, torchcodec installed, and
    torchcodec's decoders importable (they load FFmpeg's shared libraries, which may be absent
    even where the package is installed).
    """
    if device.type != "cuda":
        why = "" if torch.cuda.is_available() else " (CUDA is not available here)"
        return f"the extraction device is {device.type!r}{why}; NVDEC needs a CUDA device"
    if not torch.cuda.is_available():
        return "CUDA is not available (torch.cuda.is_available() is False)"
    if importlib.util.find_spec("torchcodec") is None:
        return f"torchcodec is not installed ({INSTALL_HINT})"
    try:
        decoders = importlib.import_module("torchcodec.decoders")
    except Exception as e:  # torchcodec raises RuntimeError when FFmpeg's libraries are missing
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"torchcodec is installed but does not load: {first}"
    if not hasattr(decoders, "VideoDecoder"):
        return "this torchcodec has no VideoDecoder"
    return None


def resolve_decoder(decoder: str, device: torch.device, pixels: str) -> str:
    """``decoder`` as the extractor will use it: ``cpu``, ``nvdec`` (NVDEC, a video it cannot
    decode fails) or ``auto`` (NVDEC, a video it cannot decode goes to the CPU).

    ``pixels``: the resolved pixel path (``swscale`` or ``torch``). ``auto`` becomes ``cpu``
    where NVDEC is unusable or pixels are ``swscale`` (NVDEC frames are on the GPU), logging
    the reason once; ``nvdec`` there raises :class:`NvdecUnavailable` naming what is missing.
    """
    if decoder not in DECODERS:
        raise OptionError(
            f"decoder must be one of {list(DECODERS)}, got {decoder!r}", key="decoder"
        )
    if decoder == "cpu":
        return "cpu"
    if pixels != "torch":  # a fact of the config: said before what this machine lacks
        why = f"pixels is {pixels!r}; NVDEC frames stay on the GPU, so they need torch pixels"
    else:
        why = missing(device)
    if why is None:
        return decoder
    if decoder == "nvdec":
        raise NvdecUnavailable(f"decoder 'nvdec' cannot be used: {why}", key="decoder")
    tell(f"decoding on the CPU: {why}", level=logging.INFO)
    return "cpu"


def unsupported_codec(codec: str) -> str | None:
    """Why NVDEC is never given a video of FFmpeg codec ``codec`` (None: it may be)."""
    if codec in NVDEC_CODECS:
        return None
    known = ", ".join(NVDEC_CODECS)
    return f"codec {codec!r} is not one torchcodec decodes with NVDEC (those are: {known})"


def cpu_fallback_reason(decoder: Any) -> str | None:
    """What torchcodec's ``VideoDecoder.cpu_fallback`` says when it would decode this video on
    the CPU (the GPU's NVDEC does not take it, or NVCUVID is missing); None when NVDEC decodes
    it. A torchcodec too old to report (before 0.10) is trusted."""
    status = getattr(decoder, "cpu_fallback", None)
    if status is None or not bool(status):
        return None
    return str(status)


def tell(message: str, level: int = logging.WARNING) -> None:
    """Log ``message`` once per process (every video would repeat it)."""
    if message not in _told:
        _told.add(message)
        log.log(level, "%s", message)
