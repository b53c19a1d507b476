"""Reading a TorchScript archive's tensors without running it (extract/torchscript.py)."""

from __future__ import annotations

import pickle
import zipfile

import pytest
import torch
from torch import Tensor, nn

from extract.torchscript import TorchScriptError, is_torchscript, read_torchscript_state


class Holder(nn.Module):
    """A module that only holds tensors (OpenAI's files are traced: their state is tensors)."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def traced_archive(state: dict[str, Tensor], path) -> nn.Module:
    """A traced TorchScript archive whose ``state_dict()`` is ``state`` (floating tensors as
    parameters, the rest as buffers), as ``torch.jit.save`` writes one."""
    root = Holder()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        node = root
        for name in parents:
            if name not in node._modules:
                node.add_module(name, Holder())
            node = node._modules[name]
        if value.is_floating_point():
            node.register_parameter(leaf, nn.Parameter(value, requires_grad=False))
        else:
            node.register_buffer(leaf, value)
    traced = torch.jit.trace(root, torch.zeros(1))
    traced.save(str(path))
    return traced


def test_reads_every_tensor_with_its_name_dtype_and_values(tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 4, generator=g)
    state = {
        "visual.conv1.weight": torch.randn(2, 3, 4, 4, generator=g).half(),
        "visual.transformer.resblocks.0.ln_1.bias": torch.randn(5, generator=g),
        "visual.transformer.resblocks.1.ln_1.bias": torch.randn(5, generator=g),
        "positional_embedding": base[1:4],  # a view into a larger storage, offset 4
        "logit_scale": torch.tensor(4.6),
        "input_resolution": torch.tensor(224),
    }
    path = tmp_path / "m.pt"
    traced = traced_archive(state, path)
    got = read_torchscript_state(path)
    assert got.keys() == traced.state_dict().keys() == state.keys()
    for key, value in state.items():
        assert got[key].dtype == value.dtype, key
        assert torch.equal(got[key], value), key


def test_tells_archives_from_torch_save_files(tmp_path) -> None:
    traced_archive({"w": torch.ones(2)}, tmp_path / "a.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "b.pt")  # also a zip, but without code/
    assert is_torchscript(tmp_path / "a.pt")
    assert not is_torchscript(tmp_path / "b.pt")


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_naming_code_is_refused_before_anything_runs(tmp_path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"w": _RunsCode(str(marker))}, protocol=2))
        z.writestr("evil/code/__torch__.py", "")
    with pytest.raises(TorchScriptError, match=r"refused: its data\.pkl names io\.open"):
        read_torchscript_state(path)
    assert not marker.exists()


def test_a_missing_storage_record_is_named(tmp_path) -> None:
    good = tmp_path / "m.pt"
    traced_archive({"w": torch.ones(3)}, good)
    bad = tmp_path / "cut.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            if "/data/" not in item.filename:
                dst.writestr(item, src.read(item))
    with pytest.raises(TorchScriptError, match=r"storage record .* is missing"):
        read_torchscript_state(bad)


def test_not_an_archive_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(b"not a zip")
    with pytest.raises(TorchScriptError, match="not a TorchScript archive"):
        read_torchscript_state(path)
