"""Decoding for features: our single pass against the ceiling and a HERO-extractor-style baseline.

Run it::

    .venv/bin/python -m perf.decode                    # 180 s of 640x360 H.264, 30 fps
    .venv/bin/python -m perf.decode --seconds 180 --width 1280 --height 720

On one synthetic video (x264 preset veryfast: B-frames and frame reordering, like real files),
each mode runs in a fresh subprocess that reports its wall time and peak RSS (VmHWM):

* ``ceiling``: decode every frame with PyAV (threaded), convert nothing, keep nothing;
* ``ours``: :func:`extract.decode.iter_steps` as the extractor calls it on a CPU machine, the
  one sequential pass that yields, per 1.5 s step, the 2D image (short side 224) and the
  45-slot 3D window (224x224 centre crop), converting (swscale, bicubic) only the slots HERO's
  SlowFast rule reads (``sampling="hero"``: 23 of 45 at 30 fps);
* ``ours_all``: the same pass converting all 45 slots (what the decode did before);
* ``ours_planes``: the same pass as the extractor runs it on a CUDA machine
  (``pixels="torch"``): the decode thread demuxes, decodes and copies each used frame's raw
  YUV planes; no pixel work (that runs on the GPU, not timed here). This is the decode
  thread's throughput when pixel work is handed to the device;
* ``ours_torch_cpu``: ``ours_planes`` plus the torch pixel work (:mod:`extract.pixels`) done
  on this CPU, 16 steps a batch: whether ``pixels=torch`` would pay on a CPU-only machine;
* ``baseline``: what the HERO feature extractor did, with PyAV's filter graphs instead of an
  ffmpeg binary: one full decode through ``fps=2/3`` and a scale to short side 224 (an ``if``
  expression on ``iw``/``ih`` so portrait video works too) into one whole-video array for the
  2D stream, then a second full decode through ``fps=30``, the same scale and
  ``crop=224:224`` into another whole-video array for the 3D stream. Both chains end in
  ``format=rgb24``, as ffmpeg's ``-pix_fmt rgb24`` output (the extractor's ``pipe:`` rawvideo)
  ends them: the scale filter then converts to RGB in the same bicubic pass, as ours does, so
  the two do the same work per frame. The script checks (untimed, first 4 steps) that both
  pick the same frames: their pixels differ by a mean of about half a grey level (PyAV's
  reformatter and the filter graph's scaler round differently), where a wrong frame or a
  YUV-domain scale would differ by several levels. Each array is allocated
  once, for the frame count the container's duration implies (plus two), and filled in place,
  so the baseline holds one copy of each stream, as an efficient reference extractor reading
  ffmpeg's output into one buffer would; it grows (by a copy) only if the container
  under-states its duration.

Throughput is source frames per second (the video's frame count over the wall time), so the
baseline's two passes count once. Each mode's wall time includes the interpreter's imports
(about the same for all). The last line printed is one JSON object; its ratios:

* ``ours_vs_ceiling``: ``ours_planes`` / ``ceiling``, the mode a GPU machine uses (target
  >= 0.8); ``ours_cpu_vs_ceiling``: ``ours`` / ``ceiling``, the CPU-only mode;
* ``ours_vs_baseline``: ``ours`` / ``baseline``, end to end on the CPU with HERO's sampling
  (target >= 2); ``ours_all_vs_baseline``: the same converting every slot;
* ``torch_cpu_vs_swscale``: ``ours_torch_cpu`` / ``ours`` (above 1: torch pixels are faster on
  this CPU, and ``pixels=auto`` should pick them here too);
* ``ours_peak_rss_mb`` (``ours``), ``ours_planes_peak_rss_mb``, ``baseline_peak_rss_mb``: peak
  RSS (VmHWM) of each mode's process; ``ours_import_rss_mb``: of ``ours`` right after its
  imports (torch, loaded by :mod:`extract.sampling`, is most of it; not timed). Run two
  ``--seconds`` to see that ours is flat in video length and the baseline is not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from fractions import Fraction
    import av
    import numpy as np

    mode, path = sys.argv[1], sys.argv[2]

    def hwm_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    def ceiling():
        with av.open(path) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            return sum(1 for _ in c.decode(s))

    def ours():  # the CPU path: swscale, only the slots HERO's rule reads
        from extract.decode import iter_steps
        return sum(1 for _ in iter_steps(path, 1.5, sampling="hero"))

    def ours_all():  # every one of the 45 slots converted (before the sampling-aware decode)
        from extract.decode import iter_steps
        return sum(1 for _ in iter_steps(path, 1.5))

    def ours_planes():  # the decode thread of the torch path: raw planes out, no pixel work
        from extract.decode import iter_steps
        return sum(1 for _ in iter_steps(path, 1.5, sampling="hero", pixels="torch"))

    def ours_torch_cpu():  # the torch path with its pixel work on this CPU, 16 steps a batch
        import torch
        from extract.decode import iter_steps
        from extract.pixels import convert
        torch.set_num_threads(max(1, torch.get_num_threads()))
        n, batch = 0, []
        def flush():
            frames = {id(f): f for s in batch for f in (s.image, *s.window) if f is not None}
            convert(list(frames.values()), batch[0].size, torch.device("cpu"))
        for step in iter_steps(path, 1.5, sampling="hero", pixels="torch"):
            batch.append(step)
            n += 1
            if len(batch) == 16:
                flush()
                batch = []
        if batch:
            flush()
        return n

    def filtered(rate, chain, limit=None):
        # The whole stream (or its first `limit` frames out) through fps=rate and chain, in
        # one (N, H, W, 3) array.
        out, n = None, 0
        with av.open(path) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            if s.duration is not None:
                seconds = s.duration * s.time_base
            else:
                seconds = Fraction(c.duration or 0, av.time_base)
            capacity = int(seconds * rate) + 2  # fps=rate emits about duration x rate frames
            g = av.filter.Graph()
            src = g.add_buffer(template=s)
            # -pix_fmt rgb24 on ffmpeg's command line ends the chain with format=rgb24, which
            # format negotiation folds into the scale filter: one bicubic scale + conversion.
            chain = [("fps", f"fps={rate}")] + chain + [("format", "rgb24")]
            nodes = [src] + [g.add(name, args) for name, args in chain] + [g.add("buffersink")]
            for a, b in zip(nodes, nodes[1:]):
                a.link_to(b)
            g.configure()
            def drain():
                nonlocal out, n
                while True:
                    try:
                        rgb = g.pull().to_ndarray()  # (H, W, 3), rgb24 already
                    except (av.BlockingIOError, av.EOFError):
                        return
                    if out is None:  # one allocation for the whole stream; pages fill as written
                        out = np.empty((capacity, *rgb.shape), np.uint8)
                    elif n == len(out):  # the container under-stated its duration
                        out = np.concatenate([out, np.empty_like(out[: len(out) // 4 + 1])])
                    out[n] = rgb
                    n += 1
            for frame in c.decode(s):
                g.push(frame)
                drain()
                if limit is not None and n >= limit:
                    return out[:limit]
            g.push(None)
            drain()
        return out[:n]  # a view: the whole stream in RAM once, as the reference extractor held it

    SCALE = ("scale", "w='if(gt(iw,ih),-2,224)':h='if(gt(iw,ih),224,-2)'")

    def baseline(limit=None):
        two_d = filtered(Fraction(2, 3), [SCALE], limit)
        three_d = filtered(30, [SCALE, ("crop", "224:224")], limit and limit * 45)
        return two_d, three_d

    def check(steps=4):
        # Not timed: ours against the baseline, pixel by pixel (a 30 fps source, so window slot
        # j of step i is the fps=30 stream's frame 45 i + j; image i is fps=2/3's frame i).
        from extract.decode import iter_steps
        two_d, three_d = baseline(steps)
        diffs = []
        for i, step in zip(range(steps), iter_steps(path, 1.5)):
            window = three_d[45 * i : 45 * (i + 1)]
            diffs.append(np.abs(step.window.astype(int) - window).ravel())
            diffs.append(np.abs(step.image.astype(int) - two_d[i]).ravel())
        d = np.concatenate(diffs)
        return {"mean": round(float(d.mean()), 3), "max": int(d.max())}

    if mode.startswith("ours") or mode == "check":
        # Not timed: the imports (torch comes with extract.sampling); an extraction worker
        # has them loaded already. Their memory is reported as import_rss_mb.
        import torch  # noqa: F401
        import extract.decode, extract.pixels  # noqa: F401, E401
    import_rss = hwm_mb()
    start = time.perf_counter()
    run = {
        "ceiling": ceiling,
        "ours": ours,
        "ours_all": ours_all,
        "ours_planes": ours_planes,
        "ours_torch_cpu": ours_torch_cpu,
        "baseline": lambda: sum(len(a) for a in baseline()),
        "check": check,
    }
    items = run[mode]()
    wall = time.perf_counter() - start
    out = {"mode": mode, "items": items, "wall_s": wall, "peak_rss_mb": hwm_mb()}
    print(json.dumps({**out, "import_rss_mb": import_rss}))
    """
)


