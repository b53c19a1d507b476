"""What every training recipe runs on: autocast with its bf16 check, AdamW's parameter groups
and the learning-rate schedule, and checkpoint I/O that never unpickles code.

Pretraining (:mod:`hero_model.train`) and finetuning (:mod:`build_benchmarks.finetune.recipe`)
both build on it, so the two cannot drift apart on precision, weight decay or how a file from
elsewhere is read. The device comes from :func:`hero_data.device.resolve_device` (shared with
feature extraction, which may not import this package).

Components here never read a config; the recipes pass the values.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch

from hero_data.errors import HeroError, OptionError

__all__ = [
    "CHECKPOINT_DIR",
    "CheckpointError",
    "adamw",
    "autocast",
    "autocast_dtype",
    "check_plain",
    "check_state_fits",
    "checkpoint_name",
    "find_checkpoint",
    "linear_schedule",
    "load_plain",
    "lr_factor",
    "param_groups",
    "read_state_dict",
]


class CheckpointError(HeroError, ValueError):
    """A checkpoint that cannot be loaded into the model; the message names the file."""


# -- precision -----------------------------------------------------------------------------


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``; ``None``: no autocast (float32).

    ``auto`` is bfloat16 on a CUDA GPU that supports it and float32 anywhere else; ``bf16`` is
    bfloat16 on the CPU or a GPU that supports it and an
    :class:`~hero_data.errors.OptionError` (key ``precision``) on a GPU that does not, where
    torch's autocast would fail at the first batch; ``fp32`` is float32.
    """
    if precision == "fp32":
        return None
    supported = device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())
    if precision == "bf16":
        if not supported:
            raise OptionError(
                f"precision bf16 asked for, but {device} does not support bfloat16; use "
                "precision auto (float32 there) or fp32",
                key="precision",
            )
        return torch.bfloat16
    if precision != "auto":
        raise OptionError(f"unknown precision {precision!r} (auto, bf16 or fp32)", key="precision")
    return torch.bfloat16 if device.type == "cuda" and supported else None


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``'s type (from :func:`autocast_dtype`); ``None``
    turns autocast off, also inside an enclosing autocast region."""
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


# -- optimiser and schedule ----------------------------------------------------------------


def param_groups(
    model: torch.nn.Module,
    lr: float,
    weight_decay: float,
    *,
    heads: Collection[str] = (),
    lr_mul: float = 1.0,
) -> list[dict[str, Any]]:
    """AdamW groups, as HERO's ``build_optimizer``: weight decay on matrices and embeddings,
    none on biases and norm weights (HERO's ``bias`` / ``LayerNorm`` name rule picks the same
    tensors); the parameters named in ``heads`` (a task's new heads) at ``lr_mul × lr``.

    The order is fixed, as a saved optimizer state is matched to the groups by position:
    decayed then not decayed, the base learning rate's before the heads'. A run without heads
    has exactly two groups (empty or not); empty head groups are left out.
    """
    names = set(heads)
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {
        (False, True): [],
        (False, False): [],
    }
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((name in names, p.ndim >= 2), []).append(p)
    return [
        {
            "params": groups[key],
            "lr": lr * lr_mul if key[0] else lr,
            "weight_decay": weight_decay if key[1] else 0.0,
        }
        for key in [(False, True), (False, False), (True, True), (True, False)]
        if key in groups
    ]


def adamw(
    groups: list[dict[str, Any]],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    device: torch.device,
) -> torch.optim.AdamW:
    """AdamW over ``groups`` (from :func:`param_groups`); the fused kernel on a GPU."""
    return torch.optim.AdamW(
        groups,
        lr=lr,
        betas=(float(betas[0]), float(betas[1])),
        eps=eps,
        fused=device.type == "cuda",
    )


def lr_factor(update: int, warmup_steps: int, max_steps: int) -> float:
    """Multiplier of the peak learning rate for optimizer update ``update`` (1-based).

    Linear warm-up to 1 at update ``W = warmup_steps``, then linear decay from the peak
    update ``P = max(W, 1)`` to ``1/(T−P+1)`` at the last update ``T = max_steps`` (never 0
    inside the run, so no update is wasted); 0 outside ``1..T``.
    """
    if update < 1 or update > max_steps:
        return 0.0
    if update < warmup_steps:
        return update / warmup_steps
    peak = max(warmup_steps, 1)
    return (max_steps - update + 1) / (max_steps - peak + 1)


def linear_schedule(
    optimizer: torch.optim.Optimizer, warmup_steps: int, max_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """:func:`lr_factor` as a scheduler stepped once after each optimizer update."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda n: lr_factor(n + 1, warmup_steps, max_steps)
    )


# -- checkpoint folders --------------------------------------------------------------------

CHECKPOINT_DIR = "checkpoints"
"""The folder of a ``hero train`` run that holds its checkpoints."""

