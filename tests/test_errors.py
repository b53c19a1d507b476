"""The one error policy (docs/architecture.md): every error meant for the user derives from
``hero_data.errors.HeroError``, which the command line prints as one line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from hero_data.errors import HeroError

PACKAGES = ("hero_data", "extract", "align", "hero_model", "build_benchmarks", "pipelines")

# Exception classes that never reach a user, each with why. Anything else defined in the
# library packages must derive from HeroError.
INTERNAL = {
    # Carries one HowTo100M entry's problem to the reader (or the caption index), which turns
    # it into a SubtitleError that names the file and line.
    "align.readers._EntryProblem",
    # Control flow of the streaming JSON scanner: "read more" and a syntax error that its
    # caller turns into a SubtitleError or CaptionIndexError with the file and byte.
    "align.jsonstream._More",
    "align.jsonstream._Syntax",
    # A YAML node the bounded loader refuses; load_yaml turns it, like any YAMLError, into the
    # caller's error with the file, line and column.
    "hero_data.yamlfile._Refused",
    # A key given twice in a JSONL manifest object; the reader turns it into an InputError.
    "pipelines.inputs.manifest._RepeatedKey",
    # Not raised by the library: the command line's form of a HeroError (a click exception).
    "pipelines.cli.errors.UserError",
}


def library_exceptions() -> dict[str, type[BaseException]]:
    """``module.Name`` -> class, for every exception class defined in the library packages."""
    found: dict[str, type[BaseException]] = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        names = [package] + [
            m.name for m in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")
        ]
        for name in names:
            module = importlib.import_module(name)
            for attr, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == name
                ):
                    found[f"{name}.{attr}"] = value
    return found


def test_every_user_facing_exception_derives_from_hero_error() -> None:
    found = library_exceptions()
    assert "align.readers.SubtitleError" in found  # the walk reaches the modules
    assert set(INTERNAL) <= set(found), "an allowlisted class is gone: drop it from INTERNAL"
    outside = sorted(
        name
        for name, cls in found.items()
        if name not in INTERNAL and not issubclass(cls, HeroError)
    )
    assert outside == [], f"derive these from HeroError (or list them in INTERNAL): {outside}"


def test_hero_errors_keep_the_bases_callers_catch() -> None:
    from align.readers import SubtitleError
    from extract.extractor import ExtractTimeout
    from hero_data.errors import DatasetError, OptionError
    from hero_data.grid import GridError

    for cls in (SubtitleError, OptionError, GridError):
        assert issubclass(cls, HeroError) and issubclass(cls, ValueError)
    assert issubclass(ExtractTimeout, HeroError) and issubclass(ExtractTimeout, TimeoutError)
    assert issubclass(DatasetError, HeroError)
