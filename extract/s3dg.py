"""S3D-G, the video network of MIL-NCE (Miech et al. 2020, trained on HowTo100M).

Our own implementation of the network whose weights were released as ``s3d_howto100m.pth``
(antoine77340/S3D_HowTo100M, ``s3dg.py``): ``S3DG().state_dict()`` has exactly that file's
keys and shapes, so it loads strictly. The released file also holds the text branch (a word
embedding and two linear layers); they are kept here, unused, for the same reason ResNet-152's
classifier is kept: a strict, key-by-key load of the published file.

The architecture (Xie et al. 2018, with the released model's "space to depth" stem)::

    (B, 3, T, H, W) in [0, 1]
    space to depth: 2x2x2 blocks to channels      (B, 24, T/2, H/2, W/2)
    conv1 2x4x4, drop the first T/H/W row         (B, 64, T/2, H/2, W/2)
    maxpool_2a, conv_2b 1x1x1, conv_2c 3x3x3 separable, gating
    maxpool_3a, mixed_3b, mixed_3c                (B, 480, ...)
    maxpool_4a, mixed_4b ... mixed_4f             (B, 832, ...)
    maxpool_5a, mixed_5b, mixed_5c                (B, 1024, t, h, w)
    mean over t, h, w                             (B, 1024)   <- "mixed_5c", what we store
    fc                                            (B, 512)    <- "video_embedding"

Every convolution is followed by batch norm and ReLU; a "separable" 3x3x3 one is a 1x3x3
spatial then a 3x1x1 temporal convolution, each with its own batch norm and ReLU. The max
pools pad as TensorFlow's "SAME" does (zeros, the extra row at the end) with ``ceil_mode``, as
the released port did. T, H and W must be even (the space-to-depth step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

S3D_DIM = 1024
"""Channels of mixed_5c: the pooled feature MIL-NCE extractors store."""
S3D_EMBED_DIM = 512
"""The joint text-video embedding (``fc``), not stored."""

# The text branch of the released file: vocabulary, word vectors, hidden width.
_VOCABULARY = 66250
_WORD_DIM = 300
_TEXT_HIDDEN = 2048

# Inception blocks: input channels, then branch 0 (1x1), branch 1 (1x1, 3x3x3), branch 2
# (1x1, 3x3x3), branch 3 (max pool, 1x1) output channels; S3D-G's table, as released.
_INCEPTION = {
    "mixed_3b": (192, 64, 96, 128, 16, 32, 32),
    "mixed_3c": (256, 128, 128, 192, 32, 96, 64),
    "mixed_4b": (480, 192, 96, 208, 16, 48, 64),
    "mixed_4c": (512, 160, 112, 224, 24, 64, 64),
    "mixed_4d": (512, 128, 128, 256, 24, 64, 64),
    "mixed_4e": (512, 112, 144, 288, 32, 64, 64),
    "mixed_4f": (528, 256, 160, 320, 32, 128, 128),
    "mixed_5b": (832, 256, 160, 320, 32, 128, 128),
    "mixed_5c": (832, 384, 192, 384, 48, 128, 128),
}


class ConvUnit(nn.Module):
    """Conv3d (no bias), batch norm, ReLU; ``separable``: a 1xkxk then a kx1x1 such pair.

    Attribute names (``conv1``, ``bn1``, ``conv2``, ``bn2``) are the released file's.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: tuple[int, int, int],
        stride: int = 1,
        padding: int | tuple[int, int, int] = 0,
        separable: bool = False,
    ) -> None:
        super().__init__()
        self.separable = separable
        if separable:
            k, p = kernel[0], padding if isinstance(padding, int) else padding[0]
            self.conv1 = nn.Conv3d(
                c_in, c_out, (1, kernel[1], kernel[2]), (1, stride, stride), (0, p, p), bias=False
            )
            self.bn1 = nn.BatchNorm3d(c_out)
            self.conv2 = nn.Conv3d(c_out, c_out, (k, 1, 1), (stride, 1, 1), (p, 0, 0), bias=False)
            self.bn2 = nn.BatchNorm3d(c_out)
        else:
            self.conv1 = nn.Conv3d(c_in, c_out, kernel, stride, padding, bias=False)
            self.bn1 = nn.BatchNorm3d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        if self.separable:
            x = F.relu(self.bn2(self.conv2(x)))
        return x


