"""The run lease: one run (or one standalone writer) per dataset at a time, on any storage.

A lease is a sequence of small immutable objects, ``_lease/<epoch>.json``, each created only if
absent (the same atomic step as a commit record). The newest epoch says who holds the dataset
and until when. Taking the lease, renewing it and handing it back all create the next epoch, so
two runs that race for it cannot both win: one creation fails, and the loser reads who won.

A holder that dies simply stops renewing: its lease expires ``ttl_s`` seconds after the last
renewal. On the machine that holds it, a lease whose process is gone (``kill -9``, a reboot)
counts as free at once, so re-running a killed command resumes without waiting. Expiry compares
wall clocks across machines: they must agree to well within ``ttl_s`` (NTP does).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from hero_data.errors import DatasetError
from hero_data.manifest import LEASE_DIR, now_iso
from hero_data.storage import Storage, StorageError, open_storage

log = logging.getLogger(__name__)

TTL_S = 120.0
"""Seconds a lease lasts without renewal."""

_KEEP_EPOCHS = 3
_ACQUIRE_TRIES = 20


class LeaseHeldError(DatasetError):
    """Another live run (or writer) holds the dataset."""


class LeaseLostError(DatasetError):
    """This run's lease was taken over (it had expired: the run was stalled too long)."""


