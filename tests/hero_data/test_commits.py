"""The commit protocol: records created only if absent, the resolution rule, compaction,
orphans, the lease, format-1 datasets, and a disk that fills up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import hero_data.commits as commits
from hero_data.commits import (
    CommitRecord,
    compact,
    record_key,
    remove_orphans,
    snapshot,
    write_record,
)
from hero_data.errors import DatasetError
from hero_data.lease import Lease, LeaseHeldError, LeaseLostError, current_holder
from hero_data.manifest import COMMITS_DIR, LEASE_DIR, MANIFEST_NAME, load_manifest
from hero_data.reader import HeroDataset
from hero_data.storage import LocalStorage, open_storage
from hero_data.writer import DatasetWriter, ShardWriter, new_run_id, upgrade_dataset
from tests.conftest import make_record

CONFIG = {"k": 1}
FORMAT1 = Path(__file__).parent / "data" / "format1"


def video(vid: str, clips: int = 1, seed: int = 0):
    return [make_record(vid, k, 3.0, seed=seed + k, n_cues=1) for k in range(clips)]


@pytest.fixture
def root(tmp_path) -> Path:
    """An empty dataset (its manifest) with nobody holding the lease."""
    path = tmp_path / "ds"
    with DatasetWriter(path, CONFIG):
        pass
    return path


class CountingStorage(LocalStorage):
    """Counts every operation, to show what a commit touches."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls: list[str] = []

    def __getattribute__(self, name: str):
        attr = super().__getattribute__(name)
        ops = {"read_bytes", "put", "create", "delete", "list_dir", "exists", "upload", "size"}
        if name in ops:
            self.calls.append(name)
        return attr


def test_a_commit_reads_nothing_and_writes_two_objects(root):
    """The write path's cost cannot grow with the dataset: it lists nothing and reads nothing."""
    storage = CountingStorage(str(root))
    for i in range(20):
        with ShardWriter(storage, run=new_run_id()) as w:
            w.write_video(video(f"v{i}", 2, seed=i))
    assert storage.calls.count("upload") == 20  # the shards
    assert storage.calls.count("create") == 20  # their records
    assert not {"read_bytes", "list_dir", "exists", "put"} & set(storage.calls)
    assert len(HeroDataset.open(root, verify="full")) == 40


def test_a_retried_commit_cannot_commit_twice(root):
    # A retry of the same write task: the same videos, hence the same record name.
    with ShardWriter(root, run=new_run_id()) as first:
        first.write_video(video("a", 2))
        first.write_video(video("b"))
    with ShardWriter(root, run=new_run_id()) as retry:
        retry.write_video(video("a", 2))
        retry.write_video(video("b"))
    assert [o for o, _ in first.outcomes] == ["created"]
    assert [o for o, _ in retry.outcomes] == ["other"]
    (_, rec1), (_, rec2) = first.outcomes[0], retry.outcomes[0]
    assert rec1.name == rec2.name and rec1.shard.name != rec2.shard.name
    assert not (root / rec2.shard.name).exists()  # the retry's copy was removed at once
    ds = HeroDataset.open(root)
    assert sorted(ds.clip_ids()) == ["a.0", "a.1", "b.0"]
    # A lost reply to a successful create: the retry finds its own record ("same").
    record = CommitRecord.make(new_run_id(), None, [{"video_id": "z", "stage": "probe"}])
    assert write_record(open_storage(str(root)), record) == "created"
    assert write_record(open_storage(str(root)), record) == "same"


def test_a_record_that_overlaps_an_earlier_commit_loses_whole(root):
    with ShardWriter(root, run=new_run_id()) as w1:
        w1.write_video(video("a"))
        w1.write_video(video("b"))
    with ShardWriter(root, run=new_run_id()) as w2:  # another grouping: b again, and c
        w2.write_video(video("b", seed=5))
        w2.write_video(video("c"))
        w2.record_failure(video_id="d", source="d.mp4", stage="probe", error_type="E")
    snap = snapshot(str(root))
    assert [r.key for r in snap.rejected] == [w2.outcomes[0][1].key]
    assert snap.videos() == {"a", "b"} and snap.failed() == set()  # c and d are not done
    losing_shard = w2.outcomes[0][1].shard.name
    stats = compact(str(root))
    assert stats.rejected == 1 and stats.shards_added == 1
    assert not (root / losing_shard).exists()
    assert not list((root / COMMITS_DIR).iterdir())
    assert load_manifest(root).videos() == {"a", "b"}


