"""`hero run`'s throughput on Ray against its stages run standalone, and its CPU scaling.

Run it (from the repository root, with the synced environment's Python, not ``uv run``)::

    .venv/bin/python -m perf.pipeline                  # 104 videos, 1 and 2 CPUs
    .venv/bin/python -m perf.pipeline --videos 8       # a quick look
    .venv/bin/python -m perf.pipeline --gpu            # a GPU machine: all cores + GPU

It synthesizes a corpus of short videos (moving bars, 320x180 H.264, each with a WebVTT file)
and a small BPE tokenizer, then measures, each in a fresh process pinned to the given cores
(``sched_setaffinity``, inherited by Ray's processes):

* **standalone, N CPUs**: the pipeline's own code without Ray, in a plain loop, one video
  after another: the driver's lease and plan (``prepare_run``), then per video
  ``probe_video``, the extraction actor's work (``VideoProcessor``: extract, then cut, align
  and tokenize) and the datasink's write task (``datasink_class()``'s ``write``: one shard
  and one commit record per video), and the compaction that ends a run; N torch threads,
  models loaded once; timed from before torch is imported (the pipeline's actor imports it
  inside the pipeline's timed run). Its total is the sum of the stages' times, setup
  (imports, model builds, the plan) included.
* **pipeline, 1 CPU and 2 CPUs**: ``run_pipeline`` on a private local Ray started with
  ``num_cpus`` = that many cores (its default worker layout for that many cores unless
  ``--workers``), timed from the call to the report, Ray's start excluded.

Figures: ``overhead`` = pipeline wall / standalone total - 1 on the most cores asked for
(what Ray Data, the extra process hops and the driver's model check cost; ``overhead_Ncpu``
for each count); ``speedup_2_vs_1`` = pipeline(1 CPU) wall / pipeline(2 CPUs) wall;
``video_hours_per_hour`` from the run on the most cores. The datasets the runs write are
compared (same clip ids, same features: bit-identical at the same thread count, within float16
rounding across thread counts), so every run did the same work.

With ``--gpu`` only the pipeline runs, on all cores and the GPU, and ``nvidia-smi`` is sampled
every 0.5 s for the GPU's utilisation (mean and median over the run). Weights are seeded random
(speed does not depend on them). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# Ray 2.60 re-launches workers through `uv run` when the driver runs under it, which fails.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

ROOT = Path(__file__).resolve().parent.parent

_TEXTS = (
    "stir the sauce slowly",
    "now add two cups of flour",
    "let it rest for ten minutes",
    "cut the onions into thin rings",
    "heat the pan until it smokes",
    "serve it warm with fruit",
)


def make_corpus(folder: Path, videos: int, min_s: float, max_s: float, seed: int) -> float:
    """Write the videos, their subtitles and ``tokenizer.json``; returns total video seconds."""
    import numpy as np

    from align.tokenizer import train_byte_level_bpe
    from extract.synthetic import make_video

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for i in range(videos):
        duration = round(float(rng.uniform(min_s, max_s)), 2)
        make_video(folder / f"v{i:04d}.mp4", duration=duration, seed=i)
        text = _TEXTS[i % len(_TEXTS)]
        end = f"00:00:{duration:06.3f}"
        (folder / f"v{i:04d}.vtt").write_text(
            f"WEBVTT\n\n00:00:00.000 --> {end}\n{text}\n", encoding="utf-8"
        )
        total += duration
    train_byte_level_bpe(list(_TEXTS), folder / "tokenizer.json", vocab_size=300)
    return total


def _pin(cpus: int) -> list[int]:
    """Pin this process (and what it starts) to its first ``cpus`` allowed cores."""
    allowed = sorted(os.sched_getaffinity(0))
    if cpus > len(allowed):
        raise SystemExit(f"asked for {cpus} CPUs, this process may use {len(allowed)}")
    chosen = allowed[:cpus]
    os.sched_setaffinity(0, chosen)
    return chosen


def _run_config(corpus: Path, output: Path, workers: int | None, device: str) -> Any:
    from pipelines.config import RunConfig

    return RunConfig(
        input=str(corpus),
        output=str(output),
        random_weights=True,
        tokenizer=str(corpus / "tokenizer.json"),
        device=device,
        workers=workers,
    )


def child_standalone(corpus: Path, output: Path, cpus: int) -> dict[str, Any]:
    """The pipeline's stages one after another in this process; seconds per stage.

    What ``hero run`` runs, without Ray: the driver's part (the dataset's lease and the plan:
    :func:`pipelines.run.prepare_run`; compaction when the lease is released), and per video
    :func:`pipelines.run.probe_video`, the extraction actor's work
    (:class:`pipelines.run.VideoProcessor`: extract, then cut, align and tokenize) and the
    datasink's write task (:func:`pipelines.run.datasink_class`), one video per write task.

    Timed from before torch is imported: the pipeline's extraction actor imports it (and
    torchvision, pytorchvideo) inside the pipeline's timed run, so the standalone run pays it
    too ("setup", with the model builds; "imports" says how much of it was importing). Ray
    Data, which the datasink's class comes from, is imported before: the pipeline's driver
    has it loaded before its timed run starts.
    """
    import pyarrow as pa

    from hero_data.writer import DatasetWriter, new_run_id
    from pipelines.run import (
        VideoProcessor,
        dataset_config,
        dataset_features,
        datasink_class,
        prepare_run,
        probe_video,
    )

    _pin(cpus)
    cfg = _run_config(corpus, output, None, "cpu")
    sink_class = datasink_class()
    t: dict[str, float] = dict.fromkeys(("setup", "probe", "extract", "align", "write"), 0.0)
    started = time.perf_counter()
    import torch

    import extract.extractor  # noqa: F401  (what VideoProcessor imports: torchvision, pytorchvideo)

    imports = time.perf_counter() - started
    torch.set_num_threads(cpus)
    run_id = new_run_id()
    config = dataset_config(cfg)  # as the driver does (the weights' sha256, the tokenizer's)
    features = dataset_features(cfg, config)
    owner = DatasetWriter(
        cfg.output,
        config,
        features=features,
        mode="overwrite" if cfg.overwrite else "append",
        max_rows_per_shard=cfg.rows_per_shard,
        run=run_id,
        command="hero run",
    )
    owner.open()
    rows = prepare_run(cfg, owner).todo.to_pylist()
    processor = VideoProcessor(cfg.model_dump(), threads=cpus)
    sink = sink_class(cfg.output, run_id, cfg.rows_per_shard, features)
    t["setup"] = time.perf_counter() - started
    video_seconds = 0.0
    for row in rows:
        t0 = time.perf_counter()
        row = probe_video(row)
        t1 = time.perf_counter()
        row = processor.process(row)
        t3 = time.perf_counter()
        t2 = t3 - row["t_align"]  # the processor aligns after extracting
        sink.write([pa.Table.from_pylist([row])], None)
        if row["status"] == "ok":
            video_seconds += row["duration"]
        t4 = time.perf_counter()
        for key, a, b in (("probe", t0, t1), ("extract", t1, t2), ("align", t2, t3)):
            t[key] += b - a
        t["write"] += t4 - t3
    t0 = time.perf_counter()
    owner.close(finished_runs=[run_id])  # compacts the commit records, as hero run's end does
    t["write"] += time.perf_counter() - t0
    return {
        "mode": "standalone",
        "cpus": cpus,
        "stage_s": t,
        "imports_s": imports,
        "total_s": sum(t.values()),
        "video_seconds": video_seconds,
    }


def child_pipeline(
    corpus: Path, output: Path, cpus: int | None, workers: int | None, gpu: bool
) -> dict[str, Any]:
    """``run_pipeline`` on a private Ray limited to ``cpus`` cores."""
    import ray

    from pipelines.run import run_pipeline

    if cpus is not None:
        _pin(cpus)
    init: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING"}
    init["log_to_driver"] = False
    if cpus is not None:
        init["num_cpus"] = cpus
    # as hero run does for a local Ray (keeps task workers warm)
    os.environ.setdefault("RAY_num_workers_soft_limit", str(max(8, 2 * (os.cpu_count() or 1))))
    ray.init(address="local", **init)
    sampler = _GpuSampler() if gpu else None
    try:
        cfg = _run_config(corpus, output, workers, "cuda" if gpu else "cpu")
        if sampler:
            sampler.start()
        started = time.perf_counter()
        report = run_pipeline(cfg, progress=False)
        wall = time.perf_counter() - started
    finally:
        if sampler:
            sampler.stop()
        ray.shutdown()
    run = report["this_run"]
    out = {
        "mode": "pipeline",
        "cpus": cpus or len(os.sched_getaffinity(0)),
        "workers": workers,
        "wall_s": wall,
        "video_seconds": run["video_hours"] * 3600,
        "videos_ok": report["videos_ok"],
        "videos_failed": report["videos_failed"],
        "stage_worker_s": run["stage_worker_s"],
    }
    if sampler:
        out["gpu_util_pct"] = sampler.summary()
    return out


class _GpuSampler:
    """``nvidia-smi``'s GPU utilisation every 0.5 s, in a thread."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self._stop.wait(0.5):
            out = subprocess.run(query, capture_output=True, text=True, check=False).stdout
            first = out.strip().splitlines()[:1]
            if first and first[0].strip().isdigit():
                self.samples.append(float(first[0]))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        s = self.samples or [float("nan")]
        return {"mean": statistics.fmean(s), "median": statistics.median(s), "samples": len(s)}


