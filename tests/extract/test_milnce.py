"""MIL-NCE S3D-G: the released state dict's layout loads strictly, 1024-d rows, batch-free."""

from __future__ import annotations

import pytest
import torch

from extract.milnce import MilNceS3DFeatures, load_milnce_s3d
from extract.models import _meta_state, verify_weights
from extract.s3dg import S3DG, SamePool, space_to_depth
from extract.weights import WeightsError


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.weight": (c,),
        f"{prefix}.bias": (c,),
        f"{prefix}.running_mean": (c,),
        f"{prefix}.running_var": (c,),
        f"{prefix}.num_batches_tracked": (),
    }


def _stconv(prefix: str, c_in: int, c_out: int, k: tuple[int, int, int], sep: bool = False):
    """The keys of s3dg.py's STConv3D(c_in, c_out, k, separable=sep)."""
    if sep:
        return {
            f"{prefix}.conv1.weight": (c_out, c_in, 1, k[1], k[2]),
            **_bn(f"{prefix}.bn1", c_out),
            f"{prefix}.conv2.weight": (c_out, c_out, k[0], 1, 1),
            **_bn(f"{prefix}.bn2", c_out),
        }
    return {f"{prefix}.conv1.weight": (c_out, c_in, *k), **_bn(f"{prefix}.bn1", c_out)}


def _gating(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.fc.weight": (c, c), f"{prefix}.fc.bias": (c,)}


def released_layout() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of ``s3d_howto100m.pth``, restated from the reference s3dg.py
    (antoine77340/S3D_HowTo100M: ``S3D(dict_path, 512)``, gating on, space to depth on):
    the InceptionBlock arguments as its constructor passes them, input widths chained from
    each block's output (b0 + b1b + b2b + b3b)."""
    layout = {
        **_stconv("conv1", 24, 64, (2, 4, 4)),
        **_stconv("conv_2b", 64, 64, (1, 1, 1)),
        **_stconv("conv_2c", 64, 192, (3, 3, 3), sep=True),
        **_gating("gating", 192),
    }
    blocks = [
        ("mixed_3b", 64, 96, 128, 16, 32, 32),
        ("mixed_3c", 128, 128, 192, 32, 96, 64),
        ("mixed_4b", 192, 96, 208, 16, 48, 64),
        ("mixed_4c", 160, 112, 224, 24, 64, 64),
        ("mixed_4d", 128, 128, 256, 24, 64, 64),
        ("mixed_4e", 112, 144, 288, 32, 64, 64),
        ("mixed_4f", 256, 160, 320, 32, 128, 128),
        ("mixed_5b", 256, 160, 320, 32, 128, 128),
        ("mixed_5c", 384, 192, 384, 48, 128, 128),
    ]
    c_in = 192
    for name, b0, b1a, b1b, b2a, b2b, b3 in blocks:
        layout |= _stconv(f"{name}.conv_b0", c_in, b0, (1, 1, 1))
        layout |= _stconv(f"{name}.conv_b1_a", c_in, b1a, (1, 1, 1))
        layout |= _stconv(f"{name}.conv_b1_b", b1a, b1b, (3, 3, 3), sep=True)
        layout |= _stconv(f"{name}.conv_b2_a", c_in, b2a, (1, 1, 1))
        layout |= _stconv(f"{name}.conv_b2_b", b2a, b2b, (3, 3, 3), sep=True)
        layout |= _stconv(f"{name}.conv_b3_b", c_in, b3, (1, 1, 1))
        for i, c in enumerate((b0, b1b, b2b, b3)):
            layout |= _gating(f"{name}.gating_b{i}", c)
        c_in = b0 + b1b + b2b + b3
    assert c_in == 1024
    layout |= {"fc.weight": (512, 1024), "fc.bias": (512,)}
    layout |= {
        "text_module.word_embd.weight": (66250, 300),
        "text_module.fc1.weight": (2048, 300),
        "text_module.fc1.bias": (2048,),
        "text_module.fc2.weight": (512, 2048),
        "text_module.fc2.bias": (512,),
    }
    return layout


def test_state_dict_is_the_released_layout_key_by_key() -> None:
    ours = {k: tuple(v.shape) for k, v in _meta_state("s3d_howto100m").items()}
    assert ours == released_layout()


@pytest.fixture(scope="module")
def released_state() -> dict[str, torch.Tensor]:
    """A state dict of the released layout, every tensor distinct (seeded values)."""
    g = torch.Generator().manual_seed(1)
    state = {}
    for key, shape in released_layout().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        else:
            state[key] = torch.rand(shape, generator=g) + 0.5  # positive: a valid running_var
    return state


def test_loads_a_file_of_the_released_layout_every_tensor_in_place(
    tmp_path, released_state
) -> None:
    path = tmp_path / "s3d_howto100m.pth"
    torch.save(released_state, path)
    model, info = load_milnce_s3d(path)
    loaded = model.net.state_dict()
    assert loaded.keys() == released_state.keys()
    assert all(torch.equal(loaded[k], released_state[k]) for k in released_state)
    assert info.sha256 != "random" and info.path == str(path)


def test_a_file_missing_a_tensor_is_refused_naming_it(tmp_path, released_state) -> None:
    path = tmp_path / "s3d.pth"
    torch.save(
        {k: v for k, v in released_state.items() if k != "mixed_4e.gating_b2.fc.weight"}, path
    )
    with pytest.raises(WeightsError, match=r"mixed_4e\.gating_b2\.fc\.weight"):
        verify_weights("s3d_howto100m", path)


def test_released_files_without_batch_counters_load(tmp_path, released_state) -> None:
    # Files saved before PyTorch 0.4 lack num_batches_tracked; eval mode never reads it.
    path = tmp_path / "s3d.pth"
    torch.save({k: v for k, v in released_state.items() if "num_batches" not in k}, path)
    assert verify_weights("s3d_howto100m", path).path == str(path)


@pytest.fixture(scope="module")
def milnce() -> MilNceS3DFeatures:
    return load_milnce_s3d(random_weights=True, seed=3)[0]


def test_rows_are_1024_wide_and_do_not_depend_on_the_batch(milnce) -> None:
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 4, 32, 32, 3), dtype=torch.uint8, generator=g)
    together = milnce(frames)
    assert together.shape == (2, 1024) and together.dtype == torch.float32
    for i in range(2):
        assert torch.equal(milnce(frames[i : i + 1])[0], together[i])
    assert not torch.equal(together[0], together[1])


