"""The one progress helper: a bar on a terminal, periodic log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("hero.progress")


def track(
    items: Iterable[T], description: str, total: int | None = None, every_s: float = 10.0
) -> Iterator[T]:
    """Yield ``items``, showing progress on stderr (a rich bar when it is a terminal).

    Off a terminal (CI, log files) it logs ``description: done/total`` at most every
    ``every_s`` seconds and once at the end, so long jobs still show they are alive.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if sys.stderr.isatty():
        from rich.progress import track as rich_track

        yield from rich_track(items, description=description, total=total, transient=True)
        return
    done, last = 0, time.monotonic()
    for item in items:
        yield item
        done += 1
        if time.monotonic() - last >= every_s:
            last = time.monotonic()
            log.info("%s: %d/%s", description, done, total if total is not None else "?")
    log.info("%s: %d done", description, done)
