"""`hero run --address` on a real multi-node Ray cluster on this machine: a head and two worker
nodes of 1 CPU each (`ray.cluster_utils.Cluster`, each node its own raylet), all on 127.0.0.1.

The command runs as a user runs it, in its own process, connecting to the cluster's address.
A worker node is killed the way a lost cloud machine dies (`allow_graceful=False`: its raylet
and workers die at once).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from extract.synthetic import make_video
from hero_data.commits import snapshot
from hero_data.errors import DatasetError
from hero_data.reader import HeroDataset

HERO = str(Path(sys.executable).parent / "hero")
FLAGS = ["--random-weights", "--device", "cpu", "--rows-per-shard", "2", "--no-progress"]


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    with pytest.MonkeyPatch.context() as mp:
        # Ray resolves 127.0.0.1 to this machine's outward address unless told it runs no
        # multi-machine cluster: keep every node, and the driver, on the loopback interface.
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        mp.delenv("RAY_ADDRESS", raising=False)
        c = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "node_ip_address": "127.0.0.1",
                "include_dashboard": False,
            },
        )
        workers = [c.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(2)]
        c.wait_for_nodes()
        yield c, workers
        for node in [*c.worker_nodes, c.head_node]:
            with contextlib.suppress(Exception):  # the head test may have removed it already
                c.remove_node(node, allow_graceful=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for i in range(9):
        make_video(folder / f"v{i}.mp4", duration=5.0 + i % 3, width=96, height=64, seed=i)
    return folder


def hero_run(address: str, corpus: Path, out: Path, *extra: str, wait: bool = True):
    cmd = [HERO, "run", "--address", address, "--input", str(corpus), "--output", str(out)]
    cmd += [*FLAGS, *extra]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def uninterrupted(cluster, corpus, tmp_path_factory) -> Path:
    c, _ = cluster
    out = tmp_path_factory.mktemp("run") / "ds"
    done = hero_run(c.address, corpus, out)
    assert done.returncode == 0, done.stderr
    (out.parent / "stderr.txt").write_text(done.stderr)
    return out


def test_a_run_spreads_over_the_nodes(uninterrupted):
    report = json.loads((uninterrupted / "report.json").read_text())
    assert report["videos_ok"] == 9 and not report["unaccounted"]
    used = {node: vids for node, vids in report["nodes"].items() if vids}
    assert len(used) >= 2, report["nodes"]  # work went to more than one node
    assert sorted(v for vids in used.values() for v in vids) == [f"v{i}" for i in range(9)]
    # Three 1-CPU nodes: one 0.75-CPU worker each, never one worker no node can hold.
    [plan] = report["this_run"]["workers"]
    assert plan["workers"] == 3 and plan["cpus"] == 0.75
    assert sorted(plan["per_node"].values()) == [1, 1, 1]
    progress = json.loads((uninterrupted / "progress.json").read_text())
    assert progress["state"] == "finished" and progress["videos_ok"] == 9


def test_the_terminal_shows_only_our_own_lines(uninterrupted):
    """Ray's lines (Ray Data's execution plan, the C++ core worker's warning about actor
    arguments) go to the log file under the output, which the first line names."""
    lines = (uninterrupted.parent / "stderr.txt").read_text().splitlines()
    (log_file,) = (uninterrupted / "logs").glob("ray-*.log")
    assert lines[0] == f"Ray's own log lines go to {log_file}"
    ours = re.compile(r"(DEBUG|INFO|WARNING|ERROR) (pipelines|hero_data|extract|align)[\w.]*: ")
    assert [x for x in lines[1:] if not ours.match(x)] == []
    assert any("RANDOM WEIGHTS" in x for x in lines)  # still said, loudly
    logged = log_file.read_text()
    assert "Execution plan" in logged and "core_worker.cc" in logged


def test_a_worker_size_no_node_can_hold_is_refused_at_once(cluster, corpus, tmp_path):
    c, _ = cluster
    started = time.monotonic()
    done = hero_run(c.address, corpus, tmp_path / "ds", "--cpus-per-worker", "4")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "no node can hold an extraction worker: each needs 4.00 CPUs" in last
    assert "127.0.0.1: 1 CPUs" in last
    assert time.monotonic() - started < 120  # an error, not a wait


def _wait_for_commits(proc: subprocess.Popen, out: Path, n: int) -> None:
    """Wait until the run has committed ``n`` videos (it must still be running)."""
    deadline = time.monotonic() + 600
    while True:
        assert time.monotonic() < deadline and proc.poll() is None, "the run ended first"
        try:
            committed = len(snapshot(str(out)).videos())
        except DatasetError:  # not created yet
            committed = 0
        if committed >= n:
            return
        time.sleep(0.5)


def _same_dataset(got: Path, want: Path) -> None:
    a, b = HeroDataset.open(got, verify="full"), HeroDataset.open(want, verify="full")
    ids = a.clip_ids()
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(b.clip_ids())
    for r in b:
        g = a[r.clip_id]
        assert np.array_equal(g.visual(), r.visual())
        assert g.cues == r.cues


@pytest.mark.slow
def test_losing_a_worker_node_mid_run_is_survived_by_the_same_run(
    cluster, corpus, uninterrupted, tmp_path
):
    c, workers = cluster
    out = tmp_path / "ds"
    proc = hero_run(c.address, corpus, out, wait=False)
    _wait_for_commits(proc, out, 2)  # some videos committed, others not
    victim = workers[-1]
    c.remove_node(victim, allow_graceful=False)
    try:
        stderr = proc.communicate(timeout=900)[1]
    finally:
        c.add_node(num_cpus=1, node_ip_address="127.0.0.1")  # for the tests after this one
    assert proc.returncode == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["videos_ok"] == 9 and not report["unaccounted"]
    _same_dataset(out, uninterrupted)


@pytest.mark.slow
def test_losing_the_head_fails_the_run_and_the_same_command_resumes_it_exactly_once(
    cluster, corpus, uninterrupted, tmp_path
):
    """Last in this module: it takes the cluster down."""
    c, _ = cluster
    out = tmp_path / "ds"
    proc = hero_run(c.address, corpus, out, wait=False)
    _wait_for_commits(proc, out, 2)
    c.remove_node(c.head_node, allow_graceful=False)
    try:
        proc.wait(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode != 0  # a failure, not a hang
    # The same command again (here on a fresh local Ray, the cluster being gone) finishes it;
    # one torch thread per worker as on the 1-CPU nodes, so features are bit-identical.
    again = subprocess.run(
        [
            HERO,
            "run",
            "--input",
            str(corpus),
            "--output",
            str(out),
            *FLAGS,
            "--cpus-per-worker",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode == 0, again.stderr
    _same_dataset(out, uninterrupted)
