"""The toolkit's shared error types: bad options (:class:`OptionError`) and datasets that cannot
be read or written (:class:`DatasetError`).

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


class OptionError(ValueError):
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


class DatasetError(Exception):
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
