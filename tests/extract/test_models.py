"""extract.models: preprocessing, shapes, determinism and weight-file handling (random weights)."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from extract.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ResNet152Features,
    SlowFastR50Features,
    WeightsError,
    WeightsInfo,
    hub_checkpoint_path,
    load_resnet152,
    load_slowfast_r50,
    prepare_for,
    resnet_preprocess,
    slowfast_preprocess,
)
from extract.sampling import slow_positions
from hero_data.grid import FAST_FRAMES

RESNET_FILE = "resnet152-394f9c45.pth"
SLOWFAST_FILE = "SLOWFAST_8x8_R50.pkl"
SLOWFAST_PYTH = "SLOWFAST_8x8_R50.pyth"


def pixels(*shape: int, seed: int = 0) -> torch.Tensor:
    """Seeded random uint8 pixels of ``shape``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)


def tiny_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Zeros of ``state``'s shapes, stored as broadcast views so a saved file is a few KiB."""
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in state.items()}


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def resnet() -> ResNet152Features:
    return load_resnet152(random_weights=True)[0]


@pytest.fixture(scope="module")
def slowfast() -> SlowFastR50Features:
    return load_slowfast_r50(random_weights=True)[0]


@pytest.fixture(scope="module")
def windows() -> torch.Tensor:
    """Two samples of 32 fast-pathway frames, 224x224."""
    return pixels(2, 32, 224, 224, 3, seed=1)


@pytest.fixture(scope="module")
def slowfast_out(slowfast: SlowFastR50Features, windows: torch.Tensor) -> torch.Tensor:
    """``slowfast(windows)``, computed once (about 1.5 s a sample on CPU)."""
    return slowfast(windows)


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$TORCH_HOME in tmp_path; returns the hub checkpoints folder it implies."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert Path(torch.hub.get_dir()) == checkpoints.parent  # get_dir reads TORCH_HOME per call
    return checkpoints


# --- preprocessing ---------------------------------------------------------------------------


def test_resnet_preprocess_matches_hand_written_reference():
    images = pixels(2, 3, 5, 3)
    ref = np.empty((2, 3, 3, 5))
    for b in range(2):
        for c in range(3):
            for y in range(3):
                for x in range(5):
                    v = images[b, y, x, c].item() / 255
                    ref[b, c, y, x] = (v - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
    out = resnet_preprocess(images)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 3, 5)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sampling", ["hero", "uniform"])
def test_slowfast_preprocess_keeps_fast_and_takes_slow_at_its_positions(sampling):
    # Frame t holds value t in R, 100 + t in G, 200 + t in B, so the frames read back.
    t = torch.arange(FAST_FRAMES, dtype=torch.uint8).view(1, FAST_FRAMES, 1, 1, 1)
    frames = torch.cat([t, t + 100, t + 200], dim=-1).expand(2, FAST_FRAMES, 4, 6, 3)
    positions = slow_positions(sampling)
    slow, fast = slowfast_preprocess(frames, positions)
    assert fast.shape == (2, 3, FAST_FRAMES, 4, 6) and fast.dtype == torch.float32
    assert slow.shape == (2, 3, 8, 4, 6)

    def read(x: torch.Tensor) -> torch.Tensor:
        return ((x[0, :, :, 2, 3] * 0.225 + 0.45) * 255).round().to(torch.int64)  # (3, T)

    every = torch.arange(FAST_FRAMES)
    assert torch.equal(read(fast), torch.stack([every, every + 100, every + 200]))
    picked = torch.tensor(positions)
    assert torch.equal(read(slow), torch.stack([picked, picked + 100, picked + 200]))
    want = [0, 4, 8, 13, 17, 22, 26, 31] if sampling == "hero" else list(range(0, 32, 4))
    assert list(positions) == want


def test_resnet_forward_is_preprocess_then_trunk_then_l2(monkeypatch):
    model = ResNet152Features(torch.nn.Identity())  # type: ignore[arg-type]
    model.anchor = torch.nn.Parameter(torch.zeros(1))  # forward takes its device from this
    monkeypatch.setattr(model, "trunk", lambda x: x.mean(dim=(2, 3), keepdim=True))
    images = pixels(3, 4, 7, 3)
    ref = F.normalize(resnet_preprocess(images).mean(dim=(2, 3)), dim=1)
    torch.testing.assert_close(model(images), ref, rtol=0, atol=1e-6)


