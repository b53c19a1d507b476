"""The tensors of a TorchScript archive, read without running it.

OpenAI published CLIP's weights as TorchScript archives (``ViT-B-32.pt``, ``RN50x4.pt``):
zip files holding the model's code (``code/``), its module tree as a pickle (``data.pkl``)
and one record per storage (``data/<key>``). ``torch.jit.load`` compiles and keeps that code,
and ``torch.load(..., weights_only=True)`` refuses TorchScript archives, so we read
``data.pkl`` with an unpickler that resolves only what a module tree of tensors needs:

- ``__torch__.*`` classes (the scripted modules): an inert :class:`_Module` whose attributes
  are set from the pickled dict, never a class from the archive's code;
- ``torch._utils._rebuild_tensor_v2``: a tensor viewed out of a storage record;
- ``torch.<Type>Storage`` as the persistent id of a storage (its dtype);
- ``collections.OrderedDict`` and TorchScript's list and type-tag helpers (plain lists).

Any other global (a pickle naming code) is refused before anything is called. The result is
flattened into a state dict: each tensor attribute under its dotted path, as
``module.state_dict()`` names it.
"""

from __future__ import annotations

import collections
import io
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hero_data.errors import HeroError


class TorchScriptError(HeroError):
    """A file that is not a TorchScript archive of tensors we can read."""


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _Module:
    """A scripted module's pickled state: its attributes, nothing callable."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise TorchScriptError(f"a module's state is a {type(state).__name__}, not a dict")
        self.__dict__.update(state)


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _list(*args: Any) -> list[Any]:
    return list(args[0]) if args else []


def _restore_type_tag(value: Any, _type: str) -> Any:
    return value


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a zip archive with TorchScript code in it."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n for n in z.namelist())


def read_torchscript_state(path: str | Path) -> dict[str, Tensor]:
    """Every tensor attribute of the archive's module tree, by dotted name, on the CPU.

    Raises :class:`TorchScriptError`: not a zip, no ``data.pkl``, a global outside the list
    above, a storage record missing or too short.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise TorchScriptError(f"{path} is not a TorchScript archive ({e})") from e
    with archive:
        names = set(archive.namelist())
        pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise TorchScriptError(f"{path} is not a TorchScript archive (no data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        order = f"{prefix}byteorder"
        saved = archive.read(order).decode(errors="replace").strip() if order in names else None
        if saved is not None and saved != sys.byteorder:
            raise TorchScriptError(
                f"{path} was saved {saved}-endian, this machine is {sys.byteorder}-endian"
            )
        storages: dict[str, Tensor] = {}

        def storage(key: str, dtype: torch.dtype, numel: int) -> Tensor:
            if key not in storages:
                record = f"{prefix}data/{key}"
                if record not in names:
                    raise TorchScriptError(f"{path}: storage record {record} is missing")
                raw = bytearray(archive.read(record))
                size = torch.empty((), dtype=dtype).element_size()
                if len(raw) < numel * size:
                    raise TorchScriptError(f"{path}: storage record {record} is too short")
                storages[key] = (
                    torch.frombuffer(raw, dtype=dtype, count=numel)
                    if numel
                    else (torch.empty(0, dtype=dtype))
                )
            return storages[key]

        def rebuild(data: Tensor, offset: int, size: Any, stride: Any, *_ignored: Any) -> Tensor:
            return torch.as_strided(data, tuple(size), tuple(stride), offset)

        class Unpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                if module == "__torch__" or module.startswith("__torch__."):
                    return _Module
                if module == "torch._utils" and name == "_rebuild_tensor_v2":
                    return rebuild
                if module == "torch" and name in _STORAGE_DTYPES:
                    return _StorageType(_STORAGE_DTYPES[name])
                if module == "collections" and name == "OrderedDict":
                    return collections.OrderedDict
                if module == "torch.jit._pickle" and name.startswith("build_"):
                    return _list
                if module == "torch.jit._pickle" and name == "restore_type_tag":
                    return _restore_type_tag
                raise TorchScriptError(
                    f"{path} refused: its data.pkl names {module}.{name}, which a tree of "
                    "tensors does not need (reading it could run code)"
                )

            def persistent_load(self, pid: Any) -> Any:
                if (
                    not isinstance(pid, tuple)
                    or len(pid) != 5
                    or pid[0] != "storage"
                    or not isinstance(pid[1], _StorageType)
                ):
                    raise TorchScriptError(f"{path}: unexpected persistent id {pid!r:.80}")
                _, kind, key, _location, numel = pid
                return storage(str(key), kind.dtype, int(numel))

        try:
            root = Unpickler(io.BytesIO(archive.read(pkl[0]))).load()
        except TorchScriptError:
            raise
        except Exception as e:  # a malformed pickle: any of pickle's many error types
            raise TorchScriptError(
                f"{path}: data.pkl is not readable ({type(e).__name__}: {e})"
            ) from e
    state: dict[str, Tensor] = {}
    _flatten(root, "", state, set())
    return state


def _flatten(obj: Any, prefix: str, out: dict[str, Tensor], seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    for key, value in vars(obj).items():
        if isinstance(value, Tensor):
            out[prefix + key] = value
        elif isinstance(value, _Module):
            _flatten(value, f"{prefix}{key}.", out, seen)