def test_failures_are_dropped_for_committed_videos_and_kept_once(root):
    with ShardWriter(root, run=new_run_id()) as w:
        w.record_failure(video_id="x", source="x.mp4", stage="probe", error_type="E1")
        w.record_failure(video_id="y", source="y.mp4", stage="extract", error_type="E2")
    with ShardWriter(root, run=new_run_id()) as w:
        w.write_video(video("x"))  # a later run made x after all
    with ShardWriter(root, run=new_run_id()) as w:
        w.record_failure(video_id="y", source="y.mp4", stage="extract", error_type="E3")
    snap = snapshot(str(root))
    assert snap.videos() == {"x"}
    assert [(e["video_id"], e["error_type"]) for e in snap.errors] == [("y", "E2")]
    compact(str(root))
    lines = (root / "errors.jsonl").read_text().splitlines()
    assert [json.loads(x)["error_type"] for x in lines] == ["E2"]
    assert snapshot(str(root)).errors == snap.errors  # the same after compaction


def test_compaction_keeps_the_row_order_and_is_idempotent(root):
    for i in range(5):
        with ShardWriter(root, run=new_run_id()) as w:
            w.write_video(video(f"v{i}", seed=i))
    before = HeroDataset.open(root).clip_ids()
    assert before == [f"v{i}.0" for i in range(5)]  # the order they were committed in
    gen = load_manifest(root).generation
    stats = compact(str(root))
    assert (stats.records, stats.generation) == (5, gen + 1)
    assert HeroDataset.open(root).clip_ids() == before
    assert compact(str(root)).records == 0  # nothing pending: nothing written
    assert load_manifest(root).generation == gen + 1


def test_a_crash_between_manifest_and_record_deletion_resolves_the_same(root, monkeypatch):
    for i in range(3):
        with ShardWriter(root, run=new_run_id()) as w:
            w.write_video(video(f"v{i}", seed=i))
            w.record_failure(video_id=f"f{i}", source="f", stage="probe", error_type="E")
    before = snapshot(str(root))
    storage = open_storage(str(root))
    real_delete = storage.delete

    def crash_on_records(rel: str) -> None:
        if rel.startswith(COMMITS_DIR):
            raise KeyboardInterrupt("killed")
        real_delete(rel)

    monkeypatch.setattr(storage, "delete", crash_on_records)
    with pytest.raises(KeyboardInterrupt):
        compact(storage)
    monkeypatch.undo()
    after = snapshot(str(root))  # records still there, and the manifest names their shards
    assert len(after.stale) == 3 and not after.pending
    assert after.shards == before.shards and after.errors == before.errors
    compact(str(root))
    assert snapshot(str(root)).shards == before.shards


def test_a_snapshot_taken_during_a_compaction_misses_nothing(root, monkeypatch):
    for i in range(4):
        with ShardWriter(root, run=new_run_id()) as w:
            w.write_video(video(f"v{i}", seed=i))
    real = commits.read_records
    calls = []

    def compaction_in_between(storage):
        calls.append(1)
        if len(calls) == 1:  # the reader read the manifest; a compaction runs now
            monkeypatch.setattr(commits, "read_records", real)
            compact(storage)
        return real(storage)

    monkeypatch.setattr(commits, "read_records", compaction_in_between)
    snap = snapshot(str(root))
    assert snap.videos() == {"v0", "v1", "v2", "v3"} and snap.manifest.generation >= 1


def test_a_record_whose_shard_vanished_is_not_compacted(root):
    """A writer of a run that lost its lease recorded a shard that cleanup had removed."""
    with ShardWriter(root, run=new_run_id()) as w:
        w.write_video(video("a"))
    (root / w.outcomes[0][1].shard.name).unlink()
    stats = compact(str(root))
    assert stats.rejected == 1
    assert snapshot(str(root)).videos() == set()  # a is not done: the next run does it


