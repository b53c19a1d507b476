"""Shared test fixtures: real media from ../shared/fixtures, synthetic clip records, GPU skip."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from hero_data.grid import num_steps
from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord
from hero_data.types import Clip, Cue

REPO = Path(__file__).resolve().parents[1]


def _shared_fixtures() -> Path:
    env = os.environ.get("HERO_SHARED_FIXTURES")
    return Path(env) if env else REPO.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """../shared/fixtures (or $HERO_SHARED_FIXTURES); skips the test when it is absent."""
    path = _shared_fixtures()
    if not path.is_dir():
        pytest.skip(f"real test media not found at {path} (set HERO_SHARED_FIXTURES)")
    return path


@pytest.fixture(scope="session", autouse=True)
def _hero_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """$HERO_CACHE_DIR in a per-session temporary folder (inherited by the subprocesses tests
    start), so that the dataset reader's verification cache never writes to the user's home."""
    path = tmp_path_factory.mktemp("hero-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HERO_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="session", autouse=True)
def _offline() -> Iterator[None]:
    """$HERO_OFFLINE=1 for every test (and the subprocesses tests start): a missing weight file
    is never fetched from the internet. The download tests serve files from 127.0.0.1 and lift
    it for themselves."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HERO_OFFLINE", "1")
        yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [i for i in items if i.get_closest_marker("gpu")]
    if not gpu_items:
        return
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # no torch, or a broken CUDA install: no GPU tests either way
        has_gpu = False
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in gpu_items:
            item.add_marker(skip)


def make_record(
    video_id: str = "vid",
    index: int = 0,
    duration: float = 60.0,
    *,
    interval: float = 1.5,
    seed: int = 0,
    n_cues: int = 3,
    speaker: str | None = "Ann",
) -> ClipRecord:
    """A valid clip record with seeded random features and ``n_cues`` aligned cues."""
    rng = np.random.default_rng(seed)
    n = num_steps(duration, interval)
    cues, spans = [], []
    for k in range(n_cues):
        start = round(k * duration / max(n_cues, 1), 3)
        end = round(min(duration, start + duration / max(n_cues, 1) * 0.8), 3)
        cues.append(Cue(start, end, f"cue {k} «ünïcode» of {video_id}", speaker if k % 2 else None))
        first, stop = int(start // interval), min(n, -int(-end // interval))
        spans.append(tuple(range(first, stop)))
    covered = {s for span in spans for s in span}
    return ClipRecord(
        clip=Clip(video_id, index, index * 60.0, index * 60.0 + duration),
        source=f"/videos/{video_id}.mp4",
        frame_interval=interval,
        resnet=rng.standard_normal((n, RESNET_DIM), dtype=np.float32).astype(np.float16),
        slowfast=rng.standard_normal((n, SLOWFAST_DIM), dtype=np.float32).astype(np.float16),
        cues=tuple(cues),
        cue_token_ids=tuple(tuple(range(k, k + 4)) for k in range(n_cues)),
        sub2frames=tuple(spans),
        unique_sub2frames=tuple(spans),
        unmatched_frames=tuple(s for s in range(n) if s not in covered),
    )


@pytest.fixture
def record_factory() -> Callable[..., ClipRecord]:
    """:func:`make_record`."""
    return make_record
