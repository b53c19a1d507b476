"""The extraction config: the names it accepts are the extractor's, and its errors."""

from __future__ import annotations

import pytest

from extract import decode, features, nvdec, pixels, sampling
from extract.config import (
    BACKENDS,
    DECODERS,
    DEFAULT_FEATURES,
    FEATURES,
    PIXELS,
    SAMPLINGS,
    SECOND_IMAGE_SIDES,
    ExtractConfig,
)
from hero_data.errors import OptionError


def test_the_names_a_config_accepts_are_the_extractors() -> None:
    assert BACKENDS == decode.BACKENDS
    assert SAMPLINGS == sampling.SAMPLINGS
    assert PIXELS == pixels.PIXELS
    assert DECODERS == nvdec.DECODERS
    assert ExtractConfig().sampling == sampling.DEFAULT_SAMPLING
    assert tuple(features.EXTRACTORS) == FEATURES
    assert ExtractConfig().features == DEFAULT_FEATURES == ("resnet", "slowfast")
    assert {
        name: spec.input.short_side
        for name, spec in features.EXTRACTORS.items()
        if isinstance(spec.input, features.ImageInput)
        and spec.input.short_side != decode.SHORT_SIDE
    } == SECOND_IMAGE_SIDES


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"batch_size": 0}, "batch_size", "batch_size must be at least 1, got 0"),
        ({"device": "gpu"}, "device", "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ({"bf16": "yes"}, "bf16", "bf16 must be true or false, got 'yes'"),
        ({"prefetch_step": 4}, "prefetch_step", "did you mean 'prefetch_steps'?"),
        (
            {"pixels": "torch", "backend": "decord"},
            "pixels",
            "pixels torch converts the raw planes PyAV hands out: it needs backend pyav",
        ),
        (
            {"features": "clip_vit_b32,resnet50"},
            "features",
            "unknown feature set 'resnet50'; known: resnet, slowfast, clip_vit_b32, "
            "clip_rn50x4, milnce_s3d",
        ),
        ({"features": ["slowfast", "slowfast"]}, "features", "names an extractor twice"),
        (
            {"features": "clip_rn50x4,slowfast", "backend": "decord"},
            "backend",
            "clip_rn50x4 reads its 2D sample at short side 288, and the decord backend scales "
            "frames while decoding, to 224 only: use backend pyav or torchcodec",
        ),
        ({"features": []}, "features", "features names no extractor"),
        (
            {"weights": {"resnet": "r.pth"}},
            "weights",
            "weights.resnet: give resnet's weight file as resnet_weights",
        ),
        (
            {"weights": {"milnce_s3d": "s3d.pth"}},
            "weights",
            "weights.milnce_s3d: 'milnce_s3d' is not one of the features",
        ),
        (
            {"features": "clip_vit_b32", "slowfast_weights": "s.pkl"},
            "slowfast_weights",
            "slowfast_weights is given but features",
        ),
        (
            {"features": "milnce_s3d", "weights": {"milnce_s3d": "s.pth"}, "random_weights": True},
            "weights",
            "weights and random_weights exclude each other",
        ),
    ],
)
def test_a_bad_option_is_an_option_error_naming_its_key(
    values: dict[str, object], key: str, message: str
) -> None:
    with pytest.raises(OptionError, match=message.replace("?", r"\?")) as e:
        ExtractConfig(**values)  # type: ignore[arg-type]
    assert e.value.key == key


def test_features_are_read_from_a_flag_or_a_list_and_weights_per_name() -> None:
    flag = ExtractConfig(features="clip_vit_b32, slowfast", weights={"clip_vit_b32": "v.pt"})
    listed = ExtractConfig(features=["clip_vit_b32", "slowfast"], slowfast_weights="s.pkl")
    assert flag.features == listed.features == ("clip_vit_b32", "slowfast")
    assert flag.weights_for("clip_vit_b32") == "v.pt" and flag.weights_for("slowfast") is None
    assert listed.weights_for("slowfast") == "s.pkl"
    assert ExtractConfig(resnet_weights="r.pth").weights_for("resnet") == "r.pth"


def test_a_config_is_frozen_and_copied_with_changes() -> None:
    cfg = ExtractConfig(batch_size=2.0)  # type: ignore[arg-type]  # a whole float is a whole number
    assert cfg.batch_size == 2 and isinstance(cfg.batch_size, int)
    assert cfg.model_copy(update={"device": "cpu"}).device == "cpu"
    with pytest.raises(Exception, match="frozen"):
        cfg.device = "cpu"  # type: ignore[misc]
