"""Ray's own log output goes to a file, not to the terminal (``hero -v`` shows it there too).

Ray writes to a driver's terminal from two places:

- Python loggers (``ray``, ``ray.data``): the token-authentication notice, Ray Data's execution
  plan and "finished" lines, its "progress bars disabled" hint. Their terminal handlers are
  taken off and one file handler is put on instead.
- Ray's C++ core worker inside the driver process, which prints its ERROR lines to file
  descriptor 2 (``core_worker.cc``'s warning about actor constructor arguments, say; see
  docs/pipeline.md, "Worker restarts", for why that one is harmless here). While Ray runs, fd 2
  points at the log file and ``sys.stderr`` at a copy of the terminal, so our own lines, click's
  errors and tracebacks still reach the terminal.

The log file is ``<output>/logs/ray-<time>-<pid>.log`` for a local output. For an object-store
output (``s3://...``) it is written to the local cache folder (``$HERO_CACHE_DIR/logs/``) and
copied to ``<output>/logs/`` through :mod:`hero_data.storage` when the command ends, whether it
succeeded or not.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from hero_data.storage import Storage, is_url, open_storage

log = logging.getLogger(__name__)

LOG_DIR = "logs"
"""Folder of the Ray log files, under the output folder."""

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class LogPlace:
    """Where a command's Ray log goes.

    Attributes:
        path: the local file written while the command runs.
        copy_to: the object it is copied to at the end (an object-store output), or ``None``.
    """

    path: Path
    copy_to: str | None = None

    def describe(self) -> str:
        """One line for the user: where to look."""
        if self.copy_to is None:
            return str(self.path)
        return f"{self.path} (copied to {self.copy_to} at the end)"


def log_place(output: str | os.PathLike[str], stem: str = "ray") -> LogPlace:
    """Where the Ray log of a command writing to ``output`` goes (see the module docstring)."""
    name = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    if not is_url(output):
        root = open_storage(os.fspath(output)).local_path("")
        return LogPlace(root / LOG_DIR / name)
    from hero_data.reader import verification_cache_dir

    storage = open_storage(os.fspath(output))
    key = hashlib.sha256(storage.url.encode("utf-8")).hexdigest()[:12]
    local = verification_cache_dir() / LOG_DIR / key / name
    return LogPlace(local, storage.uri(f"{LOG_DIR}/{name}"))


def _terminal_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """Handlers of ``logger`` that write to a stream rather than a file."""
    return [
        h
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


def _ray_loggers() -> list[logging.Logger]:
    """Ray's loggers that print on their own: ``ray`` and those under it that do not pass
    their records up to it (``ray.data``)."""
    found = [logging.getLogger("ray")]
    for name, logger in sorted(logging.root.manager.loggerDict.items()):
        if (
            name.startswith("ray.")
            and isinstance(logger, logging.Logger)
            and (not logger.propagate or logger.handlers)
        ):
            found.append(logger)
    return found


class RayLogs:
    """While open, Ray's log lines go to ``place.path`` (and, unless ``verbose``, not to the
    terminal). Import Ray's modules before opening it: ``ray.data`` sets its loggers up when
    it is imported."""

    def __init__(self, place: LogPlace, *, verbose: bool = False) -> None:
        self.place = place
        self.verbose = verbose
        self._file: logging.FileHandler | None = None
        self._taken: list[tuple[logging.Logger, logging.Handler]] = []
        self._loggers: list[logging.Logger] = []
        self._saved_fd: int | None = None
        self._saved_stderr: io.TextIOBase | None = None
        self._moved: list[logging.StreamHandler] = []

    def __enter__(self) -> RayLogs:
        self.place.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = logging.FileHandler(self.place.path, encoding="utf-8")
        self._file.setFormatter(logging.Formatter(_FORMAT))
        # what would have reached the terminal; Ray Data's DEBUG lines stay in Ray's own
        # session folder (the log names it)
        self._file.setLevel(logging.INFO)
        for logger in _ray_loggers():
            logger.addHandler(self._file)
            self._loggers.append(logger)
            if not self.verbose:
                for handler in _terminal_handlers(logger):
                    logger.removeHandler(handler)
                    self._taken.append((logger, handler))
        if not self.verbose:
            self._redirect_fd2()
        return self

    def _redirect_fd2(self) -> None:
        """Point fd 2 (where native code writes) at the log file, and ``sys.stderr`` (where our
        own lines go) at a copy of what fd 2 was. Only for a real stderr on fd 2."""
        try:
            if sys.stderr is None or sys.stderr.fileno() != 2:
                return
        except (AttributeError, OSError, ValueError):  # a replaced stderr (a test runner's)
            return
        sys.stderr.flush()
        self._saved_fd = os.dup(2)
        terminal = open(  # noqa: SIM115 - closed in __exit__
            os.dup(self._saved_fd), "w", buffering=1, encoding="utf-8", errors="replace"
        )
        with open(self.place.path, "ab") as f:
            os.dup2(f.fileno(), 2)
        self._saved_stderr = sys.stderr
        sys.stderr = terminal
        for handler in _all_handlers():  # the CLI's log handler holds the old stderr object
            if getattr(handler, "stream", None) is self._saved_stderr:
                handler.setStream(terminal)
                self._moved.append(handler)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._saved_fd is not None and self._saved_stderr is not None:
            terminal = sys.stderr
            terminal.flush()
            os.dup2(self._saved_fd, 2)
            os.close(self._saved_fd)
            sys.stderr = self._saved_stderr
            for handler in self._moved:
                handler.setStream(self._saved_stderr)
            terminal.close()
            self._saved_fd = None
        for logger, handler in self._taken:
            logger.addHandler(handler)
        if self._file is not None:
            for logger in self._loggers:
                logger.removeHandler(self._file)
            self._file.close()
            self._file = None
        if self.place.copy_to is not None:
            _copy_out(self.place)


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger()] + [
        x for x in logging.root.manager.loggerDict.values() if isinstance(x, logging.Logger)
    ]
    return [h for logger in loggers for h in logger.handlers]


def _copy_out(place: LogPlace) -> None:
    assert place.copy_to is not None
    root, _, rel = place.copy_to.rpartition(f"/{LOG_DIR}/")
    storage: Storage = open_storage(root)
    try:
        storage.copy_in(place.path, f"{LOG_DIR}/{rel}")
    except Exception as e:  # the command's own outcome matters more than its log's copy
        log.warning("could not copy the Ray log to %s: %s", place.copy_to, e)


def ray_logs(output: str | os.PathLike[str], *, verbose: bool, stem: str = "ray") -> RayLogs:
    """A :class:`RayLogs` for a command writing to ``output``, with Ray's modules imported
    first so that their loggers exist when it opens."""
    import ray  # the "ray" logger
    import ray.data  # noqa: F401 - sets up the "ray.data" logger

    return RayLogs(log_place(output, stem), verbose=verbose)


def stop_ray() -> None:
    """Disconnect from Ray (and stop a local instance) while its output still goes to the log:
    Ray's shutdown at interpreter exit would print on the terminal."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
