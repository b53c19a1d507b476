"""The progress helper off a terminal: log lines carry the bar's current description."""

from __future__ import annotations

import logging

from hero_data.progress import Progress, track


def test_log_lines_off_a_terminal_follow_describe(caplog) -> None:
    caplog.set_level(logging.INFO, logger="hero.progress")
    with Progress(every_s=0.0, force_terminal=False) as p:
        bar = p.add("train", total=3)
        p.advance(bar)
        p.describe(bar, "train mlm 1.23")
        p.advance(bar, 2)
        p.done(bar)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "train: 1/3"
    assert lines[-2:] == ["train mlm 1.23: 3/3", "train mlm 1.23: 3 done"]


def test_track_yields_every_item_and_reports_the_total(caplog) -> None:
    caplog.set_level(logging.INFO, logger="hero.progress")
    assert list(track(range(4), "items", every_s=1e9))  # stderr is no tty here == [0, 1, 2, 3]
    assert caplog.records[-1].getMessage() == "items: 4 done"
