"""The import contract of docs/architecture.md, checked on the source tree by walking imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("hero_data", "extract", "align", "hero_model", "build_benchmarks", "pipelines")

# Which first-party packages each package may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "hero_data": set(),
    "align": {"hero_data"},
    "extract": {"hero_data"},
    "hero_model": {"hero_data"},
    "build_benchmarks": {"hero_data", "align", "hero_model"},
    "pipelines": {"hero_data", "extract", "align", "hero_model", "build_benchmarks"},
}


# The command line is pipelines/cli: only it may import click, and no other module of
# pipelines may import it (the library works without the command line).
CLI = ("pipelines", "cli")
CLI_ONLY = {"click"}


def imported_modules(path: Path) -> set[str]:
    """Dotted names a module imports (absolute imports only); ``from a import b`` gives both
    ``a`` and ``a.b``, since ``b`` may be a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def first_party_imports(path: Path) -> set[str]:
    """Top-level first-party package names a module imports (absolute imports only)."""
    return {name.split(".")[0] for name in imported_modules(path)} & set(PACKAGES)


def violations(root: Path) -> list[str]:
    """``file: imports X`` for every import the contract forbids under ``root``."""
    found = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            for name in sorted(first_party_imports(path) - allowed - {package}):
                found.append(f"{rel}: imports {name}")
            if rel.parts[:2] == CLI:
                continue
            modules = imported_modules(path)
            for name in sorted({m.split(".")[0] for m in modules} & CLI_ONLY):
                found.append(f"{rel}: imports {name} (only {'/'.join(CLI)} may)")
            if package == CLI[0] and any(m.split(".")[:2] == list(CLI) for m in modules):
                found.append(f"{rel}: imports {'.'.join(CLI)} (only {'/'.join(CLI)} may)")
    return found


def test_every_package_exists():
    for package in PACKAGES:
        assert (REPO / package / "__init__.py").is_file(), package


def test_import_contract_holds():
    assert violations(REPO) == []


def _tree(root: Path, package: str, name: str, source: str) -> None:
    """The six packages under ``root``, empty but for ``package/name`` holding ``source``."""
    for p in PACKAGES:
        (root / p).mkdir(exist_ok=True)
        (root / p / "__init__.py").write_text("")
    (root / package / name).write_text(source)


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "pipelines"])
def test_nothing_imports_pipelines(tmp_path, package):
    """Every package but pipelines itself is caught importing it, in either import form."""
    _tree(tmp_path, package, "uses_cli.py", "import pipelines.cli\n")
    _tree(tmp_path, package, "uses_run.py", "from pipelines import run\n")
    assert violations(tmp_path) == [
        f"{package}/uses_cli.py: imports pipelines",
        f"{package}/uses_run.py: imports pipelines",
    ]


@pytest.mark.parametrize(
    ("package", "source", "bad"),
    [
        ("hero_data", "import align.cues\n", "align"),
        ("align", "from extract import decode\n", "extract"),
        ("hero_model", "def f():\n    from pipelines.cli.main import main\n", "pipelines"),
        ("build_benchmarks", "import extract as e\n", "extract"),
    ],
)
def test_checker_catches_violations(tmp_path, package, source, bad):
    _tree(tmp_path, package, "bad.py", source)
    assert violations(tmp_path) == [f"{package}/bad.py: imports {bad}"]


@pytest.mark.parametrize(
    ("name", "source", "bad"),
    [
        ("hero_model/bad.py", "import click\n", "click"),
        ("pipelines/bad.py", "def f():\n    from click import echo\n", "click"),
        ("pipelines/interop/bad.py", "import click.testing\n", "click"),
        ("pipelines/bad.py", "from pipelines.cli.options import verbose\n", "pipelines.cli"),
        ("pipelines/bad.py", "from pipelines import cli\n", "pipelines.cli"),
    ],
)
def test_checker_catches_click_outside_the_cli(tmp_path, name, source, bad):
    """Only pipelines/cli imports click, and no other module of pipelines imports the CLI."""
    _tree(tmp_path, "pipelines", "__init__.py", "")
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    assert violations(tmp_path) == [f"{name}: imports {bad} (only pipelines/cli may)"]


def test_the_cli_may_import_click_and_itself(tmp_path):
    _tree(tmp_path, "pipelines", "__init__.py", "")
    (tmp_path / "pipelines" / "cli").mkdir()
    (tmp_path / "pipelines" / "cli" / "run.py").write_text(
        "import click\nfrom pipelines.cli.options import verbose\n"
    )
    assert violations(tmp_path) == []
