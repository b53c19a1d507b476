"""MIL-NCE S3D-G features: one 1024-d row per step's window.

As HERO's extractor's ``mil-nce`` folder made them (HERO_Video_Feature_Extractor at edcc012,
``mil-nce/extract.py``, ``preprocessing.py``, ``video_loader.py``): the step's window at 30 fps,
short side 224 (swscale bicubic, long side truncated), centre crop 224 at ``int((w − 224)/2)``,
and from it the 32 frames of the same temporal sampling as SlowFast's fast pathway
(``linspace(0, 64·F/30 − 1, 32)`` clamped, :mod:`extract.sampling`); pixels ``/255`` only, no
mean or std; the network's ``mixed_5c`` output, averaged over time and space.

Why 1024 and ``mixed_5c``: the released network returns two things, ``video_embedding`` (512,
the joint text-video space, after ``fc``) and ``mixed_5c`` (1024, the pooled last block, which
its authors recommend for downstream tasks). HERO's extractor stored ``mixed_5c``
(``FEATURE_LENGTH = 1024``), and VALUE's feature versions count 1024 dims for MIL-NCE
(``resnet_mil-nce`` 3072 = 2048 + 1024, ``clip-vit_mil-nce`` 1536 = 512 + 1024).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from extract.models import WeightsInfo, _build_net, _check_pixels, _run_batched
from extract.s3dg import S3D_DIM


class MilNceS3DFeatures(nn.Module):
    """S3D-G (MIL-NCE, HowTo100M) pooled ``mixed_5c``: one 1024-d vector per window.

    Input ``uint8`` frames ``(B, T, H, W, 3)`` RGB, T, H, W even (32 x 224 x 224 in HERO's
    extractor); output float32 ``(B, 1024)``, not normalised.

    Attributes:
        net: the :class:`extract.s3dg.S3DG` (its ``fc`` and text branch kept for the state
            dict, unused).
        bf16, memory_format, cpu_micro_batch, compiled_trunk: as
            :class:`extract.models.SlowFastR50Features`.
    """

    channels_last_format = torch.channels_last_3d

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.bf16 = False
        self.memory_format = torch.contiguous_format
        self.cpu_micro_batch = 1
        self.compiled_trunk = None

    def trunk(self, x: Tensor) -> Tensor:
        """Video ``(B, 3, T, H, W)`` in [0, 1] to mixed_5c's map ``(B, 1024, t, h, w)``."""
        return self.net.mixed_5c_map(x)

    def _embed(self, frames: Tensor) -> Tensor:
        x = frames.float() / 255  # (B, T, H, W, 3), [0, 1] as MIL-NCE was trained
        x = x.permute(0, 4, 1, 2, 3).contiguous(memory_format=self.memory_format)  # (B, 3, T, H, W)
        trunk = self.compiled_trunk or self.trunk
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            x = trunk(x)  # (B, 1024, t, h, w)
        return x.float().mean(dim=(2, 3, 4))  # (B, 1024)

    @torch.no_grad()
    def forward(self, frames: Tensor | np.ndarray) -> Tensor:
        """``uint8`` frames ``(B, T, H, W, 3)`` RGB to float32 features ``(B, 1024)``."""
        return _run_batched(self, _check_pixels(frames, 5, "(B, T, H, W, 3)"), S3D_DIM)


def load_milnce_s3d(
    path: str | Path | None = None,
    *,
    random_weights: bool = False,
    seed: int = 0,
    offline: bool | None = None,
) -> tuple[MilNceS3DFeatures, WeightsInfo]:
    """MIL-NCE S3D-G features in eval mode, weights from ``path`` or the torch hub cache.

    Args:
        path: the released ``s3d_howto100m.pth`` state dict (loaded strictly, key by key);
            None: that file in the torch hub cache, downloaded there if missing (no checksum
            is published: it is checked for its length and for fitting the network).
        random_weights, seed, offline: as :func:`extract.models.load_resnet152`.

    Raises:
        WeightsError: the file is missing, unreadable, not tensor-only, or does not fit.
    """
    net, info = _build_net("s3d_howto100m", path, random_weights, seed, offline)
    return MilNceS3DFeatures(net).eval(), info
