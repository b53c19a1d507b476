"""Helpers of the input tests: files on disk and in fsspec's memory filesystem."""

from __future__ import annotations

from pathlib import Path

import fsspec

from pipelines.inputs import Listing, VideoInput

VTT = "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nhello there\n"


def touch(root: Path, *names: str, data: bytes = b"x") -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def put(url: str, data: bytes | str = b"x") -> None:
    with fsspec.open(url, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def by_id(listing: Listing) -> dict[str, VideoInput]:
    return {v.video_id: v for v in listing.inputs}
