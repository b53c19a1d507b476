"""The one error policy of every ``hero`` command: expected errors become one clear line.

Lives apart from ``pipelines/cli.py`` so that the command modules (``cli_bench``,
``cli_compat``, ``cli_train``) can use it and ``cli.py`` can still import them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn the toolkit's expected errors (bad files, datasets, options) into one clear line
    and exit status 1; anything else is a bug and keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from align.readers import SubtitleError
        from align.tokenizer import TokenizerError
        from hero_data.grid import GridError
        from hero_data.manifest import DatasetError

        try:
            return fn(*args, **kwargs)
        except (
            DatasetError,
            GridError,
            SubtitleError,
            TokenizerError,
            FileExistsError,
            KeyError,
            ValueError,
        ) as e:
            message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise click.ClickException(str(message)) from None
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise click.ClickException(f"{where}{e.strerror or e}") from None

    return wrapper  # type: ignore[return-value]
