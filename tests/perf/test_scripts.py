"""The performance scripts in perf/: run as modules, none shadows a package of ours, none edits
``sys.path``, they import only public names of the library, and each one's ``--help`` runs.

The source checks read each script's syntax tree, and also the Python programs the scripts
pass as strings to child interpreters (``python -c``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[2]
PERF = REPO / "perf"
SCRIPTS = sorted(p for p in PERF.glob("*.py") if p.name != "__init__.py")


def first_party() -> set[str]:
    """The toolkit's own top-level packages: the ones pyproject installs."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    names = {pattern.rstrip("*") for pattern in include}
    assert "extract" in names and "pipelines" in names, names
    return names


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes in ``tree`` (prose, not code)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def programs(path: Path) -> Iterator[tuple[str, ast.AST]]:
    """``path``'s syntax tree, then that of each string constant in it that is a Python
    program with an import (a child interpreter's code), each with where it came from."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    yield path.name, tree
    prose = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            if "import " not in node.value:
                continue
            try:
                child = ast.parse(textwrap.dedent(node.value))
            except SyntaxError:
                continue
            yield f"{path.name}, the program at line {node.lineno}", child


def path_edits(tree: ast.AST) -> list[str]:
    """Every place in ``tree`` that reaches ``sys.path`` or sets ``PYTHONPATH``."""
    prose = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            found.append(f"line {node.lineno}: sys.path")
        elif isinstance(node, ast.ImportFrom) and node.module == "sys":
            if any(alias.name == "path" for alias in node.names):
                found.append(f"line {node.lineno}: from sys import path")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "PYTHONPATH" in node.value
            and id(node) not in prose
        ):
            found.append(f"line {node.lineno}: PYTHONPATH")
    return found


def private_imports(tree: ast.AST, packages: set[str]) -> list[str]:
    """Every ``_name`` imported from one of ``packages``' modules in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] not in packages:
                continue
            private = [p for p in parts[1:] if p.startswith("_")]
            private += [a.name for a in node.names if a.name.startswith("_")]
            if private:
                found.append(f"line {node.lineno}: from {node.module} import {private}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in packages and any(p.startswith("_") for p in parts[1:]):
                    found.append(f"line {node.lineno}: import {alias.name}")
    return found


def test_the_scripts_are_found():
    assert len(SCRIPTS) >= 8, SCRIPTS


def test_no_file_is_named_after_a_package_of_ours():
    packages = first_party()
    assert PERF.name not in packages
    clashes = [p.name for p in PERF.iterdir() if p.name.removesuffix(".py") in packages]
    assert not clashes, f"perf/ files named after a package of ours (they shadow it): {clashes}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_no_script_edits_sys_path(script: Path):
    found = {where: path_edits(tree) for where, tree in programs(script)}
    assert not any(found.values()), {k: v for k, v in found.items() if v}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_scripts_import_only_public_names(script: Path):
    packages = first_party()
    found = {where: private_imports(tree, packages) for where, tree in programs(script)}
    assert not any(found.values()), {k: v for k, v in found.items() if v}


def test_the_checks_see_what_they_look_for():
    """The checks above on code that breaks each rule, in a script and in a child program."""
    code = textwrap.dedent(
        '''
        """Docs may say sys.path and PYTHONPATH."""
        import sys
        from pipelines.run import _hidden
        sys.path.insert(0, "x")
        CHILD = """
        import os, sys
        from extract._impl import thing
        os.environ["PYTHONPATH"] = "."
        """
        '''
    )
    tree = ast.parse(code)
    # the script's own sys.path, and the child's PYTHONPATH seen in its text
    assert sorted(x.split(":")[1].strip() for x in path_edits(tree)) == ["PYTHONPATH", "sys.path"]
    child = ast.parse(textwrap.dedent(ast.literal_eval(tree.body[-1].value)))
    assert [x.split(":")[1].strip() for x in path_edits(child)] == ["PYTHONPATH"]
    assert len(private_imports(tree, {"pipelines"})) == 1
    assert len(private_imports(child, {"extract"})) == 1


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_help_runs(script: Path):
    proc = subprocess.run(
        [sys.executable, "-m", f"perf.{script.stem}", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:"), proc.stdout[:500]
