"""The one filesystem seam: every byte a dataset reads or writes goes through a :class:`Storage`.

A dataset root is a local path or an fsspec URL (``s3://bucket/prefix``, ``gs://bucket/prefix``,
any S3-compatible store through ``s3://`` and ``AWS_ENDPOINT_URL``). Both kinds offer the same
operations, which are all a dataset needs:

- ``read_bytes`` / ``put`` (replace a small object atomically) / ``create`` (write a small object
  only if it is absent: the atomic step of every commit) / ``delete`` / ``list_dir``;
- ``upload`` (a finished local file becomes an object) and ``download`` (an object becomes a
  local file), for shards;
- ``open_input``: a random-access pyarrow file, so a reader can fetch only the byte ranges it
  needs.

Local datasets use the operating system directly: ``create`` writes a temporary file, fsyncs
it and hard-links it into place (``link`` fails if the name exists, and the object appears
whole); ``put`` renames over the old file; reads are memory-mapped. Remote datasets use fsspec
(``s3fs``, ``gcsfs``; the ``cloud`` extra): ``create`` is ``open(..., "xb")``, which both send
as a conditional write (S3 ``If-None-Match: *``, GCS ``ifGenerationMatch=0``). Credentials,
region and endpoint come from each library's standard chain (``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID`` or a profile; ``GOOGLE_APPLICATION_CREDENTIALS``);
nothing here reads them itself.

Faults. Remote operations are retried with exponential backoff when the error is transient (a
5xx, a dropped connection, a timeout: :func:`is_transient`), on top of the libraries' own
retries; anything else (a missing bucket, a refused credential, a full disk) fails at once. What
is still failing after the retries is a :class:`StorageError` naming the object and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from hero_data.errors import DatasetError

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRIES = 6
"""Tries of one remote operation when its errors are transient (``$HERO_STORAGE_RETRIES``)."""

BACKOFF_S = 0.25
"""First wait between tries, seconds; it doubles each time (with jitter), up to
:data:`MAX_BACKOFF_S`."""

MAX_BACKOFF_S = 8.0

RETRIES_ENV = "HERO_STORAGE_RETRIES"
BACKOFF_ENV = "HERO_STORAGE_BACKOFF_S"

_PERSISTENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENAMETOOLONG,
    errno.ENOENT,
    errno.EEXIST,
    errno.EISDIR,
    errno.ENOTDIR,
}
_PERSISTENT_TYPES = (
    FileNotFoundError,
    PermissionError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
)
_TRANSIENT_MODULES = ("aiohttp", "botocore", "aiobotocore", "urllib3", "requests", "google")


class StorageError(DatasetError):
    """A storage operation that failed for good (after retries, when it was worth retrying).

    Its message names the object (``s3://bucket/data/_commits/x.json: ...``) and the cause.
    """


def is_transient(error: BaseException) -> bool:
    """Whether retrying ``error`` can help: timeouts, dropped connections and server errors
    can; missing objects, refused permissions, a full or read-only disk cannot."""
    if isinstance(error, _PERSISTENT_TYPES):
        return False
    if isinstance(error, OSError) and error.errno in _PERSISTENT_ERRNOS:
        return False
    if isinstance(error, (ConnectionError, TimeoutError, OSError)):
        return True
    return type(error).__module__.split(".")[0] in _TRANSIENT_MODULES


def describe_error(error: BaseException) -> str:
    """One line for a storage error, saying plainly when the disk is full."""
    text = str(error) or type(error).__name__
    full = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
    if full or "No space left on device" in text:
        return f"no space left on the device ({text})"
    return f"{type(error).__name__}: {text}"


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    """Hex sha256 of a local file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One object in a listing: its name (no folder), size in bytes, modification time (Unix
    seconds, or ``None`` when the store does not say)."""

    name: str
    size: int
    mtime: float | None


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is a URL (``scheme://...``) other than ``file://``."""
    text = os.fspath(location)
    return "://" in text and not text.startswith("file://")


class Storage:
    """A folder (local) or prefix (object store) that holds one dataset.

    Paths given to the methods are relative to the root and use ``/``. Use :func:`open_storage`.
    """

    url: str
    """The root as given (no trailing ``/``); messages name objects under it."""

    is_local: bool

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") or url

    def uri(self, rel: str) -> str:
        """The full location of ``rel``, for messages and for other tools."""
        return f"{self.url}/{rel}" if rel else self.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # travels to Ray workers as its URL
        return (open_storage, (self.url,))

    # -- the operations (each implementation provides them) ----------------------------------

    def read_bytes(self, rel: str) -> bytes:
        """The object's bytes; ``FileNotFoundError`` if it is absent."""
        raise NotImplementedError

    def put(self, rel: str, data: bytes) -> None:
        """Create or replace the object atomically: readers see the old bytes or the new."""
        raise NotImplementedError

    def create(self, rel: str, data: bytes) -> bool:
        """Create the object only if no object has that name: ``True`` if this call created it,
        ``False`` if one existed (it is left as it was). Readers never see it half-written."""
        raise NotImplementedError

    def delete(self, rel: str) -> None:
        """Remove the object; absent is fine."""
        raise NotImplementedError

    def list_dir(self, rel: str) -> list[Entry]:
        """The objects directly under folder ``rel``, sorted by name; ``[]`` if there is none."""
        raise NotImplementedError

    def exists(self, rel: str) -> bool:
        raise NotImplementedError

    def size(self, rel: str) -> int:
        """The object's size in bytes; ``FileNotFoundError`` if it is absent."""
        raise NotImplementedError

    def upload(self, local: str | os.PathLike[str], rel: str) -> None:
        """Make a finished local file the object ``rel`` (it appears whole or not at all).
        A local storage moves the file (it is a scratch file beside its place)."""
        raise NotImplementedError

    def copy_in(self, local: str | os.PathLike[str], rel: str) -> None:
        """Copy a local file to the object ``rel`` (appears whole); ``local`` stays."""
        raise NotImplementedError

    def download(self, rel: str, local: str | os.PathLike[str]) -> str:
        """Copy the object to the local file ``local``; returns the sha256 of its bytes."""
        raise NotImplementedError

    def open_input(self, rel: str) -> pa.NativeFile:
        """A random-access pyarrow file of the object (memory-mapped when local)."""
        raise NotImplementedError

    def remove_tree(self, rel: str) -> None:
        """Remove folder ``rel`` and everything under it; absent is fine."""
        raise NotImplementedError

    def local_path(self, rel: str) -> Path:
        """The local file of ``rel`` (local storage only)."""
        raise TypeError(f"{self.url} is not on the local file system")

    # -- shared helpers --------------------------------------------------------------------

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def read_optional(self, rel: str) -> bytes | None:
        """The object's bytes, or ``None`` if it is absent."""
        try:
            return self.read_bytes(rel)
        except FileNotFoundError:
            return None


# -- local -------------------------------------------------------------------------------------


class LocalStorage(Storage):
    """A dataset folder on the local file system (or a mounted one)."""

    is_local = True

    def __init__(self, url: str) -> None:
        path = url[len("file://") :] if url.startswith("file://") else url
        super().__init__(os.fspath(path))
        self.root = Path(path)

    def local_path(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def _fail(self, rel: str, action: str, error: BaseException) -> StorageError:
        return StorageError(self.uri(rel), f"cannot {action}: {describe_error(error)}")

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self.local_path(rel).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(self.uri(rel)) from None
        except OSError as e:
            raise self._fail(rel, "read", e) from None

    def _temp_beside(self, path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    def put(self, rel: str, data: bytes) -> None:
        path = self.local_path(rel)
        try:
            tmp = self._temp_beside(path, data)
            try:
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            fsync_dir(path.parent)
        except OSError as e:
            raise self._fail(rel, "write", e) from None

    def create(self, rel: str, data: bytes) -> bool:
        path = self.local_path(rel)
        try:
            tmp = self._temp_beside(path, data)
            try:
                os.link(tmp, path)  # fails if the name exists; the file is already whole
                created = True
            except FileExistsError:
                created = False
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if created:
                fsync_dir(path.parent)
            return created
        except OSError as e:
            raise self._fail(rel, "create", e) from None

    def delete(self, rel: str) -> None:
        try:
            self.local_path(rel).unlink(missing_ok=True)
        except OSError as e:
            raise self._fail(rel, "delete", e) from None

    def list_dir(self, rel: str) -> list[Entry]:
        out = []
        try:
            with os.scandir(self.local_path(rel)) as it:
                for item in it:
                    try:
                        if not item.is_file(follow_symlinks=False):
                            continue
                        st = item.stat(follow_symlinks=False)
                    except FileNotFoundError:  # removed while listing
                        continue
                    out.append(Entry(item.name, st.st_size, st.st_mtime))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as e:
            raise self._fail(rel, "list", e) from None
        return sorted(out, key=lambda e: e.name)

    def exists(self, rel: str) -> bool:
        return self.local_path(rel).exists()

    def size(self, rel: str) -> int:
        try:
            return self.local_path(rel).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(self.uri(rel)) from None

    def upload(self, local: str | os.PathLike[str], rel: str) -> None:
        """Rename ``local`` (a file on the same file system, fsynced) into place."""
        path = self.local_path(rel)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(local, path)
            fsync_dir(path.parent)
        except OSError as e:
            raise self._fail(rel, "write", e) from None

    def copy_in(self, local: str | os.PathLike[str], rel: str) -> None:
        import shutil

        path = self.local_path(rel)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            try:
                shutil.copyfile(local, tmp)
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        except OSError as e:
            raise self._fail(rel, "write", e) from None

    def download(self, rel: str, local: str | os.PathLike[str]) -> str:
        import shutil

        try:
            shutil.copyfile(self.local_path(rel), local)
        except FileNotFoundError:
            raise FileNotFoundError(self.uri(rel)) from None
        return sha256_file(local)

    def open_input(self, rel: str) -> pa.NativeFile:
        return pa.memory_map(str(self.local_path(rel)), "r")

    def remove_tree(self, rel: str) -> None:
        import shutil

        shutil.rmtree(self.local_path(rel), ignore_errors=True)


# -- fsspec (object stores) ------------------------------------------------------------------


class FsspecStorage(Storage):
    """A dataset under an fsspec URL: ``s3://``, ``gs://``, or any other fsspec protocol whose
    ``open(..., "xb")`` creates only if absent."""

    is_local = False

    def __init__(
        self,
        url: str,
        *,
        retries: int | None = None,
        backoff_s: float | None = None,
        fs: Any = None,
    ) -> None:
        super().__init__(url)
        if retries is None:
            retries = _env_number(RETRIES_ENV, RETRIES, int)
        if backoff_s is None:
            backoff_s = _env_number(BACKOFF_ENV, BACKOFF_S, float)
        self.retries = max(1, int(retries))
        self.backoff_s = max(0.0, float(backoff_s))
        self._fs = fs
        self._root: str | None = None

    @property
    def fs(self) -> Any:
        if self._fs is None:
            from fsspec.core import url_to_fs

            try:
                # No listing cache: commit records and leases are listed to see what others did.
                self._fs, self._root = url_to_fs(self.url, use_listings_cache=False)
            except ImportError as e:  # fsspec names the package to install
                raise StorageError(
                    self.url, f"{e} (pip install 'hero-toolkit[cloud]' installs s3fs and gcsfs)"
                ) from None
        return self._fs

    @property
    def root(self) -> str:
        if self._root is None:
            from fsspec.core import url_to_fs

            if self._fs is None:
                _ = self.fs
            else:
                _, self._root = url_to_fs(self.url)
        assert self._root is not None
        return self._root

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _retry(self, rel: str, action: str, op: Callable[[], T]) -> T:
        """``op()``, tried again with backoff while it fails transiently."""
        delay = self.backoff_s
        for attempt in range(1, self.retries + 1):
            try:
                return op()
            except FileNotFoundError as e:
                if action in ("read", "look up", "download", "open"):
                    raise  # the object is absent: the caller decides what that means
                raise StorageError(  # writing: the bucket or its prefix is not there
                    self.uri(rel), f"cannot {action}: {describe_error(e)} (no such bucket?)"
                ) from e
            except FileExistsError:
                raise
            except Exception as e:
                if not is_transient(e):
                    raise StorageError(
                        self.uri(rel), f"cannot {action}: {describe_error(e)}"
                    ) from e
                if attempt == self.retries:
                    raise StorageError(
                        self.uri(rel),
                        f"cannot {action} after {attempt} tries: {describe_error(e)}",
                    ) from e
                log.warning(
                    "%s: %s failed (%s); trying again in %.1f s",
                    self.uri(rel),
                    action,
                    describe_error(e),
                    delay,
                )
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, MAX_BACKOFF_S)
        raise AssertionError("unreachable")

    def read_bytes(self, rel: str) -> bytes:
        def op() -> bytes:
            try:
                return self.fs.cat_file(self._path(rel))
            except FileNotFoundError:
                raise FileNotFoundError(self.uri(rel)) from None

        return self._retry(rel, "read", op)

    def put(self, rel: str, data: bytes) -> None:
        self._retry(rel, "write", lambda: self.fs.pipe_file(self._path(rel), data))

    def create(self, rel: str, data: bytes) -> bool:
        def op() -> bool:
            try:
                with self.fs.open(self._path(rel), "xb") as f:
                    f.write(data)
            except FileExistsError:
                return False
            except (ValueError, NotImplementedError) as e:
                if "mode" not in str(e).lower():
                    raise
                raise StorageError(
                    self.uri(rel),
                    f"{type(self.fs).__name__} cannot create an object only if it is absent "
                    f"({e}); commits need that (s3:// and gs:// support it)",
                ) from None
            return True

        return self._retry(rel, "create", op)

    def delete(self, rel: str) -> None:
        def op() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self._path(rel))

        self._retry(rel, "delete", op)

    def list_dir(self, rel: str) -> list[Entry]:
        def op() -> list[Entry]:
            try:
                items = self.fs.ls(self._path(rel), detail=True, refresh=True)
            except FileNotFoundError:
                return []
            out = []
            for item in items:
                if item.get("type") != "file":
                    continue
                name = item["name"].rstrip("/").rsplit("/", 1)[-1]
                out.append(Entry(name, int(item.get("size") or 0), _mtime(item)))
            return sorted(out, key=lambda e: e.name)

        return self._retry(rel, "list", op)

    def exists(self, rel: str) -> bool:
        return self._retry(rel, "look up", lambda: bool(self.fs.exists(self._path(rel))))

    def size(self, rel: str) -> int:
        def op() -> int:
            try:
                return int(self.fs.info(self._path(rel))["size"])
            except FileNotFoundError:
                raise FileNotFoundError(self.uri(rel)) from None

        return self._retry(rel, "look up", op)

    def upload(self, local: str | os.PathLike[str], rel: str) -> None:
        # One PUT (multipart for big files): the object appears only when the upload completes.
        self._retry(rel, "upload", lambda: self.fs.put_file(os.fspath(local), self._path(rel)))

    def copy_in(self, local: str | os.PathLike[str], rel: str) -> None:
        self.upload(local, rel)

    def download(self, rel: str, local: str | os.PathLike[str]) -> str:
        def op() -> str:
            h = hashlib.sha256()
            try:
                with self.fs.open(self._path(rel), "rb", block_size=8 << 20) as src:
                    with open(local, "wb") as out:
                        while block := src.read(8 << 20):
                            h.update(block)
                            out.write(block)
            except FileNotFoundError:
                raise FileNotFoundError(self.uri(rel)) from None
            return h.hexdigest()

        return self._retry(rel, "download", op)

    def open_input(self, rel: str) -> pa.NativeFile:
        # No read-ahead cache: pyarrow asks for exactly the ranges it needs (the footer, then
        # the buffers of the columns a reader selected).
        def op() -> pa.NativeFile:
            try:
                f = self.fs.open(self._path(rel), "rb", cache_type="none")
            except FileNotFoundError:
                raise FileNotFoundError(self.uri(rel)) from None
            return pa.PythonFile(f, mode="r")

        return self._retry(rel, "open", op)

    def remove_tree(self, rel: str) -> None:
        def op() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(self._path(rel), recursive=True)

        self._retry(rel, "remove", op)


def _env_number(name: str, default: float, kind: type) -> Any:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise StorageError(f"${name}", f"must be a number, got {raw!r}") from None


def _mtime(item: dict[str, Any]) -> float | None:
    for key in ("LastModified", "updated", "mtime", "last_modified", "created"):
        value = item.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        if isinstance(value, str):
            from datetime import datetime

            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def canonical_location(location: str | os.PathLike[str]) -> str:
    """One spelling per dataset: a URL without its trailing ``/``, a local path resolved."""
    text = os.fspath(location)
    return text.rstrip("/") if is_url(text) else str(Path(text).resolve())


_OPEN: dict[str, Storage] = {}


def open_storage(location: str | os.PathLike[str] | Storage) -> Storage:
    """The :class:`Storage` of a local path or an fsspec URL (one instance per location and
    process)."""
    if isinstance(location, Storage):
        return location
    key = os.fspath(location)
    found = _OPEN.get(key)
    if found is None:
        found = FsspecStorage(key) if is_url(key) else LocalStorage(key)
        _OPEN[key] = found
    return found


@contextlib.contextmanager
def local_scratch(storage: Storage, name: str) -> Iterator[Path]:
    """A scratch file path for building an object before it is uploaded: beside its final
    place for local storage (so ``upload`` is a rename), in the system's temp folder otherwise.
    The file is removed afterwards if it is still there."""
    if storage.is_local:
        folder = storage.local_path(os.path.dirname(name))
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(tempfile.gettempdir())
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(name)}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
