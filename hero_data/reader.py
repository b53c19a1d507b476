"""Reading a dataset: memory-mapped shards, random access to a clip by index or id.

Features come back as zero-copy numpy views into the memory-mapped shard files: asking for a
clip costs a few microseconds and no copy, whatever its size; the bytes are read from disk (or
the page cache) only when the view is used.

Opening checks the manifest against the shards: every shard must exist, have the manifest's
byte size and row count, be a readable Arrow IPC file of this toolkit's schema version, and,
with ``verify="full"``, the manifest's sha256 (which reads every byte, so it is not the default).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from hero_data.manifest import DatasetError, Manifest, ShardInfo, load_manifest, sha256_file
from hero_data.schema import (
    FEATURE_COLUMNS,
    SCHEMA_VERSION,
    ClipRecord,
    clip_schema,
    schema_version_of,
)
from hero_data.types import Clip, Cue

Verify = Literal["fast", "full"]


@dataclass
class _Batch:
    """One record batch of a shard with its feature columns as 2D views."""

    batch: pa.RecordBatch
    offsets: list[int]  # step offsets per row, len rows + 1
    resnet: np.ndarray  # (steps in batch, 2048) view
    slowfast: np.ndarray  # (steps in batch, 2304) view


def _steps_view(column: pa.ListArray, dim: int) -> tuple[list[int], np.ndarray]:
    """Row offsets and a zero-copy ``(steps, dim)`` float16 view of a feature column."""
    steps = column.values  # FixedSizeListArray, whole child (list offsets index into it)
    flat = steps.values  # HalfFloatArray, whole child of the fixed-size lists
    start = flat.offset + steps.offset * dim
    count = len(steps) * dim
    data = np.frombuffer(flat.buffers()[1], dtype=np.float16, count=count, offset=start * 2)
    return column.offsets.to_numpy().tolist(), data.reshape(-1, dim)


def _open_shard(root: Path, info: ShardInfo, verify: Verify) -> list[_Batch]:
    path = root / info.name
    if not path.is_file():
        raise DatasetError(path, "missing: the manifest lists this shard but the file is absent")
    size = path.stat().st_size
    if size != info.bytes:
        raise DatasetError(
            path, f"{size} bytes, the manifest says {info.bytes} (truncated or replaced?)"
        )
    if verify == "full":
        digest = sha256_file(path)
        if digest != info.sha256:
            raise DatasetError(
                path, f"sha256 {digest[:16]}… does not match the manifest's {info.sha256[:16]}…"
            )
    try:
        source = pa.memory_map(str(path), "r")
        reader = pa.ipc.open_file(source)
        schema = reader.schema
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DatasetError(
            path, f"not a readable Arrow IPC file ({type(e).__name__}: {e})"
        ) from None
    version = schema_version_of(schema)
    if version != SCHEMA_VERSION:
        raise DatasetError(
            path,
            f"shard schema version {version!r}, this toolkit reads version {SCHEMA_VERSION}"
            if version is not None
            else "not a HERO shard (its schema carries no hero.schema_version)",
        )
    if not schema.equals(clip_schema(), check_metadata=False):
        raise DatasetError(path, "columns do not match the HERO clip schema of this version")
    rows = sum(b.num_rows for b in batches)
    if rows != info.rows:
        raise DatasetError(path, f"{rows} rows, the manifest says {info.rows}")
    out = []
    for b in batches:
        views = {}
        for name, dim in FEATURE_COLUMNS.items():
            views[name] = _steps_view(b.column(name), dim)
        out.append(_Batch(b, views["resnet"][0], views["resnet"][1], views["slowfast"][1]))
    return out


class HeroDataset(Sequence[ClipRecord]):
    """A dataset opened for reading. Index it with an int (row) or a clip id.

    Use :meth:`open`. ``len(ds)`` is the number of clips; ``ds[i]`` or ``ds["vid.3"]`` gives a
    :class:`ClipRecord` whose features are views; :meth:`features` gives just the features.
    """

    def __init__(self, root: Path, manifest: Manifest, batches: list[_Batch]) -> None:
        self.root = root
        self.manifest = manifest
        self._batches = batches
        self._first_row: list[int] = []
        n = 0
        for b in batches:
            self._first_row.append(n)
            n += b.batch.num_rows
        self._len = n
        self._index: dict[str, int] | None = None

    @classmethod
    def open(cls, root: str | os.PathLike[str], verify: Verify = "fast") -> HeroDataset:
        """Open ``root``; raises :class:`DatasetError` naming the file at fault."""
        if verify not in ("fast", "full"):
            raise ValueError(f"verify must be 'fast' or 'full', got {verify!r}")
        root = Path(root)
        manifest = load_manifest(root)
        batches: list[_Batch] = []
        for info in manifest.shards:
            batches.extend(_open_shard(root, info, verify))
        return cls(root, manifest, batches)

    def __len__(self) -> int:
        return self._len

    def _locate(self, key: int | str) -> tuple[_Batch, int]:
        if isinstance(key, str):
            key = self.index_of(key)
        elif isinstance(key, (int, np.integer)):
            key = int(key)
            if key < 0:
                key += self._len
            if not 0 <= key < self._len:
                raise IndexError(f"clip index {key} out of range for {self._len} clips")
        else:
            raise TypeError(f"index a dataset with an int or a clip id, not {type(key).__name__}")
        b = bisect.bisect_right(self._first_row, key) - 1
        return self._batches[b], key - self._first_row[b]

    def index_of(self, clip_id: str) -> int:
        """Row of ``clip_id``; ``KeyError`` if the dataset has no such clip."""
        if self._index is None:
            self._index = {cid: i for i, cid in enumerate(self.clip_ids())}
        try:
            return self._index[clip_id]
        except KeyError:
            raise KeyError(f"no clip {clip_id!r} in {self.root}") from None

    def clip_ids(self) -> list[str]:
        """All clip ids in row order."""
        return [cid for b in self._batches for cid in b.batch.column("clip_id").to_pylist()]

    def features(self, key: int | str) -> tuple[np.ndarray, np.ndarray]:
        """``(resnet (n, 2048), slowfast (n, 2304))`` float16 zero-copy views of one clip.

        The views are read-only (the file is mapped read-only): copy before changing them.
        """
        batch, row = self._locate(key)
        lo, hi = batch.offsets[row], batch.offsets[row + 1]
        return batch.resnet[lo:hi], batch.slowfast[lo:hi]

    def __getitem__(self, key: int | str) -> ClipRecord:  # type: ignore[override]
        batch, row = self._locate(key)
        lo, hi = batch.offsets[row], batch.offsets[row + 1]
        return record_from_row(batch.batch, row, batch.resnet[lo:hi], batch.slowfast[lo:hi])

    def __iter__(self) -> Iterator[ClipRecord]:
        for i in range(self._len):
            yield self[i]

    def table(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The dataset as one Arrow table (zero-copy over the mapped shards)."""
        schema = clip_schema()
        batches = [b.batch for b in self._batches]
        table = pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()
        return table.select(list(columns)) if columns is not None else table


