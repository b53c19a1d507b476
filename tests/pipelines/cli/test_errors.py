"""The command line's one error policy (pipelines/cli/errors.py): a HeroError (or an OSError)
is one line and exit status 1 (``hero align``: 2); anything else is a bug, shown with its
full traceback, exit status 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# Runs `hero upgrade DATASET` with the library call made to raise `error`, in a fresh Python,
# so that what reaches the terminal (and the exit status) is exactly what a user would see.
_SCRIPT = """
import sys
import hero_data.writer
from hero_data.manifest import DatasetError

def fail(root):
    raise {error}

hero_data.writer.upgrade_dataset = fail
from pipelines.cli.main import main
main(["upgrade", sys.argv[1]], prog_name="hero")
"""


def hero_upgrade_raising(error: str, dataset: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(error=error), str(dataset)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_a_hero_error_is_one_line_and_exit_1(tmp_path):
    done = hero_upgrade_raising('DatasetError(root, "the manifest is\\n  not JSON")', tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"Error: {tmp_path}: the manifest is not JSON\n"


def test_an_os_error_is_one_line_naming_the_file(tmp_path):
    done = hero_upgrade_raising("PermissionError(13, 'Permission denied', root)", tmp_path)
    assert done.returncode == 1
    assert done.stderr == f"Error: {tmp_path}: Permission denied\n"


@pytest.mark.parametrize(
    ("error", "last_line"),
    [
        ("ZeroDivisionError('oops')", "ZeroDivisionError: oops"),
        ("KeyError('x')", "KeyError: 'x'"),
        ("ValueError('bad')", "ValueError: bad"),  # not a user error unless a HeroError
    ],
)
def test_any_other_exception_is_a_bug_with_its_traceback(tmp_path, error, last_line):
    done = hero_upgrade_raising(error, tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback (most recent call last):")
    assert "in fail" in done.stderr  # the whole traceback, down to where it was raised
    assert done.stderr.rstrip().splitlines()[-1] == last_line


def test_a_usage_error_exits_2():
    from click.testing import CliRunner

    from pipelines.cli.main import main

    result = CliRunner().invoke(main, ["upgrade"])
    assert result.exit_code == 2 and "Missing argument 'DATASET'" in result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--adversarial", "5"], "can replace at most 3 wrong answers, asked for 5"),
    ],
)
def test_a_bad_option_found_in_the_library_is_a_user_error(tmp_path, flags, message):
    from click.testing import CliRunner

    from pipelines.cli.main import main

    args = ["build", "how2qa", str(tmp_path / "a.csv"), "--output", str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*args, *flags])
    assert result.exit_code == 1, result.output
    assert result.output == f"Error: {message}\n"


# --- hero extract and hero run exit 1 when no input succeeded -----------------------------------


@pytest.mark.integration  # whole-video extraction / a run on Ray
def test_hero_extract_exits_1_when_no_video_succeeded(tmp_path, shared_fixtures):
    from click.testing import CliRunner

    from pipelines.cli.main import main

    videos = shared_fixtures / "videos"
    out = tmp_path / "out"
    common = ["--output", str(out), "--random-weights", "--device", "cpu"]
    result = CliRunner().invoke(main, ["extract", str(videos / "corrupted.mp4"), *common])
    assert result.exit_code == 1, result.output
    assert "0 written, 0 skipped (exist), 1 failed" in result.output
    assert "no video succeeded" in result.output and "Traceback" not in result.output
    # One video done (now or earlier) is a success without --strict, however many failed.
    args = ["extract", str(videos / "video_0.mov"), str(videos / "corrupted.mp4"), *common]
    assert CliRunner().invoke(main, args).exit_code == 0
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "0 written, 1 skipped (exist), 1 failed" in again.output
    assert CliRunner().invoke(main, [*args, "--strict"]).exit_code == 1


@pytest.mark.integration  # whole-video extraction / a run on Ray
def test_hero_run_exits_1_when_no_input_succeeded_but_not_when_nothing_was_left(tmp_path):
    from click.testing import CliRunner

    from pipelines.cli.main import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "text.mp4").write_text("this is not a video\n")
    args = ["run", "--input", str(corpus), "--output", str(tmp_path / "out"), "--no-progress"]
    args += ["--random-weights", "--device", "cpu", "--workers", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "no input succeeded" in result.output and "Traceback" not in result.output
    again = CliRunner().invoke(main, args)  # the failure is recorded: nothing is left to try
    assert again.exit_code == 0, again.output
