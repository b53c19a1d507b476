"""Fixtures of the input tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import fsspec
import pytest


@pytest.fixture
def mem() -> Iterator[str]:
    """A fresh ``memory://`` folder, removed afterwards (the memory filesystem is global)."""
    root = f"memory://hero-test-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)
