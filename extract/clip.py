"""CLIP image features: OpenAI's ViT-B/32 (512-d at 224 px) and RN50x4 (640-d at 288 px).

As HERO's extractor's ``clip`` folder made them (HERO_Video_Feature_Extractor at edcc012,
``clip/video_loader.py``, ``clip/preprocessing.py``, ``clip/extract.py``): one frame per step
(ffmpeg's ``fps=1/L`` choice, the 2D sample ResNet-152 gets), scaled by ffmpeg's ``scale``
filter (swscale bicubic) so its short side is the model's size ``S`` with the long side
truncated, centre-cropped to ``S x S`` at ``int((w − S) / 2)``, then ``/255`` and CLIP's
mean/std; the output is ``encode_image``: the image tower's projection, not L2-normalised.
This module takes the scaled frame (short side ``S``, aspect kept: what
:func:`extract.decode.iter_steps` gives at ``S`` = 224) and crops it itself, so the frame
ResNet-152 reads is also ViT-B/32's input.

The network is open_clip's build of OpenAI's architecture (QuickGELU), whole (text tower
included, unused), so its state dict is OpenAI's file's, key by key, less the three size
entries (``input_resolution``, ``context_length``, ``vocab_size``) that loaders drop. Weights:
OpenAI's TorchScript files (:mod:`extract.weights`), read as tensors only
(:mod:`extract.torchscript`); a ``torch.save`` state dict in the same names loads as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from extract.decode import crop_offset
from extract.models import WeightsInfo, _build_net, _check_pixels, _normalise, _run_batched

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""Per-channel (R, G, B) mean of CLIP's training images, pixels scaled to [0, 1]."""
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""Per-channel (R, G, B) standard deviation of CLIP's training images, pixels in [0, 1]."""


@dataclass(frozen=True)
class ClipVariant:
    """One of OpenAI's CLIP image towers.

    Attributes:
        architecture: its weight files' model name (:mod:`extract.weights`).
        size: input side ``S`` in pixels (the frame's short side, and the crop).
        dim: ``encode_image``'s output width.
    """

    architecture: str
    size: int
    dim: int


CLIP_VIT_B32 = ClipVariant("clip_vit_b32", 224, 512)
CLIP_RN50X4 = ClipVariant("clip_rn50x4", 288, 640)
CLIP_VARIANTS = {v.architecture: v for v in (CLIP_VIT_B32, CLIP_RN50X4)}


def centre_crop(images: Tensor, side: int) -> Tensor:
    """The ``side x side`` centre of images ``(B, H, W, 3)`` whose short side is ``side``,
    at ``int((w − side) / 2)`` as ffmpeg's ``crop`` filter was told in HERO's extractor."""
    h, w = images.shape[1], images.shape[2]
    if min(h, w) != side:
        raise ValueError(f"expected images with short side {side}, got {h}x{w}")
    top, left = crop_offset(h, side), crop_offset(w, side)
    return images[:, top : top + side, left : left + side]  # (B, S, S, 3)


class ClipImageFeatures(nn.Module):
    """A CLIP image tower: one ``dim``-d row per image.

    Input ``uint8`` images ``(B, H, W, 3)`` RGB with ``min(H, W) == size`` (aspect kept);
    output float32 ``(B, dim)``, ``encode_image`` of the centre crop, not normalised (as HERO's
    extractor stored it).

    Attributes:
        net: the whole open_clip CLIP (the text tower is kept for the state dict, unused).
        size, dim: see :class:`ClipVariant`.
        bf16, memory_format, cpu_micro_batch, compiled_trunk: as
            :class:`extract.models.ResNet152Features`.
    """

    channels_last_format = torch.channels_last

    def __init__(self, net: nn.Module, variant: ClipVariant) -> None:
        super().__init__()
        self.net = net
        self.size = variant.size
        self.dim = variant.dim
        self.bf16 = False
        self.memory_format = torch.contiguous_format
        self.cpu_micro_batch = 1
        self.compiled_trunk = None

    def trunk(self, x: Tensor) -> Tensor:
        """Preprocessed images ``(B, 3, S, S)`` to ``encode_image`` rows ``(B, dim)``."""
        return self.net.encode_image(x)

    def _embed(self, images: Tensor) -> Tensor:
        x = _normalise(centre_crop(images, self.size), CLIP_MEAN, CLIP_STD)  # (B, S, S, 3)
        x = x.permute(0, 3, 1, 2).contiguous(memory_format=self.memory_format)  # (B, 3, S, S)
        trunk = self.compiled_trunk or self.trunk
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            x = trunk(x)  # (B, dim)
        return x.float()

    @torch.no_grad()
    def forward(self, images: Tensor | np.ndarray) -> Tensor:
        """``uint8`` images ``(B, H, W, 3)`` RGB, short side ``size``, to float32 ``(B, dim)``."""
        return _run_batched(self, _check_pixels(images, 4, "(B, H, W, 3)"), self.dim)


def load_clip(
    architecture: str,
    path: str | Path | None = None,
    *,
    random_weights: bool = False,
    seed: int = 0,
    offline: bool | None = None,
) -> tuple[ClipImageFeatures, WeightsInfo]:
    """A CLIP image tower in eval mode, weights from ``path`` or the torch hub cache.

    Args:
        architecture: ``"clip_vit_b32"`` or ``"clip_rn50x4"``.
        path: OpenAI's TorchScript file (``ViT-B-32.pt``, ``RN50x4.pt``) or a state dict in
            its names; None: that file in the torch hub cache, downloaded there (checked
            against the sha256 in its URL) if missing.
        random_weights: seeded random weights instead (tests and dry runs only; a WARNING is
            logged).
        seed: seed of the random weights; the global RNG state is left untouched.
        offline: never download (None: ``$HERO_OFFLINE``).

    Raises:
        WeightsError: the file is missing, unreadable, names code, or does not fit; or
            open_clip is not installed.
    """
    if architecture not in CLIP_VARIANTS:
        raise ValueError(f"architecture must be one of {sorted(CLIP_VARIANTS)}")
    net, info = _build_net(architecture, path, random_weights, seed, offline)
    return ClipImageFeatures(net, CLIP_VARIANTS[architecture]).eval(), info
