"""How features are extracted: :class:`ExtractConfig`, the options ``hero extract`` takes and
the ``extract:`` section of ``hero run``'s config.

It imports neither torch nor PyAV, so that reading a config is quick; the names it accepts
(:data:`BACKENDS`, :data:`SAMPLINGS`, :data:`PIXELS`, :data:`DECODERS`, :data:`FEATURES`) are
those of :mod:`extract.decode`, :mod:`extract.sampling`, :mod:`extract.pixels`,
:mod:`extract.nvdec` and the extractor registry :mod:`extract.features` (a test checks that
they agree). Whether a backend, or NVDEC, is usable is checked when
extraction starts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field, model_validator

from hero_data.configmodel import ConfigModel, Device, Flag, Number, Text, Whole, conflict
from hero_data.grid import DEFAULT_FRAME_INTERVAL, WINDOW_FPS

__all__ = [
    "BACKENDS",
    "DECODERS",
    "DEFAULT_FEATURES",
    "FEATURES",
    "PIXELS",
    "SAMPLINGS",
    "ExtractConfig",
]

Backend = Literal["pyav", "decord", "torchcodec"]
Sampling = Literal["hero", "uniform"]
Pixels = Literal["auto", "swscale", "torch"]
Decoder = Literal["auto", "cpu", "nvdec"]
BACKENDS: tuple[str, ...] = get_args(Backend)
SAMPLINGS: tuple[str, ...] = get_args(Sampling)
PIXELS: tuple[str, ...] = get_args(Pixels)
DECODERS: tuple[str, ...] = get_args(Decoder)
FEATURES: tuple[str, ...] = ("resnet", "slowfast", "clip_vit_b32", "clip_rn50x4", "milnce_s3d")
"""The extractors' names (:data:`extract.features.EXTRACTORS`' keys, in its order)."""
DEFAULT_FEATURES: tuple[str, ...] = ("resnet", "slowfast")
"""HERO's visual input, in its order."""
SECOND_IMAGE_SIDES: dict[str, int] = {"clip_rn50x4": 288}
"""Extractors whose 2D sample has another short side than the decoder's 224, and that side
(:class:`extract.features.ImageInput`); the decord backend cannot give them."""

# The weight keys of before feature sets were named: kept as the spelling of those two.
_NAMED_WEIGHTS = {"resnet": "resnet_weights", "slowfast": "slowfast_weights"}


