"""Train / val / test splits by video: no video has queries in two splits.

The distinct video ids are sorted, shuffled with a seeded generator, and cut into consecutive
runs whose sizes follow the fractions (largest remainder, ties to the earlier split), so the
same ids and seed always give the same split, whatever order the ids came in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def split_sizes(n: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[int]:
    """How many of ``n`` videos go to each split: largest remainder, sums to ``n``."""
    if n < 0:
        raise ValueError(f"need a non-negative number of videos, got {n}")
    if any(not math.isfinite(f) or f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split fractions must be non-negative with a positive sum: {fractions}")
    total = float(sum(fractions))
    exact = [n * f / total for f in fractions]
    sizes = [math.floor(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in order[: n - sum(sizes)]:
        sizes[i] += 1
    return sizes


def split_by_video(
    video_ids: Iterable[str],
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    names: Sequence[str] = SPLITS,
) -> dict[str, str]:
    """``video_id -> split name`` for the distinct ids, deterministic given ``seed``."""
    if len(names) != len(fractions):
        raise ValueError(f"{len(names)} split names for {len(fractions)} fractions")
    videos = sorted(set(video_ids))
    order = np.random.default_rng(seed).permutation(len(videos))
    out: dict[str, str] = {}
    start = 0
    for name, size in zip(names, split_sizes(len(videos), fractions), strict=True):
        for i in order[start : start + size]:
            out[videos[int(i)]] = name
        start += size
    return out
