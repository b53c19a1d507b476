"""Fuzzing the parsers of outside data: hostile inputs, two depths, and the bounds a parser keeps.

Every fuzz test states one property: the parser returns data that meets its documented
invariants, or raises its documented error naming the file and the position; nothing else
escapes, it never hangs (:func:`bounded` interrupts it past a time limit) and its peak heap
stays under a stated bound (measured with ``tracemalloc``, which sees Python objects, numpy
and Arrow buffers allocated through Python's allocator, but not C libraries' own ``malloc``).

Depths: each fuzz test runs :data:`FAST` examples in the default run (a few seconds per
parser) and :data:`DEEP` under the ``slow`` marker (``pytest -m slow``). The number of cases a
test really ran is counted (:func:`count`); with ``$HERO_FUZZ_REPORT`` set, the counts are
written there as JSON when the process exits (BENCHMARKS.md records a deep run's).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FAST_EXAMPLES = 60
"""Examples per fuzz test in the default run."""

DEEP_EXAMPLES = 3000
"""Examples per fuzz test in the ``slow`` deep run."""

DEPTHS = pytest.mark.parametrize(
    "examples",
    [
        pytest.param(FAST_EXAMPLES, id="fast"),
        pytest.param(DEEP_EXAMPLES, id="deep", marks=pytest.mark.slow),
    ],
)
"""Parametrize a fuzz test over the two depths (its argument ``examples``)."""

MB = 1 << 20

_CASES: Counter[str] = Counter()


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings of a fuzz test: ``examples`` cases, no per-example deadline (the
    time bound is :func:`bounded`'s), function-scoped fixtures allowed."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


def count(name: str, n: int = 1) -> None:
    """Count ``n`` cases run by the fuzz test ``name``."""
    _CASES[name] += n


def cases() -> dict[str, int]:
    """Cases run so far, per fuzz test."""
    return dict(_CASES)


@atexit.register
def _report() -> None:
    target = os.environ.get("HERO_FUZZ_REPORT")
    if target and _CASES:
        with open(target, "w", encoding="utf-8") as f:
            json.dump(dict(sorted(_CASES.items())), f, indent=1)


class Hang(BaseException):
    """Raised into a parser that ran past its time bound (a BaseException, so that no
    ``except Exception`` in the parser swallows it)."""


@contextlib.contextmanager
def bounded(seconds: float, heap_mb: float | None) -> Iterator[None]:
    """Fail the test unless the block ends within ``seconds`` and its peak traced heap stays
    under ``heap_mb`` MiB (``None``: time only; tracing slows a block several times).

    The time bound is a ``SIGALRM`` that raises :class:`Hang` inside the block (Python code
    only: a C call that never returns would not be interrupted).
    """
    trace = heap_mb is not None
    started_tracing = trace and not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0] if trace else 0
    if trace:
        tracemalloc.reset_peak()

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        peak = tracemalloc.get_traced_memory()[1] - base if trace else 0
        if started_tracing:
            tracemalloc.stop()
    elapsed = time.monotonic() - started
    if heap_mb is not None:
        assert peak <= heap_mb * MB, f"peak heap {peak / MB:.1f} MiB > bound {heap_mb} MiB"
    assert elapsed <= seconds, f"took {elapsed:.1f} s > bound {seconds} s"


# --- hostile inputs -------------------------------------------------------------------------------

INVALID_UTF8 = (b"\xff", b"\xc3", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf")
"""Byte sequences no UTF-8 decoder accepts (lone bytes, cut sequences, surrogates, overlong)."""

NUMBER_TEXTS = (
    "0",
    "-0",
    "-1",
    "-1e-300",
    "1e308",
    "1e309",
    "-1e309",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "9" * 400,
    "9" * 5000,
    "0x10",
    "1_000",
    "1e",
    ".5",
    "5.",
    "+3",
    "١٢",
)
"""How numbers are written when someone means harm or a tool slips: huge, tiny, negative,
non-finite, too many digits for Python's int limit, other notations, other digits."""


def mutations(seeds: list[bytes], tokens: list[bytes]) -> st.SearchStrategy[bytes]:
    """A valid file from ``seeds``, mutated a few times: bytes flipped, ranges deleted or
    repeated, ``tokens`` or hostile bytes inserted, the file cut."""

    @st.composite
    def mutated(draw: Callable[..., Any]) -> bytes:
        buf = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(1, 6))):
            op = draw(st.sampled_from(["flip", "delete", "repeat", "insert", "cut"]))
            at = draw(st.integers(0, len(buf)))
            if op == "flip" and buf:
                at = min(at, len(buf) - 1)
                buf[at] ^= 1 << draw(st.integers(0, 7))
            elif op == "delete":
                buf[at : at + draw(st.integers(1, 16))] = b""
            elif op == "repeat":
                piece = bytes(buf[at : at + draw(st.integers(1, 64))])
                buf[at:at] = piece * draw(st.integers(1, 20))
            elif op == "insert":
                buf[at:at] = draw(st.sampled_from(tokens + list(INVALID_UTF8)))
            else:
                del buf[at:]
        return bytes(buf)

    return mutated()


def nested(depth: int, open_: str = "[", close: str = "]", inner: str = "1") -> str:
    """``depth`` levels of nesting around ``inner`` (``[[[1]]]``)."""
    return open_ * depth + inner + close * depth


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """JSON-like values: nested lists and objects of hostile scalars (huge and non-finite
    numbers, negative ones, odd text)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.sampled_from(["", " ", "\x00", "\ud800", "../../etc/passwd", "a" * 300]),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def run_cases(
    name: str, examples: int, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]
) -> None:
    """Run ``check`` on ``examples`` values drawn from ``strategy``, counting them as ``name``."""
    from hypothesis import given

    @fuzz_settings(examples)
    @given(strategy)
    def run(value: Any) -> None:
        count(name)
        check(value)

    run()


def run_measured(code: str, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh Python with this checkout on its path, for inputs too big to
    trace: it must set ``result`` (JSON-able) within ``timeout`` seconds, and may call
    ``_mark()`` once its imports and inputs are ready. Returns ``{"result", "seconds",
    "rss_mb"}``: the wall time since the mark and how far it raised the process's peak resident
    memory (everything: Python, C libraries, mapped files read); ``rss_peak_mb`` is the
    process's whole peak, imports included (a parse that stays under the imports' peak raises
    ``rss_mb`` by 0)."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    script = (
        "import json, resource, time\n"
        "def _peak():\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "def _mark():\n"
        "    global _before, _t0\n"
        "    _before, _t0 = _peak(), time.monotonic()\n"
        "_mark()\n"
        + textwrap.dedent(code)
        + "\nprint(json.dumps({'result': result, 'seconds': time.monotonic() - _t0,"
        " 'rss_mb': _peak() - _before, 'rss_peak_mb': _peak()}))\n"
    )
    child_env = {**os.environ, "PYTHONPATH": root, **(env or {})}
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env,
            cwd=root,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running after {timeout} s") from None
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