def test_slowfast_forward_feeds_slow_and_fast_to_the_trunk(monkeypatch):
    model = SlowFastR50Features(torch.nn.Identity())
    model.anchor = torch.nn.Parameter(torch.zeros(1))
    seen = []

    def trunk(slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        seen.append((slow, fast))
        return torch.cat([slow, fast], dim=2)  # (B, 3, 40, H, W)

    monkeypatch.setattr(model, "trunk", trunk)
    windows = pixels(2, 32, 3, 5, 3)
    out = model(windows)
    slow, fast = slowfast_preprocess(windows, slow_positions("hero"))
    torch.testing.assert_close(out, torch.cat([slow, fast], dim=2).mean(dim=(2, 3, 4)))
    assert len(seen) == 2  # one sample per call on CPU
    torch.testing.assert_close(seen[1][1], fast[1:])


# --- ResNet-152 ------------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(224, 398), (398, 224)])
def test_resnet_features_any_aspect_unit_rows(resnet, hw):
    out = resnet(pixels(1, *hw, 3))
    assert out.shape == (1, 2048) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(1))


def test_resnet_row_independent_of_batch(resnet):
    images = pixels(4, 64, 96, 3, seed=2)
    batch = resnet(images)
    assert batch.shape == (4, 2048)
    torch.testing.assert_close(batch.norm(dim=1), torch.ones(4))
    assert torch.equal(resnet(images[2:3])[0], batch[2])
    shuffled = resnet(images[[3, 2, 0, 1]])
    assert torch.equal(shuffled[1], batch[2]) and torch.equal(shuffled[0], batch[3])
    assert torch.equal(resnet(images.numpy())[1], batch[1])  # numpy input too


