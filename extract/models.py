"""The feature models: ResNet-152 (2D, one frame per step) and SlowFast-R50 (3D, one window).

Both take ``uint8`` RGB pixels, channels last, do their own preprocessing, and return one
float32 row per input: 2048-d (L2-normalised) for ResNet-152, 2304-d for SlowFast. Weights are
the files HERO's extractor used (:mod:`extract.weights`): torchvision's ResNet-152
IMAGENET1K_V1 and PySlowFast's Caffe2-trained SlowFast 8x8 R50 Kinetics-400 pickle (renamed
into pytorchvideo's network by :mod:`extract.caffe2`); PyTorchVideo's ``.pyth`` of the same
architecture is the alternative. Torch files are read as tensors only
(``torch.load(..., weights_only=True)``), the Caffe2 pickle by an unpickler that resolves numpy
arrays only, and every tensor is checked key by key against the architecture before anything
is loaded. A default file missing from the torch hub cache is downloaded there (unless
offline)::

    load_resnet152()    ->  $TORCH_HOME/hub/checkpoints/resnet152-394f9c45.pth
    load_slowfast_r50() ->  $TORCH_HOME/hub/checkpoints/SLOWFAST_8x8_R50.pkl

Each model keeps the unmodified torchvision / pytorchvideo network as ``.net`` (classifier
included, unused), so ``model.net.state_dict()`` has exactly the published file's layout.

The weight machinery here (:func:`obtain_weights`, :func:`verify_weights`,
:func:`weight_file_status`, the strict key-by-key load) also serves the other extractors'
networks, registered in ``_NETS``: OpenAI's CLIP towers (:mod:`extract.clip`, files read by
:mod:`extract.torchscript`) and MIL-NCE's S3D-G (:mod:`extract.milnce`). The extractors
themselves, by feature name, are :mod:`extract.features`.

On CPU a sample's features are bit-identical whatever else is in its batch: forward runs the
batch in micro-batches of ``cpu_micro_batch`` (1) samples, since CPU kernels may be chosen by
batch size. SlowFast's rows otherwise change in the last bits (~1e-7), and one window at a time
is faster there too (1.2 s vs 1.7 s a window at batch 3, 2 cores); ResNet's rows were the same
at any batch size in our runs, but one image at a time keeps the guarantee everywhere, for
about 15% more time (0.39 s vs 0.33 s a 224x398 image against batch 4). On CUDA the whole batch
runs at once.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import ResNet, resnet152

from extract.caffe2 import read_blobs, slowfast_state_dict
from extract.s3dg import S3DG
from extract.sampling import slow_positions
from extract.torchscript import TorchScriptError, is_torchscript, read_torchscript_state
from extract.weights import (
    OFFLINE_ENV,
    WeightFile,
    WeightsError,
    default_file,
    download,
    hub_checkpoint_path,
    offline_from_env,
    published_file,
    sha256_file,
)
from hero_data.grid import FAST_FRAMES
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


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a model was built with.

    Attributes:
        name: the architecture (a key of :data:`extract.weights.WEIGHT_FILES`' ``model``).
        path: the weight file read, or None for random weights.
        sha256: hex SHA-256 of that file, or ``"random"``.
    """

    name: str
    path: str | None
    sha256: str


def _resnet152_net() -> nn.Module:
    return resnet152(weights=None)


def _slowfast_r50_net() -> nn.Module:
    # pytorchvideo imports fvcore, which calls the deprecated torch.jit.script at import.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        from pytorchvideo.models.hub import slowfast_r50

    return slowfast_r50(pretrained=False)


def _clip_net(config: str) -> nn.Module:
    """OpenAI's CLIP architecture ``config`` as open_clip builds it (QuickGELU, as OpenAI
    trained it), whole: the text tower too, so that its state dict is OpenAI's file's."""
    try:
        import open_clip
        from open_clip.model import CLIP
    except ImportError as e:
        raise WeightsError(
            "CLIP features need open_clip: install the toolkit's clip extra "
            "(pip install 'hero-toolkit[clip]')"
        ) from e
    return CLIP(**open_clip.get_model_config(config))


_NETS: dict[str, Callable[[], nn.Module]] = {
    "resnet152": _resnet152_net,
    "slowfast_r50": _slowfast_r50_net,
    "clip_vit_b32": lambda: _clip_net("ViT-B-32-quickgelu"),
    "clip_rn50x4": lambda: _clip_net("RN50x4-quickgelu"),
    "s3d_howto100m": S3DG,
}
"""Each feature network's unmodified architecture, by name (its files: :mod:`extract.weights`)."""


