"""The Arrow schema of a HERO dataset shard, declared once, and the row type it holds.

One row per clip. Each column of the dataset's feature set (:mod:`hero_data.features`) is one
float16 column of that name, one ``fixed_size_list`` per step inside a list per clip, so a
reader can hand out a clip's ``(num_frames, dim)`` features as a zero-copy numpy view of the
memory-mapped file. The feature columns sit where ``resnet`` and ``slowfast`` sat before sets
were named, so :data:`~hero_data.features.DEFAULT_FEATURES` gives that schema exactly. Bump
:data:`SCHEMA_VERSION` on any other change to :func:`clip_schema`; readers refuse shards of
another version.

Per-cue columns (``cue_token_ids``, ``sub2frames``, ``unique_sub2frames``) hold one list per cue,
in cue order, or are empty when that stage has not run. Cue times are clip-relative seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow as pa

from hero_data.errors import FeatureSetError
from hero_data.features import DEFAULT_FEATURES, RESNET_DIM, SLOWFAST_DIM, FeatureSet
from hero_data.grid import num_steps
from hero_data.types import Clip, Cue

__all__ = [
    "RESNET_DIM",
    "SCHEMA_VERSION",
    "SLOWFAST_DIM",
    "ClipRecord",
    "check_record_features",
    "clip_schema",
    "schema_version_of",
    "to_record_batch",
]

SCHEMA_VERSION = 1
"""Version of :func:`clip_schema`; stored in each shard's schema metadata and the manifest."""

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


def clip_schema(features: FeatureSet = DEFAULT_FEATURES) -> pa.Schema:
    """The shard schema of a dataset of feature set ``features``, with ``hero.schema_version``
    in its metadata."""
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
            *(pa.field(c.name, _feature_type(c.dim), nullable=False) for c in features.columns),
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
        features: ``(num_frames, dim)`` float16 features per column name, in feature-set
            order (``{"resnet": (n, 2048), "slowfast": (n, 2304)}`` for HERO's set); held as
            a read-only mapping.
        cues: the clip's cues, clip-relative seconds, sorted by start.
        cue_token_ids: token ids per cue, or empty if not tokenized.
        sub2frames: steps each cue covers, per cue, or empty if not aligned.
        unique_sub2frames: steps assigned to each cue (each step to at most one), per cue.
        unmatched_frames: steps no cue was assigned.
    """

    clip: Clip
    source: str
    frame_interval: float
    features: Mapping[str, np.ndarray]
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
        if not isinstance(self.features, Mapping) or not self.features:
            raise ValueError(f"clip {cid}: features must be a non-empty mapping of name to array")
        features: dict[str, np.ndarray] = {}
        for name, arr in self.features.items():
            if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[1] < 1:
                shape = getattr(arr, "shape", type(arr).__name__)
                raise ValueError(f"clip {cid}: {name} must be (num_frames, dim), got {shape}")
            features[name] = arr if arr.dtype == np.float16 else arr.astype(np.float16)
        object.__setattr__(self, "features", MappingProxyType(features))
        first, *rest = features
        n = self.num_frames
        for name in rest:
            if features[name].shape[0] != n:
                raise ValueError(
                    f"clip {cid}: {first} has {n} steps but {name} has {features[name].shape[0]}"
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

    # A mapping proxy does not pickle, and records cross process boundaries (Ray, loaders).
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "features": dict(self.features)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, features=MappingProxyType(state["features"]))

    @property
    def clip_id(self) -> str:
        """``<video_id>.<index>``."""
        return self.clip.clip_id

    @property
    def num_frames(self) -> int:
        """Number of feature steps."""
        return int(next(iter(self.features.values())).shape[0])

    @property
    def feature_set(self) -> FeatureSet:
        """The names and dimensions of :attr:`features`, in order (no extractor config)."""
        return FeatureSet.of(*((name, a.shape[1]) for name, a in self.features.items()))

    @property
    def feature_bytes(self) -> int:
        """Bytes of all feature arrays."""
        return sum(a.nbytes for a in self.features.values())

    def visual(self) -> np.ndarray:
        """HERO's ``(num_frames, dim)`` float16 input: the feature columns concatenated in
        order, e.g. ResNet ‖ SlowFast (4352) for HERO's set (a copy)."""
        return np.concatenate(list(self.features.values()), axis=1)


def _feature_array(arrays: list[np.ndarray], dim: int) -> pa.Array:
    lengths = np.fromiter((a.shape[0] for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(arrays, axis=0).reshape(-1) if arrays else np.zeros(0, np.float16)
    steps = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float16()), dim)
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), steps)


def check_record_features(record: ClipRecord, features: FeatureSet, where: str) -> None:
    """:class:`FeatureSetError` unless ``record`` holds exactly ``features``' columns and dims,
    in order (``where``: the dataset, for the message)."""
    got = record.feature_set
    if not got.same_layout(features):
        raise FeatureSetError(
            f"{where}: clip {record.clip_id} has features {got.describe()} but the dataset's "
            f"feature set is {features.describe()}"
        )


def to_record_batch(
    records: Sequence[ClipRecord], features: FeatureSet = DEFAULT_FEATURES
) -> pa.RecordBatch:
    """Records -> one record batch of :func:`clip_schema` for ``features``; each record must
    hold that set (:class:`FeatureSetError` otherwise)."""
    schema = clip_schema(features)
    for r in records:
        check_record_features(r, features, "record batch")
    cols: dict[str, pa.Array] = {
        "clip_id": pa.array([r.clip_id for r in records], pa.string()),
        "video_id": pa.array([r.clip.video_id for r in records], pa.string()),
        "source": pa.array([r.source for r in records], pa.string()),
        "clip_index": pa.array([r.clip.index for r in records], pa.int32()),
        "clip_start": pa.array([r.clip.start for r in records], pa.float64()),
        "clip_end": pa.array([r.clip.end for r in records], pa.float64()),
        "frame_interval": pa.array([r.frame_interval for r in records], pa.float64()),
        "num_frames": pa.array([r.num_frames for r in records], pa.int32()),
        **{
            c.name: _feature_array([r.features[c.name] for r in records], c.dim)
            for c in features.columns
        },
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
