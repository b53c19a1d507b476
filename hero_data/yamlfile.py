"""The one YAML reader of the toolkit's config files (``hero run``, ``hero train``, the model).

A config file may come from anyone, so it is read as plain data and within bounds, and every
problem is the caller's :class:`~hero_data.errors.OptionError` subclass naming the file (and
the line, when the problem is on one):

- PyYAML's safe loader: scalars, lists and mappings only; a tag naming Python code is an error.
- A key given twice in one mapping is an error (PyYAML would keep the last silently), and so is
  a key that is a list or a mapping.
- At most :data:`MAX_BYTES` of UTF-8 text, :data:`MAX_DEPTH` levels of nesting, and
  :data:`MAX_VALUES` values once aliases are expanded: a few lines of anchors and aliases
  (``&a [*b, *b, ...]``) can stand for billions of values, which anything walking the result
  (validation messages, ``repr``, copies) would expand.
- A whole number of more than Python's 4,300 digits is an error with its line, not a
  ``ValueError`` from ``int()``.
"""

from __future__ import annotations

from typing import Any

import yaml

from hero_data.errors import OptionError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "load_yaml"]

MAX_BYTES = 256 << 10
"""Largest config file read (256 KiB); the toolkit's own are a few KiB. PyYAML's safe loader is
pure Python, about 70 KB/s on this project's 2-core machine, so this bounds a read to a few
seconds."""

MAX_DEPTH = 32
"""Deepest nesting of lists and mappings; the toolkit's configs nest 3 levels."""

MAX_VALUES = 100_000
"""Most values (scalars, lists, mappings) a document may hold with its aliases expanded."""


class _Refused(yaml.YAMLError):
    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _Loader(yaml.SafeLoader):
    """The safe loader, with unique hashable keys, a depth bound, an expansion bound, and
    integers of any length turned into an error rather than a ``ValueError``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Any) -> Any:
        _check_expansion(node)
        return super().construct_document(node)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!set 4`: PyYAML's own error says so
            return super().construct_mapping(node, deep=deep)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                before = seen.get(key)
            except TypeError:
                mark = key_node.start_mark
                raise _Refused("a key must be a scalar, not a list or mapping", mark) from None
            if before is not None:
                problem = f"key {key!r} given twice (lines {before} and {line})"
                raise _Refused(problem, key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise _Refused("a whole number of more than 4,300 digits", node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _check_expansion(root: Any) -> None:
    """Refuse a node graph that expands to more than :data:`MAX_VALUES` values, or that holds
    itself (an alias inside its own anchor). Aliases share nodes, so the graph is walked once,
    each node's expanded size computed from its children's."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            open_.discard(key)
            sizes[key] = min(1 + sum(sizes[id(c)] for c in children), MAX_VALUES + 1)
            if sizes[key] > MAX_VALUES:
                raise _Refused(
                    f"holds more than {MAX_VALUES:,} values once its aliases are expanded",
                    node.start_mark,
                )
            continue
        if key in sizes:
            continue
        if key in open_:
            raise _Refused("an alias refers to the node that holds it", node.start_mark)
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml(data: bytes, source: str, error: type[OptionError]) -> Any:
    """The YAML document in ``data`` (the bytes of file ``source``) as plain data; ``None``
    for an empty document. Raises ``error`` naming ``source`` (see the module docstring)."""
    if len(data) > MAX_BYTES:
        limit = MAX_BYTES >> 10
        raise error(
            f"{len(data):,} bytes: larger than the {limit} KiB a config file may be", source
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(f"not UTF-8 text (line {line}: {e.reason})", source) from None
    loader = None
    try:
        loader = _Loader(text)  # checks that every character is printable
        return loader.get_single_data()
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        problem = f"character #x{e.character:04x} is not allowed in YAML"
        raise error(f"not valid YAML: line {line}: {problem}", source) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise error(f"not valid YAML: {where}{problem}", source) from None
    finally:
        if loader is not None:
            loader.dispose()
