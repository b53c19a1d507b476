"""The feature models: ResNet-152 (2D, one frame per step) and SlowFast-R50 (3D, one window).

Both take ``uint8`` RGB pixels, channels last, do their own preprocessing, and return one
float32 row per input: 2048-d (L2-normalised) for ResNet-152, 2304-d for SlowFast. Weights are
torchvision's ResNet-152 IMAGENET1K_V1 file (the one HERO used) and pytorchvideo's SlowFast 8x8
R50 Kinetics-400 checkpoint, read as tensors only (``torch.load(..., weights_only=True)``) and
checked key by key against the architecture before anything is loaded::

    load_resnet152()    ->  $TORCH_HOME/hub/checkpoints/resnet152-394f9c45.pth
    load_slowfast_r50() ->  $TORCH_HOME/hub/checkpoints/SLOWFAST_8x8_R50.pyth

Each model keeps the unmodified torchvision / pytorchvideo network as ``.net`` (classifier
included, unused), so ``model.net.state_dict()`` has exactly the published file's layout.

On CPU a sample's features are bit-identical whatever else is in its batch: forward runs the
batch in micro-batches of ``cpu_micro_batch`` (1) samples, since CPU kernels may be chosen by
batch size. SlowFast's rows otherwise change in the last bits (~1e-7), and one window at a time
is faster there too (1.2 s vs 1.7 s a window at batch 3, 2 cores); ResNet's rows were the same
at any batch size in our runs, but one image at a time keeps the guarantee everywhere, for
about 15% more time (0.39 s vs 0.33 s a 224x398 image against batch 4). On CUDA the whole batch
runs at once.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import ResNet, resnet152

from hero_data.grid import FAST_FRAMES, SLOW_STRIDE, uniform_indices
from hero_data.schema import RESNET_DIM, SLOWFAST_DIM

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel (R, G, B) mean of ImageNet pixels scaled to [0, 1]."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel (R, G, B) standard deviation of ImageNet pixels scaled to [0, 1]."""
KINETICS_MEAN = (0.45, 0.45, 0.45)
"""Per-channel mean SlowFast (Kinetics-400) expects, pixels scaled to [0, 1]."""
KINETICS_STD = (0.225, 0.225, 0.225)
"""Per-channel standard deviation SlowFast (Kinetics-400) expects, pixels scaled to [0, 1]."""


# ---------------------------------------------------------------------------------------------
# Weights


class WeightsError(Exception):
    """A weight file that is missing, unreadable, not tensor-only, or does not fit the model."""


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a model was built with.

    Attributes:
        name: the architecture, ``"resnet152"`` or ``"slowfast_r50"``.
        path: the weight file read, or None for random weights.
        sha256: hex SHA-256 of that file, or ``"random"``.
    """

    name: str
    path: str | None
    sha256: str


@dataclass(frozen=True)
class _Source:
    """Where a published weight file comes from (for messages and the hub-cache lookup)."""

    name: str
    what: str
    file_name: str
    url: str
    sha256_prefix: str | None = None  # torch hub's convention: in the file name, when known


RESNET152_SOURCE = _Source(
    name="resnet152",
    what="torchvision's ResNet-152 ImageNet weights (IMAGENET1K_V1, the original ones HERO used)",
    file_name="resnet152-394f9c45.pth",
    url="https://download.pytorch.org/models/resnet152-394f9c45.pth",
    sha256_prefix="394f9c45",
)
SLOWFAST_R50_SOURCE = _Source(
    name="slowfast_r50",
    what="pytorchvideo's SlowFast 8x8 R50 Kinetics-400 weights",
    file_name="SLOWFAST_8x8_R50.pyth",
    url="https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/SLOWFAST_8x8_R50.pyth",
)


def hub_checkpoint_path(file_name: str) -> Path:
    """Where torch hub caches ``file_name``: ``torch.hub.get_dir()/checkpoints/<file_name>``.

    ``get_dir()`` is ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``) unless
    ``torch.hub.set_dir`` was called; it is read at each call, not at import.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def _missing_message(source: _Source, path: Path, default: Path) -> str:
    where = f"put it at {default}" if path == default else f"put it at {path} or {default}"
    return (
        f"{source.name} weights not found: {path} does not exist. Download {source.what}, "
        f"{source.file_name}, from {source.url} and {where} (the torch hub cache, "
        f"$TORCH_HOME/hub/checkpoints), or pass the file's path. random_weights=True runs "
        f"without them, but its features are meaningless."
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unpickling_reason(error: pickle.UnpicklingError) -> str:
    """torch's reason for refusing a pickle, without its advice to turn weights_only off."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [s.strip() for s in str(error).splitlines()]
    return " ".join(s for s in lines if s and not s.startswith(boilerplate)) or str(error)


def _read_state_dict(source: _Source, path: Path, default: Path) -> tuple[dict[str, Tensor], str]:
    """The state dict in ``path`` (bare, or under ``"model_state"``) and the file's SHA-256."""
    if not path.is_file():
        raise WeightsError(_missing_message(source, path, default))
    try:
        sha256 = _sha256(path)
        # weights_only: tensors and plain containers only; a pickle that names code is refused.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _unpickling_reason(e)
        if "global" not in reason.lower():  # a bad opcode: not a pickle torch can read
            raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({reason})") from e
        raise WeightsError(
            f"{path} refused: it holds more than tensors, and loading it could run code "
            f"({reason}). Weight files are read with weights_only=True; get "
            f"{source.file_name} from {source.url}, or re-save just its state dict from a copy "
            f"you trust."
        ) from e
    except Exception as e:  # OSError, a truncated zip (RuntimeError), EOFError, ...
        raise WeightsError(
            f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {e})"
        ) from e
    state = obj["model_state"] if isinstance(obj, Mapping) and "model_state" in obj else obj
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        keys = list(obj)[:5] if isinstance(obj, Mapping) else []
        raise WeightsError(
            f"{path} holds a {type(obj).__name__} (keys {keys}), not a state dict or a "
            f'checkpoint with one under "model_state"'
        )
    return dict(state), sha256


