"""The one configuration system: typed, frozen pydantic models read from one YAML loader.

Every config of the toolkit (``hero run``'s :class:`pipelines.config.RunConfig`, the extraction
config it holds, ...) is a :class:`ConfigModel`: unknown keys are refused, values are checked
strictly (``"16"`` is not a number, ``1`` is not ``true``), and the object is frozen (changed
only by copies, ``model_copy(update=...)``). A bad value is never a pydantic ``ValidationError``
for the user: :func:`option_error` turns it into the config's own
:class:`~hero_data.errors.OptionError` subclass whose message names the file, the key path
(``extract.batch_size``) and the problem, with "did you mean" for a misspelt key. Config files
are read by :func:`read_mapping` (the bounded safe loader of :mod:`hero_data.yamlfile`).

Field types shared by the configs: :data:`Number` (a finite number; ints become floats),
:data:`Whole` (an int; ``32.0`` becomes 32), :data:`Flag` (``true``/``false`` only) and
:data:`Text` (a string that is not blank).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, ClassVar, Self

import fsspec
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from hero_data.errors import OptionError
from hero_data.yamlfile import load_yaml

__all__ = [
    "ConfigModel",
    "Device",
    "Flag",
    "Number",
    "PathText",
    "Text",
    "Whole",
    "as_tuple",
    "conflict",
    "matching",
    "option_error",
    "read_mapping",
]


def _whole_float(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("hero", "must be a non-empty string")
    return value


def matching(regex: str, description: str) -> AfterValidator:
    """A check that a string matches ``regex``; else "<key> must be <description>, got ..."."""
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise PydanticCustomError("hero", "must be {description}", {"description": description})
        return value

    return AfterValidator(check)


Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A finite number (an int is taken as a float; ``true`` is not a number)."""

Whole = Annotated[int, BeforeValidator(_whole_float), Strict()]
"""A whole number (``32.0`` is taken as 32; ``2.5``, ``"16"`` and ``true`` are not)."""

Flag = Annotated[bool, Strict()]
"""``true`` or ``false`` (``1`` and ``"yes"`` are not)."""

Text = Annotated[str, Strict(), AfterValidator(_not_blank)]
"""A string that is not empty or blank."""


def as_tuple(value: Any) -> Any:
    """A YAML list (or one string or path) as a tuple, paths as strings: a ``BeforeValidator``
    for tuple fields (strict types take tuples only)."""
    if isinstance(value, (str, os.PathLike)):
        value = (value,)
    if isinstance(value, (list, tuple)):
        return tuple(os.fspath(v) if isinstance(v, os.PathLike) else v for v in value)
    return value