def _process_start(pid: int) -> str | None:
    """Start time of process ``pid`` (clock ticks since boot), or ``None`` if there is none:
    with the pid, it identifies one process even after pids are reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive_here(pid: int, start: str | None) -> bool:
    if not os.path.exists("/proc/self/stat"):  # no /proc: trust the expiry alone
        return True
    found = _process_start(pid)
    return found is not None and (start is None or found == start)


@dataclass(frozen=True)
class Holder:
    """The contents of one lease epoch."""

    epoch: int
    run: str
    host: str
    pid: int
    pid_start: str | None
    expires: float  # Unix seconds
    released: bool
    command: str

    def live(self, now: float | None = None) -> bool:
        """Held: not released, not expired, and (on this machine) its process still runs."""
        if self.released or self.expires <= (time.time() if now is None else now):
            return False
        if self.host == socket.gethostname():
            return _alive_here(self.pid, self.pid_start)
        return True

    def describe(self) -> str:
        until = time.strftime("%H:%M:%S UTC", time.gmtime(self.expires))
        return (
            f"run {self.run[:12]} ({self.command}, pid {self.pid} on {self.host}; "
            f"lease until {until})"
        )

    @classmethod
    def parse(cls, data: bytes, epoch: int) -> Holder:
        obj: dict[str, Any] = json.loads(data.decode("utf-8"))
        return cls(
            epoch=epoch,
            run=str(obj["run"]),
            host=str(obj["host"]),
            pid=int(obj["pid"]),
            pid_start=obj.get("pid_start"),
            expires=float(obj["expires"]),
            released=bool(obj.get("released", False)),
            command=str(obj.get("command", "?")),
        )


def _name(epoch: int) -> str:
    return f"{LEASE_DIR}/{epoch:012d}.json"


def _epochs(storage: Storage) -> list[int]:
    out = []
    for entry in storage.list_dir(LEASE_DIR):
        stem = entry.name.removesuffix(".json")
        if entry.name.endswith(".json") and stem.isdigit():
            out.append(int(stem))
    return sorted(out)


def current_holder(root: str | Storage) -> Holder | None:
    """The newest lease epoch of a dataset, or ``None`` when it was never leased."""
    storage = open_storage(root)
    for _ in range(_ACQUIRE_TRIES):
        epochs = _epochs(storage)
        if not epochs:
            return None
        data = storage.read_optional(_name(epochs[-1]))
        if data is None:
            continue  # pruned meanwhile: list again
        try:
            return Holder.parse(data, epochs[-1])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise DatasetError(storage.uri(_name(epochs[-1])), f"malformed lease ({e})") from None
    return None


class Lease:
    """The lease of one run on one dataset. Use :meth:`acquire`; :meth:`release` when done.

    :meth:`start_renewing` keeps it alive from a background thread; :meth:`check` raises
    :class:`LeaseLostError` in the holder's thread if renewing failed.
    """

    def __init__(self, storage: Storage, run: str, command: str, ttl_s: float) -> None:
        self.storage = storage
        self.run = run
        self.command = command
        self.ttl_s = ttl_s
        self.epoch = -1
        self.previous: Holder | None = None
        """The holder before this lease was taken (a dead or finished run), if any."""
        self._lost: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _body(self, *, released: bool = False) -> bytes:
        obj = {
            "run": self.run,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_start": _process_start(os.getpid()),
            "acquired": now_iso(),
            "expires": time.time() + (0.0 if released else self.ttl_s),
            "released": released,
            "command": self.command,
        }
        return json.dumps(obj).encode("utf-8")

    @classmethod
    def acquire(
        cls,
        root: str | Storage,
        run: str,
        *,
        command: str = "hero",
        ttl_s: float = TTL_S,
    ) -> Lease:
        """Take the dataset's lease, or raise :class:`LeaseHeldError` naming the live holder."""
        lease = cls(open_storage(root), run, command, ttl_s)
        storage = lease.storage
        for _ in range(_ACQUIRE_TRIES):
            holder = current_holder(storage)
            if holder is not None and holder.live() and holder.run != run:
                raise LeaseHeldError(
                    storage.uri(LEASE_DIR),
                    f"another run is writing this dataset: {holder.describe()}. One run per "
                    "dataset at a time; wait for it to finish (a dead run's lease expires by "
                    "itself)",
                )
            epoch = holder.epoch + 1 if holder is not None else 0
            if storage.create(_name(epoch), lease._body()):
                lease.epoch = epoch
                lease.previous = holder if holder is not None and holder.run != run else None
                lease._prune()
                log.debug("lease %s epoch %d taken by run %s", storage.url, epoch, run[:12])
                return lease
        raise LeaseHeldError(
            storage.uri(LEASE_DIR), "could not take the lease: too much contention"
        )

    def _prune(self) -> None:
        for epoch in _epochs(self.storage):
            if epoch <= self.epoch - _KEEP_EPOCHS:
                with contextlib.suppress(StorageError):
                    self.storage.delete(_name(epoch))

    def renew(self) -> None:
        """Extend the lease by ``ttl_s``; :class:`LeaseLostError` if another run took it."""
        with self._lock:
            if self._lost is not None:
                raise self._lost
            epoch = self.epoch + 1
            if self.storage.create(_name(epoch), self._body()):
                self.epoch = epoch
                self._prune()
                return
            holder = current_holder(self.storage)
            self._lost = LeaseLostError(
                self.storage.uri(LEASE_DIR),
                "this run's lease was taken over by "
                + (holder.describe() if holder else "another run")
                + "; stopping (was the run stalled longer than the lease lasts?)",
            )
            raise self._lost

    def start_renewing(self) -> None:
        """Renew every ``ttl_s / 4`` seconds from a daemon thread until :meth:`release`."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.ttl_s / 4):
                try:
                    self.renew()
                except LeaseLostError:
                    return
                except Exception as e:  # a storage hiccup: try again at the next tick
                    log.warning("renewing the lease of %s failed: %s", self.storage.url, e)

        self._thread = threading.Thread(target=loop, name="hero-lease", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise :class:`LeaseLostError` if the renewing thread found the lease taken."""
        if self._lost is not None:
            raise self._lost

    def release(self) -> None:
        """Hand the lease back: the next epoch says it is free."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            if self._lost is not None or self.epoch < 0:
                return
            try:
                if self.storage.create(_name(self.epoch + 1), self._body(released=True)):
                    self.epoch += 1
                    self._prune()
                    return
            except StorageError as e:  # a full disk, say: remove our epochs instead
                log.warning("could not hand back the lease of %s: %s", self.storage.url, e)
            self._forget_own_epochs()

    def _forget_own_epochs(self) -> None:
        """Delete this lease's epochs, newest first, so that the last one left is a previous
        holder's (or none): the dataset is free again."""
        for epoch in reversed(_epochs(self.storage)):
            data = self.storage.read_optional(_name(epoch))
            try:
                mine = data is not None and Holder.parse(data, epoch).run == self.run
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                mine = False
            if not mine:
                return
            with contextlib.suppress(StorageError):
                self.storage.delete(_name(epoch))