def _check_state_dict(
    state: dict[str, Tensor], expected: Mapping[str, Tensor], source: _Source, path: Path
) -> dict[str, Tensor]:
    """``state`` if every tensor fits ``expected`` (keys, shapes, finite values); else raises.

    A missing BatchNorm ``num_batches_tracked`` counter is filled from ``expected``: files saved
    before PyTorch 0.4 lack it, and it is never read in eval mode.
    """
    problems = []
    for key, ref in expected.items():
        if key not in state:
            if key.endswith("num_batches_tracked"):
                state[key] = ref.clone()
            else:
                problems.append(f"missing key {key!r}")
    problems += [f"unexpected key {key!r}" for key in state if key not in expected]
    for key, value in state.items():
        ref = expected.get(key)
        if ref is None:
            continue
        if not isinstance(value, Tensor):
            problems.append(f"{key!r} is a {type(value).__name__}, not a tensor")
        elif value.shape != ref.shape:
            problems.append(
                f"{key!r} has shape {tuple(value.shape)}, the model needs {tuple(ref.shape)}"
            )
        elif ref.is_floating_point() and not value.is_floating_point():
            problems.append(f"{key!r} is {value.dtype}, the model needs {ref.dtype}")
        elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
            problems.append(f"{key!r} holds NaN or infinite values")
    if problems:
        raise WeightsError(
            f"{path} does not fit {source.name} ({len(problems)} problem(s)): "
            + "; ".join(problems[:5])
            + ("; ..." if len(problems) > 5 else "")
        )
    return state


def _build_net(
    source: _Source,
    make_net: Callable[[], nn.Module],
    path: str | Path | None,
    random_weights: bool,
    seed: int,
) -> tuple[nn.Module, WeightsInfo]:
    """The network with its weights: read and checked from ``path``, or random from ``seed``."""
    if random_weights and path is not None:
        raise ValueError("give a weight file or random_weights=True, not both")
    state = None
    if not random_weights:
        default = hub_checkpoint_path(source.file_name)
        file = Path(path) if path is not None else default
        state, sha256 = _read_state_dict(source, file, default)  # fail before building
    # Initialise from a local seed; the caller's global RNG state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        net = make_net()
    if state is None:
        logger.warning(
            "%s: RANDOM WEIGHTS (seed %d) - features will be meaningless; use them only for "
            "tests and dry runs, never for training data",
            source.name,
            seed,
        )
        info = WeightsInfo(source.name, None, "random")
    else:
        state = _check_state_dict(state, net.state_dict(), source, file)
        net.load_state_dict(state, strict=True)
        if source.sha256_prefix and not sha256.startswith(source.sha256_prefix):
            logger.warning(
                "%s: sha256 %s... is not that of the published %s (%s...); features will "
                "not match HERO's",
                file,
                sha256[:8],
                source.file_name,
                source.sha256_prefix,
            )
        logger.info("%s: weights from %s (sha256 %s)", source.name, file, sha256)
        info = WeightsInfo(source.name, str(file), sha256)
    net.eval().requires_grad_(False)
    return net, info


