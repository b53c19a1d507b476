"""The declared runtime dependencies are exactly the third-party packages the library imports.

Declared: pyproject's ``dependencies`` and its extras. Imported: every ``import`` in the library
packages (lazy ones inside functions included), less the standard library and our own
packages. A distribution is matched to its import names through the installed metadata
(``pillow`` -> ``PIL``, ``PyYAML`` -> ``yaml``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("hero_data", "extract", "align", "hero_model", "build_benchmarks", "pipelines")

IMPORTED_NOT_DECLARED = {
    # the third decoder backend and NVDEC decoding, used only when installed; not in the lock
    # on purpose (extract/decode.py, extract/nvdec.py: it needs the system's FFmpeg libraries)
    "torchcodec",
}
DECLARED_NOT_IMPORTED = {
    # the `cloud` extra: fsspec loads them for s3:// and gs:// URLs; never imported by name
    "s3fs",
    "gcsfs",
}


def _dist_name(requirement: str) -> str:
    """``"ray[data,train]>=2.40"`` -> ``"ray"`` (normalized as in PEP 503)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def declared() -> dict[str, str]:
    """Each declared distribution (normalized name) -> where it is declared."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    out = {_dist_name(r): "dependencies" for r in project["dependencies"]}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        out.update({_dist_name(r): f"extra {extra}" for r in requirements})
    return out


def imported() -> dict[str, str]:
    """Each third-party top-level module the library imports -> one file that imports it."""
    stdlib = set(sys.stdlib_module_names)
    out: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in stdlib and top not in PACKAGES and top != "__future__":
                        out.setdefault(top, str(path.relative_to(REPO)))
    return out


def modules_of_distributions() -> dict[str, set[str]]:
    """Installed distribution (normalized name) -> the top-level modules it provides."""
    out: dict[str, set[str]] = defaultdict(set)
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            out[_dist_name(dist)].add(module)
    return out


def test_the_library_imports_exactly_what_it_declares() -> None:
    wanted, used = declared(), imported()
    provides = modules_of_distributions()
    not_installed = sorted(d for d in wanted if d not in provides and d != "decord")
    assert not not_installed, (
        f"declared but not installed here (uv sync --all-extras): {not_installed}"
    )
    provides.setdefault("decord", {"decord"})  # x86-64 wheels only (see pyproject.toml)
    by_module = {m: d for d in wanted for m in provides[d]}
    undeclared = {m: f for m, f in used.items() if m not in by_module}
    assert set(undeclared) == IMPORTED_NOT_DECLARED, f"imported, not declared: {undeclared}"
    unused = {d: w for d, w in wanted.items() if not provides[d] & set(used)}
    assert set(unused) == DECLARED_NOT_IMPORTED, f"declared, never imported: {unused}"
