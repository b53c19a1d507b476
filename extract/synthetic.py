"""Synthetic test videos written with PyAV (bundled FFmpeg; no system binary needed).

For the demo, benchmarks and tests: moving colour bars over a gradient, so consecutive frames
differ and an encoder has real work to do, at any size, rate and length. Frames are made by
rolling a few precomputed images, so writing a long video costs little beyond encoding.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np


def _palette(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    base = np.stack([x + 0 * y, y + 0 * x, (x[::-1] + y) / 2], axis=-1)  # (H, W, 3)
    bars = rng.integers(0, 256, size=(16, 3)).astype(np.float32)
    idx = (np.arange(width) * 16 // max(width, 1)) % 16
    frame = 0.6 * base + 0.4 * bars[idx][None, :, :]
    return np.clip(frame, 0, 255).astype(np.uint8)


def make_video(
    path: str | os.PathLike[str],
    *,
    duration: float,
    fps: int | Fraction = 30,
    width: int = 320,
    height: int = 180,
    codec: str = "libx264",
    seed: int = 0,
    audio: bool = False,
    preset: str = "ultrafast",
) -> Path:
    """Write a ``duration``-second video of moving bars; returns its path.

    ``codec`` is any FFmpeg encoder PyAV has (``mpeg4`` works everywhere). For ``libx264``,
    ``preset`` is x264's: ``ultrafast`` (default) writes fast and uses no B-frames; use
    ``veryfast`` or slower for a stream shaped like real H.264 files (B-frames, reordering).
    With ``audio`` a silent AAC track is added.
    """
    import av

    path = Path(path)
    rate = Fraction(fps)
    n = max(1, round(duration * rate))
    frame0 = _palette(width, height, seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": preset}
        astream = container.add_stream("aac", rate=16000) if audio else None
        step = max(1, width // 90)
        for i in range(n):
            img = np.roll(frame0, shift=(i * step) % width, axis=1)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if astream is not None:
            samples = round(16000 * n / rate)
            chunk = 1024
            for start in range(0, samples, chunk):
                size = min(chunk, samples - start)
                silent = np.zeros((1, size), dtype=np.float32)
                aframe = av.AudioFrame.from_ndarray(silent, format="fltp", layout="mono")
                aframe.sample_rate = 16000
                aframe.pts = start
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path
