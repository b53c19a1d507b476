"""Pixel work in torch: YUV 4:2:0 planes -> scaled RGB, batched, on any device.

The swscale path (:mod:`extract.decode`) converts and scales each frame on the CPU in one
bicubic call. This module does the same work on the extraction device, so that a CUDA machine's
CPUs only demux and decode: the decoder's raw planes (1.5 bytes a pixel) are copied to the
device and there

1. each plane is scaled with swscale's bicubic filter (B = 0, C = 0.6, widened by the
   downscale factor, edge pixels repeated), as two matrix products per plane; the chroma planes
   go straight from their half size to the output size, sampled at their own positions
   (centred between luma pixels, swscale's default);
2. the scaled Y'CbCr is turned into RGB with the matrix swscale uses for these frames: BT.709
   when the frame says so (and SMPTE 240M / BT.2020 likewise), BT.601 otherwise; limited
   ("MPEG") range unless the pixel format is a ``yuvj`` one, because PyAV's reformatter, as the
   swscale path calls it, leaves the source range unspecified;
3. values are rounded to uint8, the display rotation applied.

The same code runs on CPU and CUDA. Against swscale's own output it differs by a mean of well
under one grey level (measured in ``tests/extract/test_pixels.py``); it is not bit-identical
(swscale works in fixed point and rounds between its passes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from hero_data.errors import OptionError

PIXELS = ("auto", "swscale", "torch")
"""Where pixel work happens: ``swscale`` (on the CPU, per frame, in the decode thread),
``torch`` (raw planes handed to the extraction device, converted there in batches), ``auto``
(``torch`` when extracting on CUDA, ``swscale`` on CPU, where it measured faster)."""

TORCH_FORMATS = ("yuv420p", "yuvj420p")
"""Pixel formats the torch path converts; other frames are converted by swscale."""

# Kr, Kb of the Y'CbCr matrices swscale knows (AVColorSpace value -> coefficients).
_BT601 = (0.299, 0.114)
_MATRICES = {1: (0.2126, 0.0722), 7: (0.212, 0.087), 9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}
_B, _C = 0.0, 0.6  # swscale's default bicubic parameters


def resolve_pixels(pixels: str, device: torch.device) -> str:
    """``auto`` -> ``torch`` on CUDA, ``swscale`` elsewhere; the others as they are."""
    if pixels not in PIXELS:
        raise OptionError(f"pixels must be one of {list(PIXELS)}, got {pixels!r}")
    if pixels == "auto":
        return "torch" if device.type == "cuda" else "swscale"
    return pixels


@dataclass(frozen=True, eq=False)
class YUVFrame:
    """One decoded 4:2:0 frame as it left the decoder, padding removed.

    Attributes:
        y: (H, W) uint8 luma.
        u, v: (ceil(H/2), ceil(W/2)) uint8 chroma.
        colorspace: FFmpeg's AVColorSpace of the frame (1 = BT.709, 2 = unspecified …).
        full_range: True for the ``yuvj`` formats (0-255 luma), else limited range.
        turns: counterclockwise quarter turns that put the frame in display orientation.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    colorspace: int
    full_range: bool
    turns: int

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data held."""
        return self.y.nbytes + self.u.nbytes + self.v.nbytes

    def key(self) -> tuple[int, int, int, bool, int]:
        """Frames with equal keys convert together."""
        return (*self.y.shape, self.colorspace, self.full_range, self.turns)


def yuv_frame(frame: Any, turns: int) -> YUVFrame:
    """A copy of a PyAV frame's 4:2:0 planes (the decoder's buffer can go); a frame of another
    format (4:2:2, 10-bit …) is first converted to ``yuv420p`` by swscale, at its own size."""
    if frame.format.name not in TORCH_FORMATS:
        frame = frame.reformat(format="yuv420p")
    planes = []
    for plane in frame.planes[:3]:
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        planes.append(np.ascontiguousarray(rows[:, : plane.width]))
    y, u, v = planes
    full = frame.format.name.startswith("yuvj")
    return YUVFrame(y, u, v, int(frame.colorspace), full, turns)


def _cubic(d: np.ndarray) -> np.ndarray:
    """The bicubic kernel (Mitchell-Netravali form) with swscale's B, C at distances ``d``."""
    d = np.abs(d)
    near = ((12 - 9 * _B - 6 * _C) * d**3 + (-18 + 12 * _B + 6 * _C) * d**2 + (6 - 2 * _B)) / 6
    far = ((-_B - 6 * _C) * d**3 + (6 * _B + 30 * _C) * d**2 + (-12 * _B - 48 * _C) * d) / 6 + (
        8 * _B + 24 * _C
    ) / 6
    return np.where(d < 1, near, np.where(d < 2, far, 0.0))


