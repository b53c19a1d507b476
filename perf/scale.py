"""Dataset commits at corpus scale: does a commit cost the same for the first shard and the
20,000th?

Run it::

    .venv/bin/python -m perf.scale                 # 20,000 write tasks from 2 processes
    .venv/bin/python -m perf.scale --tasks 2000    # a quick look

Each of ``--processes`` worker processes plays ``hero run``'s write tasks: it calls the real
datasink of ``pipelines.run`` (``HeroDatasink.write``, the code each Ray write task executes)
with one block of ``--videos-per-task`` rows, each row a video of one one-step clip packed as
the extraction actor packs it (Arrow IPC bytes). So what is timed is bookkeeping: a shard of
three tiny clips written, fsynced and renamed into place, its sha256, and the commit record
created only if absent. The processes hold no lock and read nothing of the dataset, while the
driver (this process) holds the dataset's lease, as ``hero run``'s does. Nothing is compacted
while they write, so at the end every record is still pending: the worst case for readers.

Per-commit wall times are ordered by commit count (the two processes interleave). The figures:

* ``first_ms``: the mean over the first 1,000 commits; ``last_ms``: over the last 1,000
  (commits 19,001-20,000 by default); ``commit_growth = last_ms / first_ms``.
* ``snapshot_s``: what a reader or a resuming run pays to see all records (manifest + listing +
  reading every record); ``compact_s``: one compaction of all of them into ``manifest.json``
  (``errors.jsonl`` too; every 50th video fails); then ``snapshot_after_s``.

Resume planning (``--plan-videos``, default 1.2 M; ``0`` skips it): a CSV manifest of that many
videos, and a dataset in which ``--plan-committed`` (1 M) of them are committed: most of them in
``manifest.json`` (shard entries of 170 videos each, as 60 s clips of HowTo100M's 6.5-minute
mean length fill 1,024-clip shards; their files need not exist, planning never opens a shard),
and 10,000 in 1,000 commit records not yet compacted (real one-step shards), as after a
crash. A fresh process then does what ``hero run`` does before Ray starts: take the lease and
open the dataset (which folds those records into the manifest), take one snapshot, list the
manifest CSV and plan (``pipelines.run.prepare_run``). ``plan_seconds`` is that wall time and
``plan_rss_mb`` the process's peak RSS (VmHWM).

The HowTo100M caption index (``--caption-videos``, default 200,000; ``0`` skips it):
``perf.captions``' figures on a synthetic caption file of that many videos.

Format 1, for comparison (``--format1-code DIR``: the toolkit's ``hero_data`` as of commit
c643da4, the last to write format 1, e.g. ``git archive c643da4 hero_data | tar -x -C DIR``):
one process repeats what each write task of that version did (open the dataset under its
``flock``, read ``manifest.json`` and ``errors.jsonl``, write one shard of the same three
one-step videos, rewrite the manifest), ``--format1-tasks`` times (1,800), and the mean cost
per commit is reported around 300, 900 and 1,800 commits (``format1_ms``).

The last line printed is one JSON object with the figures, starting with ``commits`` and
``commit_growth``, then ``plan_videos``, ``plan_seconds``, ``plan_rss_mb``,
``caption_index_mb_per_s`` and ``caption_index_rss_mb``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--tasks", type=int, default=20_000, help="write tasks in all")
    p.add_argument("--processes", type=int, default=2, help="worker processes writing at once")
    p.add_argument("--videos-per-task", type=int, default=3, help="one-step videos per task")
    p.add_argument("--window", type=int, default=1000, help="commits averaged at each end")
    p.add_argument("--plan-videos", type=int, default=1_200_000, help="videos to plan (0: skip)")
    p.add_argument("--plan-committed", type=int, default=1_000_000, help="of them, committed")
    p.add_argument(
        "--caption-videos", type=int, default=200_000, help="caption index size (0: skip)"
    )
    p.add_argument("--format1-code", help="hero_data of commit c643da4, to time format 1")
    p.add_argument("--format1-tasks", type=int, default=1800, help="format 1 write tasks")
    p.add_argument(
        "--root",
        help="dataset location (a folder or s3://...) [a fresh folder in the temp directory]",
    )
    return p.parse_args(argv)


def _rows(task: int, videos: int) -> pa.Table:
    """One write task's block: ``videos`` rows as the extraction actor emits them."""
    from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord, to_record_batch
    from hero_data.types import Clip

    rng = np.random.default_rng(task)
    out: dict[str, list] = {k: [] for k in _KEYS}
    for k in range(videos):
        vid = f"t{task:07d}v{k}"
        failed = (task * videos + k) % 50 == 0
        clips_ipc = b""
        if not failed:
            record = ClipRecord(
                clip=Clip(vid, 0, 0.0, 1.5),
                source=f"/corpus/{vid}.mp4",
                frame_interval=1.5,
                features={
                    "resnet": rng.standard_normal((1, RESNET_DIM)).astype(np.float16),
                    "slowfast": rng.standard_normal((1, SLOWFAST_DIM)).astype(np.float16),
                },
            )
            batch = to_record_batch([record])
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, batch.schema) as w:
                w.write_batch(batch)
            clips_ipc = sink.getvalue().to_pybytes()
        row = {
            "video_id": vid,
            "video_uri": f"/corpus/{vid}.mp4",
            "status": "failed" if failed else "ok",
            "stage": "extract" if failed else None,
            "error_type": "DecodeError" if failed else None,
            "error": f"/corpus/{vid}.mp4: broken" if failed else None,
            "duration": 1.5,
            "t_probe": 0.0,
            "t_extract": 0.0,
            "t_align": 0.0,
            "clips_ipc": clips_ipc,
            "clips": 0 if failed else 1,
            "steps": 0 if failed else 1,
            "cues": 0,
        }
        for key in _KEYS:
            out[key].append(row[key])
    return pa.table(out)


