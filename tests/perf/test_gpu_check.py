"""perf/gpu_check.py without a GPU: every part skipped, a JSON line, exit status 0; its
``--smoke-cpu`` models part over every extractor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from extract.config import FEATURES
from extract.features import flops_per_step

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


@pytest.mark.slow  # all five real-size networks on the CPU, one sample each: 13 s
def test_smoke_cpu_models_part_measures_every_extractor():
    proc = subprocess.run(
        [sys.executable, "-m", "perf.gpu_check", "--smoke-cpu", "--parts", "models"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "decode" not in summary  # --parts is honoured
    models = summary["models"]
    assert list(models) == list(FEATURES)
    for name, figures in models.items():
        assert figures["best_batch"] == 1 and list(figures["per_s_by_batch"]) == ["1"], name
        assert figures["per_s"] > 0 and figures["timed"] >= 1, name
        assert figures["gflops_per_step"] == round(flops_per_step(name) / 1e9, 2), name
        assert figures["unit"] == ("windows" if "x224x224" in figures["input"] else "images")
    assert models["clip_rn50x4"]["input"] == "288x512"


def test_models_part_out_of_time_reports_every_extractor_as_skipped():
    """No time left: each extractor is named, skipped, and none is loaded."""
    import argparse

    from perf import gpu_check

    args = argparse.Namespace(device="cpu", batches=(1,), min_seconds=0.0, peak_tflops=989.0)
    out = gpu_check.part_models(args, timeout=0.0)
    assert out == {name: {"skipped": "out of time"} for name in FEATURES}


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
