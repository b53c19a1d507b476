"""Everything GPU-specific, validated and measured by one command on a one-GPU machine.

Run it (from the repository root, with the synced environment's Python)::

    .venv/bin/python -m perf.gpu_check                  # at most 9 minutes (540 s budget)
    .venv/bin/python -m perf.gpu_check --budget-s 300   # parts that do not fit are skipped

Parts, in order (each reuses the benchmark that owns the figure; none is re-implemented here):

1. **parity**: ``perf.extraction --parity``: both models on CUDA in bf16 against the CPU
   in fp32 on the same seeded random weights, per-step cosine (target >= 0.999), and the
   end-to-end extraction speed (``video_s_per_s``) with ``pixels=auto`` (torch on the GPU).
2. **models**: every extractor (:data:`extract.features.EXTRACTORS`: ResNet-152, SlowFast,
   CLIP ViT-B/32 and RN50x4, MIL-NCE S3D) alone, in bf16 autocast, at batch sizes 16 … 256
   (``perf.extraction``'s ``build``, ``sample_input`` and ``measure``): per extractor its
   input (``224x398``, ``288x512`` images, ``32x224x224`` windows), GFLOPs per step,
   images/s or windows/s by batch size, the best batch size, and there TFLOP/s and the MFU
   against the bf16 dense peak (``--peak-tflops``, default 989, H100/H200 SXM). Each
   extractor has an equal share of the part's time; batch sizes past it are left out.
3. **decode**: a synthetic 720p H.264 video through ``iter_steps(pixels="torch")``: the decode
   thread alone (frames/s, against a plain PyAV decode of every frame, the ceiling), and with
   the pixel work on the GPU (:func:`extract.extractor.planes_to_inputs`, batches of 16 steps)
   in the same thread; then the same two passes decoded by NVDEC (``decoder="nvdec"``,
   :mod:`extract.nvdec`) when torchcodec is installed, else ``nvdec`` says why it was skipped.
4. **run**: ``perf.pipeline --gpu``: ``hero run`` on a synthetic corpus with every
   core and the GPU: video-hours per hour and the GPU's utilisation (``nvidia-smi``).
5. **train**: ``perf.train``: base HERO pretraining in bf16, steps/s and MFU.

Without CUDA every part is skipped with a message saying so, and the script still exits 0
with its JSON line (``"cuda": false`` and the ``skipped`` parts). The last line printed is one
JSON object with every part's figures (``null`` for a part skipped, failed or out of time;
``errors`` says why).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

PARTS = ("parity", "models", "decode", "run", "train")

FRAME = (640, 360)
"""(width, height) of the video frames the ``models`` part's 2D samples are scaled from: 16:9,
as ``perf.extraction``'s video (224x398 at short side 224, 288x512 at RN50x4's 288)."""


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the output")


def _script(args: list[str], timeout: float) -> dict[str, Any]:
    """Run a benchmark script (``args``: its module, then its options); its last JSON line."""
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return _last_json(proc.stdout)


def part_parity(args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    out = _script(
        [
            "perf.extraction",
            "--device=cuda",
            "--parity",
            "--duration=30",
            "--batch-size=64",
            "--features=",  # each extractor alone: the models part
        ],
        timeout,
    )
    keep = ("parity", "video_s_per_s", "extract_s", "steps", "device", "dtype")
    return {k: out[k] for k in keep if k in out}


def part_models(args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    """Every extractor alone at each batch size of ``args.batches`` (``perf.extraction``'s
    figures: input, unit, GFLOPs per step, samples/s, TFLOP/s, MFU), built as ``hero
    extract`` builds it on CUDA (bf16 autocast, channels last). Each extractor gets an equal
    share of 80% of ``timeout``; larger batches that do not fit it, or the GPU's memory, are
    left out, and an extractor with no batch measured says why instead of its figures."""
    import torch

    from extract.config import FEATURES
    from perf import extraction

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    results: dict[str, Any] = {}
    started = time.perf_counter()
    for i, name in enumerate(FEATURES):
        deadline = started + timeout * 0.8 * (i + 1) / len(FEATURES)
        if time.perf_counter() > deadline:
            results[name] = {"skipped": "out of time"}
            continue
        model = extraction.build(name, device, bf16=cuda, channels_last=cuda)
        figures: dict[str, Any] = {}
        by_batch: dict[int, dict[str, Any]] = {}
        for batch in args.batches:
            if time.perf_counter() > deadline:
                break
            try:
                x, words, unit = extraction.sample_input(name, batch, FRAME, device)
                by_batch[batch] = extraction.measure(name, model, x, device, args.min_seconds)
                figures = {"input": words, "unit": unit}
            except torch.OutOfMemoryError:
                break
            finally:
                x = None  # this batch's memory free before the next, larger one
                if cuda:
                    torch.cuda.empty_cache()
        del model
        if not by_batch:
            results[name] = {"skipped": "no batch size fitted its time or the GPU's memory"}
            continue
        best = max(by_batch, key=lambda b: by_batch[b]["per_s"])
        figures.update(by_batch[best])
        figures["per_s_by_batch"] = {b: round(f["per_s"], 1) for b, f in by_batch.items()}
        figures["best_batch"] = best
        figures["mfu"] = round(figures["tflops"] / args.peak_tflops, 4) if cuda else None
        results[name] = figures
    return results


def part_decode(args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    import av
    import torch

    from extract.decode import iter_steps
    from extract.synthetic import make_video

    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(
            Path(tmp) / "d.mp4",
            duration=args.decode_seconds,
            width=1280,
            height=720,
            preset="veryfast",
        )
        with av.open(str(video)) as c:
            frames = c.streams.video[0].frames
        t0 = time.perf_counter()
        with av.open(str(video)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            for _ in c.decode(s):
                pass
        ceiling = time.perf_counter() - t0
        device = torch.device(args.device)
        planes = _steps_seconds(iter_steps(video, sampling="hero", pixels="torch"), None)
        with_gpu = _steps_seconds(iter_steps(video, sampling="hero", pixels="torch"), device)
        nvdec = nvdec_decode(args, video, frames)
    return {
        "video": f"{args.decode_seconds:g} s 1280x720 h264 (x264 veryfast) 30 fps",
        "ceiling_fps": round(frames / ceiling, 1),
        "decode_thread_fps": round(frames / planes, 1),
        "decode_thread_vs_ceiling": round(ceiling / planes, 3),
        "with_gpu_pixels_fps": round(frames / with_gpu, 1),
        "nvdec": nvdec,
    }


def _steps_seconds(steps: Any, device: Any, sync: Any = None) -> float:
    """Seconds to draw every step of ``steps``; with a ``device``, each batch of 16 steps is
    also converted there (:func:`extract.extractor.planes_to_inputs`). CUDA work is waited
    for (on ``device``, or ``sync``) before the clock stops."""
    import torch

    from extract.extractor import planes_to_inputs

    t0 = time.perf_counter()
    batch: list[Any] = []
    for step in steps:
        if device is None:
            continue
        batch.append(step)
        if len(batch) == 16:
            planes_to_inputs(batch, "hero", device)
            batch = []
    if batch:
        planes_to_inputs(batch, "hero", device)
    waited = sync if sync is not None else device
    if waited is not None and waited.type == "cuda":
        torch.cuda.synchronize(waited)
    return time.perf_counter() - t0


def nvdec_decode(args: argparse.Namespace, video: Path, frames: int) -> dict[str, Any]:
    """The decode part's two passes with NVDEC decoding (:mod:`extract.nvdec`): the decode
    thread alone (NVDEC decodes, torchcodec hands over the used frames as RGB on the GPU) and
    with the pixel work on the GPU too (batches of 16 steps); frames/s of the source video.
    ``{"skipped": why}`` where NVDEC cannot run, ``{"error": ...}`` where it failed."""
    import torch

    from extract.decode import iter_steps
    from extract.nvdec import missing

    device = torch.device(args.device)
    why = missing(device)
    if why is not None:
        return {"skipped": f"NVDEC not measured: {why}"}

    def seconds(convert: bool) -> float:
        steps = iter_steps(video, sampling="hero", pixels="torch", decoder="nvdec", device=device)
        return _steps_seconds(steps, device if convert else None, sync=device)

    try:
        alone, with_pixels = seconds(False), seconds(True)
    except Exception as e:  # the CPU figures of the part still stand
        return {"error": f"{type(e).__name__}: {e}"[-500:]}
    return {
        "decode_thread_fps": round(frames / alone, 1),
        "with_gpu_pixels_fps": round(frames / with_pixels, 1),
    }


def part_run(args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    return _script(
        [
            "perf.pipeline",
            "--gpu",
            f"--videos={args.run_videos}",
            "--min-duration=20",
            "--max-duration=40",
        ],
        timeout,
    )


def part_train(args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    out = _script(
        ["perf.train", "--cpu-steps=2", "--warmup=3", "--gpu-steps=20", "--clips=64"],
        timeout,
    )
    keep = ("gpu", "base_gpu_steps_per_s", "base_gpu_clips_per_s", "base_gpu_tflops", "mfu")
    return {k: out[k] for k in keep if k in out}


_RUN = {
    "parity": part_parity,
    "models": part_models,
    "decode": part_decode,
    "run": part_run,
    "train": part_train,
}
_SHARE = {"parity": 120, "models": 150, "decode": 60, "run": 120, "train": 90}
"""Seconds each part may take (out of the default budget, their sum)."""
BUDGET_S = sum(_SHARE.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget-s", type=float, default=BUDGET_S, help="the whole check's time")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak for MFU")
    p.add_argument("--run-videos", type=int, default=24, help="videos in hero run's corpus")
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    # For checking this script itself on a CPU (figures meaningless): --smoke-cpu runs the
    # in-process parts (models, decode) of --parts there, small.
    p.add_argument("--smoke-cpu", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.device, args.batches, args.decode_seconds = "cuda", (16, 32, 64, 128, 256), 60.0
    args.min_seconds = 1.0  # per extractor and batch size, after a warm-up batch
    parts = [x for x in args.parts.split(",") if x]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        p.error(f"unknown parts {unknown}; choose from {list(PARTS)}")

    import torch

    summary: dict[str, Any] = {"cuda": torch.cuda.is_available(), "torch": torch.__version__}
    summary["skipped"], summary["errors"] = [], {}
    if args.smoke_cpu:
        args.device, args.batches, args.decode_seconds, args.min_seconds = "cpu", (1,), 3.0, 0.0
        for name in ("models", "decode"):
            if name not in parts:
                continue
            summary[name] = _RUN[name](args, 600)
            print(f"gpu_check (smoke, CPU): {name}: {json.dumps(summary[name])}")
        print(json.dumps(summary))
        return 0
    if not summary["cuda"]:
        print(
            "gpu_check: no CUDA device here (torch.cuda.is_available() is False): every part is "
            "GPU-specific, so all are skipped: " + ", ".join(parts)
        )
        summary["skipped"] = parts
        print(json.dumps(summary))
        return 0
    summary["device"] = torch.cuda.get_device_name(0)
    summary["cores"] = os.cpu_count()
    started = time.perf_counter()
    for name in parts:
        left = args.budget_s - (time.perf_counter() - started)
        timeout = min(_SHARE[name] * args.budget_s / BUDGET_S, left)
        if timeout < 20:
            summary["skipped"].append(name)
            summary[name] = None
            print(f"gpu_check: {name}: skipped, out of time")
            continue
        t0 = time.perf_counter()
        try:
            summary[name] = _RUN[name](args, timeout)
        except Exception as e:  # one part failing must not hide the others' figures
            summary[name] = None
            summary["errors"][name] = f"{type(e).__name__}: {e}"[-500:]
        took = time.perf_counter() - t0
        print(f"gpu_check: {name} ({took:.0f} s): {json.dumps(summary[name])}", flush=True)
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
