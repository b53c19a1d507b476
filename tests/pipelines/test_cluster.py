"""Extraction workers sized from each node's own resources, never from the cluster's total."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.cluster import (
    RESERVED_CPUS,
    WORKER_MEMORY_GB,
    NodeResources,
    WorkerPlanError,
    plan_workers,
)
from pipelines.config import build_config

BASE = {"input": "in", "output": "out"}


def nodes(*specs: tuple[float, float]) -> list[NodeResources]:
    return [NodeResources(f"node{i}", cpus, gpus, 16.0) for i, (cpus, gpus) in enumerate(specs)]


@pytest.mark.parametrize(
    ("values", "cluster", "workers", "cpus", "threads"),
    [
        # Three 1-CPU nodes: one 0.75-CPU worker on each, never one 2.75-CPU worker.
        ({}, [(1, 0)] * 3, 3, 0.75, 1),
        ({}, [(2, 0)], 1, 1.75, 2),  # this project's 2-core machine
        ({}, [(16, 0)], 7, 2.0, 2),
        ({}, [(1, 0), (8, 0), (8, 0)], 6, 2.0, 2),  # a small head holds none
        ({"cpus_per_worker": 1.0}, [(4, 0), (2, 0)], 4, 1.0, 1),
        ({"workers": 2}, [(16, 0)], 2, 2.0, 2),  # a cap
        ({"workers": 6}, [(4, 0)], 6, 3.75 / 6, 1),  # more than cores: they share
        ({"workers": 64}, [(16, 0)], 8, 15.75 / 8, 2),  # memory holds 8 of 2 GB
        ({}, [(16, 4)], 4, 3.9375, 4),  # one per GPU, the node's CPUs shared
        ({"gpus_per_worker": 0.5}, [(16, 2)], 4, 3.9375, 4),  # two per GPU
        ({"device": "cpu"}, [(16, 4)], 7, 2.0, 2),  # GPUs there but not used
        ({}, [(8, 2), (4, 0)], 2, 3.875, 4),  # only GPU nodes hold GPU workers
        ({"workers": 9}, [(16, 4)], 4, 3.9375, 4),  # no more than the GPUs hold
        ({"workers": 9, "cpus_per_worker": 4.0}, [(16, 0)], 3, 4.0, 4),  # nor the CPUs
    ],
)
def test_workers_fit_each_node(
    values: dict[str, Any], cluster: list, workers: int, cpus: float, threads: int
) -> None:
    plan = plan_workers(build_config(values, BASE), nodes(*cluster))
    assert plan.workers == workers
    assert plan.cpus == pytest.approx(cpus)
    assert plan.threads == threads
    assert plan.memory_gb == WORKER_MEMORY_GB
    for node, count in zip(nodes(*cluster), plan.per_node.values(), strict=True):
        # Every node's share fits that node alone.
        assert count * plan.cpus <= node.cpus - RESERVED_CPUS + 1e-9
        if plan.gpus:
            assert count * plan.gpus <= node.gpus + 1e-9


def test_memory_caps_the_workers_of_a_node() -> None:
    small = [NodeResources("n", 32.0, 0.0, 5.0)]
    assert plan_workers(build_config({}, BASE), small).workers == 2  # 5 GB / 2 GB


@pytest.mark.parametrize(
    ("values", "cluster", "match"),
    [
        ({"cpus_per_worker": 4.0}, [(1, 0)] * 3, r"each needs 4\.00 CPUs.*node\w*: 1 CPUs"),
        ({"gpus_per_worker": 2.0}, [(16, 1)], r"each needs .* 2 GPU"),
        ({}, [(0.2, 0)], r"no node can hold an extraction worker"),
    ],
)
def test_a_request_no_node_can_hold_is_a_clear_error(values, cluster, match) -> None:
    with pytest.raises(WorkerPlanError, match=match):
        plan_workers(build_config(values, BASE), nodes(*cluster))


def test_no_alive_node() -> None:
    with pytest.raises(WorkerPlanError, match="no alive node"):
        plan_workers(build_config({}, BASE), [])


# -- the progress view -----------------------------------------------------------------------


def test_progress_figures_and_line(tmp_path, monkeypatch):
    from hero_data.storage import open_storage
    from pipelines.run import RunMonitor

    clock = [1000.0]
    monkeypatch.setattr("pipelines.run.time.monotonic", lambda: clock[0])
    monitor = RunMonitor(open_storage(str(tmp_path)), None, total=10, started=900.0, show=False)
    monitor.work_started = 950.0  # the first video started 50 s after the run
    monitor.state = {
        "ok": 3,
        "failed": 1,
        "failed_by_reason": {"DecodeError": 1},
        "video_seconds": 1800.0,
        "started": 5,
        "probed": 6,  # 6 of 10 videos probed: 3600 s of video, a mean of 600 s
        "probed_seconds": 3600.0,
        "done_seconds": 2400.0,  # the 4 done videos (the failed one too) held 2400 s
        "done_unprobed": 0,
        "restarts": 1,
    }
    f = monitor.figures()
    assert (f["videos_ok"], f["videos_failed"], f["videos_total"]) == (3, 1, 10)
    assert f["video_hours"] == 0.5 and f["elapsed_s"] == 100.0
    assert f["video_hours_per_hour"] == pytest.approx(18.0)  # 0.5 h of video in 100 s
    # left: 3600 - 2400 probed + 4 unprobed x 600 = 3600 s of video; the 1800 s extracted ok
    # took the 50 s since the first extraction started: 36 video-s/s
    assert f["video_hours_left"] == pytest.approx(1.0)
    assert f["eta_s"] == pytest.approx(100.0)  # rows would say 150 s: 6 of 10 left at 4/100 s
    assert f["worker_restarts"] == 1
    line = monitor.line()
    assert "videos 3 ok, 1 failed of 10" in line and "ETA 0:01:40" in line
    assert "18.00 video-h/h" in line and "failed: DecodeError 1" in line
    assert "worker restarts: 1" in line
    monitor._write(final=True)
    written = json.loads((tmp_path / "progress.json").read_text())
    assert written["state"] == "finished" and written["videos_ok"] == 3
    assert written["eta_s"] == pytest.approx(100.0)


def test_no_eta_before_any_video_is_probed_and_done(tmp_path, monkeypatch):
    from hero_data.storage import open_storage
    from pipelines.run import RunMonitor

    monkeypatch.setattr("pipelines.run.time.monotonic", lambda: 1000.0)
    monitor = RunMonitor(open_storage(str(tmp_path)), None, total=4, started=900.0, show=False)
    monitor.work_started = 950.0
    monitor.state = {"ok": 0, "failed": 0, "video_seconds": 0.0, "started": 2}
    assert monitor.figures()["eta_s"] is None and "ETA -:--:--" in monitor.line()
    monitor.state.update(probed=2, probed_seconds=100.0, done_seconds=0.0)
    f = monitor.figures()
    assert f["video_hours_left"] == pytest.approx(200.0 / 3600) and f["eta_s"] is None
    # a video that failed at once (bad subtitles) says nothing of the extraction's speed
    monitor.state.update(failed=1, done_seconds=50.0)
    assert monitor.figures()["eta_s"] is None


def test_the_ledger_counts_video_seconds_and_restarts():
    from pipelines.run import RunLedger

    ledger = RunLedger()
    ledger.register("actor handle", "a1", 101)
    ledger.probed("v1", 30.0)
    ledger.probed("v2", 90.0)
    ledger.start("v1")
    assert ledger.progress()["running"] == 1  # being extracted
    ledger.finish("v1", ("ok", None, "n", 30.0, 1, 20, 3, 0.1, 5.0, 0.0))
    assert ledger.progress()["running"] == 0
    ledger.finish("bad", ("failed", "DecodeError", "n", 0.0, 0, 0, 0, 0.1, 0.0, 0.0))
    ledger.register("actor handle", "a1", 202)  # the same actor in a new process: a restart
    p = ledger.progress()
    assert (p["probed"], p["probed_seconds"], p["done_seconds"]) == (2, 120.0, 30.0)
    assert p["done_unprobed"] == 1 and p["restarts"] == 1
    assert ledger.worker_processes() == {"a1": 202} and ledger.take_workers() == ["actor handle"]
    ledger.finish("v1", ("ok", None, "n", 30.0, 1, 20, 3, 0.1, 5.0, 0.0))  # done twice: once
    assert ledger.progress()["done_seconds"] == 30.0 and ledger.progress()["ok"] == 1


def test_a_run_that_cannot_start_says_it_is_waiting_and_for_what(tmp_path, monkeypatch, caplog):
    from hero_data.storage import open_storage
    from pipelines import run
    from pipelines.run import RunMonitor

    monkeypatch.setattr(run, "free_resources", lambda: {"abcdef123456": {"CPU": 0.25}})
    monitor = RunMonitor(open_storage(str(tmp_path)), None, total=4, started=0.0, show=False)
    monitor.round_started(1)
    t0 = monitor._last_started[1]
    with caplog.at_level("WARNING", logger="pipelines.run"):
        monitor._check_waiting(t0 + 30, done=0)
        assert "waiting" not in caplog.text  # not yet
        monitor._check_waiting(t0 + 61, done=0)
    assert "no video has started for 61 s: waiting for the cluster" in caplog.text
    assert "abcdef12: 0.25 CPU" in caplog.text
    caplog.clear()
    monitor.state["started"] = 1  # a video started: not waiting any more
    with caplog.at_level("WARNING", logger="pipelines.run"):
        monitor._check_waiting(t0 + 130, done=0)
    assert "waiting" not in caplog.text
    # a video that takes minutes to extract is no wait for the cluster either
    monitor.state["running"] = 1
    with caplog.at_level("WARNING", logger="pipelines.run"):
        monitor._check_waiting(t0 + 200, done=0)
        monitor._check_waiting(t0 + 300, done=0)
    assert "waiting" not in caplog.text
