"""perf/gpu_check.py without a GPU: every part skipped, a JSON line, exit status 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_without_cuda_skips_every_part():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU even on a GPU machine
    proc = subprocess.run(
        [sys.executable, "-m", "perf.gpu_check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "no CUDA device" in proc.stdout
    summary = json.loads(lines[-1])
    assert summary["cuda"] is False
    assert summary["skipped"] == ["parity", "models", "decode", "run", "train"]


def test_gpu_check_rejects_an_unknown_part():
    proc = subprocess.run(
        [sys.executable, "-m", "perf.gpu_check", "--parts", "parity,nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "nope" in proc.stderr


def test_nvdec_decode_fps_is_skipped_with_its_reason_without_cuda(tmp_path):
    """The decode part's NVDEC measurement (``nvdec_decode``) on the CPU: skipped, saying
    what is missing, before any video is opened."""
    import argparse

    from perf import gpu_check

    out = gpu_check.nvdec_decode(argparse.Namespace(device="cpu"), tmp_path / "none.mp4", 1)
    assert out == {
        "skipped": "NVDEC not measured: the extraction device is 'cpu'"
        + ("" if torch.cuda.is_available() else " (CUDA is not available here)")
        + "; NVDEC needs a CUDA device"
    }


@pytest.mark.gpu
def test_gpu_check_decode_part_on_cuda():
    proc = subprocess.run(
        [sys.executable, "-m", "perf.gpu_check", "--parts", "decode"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["cuda"] and summary["decode"]["with_gpu_pixels_fps"] > 0
    nvdec = summary["decode"]["nvdec"]
    assert "skipped" in nvdec or nvdec["with_gpu_pixels_fps"] > 0, nvdec
