"""Pixel work in torch: YUV 4:2:0 planes -> scaled RGB, batched, on any device.

The swscale path (:mod:`extract.decode`) converts and scales each frame on the CPU in one
bicubic call. This module does the same work on the extraction device, so that a CUDA machine's
CPUs only demux and decode: the decoder's raw planes (1.5 bytes a pixel) are copied to the
device and there

1. each plane is scaled with swscale's bicubic filter (B = 0, C = 0.6, widened by the
   downscale factor, edge pixels repeated), as two matrix products per plane; the chroma planes
   go straight from their half size to the output size, sampled at their own positions
   (4:2:0 "left" siting: co-sited horizontally, between rows vertically);
2. the scaled Y'CbCr is turned into RGB as swscale turns it, which depends on the output
   width. At odd widths swscale interpolates chroma at full width and applies the exact
   matrix: BT.709 when the frame says so (and SMPTE 240M / BT.2020 likewise), BT.601
   otherwise; limited ("MPEG") range unless the pixel format is a ``yuvj`` one, because
   PyAV's reformatter, as the swscale path calls it, leaves the source range unspecified. At
   even widths (the common 16:9 case) swscale takes its packed-RGB output
   (``yuv2rgb24_X_c`` and friends in libswscale/output.c): chroma scaled to half width, one
   sample between each pair of output pixels, and the lookup-table arithmetic of
   ``ff_yuv2rgb_c_init_tables`` (libswscale/yuv2rgb.c), reproduced in :func:`_pair_tables`;
3. values are rounded to uint8, the display rotation applied.

Frames decoded by NVDEC (:mod:`extract.nvdec`) reach this module as :class:`RGBFrame`: torchcodec
has already turned them into full-size RGB on the GPU, so only step 1 is done, each channel
scaled with the same bicubic matrices as a luma plane.

The same code runs on CPU and CUDA. Against swscale's own output it differs by a mean of about
0.01 grey levels at either parity (measured in ``tests/extract/test_pixels.py``); it is not
bit-identical (swscale scales in fixed point and rounds between its passes), except on flat
frames at even widths, where it is.
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

    def key(self) -> tuple[Any, ...]:
        """Frames with equal keys convert together."""
        return ("yuv", *self.y.shape, self.colorspace, self.full_range, self.turns)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of the frame as displayed, full size."""
        height, width = self.y.shape
        return (height, width) if self.turns % 2 else (width, height)


@dataclass(frozen=True, eq=False)
class RGBFrame:
    """One frame decoded on the extraction device (NVDEC), already RGB, full size, as displayed.

    Attributes:
        rgb: (H, W, 3) uint8 on the device.
    """

    rgb: torch.Tensor

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data held (device memory)."""
        return self.rgb.numel() * self.rgb.element_size()

    def key(self) -> tuple[Any, ...]:
        """Frames with equal keys convert together."""
        return ("rgb", *self.rgb.shape[:2], str(self.rgb.device))

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of the frame as displayed, full size."""
        return (int(self.rgb.shape[1]), int(self.rgb.shape[0]))


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
    src: int, dst: int, luma: int, luma_out: int, chroma_at: float | None, pairs: bool = False
) -> np.ndarray:
    """(dst, src) float32 matrix scaling one axis of a plane of ``src`` samples to ``dst``.

    ``luma``/``luma_out``: the luma size of that axis before and after scaling; positions are
    in luma pixels, a pixel's centre at its index. ``chroma_at``: None for a luma plane, else
    where chroma sample 0 sits (0: on luma pixel 0, "left"; 0.5: between pixels 0 and 1).
    ``pairs``: one output sample per two output pixels, sited between them (``dst`` is then
    ``luma_out // 2``), as swscale scales chroma for its packed-RGB output at even widths.
    """
    step = luma / luma_out  # source luma pixels per output pixel
    if pairs:
        centres = (2 * np.arange(dst) + 1) * step - 0.5  # output pixel 2k + 0.5, in source
        step *= 2
    else:
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
    planes: torch.Tensor,
    size: tuple[int, int],
    luma: tuple[int, int],
    chroma: bool,
    pairs: bool = False,
) -> torch.Tensor:
    """(N, h, w) float32 -> (N, H', W') float32, ``size`` = (H', W'); with ``pairs`` (chroma
    for swscale's packed output) W' // 2 columns, each between two output pixels."""
    h, w = planes.shape[-2:]
    at = _CHROMA_AT if chroma else (None, None)
    rows = _weights_np(h, size[0], luma[0], size[0], at[0])  # (H', h)
    width = size[1] // 2 if pairs else size[1]
    cols = _weights_np(w, width, luma[1], size[1], at[1], pairs)  # (W' or W'/2, w)
    device = planes.device
    return torch.from_numpy(rows).to(device) @ planes @ torch.from_numpy(cols).to(device).T


