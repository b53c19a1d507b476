"""The one progress helper: live bars on a terminal, a log line every few seconds elsewhere.

``track(items, "what")`` wraps one loop. ``Progress()`` is a context manager for several bars at
once (say, overall and per video): ``bar = p.add("video 3", total=40, unit="steps")``,
``p.advance(bar)``. Each bar shows, in its own unit, done/total, the rate, the elapsed time and
an ETA (from the bar's own rate, or the caller's ``eta_s`` when it knows better). A ``plain``
bar shows its description alone: its owner writes every figure into it (``hero run``'s view,
whose ETA counts video seconds: :class:`pipelines.run.RunMonitor`).

Off a terminal (a pipe, CI, a log file) the same figures go to the ``hero.progress`` logger at
most every ``every_s`` seconds per bar, and once when the bar is done, so long jobs still show
they are alive: ``train mlm 1.23: 40/100 steps · 2.10 steps/s · ETA 0:00:28``.
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

_UNSET: Any = object()


def clock(seconds: float | None) -> str:
    """``h:mm:ss`` of ``seconds`` (``-:--:--`` when unknown)."""
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN or negative
        return "-:--:--"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _number(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


class Progress:
    """Several progress bars in one display (rich on a terminal, log lines otherwise)."""

    def __init__(self, every_s: float = 10.0, force_terminal: bool | None = None) -> None:
        self.every_s = every_s
        self._tty = sys.stderr.isatty() if force_terminal is None else force_terminal
        self._rich: Any = None
        self._moved: list[tuple[Any, Any]] = []
        self._tasks: dict[int, dict[str, Any]] = {}
        self._next = 0

    def __enter__(self) -> Progress:
        if self._tty:
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as RichProgress

            before = sys.stderr
            self._rich = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                _figures_column_for(self),
                transient=True,
            )
            self._rich.__enter__()
            # Log lines written while the bars are live go through rich's stand-in for stderr,
            # which prints them above the bars instead of through them.
            for handler in logging.getLogger().handlers:
                if getattr(handler, "stream", None) is before and sys.stderr is not before:
                    handler.setStream(sys.stderr)
                    self._moved.append((handler, before))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handler, stream in self._moved:
            handler.setStream(stream)
        self._moved = []
        if self._rich is not None:
            self._rich.__exit__(exc_type, exc, tb)
            self._rich = None

    def add(
        self,
        description: str,
        total: float | None = None,
        *,
        unit: str = "",
        plain: bool = False,
        done: float = 0,
    ) -> int:
        """A new bar counting ``unit`` (e.g. "steps"); returns its handle. ``done``: units
        already done before (a resumed run; the rate counts only what is done from now on). A
        ``plain`` bar shows only its description (and the bar itself on a terminal)."""
        handle = self._next
        self._next += 1
        now = time.monotonic()
        task = {
            "description": description,
            "total": total,
            "done": done,
            "initial": done,
            "unit": unit,
            "plain": plain,
            "eta_s": _UNSET,
            "started": now,
            "last": now,
        }
        if self._rich is not None:
            task["rich"] = self._rich.add_task(
                description, total=total, completed=done, handle=handle
            )
        self._tasks[handle] = task
        return handle

    def advance(self, handle: int, n: float = 1) -> None:
        """Count ``n`` more units done on bar ``handle``."""
        self.update(handle, done=self._tasks[handle]["done"] + n)

    def update(
        self,
        handle: int,
        *,
        done: float | None = None,
        total: float | None = None,
        description: str | None = None,
        eta_s: float | None = _UNSET,
    ) -> None:
        """Set any of bar ``handle``'s figures; ``eta_s`` replaces the bar's own estimate (None:
        unknown). Off a terminal, logs the bar's line when ``every_s`` has passed since the last
        one, so calling this regularly keeps a quiet job's log alive."""
        task = self._tasks[handle]
        if done is not None:
            task["done"] = done
        if total is not None:
            task["total"] = total
        if description is not None:
            task["description"] = description
        if eta_s is not _UNSET:
            task["eta_s"] = eta_s
        if self._rich is not None:
            self._rich.update(
                task["rich"],
                completed=task["done"],
                total=task["total"],
                description=task["description"],
            )
        elif time.monotonic() - task["last"] >= self.every_s:
            task["last"] = time.monotonic()
            log.info("%s", self.line(handle))

    def update_total(self, handle: int, total: float) -> None:
        """Change bar ``handle``'s total (e.g. once the real number of steps is known)."""
        self.update(handle, total=total)

    def describe(self, handle: int, text: str) -> None:
        """Change bar ``handle``'s description (e.g. to show running losses)."""
        self.update(handle, description=text)

    def figures(self, handle: int) -> dict[str, Any]:
        """Bar ``handle``'s figures: done, total, unit, elapsed_s, rate (units per second) and
        eta_s (the caller's, else from the rate; None when unknown)."""
        return _figures(self._tasks[handle])

    def line(self, handle: int) -> str:
        """Bar ``handle`` as one line of text (what is logged off a terminal)."""
        task = self._tasks[handle]
        if task["plain"]:
            return task["description"]
        f = self.figures(handle)
        return f"{f['description']}: {_counts(f)}{_rate_eta(f)}"

    def done(self, handle: int) -> None:
        """Close bar ``handle`` (logs its final count off a terminal)."""
        f = self.figures(handle)
        task = self._tasks.pop(handle)
        if self._rich is not None:
            self._rich.remove_task(task["rich"])
        elif task["plain"]:
            log.info("%s", task["description"])
        else:
            unit = f" {f['unit']}" if f["unit"] else ""
            log.info(
                "%s: %s%s done in %s", f["description"], _number(f["done"]), unit,
                clock(f["elapsed_s"]),
            )  # fmt: skip


