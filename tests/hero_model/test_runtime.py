"""The shared training runtime (hero_model.runtime): precision, parameter groups, checkpoint
files. Pretraining and finetuning both use it; their own tests cover it in a run."""

from __future__ import annotations

import io
import pickle

import pytest
import torch

from hero_data.errors import OptionError
from hero_model.runtime import (
    CheckpointError,
    autocast,
    autocast_dtype,
    check_state_fits,
    load_plain,
    param_groups,
)

CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)


@pytest.mark.parametrize("bf16_gpu", [True, False])
def test_precision_table(monkeypatch, bf16_gpu):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16_gpu)
    assert autocast_dtype("fp32", GPU) is None and autocast_dtype("fp32", CPU) is None
    assert autocast_dtype("auto", CPU) is None  # float32 on the CPU unless asked
    assert autocast_dtype("bf16", CPU) is torch.bfloat16  # CPU autocast has bfloat16
    assert autocast_dtype("auto", GPU) is (torch.bfloat16 if bf16_gpu else None)
    if bf16_gpu:
        assert autocast_dtype("bf16", GPU) is torch.bfloat16
    else:
        with pytest.raises(OptionError, match=r"bf16 asked for, but cuda:0 does not support"):
            autocast_dtype("bf16", GPU)


def test_autocast_on_and_off():
    with autocast(torch.bfloat16, CPU):
        assert torch.is_autocast_enabled("cpu")
        with autocast(None, CPU):  # off, also inside an enclosing region
            assert not torch.is_autocast_enabled("cpu")


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(3, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.head = torch.nn.Linear(4, 2)
        self.frozen = torch.nn.Parameter(torch.zeros(2, 2), requires_grad=False)


def _names(model: torch.nn.Module, group: dict) -> list[str]:
    ids = {id(p) for p in group["params"]}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def test_param_groups_decay_matrices_only_and_heads_get_lr_mul():
    model = _Tiny()
    plain = param_groups(model, 1e-3, 0.01)
    assert [(_names(model, g), g["lr"], g["weight_decay"]) for g in plain] == [
        (["body.weight", "head.weight"], 1e-3, 0.01),
        (["body.bias", "norm.weight", "norm.bias", "head.bias"], 1e-3, 0.0),
    ]
    heads = param_groups(model, 1e-3, 0.01, heads=["head.weight", "head.bias"], lr_mul=10.0)
    assert [(_names(model, g), g["lr"], g["weight_decay"]) for g in heads] == [
        (["body.weight"], 1e-3, 0.01),
        (["body.bias", "norm.weight", "norm.bias"], 1e-3, 0.0),
        (["head.weight"], 1e-2, 0.01),
        (["head.bias"], 1e-2, 0.0),
    ]


class Payload:
    """A class a pickle names: loading it would need its global."""


def test_a_pickle_naming_code_is_refused_not_loaded(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused, not loaded: it needs .*Payload"):
        load_plain(path)
    legacy = tmp_path / "legacy.pt"  # torch's pre-1.6 format: read unless our writer is named
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(load_plain(legacy)["w"], torch.ones(2))
    with pytest.raises(CheckpointError, match=r"legacy\.pt: refused, not read: not an archive"):
        load_plain(legacy, written_by="hero train")
    raw = tmp_path / "raw.pt"
    buf = io.BytesIO()
    pickle.dump({"w": 1}, buf, protocol=2)
    raw.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match=r"raw\.pt: not a readable checkpoint"):
        load_plain(raw)


def test_state_fits_names_every_kind_of_difference():
    shapes = {"a": (2, 3), "b": (4,), "c": (1,)}
    check_state_fits(
        {"a": torch.zeros(2, 3), "b": torch.zeros(4), "c": torch.zeros(1)}, shapes, "f"
    )
    with pytest.raises(CheckpointError) as info:
        check_state_fits({"a": torch.zeros(3, 2), "b": 1.0, "z": torch.zeros(1)}, shapes, "f.pt")
    assert str(info.value) == (
        "f.pt: does not fit the model: missing ['c'] (1 names), unexpected ['z'] (1 names), "
        "shapes differ: a is (3, 2), the model needs (2, 3); b is float, the model needs (4,)"
    )