_KEYS = (
    "video_id",
    "video_uri",
    "status",
    "stage",
    "error_type",
    "error",
    "duration",
    "t_probe",
    "t_extract",
    "t_align",
    "clips_ipc",
    "clips",
    "steps",
    "cues",
)


def _worker(root: str, run: str, tasks: list[int], videos: int, queue: mp.Queue) -> None:
    from hero_data.features import DEFAULT_FEATURES
    from pipelines.run import datasink_class

    sink = datasink_class()(root, run, 1024, DEFAULT_FEATURES)
    blocks = [_rows(t, videos) for t in tasks]  # built before timing: only commits are timed
    times = []
    for block in blocks:
        started = time.perf_counter()
        sink.write([block], None)
        times.append((time.time(), time.perf_counter() - started))
    queue.put(times)


_PLAN_CHILD = """
import json, sys, time
from hero_data.writer import DatasetWriter, new_run_id
from pipelines.config import RunConfig
from pipelines.run import dataset_config, prepare_run

def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6

csv_path, root = sys.argv[1], sys.argv[2]
cfg = RunConfig(input=csv_path, output=root, random_weights=True, device="cpu")
started = time.perf_counter()
owner = DatasetWriter(root, dataset_config(cfg), mode="append", run=new_run_id(),
                      command="hero run")
owner.open()
plan = prepare_run(cfg, owner)
seconds = time.perf_counter() - started
rss = hwm_mb()
owner.close()
print(json.dumps({"seconds": seconds, "rss_mb": rss, "inputs": plan.inputs.num_rows,
                  "todo": plan.todo.num_rows}))
"""

_SHARD_VIDEOS = 170  # 60 s clips of 6.5-minute videos in 1,024-clip shards