CHECKPOINT_NAME = re.compile(r"step-(\d{8,})")
"""A checkpoint folder's name: the optimizer steps done before it was written."""


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint after ``step`` optimizer steps."""
    return f"step-{step:08d}"


def find_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder of ``run_dir`` (one with ``meta.json``), or None."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    done = [
        p
        for p in root.iterdir()
        if CHECKPOINT_NAME.fullmatch(p.name) and p.is_dir() and (p / "meta.json").is_file()
    ]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


# -- checkpoint files ----------------------------------------------------------------------
#
# A checkpoint may come from anyone, so nothing in it is unpickled with code: files load with
# ``weights_only=True`` (tensors and plain containers), and callers check every value against
# the model before any of it is used. Saving checks the other half (check_plain): what this
# toolkit writes it can read back.

_PLAIN = (int, float, bool, str, type(None))


def check_plain(value: Any, where: str) -> None:
    """Raise ``TypeError`` unless ``value`` is tensors and plain containers only (what
    ``torch.load(weights_only=True)`` reads back without any allowlist). Types are compared
    exactly: a numpy number is a ``float`` subclass, but loading it would need numpy's globals."""
    kind = type(value)
    if kind in _PLAIN or isinstance(value, torch.Tensor):
        return
    if kind in (list, tuple):
        for k, item in enumerate(value):
            check_plain(item, f"{where}[{k}]")
        return
    if kind in (dict, OrderedDict):
        for key, item in value.items():
            if type(key) not in (str, int):
                raise TypeError(f"{where}: key {key!r} is not plain data")
            check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where} is a {kind.__name__}, not plain data; it must load with weights_only=True"
    )


def _unsafe_globals(path: Path) -> list[str]:
    """The globals (classes, functions) the pickle in ``path`` names beyond what
    ``weights_only`` allows; read from its opcodes, nothing is unpickled."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a readable archive: the load's own error says so
        return []


def load_plain(path: str | os.PathLike[str], *, written_by: str | None = None) -> Any:
    """The object ``torch.save`` wrote to ``path``, loaded with ``weights_only=True``; a
    :class:`CheckpointError` naming the file for anything else.

    ``written_by``: the command that writes such files (``hero train``). Then only a
    ``torch.save`` archive is read, memory-mapped, as that command writes nothing else;
    without it a file in torch's legacy (pre-1.6) format is read too, as checkpoints released
    by others may be.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing, the checkpoint is incomplete")
    if written_by is not None and not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: refused, not read: not an archive written by torch.save ({written_by} "
            "writes nothing else)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=written_by is not None)
    except pickle.UnpicklingError as e:
        needs = _unsafe_globals(path)
        if needs:
            raise CheckpointError(
                f"{path}: refused, not loaded: it needs {', '.join(needs[:5])} to load, and "
                "unpickling those could run code. The toolkit's checkpoints hold tensors and "
                "plain containers only, so this file was written by other code or altered. If "
                "you wrote it and trust it, convert it: docs/untrusted-input.md, 'Converting a "
                "checkpoint'."
            ) from None
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
    except Exception as e:  # a damaged archive, a truncated record, a bad storage...
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(e).__name__}: {e})"
        ) from None


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The state dict in ``path`` (:func:`load_plain`); the reference HERO code's
    ``restore.pt`` layout (``{"model_state_dict": ...}``) is unwrapped. Raises
    :class:`CheckpointError` naming the file for anything that is not a mapping of names."""
    state = load_plain(path)
    if isinstance(state, Mapping) and "model_state_dict" in state:  # reference restore.pt
        state = state["model_state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return dict(state)


def check_state_fits(
    state: Mapping[str, Any],
    shapes: Mapping[str, tuple[int, ...]],
    path: str | os.PathLike[str],
) -> None:
    """Raise :class:`CheckpointError` unless ``state`` holds exactly the names of ``shapes``
    (a model's ``{name: shape}``), each a tensor of its shape. The message names the file and
    the first few of each kind of difference."""
    missing = sorted(set(shapes) - set(state))
    unexpected = sorted(set(state) - set(shapes))
    differ = []
    for name, shape in shapes.items():
        t = state.get(name)
        if name in state and (not isinstance(t, torch.Tensor) or tuple(t.shape) != shape):
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            differ.append(f"{name} is {got}, the model needs {shape}")
    parts = []
    if missing:
        parts.append(f"missing {missing[:3]} ({len(missing)} names)")
    if unexpected:
        parts.append(f"unexpected {unexpected[:3]} ({len(unexpected)} names)")
    if differ:
        parts.append(f"shapes differ: {'; '.join(differ[:3])}")
    if parts:
        raise CheckpointError(f"{path}: does not fit the model: {', '.join(parts)}")
