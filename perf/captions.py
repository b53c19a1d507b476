"""The HowTo100M caption index at corpus size: build throughput, peak memory, lookup time.

Run it::

    .venv/bin/python -m perf.captions                 # 200 k videos, ~1 GB
    .venv/bin/python -m perf.captions --videos 20000  # a quick look

It writes a synthetic caption file in HowTo100M's released layout (one JSON object on one line,
``json.dump``'s separators and ASCII escapes, ``{video_id: {"start": [...], "end": [...],
"text": [...]}}``), by default with as many cues per video as the real file has on average
(136 M cues over 1.22 M videos: about 110; here uniform in 1..219) and a few words of text
each, then, each in a fresh process:

* builds its index (:meth:`align.captions.CaptionIndex.build`, no language detection):
  ``caption_index_mb_per_s`` is the file's size over the build's wall time;
  ``caption_index_rss_mb`` is how much the process's peak RSS grew while building (after a
  tiny warm-up build, so pyarrow's one-time set-up is not counted);
  ``caption_index_peak_rss_mb`` is the process's peak RSS itself;
* opens the index and looks up ``--lookups`` random videos: ``caption_lookup_us`` is the mean
  wall time of ``cues(video_id)`` (binary search, slice, text clean-up, sort), with the index
  in the page cache; ``caption_contains_us`` of ``video_id in index``.

With ``--compare-whole`` it also reads the file whole, as ``hero run`` did before the index
(:func:`align.readers.read_howto100m_json_entries`), and reports that process's RSS growth
(``whole_file_rss_mb``): mind the memory (about 14 times the file's size).

MB are 10^6 bytes. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_WORDS = (
    "the a to and you it so we this that now going just is of in your can get be one on "
    "with do here little bit right make want go then take cut add put really see like water "
    "oil pan heat minutes cup sugar butter flour mix bowl paint brush wood drill screw knot"
)

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    def status_mb(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e6
        raise LookupError(field)

    what, source, index_path = sys.argv[1], sys.argv[2], sys.argv[3]
    warm = Path(index_path + ".warm.json")
    warm.write_text(json.dumps({"w": {"start": [0], "end": [1], "text": ["warm"]}}))
    out = {}
    if what == "build":
        from align.captions import CaptionIndex
        CaptionIndex.build(warm, str(warm) + ".capidx").cues("w")
        before = status_mb("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak (VmHWM) starts again from here
        started = time.perf_counter()
        index = CaptionIndex.build(source, index_path)
        out["build_s"] = time.perf_counter() - started
        out["rss_before_mb"] = before
        out["rss_peak_mb"] = status_mb("VmHWM")
        out["videos"] = len(index)
        out["cues"] = index.meta["cues"]
    elif what == "lookup":
        import random
        from align.captions import CaptionIndex
        started = time.perf_counter()
        index = CaptionIndex.open(index_path)
        out["open_s"] = time.perf_counter() - started
        ids = list(index.video_ids())
        sample = random.Random(1).sample(ids, min(int(sys.argv[4]), len(ids)))
        started = time.perf_counter()
        found = sum(v in index for v in sample)
        out["contains_s"] = time.perf_counter() - started
        started = time.perf_counter()
        cues = sum(len(index.cues(v)) for v in sample)
        out["lookup_s"] = time.perf_counter() - started
        out["looked_up"] = len(sample)
        out["cues_looked_up"] = cues
        assert found == len(sample)
    else:
        from align.readers import read_howto100m_json_entries
        read_howto100m_json_entries(warm)
        before = status_mb("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        started = time.perf_counter()
        read_howto100m_json_entries(source)
        out["whole_s"] = time.perf_counter() - started
        out["rss_before_mb"] = before
        out["rss_peak_mb"] = status_mb("VmHWM")
    print(json.dumps(out))
    """
)


