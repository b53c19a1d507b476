"""verify_weights: the driver's check of a weight file, without building the weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from extract.models import (
    WeightsError,
    WeightsInfo,
    load_resnet152,
    load_slowfast_r50,
    verify_weights,
)


def zero_state(which: str) -> dict[str, torch.Tensor]:
    """The architecture's state dict, as real zero tensors (what a weight file holds)."""
    from extract.models import _NETS

    with torch.device("meta"):
        meta = _NETS[which]().state_dict()
    return {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in meta.items()}


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("w") / "resnet.pth"
    torch.save(zero_state("resnet152"), path)
    return path


def test_accepts_what_the_loader_accepts(resnet_file):
    info = verify_weights("resnet152", resnet_file)
    sha = hashlib.sha256(resnet_file.read_bytes()).hexdigest()
    assert info == WeightsInfo("resnet152", str(resnet_file), sha)
    _, loaded = load_resnet152(resnet_file)
    assert loaded == info


def test_slowfast_checkpoint_layout(tmp_path):
    path = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"epoch": 1, "model_state": zero_state("slowfast_r50")}, path)
    info = verify_weights("slowfast_r50", path)
    assert info.name == "slowfast_r50" and info.path == str(path) and len(info.sha256) == 64
    _, loaded = load_slowfast_r50(path)
    assert loaded == info


def test_refuses_what_the_loader_refuses(tmp_path):
    state = zero_state("resnet152")
    state["fc.weight"] = torch.zeros(10, 2048)
    del state["layer1.0.conv1.weight"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as verified:
        verify_weights("resnet152", path)
    message = str(verified.value)
    assert str(path) in message
    assert "'fc.weight' has shape (10, 2048), the model needs (1000, 2048)" in message
    assert "missing key 'layer1.0.conv1.weight'" in message
    with pytest.raises(WeightsError) as loaded:
        load_resnet152(path)
    assert str(loaded.value) == message


def test_missing_file_and_unknown_model(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(WeightsError, match=r"SLOWFAST_8x8_R50\.pkl") as e:
        verify_weights("slowfast_r50", missing)
    assert str(missing) in str(e.value)
    with pytest.raises(ValueError, match="resnet152"):
        verify_weights("resnet50", missing)