def dataset_features(root: Path) -> dict[str, Any]:
    """Clip id -> its features, both models side by side, as float32."""
    import numpy as np

    from hero_data.reader import HeroDataset

    return {r.clip.clip_id: r.visual().astype(np.float32) for r in HeroDataset.open(root)}


def compare_datasets(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """Largest absolute feature difference between two runs' datasets; ``None`` when their
    clips differ."""
    import numpy as np

    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        return None
    return max((float(np.abs(a[k] - b[k]).max()) for k in a), default=0.0)


def _spawn(args: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "perf.pipeline", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{' '.join(args)}: failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=104, help="videos in the corpus [104]")
    p.add_argument("--min-duration", type=float, default=1.0, help="seconds [1.0]")
    p.add_argument("--max-duration", type=float, default=1.5, help="seconds [1.5]")
    p.add_argument("--cpus", default="1,2", help="pipeline core counts to run [1,2]")
    p.add_argument("--workers", type=int, help="extraction workers [the pipeline's default]")
    p.add_argument("--gpu", action="store_true", help="pipeline on all cores and the GPU only")
    p.add_argument("--workdir", type=Path, help="keep corpus and datasets here [a temp dir]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", choices=["standalone", "pipeline"], help=argparse.SUPPRESS)
    p.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--child-cpus", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child == "standalone":
        print(json.dumps(child_standalone(args.corpus, args.output, args.child_cpus)))
        return
    if args.child == "pipeline":
        result = child_pipeline(args.corpus, args.output, args.child_cpus, args.workers, args.gpu)
        print(json.dumps(result))
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="hero-bench-pipeline-"))
    corpus = work / "corpus"
    started = time.perf_counter()
    if corpus.exists():
        shutil.rmtree(corpus)
    seconds = make_corpus(corpus, args.videos, args.min_duration, args.max_duration, args.seed)
    print(
        f"corpus: {args.videos} videos, {seconds:.1f} s of video "
        f"({time.perf_counter() - started:.1f} s to make) in {corpus}"
    )
    extra = ["--workers", str(args.workers)] if args.workers else []
    results: dict[str, Any] = {}
    runs: list[tuple[str, list[str]]] = []
    if args.gpu:
        runs.append(("pipeline_gpu", ["--child", "pipeline", "--gpu", *extra]))
    else:
        for n in (int(c) for c in args.cpus.split(",")):
            runs.append((f"standalone_{n}", ["--child", "standalone", "--child-cpus", str(n)]))
            runs.append((f"pipeline_{n}", ["--child", "pipeline", "--child-cpus", str(n), *extra]))
    datasets = {}
    for name, child_args in runs:
        out = work / name
        if out.exists():
            shutil.rmtree(out)
        r = _spawn([*child_args, "--corpus", str(corpus), "--output", str(out)])
        results[name] = r
        datasets[name] = dataset_features(out)
        wall = r.get("wall_s", r.get("total_s"))
        print(f"{name}: {wall:.1f} s  {json.dumps(r)}")
    # Every run must have done the same work: the same clips, and the same features (bit for
    # bit with the same torch thread count; within float16 rounding across thread counts, as
    # a reduction split over more threads adds in another order).
    first_name, first = next(iter(datasets.items()))
    diffs = {name: compare_datasets(first, d) for name, d in datasets.items()}
    print(f"datasets: {len(first)} clips; max |feature difference| against {first_name}: {diffs}")
    if any(d is None or d > 1e-2 for d in diffs.values()):
        raise SystemExit("the runs wrote different datasets: the comparison is not fair")

    figures: dict[str, Any] = {
        "videos": args.videos,
        "video_seconds": round(seconds, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.gpu:
        r = results["pipeline_gpu"]
        figures["video_hours_per_hour"] = r["video_seconds"] / r["wall_s"]
        figures["gpu_util_pct"] = r["gpu_util_pct"]
    else:
        pipes = {int(k.split("_")[1]): v for k, v in results.items() if k.startswith("pipeline_")}
        alone = {int(k.split("_")[1]): v for k, v in results.items() if k.startswith("standalone")}
        most = max(pipes)
        # the headline: on all the cores asked for; the other counts alongside
        figures["overhead"] = pipes[most]["wall_s"] / alone[most]["total_s"] - 1
        for n in sorted(pipes):
            figures[f"overhead_{n}cpu"] = pipes[n]["wall_s"] / alone[n]["total_s"] - 1
            figures[f"pipeline_{n}cpu_s"] = pipes[n]["wall_s"]
            figures[f"standalone_{n}cpu_s"] = alone[n]["total_s"]
            figures[f"standalone_{n}cpu_stage_s"] = alone[n]["stage_s"]
            figures[f"standalone_{n}cpu_imports_s"] = alone[n]["imports_s"]
        if 1 in pipes and 2 in pipes:
            figures["speedup_2_vs_1"] = pipes[1]["wall_s"] / pipes[2]["wall_s"]
        figures["video_hours_per_hour"] = pipes[most]["video_seconds"] / pipes[most]["wall_s"]
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