# swscale's integer Y'CbCr -> RGB coefficients (crv, cbu, cgu, cgv), 1/65536 units, for
# limited range, by AVColorSpace; other values get BT.601's (libswscale/yuv2rgb.c).
_SWS_BT601 = (104597, 132201, 25675, 53279)
_SWS_COEFFS = {
    1: (117489, 138438, 13975, 34925),
    4: (104448, 132798, 24759, 53109),
    7: (117579, 136230, 16907, 35559),
    9: (110013, 140363, 12277, 42626),
    10: (110013, 140363, 12277, 42626),
}


def _c_div(a: int, b: int) -> int:
    """C's integer division (truncates toward zero), b > 0."""
    return a // b if a >= 0 else -(-a // b)


@lru_cache(maxsize=16)
def _pair_tables(colorspace: int, full_range: bool) -> tuple[np.ndarray, int, int]:
    """swscale's table arithmetic for packed RGB output with chroma per pixel pair.

    swscale builds one luma table ``T[k] = clip(((k + k0) * cy - base + 2**15) >> 16)`` and
    turns each chroma value into a whole number of luma-table steps (its coefficient divided
    by ``cy``, truncated). A channel is then ``T[Y + offset(U, V)]``. Returns the (4, 256)
    int32 offsets (R from V, B from U, G from U, G from V), ``cy`` and ``k0 * cy - base``.
    Limited range: ``k0`` = 326 and ``base`` = 400 * 2**16, so grey Y comes out as
    1.1644 * Y - 20.41 (not the exact -18.63): 1-2 levels darker than the matrix.
    """
    crv, cbu, cgu, cgv = _SWS_COEFFS.get(colorspace, _SWS_BT601)
    coeffs = (crv, cbu, -cgu, -cgv)
    if full_range:
        cy, oy, k0 = 1 << 16, 0, 384
        coeffs = tuple(_c_div(c * 224, 255) for c in coeffs)
    else:
        cy, oy, k0 = (1 << 16) * 255 // 219, 16 << 16, 326
    steps = [_c_div(c * (1 << 16) + (1 << 15), cy) for c in coeffs]  # in luma-table steps
    values = np.arange(256, dtype=np.int64)
    offsets = np.stack([(values * s >> 16) - (s >> 9) for s in steps]).astype(np.int32)
    return offsets, cy, k0 * cy - (384 << 16) - oy


def _rgb_pairs(
    y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, colorspace: int, full_range: bool
) -> torch.Tensor:
    """swscale's packed-RGB output: (N, H, W) luma and (N, H, W/2) chroma, floats of scaled
    samples -> (N, H, W, 3) uint8, each chroma sample shared by two pixels."""
    offsets, cy, bias = _pair_tables(colorspace, full_range)
    lut = torch.from_numpy(offsets).to(y.device)  # (4, 256)

    def to_int(x: torch.Tensor) -> torch.Tensor:  # swscale rounds half up, then clips
        return (x + 0.5).floor_().clamp_(0, 255).to(torch.int32)

    y_i = to_int(y)
    u_i, v_i = to_int(u).long(), to_int(v).long()
    shift_r, shift_b = lut[0][v_i], lut[1][u_i]  # (N, H, W/2)
    shift_g = lut[2][u_i] + lut[3][v_i]
    channels = []
    for shift in (shift_r, shift_g, shift_b):
        k = y_i + shift.repeat_interleave(2, dim=-1)  # (N, H, W)
        channels.append(((k * cy + bias + (1 << 15)) >> 16).clamp_(0, 255))
    return torch.stack(channels, dim=-1).to(torch.uint8)  # (N, H, W, 3)