def test_malformed_records_name_the_file(root):
    (root / COMMITS_DIR).mkdir(exist_ok=True)
    bad = root / COMMITS_DIR / "0000.json"
    bad.write_text('{"format": "hero-commit", "version": 1, "key": "x"}')
    with pytest.raises(DatasetError, match=r"_commits/0000\.json: malformed commit record"):
        HeroDataset.open(root)
    record = CommitRecord.make("r", None, [{"video_id": "a", "stage": "s"}])
    forged = json.loads(record.to_bytes())
    forged["errors"][0]["video_id"] = "b"  # no longer the hash of its videos
    bad.write_text(json.dumps(forged))
    with pytest.raises(DatasetError, match="its key is not the hash of its videos"):
        snapshot(str(root))


def test_record_key_is_the_set_of_videos():
    assert record_key(["b", "a", "a"]) == record_key(["a", "b"])
    assert record_key(["a"]) != record_key(["a", "b"])
    with pytest.raises(ValueError):
        record_key([])


# -- orphans -----------------------------------------------------------------------------------


def test_orphans_go_when_their_run_ended_or_when_old(root):
    run = new_run_id()
    with ShardWriter(root, run=run) as w:
        w.write_video(video("a"))
    shards = root / "shards"
    mine = shards / f"{run[:12]}-0123456789abcdef.arrow"  # uploaded, never recorded
    other = shards / "ffffffffffff-0123456789abcdef.arrow"  # another run's, recent
    old = shards / "eeeeeeeeeeee-0123456789abcdef.arrow"  # another run's, old
    scratch = shards / f".{run[:12]}-0000000000000000.arrow.x1.tmp"
    for p in (mine, other, old, scratch):
        p.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert len(HeroDataset.open(root)) == 1  # readers never see them
    removed = remove_orphans(str(root), snapshot(str(root)), finished_runs=[run])
    assert sorted(removed) == sorted(f"shards/{p.name}" for p in (mine, old, scratch))
    assert other.exists() and (root / w.outcomes[0][1].shard.name).exists()


