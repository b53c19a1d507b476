"""Ray's own log output goes to a file under the output folder, not to the terminal (unless -v).

The redirection of file descriptor 2 (where Ray's C++ code in the driver prints) only happens
for a real stderr, so those cases run in a child process whose stderr is a pipe.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines.ray_logs import LOG_DIR, LogPlace, RayLogs, log_place

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import logging, os, sys
    from pipelines.ray_logs import ray_logs
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logs = ray_logs(sys.argv[1], verbose=sys.argv[2] == "1")
    print(logs.place.path)
    with logs:
        logging.getLogger("ray.data").info("ray data line")
        logging.getLogger("ray._private.worker").warning("ray core line")
        os.write(2, b"native line\\n")  # as Ray's C++ logger prints in the driver
        logging.getLogger("pipelines.run").warning("our own line")
        print("stdout line", flush=True)
    logging.getLogger("pipelines.run").warning("after")
    """
)


def _child(out: Path, verbose: bool) -> tuple[subprocess.CompletedProcess, Path]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), "1" if verbose else "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done, Path(done.stdout.splitlines()[0])


def test_ray_lines_go_to_the_log_file_and_ours_to_the_terminal(tmp_path):
    done, path = _child(tmp_path / "ds", verbose=False)
    assert path.parent == tmp_path / "ds" / LOG_DIR and path.name.startswith("ray-")
    assert done.stderr.splitlines() == [
        "WARNING pipelines.run: our own line",
        "WARNING pipelines.run: after",
    ]
    assert "stdout line" in done.stdout
    logged = path.read_text()
    for line in ("ray data line", "ray core line", "native line"):
        assert line in logged
    assert "our own line" not in logged


def test_with_verbose_ray_lines_also_reach_the_terminal(tmp_path):
    done, path = _child(tmp_path / "ds", verbose=True)
    for line in ("ray data line", "ray core line", "native line", "our own line"):
        assert line in done.stderr
    assert "ray data line" in path.read_text()


def test_an_object_store_output_logs_locally_then_copies_the_log_there(tmp_path, monkeypatch):
    from hero_data.storage import open_storage

    monkeypatch.setenv("HERO_CACHE_DIR", str(tmp_path / "cache"))
    place = log_place("memory://bucket/ds")
    assert place.path.is_relative_to(tmp_path / "cache" / LOG_DIR)
    assert place.copy_to == f"memory://bucket/ds/{LOG_DIR}/{place.path.name}"
    assert place.describe().endswith(f"(copied to {place.copy_to} at the end)")
    import logging

    with RayLogs(place):
        logging.getLogger("ray").warning("a ray line")
    stored = open_storage("memory://bucket/ds").read_text(f"{LOG_DIR}/{place.path.name}")
    assert "a ray line" in stored


def test_the_terminal_handlers_come_back_afterwards(tmp_path):
    import logging

    ray_logger = logging.getLogger("ray")
    stream = logging.StreamHandler()
    ray_logger.addHandler(stream)
    try:
        with RayLogs(LogPlace(tmp_path / "ray.log")):
            assert stream not in ray_logger.handlers
        assert stream in ray_logger.handlers
    finally:
        ray_logger.removeHandler(stream)


@pytest.mark.parametrize("output", ["relative/ds", "/abs/ds"])
def test_a_local_output_logs_under_its_logs_folder(output):
    place = log_place(output)
    assert place.copy_to is None and place.path.parent == Path(output) / LOG_DIR
