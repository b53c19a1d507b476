"""CLIP ViT-B/32 and RN50x4: OpenAI's file layout loads, crop and normalisation as HERO's
extractor, documented widths, rows free of the batch (the last two build the real networks:
slow tier)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor, nn

from extract import weights
from extract.clip import (
    CLIP_MEAN,
    CLIP_RN50X4,
    CLIP_STD,
    CLIP_VIT_B32,
    ClipImageFeatures,
    load_clip,
)
from extract.models import _meta_state, verify_weights
from extract.weights import WeightsError, sha256_file
from tests.extract.test_torchscript import traced_archive

_CONTEXT, _VOCAB = 77, 49408


def _ln(prefix: str, width: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (width,), f"{prefix}.bias": (width,)}


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.weight": (c,),
        f"{prefix}.bias": (c,),
        f"{prefix}.running_mean": (c,),
        f"{prefix}.running_var": (c,),
        f"{prefix}.num_batches_tracked": (),
    }


def _transformer(prefix: str, width: int, layers: int) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for i in range(layers):
        p = f"{prefix}.resblocks.{i}"
        out |= {
            f"{p}.attn.in_proj_weight": (3 * width, width),
            f"{p}.attn.in_proj_bias": (3 * width,),
            f"{p}.attn.out_proj.weight": (width, width),
            f"{p}.attn.out_proj.bias": (width,),
            **_ln(f"{p}.ln_1", width),
            f"{p}.mlp.c_fc.weight": (4 * width, width),
            f"{p}.mlp.c_fc.bias": (4 * width,),
            f"{p}.mlp.c_proj.weight": (width, 4 * width),
            f"{p}.mlp.c_proj.bias": (width,),
            **_ln(f"{p}.ln_2", width),
        }
    return out


def _text(embed: int, width: int) -> dict[str, tuple[int, ...]]:
    return {
        "positional_embedding": (_CONTEXT, width),
        "text_projection": (width, embed),
        "logit_scale": (),
        "token_embedding.weight": (_VOCAB, width),
        **_transformer("transformer", width, 12),
        **_ln("ln_final", width),
        # sizes, not weights: OpenAI's files carry them, loaders drop them
        "input_resolution": (),
        "context_length": (),
        "vocab_size": (),
    }


def vit_b32_layout() -> dict[str, tuple[int, ...]]:
    """OpenAI's ``ViT-B-32.pt`` state dict, restated from openai/CLIP's model.py
    (VisionTransformer(224, patch 32, width 768, 12 layers), embed 512, text width 512)."""
    width, grid = 768, 224 // 32
    return {
        "visual.class_embedding": (width,),
        "visual.positional_embedding": (grid * grid + 1, width),
        "visual.proj": (width, 512),
        "visual.conv1.weight": (width, 3, 32, 32),
        **_ln("visual.ln_pre", width),
        **_transformer("visual.transformer", width, 12),
        **_ln("visual.ln_post", width),
        **_text(512, 512),
    }


def rn50x4_layout() -> dict[str, tuple[int, ...]]:
    """OpenAI's ``RN50x4.pt`` state dict, restated from openai/CLIP's model.py
    (ModifiedResNet(layers (4, 6, 10, 6), width 80, 288 px), embed 640, text width 640)."""
    width, half = 80, 40
    out = {
        "visual.conv1.weight": (half, 3, 3, 3),
        **_bn("visual.bn1", half),
        "visual.conv2.weight": (half, half, 3, 3),
        **_bn("visual.bn2", half),
        "visual.conv3.weight": (width, half, 3, 3),
        **_bn("visual.bn3", width),
    }
    inplanes = width
    for layer, blocks in enumerate((4, 6, 10, 6)):
        planes = width * 2**layer
        for b in range(blocks):
            p = f"visual.layer{layer + 1}.{b}"
            out |= {
                f"{p}.conv1.weight": (planes, inplanes, 1, 1),
                **_bn(f"{p}.bn1", planes),
                f"{p}.conv2.weight": (planes, planes, 3, 3),
                **_bn(f"{p}.bn2", planes),
                f"{p}.conv3.weight": (4 * planes, planes, 1, 1),
                **_bn(f"{p}.bn3", 4 * planes),
            }
            if b == 0:  # stride 2, or inplanes != 4 * planes (layer 1): a downsample branch
                out |= {
                    f"{p}.downsample.0.weight": (4 * planes, inplanes, 1, 1),
                    **_bn(f"{p}.downsample.1", 4 * planes),
                }
            inplanes = 4 * planes
    embed = width * 32  # 2560
    out |= {
        "visual.attnpool.positional_embedding": ((288 // 32) ** 2 + 1, embed),
        **{f"visual.attnpool.{n}_proj.weight": (embed, embed) for n in "kqv"},
        **{f"visual.attnpool.{n}_proj.bias": (embed,) for n in "kqv"},
        "visual.attnpool.c_proj.weight": (640, embed),
        "visual.attnpool.c_proj.bias": (640,),
    }
    return out | _text(640, 640)


_SIZES = ("input_resolution", "context_length", "vocab_size")


@pytest.mark.parametrize(
    ("architecture", "layout"), [("clip_vit_b32", vit_b32_layout), ("clip_rn50x4", rn50x4_layout)]
)
def test_network_is_openais_layout_less_its_size_entries(architecture, layout) -> None:
    ours = {k: tuple(v.shape) for k, v in _meta_state(architecture).items()}
    expected = {k: s for k, s in layout().items() if k not in _SIZES}
    assert ours == expected


def _published_state(layout: dict[str, tuple[int, ...]], size: int) -> dict[str, Tensor]:
    """Every tensor of ``layout`` in float16, as OpenAI saved them, each a broadcast view of
    one value so that the archive stays small; the size entries as integers."""
    state = {}
    for i, (key, shape) in enumerate(layout.items()):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        else:
            state[key] = torch.tensor(0.5 + i * 1e-4, dtype=torch.float16).expand(shape)
    state |= {
        "input_resolution": torch.tensor(size),
        "context_length": torch.tensor(_CONTEXT),
        "vocab_size": torch.tensor(_VOCAB),
    }
    return state


@pytest.mark.parametrize(
    ("architecture", "layout", "size"),
    [("clip_vit_b32", vit_b32_layout, 224), ("clip_rn50x4", rn50x4_layout, 288)],
)
def test_an_archive_in_openais_layout_is_read_and_fits(tmp_path, architecture, layout, size):
    path = tmp_path / "model.pt"
    traced_archive(_published_state(layout(), size), path)
    info = verify_weights(architecture, path)
    assert info.path == str(path) and len(info.sha256) == 64


def test_an_archive_missing_a_tensor_is_refused_naming_it(tmp_path) -> None:
    state = _published_state(vit_b32_layout(), 224)
    del state["visual.transformer.resblocks.7.mlp.c_fc.bias"]
    path = tmp_path / "ViT-B-32.pt"
    traced_archive(state, path)
    with pytest.raises(WeightsError, match=r"missing key 'visual\.transformer\.resblocks\.7"):
        verify_weights("clip_vit_b32", path)


class _Recorder(nn.Module):
    """Stands in for open_clip's CLIP: records what encode_image is given."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.seen: list[Tensor] = []
        self.scale = nn.Parameter(torch.ones(()))
        self.dim = dim

    def encode_image(self, x: Tensor) -> Tensor:
        self.seen.append(x)
        return x.mean(dim=(2, 3)).repeat(1, self.dim // 3 + 1)[:, : self.dim] * self.scale


@pytest.mark.parametrize(("variant", "h", "w"), [(CLIP_VIT_B32, 224, 397), (CLIP_RN50X4, 401, 288)])
def test_input_is_the_centre_crop_over_255_in_clips_mean_and_std(variant, h, w) -> None:
    recorder = _Recorder(variant.dim)
    model = ClipImageFeatures(recorder, variant)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, h, w, 3), dtype=torch.uint8, generator=g)
    rows = model(images)
    assert rows.shape == (2, variant.dim)
    s = variant.size
    top, left = int((h - s) / 2), int((w - s) / 2)  # HERO's ffmpeg crop offsets
    crop = images[:, top : top + s, left : left + s].float() / 255
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    expected = ((crop - mean) / std).permute(0, 3, 1, 2)  # (B, 3, S, S)
    seen = torch.cat(recorder.seen)  # one call per image on the CPU
    assert len(recorder.seen) == 2
    torch.testing.assert_close(seen, expected, rtol=0, atol=1e-6)


