"""The Arrow schema of a HERO dataset shard, declared once, and the row type it holds.

One row per clip. Features are float16, one ``fixed_size_list`` per step inside a list per clip,
so a reader can hand out a clip's ``(num_frames, dim)`` features as a zero-copy numpy view of the
memory-mapped file. Bump :data:`SCHEMA_VERSION` on any change to :func:`clip_schema`; readers
refuse shards of another version.

Per-cue columns (``cue_token_ids``, ``sub2frames``, ``unique_sub2frames``) hold one list per cue,
in cue order, or are empty when that stage has not run. Cue times are clip-relative seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from hero_data.grid import num_steps
from hero_data.types import Clip, Cue

SCHEMA_VERSION = 1
"""Version of :func:`clip_schema`; stored in each shard's schema metadata and the manifest."""

RESNET_DIM = 2048
"""ResNet-152 global-average-pool features per step."""

SLOWFAST_DIM = 2304
"""SlowFast-R50 pooled slow (2048) ‖ fast (256) features per step."""

FEATURE_DIM = RESNET_DIM + SLOWFAST_DIM
"""HERO's per-step visual feature, ResNet first (4352)."""

FEATURE_COLUMNS = {"resnet": RESNET_DIM, "slowfast": SLOWFAST_DIM}

_VERSION_KEY = b"hero.schema_version"

_CUE_TYPE = pa.struct(
    [
        pa.field("start", pa.float64(), nullable=False),
        pa.field("end", pa.float64(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("speaker", pa.string(), nullable=True),
    ]
)
_INT_LISTS = pa.list_(pa.list_(pa.int32()))


def _feature_type(dim: int) -> pa.DataType:
    return pa.list_(pa.list_(pa.float16(), dim))


def clip_schema() -> pa.Schema:
    """The shard schema, with ``hero.schema_version`` in its metadata."""
    return pa.schema(
        [
            pa.field("clip_id", pa.string(), nullable=False),
            pa.field("video_id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("clip_index", pa.int32(), nullable=False),
            pa.field("clip_start", pa.float64(), nullable=False),  # source seconds
            pa.field("clip_end", pa.float64(), nullable=False),  # source seconds
            pa.field("frame_interval", pa.float64(), nullable=False),  # seconds per step
            pa.field("num_frames", pa.int32(), nullable=False),
            pa.field("resnet", _feature_type(RESNET_DIM), nullable=False),
            pa.field("slowfast", _feature_type(SLOWFAST_DIM), nullable=False),
            pa.field("cues", pa.list_(_CUE_TYPE), nullable=False),  # clip-relative seconds
            pa.field("cue_token_ids", _INT_LISTS, nullable=False),
            pa.field("sub2frames", _INT_LISTS, nullable=False),
            pa.field("unique_sub2frames", _INT_LISTS, nullable=False),
            pa.field("unmatched_frames", pa.list_(pa.int32()), nullable=False),
        ],
        metadata={_VERSION_KEY: str(SCHEMA_VERSION).encode()},
    )


def schema_version_of(schema: pa.Schema) -> int | None:
    """The ``hero.schema_version`` a schema carries, or ``None`` if it carries none."""
    raw = (schema.metadata or {}).get(_VERSION_KEY)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _int_tuples(name: str, values: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(v) for v in row) for row in values)


@dataclass(frozen=True, eq=False)
class ClipRecord:
    """One row of a shard: a clip, its features, and its cues aligned to its steps.

    Attributes:
        clip: which window of which video (source seconds).
        source: URI of the video file the clip came from.
        frame_interval: seconds per step ``L``.
        resnet: ``(num_frames, 2048)`` float16 features.
        slowfast: ``(num_frames, 2304)`` float16 features.
        cues: the clip's cues, clip-relative seconds, sorted by start.
        cue_token_ids: token ids per cue, or empty if not tokenized.
        sub2frames: steps each cue covers, per cue, or empty if not aligned.
        unique_sub2frames: steps assigned to each cue (each step to at most one), per cue.
        unmatched_frames: steps no cue was assigned.
    """

    clip: Clip
    source: str
    frame_interval: float
    resnet: np.ndarray
    slowfast: np.ndarray
    cues: tuple[Cue, ...] = ()
    cue_token_ids: tuple[tuple[int, ...], ...] = ()
    sub2frames: tuple[tuple[int, ...], ...] = ()
    unique_sub2frames: tuple[tuple[int, ...], ...] = ()
    unmatched_frames: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        cid = self.clip.clip_id
        object.__setattr__(self, "cues", tuple(self.cues))
        for name in ("cue_token_ids", "sub2frames", "unique_sub2frames"):
            object.__setattr__(self, name, _int_tuples(name, getattr(self, name)))
        object.__setattr__(self, "unmatched_frames", tuple(int(v) for v in self.unmatched_frames))
        for name, dim in FEATURE_COLUMNS.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[1] != dim:
                shape = getattr(arr, "shape", type(arr).__name__)
                raise ValueError(f"clip {cid}: {name} must be (num_frames, {dim}), got {shape}")
            if arr.dtype != np.float16:
                object.__setattr__(self, name, arr.astype(np.float16))
        n = self.num_frames
        if self.slowfast.shape[0] != n:
            raise ValueError(
                f"clip {cid}: resnet has {n} steps but slowfast has {self.slowfast.shape[0]}"
            )
        expected = num_steps(self.clip.duration, self.frame_interval)
        if n != expected:
            raise ValueError(
                f"clip {cid}: {n} feature steps, but a {self.clip.duration:g} s clip at "
                f"{self.frame_interval} s per step has {expected}"
            )
        for name in ("cue_token_ids", "sub2frames", "unique_sub2frames"):
            got = len(getattr(self, name))
            if got not in (0, len(self.cues)):
                raise ValueError(f"clip {cid}: {name} has {got} entries for {len(self.cues)} cues")
        for name in ("sub2frames", "unique_sub2frames"):
            for steps in getattr(self, name):
                if any(not 0 <= s < n for s in steps):
                    raise ValueError(f"clip {cid}: {name} names a step outside 0..{n - 1}")
        if any(not 0 <= s < n for s in self.unmatched_frames):
            raise ValueError(f"clip {cid}: unmatched_frames names a step outside 0..{n - 1}")

    @property
    def clip_id(self) -> str:
        """``<video_id>.<index>``."""
        return self.clip.clip_id

    @property
    def num_frames(self) -> int:
        """Number of feature steps."""
        return int(self.resnet.shape[0])

    def features(self) -> np.ndarray:
        """HERO's ``(num_frames, 4352)`` float16 input: ResNet ‖ SlowFast (a copy)."""
        return np.concatenate([self.resnet, self.slowfast], axis=1)


def _feature_array(arrays: list[np.ndarray], dim: int) -> pa.Array:
    lengths = np.fromiter((a.shape[0] for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(arrays, axis=0).reshape(-1) if arrays else np.zeros(0, np.float16)
    steps = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float16()), dim)
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), steps)


