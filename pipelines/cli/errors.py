"""The one error policy of every ``hero`` command (docs/architecture.md).

- A :class:`hero_data.errors.HeroError` is the user's to fix (a bad file, option or dataset):
  one line on stderr, ``Error: <message>``, exit status 1 (``hero align``: 2, as documented).
- An ``OSError`` (a file that is missing, unreadable, or in the way) is the user's too, and is
  shown the same way.
- A usage error (click's ``UsageError``: a missing or malformed option) exits 2, as click does.
- Anything else is a bug: it is not caught, so Python prints its full traceback and exits 1.

Every command module of :mod:`pipelines.cli` decorates its commands with it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

import click

from hero_data.errors import HeroError

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """A user error as the command line shows it: ``Error: <message>`` on one line."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def user_message(error: HeroError | OSError) -> str:
    """What a user error says: its message; for an ``OSError``, the file and the reason."""
    if isinstance(error, OSError) and not isinstance(error, HeroError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


@overload
def friendly_errors(fn: F) -> F: ...


@overload
def friendly_errors(*, exit_code: int = 1, names: str | None = None) -> Callable[[F], F]: ...


def friendly_errors(
    fn: F | None = None, *, exit_code: int = 1, names: str | None = None
) -> F | Callable[[F], F]:
    """Decorate a command with the one error policy (module docstring).

    ``exit_code``: the status of a user error. ``names``: a parameter of the command holding
    the input the command is about (``hero align``'s subtitle file); a message that does not
    start with it is prefixed with it, so that every error names its input.
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except (HeroError, OSError) as e:
                message = user_message(e)
                subject = str(kwargs[names]) if names and kwargs.get(names) is not None else ""
                if subject and not message.startswith(subject):
                    message = f"{subject}: {message}"
                raise UserError(message, exit_code) from None

        return wrapper  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate


class OneLineUsageErrors(click.Command):
    """A command whose usage errors (a missing or malformed option or argument) print one
    line, ``Error: <click's message> (see 'hero NAME --help')``, instead of click's usage
    block; still exit status 2. ``hero align`` documents this."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            hint = f"see 'hero {info_name} --help'"
            raise UserError(f"{e.format_message()} ({hint})", 2) from None
