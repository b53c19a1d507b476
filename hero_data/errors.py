"""The toolkit's shared error types: :class:`HeroError`, the base of every error meant for the
user; bad options (:class:`OptionError`) and datasets that cannot be read or written
(:class:`DatasetError`).

The one error policy (docs/architecture.md): a :class:`HeroError` is the user's to fix (a bad
file, option or dataset), and its message alone says what and where, so the ``hero`` commands
print it as one line. Any other exception is a bug and keeps its traceback. Code that turns a
library's error (a ``ValueError`` from a parser, say) into a user error raises a
:class:`HeroError` subclass where it happens. Subclasses that callers used to catch as
``ValueError`` (or ``TimeoutError``) still derive from it too.

The one error type for bad options is shared by every config of the toolkit.

``hero run`` (:class:`pipelines.config.ConfigError`), the model
(:class:`hero_model.config.HeroConfigError`) and the trainer
(:class:`hero_model.train.TrainConfigError`) subclass it, so each names its own kind of option
while the message format, the attributes and pickling (errors cross Ray's process boundaries)
live here once.
"""

from __future__ import annotations

import os
from typing import Any


class HeroError(Exception):
    """The base of every error meant for the user: the message says what is wrong and where
    (the file, option or video), and is shown as it is, on one line, by the command line."""


class OptionError(HeroError, ValueError):
    """An option that is unknown, of the wrong type, out of range or in conflict.

    Attributes:
        problem: what is wrong, without the location.
        source: where the option came from: a YAML file, ``"command line"``, ``"overrides"``,
            or ``None``.
        key: the option concerned (the first one, for a conflict), or ``None``.
    """

    def __init__(self, problem: str, source: str | None = None, key: str | None = None) -> None:
        self.problem = problem
        self.source = source
        self.key = key
        super().__init__(f"{source}: {problem}" if source else problem)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problem, self.source, self.key))


class DatasetError(HeroError):
    """A dataset on disk or in a store is missing, malformed, disagrees with its manifest, or
    cannot be read or written.

    The message names the file or object at fault; ``path`` holds it too.
    """

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        self.path = os.fspath(path)
        self.problem = message
        super().__init__(f"{self.path}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:  # errors cross Ray's process boundaries
        return (type(self), (self.path, self.problem))


class UnknownClipError(DatasetError, KeyError):
    """A clip id that is not in the dataset. A ``KeyError`` too, as a dataset is looked up by
    clip id like a mapping; its message reads as the other dataset errors' do."""

    def __str__(self) -> str:  # KeyError's would quote the whole message
        return f"{self.path}: {self.problem}"


class IdError(HeroError, ValueError):
    """A video or clip id that is not safe as a file-name part (see
    :func:`hero_data.types.check_id`)."""


class FeatureSetError(HeroError, ValueError):
    """A feature set that is malformed, or that does not match the one expected: a record
    written to a dataset of another set, datasets of different sets mixed in one run, a
    checkpoint given data of another set (see :mod:`hero_data.features`)."""