class SelfGating(nn.Module):
    """S3D-G's feature gating: channels scaled by sigmoid(fc(their mean over T, H, W))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))  # (B, C)
        return gate[:, :, None, None, None] * x


class SamePool(nn.Module):
    """Max pool with TensorFlow's "SAME" padding: ``max(k − s, 0)`` zeros per dimension, the
    odd one at the end, then ``ceil_mode`` (as the released port computed it)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        pads: list[int] = []
        for k, s in reversed(list(zip(kernel, stride, strict=True))):  # F.pad: W, H, T
            total = max(k - s, 0)
            pads += [total // 2, total - total // 2]
        self.pads = tuple(pads)
        self.pool = nn.MaxPool3d(kernel, stride, ceil_mode=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(F.pad(x, self.pads))


class Inception(nn.Module):
    """Four gated branches, concatenated: 1x1; 1x1 then separable 3x3x3 (twice over); a 3x3x3
    max pool then 1x1."""

    def __init__(self, c_in: int, b0: int, b1a: int, b1b: int, b2a: int, b2b: int, b3: int):
        super().__init__()
        self.conv_b0 = ConvUnit(c_in, b0, (1, 1, 1))
        self.conv_b1_a = ConvUnit(c_in, b1a, (1, 1, 1))
        self.conv_b1_b = ConvUnit(b1a, b1b, (3, 3, 3), padding=1, separable=True)
        self.conv_b2_a = ConvUnit(c_in, b2a, (1, 1, 1))
        self.conv_b2_b = ConvUnit(b2a, b2b, (3, 3, 3), padding=1, separable=True)
        self.maxpool_b3 = nn.MaxPool3d(3, stride=1, padding=1)
        self.conv_b3_b = ConvUnit(c_in, b3, (1, 1, 1))
        self.gating_b0 = SelfGating(b0)
        self.gating_b1 = SelfGating(b1b)
        self.gating_b2 = SelfGating(b2b)
        self.gating_b3 = SelfGating(b3)
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: Tensor) -> Tensor:
        b0 = self.gating_b0(self.conv_b0(x))
        b1 = self.gating_b1(self.conv_b1_b(self.conv_b1_a(x)))
        b2 = self.gating_b2(self.conv_b2_b(self.conv_b2_a(x)))
        b3 = self.gating_b3(self.conv_b3_b(self.maxpool_b3(x)))
        return torch.cat((b0, b1, b2, b3), dim=1)


class TextBranch(nn.Module):
    """The released file's text weights (word embedding, two linear layers); never run here,
    kept so that the file loads strictly. Its tokenizer (a word list) is not part of the file."""

    def __init__(self) -> None:
        super().__init__()
        self.word_embd = nn.Embedding(_VOCABULARY, _WORD_DIM)
        self.fc1 = nn.Linear(_WORD_DIM, _TEXT_HIDDEN)
        self.fc2 = nn.Linear(_TEXT_HIDDEN, S3D_EMBED_DIM)


def space_to_depth(x: Tensor) -> Tensor:
    """``(B, C, T, H, W)`` to ``(B, 8C, T/2, H/2, W/2)``: each 2x2x2 block's 8 values become
    channels, block position major (the order the released stem's weights expect)."""
    b, c, t, h, w = x.shape
    x = x.view(b, c, t // 2, 2, h // 2, 2, w // 2, 2)
    x = x.permute(0, 3, 5, 7, 1, 2, 4, 6)  # (B, 2, 2, 2, C, T/2, H/2, W/2)
    return x.reshape(b, 8 * c, t // 2, h // 2, w // 2)


class S3DG(nn.Module):
    """S3D-G with the released MIL-NCE model's layout; forward's first output is the stored
    feature (mixed_5c, pooled)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvUnit(24, 64, (2, 4, 4), padding=(1, 2, 2))
        self.conv_2b = ConvUnit(64, 64, (1, 1, 1))
        self.conv_2c = ConvUnit(64, 192, (3, 3, 3), padding=1, separable=True)
        self.gating = SelfGating(192)
        self.maxpool_2a = SamePool((1, 3, 3), (1, 2, 2))
        self.maxpool_3a = SamePool((1, 3, 3), (1, 2, 2))
        self.maxpool_4a = SamePool((3, 3, 3), (2, 2, 2))
        self.maxpool_5a = SamePool((2, 2, 2), (2, 2, 2))
        for name, channels in _INCEPTION.items():
            self.add_module(name, Inception(*channels))
        self.fc = nn.Linear(S3D_DIM, S3D_EMBED_DIM)
        self.text_module = TextBranch()

    def mixed_5c_map(self, x: Tensor) -> Tensor:
        """Video ``(B, 3, T, H, W)`` in [0, 1] (T, H, W even) to mixed_5c's map ``(B, 1024,
        t, h, w)``."""
        if any(n % 2 for n in x.shape[2:]):
            raise ValueError(f"S3D-G needs even T, H, W, got {tuple(x.shape[2:])}")
        x = self.conv1(space_to_depth(x))
        x = x[:, :, 1:, 1:, 1:]  # the stem's padding as TensorFlow's "SAME" would have it
        x = self.gating(self.conv_2c(self.conv_2b(self.maxpool_2a(x))))  # (B, 192, ...)
        x = self.mixed_3c(self.mixed_3b(self.maxpool_3a(x)))  # (B, 480, ...)
        x = self.maxpool_4a(x)
        for name in ("mixed_4b", "mixed_4c", "mixed_4d", "mixed_4e", "mixed_4f"):
            x = getattr(self, name)(x)  # (B, 832, ...) after 4f
        x = self.mixed_5c(self.mixed_5b(self.maxpool_5a(x)))  # (B, 1024, t, h, w)
        return x

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mixed_5c (B, 1024), video_embedding (B, 512))`` of video ``(B, 3, T, H, W)``."""
        pooled = self.mixed_5c_map(x).mean(dim=(2, 3, 4))  # (B, 1024)
        return pooled, self.fc(pooled)
