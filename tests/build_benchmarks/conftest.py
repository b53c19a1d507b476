"""Fixtures for the benchmark tests: small datasets written with the real DatasetWriter."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from hero_data.schema import ClipRecord
from hero_data.types import Cue
from hero_data.writer import DatasetWriter

CONFIG = {"frame_interval": 1.5, "clip_length": 60.0}

ClipSpec = tuple[str, int, float, Sequence[Cue] | None]
"""(video id, clip index, duration s, cues (None: make_record's own))."""


@pytest.fixture
def make_dataset(tmp_path: Path, record_factory: Callable[..., ClipRecord]):
    """``make_dataset(clips, name="ds", config=CONFIG) -> Path`` of a written dataset."""

    def make(clips: Sequence[ClipSpec], name: str = "ds", config: dict | None = None) -> Path:
        root = tmp_path / name
        with DatasetWriter(root, config or CONFIG) as writer:
            for n, (video, index, duration, cues) in enumerate(clips):
                record = record_factory(video, index, duration, seed=n, n_cues=1)
                if cues is not None:
                    record = replace(
                        record,
                        cues=tuple(cues),
                        cue_token_ids=(),
                        sub2frames=(),
                        unique_sub2frames=(),
                        unmatched_frames=(),
                    )
                writer.write(record)
        return root

    return make
