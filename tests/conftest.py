"""Shared test fixtures: real media from ../shared/fixtures, synthetic clip records, GPU skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hero_data.features import DEFAULT_FEATURES, FeatureSet
from hero_data.grid import num_steps
from hero_data.schema import ClipRecord
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


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Any]:
    """moto's S3 server on 127.0.0.1 (a free port), for the whole session."""
    pytest.importorskip("moto")
    from tests.s3_support import MotoServer

    server = MotoServer()
    yield server
    server.stop()


@dataclass
class S3Bucket:
    """A fresh bucket on the test S3 server. ``url`` is ``s3://<bucket>``; requests go through
    ``proxy`` (a :class:`tests.s3_support.FaultProxy`), which can inject faults."""

    name: str
    url: str
    proxy: Any
    client: Any


@pytest.fixture
def s3(moto_server, monkeypatch) -> Iterator[S3Bucket]:
    """A fresh bucket, and the standard AWS environment pointing at it (so every library and
    every subprocess, Ray workers included, reaches it the way it would reach real S3)."""
    pytest.importorskip("s3fs")
    import boto3
    import s3fs

    import hero_data.storage as storage
    from tests.s3_support import FaultProxy

    proxy = FaultProxy(moto_server.port)
    env = {
        "AWS_ENDPOINT_URL": proxy.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_RETRY_MODE": "standard",
        "AWS_MAX_ATTEMPTS": "3",
        "HERO_STORAGE_BACKOFF_S": "0.05",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    s3fs.S3FileSystem.clear_instance_cache()  # built from the environment when first used
    storage._OPEN.clear()
    name = f"hero-test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_server.endpoint)
    client.create_bucket(Bucket=name)
    yield S3Bucket(name, f"s3://{name}", proxy, client)
    proxy.stop()
    s3fs.S3FileSystem.clear_instance_cache()
    storage._OPEN.clear()


def shard_files(root: str | os.PathLike[str]) -> list[Path]:
    """The shard files of a local dataset, in row order (compacted, then pending records)."""
    from hero_data.commits import snapshot

    return [Path(root) / s.name for s in snapshot(os.fspath(root)).shards]


@pytest.fixture(scope="session", autouse=True)
def _offline() -> Iterator[None]:
    """$HERO_OFFLINE=1 for every test (and the subprocesses tests start): a missing weight file
    is never fetched from the internet. The download tests serve files from 127.0.0.1 and lift
    it for themselves."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HERO_OFFLINE", "1")
        yield


INTEGRATION_MODULES = frozenset(
    {
        "pipelines/test_run.py",  # `hero run` on Ray, its worker deaths and its kill -9 resumes
        "pipelines/test_run_s3.py",  # the real command against the S3 server, killed mid-run
        "pipelines/test_run_cluster.py",  # a 3-node Ray cluster on this machine
        "hero_model/test_distributed.py",  # Ray Train with two gloo workers
        # whole videos through both real-size models (ResNet-152, SlowFast-R50): about 5 of
        # the default tier's 11 minutes on the shared 2-core machine (2026-12-06)
        "extract/test_extractor.py",
    }
)
"""Test modules (under tests/) of the ``integration`` tier: whole runs on Ray, killed or not, and
whole-video feature extraction."""

INTEGRATION_FIXTURES = frozenset({"ray_local", "demo_dataset"})
"""Fixtures that put a test in the ``integration`` tier wherever it is: a local Ray instance,
the demo's dataset (the whole `hero demo` chain)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).resolve().parent
    for item in items:
        path = Path(item.fspath).resolve()
        module = path.relative_to(tests).as_posix() if path.is_relative_to(tests) else ""
        fixtures = set(getattr(item, "fixturenames", ()))
        if module in INTEGRATION_MODULES or fixtures & INTEGRATION_FIXTURES:
            item.add_marker(pytest.mark.integration)
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
    features: FeatureSet = DEFAULT_FEATURES,
) -> ClipRecord:
    """A valid clip record with seeded random features of the set ``features`` and ``n_cues``
    aligned cues."""
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
        features={
            c.name: rng.standard_normal((n, c.dim), dtype=np.float32).astype(np.float16)
            for c in features.columns
        },
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


# TV subtitles as TVR's tv_subtitles.jsonl writes them, and their tokens under HERO's rule: the
# text " Name : text", stripped, lower-cased when all caps, byte-level BPE (Ġ marks a space).
TV_SUBS = (
    (" Chase : That's all this is?", 0.862, 1.862),
    (" House : NO", 2.0, 4.5),
    ("Okay.", 5.0, 6.0),
    (" MAN : HEY YOU", 6.5, 8.0),
)
TV_TOKENS_WITH_SPEAKER = (
    ("Chase", "Ġ:", "ĠThat", "'s", "Ġall", "Ġthis", "Ġis", "?"),
    ("House", "Ġ:", "ĠNO"),  # not all caps as a whole: kept
    ("Okay", "."),
    ("man", "Ġ:", "Ġhey", "Ġyou"),  # all caps as a whole: lower-cased
)
TV_TOKENS_WITHOUT_SPEAKER = (
    ("That", "'s", "Ġall", "Ġthis", "Ġis", "?"),
    ("no",),  # "NO" alone is all caps
    ("Okay", "."),
    ("hey", "Ġyou"),
)


def hand_bpe(folder: Path) -> dict[str, int]:
    """Write a RoBERTa-style vocab.json + merges.txt into ``folder`` whose merges build exactly
    the tokens of ``TV_TOKENS_*`` (each as one chain, the Ġ ones first so that they win), on
    top of the five special tokens and the 256 byte symbols; return the vocabulary."""
    import json

    from tokenizers import pre_tokenizers

    words = {t for cue in (*TV_TOKENS_WITH_SPEAKER, *TV_TOKENS_WITHOUT_SPEAKER) for t in cue}
    words = {w for w in words if len(w) > 1}
    ordered = sorted(w for w in words if w.startswith("Ġ")) + sorted(
        w for w in words if not w.startswith("Ġ")
    )
    vocab = {t: i for i, t in enumerate(("<s>", "<pad>", "</s>", "<unk>", "<mask>"))}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    merges = []
    for word in ordered:
        for k in range(2, len(word) + 1):
            if word[:k] not in vocab:
                vocab[word[:k]] = len(vocab)
                merges.append(f"{word[: k - 1]} {word[k - 1]}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return vocab


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch intra-op thread for a module (``pytestmark = pytest.mark.usefixtures(...)``):
    on a busy 2-core machine, two threads run tiny models 5-50x slower (they spin waiting for
    each other)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