def to_record_batch(records: Sequence[ClipRecord]) -> pa.RecordBatch:
    """Records -> one record batch of :func:`clip_schema`."""
    schema = clip_schema()
    cols: dict[str, pa.Array] = {
        "clip_id": pa.array([r.clip_id for r in records], pa.string()),
        "video_id": pa.array([r.clip.video_id for r in records], pa.string()),
        "source": pa.array([r.source for r in records], pa.string()),
        "clip_index": pa.array([r.clip.index for r in records], pa.int32()),
        "clip_start": pa.array([r.clip.start for r in records], pa.float64()),
        "clip_end": pa.array([r.clip.end for r in records], pa.float64()),
        "frame_interval": pa.array([r.frame_interval for r in records], pa.float64()),
        "num_frames": pa.array([r.num_frames for r in records], pa.int32()),
        "resnet": _feature_array([r.resnet for r in records], RESNET_DIM),
        "slowfast": _feature_array([r.slowfast for r in records], SLOWFAST_DIM),
        "cues": pa.array(
            [
                [
                    {"start": c.start, "end": c.end, "text": c.text, "speaker": c.speaker}
                    for c in r.cues
                ]
                for r in records
            ],
            pa.list_(_CUE_TYPE),
        ),
        "cue_token_ids": pa.array([r.cue_token_ids for r in records], _INT_LISTS),
        "sub2frames": pa.array([r.sub2frames for r in records], _INT_LISTS),
        "unique_sub2frames": pa.array([r.unique_sub2frames for r in records], _INT_LISTS),
        "unmatched_frames": pa.array([r.unmatched_frames for r in records], pa.list_(pa.int32())),
    }
    return pa.RecordBatch.from_arrays([cols[f.name] for f in schema], schema=schema)
