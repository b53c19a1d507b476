"""The one error type for bad options, shared by every config of the toolkit.

``hero run`` (:class:`pipelines.config.ConfigError`), the model
(:class:`hero_model.config.HeroConfigError`) and the trainer
(:class:`hero_model.train.TrainConfigError`) subclass it, so each names its own kind of option
while the message format, the attributes and pickling (errors cross Ray's process boundaries)
live here once.
"""

from __future__ import annotations

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
