"""The published weight files, where they are cached, and fetching them safely.

Each feature model has a default file (the one HERO's extractor used) and SlowFast has an
alternative::

    resnet152     resnet152-394f9c45.pth   torchvision, ImageNet (IMAGENET1K_V1)     default
    slowfast_r50  SLOWFAST_8x8_R50.pkl     PySlowFast model zoo, Caffe2, Kinetics-400  default
    slowfast_r50  SLOWFAST_8x8_R50.pyth    PyTorchVideo model zoo, Kinetics-400     alternative
    clip_vit_b32  ViT-B-32.pt              OpenAI CLIP, TorchScript archive          default
    clip_rn50x4   RN50x4.pt                OpenAI CLIP, TorchScript archive          default
    s3d_howto100m s3d_howto100m.pth        MIL-NCE S3D-G (HowTo100M), state dict     default

Files live in the torch hub cache, ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub``,
by default ``~/.cache/torch/hub``). A file missing there is downloaded from its public URL
(:func:`download`) unless offline (``offline=True``, or ``$HERO_OFFLINE`` set to anything but
``""``/``0``/``false``/``no``), in which case the caller raises the usual "not found" error.

A download is written to a temporary file beside its target and renamed into place only after
it passed every check: the byte count the server announced, torch hub's sha256 prefix when the
file name carries one (torchvision's ``-394f9c45``), and a caller's check (the models module
reads it as weights and fits it to the architecture). Whatever fails, nothing is left in the
cache. The file's full sha256 is returned, and recorded by the dataset manifest.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from hero_data.errors import HeroError
from hero_data.progress import Progress

log = logging.getLogger(__name__)

OFFLINE_ENV = "HERO_OFFLINE"
"""Environment variable: set (to anything but "", "0", "false", "no") to never download."""

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0  # a socket that stays silent this long is a failed download


class WeightsError(HeroError):
    """A weight file that is missing, unreadable, not tensor-only, or does not fit the model."""


@dataclass(frozen=True)
class WeightFile:
    """A published weight file.

    Attributes:
        model: the architecture it is for (``"resnet152"``, ``"slowfast_r50"``,
            ``"clip_vit_b32"``, ``"clip_rn50x4"``, ``"s3d_howto100m"``).
        what: a description for messages.
        file_name: its name, in the torch hub cache too.
        url: where it is published.
        layout: ``"torch"`` (a ``torch.save`` state dict, bare or under ``"model_state"``),
            ``"caffe2"`` (a pickle of Caffe2 blobs, ``{"blobs": {name: array}}``) or
            ``"torchscript"`` (a TorchScript archive, read by :mod:`extract.torchscript`).
        sha256_prefix: the start of its sha256 when published (torch hub's convention, in the
            file name; the whole sha256 for OpenAI's CLIP files, in their URL), else None.
        default: whether the model uses it when no file is given.
    """

    model: str
    what: str
    file_name: str
    url: str
    layout: str = "torch"
    sha256_prefix: str | None = None
    default: bool = True


RESNET152_FILE = WeightFile(
    model="resnet152",
    what="torchvision's ResNet-152 ImageNet weights (IMAGENET1K_V1, the original ones HERO used)",
    file_name="resnet152-394f9c45.pth",
    url="https://download.pytorch.org/models/resnet152-394f9c45.pth",
    sha256_prefix="394f9c45",
)
SLOWFAST_R50_PKL = WeightFile(
    model="slowfast_r50",
    what="PySlowFast's Caffe2-trained SlowFast 8x8 R50 Kinetics-400 weights (the ones HERO used)",
    file_name="SLOWFAST_8x8_R50.pkl",
    url="https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/SLOWFAST_8x8_R50.pkl",
    layout="caffe2",
)
SLOWFAST_R50_PYTH = WeightFile(
    model="slowfast_r50",
    what="PyTorchVideo's SlowFast 8x8 R50 Kinetics-400 weights",
    file_name="SLOWFAST_8x8_R50.pyth",
    url="https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/SLOWFAST_8x8_R50.pyth",
    default=False,
)
# OpenAI's own CLIP files, the ones the openai/CLIP package (HERO's extractor's `clip.load`)
# downloads; the path component before the name is the file's sha256, which that package checks.
_OPENAI_CLIP = "https://openaipublic.azureedge.net/clip/models"
_VIT_B32_SHA256 = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"
_RN50X4_SHA256 = "7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd"
CLIP_VIT_B32_FILE = WeightFile(
    model="clip_vit_b32",
    what="OpenAI's CLIP ViT-B/32 weights (the TorchScript file HERO's extractor loaded)",
    file_name="ViT-B-32.pt",
    url=f"{_OPENAI_CLIP}/{_VIT_B32_SHA256}/ViT-B-32.pt",
    layout="torchscript",
    sha256_prefix=_VIT_B32_SHA256,
)
CLIP_RN50X4_FILE = WeightFile(
    model="clip_rn50x4",
    what="OpenAI's CLIP RN50x4 weights (the TorchScript file HERO's extractor loaded)",
    file_name="RN50x4.pt",
    url=f"{_OPENAI_CLIP}/{_RN50X4_SHA256}/RN50x4.pt",
    layout="torchscript",
    sha256_prefix=_RN50X4_SHA256,
)
S3D_HOWTO100M_FILE = WeightFile(
    model="s3d_howto100m",
    what="MIL-NCE's S3D-G trained on HowTo100M (the state dict HERO's extractor loaded)",
    file_name="s3d_howto100m.pth",
    url="https://www.rocq.inria.fr/cluster-willow/amiech/howto100m/s3d_howto100m.pth",
)
WEIGHT_FILES = (
    RESNET152_FILE,
    SLOWFAST_R50_PKL,
    SLOWFAST_R50_PYTH,
    CLIP_VIT_B32_FILE,
    CLIP_RN50X4_FILE,
    S3D_HOWTO100M_FILE,
)
"""Every published file the models can load, defaults first for each model."""


def default_file(model: str) -> WeightFile:
    """The file ``model`` uses when none is given."""
    for f in WEIGHT_FILES:
        if f.model == model and f.default:
            return f
    raise ValueError(f"no weight file for model {model!r}")


def published_file(model: str, name: str) -> WeightFile | None:
    """The published file of ``model`` called ``name``, if there is one."""
    return next((f for f in WEIGHT_FILES if f.model == model and f.file_name == name), None)


def hub_checkpoint_path(file_name: str) -> Path:
    """Where torch hub caches ``file_name``: ``torch.hub.get_dir()/checkpoints/<file_name>``.

    ``get_dir()`` is ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``) unless
    ``torch.hub.set_dir`` was called; it is read at each call, not at import.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def offline_from_env() -> bool:
    """Whether ``$HERO_OFFLINE`` asks never to download."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256_prefix: str | None = None,
    check: Callable[[Path], None] | None = None,
) -> str:
    """Download ``url`` to ``dest`` (atomically), with a progress bar; returns its sha256.

    ``check(path)`` may raise :class:`WeightsError` to refuse the downloaded file. On any
    failure (network, a short read, a sha256 that does not start with ``sha256_prefix``, the
    check) nothing is left at ``dest`` or beside it, and :class:`WeightsError` names the URL.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    log.warning("downloading %s to %s", url, dest)
    try:
        try:
            with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                received = 0
                with open(tmp, "wb") as out, Progress(every_s=10.0) as bars:
                    bar = bars.add(f"download {dest.name} (bytes)", total=total)
                    while block := response.read(_CHUNK):
                        out.write(block)
                        digest.update(block)
                        received += len(block)
                        bars.advance(bar, len(block))
                    bars.done(bar)
                    out.flush()
                    os.fsync(out.fileno())
        except (OSError, http.client.HTTPException, ValueError) as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            raise WeightsError(
                f"downloading {url} failed ({type(e).__name__}: {reason}); nothing was kept"
            ) from e
        if total is not None and received != total:
            raise WeightsError(
                f"downloading {url} failed: the connection ended after {received} of {total} "
                "bytes; nothing was kept"
            )
        sha256 = digest.hexdigest()
        if sha256_prefix is not None and not sha256.startswith(sha256_prefix):
            raise WeightsError(
                f"downloaded {url} but its sha256 {sha256[:16]}... does not start with "
                f"{sha256_prefix}, the published checksum: the file is corrupt or not the "
                "published one; refused, nothing was kept"
            )
        if check is not None:
            check(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    log.warning("%s: downloaded, sha256 %s", dest, sha256)
    return sha256
