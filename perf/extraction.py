"""End-to-end feature extraction speed, and each model's throughput.

Run it::

    .venv/bin/python -m perf.extraction                 # CPU, or CUDA when available
    .venv/bin/python -m perf.extraction --device cuda --batch-size 64
    .venv/bin/python -m perf.extraction --parity          # also CUDA bf16 against CPU fp32

It writes a synthetic H.264 video (default 60 s, 640x360, 30 fps), then measures:

* ``video_s_per_s``: seconds of video per wall-clock second (= video-hours per hour) through
  :meth:`FeatureExtractor.extract` (decode, both models, float16 features), the path
  ``hero extract`` runs, models already loaded;
* ``resnet_images_per_s``: ResNet-152 on 224x398 images (short side 224 of 16:9 video);
* ``slowfast_clips_per_s``: SlowFast-R50 on 224x224 windows (its 32 fast-pathway frames);
* the models' FLOPs per sample (counted by ``torch.utils.flop_counter``, 2 per multiply-add),
  achieved TFLOP/s, and on CUDA the MFU against the bf16 dense peak given by ``--peak-tflops``
  (default 989, an H100/H200 SXM's).

With ``--parity`` (CUDA only) the video is also extracted on the CPU in float32, and
``parity`` in the JSON gives, per model, the min and mean over steps of the cosine similarity
between each step's CUDA bf16 row and its CPU fp32 row (target: >= 0.999 every step).

Weights are seeded random (``--random-weights`` semantics): speed does not depend on them. They
make a weak parity check for ResNet-152, whose random-weight features hardly depend on the
input (on the pancake fixture video any two steps' rows have cosine above 0.9998); SlowFast's
are more telling. tests/extract/test_cuda_parity.py checks that rows stay with their steps.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from extract.decode import scaled_size
from extract.extractor import ExtractConfig, FeatureExtractor, VideoFeatures
from extract.synthetic import make_video
from hero_data.grid import FAST_FRAMES

PARITY_TARGET = 0.999
"""Least per-step cosine of CUDA bf16 features against CPU fp32 ones (the extraction issue)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``model`` on ``x`` (2 per multiply-add), as counted by
    ``torch.utils.flop_counter``."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return int(counter.get_total_flops())


def throughput(
    model: torch.nn.Module, x: torch.Tensor, device: torch.device, min_seconds: float
) -> tuple[float, int]:
    """(samples/s, samples timed) over at least ``min_seconds`` after one warm-up batch."""
    with torch.inference_mode():
        model(x)
        _sync(device)
        done, start = 0, time.perf_counter()
        while True:
            model(x)
            done += x.shape[0]
            _sync(device)
            if time.perf_counter() - start >= min_seconds:
                break
    return done / (time.perf_counter() - start), done


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b``, in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _parity(cuda: VideoFeatures, cpu: VideoFeatures) -> dict[str, float | int | bool]:
    """Per-step cosine of the CUDA rows against the CPU rows: min and mean per model."""
    if cuda.num_steps != cpu.num_steps:
        raise SystemExit(f"parity: CUDA gave {cuda.num_steps} steps, the CPU {cpu.num_steps}")
    out: dict[str, float | int | bool] = {"steps": cpu.num_steps}
    worst = 1.0
    for name in ("resnet", "slowfast"):
        cos = _cosines(cuda[name], cpu[name])
        out[f"{name}_cos_min"] = round(float(cos.min()), 6)
        out[f"{name}_cos_mean"] = round(float(cos.mean()), 6)
        worst = min(worst, float(cos.min()))
    out["target"] = PARITY_TARGET
    out["met"] = worst >= PARITY_TARGET
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=60.0, help="video seconds")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=None, help="default: 1 on CPU, 64 on CUDA")
    p.add_argument("--min-seconds", type=float, default=10.0, help="per model timing")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak for MFU")
    p.add_argument("--compile", action="store_true")
    p.add_argument(
        "--parity",
        action="store_true",
        help="also extract on CPU fp32 and report per-step cosine against CUDA bf16",
    )
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()

    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    if args.parity and not (cuda and torch.cuda.is_available()):
        why = (
            "CUDA is not available here"
            if not torch.cuda.is_available()
            else f"--device {args.device} is not CUDA"
        )
        raise SystemExit(
            f"perf.extraction --parity compares CUDA bf16 features with CPU fp32 ones, so "
            f"it needs a CUDA GPU and --device auto or cuda[:N]; {why}"
        )
    batch = args.batch_size or (64 if cuda else 1)
    cfg = ExtractConfig(
        device=args.device, batch_size=batch, random_weights=True, compile=args.compile
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        video = make_video(
            Path(tmp) / "bench.mp4", duration=args.duration, width=args.width, height=args.height
        )
        t0 = time.perf_counter()
        ex = FeatureExtractor(cfg)
        load_s = time.perf_counter() - t0
        device = ex.device
        ex.extract(video, end=3.0)  # warm-up: first-call allocations, cuDNN autotune
        _sync(device)
        t0 = time.perf_counter()
        feats = ex.extract(video)
        _sync(device)
        extract_s = time.perf_counter() - t0
        parity = None
        if args.parity:
            cpu = FeatureExtractor(ExtractConfig(device="cpu", random_weights=True))
            parity = _parity(feats, cpu.extract(video))
            del cpu

    short = 224
    long = scaled_size(args.width, args.height)[0]
    images = torch.randint(0, 256, (batch, short, long, 3), dtype=torch.uint8, device=device)
    windows = torch.randint(
        0, 256, (batch, FAST_FRAMES, 224, 224, 3), dtype=torch.uint8, device=device
    )
    resnet_flops = flops(ex.models["resnet"], images[:1])
    slowfast_flops = flops(ex.models["slowfast"], windows[:1])
    r_rate, r_n = throughput(ex.models["resnet"], images, device, args.min_seconds)
    s_rate, s_n = throughput(ex.models["slowfast"], windows, device, args.min_seconds)
    r_tflops = r_rate * resnet_flops / 1e12
    s_tflops = s_rate * slowfast_flops / 1e12

    out = {
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "batch_size": batch,
        "dtype": "bf16 autocast" if cuda and cfg.bf16 else "fp32",
        "video": f"{args.duration:g} s {args.width}x{args.height} h264 30 fps",
        "model_load_s": round(load_s, 2),
        "steps": feats.num_steps,
        "extract_s": round(extract_s, 2),
        "video_s_per_s": round(args.duration / extract_s, 3),
        "resnet_input": f"{short}x{long}",
        "resnet_gflops_per_image": round(resnet_flops / 1e9, 2),
        "resnet_images_per_s": round(r_rate, 2),
        "resnet_images_timed": r_n,
        "resnet_tflops": round(r_tflops, 3),
        "slowfast_gflops_per_clip": round(slowfast_flops / 1e9, 2),
        "slowfast_clips_per_s": round(s_rate, 2),
        "slowfast_clips_timed": s_n,
        "slowfast_tflops": round(s_tflops, 3),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    if cuda:
        out["resnet_mfu"] = round(r_tflops / args.peak_tflops, 4)
        out["slowfast_mfu"] = round(s_tflops / args.peak_tflops, 4)
    if parity is not None:
        out["parity"] = parity
    for k, v in out.items():
        print(f"{k:>26}: {v}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
