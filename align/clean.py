"""Cleaning one video's cues: drop empty and zero-length ones, merge repeats, un-roll captions.

YouTube's automatic captions "roll": each cue shows the previous phrase on its first line and the
new phrase on its second, and a 10 ms "transition" cue then shows the new phrase alone::

    [0.03, 2.20]  "" / "hello everyone welcome"            first appearance
    [2.20, 2.21]  "hello everyone welcome" / " "           transition cue
    [2.21, 5.00]  "hello everyone welcome" / "to my channel"
    [5.00, 5.01]  "to my channel" / " "

    cleaned:  [0.03, 2.21] "hello everyone welcome"   [2.21, 5.01] "to my channel"

Rule. First, exact repeats go: of cues with the same start, end, words and speaker, the first
is kept, wherever the others stand among the cues sharing those times. Then one pass over the
cues sorted by (start, end), comparing each cue with the last kept cue P, when both have the
same speaker and the cue starts no later than 1.5 ms after P ends:

- words the cue repeats from P are cut from its front, repeatedly: P's whole text, or a tail of
  P of at least three words (for a first cue that already showed two lines);
- if nothing is left, the cue only repeats what is on screen: it is removed and P is extended to
  the cue's end; otherwise the rest becomes a new phrase with the cue's own times.

So a phrase starts at its first appearance as new text and ends where its last appearance as
the newest text ends, which is where the next phrase starts: phrases do not overlap, and a
phrase's later appearance on the old (top) line does not lengthen it. Texts are compared word by
word (whitespace-insensitive); a cut cue's text is its remaining words joined by single spaces,
and every other cue keeps its text exactly. Subtitles that do not roll pass through unchanged
except for the drops and merges counted in :class:`CleanReport`. Apart from exact repeats, only
consecutive cues are compared: two equal texts at different times with a different cue between
them both stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar

from hero_data.types import Cue

__all__ = ["CleanReport", "clean_cues"]

_MAX_GAP_S = 0.0015
"""Cues this close (seconds) count as touching: one tick of SRT/VTT timestamps, plus float noise."""

_MIN_TAIL_WORDS = 3
"""A partial repeat of the previous cue must be this many words to count as rolling."""


@dataclass(frozen=True)
class CleanReport:
    """What :func:`clean_cues` did, in cues. ``input == output + the four removal counts``.

    Attributes:
        input: cues given.
        empty_dropped: removed because their text is empty after stripping whitespace.
        zero_length_dropped: removed because ``end <= start`` (and their text is not empty).
        duplicates_merged: removed because they repeat another cue exactly (same times,
            words and speaker), or only repeat the previous kept cue (its text, or a tail of it
            of three or more words) and touch it in time, so that cue now spans both. Counted
            here when no cue in the list rolled (``rolling_trimmed == 0``).
        rolling_collapsed: the same removals in a list that rolls (``rolling_trimmed > 0``):
            YouTube's transition cues and other repeats of the line on screen.
        output: cues returned.
        rolling_trimmed: not part of the sum: returned cues whose front was cut because it
            repeated the previous phrase (each is also counted in ``output``).
    """

    TYPE: ClassVar[str] = "clean_report"

    input: int
    empty_dropped: int
    zero_length_dropped: int
    duplicates_merged: int
    rolling_collapsed: int
    output: int
    rolling_trimmed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{f.name} must be a non-negative int, got {value!r}")
        removed = (
            self.empty_dropped
            + self.zero_length_dropped
            + self.duplicates_merged
            + self.rolling_collapsed
        )
        if self.input != self.output + removed:
            raise ValueError(f"counts do not add up: {self.input} in, {self.output} + {removed}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict with a ``type`` tag."""
        return {"type": self.TYPE, **asdict(self)}


@dataclass
class _Phrase:
    """A kept cue while cleaning: its source cue, and the words and end it has now."""

    cue: Cue
    words: list[str]
    end: float
    trimmed: bool

    def result(self) -> Cue:
        if self.trimmed:
            return replace(self.cue, text=" ".join(self.words), end=self.end)
        return self.cue if self.end == self.cue.end else replace(self.cue, end=self.end)


def _repeat_length(shown: list[str], words: list[str]) -> int:
    """How many of ``words``' first words repeat the end of ``shown`` (0 when not a repeat)."""
    longest = min(len(shown), len(words))
    for k in range(longest, 0, -1):
        if k < len(shown) and k < _MIN_TAIL_WORDS:
            return 0
        if words[:k] == shown[len(shown) - k :]:
            return k
    return 0


def _new_words(shown: list[str], words: list[str]) -> list[str]:
    """``words`` with every leading repeat of what ``shown`` ends with cut off."""
    while words:
        k = _repeat_length(shown, words)
        if k == 0:
            break
        words = words[k:]
    return words


def clean_cues(cues: Sequence[Cue]) -> tuple[list[Cue], CleanReport]:
    """Cleaned cues, sorted by start, and counts of what was removed (see the module doc).

    The result has no empty or zero-length cues, and cleaning it again changes nothing.
    """
    kept: list[Cue] = []
    empty = zero_length = 0
    for cue in cues:
        if not cue.text.strip():
            empty += 1
        elif cue.end <= cue.start:
            zero_length += 1
        else:
            kept.append(cue)
    kept.sort(key=lambda c: (c.start, c.end))
    # Exact repeats (same times, words and speaker) go first, wherever they stand among the
    # cues sharing their times: the pass below only sees neighbours.
    distinct: list[Cue] = []
    same_times: set[tuple[tuple[str, ...], str | None]] = set()
    repeats = 0
    for k, cue in enumerate(kept):
        if k == 0 or (cue.start, cue.end) != (kept[k - 1].start, kept[k - 1].end):
            same_times = set()
        ident = (tuple(cue.text.split()), cue.speaker)
        if ident in same_times:
            repeats += 1
            continue
        same_times.add(ident)
        distinct.append(cue)

    phrases: list[_Phrase] = []
    trimmed = 0
    for cue in distinct:
        words = cue.text.split()
        prev = phrases[-1] if phrases else None
        if (
            prev is not None
            and prev.cue.speaker == cue.speaker
            and cue.start <= prev.end + _MAX_GAP_S
        ):
            rest = _new_words(prev.words, words)
            if not rest:
                prev.end = max(prev.end, cue.end)
                repeats += 1
                continue
            if len(rest) < len(words):
                phrases.append(_Phrase(cue, rest, cue.end, trimmed=True))
                trimmed += 1
                continue
        phrases.append(_Phrase(cue, words, cue.end, trimmed=False))

    out = [p.result() for p in phrases]
    report = CleanReport(
        input=len(cues),
        empty_dropped=empty,
        zero_length_dropped=zero_length,
        duplicates_merged=0 if trimmed else repeats,
        rolling_collapsed=repeats if trimmed else 0,
        output=len(out),
        rolling_trimmed=trimmed,
    )
    return out, report