def plan_figures(videos: int, committed: int, workdir: str) -> dict:
    """Resume planning for ``videos`` inputs of which ``committed`` are done (module doc)."""
    import hashlib

    from hero_data.manifest import MANIFEST_NAME, Manifest, ShardInfo
    from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord
    from hero_data.storage import open_storage
    from hero_data.types import Clip
    from hero_data.writer import DatasetWriter, ShardWriter, new_run_id
    from pipelines.config import RunConfig
    from pipelines.run import dataset_config

    folder = Path(workdir)
    csv_path = folder / "corpus.csv"
    ids = [f"yt{i:09d}" for i in range(videos)]
    with open(csv_path, "w", encoding="utf-8") as f:
        f.write("video\n")
        for vid in ids:
            f.write(f"/corpus/videos/{vid}.mp4\n")
    root = folder / "dataset"
    cfg = RunConfig(input=str(csv_path), output=str(root), random_weights=True, device="cpu")
    config = dataset_config(cfg)
    with DatasetWriter(root, config, mode="overwrite"):
        pass
    pending = min(10_000, committed)
    in_manifest = ids[: committed - pending]
    shards = []
    for k in range(0, len(in_manifest), _SHARD_VIDEOS):
        group = tuple(in_manifest[k : k + _SHARD_VIDEOS])
        digest = hashlib.sha256(str(k).encode()).hexdigest()
        shards.append(
            ShardInfo(
                f"shards/000000000000-{k:016x}.arrow",
                6 * len(group),
                6 * len(group) * 350_000,
                digest,
                group,
                (6,) * len(group),
            )
        )
    manifest = Manifest(config=json.loads(json.dumps(config)), shards=tuple(shards))
    open_storage(str(root)).put(MANIFEST_NAME, manifest.to_bytes())
    rng = np.random.default_rng(0)
    rest = ids[committed - pending : committed]
    for k in range(0, len(rest), 10):  # 1,000 records of 10 one-step videos, not compacted
        with ShardWriter(str(root), run=new_run_id()) as w:
            for vid in rest[k : k + 10]:
                w.write(
                    ClipRecord(
                        clip=Clip(vid, 0, 0.0, 1.5),
                        source=f"/corpus/videos/{vid}.mp4",
                        frame_interval=1.5,
                        features={
                            "resnet": rng.standard_normal((1, RESNET_DIM)).astype(np.float16),
                            "slowfast": rng.standard_normal((1, SLOWFAST_DIM)).astype(np.float16),
                        },
                    )
                )
    repo = Path(__file__).resolve().parents[1]
    # run in the repository root: a `-c` child imports from its working directory first
    out = subprocess.run(
        [sys.executable, "-c", _PLAN_CHILD, str(csv_path), str(root)],
        capture_output=True,
        text=True,
        check=True,
        cwd=repo,
    )
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert child["inputs"] == videos and child["todo"] == videos - committed, child
    return {
        "plan_videos": videos,
        "plan_committed": committed,
        "plan_seconds": round(child["seconds"], 2),
        "plan_rss_mb": round(child["rss_mb"], 1),
        "plan_shards": len(shards) + pending // 10,
        "plan_manifest_mb": round((root / MANIFEST_NAME).stat().st_size / 1e6, 1),
    }


_FORMAT1_CHILD = """
import json, sys, time
import numpy as np
from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord
from hero_data.types import Clip
from hero_data.writer import DatasetWriter, ErrorLog, read_errors
root, tasks = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
times = []
for t in range(tasks):
    records = [
        ClipRecord(clip=Clip(f"t{t}v{k}", 0, 0.0, 1.5), source="/c.mp4", frame_interval=1.5,
                   features={"resnet": rng.standard_normal((1, RESNET_DIM)).astype(np.float16),
                             "slowfast": rng.standard_normal((1, SLOWFAST_DIM)).astype(np.float16)})
        for k in range(3)
    ]
    started = time.perf_counter()
    with DatasetWriter(root, {"benchmark": "scale"}, mode="append", wait_for_lock=3600) as w:
        done = w.manifest.videos()
        failed = {e.get("video_id") for e in read_errors(root)}
        for r in records:
            if r.clip.video_id not in done and r.clip.video_id not in failed:
                w.write_video([r])
        w.commit_shard()
    times.append(time.perf_counter() - started)
print(json.dumps(times))
"""