@lru_cache(maxsize=64)
def _weights_np(
    src: int, dst: int, luma: int, luma_out: int, chroma_at: float | None
) -> np.ndarray:
    """(dst, src) float32 matrix scaling one axis of a plane of ``src`` samples to ``dst``.

    ``luma``/``luma_out``: the luma size of that axis before and after scaling; positions are
    in luma pixels, a pixel's centre at its index. ``chroma_at``: None for a luma plane, else
    where chroma sample 0 sits (0: on luma pixel 0, "left"; 0.5: between pixels 0 and 1).
    """
    step = luma / luma_out  # source luma pixels per output pixel
    centres = (np.arange(dst) + 0.5) * step - 0.5  # in source luma pixels
    if chroma_at is not None:
        centres = (centres - chroma_at) / 2  # chroma sample k is at luma 2k + chroma_at
        step /= 2
    stretch = max(step, 1.0)  # a downscale widens the kernel
    reach = math.ceil(2 * stretch) + 1
    first = np.floor(centres).astype(np.int64) - reach + 1
    taps = first[:, None] + np.arange(2 * reach)[None, :]  # (dst, taps)
    w = _cubic((taps - centres[:, None]) / stretch)
    w /= w.sum(axis=1, keepdims=True)
    out = np.zeros((dst, src), np.float64)
    rows = np.repeat(np.arange(dst), taps.shape[1])
    np.add.at(out, (rows, np.clip(taps, 0, src - 1).ravel()), w.ravel())  # edges repeat
    return out.astype(np.float32)


_CHROMA_AT = (0.5, 0.0)  # (vertical, horizontal): 4:2:0 "left", as H.264 and MPEG-2 site it


def _scale_plane(
    planes: torch.Tensor, size: tuple[int, int], luma: tuple[int, int], chroma: bool
) -> torch.Tensor:
    """(N, h, w) float32 -> (N, H', W') float32, ``size`` = (H', W')."""
    h, w = planes.shape[-2:]
    at = _CHROMA_AT if chroma else (None, None)
    rows = _weights_np(h, size[0], luma[0], size[0], at[0])  # (H', h)
    cols = _weights_np(w, size[1], luma[1], size[1], at[1])  # (W', w)
    device = planes.device
    return torch.from_numpy(rows).to(device) @ planes @ torch.from_numpy(cols).to(device).T


def convert(
    frames: list[YUVFrame], size: tuple[int, int], device: torch.device, chunk: int = 32
) -> torch.Tensor:
    """Frames of one :meth:`YUVFrame.key` -> (N, h, w, 3) uint8 RGB on ``device``.

    ``size``: (width, height) *as displayed* after scaling. At most ``chunk`` frames are
    converted at a time (the float32 planes of 32 1080p frames take about 400 MB).
    """
    if len(frames) > chunk:
        parts = range(0, len(frames), chunk)
        return torch.cat([convert(frames[k : k + chunk], size, device, chunk) for k in parts])
    first = frames[0]
    width, height = size
    coded = (width, height) if first.turns % 2 == 0 else (height, width)
    out_hw = (coded[1], coded[0])
    luma = first.y.shape
    non_blocking = device.type == "cuda"

    def stack(name: str) -> torch.Tensor:
        host = torch.from_numpy(np.stack([getattr(f, name) for f in frames]))
        if non_blocking:
            host = host.pin_memory()
        return host.to(device, non_blocking=non_blocking).float()  # (N, h, w)

    y = _scale_plane(stack("y"), out_hw, luma, chroma=False)
    u = _scale_plane(stack("u"), out_hw, luma, chroma=True)
    v = _scale_plane(stack("v"), out_hw, luma, chroma=True)
    kr, kb = _MATRICES.get(first.colorspace, _BT601)
    kg = 1 - kr - kb
    if first.full_range:
        y, u, v = y, u - 128, v - 128
    else:
        y, u, v = (y - 16) * (255 / 219), (u - 128) * (255 / 224), (v - 128) * (255 / 224)
    r = y + 2 * (1 - kr) * v
    b = y + 2 * (1 - kb) * u
    g = y - (2 * kb * (1 - kb) / kg) * u - (2 * kr * (1 - kr) / kg) * v
    rgb = torch.stack([r, g, b], dim=-1).round_().clamp_(0, 255).to(torch.uint8)  # (N, h, w, 3)
    if first.turns:
        rgb = torch.rot90(rgb, first.turns, dims=(1, 2))
    return rgb.contiguous()
