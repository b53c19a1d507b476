"""`hero train`: a tiny run and its resume from the command line, and the user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hero_data.writer import DatasetWriter
from pipelines.cli.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_resume_with_a_larger_max_steps(tmp_path, write):
    from hero_model.runtime import lr_factor
    from hero_model.train import train_preset

    data = write(tmp_path / "ds")
    out = tmp_path / "run"
    code, output = run(
        "--data", data, "--output", out, *TINY, "--max-steps", "4", "--log-every", "1"
    )
    assert code == 0 and "train: step 4/4" in output, output

    code, output = run("--output", out, "--resume", "--max-steps", "6", "--no-progress")
    assert code == 0, output
    assert "train: step 6/6 (2 this run" in output
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in lines] == [1, 2, 3, 4, 5, 6]
    peak = train_preset("tiny").lr
    assert [e["lr"] for e in lines[4:]] == pytest.approx(
        [peak * lr_factor(n, 1, 6) for n in (5, 6)]
    )
    assert "max_steps: 6" in (out / "config.yaml").read_text()

    code, output = run("--output", out, "--resume", "--max-steps", "6", "--no-progress")
    assert code == 0 and "nothing to train: the run is at its last step (6)" in output, output
    code, output = run("--output", out, "--resume", "--max-steps", "5")
    assert code == 1 and "max_steps 5 is less than the 6 steps the run has done" in output
    code, output = run("--output", out, "--resume", "--max-steps", "8", "--lr", "0.1")
    assert code == 1 and "differs in ['lr']" in output


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
    text = " ".join(output.split())
    assert "[base; with --resume: the run's own]" in text
    assert "the learning-rate schedule is rebuilt for it" in text
