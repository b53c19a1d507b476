"""The one device resolver (hero_data.device): names as devices, errors naming the option."""

from __future__ import annotations

import pytest
import torch

from hero_data.device import resolve_device
from hero_data.errors import OptionError


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine with two GPUs, the second current; nothing runs on them."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)


def test_cpu_and_auto_without_a_gpu(no_cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")


def test_cuda_comes_back_with_its_index(two_gpus):
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("foo", "unknown device 'foo' (auto, cpu, cuda or cuda:N)"),
        ("meta", "device 'meta' is not supported (auto, cpu, cuda or cuda:N)"),
        ("cuda:2", "device 'cuda:2' asked for, but this machine has 2 CUDA GPU(s)"),
    ],
)
def test_bad_names_are_option_errors(two_gpus, name, message):
    with pytest.raises(OptionError) as info:
        resolve_device(name)
    assert str(info.value) == message and info.value.key == "device"


def test_cuda_without_cuda(no_cuda):
    with pytest.raises(OptionError, match=r"^device 'cuda' asked for, but CUDA is not available$"):
        resolve_device("cuda")