def verify_weights(which: str, path: str | Path | None = None) -> WeightsInfo:
    """Check a weight file as :func:`load_resnet152` / :func:`load_slowfast_r50` do (it exists,
    holds tensors only, fits the architecture key by key) without building the network's weights:
    the architecture is made on the ``meta`` device, so the check costs reading the file, not
    initialising 60 M parameters. For a driver that checks before it starts its workers.

    Args:
        which: ``"resnet152"`` or ``"slowfast_r50"``.
        path: the weight file; None looks it up at :func:`hub_checkpoint_path`.

    Raises:
        WeightsError: as the loaders.
    """
    if which not in _NETS:
        raise ValueError(f"which must be one of {sorted(_NETS)}, got {which!r}")
    source, make_net = _NETS[which]
    default = hub_checkpoint_path(source.file_name)
    file = Path(path) if path is not None else default
    state, sha256 = _read_state_dict(source, file, default)
    with torch.device("meta"):
        expected = make_net().state_dict()
    _check_state_dict(state, expected, source, file)
    return WeightsInfo(source.name, str(file), sha256)


def _resnet152_net() -> nn.Module:
    return resnet152(weights=None)


def _slowfast_r50_net() -> nn.Module:
    # pytorchvideo imports fvcore, which calls the deprecated torch.jit.script at import.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        from pytorchvideo.models.hub import slowfast_r50

    return slowfast_r50(pretrained=False)


_NETS: dict[str, tuple[_Source, Callable[[], nn.Module]]] = {
    "resnet152": (RESNET152_SOURCE, _resnet152_net),
    "slowfast_r50": (SLOWFAST_R50_SOURCE, _slowfast_r50_net),
}
"""Each feature network by name: where its weights come from, and its unmodified architecture."""


# ---------------------------------------------------------------------------------------------
# Preprocessing


def _check_pixels(x: Tensor | np.ndarray, ndim: int, layout: str) -> Tensor:
    x = torch.as_tensor(x)
    if x.dtype != torch.uint8 or x.ndim != ndim or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB pixels {layout}, got {x.dtype} {tuple(x.shape)}")
    return x