def test_a_frame_at_another_size_is_refused() -> None:
    model = ClipImageFeatures(_Recorder(512), CLIP_VIT_B32)
    with pytest.raises(ValueError, match="short side 224"):
        model(torch.zeros(1, 288, 300, 3, dtype=torch.uint8))


@pytest.mark.slow
def test_openais_vit_b32_archive_loads_every_tensor_in_place(tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    state = {
        k: (torch.rand(s, generator=g).half() if not k.endswith("_batches_tracked") else v)
        for (k, s), v in zip(
            vit_b32_layout().items(), _published_state(vit_b32_layout(), 224).values(), strict=True
        )
    }
    path = tmp_path / "ViT-B-32.pt"
    traced_archive(state, path)
    model, info = load_clip("clip_vit_b32", path)
    assert info.path == str(path)
    loaded = model.net.state_dict()
    assert loaded.keys() == {k for k in state if k not in _SIZES}
    for key, value in loaded.items():
        assert torch.equal(value, state[key].float()), key  # float32 copies of the fp16 file


@pytest.mark.slow
@pytest.mark.parametrize("variant", [CLIP_VIT_B32, CLIP_RN50X4])
def test_rows_have_the_documented_width_and_do_not_depend_on_the_batch(variant) -> None:
    model, _ = load_clip(variant.architecture, random_weights=True, seed=2)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2, variant.size, variant.size + 30, 3), generator=g)
    together = model(images.to(torch.uint8))
    assert together.shape == (2, variant.dim) and together.dtype == torch.float32
    for i in range(2):
        assert torch.equal(model(images[i : i + 1].to(torch.uint8))[0], together[i])
    assert not torch.equal(together[0], together[1])


@pytest.mark.parametrize("published_sha", ["right", "0" * 64])
def test_openais_file_is_downloaded_only_with_its_whole_sha256(
    tmp_path, monkeypatch, published_sha
):
    source = tmp_path / "served" / "ViT-B-32.pt"
    source.parent.mkdir()
    traced_archive(_published_state(vit_b32_layout(), 224), source)
    sha = sha256_file(source) if published_sha == "right" else published_sha
    moved = dataclasses.replace(weights.CLIP_VIT_B32_FILE, url=source.as_uri(), sha256_prefix=sha)
    files = tuple(moved if f.model == "clip_vit_b32" else f for f in weights.WEIGHT_FILES)
    monkeypatch.setattr(weights, "WEIGHT_FILES", files)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    if published_sha == "right":
        info = verify_weights("clip_vit_b32", offline=False)
        assert info.path == str(hub / "ViT-B-32.pt") and info.sha256 == sha
    else:
        with pytest.raises(WeightsError, match="does not start with 0000"):
            verify_weights("clip_vit_b32", offline=False)
        assert not hub.exists() or not any(hub.iterdir())
