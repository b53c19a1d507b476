"""End-to-end feature extraction speed, and each extractor's throughput.

Run it::

    .venv/bin/python -m perf.extraction                 # CPU, or CUDA when available
    .venv/bin/python -m perf.extraction --device cuda --batch-size 64
    .venv/bin/python -m perf.extraction --parity          # also CUDA bf16 against CPU fp32
    .venv/bin/python -m perf.extraction --features clip_vit_b32,milnce_s3d
    .venv/bin/python -m perf.extraction --duration 2 --min-seconds 0   # quick: figures rough
    .venv/bin/python -m perf.extraction --features=   # end to end only (gpu_check's parity)

It writes a synthetic H.264 video (default 60 s, 640x360, 30 fps), then measures:

* ``video_s_per_s``: seconds of video per wall-clock second (= video-hours per hour) through
  :meth:`FeatureExtractor.extract` (decode, the ``--e2e-features`` models, default ResNet-152
  and SlowFast-R50, float16 features), the path ``hero extract`` runs, models already loaded;
* ``extractors``: each extractor of ``--features`` (default: all of
  :data:`extract.features.EXTRACTORS`) alone on random pixels of the shape the decoder hands
  it (:func:`sample_input`): a 2D sample scaled from the video's frame size to the
  extractor's short side (``224x398`` for ResNet-152 and ViT-B/32, ``288x512`` for RN50x4 on
  16:9; the CLIPs crop it themselves) or a ``32x224x224`` window; per extractor its input,
  ``unit`` (images or windows), FLOPs per step, samples per second (``per_s``) over at least
  ``--min-seconds``, the samples ``timed``, achieved TFLOP/s, and on CUDA the MFU against the
  bf16 dense peak given by ``--peak-tflops`` (default 989, an H100/H200 SXM's).

FLOPs per step are :func:`extract.features.flops_per_step` (``torch.utils.flop_counter`` on the
``meta`` device, 2 per multiply-add; docs/extraction.md's table), for the sample's frame size.
Not a count on the timed module: under ``torch.inference_mode`` ``nn.MultiheadAttention``
takes its fused fast path, which the counter does not see, so ViT-B/32 would count 5.89
GFLOPs instead of 8.8 (the other four count the same either way).

With ``--parity`` (CUDA only) the video is also extracted on the CPU in float32, and
``parity`` in the JSON gives, per end-to-end model, the min and mean over steps of the cosine
similarity between each step's CUDA bf16 row and its CPU fp32 row (target: >= 0.999 every
step).

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
from typing import Any

import numpy as np
import torch

from extract.config import DEFAULT_FEATURES, FEATURES
from extract.decode import scaled_size
from extract.extractor import ExtractConfig, FeatureExtractor, VideoFeatures, use_bf16
from extract.features import ImageInput, flops_per_step, get_extractor
from extract.models import prepare_for
from extract.sampling import slow_positions
from extract.synthetic import make_video
from hero_data.device import resolve_device
from hero_data.errors import HeroError

PARITY_TARGET = 0.999
"""Least per-step cosine of CUDA bf16 features against CPU fp32 ones (the extraction issue)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def build(
    name: str,
    device: torch.device,
    *,
    bf16: bool = False,
    channels_last: bool = False,
    compile: bool = False,
    sampling: str = "hero",
) -> torch.nn.Module:
    """Extractor ``name``'s module on seeded random weights, set up for ``device`` as
    :class:`FeatureExtractor` sets it up (SlowFast's slow positions by ``sampling``, then
    :func:`extract.models.prepare_for` with the speed options)."""
    module, _ = get_extractor(name).load(None, random_weights=True)
    if name == "slowfast":
        module.slow_positions = slow_positions(sampling)
    return prepare_for(module, device, bf16=bf16, channels_last=channels_last, compile=compile)


def sample_input(
    name: str, batch: int, frame: tuple[int, int], device: torch.device
) -> tuple[torch.Tensor, str, str]:
    """A batch of random ``uint8`` pixels shaped as the decoder hands them to extractor
    ``name`` for a video of ``frame`` = (width, height), its shape in words (``224x398``,
    ``32x224x224``) and its unit (``images``, ``windows``).

    A 2D sample is the frame scaled to the extractor's short side, long side truncated
    (:func:`extract.decode.scaled_size`), ``(B, H, W, 3)``; a window is ``(B, frames, size,
    size, 3)``.
    """
    source = get_extractor(name).input
    if isinstance(source, ImageInput):
        width, height = scaled_size(*frame, source.short_side)
        shape: tuple[int, ...] = (height, width, 3)
        words, unit = f"{height}x{width}", "images"
    else:
        shape = (source.frames, source.size, source.size, 3)
        words, unit = f"{source.frames}x{source.size}x{source.size}", "windows"
    x = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, device=device)
    return x, words, unit


