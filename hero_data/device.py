"""The one device resolver of the toolkit: a device name (``auto``, ``cpu``, ``cuda``,
``cuda:N``) as the ``torch.device`` to run on.

It lives in ``hero_data`` because every package that runs a model needs it and ``hero_data``
is the only package they may all import (docs/architecture.md): ``extract`` may import nothing
else, while ``hero_model`` and ``build_benchmarks`` may. Its neighbour is the name's type,
:data:`hero_data.configmodel.Device`, which checks the spelling when a config is read; this
module checks the name against the machine when a run starts. ``torch`` is imported inside the
function, not at module import, so that reading datasets (the rest of ``hero_data``) still does
not load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hero_data.errors import OptionError

if TYPE_CHECKING:
    import torch

DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
"""The device names :func:`resolve_device` takes, as error messages list them."""


def resolve_device(name: str) -> torch.device:
    """The device ``name`` stands for on this machine.

    ``auto`` is the current CUDA GPU when there is one, else the CPU. A CUDA device always
    comes back with its index (``cuda`` is the current GPU), as DistributedDataParallel and
    ``torch.cuda.set_device`` need one. Raises :class:`~hero_data.errors.OptionError` (key
    ``device``) for a name that is not a device, a CUDA device on a machine without CUDA, or a
    GPU index the machine does not have.
    """
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise OptionError(f"unknown device {name!r} ({DEVICE_NAMES})", key="device") from None
    if device.type not in ("cpu", "cuda"):
        raise OptionError(
            f"device {name!r} is not supported ({DEVICE_NAMES})", key="device"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError(f"device {name!r} asked for, but CUDA is not available", key="device")
        count = torch.cuda.device_count()
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        elif device.index >= count:
            raise OptionError(
                f"device {name!r} asked for, but this machine has {count} CUDA GPU(s)",
                key="device",
            )
    return device
