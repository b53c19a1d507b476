"""Dataset commits at corpus scale: does a commit cost the same for the first shard and the
20,000th?

Run it::

    .venv/bin/python benchmarks/scale.py                 # 20,000 write tasks from 2 processes
    .venv/bin/python benchmarks/scale.py --tasks 2000    # a quick look

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

The last line printed is one JSON object with the figures, starting with ``commits`` and
``commit_growth``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
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
                resnet=rng.standard_normal((1, RESNET_DIM)).astype(np.float16),
                slowfast=rng.standard_normal((1, SLOWFAST_DIM)).astype(np.float16),
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
    from pipelines.run import _sink_class

    sink = _sink_class()(root, run, 1024)
    blocks = [_rows(t, videos) for t in tasks]  # built before timing: only commits are timed
    times = []
    for block in blocks:
        started = time.perf_counter()
        sink.write([block], None)
        times.append((time.time(), time.perf_counter() - started))
    queue.put(times)


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
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