def convert(
    frames: list[YUVFrame] | list[RGBFrame],
    size: tuple[int, int],
    device: torch.device,
    chunk: int = 32,
) -> torch.Tensor:
    """Frames of one key (:meth:`YUVFrame.key`, :meth:`RGBFrame.key`) -> (N, h, w, 3) uint8
    RGB on ``device``.

    ``size``: (width, height) *as displayed* after scaling. At most ``chunk`` frames are
    converted at a time (the float32 planes of 32 1080p frames take about 400 MB).
    """
    if len(frames) > chunk:
        parts = range(0, len(frames), chunk)
        return torch.cat([convert(frames[k : k + chunk], size, device, chunk) for k in parts])
    first = frames[0]
    if isinstance(first, RGBFrame):
        return _scale_rgb([f.rgb for f in frames], size, device)  # type: ignore[union-attr]
    assert isinstance(first, YUVFrame)
    width, height = size
    coded = (width, height) if first.turns % 2 == 0 else (height, width)
    out_hw = (coded[1], coded[0])
    luma = first.y.shape
    non_blocking = device.type == "cuda"

    def stack(name: str) -> torch.Tensor:
        host = torch.from_numpy(np.stack([getattr(f, name) for f in frames]))  # type: ignore[misc]
        if non_blocking:
            host = host.pin_memory()
        return host.to(device, non_blocking=non_blocking).float()  # (N, h, w)

    # swscale interpolates chroma at full width only when the output width is odd; at even
    # widths it takes its packed-RGB path (chroma per pixel pair, table arithmetic).
    pairs = out_hw[1] % 2 == 0
    y = _scale_plane(stack("y"), out_hw, luma, chroma=False)
    u = _scale_plane(stack("u"), out_hw, luma, chroma=True, pairs=pairs)
    v = _scale_plane(stack("v"), out_hw, luma, chroma=True, pairs=pairs)
    if pairs:
        rgb = _rgb_pairs(y, u, v, first.colorspace, first.full_range)
    else:
        rgb = _rgb_exact(y, u, v, first.colorspace, first.full_range)
    if first.turns:
        rgb = torch.rot90(rgb, first.turns, dims=(1, 2))
    return rgb.contiguous()


def _scale_rgb(
    frames: list[torch.Tensor], size: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """Full-size (H, W, 3) uint8 RGB frames (display orientation) -> (N, h, w, 3) uint8 on
    ``device``, ``size`` = (w, h): each channel scaled as a luma plane is (bicubic, B = 0,
    C = 0.6), rounded half up and clipped."""
    rgb = torch.stack([f.to(device, non_blocking=True) for f in frames])  # (N, H, W, 3)
    n, height, width, _ = rgb.shape
    planes = rgb.permute(0, 3, 1, 2).reshape(n * 3, height, width).float()  # (3N, H, W)
    out_hw = (size[1], size[0])
    scaled = _scale_plane(planes, out_hw, (height, width), chroma=False)  # (3N, h, w)
    scaled = (scaled + 0.5).floor_().clamp_(0, 255).to(torch.uint8)
    return scaled.reshape(n, 3, *out_hw).permute(0, 2, 3, 1).contiguous()  # (N, h, w, 3)


def _rgb_exact(
    y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, colorspace: int, full_range: bool
) -> torch.Tensor:
    """The exact Y'CbCr -> RGB matrix (swscale's full-chroma output): (N, H, W) planes ->
    (N, H, W, 3) uint8."""
    kr, kb = _MATRICES.get(colorspace, _BT601)
    kg = 1 - kr - kb
    if full_range:
        y, u, v = y, u - 128, v - 128
    else:
        y, u, v = (y - 16) * (255 / 219), (u - 128) * (255 / 224), (v - 128) * (255 / 224)
    r = y + 2 * (1 - kr) * v
    b = y + 2 * (1 - kb) * u
    g = y - (2 * kb * (1 - kb) / kg) * u - (2 * kr * (1 - kr) / kg) * v
    return torch.stack([r, g, b], dim=-1).round_().clamp_(0, 255).to(torch.uint8)
