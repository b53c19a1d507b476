"""What the benchmark builders share: reading the released CSV files, time spans, the report.

The How2R and How2QA releases are CSV files without a header, one annotation per record, with
absolute times written as ``[start:end]`` seconds. Fields may be quoted (``"a, b"``, with ``""``
for a quote inside). Every record ends up either written or rejected with a reason and its
line number, so a report's counts add up to the records read: ``input_rows == written +
sum(rejected.values())`` (``clipped`` counts written rows whose moment was cut to its clip).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hero_data.errors import HeroError

CLIP_SECONDS = 60.0
"""Length of the clips the How2R / How2QA annotations are cut to, seconds (HERO's ``v.k``)."""

MAX_SECONDS = 1e9
"""Latest time an annotation may give, seconds (31 years): past it, clip indices and
clip-relative times would lose their precision (microseconds need 2**53 > 1e9 · 1e6)."""

MAX_DETAIL = 300
"""Characters of a rejection's detail kept in the report (a field may be 128 KiB long)."""

_SPAN = re.compile(r"^\[\s*([^:\[\]]+?)\s*:\s*([^:\[\]]+?)\s*\]$")


class BenchmarkError(HeroError, ValueError):
    """Bad input to a builder or scorer; the message names the file at fault and what is wrong."""


@dataclass(frozen=True)
class Rejection:
    """One input record that was not written.

    Attributes:
        source: the file it came from (or the dataset, for subtitle queries).
        line: 1-based line the record starts on (for subtitle queries: the cue's running index).
        reason: a short key, counted in the report (``too_few_fields``, ``missing_clip`` ...).
        detail: one human sentence on what is wrong.
    """

    source: str
    line: int
    reason: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass
class BuildReport:
    """Counts of a build. ``input_rows == written + sum(rejected)`` (see :meth:`check`).

    Attributes:
        kind: ``how2r``, ``how2qa`` or ``subtitle-queries``.
        inputs: the annotation files (or the dataset) read.
        input_rows: records read (CSV records, blank lines included; or cues).
        written: records written to ``all.jsonl``.
        clipped: written records whose moment was cut to its clip.
        rejections: every record not written, with its line and reason.
        extra: builder-specific figures (e.g. How2QA's moments crossing a clip boundary).
    """

    kind: str
    inputs: list[str]
    input_rows: int = 0
    written: int = 0
    clipped: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def reject(self, source: str, line: int, reason: str, detail: str) -> None:
        """Record one rejected input (its detail cut to :data:`MAX_DETAIL` characters)."""
        if len(detail) > MAX_DETAIL:
            detail = detail[: MAX_DETAIL - 1] + "…"
        self.rejections.append(Rejection(source, line, reason, detail))

    @property
    def rejected(self) -> dict[str, int]:
        """Rejected records by reason."""
        return dict(sorted(Counter(r.reason for r in self.rejections).items()))

    def check(self) -> None:
        """Raise ``AssertionError`` unless the counts add up (a bug, not bad input)."""
        total = self.written + len(self.rejections)
        if total != self.input_rows:
            raise AssertionError(
                f"{self.kind}: {self.input_rows} inputs but {self.written} written + "
                f"{len(self.rejections)} rejected"
            )

    def csv_rows(
        self, paths: Sequence[str | Path], expected: int
    ) -> Iterator[tuple[str, int, int, list[str]]]:
        """``(source, line, record index, fields)`` for each record of the CSV ``paths``.

        Every record is counted in :attr:`input_rows` (its index is its count before it);
        unreadable records (``bad_csv``) and blank lines (``blank_line``) are rejected here and
        not yielded. Fields have trailing empty fields past ``expected`` removed.
        """
        for path in paths:
            src = str(path)
            for line, fields, error in read_csv_records(Path(path)):
                index = self.input_rows
                self.input_rows += 1
                if fields is None:
                    self.reject(src, line, "bad_csv", error)
                elif not fields or (len(fields) == 1 and not fields[0].strip()):
                    self.reject(src, line, "blank_line", "blank line")
                else:
                    yield src, line, index, trim_trailing_empty(fields, expected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "inputs": self.inputs,
            "input_rows": self.input_rows,
            "written": self.written,
            "clipped": self.clipped,
            "rejected": self.rejected,
            **self.extra,
            "rejections": [r.to_dict() for r in self.rejections],
        }


def read_csv_records(path: str | Path) -> Iterator[tuple[int, list[str] | None, str]]:
    """``(first line number, fields, error)`` per CSV record of ``path`` (no header).

    A blank line is a record with no fields. A record the CSV rules cannot read (a stray quote)
    comes back as ``(line, None, what is wrong)``, and reading goes on with the next line. The
    file must be UTF-8 (a byte-order mark is allowed); anything else raises
    :class:`BenchmarkError` naming the file.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise BenchmarkError(f"{path}: no such annotation file") from None
    except IsADirectoryError:
        raise BenchmarkError(f"{path}: is a folder, expected an annotation CSV file") from None
    except UnicodeDecodeError as e:
        raise BenchmarkError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    first = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield first, None, f"unreadable CSV: {e}"
        else:
            yield first, fields, ""
        first = reader.line_num + 1


def trim_trailing_empty(fields: list[str], expected: int) -> list[str]:
    """``fields`` without empty fields past the ``expected`` count (a trailing comma, as in
    the How2R test release)."""
    out = list(fields)
    while len(out) > expected and not out[-1].strip():
        out.pop()
    return out


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def parse_seconds(text: str) -> float:
    """A finite number of seconds in ``[0, MAX_SECONDS]``; ``ValueError`` otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{_shown(text)} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise ValueError(
            f"{_shown(text)} is not a number of seconds from 0 to {MAX_SECONDS:g} (31 years)"
        )
    return value


def parse_span(text: str) -> tuple[float, float]:
    """``"[12.5:30]"`` -> ``(12.5, 30.0)`` seconds; ``ValueError`` if it is not that shape.

    The end may be before the start here; callers decide what that means.
    """
    m = _SPAN.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{_shown(text)} is not a time span like [12.5:30.0]")
    return parse_seconds(m.group(1)), parse_seconds(m.group(2))


def clean_seconds(value: float) -> float:
    """Round to microseconds: drops float noise such as ``32.855000000000004`` after a shift."""
    out = round(value, 6)
    return 0.0 if out == 0 else out


def format_seconds(value: float) -> str:
    """Seconds as short text: ``12.5``, ``3``, ``0.125`` (at most 6 decimals)."""
    out = f"{clean_seconds(value):.6f}".rstrip("0").rstrip(".")
    return out or "0"