def _check_model(which: str) -> None:
    if which not in _NETS:
        raise ValueError(f"which must be one of {sorted(_NETS)}, got {which!r}")


def _meta_state(which: str) -> dict[str, Tensor]:
    """The architecture's state dict on the ``meta`` device: names, shapes, dtypes, no data."""
    with torch.device("meta"):
        return _NETS[which]().state_dict()


def resolve_weights(which: str, path: str | Path | None) -> tuple[Path, WeightFile | None]:
    """The file a model reads for ``path``, and the published file it is (if it is one).

    ``None``: the model's default file in the torch hub cache. A bare published file name
    (``SLOWFAST_8x8_R50.pyth``) that is not a file here: that file in the hub cache. Anything
    else: the path as given.
    """
    _check_model(which)
    if path is None:
        default = default_file(which)
        return hub_checkpoint_path(default.file_name), default
    file = Path(path)
    published = published_file(which, file.name)
    if published is not None and not file.exists() and str(file) == file.name:
        return hub_checkpoint_path(published.file_name), published
    return file, published


_METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")
"""Entries of OpenAI's CLIP files that are sizes, not weights (OpenAI's and open_clip's
loaders drop them too); the architecture fixes them."""


def _layout(which: str, file: Path, published: WeightFile | None) -> str:
    if published is not None:
        return published.layout
    if which == "slowfast_r50" and file.suffix == ".pkl":
        return "caffe2"
    return "torchscript" if file.is_file() and is_torchscript(file) else "torch"


def _missing_message(which: str, file: Path, published: WeightFile | None, offline: bool) -> str:
    ref = published or default_file(which)
    default = hub_checkpoint_path(ref.file_name)
    where = f"put it at {default}" if file == default else f"put it at {file} or {default}"
    why = f"{which} weights not found: {file} does not exist"
    if offline and file == default:
        why += f" and nothing is downloaded offline (--offline or ${OFFLINE_ENV})"
    return (
        f"{why}. Download {ref.what}, {ref.file_name}, from {ref.url} and {where} (the torch "
        f"hub cache, $TORCH_HOME/hub/checkpoints), or pass the file's path. random_weights=True "
        f"runs without them, but its features are meaningless."
    )


def obtain_weights(
    which: str, path: str | Path | None = None, *, offline: bool | None = None
) -> Path:
    """The weight file ``which`` reads for ``path`` (:func:`resolve_weights`), downloaded into
    the torch hub cache first when it is a published file missing there and we are online.

    ``offline`` None: :func:`extract.weights.offline_from_env`. A download is checked (size,
    published sha256 prefix, and read and fitted to the architecture as :func:`verify_weights`
    does) before it is kept. Raises :class:`WeightsError`: missing (naming the URL), or the
    download failed (nothing kept).
    """
    file, published = resolve_weights(which, path)
    if file.is_file():
        return file
    offline = offline_from_env() if offline is None else offline
    fetchable = published is not None and file == hub_checkpoint_path(published.file_name)
    if offline or not fetchable:
        raise WeightsError(_missing_message(which, file, published, offline))
    assert published is not None

    def check(downloaded: Path) -> None:
        try:
            _read_checked(which, downloaded, published.layout, _meta_state(which))
        except WeightsError as e:
            raise WeightsError(
                f"downloaded {published.url} but it is not usable {which} weights ({e}); "
                "refused, nothing was kept"
            ) from e

    try:
        download(published.url, file, sha256_prefix=published.sha256_prefix, check=check)
    except WeightsError as e:
        raise WeightsError(f"{e}. {_missing_message(which, file, published, offline=False)}") from e
    return file


