"""The members of one big JSON object, read from a byte stream one at a time.

:class:`ObjectMembers` walks the top-level object of a UTF-8 stream (a local file or an fsspec
file) member by member, holding about one chunk of the text in memory, and says where each
member is (line, column, byte). :mod:`align.captions` indexes HowTo100M's ``caption.json``
with it.

Each value is parsed by the json module's own C scanner, so values are exactly what
``json.loads`` gives (``NaN`` and ``Infinity`` included). It is a little faster than
``ijson`` 3.6.0's yajl2_c backend (``kvitems``) on HowTo100M-like data, positions counted
included (138 against 126 MB/s, best of four, parsing only, an 87 MB file of 20 k videos of
about 110 cues, this project's 2-core machine), needs no dependency, and, unlike ``ijson``,
knows where each member is, so errors name the line and byte.

Errors are :class:`~align.readers.SubtitleError` with the file, line and byte (and column for
invalid JSON): not UTF-8, empty, not an object, invalid JSON anywhere, something after the
object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from json.decoder import JSONDecodeError, scanstring
from typing import Any, BinaryIO

from align.readers import SubtitleError, json_int

__all__ = ["MAX_MEMBER_CHARS", "ObjectMembers"]

MAX_MEMBER_CHARS = 512 << 20
"""Longest single member accepted; a longer one (an unterminated string?) is an error, so that
memory stays bounded whatever the file holds."""

_WS = re.compile(r"[ \t\n\r]*")
# What may still follow a number's first characters ("0" of "0.5", "1" of "1e-3"): a number
# value whose text runs on to the end of the buffer in these may have been cut there.
_NUMBER_TAIL = re.compile(r"[0-9.eE+\-]*")

# A syntax error this many characters or more before the end of the buffer is one: no token
# cut by the end of the buffer (a number's exponent, "-Infinity", an escaped surrogate pair
# "\ud83d\ude00") makes the scanner fail further back than 12 characters, except an
# unterminated string, which is reported where it starts.
_CONCLUSIVE = 32


class _More(Exception):
    """The buffer ended before the member did; read more and try again."""


class _Syntax(Exception):
    def __init__(self, msg: str, pos: int) -> None:
        self.msg = msg
        self.pos = pos


def _newlines(text: str) -> int:
    """Line breaks in ``text`` (``\\n``, ``\\r\\n`` and a lone ``\\r``, as the readers count)."""
    breaks = text.count("\n")
    returns = text.count("\r")
    return breaks + returns - text.count("\r\n") if returns else breaks


class ObjectMembers:
    """The members of the top-level JSON object of a UTF-8 byte stream, one at a time.

    Each member's value is parsed by the json module's C scanner, so values are what
    ``json.loads`` gives. The decoded text is buffered a chunk at a time; a member cut by the
    end of the buffer is parsed again once more is read (the read size doubles while it stays
    cut, so a long member costs linear time). A syntax error is told apart from a cut member by
    where it is: an error well before the end of the buffer (or at the end of the stream) is
    real, one near the end may be a cut token, so more is read and the member parsed again.

    ``location(pos)`` turns a buffer position into (line, column, byte); a cursor moves forward
    over the text as it is dropped, so counting lines and bytes costs one pass over the file.
    """

    def __init__(self, stream: BinaryIO, name: str, chunk: int) -> None:
        self.stream = stream
        self.name = name
        self.chunk = max(1, chunk)
        self.decoder = json.JSONDecoder(parse_int=json_int)  # a huge integer: a bad time
        self.buf = ""
        self.pending = b""  # a UTF-8 sequence cut by the end of the last read
        self.eof = False
        self.started = False
        self.first = True
        self.pos = 0  # where the next member (or the opening brace) starts in buf
        self.char0 = 0  # characters of the file before buf[0]
        # The cursor: a position in buf with its line, its line's start (an index in buf, maybe
        # negative) and its byte offset in the file.
        self.cur = 0
        self.cur_line = 1
        self.cur_line_start = 0
        self.cur_byte = 0

    # -- positions ------------------------------------------------------------------------

    def _count(self, a: int, b: int) -> tuple[int, int, int]:
        """(line breaks, index of the last line start or -1, UTF-8 bytes) of buf[a:b]."""
        seg = self.buf[a:b]
        breaks = _newlines(seg)
        last = max(seg.rfind("\n"), seg.rfind("\r"))
        size = len(seg) if seg.isascii() else len(seg.encode("utf-8", "surrogatepass"))
        return breaks, (a + last + 1) if last >= 0 else -1, size

    def _advance(self, pos: int) -> None:
        breaks, start, size = self._count(self.cur, pos)
        self.cur_line += breaks
        if start >= 0:
            self.cur_line_start = start
        self.cur_byte += size
        self.cur = pos

    def location(self, pos: int) -> tuple[int, int, int]:
        """(line, column, byte offset) of ``buf[pos]``; ``pos`` at or after the cursor."""
        breaks, start, size = self._count(self.cur, pos)
        line_start = start if start >= 0 else self.cur_line_start
        return self.cur_line + breaks, pos - line_start + 1, self.cur_byte + size

    def _error(self, problem: str, pos: int, *, column: bool = True) -> SubtitleError:
        line, col, byte = self.location(min(pos, len(self.buf)))
        where = f" (column {col})" if column else ""
        return SubtitleError(self.name, line, f"{problem}{where}", offset=byte)

    # -- reading --------------------------------------------------------------------------

    def _read(self, size: int) -> bool:
        """Append up to ``size`` more bytes' text to the buffer, first dropping what lies
        before ``self.pos``; ``False`` at the end of the stream."""
        if self.pos:
            self._advance(self.pos)
            self.buf = self.buf[self.pos :]
            self.char0 += self.pos
            self.cur_line_start -= self.pos
            self.cur = 0
            self.pos = 0
        if self.eof:
            return False
        data = self.stream.read(size)
        if not self.started:
            self.started = True
            while 0 < len(data) < 3 and (more := self.stream.read(3 - len(data))):
                data += more  # enough to see a byte order mark
            if data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
                self.cur_byte = 3
                if not data:  # the read held the mark alone: that is not the end
                    data = self.stream.read(size)
        if not data:
            self.eof = True
            if self.pending:
                raise self._utf8_error(self.pending, 0, "unexpected end of data")
            return False
        data = self.pending + data
        self.pending = b""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.reason != "unexpected end of data" or len(data) - e.start > 3:
                raise self._utf8_error(data, e.start, e.reason) from None
            self.pending = data[e.start :]
            text = data[: e.start].decode("utf-8")
        self.buf += text
        return True

    def _utf8_error(self, data: bytes, start: int, reason: str) -> SubtitleError:
        line, _, byte = self.location(len(self.buf))
        before = data[:start]
        breaks = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n")
        return SubtitleError(
            self.name, line + breaks, f"not UTF-8 text ({reason})", offset=byte + start
        )

    def _grow(self, tries: int) -> bool:
        if len(self.buf) - self.pos > MAX_MEMBER_CHARS:
            raise self._error(
                f"an entry longer than {MAX_MEMBER_CHARS:,} characters "
                "(is a string left unterminated?)",
                self._entry_start(),
                column=False,
            )
        return self._read(self.chunk << min(tries, 10))

    def _entry_start(self) -> int:
        """Where the member after ``self.pos`` starts: past whitespace and a comma."""
        i = _WS.match(self.buf, self.pos).end()
        if not self.first and self._char(i) == ",":
            i = _WS.match(self.buf, i + 1).end()
        return i

    # -- parsing --------------------------------------------------------------------------

    def _ws(self, i: int) -> int:
        j = _WS.match(self.buf, i).end()
        if j >= len(self.buf) and not self.eof:
            raise _More
        return j

    def _char(self, i: int) -> str:
        return self.buf[i] if i < len(self.buf) else ""

    def _start(self) -> None:
        """Find the opening brace of the top-level object."""
        tries = 0
        while True:
            try:
                i = self._ws(self.pos)
                break
            except _More:
                self._grow(tries)
                tries += 1
        c = self._char(i)
        if not c:
            raise SubtitleError(self.name, None, "empty file")
        if c != "{":
            raise self._error(
                f"expected a JSON object of videos, got {self._kind(i)}", i, column=False
            )
        self.pos = i + 1

    def _kind(self, i: int) -> str:
        """What the JSON value starting at buf[i] is, in Python's words (its first character
        tells; a number may not be whole in the buffer)."""
        c = self.buf[i]
        names = {"[": "list", '"': "str", "t": "bool", "f": "bool", "n": "NoneType"}
        if c in names:
            return names[c]
        if c in "-0123456789NI":
            return "number"
        raise self._error("invalid JSON: Expecting value", i)

    def _member(self) -> tuple[str, Any, int, int] | int:
        """(key, value, key position, end) of the member at ``self.pos``, or the position of
        the object's closing brace. Raises :class:`_More` or :class:`_Syntax`."""
        buf = self.buf
        i = self._ws(self.pos)
        c = self._char(i)
        if c == "}":
            return i
        if not self.first:
            if c != ",":
                raise _Syntax("Expecting ',' delimiter", i)
            i = self._ws(i + 1)
        if self._char(i) != '"':
            raise _Syntax("Expecting property name enclosed in double quotes", i)
        try:
            key, j = scanstring(buf, i + 1, True)
        except JSONDecodeError as e:
            raise _Syntax(e.msg, e.pos) from None
        j = self._ws(j)
        if self._char(j) != ":":
            raise _Syntax("Expecting ':' delimiter", j)
        j = self._ws(j + 1)
        try:
            value, end = self.decoder.raw_decode(buf, j)
        except JSONDecodeError as e:
            raise _Syntax(e.msg, e.pos) from None
        except RecursionError:
            raise _Syntax("nested too deeply", j) from None
        if (
            not self.eof
            and type(value) in (int, float)
            and _NUMBER_TAIL.match(buf, end).end() == len(buf)
        ):
            raise _More  # "0" of "0.5" cut after "0." parses as 0: read on before deciding
        self._ws(end)  # something must follow the value: a cut number would parse short
        return key, value, i, end

    def __iter__(self) -> Iterator[tuple[str, Any, int]]:
        """(key, value, key position in ``self.buf``) per member, in file order. The position
        stays valid (for :meth:`location`) until the next member is asked for."""
        self._start()
        while True:
            tries = 0
            while True:
                try:
                    found = self._member()
                    break
                except _More:
                    pass
                except _Syntax as e:
                    if self.eof or (
                        len(self.buf) - e.pos > _CONCLUSIVE
                        and not e.msg.startswith("Unterminated string")
                    ):
                        raise self._error(f"invalid JSON: {e.msg}", e.pos) from None
                except ValueError as e:  # e.g. an integer over Python's digit limit
                    raise self._error(f"invalid JSON: {e}", self.pos) from None
                self._grow(tries)
                tries += 1
            if isinstance(found, int):
                self._finish(found + 1)
                return
            key, value, at, end = found
            self.first = False
            yield key, value, at
            self.pos = end

    def _finish(self, pos: int) -> None:
        """After the closing brace at ``pos - 1``: only whitespace may follow, as
        ``json.loads`` requires."""
        self.pos = pos
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                raise self._error("invalid JSON: Extra data", self.pos)
            if not self._read(self.chunk):
                return
