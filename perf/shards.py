"""Random-access reads of clip features: memory-mapped Arrow shards vs. a Parquet file.

Run it::

    .venv/bin/python -m perf.shards

(from the repository root; ``--help`` lists the flags).

It writes a synthetic dataset (default 2,000 clips of 40 steps, i.e. 60 s clips at 1.5 s steps,
about 700 MB) with :class:`hero_data.writer.DatasetWriter`, writes the same Arrow table to a
Parquet file with 64 rows per row group, warms the page cache by reading both files once, and
then times reading clips in a seeded shuffled order:

* ``mmap``: ``HeroDataset.features(i)``, which returns a zero-copy numpy view per column; nothing
  is read until the views are used.
* ``mmap_touch``: the same, then every byte of both arrays is read (see ``--touch``).
* ``parquet``: what a Parquet user does for one clip: find the row group holding row ``i``,
  ``ParquetFile.read_row_group(rg, columns=["resnet", "slowfast"])`` (decoding all 64 clips of
  the group; nothing is cached between reads), then take row ``i``'s features as
  ``(n, 2048)`` and ``(n, 2304)`` float16 numpy arrays.
* ``parquet_touch``: the same, then every byte of both arrays is read.

The last line printed is one JSON object with the figures, for scripts to pick up.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hero_data.features import DEFAULT_FEATURES
from hero_data.reader import CACHE_ENV, HeroDataset
from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord
from hero_data.types import Clip, Cue
from hero_data.writer import DatasetWriter

FEATURE_DIM = DEFAULT_FEATURES.dim
FRAME_INTERVAL = 1.5
"""Seconds per feature step (HERO's default)."""

FEATURE_NAMES = ["resnet", "slowfast"]

Reader = Callable[[int], tuple[np.ndarray, np.ndarray]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--clips", type=int, default=2000, help="clips in the synthetic dataset")
    p.add_argument("--steps", type=int, default=40, help="feature steps per clip (1.5 s each)")
    p.add_argument("--reads", type=int, default=20000, help="timed random reads, mmap")
    p.add_argument("--parquet-reads", type=int, default=300, help="timed random reads, Parquet")
    p.add_argument("--row-group-size", type=int, default=64, help="Parquet rows per row group")
    p.add_argument(
        "--parquet-compression",
        default="none",
        help="Parquet codec ('none', 'snappy', 'zstd', ...); features are random, so a codec "
        "only adds decode time",
    )
    p.add_argument(
        "--parquet-dictionary",
        action="store_true",
        help="let pyarrow dictionary-encode the features (its default, off here: on random "
        "float16 it saves little and makes reading row groups several times slower)",
    )
    p.add_argument(
        "--pool",
        type=int,
        default=256,
        help="distinct random feature arrays that clips are drawn from",
    )
    p.add_argument(
        "--touch",
        choices=["bytes", "sum"],
        default="bytes",
        help="how the *_touch figures read every byte: 'bytes' ORs the arrays as uint64 words "
        "(the cost of reading the memory), 'sum' sums them as float32 (adds float16 arithmetic)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the read order")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for the dataset and the Parquet file (default: a temporary folder, removed "
        "afterwards); it must not already hold a dataset",
    )
    args = p.parse_args(argv)
    for name in ("clips", "steps", "reads", "parquet_reads", "row_group_size", "pool"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


# -- synthetic data ------------------------------------------------------------------------


def synthetic_records(
    clips: int, steps: int, pool_size: int, rng: np.random.Generator
) -> Iterator[ClipRecord]:
    """``clips`` records of ``steps`` steps with random float16 features and two cues each.

    Drawing ~700 MB of fresh randomness would take longer than the benchmark itself, so the
    features come from a pool of ``pool_size`` random ``(steps, 4352)`` arrays, each clip taking
    one at random. Repeats are far apart in the files (hundreds of KB each), so they do not make
    the data any more compressible to Parquet's page-level codecs, and the mmap reader does not
    look at values at all.
    """
    pool = rng.standard_normal((pool_size, steps, FEATURE_DIM), dtype=np.float32).astype(np.float16)
    duration = steps * FRAME_INTERVAL
    for k in range(clips):
        feats = pool[rng.integers(pool_size)]
        a = float(rng.uniform(0.0, duration / 2))
        b = float(rng.uniform(duration / 2, duration))
        cues = (
            Cue(a, min(a + 4.0, duration), f"first cue of clip {k}"),
            Cue(b, min(b + 3.0, duration), f"second cue of clip {k}", speaker="narrator"),
        )
        yield ClipRecord(
            clip=Clip(f"vid{k:06d}", 0, 0.0, duration),
            source=f"synthetic://vid{k:06d}.mp4",
            frame_interval=FRAME_INTERVAL,
            features={"resnet": feats[:, :RESNET_DIM], "slowfast": feats[:, RESNET_DIM:]},
            cues=cues,
        )


def read_whole_file(path: Path, chunk: int = 1 << 23) -> int:
    """Read a file once (to put it in the page cache); returns its size."""
    n = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            n += len(block)
    return n


# -- readers -------------------------------------------------------------------------------


def parquet_reader(path: Path) -> Reader:
    """A function ``row -> (resnet, slowfast)`` reading one clip from a Parquet file.

    The file is opened once; each call reads the whole row group holding the row (Parquet's
    smallest readable unit for these columns) and keeps nothing between calls.
    """
    pf = pq.ParquetFile(path)
    meta = pf.metadata
    first_row = [0]
    for g in range(meta.num_row_groups):
        first_row.append(first_row[-1] + meta.row_group(g).num_rows)

    def row_features(column: pa.ChunkedArray, row: int, dim: int) -> np.ndarray:
        for chunk in column.chunks:
            if row < len(chunk):
                break
            row -= len(chunk)
        steps = chunk[row].values  # FixedSizeListArray: this clip's steps
        return steps.flatten().to_numpy(zero_copy_only=True).reshape(-1, dim)

    def read(i: int) -> tuple[np.ndarray, np.ndarray]:
        g = bisect.bisect_right(first_row, i) - 1
        table = pf.read_row_group(g, columns=FEATURE_NAMES)
        j = i - first_row[g]
        return (
            row_features(table.column("resnet"), j, RESNET_DIM),
            row_features(table.column("slowfast"), j, SLOWFAST_DIM),
        )

    return read


def touch_bytes(a: np.ndarray) -> int:
    """Read every byte of a C-contiguous array (as uint64 words where the size allows)."""
    if a.nbytes % 8 == 0 and a.flags.c_contiguous:
        return int(np.bitwise_or.reduce(a.reshape(-1).view(np.uint64)))
    return int(np.bitwise_or.reduce(a.reshape(-1).view(np.uint16)))


def touch_sum(a: np.ndarray) -> float:
    """Read every value, summed as float32."""
    return float(a.sum(dtype=np.float32))


def time_reads(
    read: Reader, order: np.ndarray, touch: Callable[[np.ndarray], object] | None
) -> float:
    """Seconds to read every clip in ``order`` (and touch both arrays, if ``touch`` is given)."""
    rows = order.tolist()
    if touch is None:
        t0 = time.perf_counter()
        for i in rows:
            read(i)
        return time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in rows:
        a, b = read(i)
        touch(a)
        touch(b)
    return time.perf_counter() - t0


def time_opens(root: Path, cache: Path, repeats: int = 5) -> dict[str, float]:
    """Seconds to open the dataset in each ``verify`` mode, with a fresh verification cache:
    ``fast`` (no hashing), ``auto_first`` (hashes, then caches), ``auto_cached``, ``full``
    (hashes every time). Best of ``repeats`` where an open does not change the cache."""
    os.environ[CACHE_ENV] = str(cache)

    def once(mode: str) -> float:
        t0 = time.perf_counter()
        HeroDataset.open(root, verify=mode)  # type: ignore[arg-type]
        return time.perf_counter() - t0

    out = {"fast": min(once("fast") for _ in range(repeats))}
    out["auto_first"] = once("auto")
    out["auto_cached"] = min(once("auto") for _ in range(repeats))
    out["full"] = min(once("full") for _ in range(2))
    return {k: round(v, 4) for k, v in out.items()}


def shuffled_order(clips: int, reads: int, rng: np.random.Generator) -> np.ndarray:
    """``reads`` row indices: shuffled passes over all clips, cut to length."""
    passes = -(-reads // clips)
    return np.concatenate([rng.permutation(clips) for _ in range(passes)])[:reads]


# -- main ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> dict[str, object]:
    rng = np.random.default_rng(args.seed)
    root = work / "dataset"
    parquet_path = work / "clips.parquet"

    t0 = time.perf_counter()
    config = {"benchmark": "shards", "clips": args.clips, "steps": args.steps, "seed": args.seed}
    with DatasetWriter(root, config) as writer:
        writer.write_many(synthetic_records(args.clips, args.steps, args.pool, rng))
    write_s = time.perf_counter() - t0

    open_s = time_opens(root, work / "verify-cache")
    ds = HeroDataset.open(root)
    shard_paths = [root / s.name for s in ds.manifest.shards]
    shard_bytes = sum(p.stat().st_size for p in shard_paths)

    # The baseline is Parquet at its fastest for this data, so the comparison cannot flatter the
    # shards: no compression (the features are random float16, which no codec can shrink, so a
    # codec would only add decode time) and no dictionary encoding (pyarrow's default; on float16
    # it keeps a dictionary of every distinct value, and with snappy saved only ~6% of the file
    # while making a row group ~4x slower to decode). Both can be switched on with the flags.
    t0 = time.perf_counter()
    pq.write_table(
        ds.table(),
        parquet_path,
        row_group_size=args.row_group_size,
        compression=args.parquet_compression,
        use_dictionary=args.parquet_dictionary,
    )
    parquet_write_s = time.perf_counter() - t0
    parquet_bytes = parquet_path.stat().st_size

    # Page cache: read both files once, so the timed reads measure decoding, not the disk.
    for p in [*shard_paths, parquet_path]:
        read_whole_file(p)

    read_pq = parquet_reader(parquet_path)

    # The two readers must agree before their speed means anything.
    for i in rng.choice(args.clips, size=min(8, args.clips), replace=False).tolist():
        for m, q in zip(ds.features(i).values(), read_pq(i), strict=True):
            if m.dtype != np.float16 or q.dtype != np.float16 or not np.array_equal(m, q):
                raise SystemExit(f"clip {i}: mmap and Parquet features differ")
        if ds.features(i)["resnet"].shape != (args.steps, RESNET_DIM):
            raise SystemExit(f"clip {i}: unexpected shape {ds.features(i)['resnet'].shape}")

    def mmap_read(i: int) -> tuple[np.ndarray, ...]:
        return tuple(ds.features(i).values())

    touch = touch_bytes if args.touch == "bytes" else touch_sum
    mmap_order = shuffled_order(args.clips, args.reads, rng)
    pq_order = shuffled_order(args.clips, args.parquet_reads, rng)
    results: dict[str, tuple[int, float]] = {
        "mmap": (args.reads, time_reads(mmap_read, mmap_order, None)),
        "mmap_touch": (args.reads, time_reads(mmap_read, mmap_order, touch)),
        "parquet": (args.parquet_reads, time_reads(read_pq, pq_order, None)),
        "parquet_touch": (args.parquet_reads, time_reads(read_pq, pq_order, touch)),
    }
    rates = {k: n / s for k, (n, s) in results.items()}

    clip_bytes = args.steps * FEATURE_DIM * 2
    seconds = args.steps * FRAME_INTERVAL
    print(f"clips              {args.clips} x {args.steps} steps ({seconds:g} s each)")
    print(f"feature bytes/clip {clip_bytes:,} (float16, {FEATURE_DIM} per step)")
    print(
        f"arrow shards       {len(shard_paths)} file(s), {shard_bytes / 2**20:,.1f} MiB, "
        f"written in {write_s:.1f} s"
    )
    print(
        f"parquet            {parquet_bytes / 2**20:,.1f} MiB, "
        f"row groups of {args.row_group_size}, "
        f"compression={args.parquet_compression}, dictionary={args.parquet_dictionary}, "
        f"written in {parquet_write_s:.1f} s"
    )
    print(f"touch              {args.touch}")
    print("open (s)           " + ", ".join(f"{k} {v:.4f}" for k, v in open_s.items()))
    print()
    print(f"{'reader':<15}{'reads':>8}{'seconds':>10}{'clips/s':>14}")
    for k, (n, s) in results.items():
        print(f"{k:<15}{n:>8}{s:>10.3f}{rates[k]:>14,.1f}")
    print()
    ratio = rates["mmap"] / rates["parquet"]
    touch_ratio = rates["mmap_touch"] / rates["parquet_touch"]
    print(f"mmap / parquet: {ratio:,.1f}x (views), {touch_ratio:,.1f}x (touching every byte)")

    return {
        "mmap_clips_per_s": round(rates["mmap"], 1),
        "parquet_clips_per_s": round(rates["parquet"], 1),
        "ratio": round(ratio, 2),
        "mmap_touch_clips_per_s": round(rates["mmap_touch"], 1),
        "parquet_touch_clips_per_s": round(rates["parquet_touch"], 1),
        "touch_ratio": round(touch_ratio, 2),
        "open_s": open_s,
        "touch": args.touch,
        "clips": args.clips,
        "steps_per_clip": args.steps,
        "mmap_reads": args.reads,
        "parquet_reads": args.parquet_reads,
        "row_group_size": args.row_group_size,
        "parquet_compression": args.parquet_compression,
        "parquet_dictionary": args.parquet_dictionary,
        "shard_bytes": shard_bytes,
        "parquet_bytes": parquet_bytes,
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "numpy": np.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        summary = run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="hero-shards-bench-") as tmp:
            summary = run(args, Path(tmp))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
