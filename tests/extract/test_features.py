"""The extractor interface and registry (extract/features.py)."""

from __future__ import annotations

import json

import pytest

from extract.config import DEFAULT_FEATURES
from extract.features import (
    EXTRACTORS,
    ImageInput,
    WindowInput,
    flops_per_step,
    get_extractor,
)
from extract.models import _NETS
from hero_data.errors import OptionError

# The widths VALUE's feature versions add up (resnet_slowfast 4352, clip-vit_slowfast 2816,
# resnet_mil-nce 3072, clip-vit_mil-nce 1536) and CLIP RN50x4's encode_image width.
DOCUMENTED = {
    "resnet": (2048, "2d", 224),
    "slowfast": (2304, "3d", 224),
    "clip_vit_b32": (512, "2d", 224),
    "clip_rn50x4": (640, "2d", 288),
    "milnce_s3d": (1024, "3d", 224),
}


def test_registry_names_each_extractor_with_its_documented_width_and_input() -> None:
    assert list(EXTRACTORS) == list(DOCUMENTED)
    for name, (dim, kind, side) in DOCUMENTED.items():
        spec = get_extractor(name)
        assert spec.name == name and spec.dim == dim and spec.input.kind == kind
        if isinstance(spec.input, ImageInput):
            assert spec.input.short_side == side
        else:
            assert spec.input == WindowInput(fps=30, size=side, frames=32)
    assert DEFAULT_FEATURES == ("resnet", "slowfast")
    widths = {n: s.dim for n, s in EXTRACTORS.items()}
    assert widths["resnet"] + widths["slowfast"] == 4352
    assert widths["clip_vit_b32"] + widths["slowfast"] == 2816
    assert widths["resnet"] + widths["milnce_s3d"] == 3072
    assert widths["clip_vit_b32"] + widths["milnce_s3d"] == 1536


def test_each_extractor_has_a_network_and_a_default_published_file() -> None:
    for spec in EXTRACTORS.values():
        assert spec.architecture in _NETS
        files = spec.weight_files
        assert files and files[0].default and files[0].url.startswith("https://")
        assert all(f.model == spec.architecture for f in files)


def test_openais_files_carry_their_whole_sha256() -> None:
    for name in ("clip_vit_b32", "clip_rn50x4"):
        f = get_extractor(name).weight_files[0]
        assert f.layout == "torchscript" and len(f.sha256_prefix or "") == 64
        assert f.url.split("/")[-2] == f.sha256_prefix  # the path OpenAI's loader checks


def test_descriptions_are_json_and_say_the_preprocessing() -> None:
    described = {n: s.describe() for n, s in EXTRACTORS.items()}
    json.dumps(described)
    assert "CLIP mean/std" in described["clip_rn50x4"]["preprocessing"]
    assert "/255 only" in described["milnce_s3d"]["preprocessing"]
    assert described["clip_rn50x4"]["input"] == {"kind": "2d", "short_side": 288, "crop": 288}


def test_an_unknown_name_is_an_option_error_listing_the_known_ones() -> None:
    with pytest.raises(OptionError, match=r"unknown feature set 'clip'.*clip_vit_b32"):
        get_extractor("clip")


def test_flops_of_vit_b32_equal_a_count_by_hand() -> None:
    # 49 patches of 3x32x32 into 768; 12 layers over 50 tokens (qkv, scores, weighted sum,
    # out projection, 4x MLP); the class token projected to 512. Two FLOPs per multiply-add.
    tokens, width = 50, 768
    layer = (
        tokens * width * 3 * width
        + 2 * tokens * tokens * width
        + tokens * width * width
        + 2 * tokens * width * 4 * width
    )
    macs = 49 * width * 3 * 32 * 32 + 12 * layer + width * 512
    assert flops_per_step("clip_vit_b32") == 2 * macs


def test_flops_of_an_uncropped_frame_grow_with_its_size() -> None:
    assert flops_per_step("resnet", (224, 398)) > flops_per_step("resnet", (224, 224)) > 0
