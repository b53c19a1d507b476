"""dev.py's default tier runs pytest twice (unit tests over the cores, then the integration
tier); its exit status must still fail when either run fails."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "dev", Path(__file__).resolve().parents[1] / "dev.py"
)
assert _SPEC is not None and _SPEC.loader is not None
dev = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(dev)


@pytest.mark.parametrize(
    ("codes", "status"),
    [
        ((0, 0), 0),
        ((1, 0), 1),
        ((0, 1), 1),
        ((2, 1), 2),  # the first failure's
        ((5, 0), 0),  # -k chose no unit test, but integration tests ran
        ((0, 5), 0),
        ((5, 5), 5),  # nothing collected at all: a failure, as pytest says
        ((5, 1), 1),
    ],
)
def test_the_default_tiers_two_runs_give_one_status(codes, status):
    assert dev._combined(*codes) == status


def test_unit_tests_run_over_the_cores_with_one_thread_each(monkeypatch):
    calls = []
    monkeypatch.setattr(dev.subprocess, "call", lambda cmd, env, cwd: calls.append((cmd, env)) or 0)
    assert dev._unit_tests(["py", "-m", "pytest"], ["-k", "grid"], {"PATH": "/bin"}) == 0
    [(cmd, env)] = calls
    assert cmd == [
        "py",
        "-m",
        "pytest",
        "-m",
        "not slow and not integration",
        "-n",
        "auto",
        "-k",
        "grid",
    ]
    assert env["OMP_NUM_THREADS"] == "1" and env["PATH"] == "/bin"