def _run(mode: str, video: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(video)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", "--seconds", type=float, default=180.0, help="video seconds")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()

    import av

    from extract.synthetic import make_video

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        video = make_video(
            Path(tmp) / "bench.mp4",
            duration=args.duration,
            width=args.width,
            height=args.height,
            preset="veryfast",
        )
        with av.open(str(video)) as c:
            frames = c.streams.video[0].frames
        modes = ("ceiling", "ours", "ours_all", "ours_planes", "ours_torch_cpu", "baseline")
        results = {mode: _run(mode, video) for mode in modes}
        # "items" of the check: the mean and largest pixel difference, ours against baseline
        same = _run("check", video)["items"]

    fps = {m: frames / r["wall_s"] for m, r in results.items()}
    for m, r in results.items():
        print(
            f"{m:>14}: {r['wall_s']:7.2f} s  {fps[m]:8.1f} frames/s  peak RSS "
            f"{r['peak_rss_mb']:7.1f} MB (after imports {r['import_rss_mb']:7.1f} MB)  "
            f"({r['items']} items out)"
        )
    out = {
        "video": f"{args.duration:g} s {args.width}x{args.height} h264 (x264 veryfast) 30 fps",
        "source_frames": frames,
        "ceiling_fps": round(fps["ceiling"], 1),
        "ours_fps": round(fps["ours"], 1),
        "ours_all_fps": round(fps["ours_all"], 1),
        "ours_planes_fps": round(fps["ours_planes"], 1),
        "ours_torch_cpu_fps": round(fps["ours_torch_cpu"], 1),
        "baseline_fps": round(fps["baseline"], 1),
        # the mode a GPU machine uses (pixels on the device): the decode thread vs the ceiling
        "ours_vs_ceiling": round(fps["ours_planes"] / fps["ceiling"], 3),
        "ours_cpu_vs_ceiling": round(fps["ours"] / fps["ceiling"], 3),
        "ours_vs_baseline": round(fps["ours"] / fps["baseline"], 3),
        "ours_all_vs_baseline": round(fps["ours_all"] / fps["baseline"], 3),
        "torch_cpu_vs_swscale": round(fps["ours_torch_cpu"] / fps["ours"], 3),
        "ceiling_peak_rss_mb": round(results["ceiling"]["peak_rss_mb"], 1),
        "ours_peak_rss_mb": round(results["ours"]["peak_rss_mb"], 1),
        "ours_planes_peak_rss_mb": round(results["ours_planes"]["peak_rss_mb"], 1),
        "ours_import_rss_mb": round(results["ours"]["import_rss_mb"], 1),
        "baseline_peak_rss_mb": round(results["baseline"]["peak_rss_mb"], 1),
        "ours_vs_baseline_pixel_diff": same,
        "pyav": av.__version__,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