def test_input_is_pixels_over_255_and_output_is_pooled_mixed_5c(milnce) -> None:
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (1, 4, 32, 32, 3), dtype=torch.uint8, generator=g)
    video = frames.permute(0, 4, 1, 2, 3).float() / 255  # (1, 3, 4, 32, 32)
    with torch.no_grad():
        pooled, embedding = milnce.net(video)
    assert embedding.shape == (1, 512)
    assert torch.equal(milnce(frames), pooled)


def test_odd_sizes_are_refused(milnce) -> None:
    with pytest.raises(ValueError, match="even"):
        milnce(torch.zeros(1, 5, 32, 32, 3, dtype=torch.uint8))


def test_space_to_depth_puts_each_2x2x2_block_in_channels_block_position_major() -> None:
    x = torch.arange(2 * 4 * 4 * 4).float().reshape(1, 2, 4, 4, 4)  # (B, C, T, H, W)
    y = space_to_depth(x)  # (1, 16, 2, 2, 2)
    # channel (dt·4 + dh·2 + dw)·C + c holds x[c, 2t + dt, 2h + dh, 2w + dw]
    for dt in range(2):
        for dh in range(2):
            for dw in range(2):
                for c in range(2):
                    ch = (dt * 4 + dh * 2 + dw) * 2 + c
                    assert torch.equal(y[0, ch], x[0, c, dt::2, dh::2, dw::2])


@pytest.mark.parametrize(
    ("kernel", "stride", "size", "out"),
    [((1, 3, 3), (1, 2, 2), (4, 9, 9), (4, 5, 5)), ((2, 2, 2), (2, 2, 2), (3, 5, 5), (2, 3, 3))],
)
def test_same_pool_gives_tensorflows_output_size(kernel, stride, size, out) -> None:
    # TensorFlow "SAME": ceil(size / stride) per dimension.
    y = SamePool(kernel, stride)(torch.rand(1, 1, *size))
    assert tuple(y.shape[2:]) == out


def test_network_builds_with_the_named_modules() -> None:
    net = S3DG()
    assert net.mixed_5c.out_channels == 1024 and net.fc.out_features == 512
