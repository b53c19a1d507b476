"""The progress helper: its figures (done, rate, ETA in the bar's unit), the lines it logs off a
terminal, and what the live view shows."""

from __future__ import annotations

import io
import logging

import pytest

from hero_data import progress as progress_module
from hero_data.progress import Progress, clock, track


@pytest.fixture
def clock_at(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: now[0])
    return now


def test_log_lines_off_a_terminal_follow_describe(caplog, clock_at) -> None:
    caplog.set_level(logging.INFO, logger="hero.progress")
    with Progress(every_s=0.0, force_terminal=False) as p:
        bar = p.add("train", total=3, unit="steps")
        clock_at[0] += 2.0
        p.advance(bar)
        p.describe(bar, "train mlm 1.23")
        clock_at[0] += 4.0
        p.advance(bar, 2)
        p.done(bar)
    lines = [r.getMessage() for r in caplog.records]
    # 1 step in 2 s: 0.5 steps/s, 2 left -> 4 s
    assert lines[0] == "train: 1/3 steps · 0.50 steps/s · ETA 0:00:04"
    assert lines[-2:] == [
        "train mlm 1.23: 3/3 steps · 0.50 steps/s · ETA 0:00:00",
        "train mlm 1.23: 3 steps done in 0:00:06",
    ]


def test_lines_come_every_every_s_even_when_nothing_advances(caplog, clock_at) -> None:
    caplog.set_level(logging.INFO, logger="hero.progress")
    with Progress(every_s=30.0, force_terminal=False) as p:
        bar = p.add("run", total=10, plain=True)
        p.update(bar, description="videos 0 ok")  # within 30 s: nothing yet
        assert not caplog.records
        clock_at[0] += 31.0
        p.update(bar, description="videos 0 ok, still loading")  # nothing done, time is up
        clock_at[0] += 5.0
        p.update(bar, description="videos 1 ok")  # 5 s later: not yet again
    assert [r.getMessage() for r in caplog.records] == ["videos 0 ok, still loading"]


def test_the_callers_eta_replaces_the_bars_own(clock_at) -> None:
    with Progress(force_terminal=False) as p:
        bar = p.add("videos", total=10)
        clock_at[0] += 10.0
        p.update(bar, done=5)
        assert p.figures(bar)["eta_s"] == pytest.approx(10.0)  # from its own rate
        p.update(bar, eta_s=600.0)  # e.g. from the video seconds left
        assert p.figures(bar)["eta_s"] == 600.0
        p.update(bar, eta_s=None)
        assert p.line(bar) == "videos: 5/10 · 0.50 /s · ETA -:--:--"


def test_the_live_view_shows_the_figures_in_the_bars_unit(clock_at) -> None:
    from rich.console import Console

    out = io.StringIO()
    with Progress(force_terminal=True) as p:
        bar = p.add("extract", total=40, unit="steps")
        clock_at[0] += 10.0
        p.advance(bar, 10)
        Console(file=out, width=160).print(p._rich.get_renderable())
    shown = out.getvalue()
    assert "10/40 steps · 1.00 steps/s · ETA 0:00:30 · 0:00:10" in shown


def test_clock() -> None:
    assert clock(3725.4) == "1:02:05" and clock(None) == "-:--:--" and clock(-1) == "-:--:--"


def test_track_yields_every_item_and_reports_the_total(caplog) -> None:
    caplog.set_level(logging.INFO, logger="hero.progress")
    # stderr is no terminal here: log lines, no live bar
    assert list(track(range(4), "items", every_s=1e9)) == [0, 1, 2, 3]
    assert caplog.records[-1].getMessage().startswith("items: 4 done in ")


def test_a_resumed_bar_counts_its_rate_from_now(clock_at) -> None:
    with Progress(force_terminal=False) as p:
        bar = p.add("train", total=100, unit="steps", done=60)  # 60 done by an earlier run
        clock_at[0] += 10.0
        p.advance(bar, 10)
        f = p.figures(bar)
    assert f["rate"] == pytest.approx(1.0) and f["eta_s"] == pytest.approx(30.0)