def _figures(task: dict[str, Any]) -> dict[str, Any]:
    elapsed = time.monotonic() - task["started"]
    now_done = task["done"] - task["initial"]
    rate = now_done / elapsed if elapsed > 0 and now_done > 0 else None
    eta = task["eta_s"]
    if eta is _UNSET:
        eta = None
        if rate and task["total"] is not None:
            eta = max(task["total"] - task["done"], 0) / rate
    return {
        "description": task["description"],
        "done": task["done"],
        "total": task["total"],
        "unit": task["unit"],
        "elapsed_s": elapsed,
        "rate": rate,
        "eta_s": eta,
    }


def _counts(f: dict[str, Any]) -> str:
    total = "?" if f["total"] is None else _number(f["total"])
    unit = f" {f['unit']}" if f["unit"] else ""
    return f"{_number(f['done'])}/{total}{unit}"


def _rate_eta(f: dict[str, Any]) -> str:
    out = ""
    if f["rate"]:
        per = f"{f['unit']}/s" if f["unit"] else "/s"
        out += f" · {f['rate']:.2f} {per}"
    if f["total"] is not None or f["eta_s"] is not None:
        out += f" · ETA {clock(f['eta_s'])}"
    return out


def _figures_column() -> type:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Figures(ProgressColumn):
        """done/total unit · rate · elapsed · ETA of a bar (empty for a plain bar)."""

        def __init__(self, owner: Progress) -> None:
            super().__init__()
            self.owner = owner

        def render(self, task: Any) -> Text:
            ours = self.owner._tasks.get(task.fields.get("handle"))
            if ours is None or ours["plain"]:
                return Text("")
            f = _figures(ours)
            return Text(f"{_counts(f)}{_rate_eta(f)} · {clock(f['elapsed_s'])}", style="cyan")

    return Figures


def _figures_column_for(owner: Progress) -> Any:
    """The figures column (rich is imported only when a terminal shows the bars)."""
    return _figures_column()(owner)


def track(
    items: Iterable[T],
    description: str,
    total: int | None = None,
    every_s: float = 10.0,
    unit: str = "",
) -> Iterator[T]:
    """Yield ``items``, showing one progress bar for them."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(every_s=every_s) as progress:
        bar = progress.add(description, total, unit=unit)
        for item in items:
            yield item
            progress.advance(bar)
        progress.done(bar)
