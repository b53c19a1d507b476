"""One interface for every feature extractor, and the registry of them by name.

An extractor (:class:`FeatureSpec`) declares what it needs from the decoder, its
preprocessing, its output width and its weights; ``load`` builds its module, which takes
``uint8`` RGB pixels channels last and returns one float32 row per input::

    name           input (per step)                                   dim  weights (model)
    resnet         2D: frame before (i+1/2)L, short side 224           2048  resnet152
    slowfast       3D: [iL,(i+1)L) at 30 fps, crop 224, 32 fast frames 2304  slowfast_r50
    clip_vit_b32   2D: frame before (i+1/2)L, short side 224, crop 224   512  clip_vit_b32
    clip_rn50x4    2D: frame before (i+1/2)L, short side 288, crop 288   640  clip_rn50x4
    milnce_s3d     3D: [iL,(i+1)L) at 30 fps, crop 224, 32 fast frames 1024  s3d_howto100m

The 3D extractors read the same 32 window slots (:func:`extract.sampling.pathway_slots`'
``fast``, SlowFast's slow pathway 8 of them), so one decode feeds them all; a 2D sample at a
short side other than 224 (RN50x4's 288) needs the decoder to scale that frame a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from extract.clip import CLIP_MEAN, CLIP_RN50X4, CLIP_STD, CLIP_VIT_B32, ClipVariant, load_clip
from extract.decode import SHORT_SIDE
from extract.milnce import load_milnce_s3d
from extract.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    KINETICS_MEAN,
    KINETICS_STD,
    WeightsInfo,
    load_resnet152,
    load_slowfast_r50,
)
from extract.s3dg import S3D_DIM
from extract.weights import WEIGHT_FILES, WeightFile
from hero_data.errors import OptionError
from hero_data.features import FeatureColumn, FeatureSet
from hero_data.grid import FAST_FRAMES, WINDOW_FPS
from hero_data.schema import RESNET_DIM, SLOWFAST_DIM


@dataclass(frozen=True)
class ImageInput:
    """A 2D sample per step: the frame on screen before ``(i + 1/2)·L``, scaled (swscale
    bicubic) so its short side is ``short_side``, long side truncated.

    Attributes:
        short_side: pixels of the scaled frame's short side.
        crop: side of the centre crop the extractor takes itself, None: the whole frame.
    """

    short_side: int
    crop: int | None = None

    kind = "2d"


@dataclass(frozen=True)
class WindowInput:
    """A 3D window per step: ``[i·L, (i+1)·L)`` resampled to ``fps``, short side ``size``
    then its centre ``size x size``; the extractor reads ``frames`` of its slots, chosen by
    the configured sampling rule (:func:`extract.sampling.pathway_slots`' fast slots).

    Attributes:
        fps: the window's frame rate.
        size: side of the centre crop (and the scaled short side).
        frames: slots read, repeats allowed.
    """

    fps: int = WINDOW_FPS
    size: int = SHORT_SIDE
    frames: int = FAST_FRAMES

    kind = "3d"


@dataclass(frozen=True)
class Preprocessing:
    """What an extractor does to its ``uint8`` pixels before the network.

    Attributes:
        mean, std: per-channel (R, G, B) normalisation of pixels scaled to [0, 1]; None:
            pixels are only scaled to [0, 1].
        text: the whole chain in words, from the decoded frame (recorded in manifests).
    """

    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    text: str


@dataclass(frozen=True)
class FeatureSpec:
    """One feature extractor.

    Attributes:
        name: its feature column's name (``resnet``, ``clip_vit_b32``, ...).
        dim: width of its rows.
        input: what it needs from the decoder per step.
        preprocessing: what it does to those pixels.
        architecture: its weight files' model name (:data:`extract.weights.WEIGHT_FILES`).
        model: the network and which output, in words (recorded in manifests).
        load: ``load(path, random_weights=, seed=, offline=)`` -> ``(module, WeightsInfo)``;
            the module maps ``uint8`` pixels to float32 ``(B, dim)`` rows.
    """

    name: str
    dim: int
    input: ImageInput | WindowInput
    preprocessing: Preprocessing
    architecture: str
    model: str
    load: Callable[..., tuple[nn.Module, WeightsInfo]]

    @property
    def weight_files(self) -> tuple[WeightFile, ...]:
        """The published files its network loads, default first."""
        return tuple(f for f in WEIGHT_FILES if f.model == self.architecture)

    def describe(self) -> dict[str, Any]:
        """What a manifest records about this extractor (no weights: those are per run)."""
        source = self.input
        needs: dict[str, Any] = {"kind": source.kind, **vars(source)}
        return {
            "dim": self.dim,
            "input": needs,
            "model": self.model,
            "preprocessing": self.preprocessing.text,
            "weights": self.weight_files[0].file_name,
        }


def _clip_loader(variant: ClipVariant) -> Callable[..., tuple[nn.Module, WeightsInfo]]:
    def load(path: str | Path | None = None, **kwargs: Any) -> tuple[nn.Module, WeightsInfo]:
        return load_clip(variant.architecture, path, **kwargs)

    return load


def _clip_spec(name: str, variant: ClipVariant, title: str) -> FeatureSpec:
    s = variant.size
    return FeatureSpec(
        name=name,
        dim=variant.dim,
        input=ImageInput(short_side=s, crop=s),
        preprocessing=Preprocessing(
            CLIP_MEAN,
            CLIP_STD,
            f"frame before (i+1/2)L, short side {s} (long side truncated), centre crop {s} at "
            f"int((w-{s})/2); /255, CLIP mean/std",
        ),
        architecture=variant.architecture,
        model=f"OpenAI CLIP {title} (open_clip's network), encode_image, not normalised",
        load=_clip_loader(variant),
    )


_WINDOW_TEXT = (
    "30 fps resample of [iL,(i+1)L), short side 224 (long side truncated), centre crop 224 at "
    "int((w-224)/2); 32 fast / 8 slow frames by the sampling rule; /255, mean 0.45, std 0.225"
)

EXTRACTORS: dict[str, FeatureSpec] = {
    spec.name: spec
    for spec in (
        FeatureSpec(
            name="resnet",
            dim=RESNET_DIM,
            input=ImageInput(short_side=SHORT_SIDE),
            preprocessing=Preprocessing(
                IMAGENET_MEAN,
                IMAGENET_STD,
                "frame before (i+1/2)L, short side 224 (long side truncated), aspect kept, "
                "ImageNet mean/std",
            ),
            architecture="resnet152",
            model="torchvision resnet152, global average pool, L2-normalised",
            load=load_resnet152,
        ),
        FeatureSpec(
            name="slowfast",
            dim=SLOWFAST_DIM,
            input=WindowInput(),
            preprocessing=Preprocessing(KINETICS_MEAN, KINETICS_STD, _WINDOW_TEXT),
            architecture="slowfast_r50",
            model="pytorchvideo slowfast_r50 (8x8), pooled slow||fast before the head",
            load=load_slowfast_r50,
        ),
        _clip_spec("clip_vit_b32", CLIP_VIT_B32, "ViT-B/32"),
        _clip_spec("clip_rn50x4", CLIP_RN50X4, "RN50x4"),
        FeatureSpec(
            name="milnce_s3d",
            dim=S3D_DIM,
            input=WindowInput(),
            preprocessing=Preprocessing(
                None,
                None,
                "30 fps resample of [iL,(i+1)L), short side 224 (long side truncated), centre "
                "crop 224 at int((w-224)/2); the 32 fast-pathway frames of the sampling rule; "
                "/255 only",
            ),
            architecture="s3d_howto100m",
            model="S3D-G (MIL-NCE, HowTo100M), mixed_5c averaged over T/H/W, before the "
            "512-d projection",
            load=load_milnce_s3d,
        ),
    )
}
"""Every extractor, by feature name (:data:`extract.config.FEATURES` names them, in this
order)."""


def get_extractor(name: str) -> FeatureSpec:
    """The extractor called ``name``; :class:`OptionError` naming the known ones otherwise."""
    if name not in EXTRACTORS:
        raise OptionError(
            f"unknown feature set {name!r}; known: {', '.join(EXTRACTORS)}", key="features"
        )
    return EXTRACTORS[name]


def feature_set(
    names: Sequence[str], weights_sha256: Mapping[str, str] | None = None
) -> FeatureSet:
    """The dataset feature set the extractors ``names`` make, in order: each column its
    extractor's width and, as its extractor config, :meth:`FeatureSpec.describe` plus the
    sha256 of the weights used (``"random"``) where ``weights_sha256`` gives it."""
    columns = []
    for name in names:
        spec = get_extractor(name)
        config = spec.describe()
        if weights_sha256 is not None and name in weights_sha256:
            config["weights_sha256"] = weights_sha256[name]
        columns.append(FeatureColumn(name, spec.dim, config))
    return FeatureSet(tuple(columns))


def flops_per_step(name: str, frame: tuple[int, int] = (224, 398)) -> int:
    """Floating-point operations of one step's network pass (``torch.utils.flop_counter``:
    2 per multiply-add of convolutions and matrix products; normalisation, activations and
    pooling not counted), counted on the ``meta`` device, so nothing is computed.

    ``frame``: (height, width) of a 2D sample that is not cropped (ResNet-152's; 398x224 is
    a 16:9 video scaled to short side 224). Cropped inputs are ``S x S``; windows 32 frames
    (SlowFast's slow pathway 8) of 224x224.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from extract.clip import CLIP_VARIANTS, ClipImageFeatures
    from extract.milnce import MilNceS3DFeatures
    from extract.models import _NETS, ResNet152Features, SlowFastR50Features

    spec = get_extractor(name)
    with torch.device("meta"):
        net = _NETS[spec.architecture]()
    source = spec.input

    def empty(*shape: int) -> Any:
        return torch.empty(*shape, device="meta")

    if name == "slowfast":
        model: Any = SlowFastR50Features(net)
        size = source.size
        inputs = (
            empty(1, 3, len(model.slow_positions), size, size),  # slow (B, 3, 8, S, S)
            empty(1, 3, FAST_FRAMES, size, size),  # fast (B, 3, 32, S, S)
        )
    elif isinstance(source, WindowInput):
        model = MilNceS3DFeatures(net)
        inputs = (empty(1, 3, source.frames, source.size, source.size),)
    elif spec.architecture in CLIP_VARIANTS:
        model = ClipImageFeatures(net, CLIP_VARIANTS[spec.architecture])
        side = source.crop or source.short_side
        inputs = (empty(1, 3, side, side),)
    else:
        model = ResNet152Features(net)
        inputs = (empty(1, 3, *frame),)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.trunk(*inputs)
    return int(counter.get_total_flops())