def _as_str(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


PathText = Annotated[Text, BeforeValidator(_as_str)]
"""A path or URL: a non-blank string (a ``pathlib.Path`` is taken as its string)."""

Device = Annotated[Text, matching(r"^(auto|cpu|cuda(:\d+)?)$", "auto, cpu, cuda or cuda:N")]
"""A torch device name: ``auto`` (CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:N``."""


def conflict(keys: Iterable[str], problem: str) -> PydanticCustomError:
    """The error a cross-field validator raises: ``problem`` about ``keys`` (dotted paths, the
    first one is the key the error names)."""
    return PydanticCustomError("conflict", "{problem}", {"problem": problem, "keys": tuple(keys)})


class ConfigModel(BaseModel):
    """Base of the toolkit's configs: extra keys forbidden, strict types, frozen.

    Building one from keywords raises the class's :attr:`error` (an
    :class:`~hero_data.errors.OptionError` subclass) instead of pydantic's ``ValidationError``.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, validate_default=True, protected_namespaces=()
    )

    error: ClassVar[type[OptionError]] = OptionError
    """The error class of this config's problems."""

    renamed: ClassVar[Mapping[str, str]] = {}
    """Keys this config once had, and the keys that replaced them: an old file or checkpoint
    that still uses one gets an error naming the new key (not a "did you mean" guess)."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            names = type(self).display_names(values)
            error = option_error(e, type(self).error, None, names=names, model=type(self))
            # Pydantic builds a nested config through this __init__ too: the enclosing config
            # reads the original problem from here, to name the whole key path.
            error.validation = e  # type: ignore[attr-defined]
            raise error from None

    def updated(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated (``model_copy(update=...)`` does not validate)."""
        return type(self)(**{**self.model_dump(), **changes})

    def merged(self, values: Mapping[str, Any], source: str) -> Self:
        """A copy with ``values`` (from the YAML file or command line ``source``) replaced,
        validated; a problem raises :attr:`error` naming ``source`` and the key path."""
        cls = type(self)
        try:
            return cls.model_validate({**self.model_dump(), **values})
        except ValidationError as e:
            raise option_error(e, cls.error, source, model=cls) from None

    @classmethod
    def default_of(cls, name: str) -> Any:
        """The default of field ``name`` (for a flag's help: defaults are written once)."""
        return cls.model_fields[name].get_default(call_default_factory=True)

    @classmethod
    def accepted_keys(cls) -> list[str]:
        """The keys this config takes at its top level (for "did you mean")."""
        return list(cls.model_fields)

    @classmethod
    def display_names(cls, values: Mapping[str, Any]) -> dict[str, str]:
        """How the keys of ``values`` are named in errors, where not by their dotted path
        (a config that accepts a key of a nested model at its top level maps it here)."""
        return {}


# --- errors -----------------------------------------------------------------------------------


def _path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "config"


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The (nested) model at ``loc``, or ``None`` where ``loc`` leads to no model."""
    for part in loc:
        if model is None:
            return None
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation if nested else None
    return model


def _fields_at(model: type[BaseModel] | None) -> list[str]:
    """The keys ``model`` takes, for "did you mean"."""
    if model is None:
        return []
    return model.accepted_keys() if issubclass(model, ConfigModel) else list(model.model_fields)


def _problem(error: Mapping[str, Any], name: str, model: type[BaseModel] | None) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        at = _model_at(model, error["loc"][:-1])
        new = at.renamed.get(key) if at is not None and issubclass(at, ConfigModel) else None
        if new is not None:
            return f"{name!r} was renamed {new!r}: rename the key"
        close = difflib.get_close_matches(key, _fields_at(at), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown option {name!r}{hint}"
    if kind == "missing":
        return f"{name} is required"
    if kind == "conflict":
        return str(ctx["problem"])
    if kind in ("float_type", "float_parsing"):
        return f"{name} must be a number, got {got!r}"
    if kind == "finite_number":
        return f"{name} must be a finite number, got {got!r}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{name} must be a whole number, got {got!r}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{name} must be true or false, got {got!r}"
    if kind == "hero":
        return f"{name} {error['msg']}, got {got!r}"
    if kind == "string_type":
        return f"{name} must be a non-empty string, got {got!r}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        word = {
            "greater_than": ("greater than", "gt"),
            "greater_than_equal": ("at least", "ge"),
            "less_than": ("less than", "lt"),
            "less_than_equal": ("at most", "le"),
        }[kind]
        return f"{name} must be {word[0]} {ctx[word[1]]:g}, got {got:g}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"{name} must be one of {expected}, got {got!r}"
    if kind in ("list_type", "tuple_type", "dict_type", "model_type", "model_attributes_type"):
        what = {"dict_type": "a mapping", "model_type": "a mapping"}.get(kind, "a list")
        return f"{name} must be {what}, got {got!r}"
    if kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
        return message if message.startswith(name) else f"{name}: {message}"
    return f"{name}: {error['msg'][:1].lower()}{error['msg'][1:]}, got {got!r}"


def option_error(
    exc: ValidationError,
    error: type[OptionError],
    source: str | None,
    *,
    names: Mapping[str, str] | None = None,
    where: Callable[[tuple[str, ...]], str | None] | None = None,
    model: type[BaseModel],
) -> OptionError:
    """``exc``'s first problem as ``error(problem, source, key)``.

    The key is the dotted path of the value at fault (``extract.batch_size``), or the name
    ``names`` gives that path; the problem says what is wrong with it and what was given. An
    unknown key gets the closest known one ("did you mean"). ``where`` (the paths at fault ->
    the source to name) overrides ``source``, for a config merged from several sources.
    ``model`` is the config class validated (for the known keys).
    """
    names = names or {}
    first = _first(exc)
    ctx = first.get("ctx") or {}
    loc = tuple(first["loc"])
    if first["type"] == "conflict":
        paths = tuple(_path(loc + tuple(k.split("."))) for k in ctx["keys"])
    else:
        paths = (_path(loc),)
    key = names.get(paths[0], paths[0])
    problem = _problem(first, key, model)
    if where is not None:
        source = where(paths)
    return error(problem, source, key)


def _first(exc: ValidationError) -> dict[str, Any]:
    """``exc``'s first problem; one of a nested config, with its location from the root."""
    first = exc.errors(include_url=False)[0]
    inner = getattr((first.get("ctx") or {}).get("error"), "validation", None)
    if isinstance(inner, ValidationError):
        nested = _first(inner)
        return {**nested, "loc": tuple(first["loc"]) + tuple(nested["loc"])}
    return dict(first)


# --- reading ----------------------------------------------------------------------------------


def read_mapping(path: str, error: type[OptionError], what: str = "options") -> dict[str, Any]:
    """The mapping in YAML file ``path`` (local or fsspec URL); ``{}`` for an empty file.

    Raises ``error`` naming the file for a missing file, a YAML error (with its line), a
    repeated key, a document past :mod:`hero_data.yamlfile`'s bounds, or one that is not a
    mapping of names (``what`` names its entries in that message).
    """
    try:
        with fsspec.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise error("no such file", path) from None
    except IsADirectoryError:
        raise error("is a folder, not a YAML file", path) from None
    obj = load_yaml(data, path, error)
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise error(f"expected a mapping of {what}, got a {type(obj).__name__}", path)
    for key in obj:
        if not isinstance(key, str):
            raise error(f"option names must be strings, got {key!r}", path)
    return obj
