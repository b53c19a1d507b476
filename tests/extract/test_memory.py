"""Peak memory of extraction does not grow with video length (slow: writes 33 min of video).

A 30-minute video must peak at most 1.25x the RSS of a 3-minute one at the same resolution.
Each extraction runs in a fresh subprocess that reports its peak RSS (VmHWM). The decode,
prefetch queue, batching and feature accumulation are the real code; the two networks are
replaced by cheap modules of the same interface, because their memory does not depend on
video length and running the real ones over 33 minutes of video takes about 45 minutes on a
2-core CPU. Run: ``python3 dev.py test -m slow tests/extract/test_memory.py -s``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from extract.synthetic import make_video

pytestmark = pytest.mark.slow

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import torch
    from extract.extractor import ExtractConfig, FeatureExtractor

    class Cheap(torch.nn.Module):
        '''Mean colour -> a fixed projection: the real models' interface, little compute.'''
        def __init__(self, dim):
            super().__init__()
            self.proj = torch.nn.Linear(3, dim)
        def forward(self, x):  # (B, ..., 3) uint8
            return self.proj(x.float().flatten(1, -2).mean(1))

    cfg = ExtractConfig(device="cpu", batch_size=16, prefetch_steps=32)
    ex = FeatureExtractor(cfg, modules={"resnet": Cheap(2048), "slowfast": Cheap(2304)})
    start = time.monotonic()
    feats = ex.extract(sys.argv[1])
    wall = time.monotonic() - start
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status")
               if line.startswith("VmHWM:"))
    print(json.dumps({"steps": feats.num_steps, "peak_rss_mb": hwm / 1024, "wall_s": wall}))
    """
)


def _measure(video: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(video)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_rss_does_not_grow_with_video_length(tmp_path):
    short = make_video(tmp_path / "3min.mp4", duration=180, width=640, height=360)
    long = make_video(tmp_path / "30min.mp4", duration=1800, width=640, height=360)
    a, b = _measure(short), _measure(long)
    print(f"\n3 min: {a}\n30 min: {b}\nratio {b['peak_rss_mb'] / a['peak_rss_mb']:.3f}")
    assert a["steps"] == 120 and b["steps"] == 1200
    assert b["peak_rss_mb"] <= 1.25 * a["peak_rss_mb"]
