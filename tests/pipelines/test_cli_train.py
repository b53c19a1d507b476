"""`hero train`: a tiny run and its resume from the command line, and the user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hero_data.writer import DatasetWriter
from pipelines.cli_train import train


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a busy 2-core machine, more make tiny models 10-50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(train, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture
def write(record_factory):
    def make(root: Path, interval: float = 1.5) -> Path:
        with DatasetWriter(root, {"frame_interval": interval}) as w:
            for k in range(4):
                w.write(record_factory(f"v{k}", 0, 9.0, interval=interval, seed=k, n_cues=2))
        return root

    return make


TINY = ("--config", "tiny", "--max-steps", "2", "--warmup-steps", "1", "--loader-workers", "0")


def test_tiny_run_then_resume_from_the_run_folder(tmp_path, write):
    data = write(tmp_path / "ds")
    out = tmp_path / "run"
    code, output = run("--data", data, "--output", out, *TINY, "--stop-at", "1", "--no-progress")
    assert code == 0, output
    assert "train: step 1/2" in output and "step-00000001" in output
    assert (out / "tb").is_dir() and (out / "config.yaml").is_file()

    # --resume alone takes the run's own config and datasets.
    code, output = run("--output", out, "--resume", "--no-progress")
    assert code == 0, output
    assert "train: step 2/2 (1 this run" in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == 2 and summary["workers"][0]["clips_this_run"] == 4

    code, output = run("--data", data, "--output", out, *TINY, "--no-progress")
    assert code == 1 and "resume it with --resume" in output


def test_user_errors_are_one_clear_line(tmp_path, write):
    good = write(tmp_path / "good")
    out = str(tmp_path / "run")

    code, output = run("--data", tmp_path / "nope", "--output", out, *TINY)
    assert code == 1 and f"{tmp_path / 'nope'}: no such dataset folder" in output

    other = write(tmp_path / "other", interval=1.0)
    code, output = run("--data", good, "--data", other, "--output", out, *TINY)
    assert code == 1 and "frame interval 1 s, but" in output and str(good) in output

    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: tiny\nlearning_rate: 0.1\n")
    code, output = run("--data", good, "--config", bad, "--output", out)
    assert code == 1 and f"{bad}: unknown option 'learning_rate'" in output

    code, output = run("--data", good, "--config", "huge", "--output", out)
    assert code == 1 and "not a named config (base, tiny)" in output

    code, output = run("--data", good, "--output", out, *TINY, "--tasks", "mlm:2")
    assert code == 2 and "task=ratio pairs" in output

    code, output = run("--data", good, "--output", out, *TINY, "--mix-weights", "1,2")
    assert code == 1 and "2 mix_weights for 1 datasets" in output

    code, output = run("--output", out, *TINY)
    assert code == 2 and "--data" in output

    code, output = run("--output", tmp_path / "fresh", "--resume")
    assert code == 1 and "config.yaml: not found: not a run folder" in output
    assert not (tmp_path / "run").exists()  # nothing was started


def test_help_shows_defaults():
    code, output = run("--help")
    assert code == 0
    for flag in ("--data", "--mix-weights", "--config", "--resume", "--num-workers", "--address"):
        assert flag in output
    assert "[base; with --resume: the run's own]" in " ".join(output.split())