def record_from_row(
    batch: pa.RecordBatch,
    row: int,
    resnet: np.ndarray | None = None,
    slowfast: np.ndarray | None = None,
) -> ClipRecord:
    """Row ``row`` of a record batch of the clip schema as a :class:`ClipRecord`.

    ``resnet``/``slowfast``: the row's features when the caller already has views of them;
    otherwise they are taken (zero-copy) from the batch.
    """

    def value(name: str) -> Any:
        return batch.column(name)[row].as_py()

    if resnet is None or slowfast is None:
        offsets, r = _steps_view(batch.column("resnet"), FEATURE_COLUMNS["resnet"])
        _, f = _steps_view(batch.column("slowfast"), FEATURE_COLUMNS["slowfast"])
        lo, hi = offsets[row], offsets[row + 1]
        resnet, slowfast = r[lo:hi], f[lo:hi]
    clip = Clip(value("video_id"), value("clip_index"), value("clip_start"), value("clip_end"))
    return ClipRecord(
        clip=clip,
        source=value("source"),
        frame_interval=value("frame_interval"),
        resnet=resnet,
        slowfast=slowfast,
        cues=tuple(Cue(**c) for c in value("cues")),
        cue_token_ids=value("cue_token_ids"),
        sub2frames=value("sub2frames"),
        unique_sub2frames=value("unique_sub2frames"),
        unmatched_frames=value("unmatched_frames"),
    )


def open_dataset(root: str | os.PathLike[str], verify: Verify = "fast") -> HeroDataset:
    """:meth:`HeroDataset.open`."""
    return HeroDataset.open(root, verify=verify)
