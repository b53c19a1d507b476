"""HERO pretraining throughput: the tiny model on CPU, ``base`` with bf16 on a GPU, and whether
the data loader keeps up with the trainer.

Run it (from the repository root, with the synced environment's Python)::

    .venv/bin/python -m perf.train                      # tiny on CPU (+ base if a GPU)
    .venv/bin/python -m perf.train --cpu-steps 10 --clips 32 --threads 1   # quick look

It writes a synthetic dataset with :class:`hero_data.writer.DatasetWriter` (random float16
features, 60 s clips of 40 steps at 1.5 s, cues with random token ids), then, with the
trainer's own code (:class:`hero_model.train.PretrainRecipe`: the real sampler, task mix
MLM:MNCE:FOM:VSM = 2:2:1:2, ``make_batch`` in DataLoader processes, AdamW, clipping):

* **tiny, CPU**: optimizer steps per second after ``--warmup`` untimed steps, and clips/s.
* **loader**: the same DataLoader (same workers, same plan) iterated on its own, without
  training: the clips/s it can deliver. Compare with the trainer's clips/s: the loader must be
  faster, or training waits for data (``data_wait_fraction`` is the share of the timed steps
  spent waiting for the next batch).
* **base, GPU** (skipped without CUDA): ``base`` with bf16 autocast, ``--gpu-batch-size`` clips
  per step: steps/s, clips/s, tokens + frames per second (text tokens of the clips' cues, each
  cut to ``max_tokens``, plus their feature steps), and MFU: the model FLOPs of the timed steps
  (forward + backward, counted by ``torch.utils.flop_counter`` on the same batches in a second,
  untimed pass) per second over the GPU's dense bf16 peak (``--peak-tflops``, or known from the
  device name: H100/H200 SXM 989, H100 PCIe 756, A100 312).

The last line printed is one JSON object: ``tiny_cpu_steps_per_s``, ``loader_clips_per_s`` and
``trainer_clips_per_s`` (the GPU run's when there is a GPU, else the CPU run's), and ``mfu``
when measured on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord
from hero_data.types import Clip, Cue
from hero_data.writer import DatasetWriter
from hero_model.data import MicroBatch, make_loader
from hero_model.train import PretrainRecipe, load_train_config

FRAME_INTERVAL = 1.5
"""Seconds per feature step."""

PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}
"""Dense bf16 peak by device-name fragment (first match wins; the PCIe H100 before the SXM)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--clips", type=int, default=64, help="clips in the synthetic dataset")
    p.add_argument("--steps-per-clip", type=int, default=40, help="feature steps per clip")
    p.add_argument("--cues", type=int, default=12, help="cues per clip")
    p.add_argument("--cue-tokens", type=int, default=14, help="mean token ids per cue")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    p.add_argument("--cpu-steps", type=int, default=20, help="timed tiny steps on CPU")
    p.add_argument("--cpu-batch-size", type=int, default=8, help="clips per tiny CPU step")
    p.add_argument("--gpu-steps", type=int, default=30, help="timed base steps on the GPU")
    p.add_argument("--gpu-batch-size", type=int, default=32, help="clips per base GPU step")
    p.add_argument(
        "--loader-workers",
        type=int,
        default=None,
        help="DataLoader processes (default: 1 on CPU, min(8, cores - 2) with a GPU)",
    )
    p.add_argument("--loader-batches", type=int, default=None, help="micro-batches timed alone")
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads for the CPU run (default: torch's)"
    )
    p.add_argument("--peak-tflops", type=float, default=None, help="GPU dense bf16 peak, TFLOP/s")
    p.add_argument("--no-gpu", action="store_true", help="skip the GPU part even with a GPU")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the run")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for the dataset and runs (default: a temporary folder, removed afterwards)",
    )
    args = p.parse_args(argv)
    for name in ("clips", "steps_per_clip", "cpu_steps", "gpu_steps", "cpu_batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


# -- synthetic data ------------------------------------------------------------------------


def synthetic_records(
    clips: int, steps: int, cues: int, tokens: int, rng: np.random.Generator
) -> Iterator[ClipRecord]:
    """Clips of ``steps`` steps with random features and ``cues`` evenly spread cues.

    Token ids are drawn from 5..63 so that the tiny model's vocabulary (64) holds them too.
    """
    duration = steps * FRAME_INTERVAL
    feats = rng.standard_normal((8, steps, RESNET_DIM + SLOWFAST_DIM), dtype=np.float32)
    pool = feats.astype(np.float16)
    span = steps / cues
    for k in range(clips):
        f = pool[k % len(pool)]
        cue_list, token_ids, spans = [], [], []
        for c in range(cues):
            first, last = int(c * span), max(int((c + 1) * span) - 1, int(c * span))
            start, end = first * FRAME_INTERVAL, (last + 1) * FRAME_INTERVAL - 0.1
            cue_list.append(Cue(start, end, f"cue {c}"))
            n = int(rng.integers(max(tokens // 2, 1), tokens * 3 // 2 + 1))
            token_ids.append(tuple(rng.integers(5, 64, n).tolist()))
            spans.append(tuple(range(first, last + 1)))
        yield ClipRecord(
            clip=Clip(f"vid{k:05d}", 0, 0.0, duration),
            source=f"synthetic://vid{k:05d}.mp4",
            frame_interval=FRAME_INTERVAL,
            features={"resnet": f[:, :RESNET_DIM], "slowfast": f[:, RESNET_DIM:]},
            cues=tuple(cue_list),
            cue_token_ids=tuple(token_ids),
            sub2frames=tuple(spans),
            unique_sub2frames=tuple(spans),
        )


# -- measurements --------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_trainer(recipe: PretrainRecipe, warmup: int, steps: int) -> dict[str, Any]:
    """Run ``warmup`` then ``steps`` timed optimizer steps; rates and the timed micro-batches."""
    it = iter(recipe.loader)
    kept: list[list[MicroBatch]] = []
    wait = 0.0
    clips = tokens = frames = 0
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            _sync(recipe.device)
            t0 = time.perf_counter()
            wait = 0.0
        tw = time.perf_counter()
        micro = [next(it) for _ in range(recipe.cfg.accumulation)]
        wait += time.perf_counter() - tw
        recipe.train_step(micro)
        recipe.step += 1
        if i >= warmup:
            kept.append(micro)
            clips += sum(m.clips for m in micro)
            tokens += sum(m.tokens for m in micro)
            frames += sum(m.feature_steps for m in micro)
    _sync(recipe.device)
    elapsed = time.perf_counter() - t0
    return {
        "steps_per_s": steps / elapsed,
        "clips_per_s": clips / elapsed,
        "tokens_frames_per_s": (tokens + frames) / elapsed,
        "data_wait_fraction": wait / elapsed,
        "seconds": elapsed,
        "batches": kept,
    }


def time_loader(recipe: PretrainRecipe, batches: int) -> float:
    """Clips/s the recipe's DataLoader delivers on its own (first micro-batch excluded)."""
    loader = make_loader(
        recipe.loader.dataset,
        num_workers=recipe.cfg.loader_workers,
        prefetch_factor=recipe.cfg.prefetch,
        pin_memory=recipe.device.type == "cuda",
    )
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    t0 = time.perf_counter()
    clips = sum(next(it).clips for _ in range(batches))
    return clips / (time.perf_counter() - t0)


def count_flops(recipe: PretrainRecipe, steps: list[list[MicroBatch]]) -> float:
    """Model FLOPs (forward + backward) of ``steps``, counted on the same batches."""
    from torch.utils.flop_counter import FlopCounterMode

    model = recipe.model
    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        for micro in steps:
            for m in micro:
                if m.batch is None:
                    continue
                batch = {k: v.to(recipe.device) for k, v in m.batch.items()}
                with torch.autocast(recipe.device.type, dtype=torch.bfloat16):
                    out = model(batch, m.task)
                out["loss"].backward()
                model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def peak_tflops(name: str, given: float | None) -> float | None:
    if given is not None:
        return given
    for fragment, peak in PEAK_BF16_TFLOPS.items():
        if all(part in name for part in fragment.split()):
            return peak
    return None


def make_recipe(
    config: str, data: Path, run: Path, args: argparse.Namespace, **overrides: Any
) -> PretrainRecipe:
    cfg = load_train_config(
        config,
        {
            "data": (str(data),),
            "max_steps": 100_000,
            "warmup_steps": 10,
            "accumulation": 1,
            "seed": args.seed,
            **overrides,
        },
    )
    recipe = PretrainRecipe(cfg, run, progress=False)
    recipe.setup()
    return recipe


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    data = work / "dataset"
    t0 = time.perf_counter()
    config = {"benchmark": "train", "frame_interval": FRAME_INTERVAL}
    with DatasetWriter(data, config, mode="overwrite") as w:
        w.write_many(
            synthetic_records(args.clips, args.steps_per_clip, args.cues, args.cue_tokens, rng)
        )
    print(
        f"dataset            {args.clips} clips x {args.steps_per_clip} steps, {args.cues} cues "
        f"of ~{args.cue_tokens} tokens, written in {time.perf_counter() - t0:.1f} s"
    )
    summary: dict[str, Any] = {}

    # -- tiny on CPU
    threads_before = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cpu_workers = args.loader_workers if args.loader_workers is not None else 1
    recipe = make_recipe(
        "tiny",
        data,
        work / "tiny",
        args,
        batch_size=args.cpu_batch_size,
        device="cpu",
        loader_workers=cpu_workers,
    )
    try:
        tiny = time_trainer(recipe, args.warmup, args.cpu_steps)
        tiny_loader = time_loader(recipe, args.loader_batches or 2 * args.cpu_steps)
    finally:
        recipe.cleanup()
        torch.set_num_threads(threads_before)
    print(
        f"tiny CPU           {tiny['steps_per_s']:.2f} steps/s, {tiny['clips_per_s']:.1f} "
        f"clips/s ({args.cpu_batch_size} clips/step, {args.threads or threads_before} torch "
        f"threads, {cpu_workers} loader processes), data wait {tiny['data_wait_fraction']:.1%}"
    )
    print(f"tiny loader alone  {tiny_loader:.1f} clips/s")
    summary.update(
        tiny_cpu_steps_per_s=round(tiny["steps_per_s"], 3),
        tiny_cpu_clips_per_s=round(tiny["clips_per_s"], 2),
        tiny_cpu_loader_clips_per_s=round(tiny_loader, 1),
        tiny_cpu_data_wait_fraction=round(tiny["data_wait_fraction"], 4),
        loader_clips_per_s=round(tiny_loader, 1),
        trainer_clips_per_s=round(tiny["clips_per_s"], 2),
        torch_threads=args.threads or threads_before,
        cpu_loader_workers=cpu_workers,
    )

    # -- base on a GPU, bf16
    if args.no_gpu or not torch.cuda.is_available():
        print("base GPU           skipped (no CUDA device)")
    else:
        name = torch.cuda.get_device_name(0)
        cores = os.cpu_count() or 4
        workers = args.loader_workers if args.loader_workers is not None else min(8, cores - 2)
        recipe = make_recipe(
            "base",
            data,
            work / "base",
            args,
            batch_size=args.gpu_batch_size,
            device="cuda",
            precision="bf16",
            loader_workers=max(workers, 0),
        )
        try:
            base = time_trainer(recipe, args.warmup, args.gpu_steps)
            loader = time_loader(recipe, args.loader_batches or 2 * args.gpu_steps)
            flops = count_flops(recipe, base.pop("batches"))
            params = sum(p.numel() for p in recipe.model.parameters())
        finally:
            recipe.cleanup()
        achieved = flops / base["seconds"] / 1e12
        peak = peak_tflops(name, args.peak_tflops)
        mfu = achieved / peak if peak else None
        print(
            f"base GPU ({name})  {base['steps_per_s']:.2f} steps/s, {base['clips_per_s']:.1f} "
            f"clips/s, {base['tokens_frames_per_s']:,.0f} tokens+frames/s, "
            f"data wait {base['data_wait_fraction']:.1%}"
        )
        print(
            f"base FLOPs         {achieved:.1f} TFLOP/s of {peak or '?'} peak: MFU "
            + (f"{mfu:.1%}" if mfu is not None else "unknown (give --peak-tflops)")
            + f"; {params / 1e6:.1f} M parameters"
        )
        print(f"base loader alone  {loader:.1f} clips/s with {workers} processes")
        summary.update(
            gpu=name,
            base_gpu_steps_per_s=round(base["steps_per_s"], 3),
            base_gpu_clips_per_s=round(base["clips_per_s"], 2),
            base_gpu_tokens_frames_per_s=round(base["tokens_frames_per_s"], 1),
            base_gpu_data_wait_fraction=round(base["data_wait_fraction"], 4),
            base_gpu_tflops=round(achieved, 2),
            base_parameters=params,
            loader_clips_per_s=round(loader, 1),
            trainer_clips_per_s=round(base["clips_per_s"], 2),
            gpu_loader_workers=workers,
        )
        if mfu is not None:
            summary["mfu"] = round(mfu, 4)
    summary.update(
        clips=args.clips,
        steps_per_clip=args.steps_per_clip,
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        torch=torch.__version__,
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        summary = run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="hero-train-bench-") as tmp:
            summary = run(args, Path(tmp))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
