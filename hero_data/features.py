"""A dataset's feature set: the ordered, named per-step feature columns its shards hold.

Each column is one model's feature per step (``resnet`` 2048, ``slowfast`` 2304,
``clip_vit_b32`` 512, ...), stored as its own shard column of that name. HERO's visual input
per step is the columns concatenated in set order (:meth:`FeatureSet.dim` numbers).

The set is recorded in the manifest under ``features`` (docs/dataset-format.md), each column
with its dimension and the extractor config that made it. A manifest without the key holds
:data:`DEFAULT_FEATURES`, ``resnet ‖ slowfast``, whose shard schema is exactly the one of
datasets written before feature sets were named.

Two sets are the same *layout* when their names and dimensions agree in order; the extractor
config is a record of provenance, not part of what a consumer (the model, an export) depends
on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hero_data.errors import FeatureSetError

RESNET_DIM = 2048
"""ResNet-152 global-average-pool features per step."""

SLOWFAST_DIM = 2304
"""SlowFast-R50 pooled slow (2048) ‖ fast (256) features per step."""

# Column names become Arrow field names beside the fixed columns, and parts of file and LMDB
# names on export: lower-case identifiers, and never one of the schema's other columns.
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RESERVED_NAMES = frozenset(
    {
        "clip_id",
        "video_id",
        "source",
        "clip_index",
        "clip_start",
        "clip_end",
        "frame_interval",
        "num_frames",
        "cues",
        "cue_token_ids",
        "sub2frames",
        "unique_sub2frames",
        "unmatched_frames",
    }
)
"""The shard schema's other columns, which no feature column may be named."""


@dataclass(frozen=True)
class FeatureColumn:
    """One named feature column.

    Attributes:
        name: the column's name (a lower-case identifier: ``clip_vit_b32``).
        dim: numbers per step.
        extractor: the JSON-able config of the extractor that made it (model, weights,
            preprocessing); empty when not known. Not compared: see the module doc.
    """

    name: str
    dim: int
    extractor: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise FeatureSetError(
                f"feature column name {self.name!r}: use a lower-case identifier "
                "(a letter, then letters, digits or '_', at most 64)"
            )
        if self.name in RESERVED_NAMES:
            raise FeatureSetError(f"feature column name {self.name!r} is a column of the schema")
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise FeatureSetError(f"feature column {self.name}: dim must be a positive int")
        if not isinstance(self.extractor, Mapping):
            raise FeatureSetError(f"feature column {self.name}: extractor must be an object")
        object.__setattr__(self, "extractor", dict(self.extractor))


@dataclass(frozen=True)
class FeatureSet:
    """An ordered, non-empty set of feature columns with distinct names."""

    columns: tuple[FeatureColumn, ...]

    def __post_init__(self) -> None:
        columns = tuple(self.columns)
        if not columns or not all(isinstance(c, FeatureColumn) for c in columns):
            raise FeatureSetError("a feature set needs at least one FeatureColumn")
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise FeatureSetError(f"feature set {','.join(names)} names a column twice")
        object.__setattr__(self, "columns", columns)

    @classmethod
    def of(cls, *pairs: tuple[str, int]) -> FeatureSet:
        """A set from ``(name, dim)`` pairs, in order, with no extractor config."""
        return cls(tuple(FeatureColumn(name, dim) for name, dim in pairs))

    @property
    def names(self) -> tuple[str, ...]:
        """Column names, in order."""
        return tuple(c.name for c in self.columns)

    @property
    def dims(self) -> dict[str, int]:
        """Numbers per step of each column, in order."""
        return {c.name: c.dim for c in self.columns}

    @property
    def dim(self) -> int:
        """Numbers per step of all columns together: HERO's visual input dimension."""
        return sum(c.dim for c in self.columns)

    def describe(self) -> str:
        """``resnet(2048)+slowfast(2304)``, for messages."""
        return "+".join(f"{c.name}({c.dim})" for c in self.columns)

    def same_layout(self, other: FeatureSet) -> bool:
        """Whether ``other`` has the same names and dimensions, in the same order."""
        return list(self.dims.items()) == list(other.dims.items())

    def to_json(self) -> list[dict[str, Any]]:
        """The manifest's ``features`` value."""
        return [
            {"name": c.name, "dim": c.dim, "extractor": dict(c.extractor)} for c in self.columns
        ]

    @classmethod
    def from_json(cls, data: Any) -> FeatureSet:
        """Inverse of :meth:`to_json`; :class:`FeatureSetError` says what is malformed."""
        if not isinstance(data, list):
            raise FeatureSetError("features must be a list of {name, dim, extractor} objects")
        columns = []
        for entry in data:
            if not isinstance(entry, dict) or set(entry) - {"name", "dim", "extractor"}:
                raise FeatureSetError(
                    f"a features entry must be an object with name, dim and extractor: "
                    f"{entry!r:.80}"
                )
            if "name" not in entry or "dim" not in entry:
                raise FeatureSetError(f"a features entry lacks its name or dim: {entry!r:.80}")
            columns.append(FeatureColumn(entry["name"], entry["dim"], entry.get("extractor", {})))
        return cls(tuple(columns))


DEFAULT_FEATURES = FeatureSet.of(("resnet", RESNET_DIM), ("slowfast", SLOWFAST_DIM))
"""HERO's set, ResNet-152 ‖ SlowFast-R50 (4352 per step): the set of a manifest without
``features``."""


def check_same_sets(sources: Iterable[tuple[str, FeatureSet]]) -> FeatureSet:
    """The one feature set that all ``(where, set)`` sources share; :class:`FeatureSetError`
    naming the first two that differ (e.g. two datasets given to one training run)."""
    first: tuple[str, FeatureSet] | None = None
    for where, features in sources:
        if first is None:
            first = (where, features)
        elif not first[1].same_layout(features):
            raise FeatureSetError(
                f"{first[0]} has features {first[1].describe()} but {where} has "
                f"{features.describe()}: one model takes one feature set; use datasets made "
                "with the same set"
            )
    if first is None:
        raise ValueError("no feature sets to compare")
    return first[1]