# -- concurrent writers, killed at random --------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import json, random, sys, time
    sys.path.insert(0, sys.argv[3])
    from conftest import make_record
    from hero_data.writer import ShardWriter
    root, plan, seed = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[4])
    rng = random.Random(seed)
    for task in plan:  # one write task: its videos in one shard, some failed
        with ShardWriter(root, run=task["run"], max_rows_per_shard=rng.choice([1, 3, 8])) as w:
            for vid in task["videos"]:
                if vid.startswith("bad"):
                    w.record_failure(video_id=vid, source=vid, stage="extract", error_type="E")
                    continue
                h = int(vid[1:]) if vid[1:].isdigit() else 7
                clips = 1 + h % 3
                w.write_video([
                    make_record(vid, k, 1.5 * (1 + (h + k) % 4), seed=h * 10 + k, n_cues=1)
                    for k in range(clips)
                ])
        time.sleep(rng.uniform(0, 0.02))
    """
)


def _plan(videos: list[str], rng, writers: int) -> list[list[dict]]:
    """Tasks of 1-5 videos, spread over writers; some tasks given to two writers (a retried
    task whose first try committed), some overlapping another task (a zombie's regrouping)."""
    tasks = []
    i = 0
    while i < len(videos):
        n = rng.randint(1, 5)
        tasks.append(videos[i : i + n])
        i += n
    plans: list[list[dict]] = [[] for _ in range(writers)]
    for k, t in enumerate(tasks):
        run = new_run_id()
        plans[rng.randrange(writers)].append({"run": run, "videos": t})
        if rng.random() < 0.2:  # retried elsewhere: the same videos
            plans[rng.randrange(writers)].append({"run": new_run_id(), "videos": t})
        if rng.random() < 0.3 and k + 1 < len(tasks):  # a zombie: half of this and the next
            mixed = t[len(t) // 2 :] + tasks[k + 1][:1]
            plans[rng.randrange(writers)].append({"run": new_run_id(), "videos": mixed})
    return plans


def _clips_by_video(root: Path) -> dict[str, list[str]]:
    """Every clip id of every shard the dataset names, read from the shard files themselves."""
    ds = HeroDataset.open(root, verify="full")
    out: dict[str, list[str]] = {}
    for cid in ds.clip_ids():
        out.setdefault(cid.rsplit(".", 1)[0], []).append(cid)
    return out


def _concurrent_writers(root: Path, seed: int, videos: int, kills: int) -> None:
    import random

    rng = random.Random(seed)
    names = [f"v{i}" for i in range(videos)] + [f"bad{i}" for i in range(videos // 10)]
    rng.shuffle(names)
    tests_dir = str(Path(__file__).resolve().parents[1])
    todo = list(names)
    rounds = 0
    while todo:
        rounds += 1
        assert rounds < 30, "the writers never finished"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, str(root), json.dumps(p), tests_dir, str(seed)]
            )
            for p in _plan(todo, rng, 3)
        ]
        if kills:
            time.sleep(rng.uniform(0.3, 2.0))
            for p in rng.sample(procs, k=min(len(procs), rng.randint(1, 2))):
                p.send_signal(signal.SIGKILL)
            kills -= 1
        while any(p.poll() is None for p in procs):  # readers see whole commits meanwhile
            ds = HeroDataset.open(root, verify="full")
            ids = ds.clip_ids()
            assert len(ids) == len(set(ids))
            time.sleep(0.2)
        for p in procs:
            p.wait(timeout=300)
        # The "driver": compact now and then, resume from what was committed.
        if rng.random() < 0.7:
            compact(str(root))
        todo = [v for v in names if v not in snapshot(str(root)).done()]
    compact(str(root))
    snap = snapshot(str(root))
    # No duplicates, nothing lost: each video in exactly one committed shard or in the errors.
    clips = _clips_by_video(root)
    good = {v for v in names if not v.startswith("bad")}
    assert set(clips) == good
    for vid, ids in clips.items():
        h = int(vid[1:])
        assert sorted(ids) == [f"{vid}.{k}" for k in range(1 + h % 3)], vid
    shard_videos = [v for s in snap.shards for v in s.videos]
    assert len(shard_videos) == len(set(shard_videos))
    assert sorted(e["video_id"] for e in snap.errors) == sorted(set(names) - good)
    # Everything unrecorded (killed uploads, discarded retries) goes once its runs are over.
    runs = {p.name.lstrip(".")[:12] for p in (root / "shards").iterdir()}
    remove_orphans(str(root), snap, finished_runs=[r + "0" * 20 for r in runs])
    assert sorted(p.name for p in (root / "shards").iterdir()) == sorted(
        s.name.split("/", 1)[1] for s in snap.shards
    )


def test_concurrent_writers_killed_at_random_commit_each_video_once(root):
    _concurrent_writers(root, seed=1, videos=40, kills=2)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 12))
def test_concurrent_writers_deep(root, seed):
    _concurrent_writers(root, seed=seed, videos=150, kills=4)