def write_caption_file(path: Path, videos: int, mean_cues: int, seed: int = 0) -> int:
    """A synthetic HowTo100M caption file of ``videos`` videos; returns the number of cues."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
    texts = [json.dumps(" ".join(rng.choices(_WORDS, k=rng.randint(2, 8)))) for _ in range(4096)]
    total = 0
    seen: set[str] = set()
    with open(path, "w", encoding="ascii") as f:
        f.write("{")
        for v in range(videos):
            vid = "".join(rng.choices(alphabet, k=11))
            while vid in seen:
                vid = "".join(rng.choices(alphabet, k=11))
            seen.add(vid)
            k = rng.randint(1, 2 * mean_cues - 1)
            t = 0.0
            starts, ends = [], []
            for _ in range(k):
                t += rng.uniform(0.0, 2.0)
                starts.append(f"{t:.2f}")
                t += rng.uniform(1.0, 6.0)
                ends.append(f"{t:.2f}")
            f.write(
                f'{", " if v else ""}"{vid}": {{"start": [{", ".join(starts)}], '
                f'"end": [{", ".join(ends)}], "text": [{", ".join(rng.choices(texts, k=k))}]}}'
            )
            total += k
        f.write("}")
    return total


def _child(*args: str) -> dict:
    # run in the repository root: a `-c` child imports from its working directory first
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, check=True, cwd=REPO
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def caption_index_figures(
    videos: int = 200_000,
    mean_cues: int = 110,
    *,
    lookups: int = 20_000,
    workdir: str | os.PathLike[str] | None = None,
    compare_whole: bool = False,
    seed: int = 0,
) -> dict:
    """Build the index of a synthetic caption file of ``videos`` videos and measure it.

    Returns the figures named in the module docstring (and the sizes behind them). The files go
    to ``workdir`` (default: a temporary folder, removed afterwards).
    """
    with tempfile.TemporaryDirectory(prefix="hero-captions-", dir=workdir) as tmp:
        # absolute: the children run in the repository root
        source = Path(tmp).resolve() / "caption.json"
        index_path = Path(tmp).resolve() / "caption.capidx"
        started = time.perf_counter()
        cues = write_caption_file(source, videos, mean_cues, seed)
        generate_s = time.perf_counter() - started
        size = source.stat().st_size
        build = _child("build", str(source), str(index_path))
        assert build["videos"] == videos and build["cues"] == cues
        lookup = _child("lookup", str(source), str(index_path), str(lookups))
        index_bytes = index_path.stat().st_size
        figures = {
            "caption_index_mb_per_s": round(size / 1e6 / build["build_s"], 1),
            "caption_index_rss_mb": round(build["rss_peak_mb"] - build["rss_before_mb"], 1),
            "caption_lookup_us": round(lookup["lookup_s"] / lookup["looked_up"] * 1e6, 1),
            "caption_file_mb": round(size / 1e6, 1),
            "caption_index_peak_rss_mb": round(build["rss_peak_mb"], 1),
            "caption_contains_us": round(lookup["contains_s"] / lookup["looked_up"] * 1e6, 2),
            "caption_index_build_s": round(build["build_s"], 2),
            "caption_index_open_ms": round(lookup["open_s"] * 1e3, 2),
            "caption_index_file_mb": round(index_bytes / 1e6, 1),
            "caption_index_bytes_per_cue": round(index_bytes / cues, 1),
            "caption_index_bytes_per_video": round(index_bytes / videos, 1),
            "videos": videos,
            "cues": cues,
            "cues_per_lookup": round(lookup["cues_looked_up"] / lookup["looked_up"], 1),
            "generate_s": round(generate_s, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(),
        }
        if compare_whole:
            whole = _child("whole", str(source), str(index_path))
            figures["whole_file_rss_mb"] = round(whole["rss_peak_mb"] - whole["rss_before_mb"], 1)
            figures["whole_file_s"] = round(whole["whole_s"], 2)
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--videos", type=int, default=200_000, help="videos in the caption file")
    p.add_argument("--mean-cues", type=int, default=110, help="mean cues per video")
    p.add_argument("--lookups", type=int, default=20_000, help="random videos looked up")
    p.add_argument("--workdir", help="where the files go [a temporary folder]")
    p.add_argument(
        "--compare-whole", action="store_true", help="also read the file whole (much memory)"
    )
    args = p.parse_args(argv)
    f = caption_index_figures(
        args.videos,
        args.mean_cues,
        lookups=args.lookups,
        workdir=args.workdir,
        compare_whole=args.compare_whole,
    )
    print(
        f"caption file: {f['videos']:,} videos, {f['cues']:,} cues, {f['caption_file_mb']} MB "
        f"(generated in {f['generate_s']} s)"
    )
    print(
        f"index: built in {f['caption_index_build_s']} s = {f['caption_index_mb_per_s']} MB/s; "
        f"{f['caption_index_file_mb']} MB ({f['caption_index_bytes_per_cue']} bytes a cue, "
        f"{f['caption_index_bytes_per_video']} a video)"
    )
    print(
        f"peak RSS grew by {f['caption_index_rss_mb']} MB while building "
        f"(peak {f['caption_index_peak_rss_mb']} MB)"
        + (
            f"; reading the file whole grew it by {f['whole_file_rss_mb']} MB "
            f"in {f['whole_file_s']} s"
            if "whole_file_rss_mb" in f
            else ""
        )
    )
    print(
        f"lookup: {f['caption_lookup_us']} us a video ({f['cues_per_lookup']} cues), "
        f"'in': {f['caption_contains_us']} us, open: {f['caption_index_open_ms']} ms"
    )
    print(json.dumps(f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
