#!/usr/bin/env python3
"""Bootstrap and run the project: `python3 dev.py demo` or `python3 dev.py test`.

Needs only Python >= 3.10 and pip. It uses the uv on PATH only if it is the pinned version
(UV_VERSION below), else installs that version with pip into .tools/ in this folder; then
`uv sync --locked` makes .venv/ exactly as uv.lock says, and it runs the command inside it:

    python3 dev.py demo [ARGS]   hero demo [ARGS]
    python3 dev.py test [ARGS]   the default tier (the command CI runs; see .ci/run), in two
                                 pytest [ARGS] runs: the unit tests, one pytest-xdist worker
                                 per core, then the integration tier (the demo, hero run on
                                 Ray, Ray Train, kill -9 runs, whole-video extraction) in one
                                 process; with -m or -n, one pytest [ARGS] run as given
    python3 dev.py test --fast [ARGS]
                                 the inner loop: the unit tests only, as in the first run
    python3 dev.py lint          ruff check and ruff format --check
    python3 dev.py hero [ARGS]   any hero command

The exit status is the command's own (pytest's 5, "no tests collected", is a failure too; of
the default tier's two runs, the first failure's, and 5 only when neither collected a test).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
UV_VERSION = "0.13.9"
TOOLS = ROOT / ".tools" / "uv"


def uv_version(uv):
    """The version a uv executable reports (`uv 0.13.9 (...)` -> "0.13.9"), or None."""
    try:
        out = subprocess.run(
            [uv, "--version"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.split()
    return words[1] if len(words) >= 2 and words[0] == "uv" else None


def find_uv():
    """A uv of exactly UV_VERSION: the one on PATH if it reports that version, else the one in
    .tools/, installed with pip when it is absent or another version. Another uv may not read
    this project's uv.lock (an older one) or resolve it differently."""
    on_path = shutil.which("uv")
    if on_path:
        found = uv_version(on_path)
        if found == UV_VERSION:
            return on_path
        print(
            f"dev.py: not using {on_path} (it reports uv {found or 'of an unknown version'}); "
            f"this project pins uv {UV_VERSION}",
            flush=True,
        )
    local = TOOLS / "bin" / "uv"
    if local.exists() and uv_version(str(local)) == UV_VERSION:
        return str(local)
    print(f"dev.py: installing uv=={UV_VERSION} into {TOOLS} with pip", flush=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--upgrade",  # replaces another version left in .tools/
        "--target",
        str(TOOLS),
        f"uv=={UV_VERSION}",
    ]
    if subprocess.call(cmd) != 0 or uv_version(str(local)) != UV_VERSION:
        sys.exit(
            f"dev.py: could not install uv {UV_VERSION} with pip; install that version "
            "(https://docs.astral.sh/uv/) and run this again"
        )
    return str(local)


def main(argv):
    if not argv or argv[0] not in ("demo", "test", "lint", "hero"):
        print(__doc__)
        return 2
    if sys.version_info < (3, 10):  # noqa: UP036 - this script may run on an old Python
        print("dev.py: note: this Python is older than 3.10; uv will look for a newer one")
    uv = find_uv()
    env = dict(os.environ)
    env.setdefault("UV_PROJECT_ENVIRONMENT", str(ROOT / ".venv"))
    # --compile-bytecode: write the .pyc files at install time. Where PYTHONDONTWRITEBYTECODE is
    # set (as on our CI machine) Python never writes them, and every process (each Ray worker,
    # each DataLoader worker) then compiles torch from source: 13 s per `import torch` instead
    # of 6 s here. Compiling once costs 30 s; later syncs check it in under a second.
    sync = [uv, "sync", "--locked", "--all-extras", "--compile-bytecode", "--project", str(ROOT)]
    if subprocess.call(sync, env=env, cwd=ROOT) != 0:
        print("dev.py: `uv sync --locked` failed (see above)", file=sys.stderr)
        return 1
    # Run the synced environment's own programs rather than `uv run`: Ray 2.60 treats a driver
    # started by `uv run` specially and then fails to start its workers.
    venv = Path(env["UV_PROJECT_ENVIRONMENT"])
    python = str(venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    task, rest = argv[0], argv[1:]
    if task == "demo":
        cmd = [python, "-m", "pipelines.cli", "demo", *rest]
    elif task == "hero":
        cmd = [python, "-m", "pipelines.cli", *rest]
    elif task == "test":
        pytest = [python, "-m", "pytest"]
        if "--fast" in rest:  # the marker is set in tests/conftest.py
            rest = [a for a in rest if a != "--fast"]
            return _unit_tests(pytest, rest, env)
        if any(a.startswith(("-m", "-n", "--numprocesses")) for a in rest):
            return subprocess.call([*pytest, *rest], env=env, cwd=ROOT)  # as asked
        # The default tier in two passes: the unit tests spread over the cores, then the
        # integration tests (Ray runs, the demo, Ray Train) in one process, as they start
        # their own Ray, clusters and servers. In one process the tier took 10 min here.
        unit = _unit_tests(pytest, rest, env)
        whole = subprocess.call(
            [*pytest, "-m", "integration and not slow", *rest], env=env, cwd=ROOT
        )
        return _combined(unit, whole)
    else:
        ruff = [python, "-m", "ruff"]
        code = subprocess.call([*ruff, "check", "."], env=env, cwd=ROOT)
        return code or subprocess.call([*ruff, "format", "--check", "."], env=env, cwd=ROOT)
    return subprocess.call(cmd, env=env, cwd=ROOT)


def _unit_tests(pytest, rest, env):
    """The default tier without ``integration``, one pytest-xdist worker per core, each with
    one torch/BLAS thread: with a thread per core in every worker, the model tests
    oversubscribed the cores and ran several times slower (README, Tests)."""
    env = {**env, "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1")}
    cmd = [*pytest, "-m", "not slow and not integration", "-n", "auto", *rest]
    return subprocess.call(cmd, env=env, cwd=ROOT)


def _combined(*codes):
    """One exit status for several pytest runs: the first failure's; 5 ("no tests collected")
    only when no run collected any."""
    failed = [c for c in codes if c not in (0, 5)]
    if failed:
        return failed[0]
    return 5 if all(c == 5 for c in codes) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
