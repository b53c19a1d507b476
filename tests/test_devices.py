"""Every command that runs a model resolves ``--device`` through hero_data.device: a name that
is not a device, or a GPU the machine does not have, is one line, exit status 1."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from pipelines.cli.main import main


@pytest.mark.parametrize("device", ["foo", "cuda:7"])
@pytest.mark.parametrize(
    "command",
    [
        ["train", "--data", "{tmp}", "--output", "{tmp}/run"],
        ["extract", "{tmp}/v.mp4", "--random-weights", "--output", "{tmp}/out"],
        ["finetune", "how2r", "--bench", "{tmp}", "--data", "{tmp}", "--output", "{tmp}/ft"],
    ],
    ids=["train", "extract", "finetune"],
)
def test_a_bad_device_is_one_line(tmp_path, monkeypatch, command, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "v.mp4").write_bytes(b"")
    args = [a.format(tmp=tmp_path) for a in command] + ["--device", device]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert f"'{device}'" in errors[0] and "device" in errors[0]
