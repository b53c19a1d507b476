"""`hero extract`'s progress: one bar counting the steps of all videos (probed first), so that
its rate and ETA follow the video time left; a failed video still counts its planned steps."""

from __future__ import annotations

import logging
import re

import numpy as np

from extract.extractor import ExtractConfig, VideoFeatures
from extract.synthetic import make_video
from hero_data.progress import Progress


class StepExtractor:
    """Stands in for the models: one zero row per step, each step reported as it is done."""

    def extract(self, video, on_step=None):
        from extract.decode import probe
        from hero_data.grid import num_steps

        n = num_steps(probe(video).duration, 1.5)
        for i in range(n):
            if on_step is not None:
                on_step(i)
        z = np.zeros
        return VideoFeatures(
            {"resnet": z((n, 2048), np.float16), "slowfast": z((n, 2304), np.float16)}, 1.5
        )


def test_one_bar_counts_the_steps_of_all_videos(tmp_path, caplog, monkeypatch):
    from extract import batch as module

    make_video(tmp_path / "a.mp4", duration=6.0, width=64, height=48)  # 4 steps
    make_video(tmp_path / "b.mp4", duration=3.0, width=64, height=48, seed=1)  # 2 steps
    (tmp_path / "bad.mp4").write_bytes(b"not a video")  # 0 steps planned, fails
    monkeypatch.setattr(module, "Progress", lambda: Progress(0.0, force_terminal=False))
    caplog.set_level(logging.INFO, logger="hero.progress")
    videos = [tmp_path / "a.mp4", tmp_path / "bad.mp4", tmp_path / "b.mp4"]
    summary = module.extract_videos(
        videos, tmp_path / "out", ExtractConfig(), extractor=StepExtractor()
    )
    assert len(summary.written) == 2 and len(summary.failed) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "hero.progress"]
    counts = [m.group(1) for x in lines if (m := re.search(r": (\d+/6) steps", x))]
    assert counts[0] == "0/6" and "1/6" in counts and counts[-1] == "6/6"  # 4 + 2, bad: 0
    assert any(x.startswith("extract video 3/3 (b.mp4): ") for x in lines)
    assert re.fullmatch(r"extract: 2 written, 1 failed: 6 steps done in 0:00:\d\d", lines[-1])