def _unpickling_reason(error: pickle.UnpicklingError) -> str:
    """torch's reason for refusing a pickle, without its advice to turn weights_only off."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [s.strip() for s in str(error).splitlines()]
    return " ".join(s for s in lines if s and not s.startswith(boilerplate)) or str(error)


def _read_torch_state_dict(path: Path, file_name: str, url: str) -> dict[str, Tensor]:
    """The state dict in ``path`` (bare, or under ``"model_state"``), tensors only."""
    try:
        # weights_only: tensors and plain containers only; a pickle that names code is refused.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _unpickling_reason(e)
        if "global" not in reason.lower():  # a bad opcode: not a pickle torch can read
            raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({reason})") from e
        raise WeightsError(
            f"{path} refused: it holds more than tensors, and loading it could run code "
            f"({reason}). Weight files are read with weights_only=True; get {file_name} from "
            f"{url}, or re-save just its state dict from a copy you trust."
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
    return dict(state)


def _check_state_dict(
    state: dict[str, Tensor], expected: Mapping[str, Tensor], which: str, path: Path
) -> dict[str, Tensor]:
    """``state`` if every tensor fits ``expected`` (keys, shapes, finite values); else raises.

    A missing BatchNorm ``num_batches_tracked`` counter is filled from ``expected``: files saved
    before PyTorch 0.4 lack it, and it is never read in eval mode.
    """
    problems = []
    for key, ref in expected.items():
        if key not in state:
            if key.endswith("num_batches_tracked"):
                state[key] = torch.zeros(ref.shape, dtype=ref.dtype)
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
            f"{path} does not fit {which} ({len(problems)} problem(s)): "
            + "; ".join(problems[:5])
            + ("; ..." if len(problems) > 5 else "")
        )
    return state


def _read_checked(
    which: str, path: Path, layout: str, expected: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """The state dict of weight file ``path`` (either layout) in the network's own names,
    checked against ``expected``; raises :class:`WeightsError` naming the file."""
    ref = default_file(which)
    if layout == "caffe2":
        state = slowfast_state_dict(read_blobs(path), expected, path)
    elif layout == "torchscript":
        try:
            state = read_torchscript_state(path)
        except TorchScriptError as e:
            raise WeightsError(str(e)) from e
    else:
        state = _read_torch_state_dict(path, ref.file_name, ref.url)
    if which.startswith("clip_"):
        state = {k: v for k, v in state.items() if k not in _METADATA_KEYS}
    return _check_state_dict(state, expected, which, path)


def _warn_if_not_published(which: str, path: Path, published: WeightFile | None, sha256: str):
    ref = published or default_file(which)
    if ref.sha256_prefix and not sha256.startswith(ref.sha256_prefix):
        logger.warning(
            "%s: sha256 %s... is not that of the published %s (%s...); features will not match "
            "HERO's",
            path,
            sha256[:8],
            ref.file_name,
            ref.sha256_prefix,
        )


def _build_net(
    which: str,
    path: str | Path | None,
    random_weights: bool,
    seed: int,
    offline: bool | None,
) -> tuple[nn.Module, WeightsInfo]:
    """The network with its weights: read and checked from ``path``, or random from ``seed``."""
    if random_weights and path is not None:
        raise ValueError("give a weight file or random_weights=True, not both")
    _check_model(which)
    state = None
    if not random_weights:
        file = obtain_weights(which, path, offline=offline)
        _, published = resolve_weights(which, path)
        sha256 = sha256_file(file)
        # Read and checked before the network is built: a bad file fails fast.
        state = _read_checked(which, file, _layout(which, file, published), _meta_state(which))
    # Initialise from a local seed; the caller's global RNG state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        net = _NETS[which]()
    if state is None:
        logger.warning(
            "%s: RANDOM WEIGHTS (seed %d) - features will be meaningless; use them only for "
            "tests and dry runs, never for training data",
            which,
            seed,
        )
        info = WeightsInfo(which, None, "random")
    else:
        net.load_state_dict(state, strict=True)
        _warn_if_not_published(which, file, published, sha256)
        logger.info("%s: weights from %s (sha256 %s)", which, file, sha256)
        info = WeightsInfo(which, str(file), sha256)
    net.eval().requires_grad_(False)
    return net, info


def verify_weights(
    which: str, path: str | Path | None = None, *, offline: bool | None = None
) -> WeightsInfo:
    """Check a weight file as :func:`load_resnet152` / :func:`load_slowfast_r50` do (it exists,
    or is downloaded; holds tensors only; fits the architecture key by key) without building the
    network's weights: the architecture is made on the ``meta`` device, so the check costs
    reading the file, not initialising 60 M parameters. For a driver that checks before it
    starts its workers (which then find a downloaded file in the cache).

    Args:
        which: an architecture of :data:`extract.weights.WEIGHT_FILES` (``"resnet152"``, ...).
        path: the weight file; None: the model's default file (:func:`resolve_weights`).
        offline: never download; None reads ``$HERO_OFFLINE``.

    Raises:
        WeightsError: as the loaders.
    """
    _check_model(which)
    file = obtain_weights(which, path, offline=offline)
    _, published = resolve_weights(which, path)
    sha256 = sha256_file(file)
    _read_checked(which, file, _layout(which, file, published), _meta_state(which))
    return WeightsInfo(which, str(file), sha256)


@dataclass(frozen=True)
class WeightFileStatus:
    """What ``hero weights`` reports about one model's weight file.

    Attributes:
        model: the architecture (``"resnet152"``, ``"slowfast_r50"``, ...).
        file_name: the published file's name (or the given file's).
        default: whether the model reads this file when none is given.
        path: where it is (or would be).
        found: ``"given"`` (a path was passed), ``"hub cache"``, ``"downloaded"``, or
            ``"missing"``.
        sha256: the file's sha256, None when missing.
        checksum: ``"ok"`` (matches the published sha256 prefix), ``"MISMATCH"``, or
            ``"none published"``; None when missing.
        loads: ``"ok"``, or why the file cannot be loaded (including "missing: ...").
        url: where it is published (None for a file that is not a published one).
    """

    model: str
    file_name: str
    default: bool
    path: str
    found: str
    sha256: str | None
    checksum: str | None
    loads: str
    url: str | None


def weight_file_status(
    which: str,
    path: str | Path | None = None,
    *,
    download: bool = False,
    offline: bool | None = None,
) -> WeightFileStatus:
    """Where ``which``'s weight file for ``path`` is, whether its checksum matches the
    published one, and whether it loads (read and fitted as :func:`verify_weights` does).
    Downloads a missing published file only when ``download`` (and not offline)."""
    file, published = resolve_weights(which, path)
    hub = published is not None and file == hub_checkpoint_path(published.file_name)
    found = "hub cache" if hub else "given"
    if not file.is_file() and download:
        try:
            obtain_weights(which, path, offline=offline)
            found = "downloaded"
        except WeightsError as e:
            logger.warning("%s", e)
    name = published.file_name if published else file.name
    is_default = published is not None and published.default and path is None
    url = published.url if published else None
    if not file.is_file():
        reason = _missing_message(which, file, published, offline=False)
        return WeightFileStatus(
            which, name, is_default, str(file), "missing", None, None, reason, url
        )
    sha256 = sha256_file(file)
    prefix = published.sha256_prefix if published else None
    if prefix is None:
        checksum = "none published"
    else:
        checksum = "ok" if sha256.startswith(prefix) else "MISMATCH"
    try:
        _read_checked(which, file, _layout(which, file, published), _meta_state(which))
        loads = "ok"
    except WeightsError as e:
        loads = str(e)
    return WeightFileStatus(which, name, is_default, str(file), found, sha256, checksum, loads, url)


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


def slowfast_preprocess(fast: Tensor, slow_index: Sequence[int]) -> tuple[Tensor, Tensor]:
    """SlowFast's ``(slow, fast)`` inputs from the fast pathway's ``uint8`` frames.

    ``fast``: ``(B, 32, H, W, 3)`` RGB, the frames :mod:`extract.sampling` chose. Fast: those,
    float32 ``(B, 3, 32, H, W)``; slow: the fast frames at ``slow_index`` (8 positions),
    ``(B, 3, 8, H, W)``, taken after normalising as HERO's extractor did. Pixels /255, minus
    0.45, over 0.225, per channel.
    """
    x = _normalise(fast, KINETICS_MEAN, KINETICS_STD).permute(0, 4, 1, 2, 3)  # (B, 3, 32, H, W)
    index = torch.tensor(list(slow_index), dtype=torch.long, device=fast.device)
    slow = x.index_select(2, index)  # (B, 3, 8, H, W)
    return slow, x


# ---------------------------------------------------------------------------------------------
# Models


def _run_batched(model: Any, x: Tensor, dim: int) -> Tensor:
    """``model._embed`` over ``x`` (uint8, batch first) moved to the model's device.

    ``model``: a feature module of this package (``_embed``, ``cpu_micro_batch``).

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

    Input ``uint8`` fast-pathway frames ``(B, 32, H, W, 3)`` RGB (chosen from a step's 30 fps
    window by :mod:`extract.sampling`), 224x224 in practice (``H, W`` >= 193 give the 7x7 its
    pooling needs). The slow pathway takes the 8 of them at ``slow_positions``. Output float32
    ``(B, 2304)``: slow 2048 then fast 256, taken after ``blocks[:6]`` (stem to pooling) and
    before the head's dropout and projection, averaged over any remaining T/H/W; not
    normalised (HERO's extractor's ``last_fc`` output).

    Attributes:
        net: the pytorchvideo SlowFast (its head is kept for the state dict layout, unused).
        slow_positions: the 8 fast positions of the slow pathway (default: HERO's rule,
            ``extract.sampling.slow_positions("hero")``; the extractor sets it).
        bf16: run the network under bfloat16 autocast (for CUDA); output stays float32.
        memory_format: layout the pathway inputs are put in (``prepare_for`` sets it).
        cpu_micro_batch: samples per network call on CPU (1: bit-identical rows whatever the
            batch, and faster than larger batches on CPU); 0 runs the whole batch at once.
    """

    channels_last_format = torch.channels_last_3d

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.slow_positions: tuple[int, ...] = slow_positions("hero")
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

    def _embed(self, frames: Tensor) -> Tensor:
        slow, fast = slowfast_preprocess(frames, self.slow_positions)
        slow = slow.contiguous(memory_format=self.memory_format)  # (B, 3, 8, H, W)
        fast = fast.contiguous(memory_format=self.memory_format)  # (B, 3, 32, H, W)
        trunk = self.compiled_trunk or self.trunk
        device = fast.device.type
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=self.bf16):
            x = trunk(slow, fast)  # (B, 2304, 1, 1, 1) at 224x224
        return x.float().mean(dim=(2, 3, 4))  # (B, 2304)

    @torch.no_grad()
    def forward(self, frames: Tensor | np.ndarray) -> Tensor:
        """``uint8`` fast frames ``(B, 32, H, W, 3)`` RGB to float32 features ``(B, 2304)``."""
        frames = _check_pixels(frames, 5, "(B, T, H, W, 3)")
        if frames.shape[1] != FAST_FRAMES:
            raise ValueError(
                f"SlowFast takes the {FAST_FRAMES} fast-pathway frames chosen by "
                f"extract.sampling, got {frames.shape[1]}"
            )
        return _run_batched(self, frames, SLOWFAST_DIM)


def load_resnet152(
    path: str | Path | None = None,
    *,
    random_weights: bool = False,
    seed: int = 0,
    offline: bool | None = None,
) -> tuple[ResNet152Features, WeightsInfo]:
    """ResNet-152 features in eval mode, weights from ``path`` or the torch hub cache.

    Args:
        path: a ``resnet152-394f9c45.pth`` state dict; None: ``resnet152-394f9c45.pth`` in the
            torch hub cache (:func:`hub_checkpoint_path`), downloaded there if missing.
        random_weights: build with random weights from ``seed`` instead (tests and dry runs
            only: the features are meaningless; a WARNING is logged).
        seed: seed of the random weights; the global RNG state is left untouched.
        offline: never download (None: ``$HERO_OFFLINE``).

    Raises:
        WeightsError: the file is missing, unreadable, not tensor-only, or does not fit.
    """
    net, info = _build_net("resnet152", path, random_weights, seed, offline)
    return ResNet152Features(net).eval(), info


def load_slowfast_r50(
    path: str | Path | None = None,
    *,
    random_weights: bool = False,
    seed: int = 0,
    offline: bool | None = None,
) -> tuple[SlowFastR50Features, WeightsInfo]:
    """SlowFast-R50 features in eval mode, weights from ``path`` or the torch hub cache.

    Args:
        path: PySlowFast's Caffe2 ``SLOWFAST_8x8_R50.pkl`` (a ``.pkl``: Caffe2 blobs, renamed
            by :mod:`extract.caffe2`), PyTorchVideo's ``SLOWFAST_8x8_R50.pyth`` (state dict
            under ``"model_state"``) or a bare state dict. None: ``SLOWFAST_8x8_R50.pkl`` in
            the torch hub cache, downloaded there if missing; a bare published name
            (``SLOWFAST_8x8_R50.pyth``) likewise (:func:`resolve_weights`).
        random_weights: build with random weights from ``seed`` instead (tests and dry runs
            only: the features are meaningless; a WARNING is logged).
        seed: seed of the random weights; the global RNG state is left untouched.
        offline: never download (None: ``$HERO_OFFLINE``).

    Raises:
        WeightsError: the file is missing, unreadable, not tensor-only, or does not fit.
    """
    net, info = _build_net("slowfast_r50", path, random_weights, seed, offline)
    return SlowFastR50Features(net).eval(), info


FeatureModel = TypeVar("FeatureModel", bound=nn.Module)
"""A feature module of this package: ``trunk``, ``bf16``, ``memory_format``,
``channels_last_format``, ``compiled_trunk`` and ``cpu_micro_batch`` as ResNet152Features."""


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
        channels_last: the model's ``channels_last_format`` (``torch.channels_last`` for 2D
            models, ``channels_last_3d`` for 3D ones) for the weights and the trunk's inputs.
        compile: ``torch.compile`` the trunk (preprocessing and batching stay eager).
    """
    model.to(device)
    model.bf16 = bf16
    model.memory_format = model.channels_last_format if channels_last else torch.contiguous_format
    model.to(memory_format=model.memory_format)
    model.compiled_trunk = torch.compile(model.trunk) if compile else None
    return model