_KILLED_BEFORE_RECORD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[2])
    from conftest import make_record
    import hero_data.writer as writer
    from hero_data.writer import ShardWriter

    def die(storage, record):  # the shard is uploaded; its record is never created
        os.kill(os.getpid(), signal.SIGKILL)

    writer.write_record = die
    with ShardWriter(sys.argv[1], run="d" * 32) as w:
        w.write_video([make_record("lost", 0, 3.0)])
    """
)


def test_kill_9_between_upload_and_record_leaves_nothing_visible(root):
    tests_dir = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run([sys.executable, "-c", _KILLED_BEFORE_RECORD, str(root), tests_dir])
    assert proc.returncode == -signal.SIGKILL
    [uploaded] = [p for p in (root / "shards").iterdir() if p.name.endswith(".arrow")]
    assert uploaded.name.startswith("d" * 12)
    assert len(HeroDataset.open(root)) == 0 and snapshot(str(root)).done() == set()
    # The next writer commits the video once; when it closes, the dead run's upload goes (its
    # run took the lease from no one, so this goes by age: make it old).
    os.utime(uploaded, (time.time() - 3600, time.time() - 3600))
    with DatasetWriter(root, CONFIG, mode="append") as w:
        w.write_video([make_record("lost", 0, 3.0)])
    assert HeroDataset.open(root).clip_ids() == ["lost.0"]
    assert not uploaded.exists()


# -- the lease -----------------------------------------------------------------------------------


def test_a_second_writer_is_refused_with_the_holder_named(root):
    with DatasetWriter(root, CONFIG, mode="append", command="hero run"):
        with pytest.raises(LeaseHeldError, match=r"another run is writing this dataset: run \w+"):
            DatasetWriter(root, CONFIG, mode="append").open()
        holder = current_holder(str(root))
        assert holder.pid == os.getpid() and holder.command == "hero run" and holder.live()
    assert not current_holder(str(root)).live()  # released on close
    with DatasetWriter(root, CONFIG, mode="append"):  # free again
        pass


def test_a_dead_holder_on_this_machine_frees_the_lease_at_once(root):
    code = (
        "import sys, time; from hero_data.lease import Lease; "
        "Lease.acquire(sys.argv[1], 'f' * 32, command='doomed'); print('held', flush=True); "
        "time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"held"
    with pytest.raises(LeaseHeldError, match=r"doomed, pid \d+"):
        Lease.acquire(str(root), new_run_id())
    proc.kill()
    proc.wait()
    lease = Lease.acquire(str(root), new_run_id())  # no waiting for the expiry
    assert lease.previous is not None and lease.previous.run == "f" * 32
    lease.release()


def test_a_lease_from_another_machine_holds_until_it_expires(root):
    storage = open_storage(str(root))
    body = {"run": "a" * 32, "host": "elsewhere", "pid": 1, "expires": time.time() + 60}
    epoch = current_holder(storage).epoch + 1
    assert storage.create(f"{LEASE_DIR}/{epoch:012d}.json", json.dumps(body).encode())
    with pytest.raises(LeaseHeldError, match="on elsewhere"):
        Lease.acquire(storage, new_run_id())
    body["expires"] = time.time() - 1  # it stopped renewing
    assert storage.create(f"{LEASE_DIR}/{epoch + 1:012d}.json", json.dumps(body).encode())
    Lease.acquire(storage, new_run_id()).release()


def test_a_stalled_holder_loses_its_lease_and_notices(root):
    stalled = Lease.acquire(str(root), new_run_id(), ttl_s=0.2)
    time.sleep(0.3)
    taker = Lease.acquire(str(root), new_run_id())
    with pytest.raises(LeaseLostError, match="taken over by run"):
        stalled.renew()
    with pytest.raises(LeaseLostError):
        stalled.check()
    stalled.release()  # does not hand back someone else's lease
    assert current_holder(str(root)).run == taker.run and current_holder(str(root)).live()
    taker.release()


def test_renewal_keeps_a_lease_alive(root):
    lease = Lease.acquire(str(root), new_run_id(), ttl_s=0.4)
    lease.start_renewing()
    time.sleep(1.0)
    with pytest.raises(LeaseHeldError):
        Lease.acquire(str(root), new_run_id())
    assert lease.epoch >= 3  # renewed
    assert len(list((root / LEASE_DIR).iterdir())) <= 4  # old epochs pruned
    lease.release()


# -- format 1 ----------------------------------------------------------------------------------


@pytest.fixture
def format1(tmp_path) -> Path:
    root = tmp_path / "old"
    shutil.copytree(FORMAT1, root)
    return root


def test_a_format_1_dataset_opens_as_it_was(format1):
    ds = HeroDataset.open(format1, verify="full")
    assert ds.manifest.format_version == 1
    assert ds.clip_ids() == ["old0.0", "old0.1", "old1.0", "old1.1", "old2.0", "old2.1"]
    assert ds["old1.1"].cues == make_record("old1", 1, 2.2, seed=11, n_cues=1).cues
    assert [e["video_id"] for e in ds.errors] == ["broken"]


def test_hero_upgrade_rewrites_only_the_manifest(format1):
    shards = {p.name: p.read_bytes() for p in (format1 / "shards").iterdir()}
    before = HeroDataset.open(format1).clip_ids()
    assert upgrade_dataset(format1) == (1, 2)
    manifest = load_manifest(format1)
    assert manifest.format_version == 2 and manifest.generation == 1
    assert json.loads((format1 / MANIFEST_NAME).read_text())["format_version"] == 2
    assert not (format1 / ".lock").exists()
    assert {p.name: p.read_bytes() for p in (format1 / "shards").iterdir()} == shards
    assert HeroDataset.open(format1, verify="full").clip_ids() == before
    assert upgrade_dataset(format1) == (2, 2)  # nothing to do


def test_appending_to_a_format_1_dataset_upgrades_it(format1):
    config = load_manifest(format1).config
    with DatasetWriter(format1, config, mode="append") as w:
        w.write_video(video("new"))
    ds = HeroDataset.open(format1, verify="full")
    assert ds.manifest.format_version == 2
    assert ds.clip_ids()[-1] == "new.0" and len(ds) == 7
    assert [e["video_id"] for e in ds.errors] == ["broken"]


def test_a_newer_format_is_refused(root):
    data = json.loads((root / MANIFEST_NAME).read_text())
    data["format_version"] = 3
    (root / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(
        DatasetError, match=r"format version 3; this toolkit .* reads versions 1, 2"
    ):
        HeroDataset.open(root)


# -- a disk that fills up ------------------------------------------------------------------------

_FULL_DISK = textwrap.dedent(
    """
    import json, os, subprocess, sys
    sys.path.insert(0, sys.argv[2])
    from conftest import make_record
    from hero_data.reader import HeroDataset
    from hero_data.storage import StorageError
    from hero_data.writer import DatasetWriter
    mount = sys.argv[1]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", mount], check=True)
    root = os.path.join(mount, "ds")
    def videos(lo, hi):
        return [[make_record(f"v{i}", 0, 9.0, seed=i, n_cues=1)] for i in range(lo, hi)]
    with DatasetWriter(root, {"k": 1}, max_rows_per_shard=1) as w:
        for clips in videos(0, 3):
            w.write_video(clips)
    shard = max(os.path.getsize(os.path.join(root, "shards", n))
                for n in os.listdir(os.path.join(root, "shards")))
    st = os.statvfs(mount)
    filler = os.path.join(mount, "filler")
    with open(filler, "wb") as f:  # leave room for less than two more shards
        f.write(b"x" * (st.f_bavail * st.f_frsize - int(1.6 * shard)))
    error = None
    try:
        with DatasetWriter(root, {"k": 1}, mode="append", max_rows_per_shard=1) as w:
            for clips in videos(3, 12):
                w.write_video(clips)
    except StorageError as e:
        error = str(e)
    ds = HeroDataset.open(root, verify="full")
    committed = sorted(ds.clip_ids())
    leftovers = [n for n in os.listdir(os.path.join(root, "shards")) if n.endswith(".tmp")]
    os.remove(filler)  # the cause fixed: run again
    with DatasetWriter(root, {"k": 1}, mode="append", max_rows_per_shard=1) as w:
        for clips in videos(3, 12):
            if clips[0].clip.video_id + ".0" not in committed:
                w.write_video(clips)
    final = HeroDataset.open(root, verify="full").clip_ids()
    print(json.dumps({"error": error, "committed": committed, "leftovers": leftovers,
                      "final": final}))
    """
)


def test_a_full_disk_fails_clearly_and_loses_nothing(tmp_path):
    """ENOSPC for real: a 1.2 MB tmpfs, mounted in a private mount namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a small tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    tests_dir = str(Path(__file__).resolve().parents[1])
    cmd = ["unshare", "--mount", "--map-root-user", sys.executable, "-c", _FULL_DISK]
    proc = subprocess.run(
        [*cmd, str(mount), tests_dir], capture_output=True, text=True, timeout=300
    )
    if (
        proc.returncode != 0
        and "unshare" in proc.stderr
        and "Operation not permitted" in proc.stderr
    ):
        pytest.skip(f"cannot make a mount namespace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["error"] and "no space left on the device" in out["error"]
    assert "/ds/shards/" in out["error"] or "/ds/_commits/" in out["error"]
    assert len(out["committed"]) >= 3  # what was committed before the disk filled stays
    assert out["leftovers"] == []  # the shard being written was removed
    assert sorted(out["final"]) == sorted(f"v{i}.0" for i in range(12))