def _normalise(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """``(x / 255 − mean) / std`` per channel, channels last, in float32."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device)
    return (x.float() / 255 - mean_t) / std_t


def resnet_preprocess(images: Tensor) -> Tensor:
    """ResNet-152 input from ``uint8`` images ``(B, H, W, 3)`` RGB: float32 ``(B, 3, H, W)``.

    Pixels /255, minus the ImageNet mean, over its std, per channel. No resize, no crop.
    """
    x = _normalise(images, IMAGENET_MEAN, IMAGENET_STD)  # (B, H, W, 3)
    return x.permute(0, 3, 1, 2)  # (B, 3, H, W)


def slowfast_preprocess(windows: Tensor) -> tuple[Tensor, Tensor]:
    """SlowFast's ``(slow, fast)`` inputs from ``uint8`` windows ``(B, T, H, W, 3)`` RGB.

    Fast: ``FAST_FRAMES`` (32) frames at ``uniform_indices(T, 32)``, float32
    ``(B, 3, 32, H, W)``; slow: every ``SLOW_STRIDE``-th (4th) of those, ``(B, 3, 8, H, W)``.
    Pixels /255, minus 0.45, over 0.225, per channel.
    """
    index = torch.tensor(uniform_indices(windows.shape[1], FAST_FRAMES), device=windows.device)
    x = windows.index_select(1, index)  # (B, 32, H, W, 3)
    fast = _normalise(x, KINETICS_MEAN, KINETICS_STD).permute(0, 4, 1, 2, 3)  # (B, 3, 32, H, W)
    slow = fast[:, :, ::SLOW_STRIDE]  # (B, 3, 8, H, W)
    return slow, fast


# ---------------------------------------------------------------------------------------------
# Models


def _run_batched(model: ResNet152Features | SlowFastR50Features, x: Tensor, dim: int) -> Tensor:
    """``model._embed`` over ``x`` (uint8, batch first) moved to the model's device.

    On CPU in micro-batches of ``model.cpu_micro_batch`` samples (batch independence); on
    other devices in one go.
    """
    x = x.to(next(model.parameters()).device, non_blocking=True)  # uint8: 4x less to copy
    if len(x) == 0:
        return torch.empty(0, dim, dtype=torch.float32, device=x.device)
    if x.device.type == "cpu" and model.cpu_micro_batch:
        return torch.cat([model._embed(chunk) for chunk in x.split(model.cpu_micro_batch)])
    return model._embed(x)


class ResNet152Features(nn.Module):
    """ResNet-152 trunk up to its global average pool: one 2048-d unit vector per image.

    Input ``uint8`` images ``(B, H, W, 3)`` RGB, any ``H, W`` (short side 224, aspect kept, in
    HERO); output float32 ``(B, 2048)``, each row L2-normalised as HERO's extractor did.

    Attributes:
        net: the torchvision ResNet (its ``fc`` is kept for the state dict layout, unused).
        bf16: run the trunk under bfloat16 autocast (for CUDA); output stays float32.
        memory_format: layout the trunk's input is put in (``prepare_for`` sets it).
        cpu_micro_batch: samples per trunk call on CPU (1: bit-identical rows whatever the
            batch); 0 runs the whole batch at once.
    """

    channels_last_format = torch.channels_last

    def __init__(self, net: ResNet) -> None:
        super().__init__()
        self.net = net
        self.bf16 = False
        self.memory_format = torch.contiguous_format
        self.cpu_micro_batch = 1
        self.compiled_trunk: Callable[[Tensor], Tensor] | None = None

    def trunk(self, x: Tensor) -> Tensor:
        """Preprocessed images ``(B, 3, H, W)`` to pooled features ``(B, 2048, 1, 1)``."""
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return n.avgpool(x)

    def _embed(self, images: Tensor) -> Tensor:
        x = resnet_preprocess(images).contiguous(memory_format=self.memory_format)
        trunk = self.compiled_trunk or self.trunk
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            x = trunk(x)  # (B, 2048, 1, 1)
        x = x.float().flatten(1)  # (B, 2048)
        return F.normalize(x, dim=1)

    @torch.no_grad()
    def forward(self, images: Tensor | np.ndarray) -> Tensor:
        """``uint8`` images ``(B, H, W, 3)`` RGB to unit-norm float32 features ``(B, 2048)``."""
        return _run_batched(self, _check_pixels(images, 4, "(B, H, W, 3)"), RESNET_DIM)


class SlowFastR50Features(nn.Module):
    """SlowFast 8x8 R50 (Kinetics-400) pooled pathways: one 2304-d vector per window.

    Input ``uint8`` windows ``(B, T, H, W, 3)`` RGB, ``T >= 1`` frames (45 in HERO: a 1.5 s
    step at 30 fps), 224x224 in practice (``H, W`` >= 193 give the 7x7 its pooling needs). The fast
    pathway sees 32 frames sampled uniformly across the window (first and last included), the
    slow one every 4th of those (8). Output float32 ``(B, 2304)``: slow 2048 then fast 256,
    taken after ``blocks[:6]`` (stem to pooling) and before the head's dropout and projection,
    averaged over any remaining T/H/W; not normalised.

    HERO's extractor clamped its sample indices to the window, so about 10 of the 32 fast
    frames repeated the window's last frame; here the 32 frames spread over the whole window.

    Attributes:
        net: the pytorchvideo SlowFast (its head is kept for the state dict layout, unused).
        bf16: run the network under bfloat16 autocast (for CUDA); output stays float32.
        memory_format: layout the pathway inputs are put in (``prepare_for`` sets it).
        cpu_micro_batch: samples per network call on CPU (1: bit-identical rows whatever the
            batch, and faster than larger batches on CPU); 0 runs the whole batch at once.
    """

    channels_last_format = torch.channels_last_3d

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.bf16 = False
        self.memory_format = torch.contiguous_format
        self.cpu_micro_batch = 1
        self.compiled_trunk: Callable[[Tensor, Tensor], Tensor] | None = None

    def trunk(self, slow: Tensor, fast: Tensor) -> Tensor:
        """Pathway inputs to pooled, concatenated features ``(B, 2304, t, h, w)``."""
        x: Tensor | list[Tensor] = [slow, fast]
        for block in self.net.blocks[:6]:
            x = block(x)
        return x

    def _embed(self, windows: Tensor) -> Tensor:
        slow, fast = slowfast_preprocess(windows)
        slow = slow.contiguous(memory_format=self.memory_format)  # (B, 3, 8, H, W)
        fast = fast.contiguous(memory_format=self.memory_format)  # (B, 3, 32, H, W)
        trunk = self.compiled_trunk or self.trunk
        device = fast.device.type
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=self.bf16):
            x = trunk(slow, fast)  # (B, 2304, 1, 1, 1) at 224x224
        return x.float().mean(dim=(2, 3, 4))  # (B, 2304)

    @torch.no_grad()
    def forward(self, windows: Tensor | np.ndarray) -> Tensor:
        """``uint8`` windows ``(B, T, H, W, 3)`` RGB to float32 features ``(B, 2304)``."""
        windows = _check_pixels(windows, 5, "(B, T, H, W, 3)")
        if windows.shape[1] < 1:
            raise ValueError("a window needs at least one frame")
        return _run_batched(self, windows, SLOWFAST_DIM)


def load_resnet152(
    path: str | Path | None = None, *, random_weights: bool = False, seed: int = 0
) -> tuple[ResNet152Features, WeightsInfo]:
    """ResNet-152 features in eval mode, weights from ``path`` or the torch hub cache.

    Args:
        path: a ``resnet152-394f9c45.pth`` state dict; None looks it up at
            :func:`hub_checkpoint_path`.
        random_weights: build with random weights from ``seed`` instead (tests and dry runs
            only: the features are meaningless; a WARNING is logged).
        seed: seed of the random weights; the global RNG state is left untouched.

    Raises:
        WeightsError: the file is missing, unreadable, not tensor-only, or does not fit.
    """
    net, info = _build_net(*_NETS["resnet152"], path, random_weights, seed)
    return ResNet152Features(net).eval(), info


def load_slowfast_r50(
    path: str | Path | None = None, *, random_weights: bool = False, seed: int = 0
) -> tuple[SlowFastR50Features, WeightsInfo]:
    """SlowFast-R50 features in eval mode, weights from ``path`` or the torch hub cache.

    Args:
        path: ``SLOWFAST_8x8_R50.pyth`` (state dict under ``"model_state"``) or a bare state
            dict; None looks it up at :func:`hub_checkpoint_path`.
        random_weights: build with random weights from ``seed`` instead (tests and dry runs
            only: the features are meaningless; a WARNING is logged).
        seed: seed of the random weights; the global RNG state is left untouched.

    Raises:
        WeightsError: the file is missing, unreadable, not tensor-only, or does not fit.
    """
    net, info = _build_net(*_NETS["slowfast_r50"], path, random_weights, seed)
    return SlowFastR50Features(net).eval(), info


FeatureModel = TypeVar("FeatureModel", ResNet152Features, SlowFastR50Features)


def prepare_for(
    model: FeatureModel,
    device: torch.device,
    *,
    bf16: bool = False,
    channels_last: bool = False,
    compile: bool = False,
) -> FeatureModel:
    """Move ``model`` to ``device`` and set its speed options, in place; returns it.

    Args:
        bf16: bfloat16 autocast inside forward (meant for CUDA; outputs stay float32).
        channels_last: ``torch.channels_last`` (ResNet) / ``channels_last_3d`` (SlowFast)
            for the weights and the trunk's inputs.
        compile: ``torch.compile`` the trunk (preprocessing and batching stay eager).
    """
    model.to(device)
    model.bf16 = bf16
    model.memory_format = model.channels_last_format if channels_last else torch.contiguous_format
    model.to(memory_format=model.memory_format)
    model.compiled_trunk = torch.compile(model.trunk) if compile else None
    return model