def format1_figures(code: str, tasks: int) -> dict:
    """The format-1 write task's cost per commit (see the module doc)."""
    with tempfile.TemporaryDirectory(prefix="hero-format1-") as tmp:
        # run in the old code's folder: a `-c` child imports from its working directory first,
        # so that folder's hero_data wins over this checkout's
        out = subprocess.run(
            [sys.executable, "-c", _FORMAT1_CHILD, str(Path(tmp) / "ds"), str(tasks)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(code).resolve(),
        )
    times = json.loads(out.stdout.strip().splitlines()[-1])
    marks = [m for m in (300, 900, 1800) if m <= tasks]
    return {
        "format1_ms": {
            str(m): round(1000 * statistics.fmean(times[max(m - 100, 0) : m]), 2) for m in marks
        },
        "format1_tasks": tasks,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from hero_data.commits import compact, snapshot
    from hero_data.writer import DatasetWriter, new_run_id

    if args.tasks < 2 * args.window:
        sys.exit(f"--tasks must be at least twice --window ({2 * args.window})")
    root = args.root or str(Path(tempfile.mkdtemp(prefix="hero-scale-")) / "ds")
    run = new_run_id()
    owner = DatasetWriter(root, {"benchmark": "scale"}, mode="overwrite", run=run)
    owner.open()  # the driver's lease, held while the workers commit
    try:
        ctx = mp.get_context("spawn")
        queue: mp.Queue = ctx.Queue()
        shares = [list(range(p, args.tasks, args.processes)) for p in range(args.processes)]
        procs = [
            ctx.Process(target=_worker, args=(root, run, share, args.videos_per_task, queue))
            for share in shares
        ]
        started = time.monotonic()
        for p in procs:
            p.start()
        results = [queue.get() for _ in procs]
        for p in procs:
            p.join()
            if p.exitcode != 0:
                sys.exit(f"a worker failed (exit {p.exitcode})")
        write_s = time.monotonic() - started
        ordered = sorted(t for r in results for t in r)  # by wall-clock end time
        costs_ms = [1000 * c for _, c in ordered]
        first = statistics.fmean(costs_ms[: args.window])
        last = statistics.fmean(costs_ms[-args.window :])

        t0 = time.monotonic()
        snap = snapshot(root)
        snapshot_s = time.monotonic() - t0
        pending = len(snap.pending)
        t0 = time.monotonic()
        stats = compact(root)
        compact_s = time.monotonic() - t0
        t0 = time.monotonic()
        after = snapshot(root)
        snapshot_after_s = time.monotonic() - t0
    finally:
        owner.close()
    videos = args.tasks * args.videos_per_task
    assert len(after.videos()) + len(after.errors) == videos, "a video was lost or duplicated"
    figures = {
        "commits": len(costs_ms),
        "commit_growth": round(last / first, 3),
        "first_ms": round(first, 3),
        "last_ms": round(last, 3),
        "median_ms": round(statistics.median(costs_ms), 3),
        "p99_ms": round(float(np.percentile(costs_ms, 99)), 3),
        "processes": args.processes,
        "videos_per_task": args.videos_per_task,
        "write_s": round(write_s, 2),
        "commits_per_s": round(len(costs_ms) / write_s, 1),
        "pending_records": pending,
        "snapshot_s": round(snapshot_s, 3),
        "compact_s": round(compact_s, 3),
        "compacted_records": stats.records,
        "snapshot_after_s": round(snapshot_after_s, 3),
        "shards": len(after.shards),
        "videos": len(after.videos()),
        "failed": len(after.errors),
        "root": root,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
    }
    print(f"{figures['commits']:,} commits from {args.processes} processes in {write_s:.1f} s")
    print(
        f"mean cost per commit: first {args.window:,}: {first:.2f} ms, last {args.window:,}: "
        f"{last:.2f} ms (growth {last / first:.2f}x); median {figures['median_ms']:.2f} ms, "
        f"p99 {figures['p99_ms']:.2f} ms"
    )
    print(
        f"snapshot of {pending:,} pending records: {snapshot_s:.2f} s; compacting them: "
        f"{compact_s:.2f} s; snapshot after: {snapshot_after_s:.3f} s"
    )
    if args.plan_videos:
        with tempfile.TemporaryDirectory(prefix="hero-plan-") as tmp:
            plan = plan_figures(args.plan_videos, args.plan_committed, tmp)
        print(
            f"resume planning: {plan['plan_videos']:,} videos, {plan['plan_committed']:,} "
            f"committed ({plan['plan_shards']:,} shards, manifest {plan['plan_manifest_mb']} MB):"
            f" {plan['plan_seconds']:.1f} s, peak RSS {plan['plan_rss_mb']:.0f} MB"
        )
        figures = {**first_keys(figures), **plan, **rest_keys(figures)}
    if args.format1_code:
        old = format1_figures(args.format1_code, args.format1_tasks)
        print(
            "format 1, mean cost per commit around commit "
            + ", ".join(f"{m}: {ms} ms" for m, ms in old["format1_ms"].items())
        )
        figures.update(old)
    if args.caption_videos:
        from perf.captions import caption_index_figures

        caps = caption_index_figures(args.caption_videos)
        print(
            f"caption index: {caps['caption_file_mb']} MB, {args.caption_videos:,} videos: "
            f"{caps['caption_index_mb_per_s']} MB/s, RSS growth {caps['caption_index_rss_mb']}"
            f" MB, lookup {caps['caption_lookup_us']} us per video"
        )
        keys = ("caption_index_mb_per_s", "caption_index_rss_mb", "caption_lookup_us")
        figures = {
            **first_keys(figures),
            **{k: v for k, v in figures.items() if k.startswith("plan_")},
            **{k: caps[k] for k in keys},
            "caption_file_mb": caps["caption_file_mb"],
            **rest_keys(figures),
        }
    print(json.dumps(figures))
    return 0


def first_keys(figures: dict) -> dict:
    return {k: figures[k] for k in ("commits", "commit_growth")}


def rest_keys(figures: dict) -> dict:
    return {
        k: v
        for k, v in figures.items()
        if k not in ("commits", "commit_growth") and not k.startswith(("plan_", "caption_"))
    }


if __name__ == "__main__":
    sys.exit(main())