def _feature_names(value: Any) -> Any:
    """``"clip_vit_b32,slowfast"`` (a flag) or a YAML list -> a tuple of names."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(","))
    if isinstance(value, list):
        return tuple(value)
    return value


Features = Annotated[tuple[Text, ...], BeforeValidator(_feature_names)]


class ExtractConfig(ConfigModel):
    """How features are extracted.

    Attributes:
        frame_interval: seconds per step ``L``; at least one frame of the 30 fps 3D window.
        backend: decoder backend (``pyav``, ``decord``, ``torchcodec``).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: steps per model batch.
        prefetch_steps: decoded steps queued ahead of the models (bounds memory).
        bf16: autocast the models to bfloat16 on CUDA (ignored on CPU).
        compile: ``torch.compile`` the models (CUDA; slow to start).
        sampling: SlowFast's frame choice, ``hero`` (HERO's extractor's) or ``uniform``
            (:mod:`extract.sampling`); MIL-NCE S3D reads the same 32 fast-pathway frames.
        features: the extractors to run, in order (:data:`FEATURES`; a flag gives them
            comma-separated): each is one feature column, HERO's visual input their
            concatenation. Default ``resnet,slowfast``, HERO's.
        resnet_weights: ResNet-152 ImageNet state dict; ``None``: the torch hub cache.
        slowfast_weights: ``SLOWFAST_8x8_R50.pkl`` (Caffe2) or ``.pyth``; ``None``: the
            ``.pkl`` in the torch hub cache.
        weights: weight file per extractor name of the other extractors (``clip_vit_b32:
            ViT-B-32.pt``); one not named: its published file in the torch hub cache. ResNet's
            and SlowFast's are ``resnet_weights`` and ``slowfast_weights``.
        random_weights: use seeded random weights (features are meaningless; for tests/demos);
            excludes weight files.
        offline: never download a missing weight file; ``None``: ``$HERO_OFFLINE``.
        pixels: where frames are converted to RGB and scaled: ``swscale`` (CPU, in the decode
            thread), ``torch`` (raw YUV planes to the extraction device, converted there in
            batches, :mod:`extract.pixels`; ``pyav`` backend only), ``auto`` (``torch`` on
            CUDA, ``swscale`` on CPU).
        planes_prefetch_mb: with ``torch`` pixels, the most megabytes of raw planes queued
            ahead of the models (a 1080p step holds about 75 MB of them).
        decoder: where videos are decoded: ``cpu`` (``backend``, on the CPU), ``nvdec`` (the
            GPU's hardware decoder through torchcodec, an optional extra; needs a CUDA
            ``device`` and ``torch`` pixels), ``auto`` (``nvdec`` where it is usable, video by
            video, else ``cpu``; :mod:`extract.nvdec`).
    """

    frame_interval: Number = Field(DEFAULT_FRAME_INTERVAL, gt=0)
    backend: Backend = "pyav"
    device: Device = "auto"
    batch_size: Whole = Field(16, ge=1)
    prefetch_steps: Whole = Field(32, ge=1)
    bf16: Flag = True
    compile: Flag = False
    sampling: Sampling = "hero"
    features: Features = DEFAULT_FEATURES
    resnet_weights: Text | None = None
    slowfast_weights: Text | None = None
    weights: dict[Text, Text] = Field(default_factory=dict)
    random_weights: Flag = False
    offline: Flag | None = None
    pixels: Pixels = "auto"
    planes_prefetch_mb: Whole = Field(1024, ge=1)
    decoder: Decoder = "auto"

    @model_validator(mode="after")
    def _rules(self) -> ExtractConfig:
        if round(self.frame_interval * WINDOW_FPS) < 1:
            raise conflict(
                ["frame_interval"],
                f"frame_interval must be at least {1 / (2 * WINDOW_FPS):.4g} s (one frame of the "
                f"{WINDOW_FPS} fps 3D window), got {self.frame_interval!r}",
            )
        self._check_features()
        if self.random_weights:
            for key in ("resnet_weights", "slowfast_weights", "weights"):
                if getattr(self, key):
                    raise conflict(
                        [key, "random_weights"],
                        f"{key} and random_weights exclude each other: give weight files or "
                        "random_weights: true, not both",
                    )
        if self.pixels == "torch" and self.backend != "pyav":
            raise conflict(
                ["pixels", "backend"],
                f"pixels torch converts the raw planes PyAV hands out: it needs backend pyav, "
                f"not {self.backend!r}",
            )
        second = [name for name in self.features if name in SECOND_IMAGE_SIDES]
        if self.backend == "decord" and second:
            raise conflict(
                ["backend", "features"],
                f"{second[0]} reads its 2D sample at short side {SECOND_IMAGE_SIDES[second[0]]}, "
                "and the decord backend scales frames while decoding, to 224 only: use backend "
                "pyav or torchcodec",
            )
        if self.decoder == "nvdec":
            if self.device == "cpu":
                raise conflict(
                    ["decoder", "device"],
                    "decoder nvdec decodes on the GPU: it needs a CUDA device, not 'cpu'",
                )
            if self.pixels == "swscale":
                raise conflict(
                    ["decoder", "pixels"],
                    "decoder nvdec leaves frames on the GPU, so pixel work is done there: "
                    "pixels must be torch or auto, not swscale",
                )
        return self

    def _check_features(self) -> None:
        known = ", ".join(FEATURES)
        if not self.features:
            raise conflict(["features"], f"features names no extractor; known: {known}")
        for name in self.features:
            if name not in FEATURES:
                raise conflict(["features"], f"unknown feature set {name!r}; known: {known}")
        if len(set(self.features)) != len(self.features):
            raise conflict(
                ["features"], f"features names an extractor twice: {','.join(self.features)}"
            )
        for name in self.weights:
            if name in _NAMED_WEIGHTS:
                raise conflict(
                    ["weights"],
                    f"weights.{name}: give {name}'s weight file as {_NAMED_WEIGHTS[name]}",
                )
            if name not in self.features:
                raise conflict(
                    ["weights"],
                    f"weights.{name}: {name!r} is not one of the features "
                    f"({','.join(self.features)})",
                )
        for name, key in _NAMED_WEIGHTS.items():
            if getattr(self, key) is not None and name not in self.features:
                raise conflict(
                    [key, "features"],
                    f"{key} is given but features ({','.join(self.features)}) has no {name}",
                )

    def weights_for(self, name: str) -> str | None:
        """The weight file configured for extractor ``name``; ``None``: its default."""
        if name in _NAMED_WEIGHTS:
            return getattr(self, _NAMED_WEIGHTS[name])
        return self.weights.get(name)