def test_resnet_empty_batch_and_bad_input(resnet):
    assert resnet(torch.zeros(0, 32, 32, 3, dtype=torch.uint8)).shape == (0, 2048)
    with pytest.raises(ValueError, match="uint8"):
        resnet(torch.zeros(1, 32, 32, 3))
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        resnet(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_random_builds_identical_and_warned_and_rng_untouched(resnet, caplog):
    before = torch.get_rng_state()
    with caplog.at_level(logging.WARNING, logger="extract.models"):
        again, info = load_resnet152(random_weights=True)
    assert torch.equal(torch.get_rng_state(), before)
    assert info == WeightsInfo("resnet152", None, "random")
    assert any(
        r.levelno == logging.WARNING
        and "RANDOM WEIGHTS" in r.message
        and "meaningless" in r.message
        for r in caplog.records
    )
    assert_same_parameters(again, resnet)
    images = pixels(2, 48, 64, 3, seed=3)
    assert torch.equal(again(images), resnet(images))
    other, _ = load_resnet152(random_weights=True, seed=1)
    assert not torch.equal(other.net.conv1.weight, resnet.net.conv1.weight)


def test_resnet_weight_file_round_trip(resnet, tmp_path, caplog):
    path = tmp_path / "weights.pth"
    torch.save(resnet.net.state_dict(), path)
    with caplog.at_level(logging.WARNING, logger="extract.models"):
        loaded, info = load_resnet152(path)
    assert info.name == "resnet152" and info.path == str(path)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert any("not that of the published" in r.message for r in caplog.records)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    images = pixels(2, 48, 64, 3, seed=4)
    assert torch.equal(loaded(images), resnet(images))


def test_resnet_found_in_hub_cache_by_standard_name(resnet, torch_home):
    state = tiny_state(resnet.net.state_dict())
    torch_home.mkdir(parents=True)
    torch.save(state, torch_home / RESNET_FILE)
    assert hub_checkpoint_path(RESNET_FILE) == torch_home / RESNET_FILE
    loaded, info = load_resnet152()
    assert info.path == str(torch_home / RESNET_FILE)
    assert torch.equal(loaded.net.conv1.weight, torch.zeros(64, 3, 7, 7))


@pytest.mark.parametrize(
    ("loader", "file_name", "url"),
    [
        (load_resnet152, RESNET_FILE, "https://download.pytorch.org/models/" + RESNET_FILE),
        (
            load_slowfast_r50,
            SLOWFAST_FILE,
            "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/" + SLOWFAST_FILE,
        ),
    ],
)
def test_missing_file_says_what_to_get_and_where(loader, file_name, url, torch_home, tmp_path):
    with pytest.raises(WeightsError) as err:
        loader()  # offline in tests ($HERO_OFFLINE): nothing is downloaded
    message = str(err.value)
    assert file_name in message and url in message and str(torch_home / file_name) in message
    assert "offline" in message
    with pytest.raises(WeightsError, match=r"nowhere\.pth"):
        loader(tmp_path / "nowhere.pth")


def test_random_weights_and_a_path_conflict(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        load_resnet152(tmp_path / "x.pth", random_weights=True)


# --- weight-file checks (tiny files: zeros stored as broadcast views) --------------------------


@pytest.fixture(scope="module")
def resnet_zeros(resnet: ResNet152Features) -> dict[str, torch.Tensor]:
    return tiny_state(resnet.net.state_dict())


def test_wrong_shape_names_the_key(resnet_zeros, tmp_path):
    state = dict(resnet_zeros, **{"layer2.0.conv1.weight": torch.zeros(128, 256, 3, 1)})
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(
        WeightsError, match=r"'layer2\.0\.conv1\.weight' has shape \(128, 256, 3, 1\)"
    ):
        load_resnet152(tmp_path / "w.pth")


def test_missing_and_unexpected_keys(resnet_zeros, tmp_path):
    state = {k: v for k, v in resnet_zeros.items() if k != "layer3.4.bn2.weight"}
    state["head.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(WeightsError) as err:
        load_resnet152(tmp_path / "w.pth")
    assert "missing key 'layer3.4.bn2.weight'" in str(err.value)
    assert "unexpected key 'head.weight'" in str(err.value)


def test_missing_batchnorm_counters_are_tolerated(resnet_zeros, tmp_path):
    # Files saved before PyTorch 0.4 (like torchvision's 2017 ResNets) have no such counters.
    state = {k: v for k, v in resnet_zeros.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "w.pth")
    load_resnet152(tmp_path / "w.pth")


def test_non_finite_and_non_state_dict_files_refused(resnet_zeros, tmp_path):
    state = dict(resnet_zeros, **{"fc.bias": torch.full((1000,), float("nan"))})
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(WeightsError, match=r"'fc\.bias' holds NaN"):
        load_resnet152(tmp_path / "nan.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="not a state dict"):
        load_resnet152(tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(b"<html>404 not found</html>")
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        load_resnet152(tmp_path / "junk.pth")


class _RunsCode:
    """Unpickling this calls ``os.makedirs(path)``: harmless, but proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (str(self.path),))


def test_pickle_that_runs_code_is_refused(resnet_zeros, tmp_path):
    marker = tmp_path / "code-ran"
    state = dict(resnet_zeros, **{"fc.bias": _RunsCode(marker)})
    torch.save(state, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="refused") as err:
        load_resnet152(tmp_path / "evil.pth")
    assert "makedirs" in str(err.value) and "weights_only=False" not in str(err.value)
    assert not marker.exists()


# --- SlowFast-R50 ----------------------------------------------------------------------------


def test_slowfast_shapes_and_row_independent_of_batch(slowfast, windows, slowfast_out):
    assert slowfast_out.shape == (2, 2304) and slowfast_out.dtype == torch.float32
    assert torch.isfinite(slowfast_out).all()
    assert not torch.equal(slowfast_out[0], slowfast_out[1])
    assert torch.equal(slowfast(windows[1:])[0], slowfast_out[1])


def test_slowfast_row_is_the_pooled_slow_fast_input_of_the_head(slowfast, windows, slowfast_out):
    """The 2304-d row is what pytorchvideo's own forward hands its classification head (slow
    then fast, pooled), i.e. taken before the head's projection to 400 classes."""
    net = slowfast.net
    seen: dict[str, list[torch.Tensor]] = {}

    def keep(name: str):
        def hook(module: torch.nn.Module, args: tuple) -> None:
            x = args[0]
            seen[name] = [t.clone() for t in x] if isinstance(x, list) else [x.clone()]

        return hook

    pool, head = net.blocks[5], net.blocks[6]
    hooks = [
        pool.register_forward_pre_hook(keep("pool")),
        head.register_forward_pre_hook(keep("head")),
    ]
    try:
        with torch.no_grad():
            # the unmodified network, on the same pathway inputs
            logits = net(list(slowfast_preprocess(windows[:1], slowfast.slow_positions)))
    finally:
        for h in hooks:
            h.remove()
    assert type(head).__name__ == "ResNetBasicHead" and head.proj.in_features == 2304
    assert logits.shape == (1, 400)
    (head_input,) = seen["head"]
    assert head_input.shape == (1, 2304, 1, 1, 1)  # (B, C, T, H, W) pooled to one cell at 224
    torch.testing.assert_close(slowfast_out[:1], head_input.flatten(1), rtol=0, atol=1e-6)
    slow, fast = seen["pool"]  # the pathways before pooling: (1, 2048, 8, 7, 7), (1, 256, 32, 7, 7)
    assert slow.shape[:3] == (1, 2048, 8) and fast.shape[:3] == (1, 256, 32)
    torch.testing.assert_close(slowfast_out[0, :2048], slow[0].mean(dim=(1, 2, 3)))
    torch.testing.assert_close(slowfast_out[0, 2048:], fast[0].mean(dim=(1, 2, 3)))


def test_slowfast_takes_exactly_the_32_fast_frames(slowfast):
    for frames in (45, 10, 0):
        with pytest.raises(ValueError, match=f"32 fast-pathway frames.*got {frames}"):
            slowfast(torch.zeros(1, frames, 224, 224, 3, dtype=torch.uint8))


def test_slowfast_random_builds_identical(slowfast, windows, slowfast_out):
    again, info = load_slowfast_r50(random_weights=True)
    assert info == WeightsInfo("slowfast_r50", None, "random")
    assert_same_parameters(again, slowfast)
    assert torch.equal(again(windows[:1])[0], slowfast_out[0])


def test_slowfast_weight_file_round_trip(slowfast, windows, slowfast_out, tmp_path):
    path = tmp_path / "bare.pth"
    torch.save(slowfast.net.state_dict(), path)
    loaded, info = load_slowfast_r50(path)
    assert info.path == str(path) and len(info.sha256) == 64
    assert torch.equal(loaded(windows[:1])[0], slowfast_out[0])


def test_slowfast_pyth_checkpoint_layout(slowfast, torch_home):
    # pytorchvideo's .pyth: the state dict under "model_state", beside training state. Named
    # bare, the published alternative is looked up in the hub cache.
    torch_home.mkdir(parents=True)
    checkpoint = {"epoch": 196, "model_state": slowfast.net.state_dict(), "cfg": "TRAIN: ..."}
    torch.save(checkpoint, torch_home / SLOWFAST_PYTH)
    loaded, info = load_slowfast_r50(SLOWFAST_PYTH)
    assert info.path == str(torch_home / SLOWFAST_PYTH)
    assert_same_parameters(loaded, slowfast)
    with pytest.raises(WeightsError, match=SLOWFAST_FILE):  # the default is the Caffe2 file
        load_slowfast_r50()


# --- device options --------------------------------------------------------------------------


def test_prepare_for_cpu_channels_last(resnet):
    model, _ = load_resnet152(random_weights=True)
    assert prepare_for(model, torch.device("cpu"), channels_last=True) is model
    assert model.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    images = pixels(2, 48, 64, 3, seed=6)
    torch.testing.assert_close(model(images), resnet(images), rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("loader", "shape"),
    [(load_resnet152, (4, 224, 398, 3)), (load_slowfast_r50, (3, 32, 224, 224, 3))],
)
def test_cuda_bf16_close_to_fp32(loader, shape):
    cuda = torch.device("cuda")
    model, _ = loader(random_weights=True)
    x = pixels(*shape, seed=7)
    ref = prepare_for(model, cuda)(x)
    out = prepare_for(model, cuda, bf16=True, channels_last=True)(x)
    assert out.dtype == torch.float32 and out.device.type == "cuda" and out.shape == ref.shape
    assert (F.cosine_similarity(out, ref, dim=1) >= 0.999).all()
    cpu = prepare_for(model, torch.device("cpu"))(x[:1])
    assert (F.cosine_similarity(cpu, ref[:1].cpu(), dim=1) >= 0.999).all()


@pytest.mark.gpu
def test_cuda_compiled_matches_eager():
    cuda = torch.device("cuda")
    model, _ = load_resnet152(random_weights=True)
    x = pixels(4, 224, 320, 3, seed=8)
    ref = prepare_for(model, cuda)(x)
    out = prepare_for(model, cuda, bf16=True, channels_last=True, compile=True)(x)
    assert out.dtype == torch.float32
    assert (F.cosine_similarity(out, ref, dim=1) >= 0.999).all()
