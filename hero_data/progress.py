"""The one progress helper: bars on a terminal, periodic log lines elsewhere.

``track(items, "what")`` wraps one loop. ``Progress()`` is a context manager for several bars at
once (say, overall and per video): ``bar = p.add("video 3", total=40)``, ``p.advance(bar)``.
Off a terminal (CI, log files) both log ``what: done/total`` at most every ``every_s`` seconds
and once at the end, so long jobs still show they are alive.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("hero.progress")


class Progress:
    """Several progress bars in one display (rich on a terminal, log lines otherwise)."""

    def __init__(self, every_s: float = 10.0, force_terminal: bool | None = None) -> None:
        self.every_s = every_s
        self._tty = sys.stderr.isatty() if force_terminal is None else force_terminal
        self._rich: Any = None
        self._tasks: dict[int, dict[str, Any]] = {}
        self._next = 0

    def __enter__(self) -> Progress:
        if self._tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._rich.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._rich is not None:
            self._rich.__exit__(exc_type, exc, tb)
            self._rich = None

    def add(self, description: str, total: int | None = None) -> int:
        """A new bar; returns its handle."""
        handle = self._next
        self._next += 1
        task = {"description": description, "total": total, "done": 0, "last": time.monotonic()}
        if self._rich is not None:
            task["rich"] = self._rich.add_task(description, total=total)
        self._tasks[handle] = task
        return handle

    def advance(self, handle: int, n: int = 1) -> None:
        """Count ``n`` more items done on bar ``handle``."""
        task = self._tasks[handle]
        task["done"] += n
        if self._rich is not None:
            self._rich.advance(task["rich"], n)
        elif time.monotonic() - task["last"] >= self.every_s:
            task["last"] = time.monotonic()
            total = task["total"] if task["total"] is not None else "?"
            log.info("%s: %d/%s", task["description"], task["done"], total)

    def update_total(self, handle: int, total: int) -> None:
        """Change bar ``handle``'s total (e.g. once the real number of steps is known)."""
        task = self._tasks[handle]
        task["total"] = total
        if self._rich is not None:
            self._rich.update(task["rich"], total=total)

    def describe(self, handle: int, text: str) -> None:
        """Change bar ``handle``'s description (e.g. to show running losses)."""
        task = self._tasks[handle]
        task["description"] = text
        if self._rich is not None:
            self._rich.update(task["rich"], description=text)

    def done(self, handle: int) -> None:
        """Close bar ``handle`` (logs its final count off a terminal)."""
        task = self._tasks.pop(handle)
        if self._rich is not None:
            self._rich.remove_task(task["rich"])
        else:
            log.info("%s: %d done", task["description"], task["done"])


def track(
    items: Iterable[T], description: str, total: int | None = None, every_s: float = 10.0
) -> Iterator[T]:
    """Yield ``items``, showing one progress bar for them."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(every_s=every_s) as progress:
        bar = progress.add(description, total)
        for item in items:
            yield item
            progress.advance(bar)
        progress.done(bar)