def measure(
    name: str,
    model: torch.nn.Module,
    x: torch.Tensor,
    device: torch.device,
    min_seconds: float,
) -> dict[str, Any]:
    """Extractor ``name``'s figures with its module ``model`` on the batch ``x``
    (:func:`sample_input`): FLOPs per step (:func:`extract.features.flops_per_step` at ``x``'s
    frame size), samples per second over at least ``min_seconds``, samples timed, achieved
    TFLOP/s."""
    if isinstance(get_extractor(name).input, ImageInput):
        count = flops_per_step(name, (x.shape[1], x.shape[2]))  # (H, W) of (B, H, W, 3)
    else:
        count = flops_per_step(name)
    rate, timed = throughput(model, x, device, min_seconds)
    return {
        "gflops_per_step": round(count / 1e9, 2),
        "per_s": round(rate, 2),
        "timed": timed,
        "tflops": round(rate * count / 1e12, 3),
    }


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
    for name in cpu.features:
        cos = _cosines(cuda[name], cpu[name])
        out[f"{name}_cos_min"] = round(float(cos.min()), 6)
        out[f"{name}_cos_mean"] = round(float(cos.mean()), 6)
        worst = min(worst, float(cos.min()))
    out["target"] = PARITY_TARGET
    out["met"] = worst >= PARITY_TARGET
    return out


def _names(p: argparse.ArgumentParser, flag: str, value: str, *, empty: bool) -> list[str]:
    """The extractor names of a comma list; the parser's error for an unknown one, or for
    none unless ``empty``."""
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names and not empty:
        p.error(f"{flag}: name at least one extractor of {', '.join(FEATURES)}")
    for name in names:
        try:
            get_extractor(name)
        except HeroError as e:
            p.error(f"{flag}: {e}")
    return list(dict.fromkeys(names))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=60.0, help="video seconds")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=None, help="default: 1 on CPU, 64 on CUDA")
    p.add_argument(
        "--min-seconds", type=float, default=10.0, help="per extractor timing (0: one batch)"
    )
    p.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak for MFU")
    p.add_argument("--compile", action="store_true")
    p.add_argument(
        "--features",
        default=",".join(FEATURES),
        help="comma-separated extractors each timed alone (default: all; empty: none)",
    )
    p.add_argument(
        "--e2e-features",
        default=",".join(DEFAULT_FEATURES),
        help="comma-separated extractors of the end-to-end extraction (default: %(default)s)",
    )
    p.add_argument(
        "--parity",
        action="store_true",
        help="also extract on CPU fp32 and report per-step cosine against CUDA bf16",
    )
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    if args.min_seconds < 0:
        p.error(f"--min-seconds must be at least 0, got {args.min_seconds:g}")
    features = _names(p, "--features", args.features, empty=True)
    e2e = _names(p, "--e2e-features", args.e2e_features, empty=False)

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
    try:
        device = resolve_device(args.device)
    except HeroError as e:
        p.error(str(e))
    batch = args.batch_size or (64 if cuda else 1)
    cfg = ExtractConfig(
        device=args.device,
        batch_size=batch,
        random_weights=True,
        compile=args.compile,
        features=e2e,
    )
    # Each model once, set up as FeatureExtractor sets it up (which takes them as its own).
    bf16 = use_bf16(device, cfg.bf16)  # as FeatureExtractor decides it
    opts = {"bf16": bf16, "channels_last": cuda, "compile": cuda and cfg.compile}
    models, load_s = {}, {}
    for name in dict.fromkeys(e2e + features):
        t0 = time.perf_counter()
        models[name] = build(name, device, sampling=cfg.sampling, **opts)
        load_s[name] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        video = make_video(
            Path(tmp) / "bench.mp4", duration=args.duration, width=args.width, height=args.height
        )
        try:
            ex = FeatureExtractor(cfg, modules={name: models[name] for name in e2e})
        except HeroError as e:
            raise SystemExit(f"perf.extraction --e2e-features {','.join(e2e)}: {e}") from e
        ex.extract(video, end=3.0)  # warm-up: first-call allocations, cuDNN autotune
        _sync(device)
        t0 = time.perf_counter()
        feats = ex.extract(video)
        _sync(device)
        extract_s = time.perf_counter() - t0
        parity = None
        if args.parity:
            cpu = FeatureExtractor(ExtractConfig(device="cpu", random_weights=True, features=e2e))
            parity = _parity(feats, cpu.extract(video))
            del cpu

    extractors: dict[str, dict[str, Any]] = {}
    for name in features:
        x, words, unit = sample_input(name, batch, (args.width, args.height), device)
        figures = {"input": words, "unit": unit, "load_s": round(load_s[name], 2)}
        figures.update(measure(name, models[name], x, device, args.min_seconds))
        if cuda:
            figures["mfu"] = round(figures["tflops"] / args.peak_tflops, 4)
        extractors[name] = figures
        del x

    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "batch_size": batch,
        "dtype": "bf16 autocast" if bf16 else "fp32",
        "video": f"{args.duration:g} s {args.width}x{args.height} h264 30 fps",
        "e2e_features": e2e,
        "model_load_s": round(sum(load_s.values()), 2),
        "steps": feats.num_steps,
        "extract_s": round(extract_s, 2),
        "video_s_per_s": round(args.duration / extract_s, 3),
        "extractors": extractors,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    if parity is not None:
        out["parity"] = parity
    for k, v in out.items():
        if k == "extractors":
            for name, figures in extractors.items():
                print(f"{name:>26}: {json.dumps(figures)}")
        else:
            print(f"{k:>26}: {v}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
