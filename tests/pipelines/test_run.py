"""`hero run` end to end on Ray: fixtures, bad inputs, dead workers, timeouts, kill -9 resume.

In-process runs share one local Ray instance (started once for this module); the kill tests run
the real command in its own process session and SIGKILL the whole session.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from extract.synthetic import make_video
from hero_data.commits import snapshot
from hero_data.manifest import DatasetError, load_manifest
from hero_data.reader import HeroDataset
from hero_data.writer import read_errors
from pipelines.config import RunConfig
from pipelines.run import run_pipeline

POISON = "poison"  # the test below kills each worker that starts extracting this video


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # an earlier test module's run: restart, so workers get our env
        ray.shutdown()
    os.environ.setdefault("RAY_num_workers_soft_limit", "8")  # as run._start_ray does
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    yield ray
    ray.shutdown()


def config(corpus: Path, out: Path, **kw) -> RunConfig:
    values = {
        "input": str(corpus),
        "output": str(out),
        "random_weights": True,
        "device": "cpu",
        **kw,
    }
    return RunConfig(**values)


def vtt(path: Path, cues: list[tuple[float, float, str]]) -> None:
    def t(x: float) -> str:
        ms = round(x * 1000)
        return f"00:{ms // 60000:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"

    body = "".join(f"{t(a)} --> {t(b)}\n{text}\n\n" for a, b, text in cues)
    path.write_text("WEBVTT\n\n" + body, encoding="utf-8")


def accounted(report: dict) -> None:
    assert report["unaccounted"] == []
    assert report["videos_ok"] + report["videos_failed"] == report["inputs"]


def test_fixture_videos_end_to_end(ray_local, shared_fixtures, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(shared_fixtures / "videos", corpus, ignore=shutil.ignore_patterns("LICENSE*"))
    vtt(corpus / "flipping_a_pancake.vtt", [(0.5, 3.2, "JOE: flip it"), (4.0, 9.0, "done")])
    report = run_pipeline(config(corpus, tmp_path / "out"), progress=False)
    accounted(report)
    assert report["videos_ok"] == 6 and report["failed_by_reason"] == {"DecodeError": 1}
    errors = read_errors(tmp_path / "out")
    assert [e["video_id"] for e in errors] == ["corrupted"]
    ds = HeroDataset.open(tmp_path / "out", verify="full")
    steps = {r.clip.video_id: r.num_frames for r in ds}
    assert steps == {
        "flipping_a_pancake": 7,
        "unordered": 1,
        "video_0": 1,
        "video_90": 1,
        "video_180": 1,
        "video_270": 1,
    }
    pancake = ds["flipping_a_pancake.0"]
    assert [c.text for c in pancake.cues] == ["flip it", "done"]
    assert pancake.cues[0].speaker == "JOE"
    # step 2 = [3, 4.5) s: IoU 0.2/4 with "flip it", 0.5/6 with "done" -> "done"
    assert pancake.sub2frames == ((0, 1, 2), (2, 3, 4, 5))
    assert pancake.unique_sub2frames == ((0, 1), (2, 3, 4, 5)) and pancake.unmatched_frames == (6,)
    report_file = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report_file["videos_ok"] == 6
    # Running again finds everything done: nothing is redone or duplicated.
    again = run_pipeline(config(corpus, tmp_path / "out"), progress=False)
    assert again["this_run"]["videos_ok"] == 0 and again["dataset"]["clips"] == len(ds)


def test_bad_inputs_are_all_accounted_for(ray_local, shared_fixtures, tmp_path):
    import av

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "zero.mp4").write_bytes(b"")
    good = make_video(tmp_path / "good.mp4", duration=3.0, width=160, height=90)
    (corpus / "truncated.mp4").write_bytes(good.read_bytes()[:1500])
    (corpus / "text.mp4").write_text("this is not a video\n")
    make_video(corpus / "audio_only.mp4", duration=2.0, width=64, height=64, audio=True)
    with (
        av.open(str(corpus / "audio_only.mp4")) as src,
        av.open(str(corpus / "audio.mp4.tmp"), "w", format="mp4") as dst,
    ):  # remux the audio stream alone
        a_in = src.streams.audio[0]
        a_out = dst.add_stream_from_template(a_in)
        for packet in src.demux(a_in):
            if packet.dts is not None:
                packet.stream = a_out
                dst.mux(packet)
    (corpus / "audio.mp4.tmp").replace(corpus / "audio_only.mp4")
    shutil.copy(shared_fixtures / "videos" / "video_90.mov", corpus / "rotated.mov")
    make_video(corpus / "one_frame.mp4", duration=1 / 30, width=96, height=64)
    with av.open(str(corpus / "vfr.mkv"), "w") as c:  # irregular frame times, in ms
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for k, pts in enumerate([0, 40, 60, 200, 210, 900, 1500, 2600, 2650]):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), k * 20, np.uint8), format="rgb24")
            f.pts, f.time_base = pts, Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    make_video(corpus / "latin1.mp4", duration=2.0, width=96, height=64)
    (corpus / "latin1.vtt").write_bytes(
        "WEBVTT\n\n00:00.000 --> 00:01.000\ncaf\xe9\n".encode("latin-1")
    )
    vtt(corpus / "orphan.vtt", [(0, 1, "no video for me")])

    report = run_pipeline(config(corpus, tmp_path / "out"), progress=False)
    accounted(report)
    errors = {e["video_id"]: e for e in read_errors(tmp_path / "out")}
    assert set(errors) == {"zero", "truncated", "text", "audio_only", "latin1"}
    assert "no video stream" in errors["audio_only"]["message"]
    assert errors["latin1"]["stage"] == "subtitles" and "UTF-8" in errors["latin1"]["message"]
    ds = HeroDataset.open(tmp_path / "out")
    steps = {r.clip.video_id: r.num_frames for r in ds}
    assert steps == {"rotated": 1, "one_frame": 1, "vfr": 2}


def _run_in_thread(cfg: RunConfig) -> tuple[threading.Thread, dict]:
    """``run_pipeline(cfg)`` started in a thread; the dict gets its "report" or "error"."""
    result: dict = {}

    def run() -> None:
        try:
            result["report"] = run_pipeline(cfg, progress=False)
        except BaseException as e:  # surfaced by the caller's assertions
            result["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _ledger(ray):
    """The running run's ledger actor, or None before it exists."""
    from pipelines.run import LEDGER_PREFIX

    names = [n for n in ray.util.list_named_actors() if n.startswith(LEDGER_PREFIX)]
    return ray.get_actor(names[0]) if names else None


@pytest.mark.slow  # actor restarts reload both models: about 2 minutes on 2 cores
def test_a_video_that_kills_its_worker_is_retried_then_recorded(ray_local, tmp_path):
    """A video whose worker dies each time it extracts it (here SIGKILLed from outside as soon
    as the ledger shows the attempt started, as the out-of-memory killer would) is tried
    max_attempts times, then recorded as WorkerDied; the other video is not affected."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    make_video(corpus / f"{POISON}.mp4", duration=6.0, width=96, height=64)
    make_video(corpus / "fine.mp4", duration=2.0, width=96, height=64, seed=1)
    thread, result = _run_in_thread(config(corpus, tmp_path / "out", max_attempts=2))
    killed: list[int] = []
    deadline = time.monotonic() + 600
    while thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
        ledger = _ledger(ray_local)
        if ledger is None:
            continue
        attempts = ray_local.get(ledger.culprits.remote(1)).get(POISON, 0)  # started, not done
        if attempts > len(killed):  # one extraction worker: the one on this attempt
            (pid,) = ray_local.get(ledger.worker_processes.remote()).values()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    thread.join(timeout=600)
    assert "error" not in result, result.get("error")
    assert len(killed) == 2 and killed[0] != killed[1]  # once per attempt, a new process each
    report = result["report"]
    accounted(report)
    (error,) = read_errors(tmp_path / "out")
    assert error["video_id"] == POISON and error["error_type"] == "WorkerDied"
    assert "died 2 times" in error["message"]
    assert [r.clip.video_id for r in HeroDataset.open(tmp_path / "out")] == ["fine"]


@pytest.mark.slow  # the restarted worker loads both models again: about a minute on 2 cores
def test_a_killed_extraction_worker_is_restarted_and_the_run_completes(ray_local, tmp_path):
    """Ray restarts an extraction actor whose process dies (re-running its constructor with the
    same arguments) and retries its video: the run ends with every video, none failed."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        make_video(corpus / f"v{i}.mp4", duration=6.0, width=96, height=64, seed=i)
    thread, result = _run_in_thread(config(corpus, tmp_path / "out"))
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.5)
        ledger = _ledger(ray_local)
        if ledger is None:
            continue
        if ray_local.get(ledger.progress.remote())["started"] >= 1:  # extracting a video
            (pid,) = ray_local.get(ledger.worker_processes.remote()).values()
            os.kill(pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
            killed = pid
    thread.join(timeout=600)
    assert killed is not None, "the worker was never seen extracting"
    assert "error" not in result, result.get("error")
    report = result["report"]
    accounted(report)
    assert report["videos_ok"] == 3 and report["videos_failed"] == 0
    assert report["this_run"]["worker_restarts"] == 1  # the same actor registered twice
    assert report["this_run"]["rounds"] == 1  # Ray restarted it within the round
    (new_pid,) = ray_local.get(ledger.worker_processes.remote()).values()
    assert new_pid != killed
    assert sorted(r.clip.video_id for r in HeroDataset.open(tmp_path / "out")) == [
        "v0",
        "v1",
        "v2",
    ]


def test_a_video_over_its_time_budget_fails_with_a_timeout(ray_local, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    make_video(corpus / "slow.mp4", duration=6.0, width=96, height=64)
    report = run_pipeline(config(corpus, tmp_path / "out", video_timeout_s=0.01), progress=False)
    accounted(report)
    assert report["failed_by_reason"] == {"ExtractTimeout": 1}


@pytest.mark.slow  # two runs, 14 s: in the slow tier, which CI runs on every submission
def test_changing_the_config_is_refused_unless_overwrite(ray_local, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    make_video(corpus / "a.mp4", duration=2.0, width=96, height=64)
    run_pipeline(config(corpus, tmp_path / "out"), progress=False)
    with pytest.raises(DatasetError, match="another config"):
        run_pipeline(config(corpus, tmp_path / "out", frame_interval=1.0), progress=False)
    report = run_pipeline(
        config(corpus, tmp_path / "out", frame_interval=1.0, overwrite=True), progress=False
    )
    assert report["videos_ok"] == 1
    assert load_manifest(tmp_path / "out").config["frame_interval"] == 1.0
    assert load_manifest(tmp_path / "out").config["sampling"] == "hero"  # the default
    with pytest.raises(DatasetError, match="another config"):  # SlowFast's frames are content
        run_pipeline(
            config(corpus, tmp_path / "out", frame_interval=1.0, sampling="uniform"),
            progress=False,
        )


def test_bad_weight_files_fail_before_any_work(tmp_path, monkeypatch):
    # No Ray needed: the driver checks the files (without building the models) first.
    from extract.models import WeightsError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    make_video(corpus / "a.mp4", duration=1.0, width=64, height=48)
    bad = tmp_path / "resnet.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"resnet\.pth is not a readable PyTorch checkpoint"):
        run_pipeline(
            config(corpus, tmp_path / "out", random_weights=False, resnet_weights=str(bad))
        )
    with pytest.raises(WeightsError, match=r"resnet152-394f9c45\.pth"):
        run_pipeline(config(corpus, tmp_path / "out2", random_weights=False))
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_howto100m_recipe_end_to_end(ray_local, tmp_path):
    """Caption JSON as the subtitle source, the real language detector, clips keyed v.k."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for seed, name in enumerate(("cake", "bread", "soupe", "broken")):
        make_video(videos / f"{name}.mp4", duration=3.0, width=96, height=64, seed=seed)
    captions = {
        "cake": {
            "start": [0.2, 1.8],
            "end": [1.7, 2.9],
            "text": ["today we are going to bake a simple cake", "first mix the butter and sugar"],
        },
        "bread": {
            "start": [0.0],
            "end": [2.5],
            "text": ["knead the dough until it is smooth and leave it to rise"],
        },
        "soupe": {
            "start": [0.0],
            "end": [2.0],
            "text": ["aujourd'hui nous allons préparer une soupe de légumes avec des poireaux"],
        },
        # a malformed entry fails its video only, into errors.jsonl
        "broken": {"start": [0.0, 1.0], "end": [2.0], "text": ["one", "two"]},
    }
    caption_json = tmp_path / "caption.json"
    caption_json.write_text(json.dumps(captions), encoding="utf-8")
    cfg = config(
        videos, tmp_path / "out", subtitles=str(caption_json), language="en", clip_length=1.5
    )
    report = run_pipeline(cfg, progress=False)
    accounted(report)
    assert report["videos_ok"] == 2
    assert report["videos_failed"] == 1 and report["failed_by_reason"] == {"SubtitleError": 1}
    [error] = read_errors(tmp_path / "out")
    assert error["video_id"] == "broken" and error["stage"] == "subtitles"
    assert str(caption_json) in error["message"]
    assert [e["video_id"] for e in report["excluded_by_language"]] == ["soupe"]
    assert report["excluded_by_language"][0]["language"] == "fr"
    again = run_pipeline(cfg, progress=False)  # nothing left to do; the failure stays recorded once
    accounted(again)
    assert len(read_errors(tmp_path / "out")) == 1 and again["videos_failed"] == 1
    ds = HeroDataset.open(tmp_path / "out")
    assert sorted(r.clip.clip_id for r in ds) == ["bread.0", "bread.1", "cake.0", "cake.1"]
    # A cue across the 1.5 s boundary goes to both clips, clip-relative and clipped.
    first, second = captions["cake"]["text"]
    cake0, cake1 = ds["cake.0"], ds["cake.1"]
    assert [(c.start, c.end, c.text) for c in cake0.cues] == [(0.2, 1.5, first)]
    assert cake1.clip.start == 1.5
    assert [(c.text, round(c.start, 3), round(c.end, 3)) for c in cake1.cues] == [
        (first, 0.0, 0.2),
        (second, 0.3, 1.4),
    ]


# -- resume after kill -9 --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    corpus = tmp_path_factory.mktemp("corpus")
    for i in range(6):
        make_video(corpus / f"v{i}.mp4", duration=2.0 + i % 3, width=128, height=72, seed=i)
        if i % 2 == 0:
            vtt(corpus / f"v{i}.vtt", [(0.2, 1.4, f"cue {i}"), (1.6, 2.0, "end")])
    return corpus


@pytest.fixture(scope="module")
def reference(ray_local, small_corpus, tmp_path_factory) -> HeroDataset:
    out = tmp_path_factory.mktemp("reference") / "ds"
    run_pipeline(config(small_corpus, out, rows_per_shard=2), progress=False)
    return HeroDataset.open(out, verify="full")


def _hero_run(corpus: Path, out: Path) -> subprocess.Popen:
    hero = Path(sys.executable).parent / "hero"
    return subprocess.Popen(
        [
            str(hero),
            "run",
            "--input",
            str(corpus),
            "--output",
            str(out),
            "--random-weights",
            "--device",
            "cpu",
            "--rows-per-shard",
            "2",
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _committed(out: Path) -> set[str]:
    """Videos the dataset at ``out`` holds (compacted or in pending commit records)."""
    try:
        return snapshot(str(out)).videos()
    except DatasetError:  # not created yet
        return set()


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, Ray's raylet and its workers
    proc.wait()
    time.sleep(1.0)


def _kill_after_the_first_commit(corpus: Path, out: Path) -> None:
    """Start ``hero run`` and SIGKILL it as soon as one video is committed; check that the kill
    landed mid-run: some videos committed, not all."""
    videos = {p.stem for p in corpus.glob("*.mp4")}
    proc = _hero_run(corpus, out)
    deadline = time.monotonic() + 600
    try:
        while not _committed(out):
            assert proc.poll() is None, "the run ended before committing a video"
            assert time.monotonic() < deadline, "no video committed in 10 minutes"
            time.sleep(0.05)
    finally:
        _kill(proc)
    committed = _committed(out)
    assert committed and committed < videos, f"not mid-run: committed {sorted(committed)}"


def _kill_and_resume(
    corpus: Path, out: Path, after_s: float | None, reference: HeroDataset
) -> None:
    """Kill ``hero run`` after ``after_s`` seconds (None: after its first commit), then run
    again: the dataset must equal the uninterrupted reference, each clip once."""
    if after_s is None:
        _kill_after_the_first_commit(corpus, out)
    else:
        proc = _hero_run(corpus, out)
        time.sleep(after_s)
        _kill(proc)
    report = run_pipeline(config(corpus, out, rows_per_shard=2), progress=False)
    accounted(report)
    ds = HeroDataset.open(out, verify="full")
    # At the end of a run everything is compacted: the manifest names every shard, and no
    # file under shards/ is unnamed (the killed run's uploads were removed).
    assert not list((out / "_commits").glob("*.json"))
    assert load_manifest(out).shards == ds.shards
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted(
        s.name.split("/")[1] for s in ds.shards
    )
    ids = [r.clip_id for r in ds]
    assert len(ids) == len(set(ids)), "a clip was written twice"
    assert sorted(ids) == sorted(reference.clip_ids())
    for r in reference:
        got = ds[r.clip_id]
        assert np.array_equal(got.visual(), r.visual())
        assert got.cues == r.cues and got.unique_sub2frames == r.unique_sub2frames


@pytest.mark.slow  # 80-100 s; CI runs the slow tier on every submission
def test_resume_after_kill_9(small_corpus, reference, tmp_path):
    _kill_and_resume(small_corpus, tmp_path / "out", None, reference)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_resume_after_kill_9_at_random_points(small_corpus, reference, tmp_path, seed):
    after = random.Random(seed).uniform(14.0, 50.0)
    _kill_and_resume(small_corpus, tmp_path / "out", after, reference)


def test_malformed_subtitle_cues_cost_the_cue_not_the_video(ray_local, tmp_path):
    """Every subtitle file holds one malformed cue: every video ends in the dataset with its
    good cues, none in errors.jsonl, and the report counts the cues by reason and lists the
    videos. With strict_subtitles each fails, as before the readers recovered."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    files = {
        "bad_time.vtt": "WEBVTT\n\n00:00.200 --> 00:01.400\ngood one\n\n"
        "00:01.500 --> 00:0x.000\nbad time\n\n00:02.000 --> 00:02.800\ngood two\n",
        "no_timing.srt": "1\n00:00:00,200 --> 00:00:01,400\ngood one\n\n2\nno timing line\n\n"
        "3\n00:00:02,000 --> 00:00:02,800\ngood two\n",
        "backwards.sbv": "0:00:00.200,0:00:01.400\ngood one\n\n"
        "0:00:01.800,0:00:01.500\nbackwards\n\n0:00:02.000,0:00:02.800\ngood two\n",
        "no_text.vtt": "WEBVTT\n\n00:00.200 --> 00:01.400\ngood one\n\n00:01.500 --> 00:01.900\n\n"
        "00:02.000 --> 00:02.800\ngood two\n",
    }
    for k, (name, text) in enumerate(files.items()):
        make_video(corpus / f"{Path(name).stem}.mp4", duration=3.0, width=96, height=64, seed=k)
        (corpus / name).write_text(text, encoding="utf-8")

    report = run_pipeline(config(corpus, tmp_path / "out"), progress=False)
    accounted(report)
    assert report["videos_ok"] == 4 and report["videos_failed"] == 0
    assert read_errors(tmp_path / "out") == []
    ds = HeroDataset.open(tmp_path / "out")
    texts = {r.clip.video_id: [c.text for c in r.cues] for r in ds}
    assert texts == {vid: ["good one", "good two"] for vid in texts} and len(texts) == 4
    run = report["this_run"]
    assert run["malformed_skipped"] == {"bad_timing": 1, "missing_timing": 1, "no_text": 1}
    assert run["malformed_repaired"] == {"end_before_start": 1}
    assert run["videos_with_malformed_cues"] == {
        "bad_time": {"skipped": {"bad_timing": 1}, "repaired": {}},
        "no_timing": {"skipped": {"missing_timing": 1}, "repaired": {}},
        "backwards": {"skipped": {}, "repaired": {"end_before_start": 1}},
        "no_text": {"skipped": {"no_text": 1}, "repaired": {}},
    }
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["this_run"]["malformed_skipped"] == run["malformed_skipped"]
    corpus_counts = {
        "skipped": run["malformed_skipped"],
        "repaired": run["malformed_repaired"],
        "videos": run["videos_with_malformed_cues"],
    }
    assert report["malformed_cues"] == corpus_counts

    # The corpus grows by one clean video: the next run does only that one, and the report's
    # dataset-wide counts still list the four earlier videos.
    make_video(corpus / "clean.mp4", duration=3.0, width=96, height=64, seed=9)
    (corpus / "clean.srt").write_text("1\n00:00:00,200 --> 00:00:01,400\nclean\n", "utf-8")
    grown = run_pipeline(config(corpus, tmp_path / "out"), progress=False)
    assert grown["videos_ok"] == 5 and grown["this_run"]["videos_ok"] == 1
    assert grown["this_run"]["videos_with_malformed_cues"] == {}
    assert grown["malformed_cues"] == corpus_counts

    strict = run_pipeline(
        config(corpus, tmp_path / "strict", strict_subtitles=True), progress=False
    )
    accounted(strict)
    assert strict["videos_failed"] == 4 and strict["failed_by_reason"] == {"SubtitleError": 4}
    errors = {e["video_id"]: e for e in read_errors(tmp_path / "strict")}
    assert {e["stage"] for e in errors.values()} == {"subtitles"}
    assert errors["bad_time"]["message"].startswith(f"{corpus / 'bad_time.vtt'}:6: bad timestamp")


@pytest.mark.slow  # 15 s; the same rules as the subtitle files' test, through the caption index
def test_malformed_howto100m_caption_cues_cost_the_cue_not_the_video(ray_local, tmp_path):
    """HowTo100M caption entries each holding one malformed cue: every video ends in the
    dataset with its good cues, none in errors.jsonl, and the report lists them; with
    strict_subtitles each fails at the subtitles stage."""
    videos = tmp_path / "videos"
    videos.mkdir()
    bad = {"bad_time": ("soon", 1.6, "bad"), "bad_text": (1.2, 1.6, None)}
    bad["backwards"] = (1.6, 1.2, "backwards")
    captions = {}
    for k, (vid, (start, end, text)) in enumerate(bad.items()):
        make_video(videos / f"{vid}.mp4", duration=3.0, width=96, height=64, seed=k)
        captions[vid] = {
            "start": [0.2, start, 2.0],
            "end": [1.0, end, 2.8],
            "text": ["good one", text, "good two"],
        }
    caption_json = tmp_path / "caption.json"
    caption_json.write_text(json.dumps(captions), encoding="utf-8")

    cfg = config(videos, tmp_path / "out", subtitles=str(caption_json))
    report = run_pipeline(cfg, progress=False)
    accounted(report)
    assert report["videos_ok"] == 3 and read_errors(tmp_path / "out") == []
    ds = HeroDataset.open(tmp_path / "out")
    texts = {r.clip.video_id: [c.text for c in r.cues] for r in ds}
    assert texts == {vid: ["good one", "good two"] for vid in bad}  # backwards: zero-length
    assert report["malformed_cues"] == {
        "skipped": {"bad_text": 1, "bad_timing": 1},
        "repaired": {"end_before_start": 1},
        "videos": {
            "backwards": {"skipped": {}, "repaired": {"end_before_start": 1}},
            "bad_text": {"skipped": {"bad_text": 1}, "repaired": {}},
            "bad_time": {"skipped": {"bad_timing": 1}, "repaired": {}},
        },
    }

    strict = config(videos, tmp_path / "strict", subtitles=str(caption_json), strict_subtitles=True)
    report = run_pipeline(strict, progress=False)
    accounted(report)
    assert report["videos_failed"] == 3 and report["failed_by_reason"] == {"SubtitleError": 3}
    errors = read_errors(tmp_path / "strict")
    assert {e["stage"] for e in errors} == {"subtitles"}
    assert all(f"video '{e['video_id']}' [1]: " in e["message"] for e in errors), errors


def test_frame_folders_from_a_manifest(ray_local, tmp_path):
    """A TVQA-style folder of 3 fps JPEGs, listed in a manifest, runs like a video: 20 s are 14
    steps, its rate stated by its frames.json or by the manifest's fps column; a folder with
    neither is its own failure, the run goes on."""
    from tests.extract.test_frames import make_folder

    corpus = tmp_path / "corpus"
    make_folder(corpus / "s01e02_clip_00")
    make_folder(corpus / "stated", frames=9)  # 3 s: the first 2 steps of the other's
    (corpus / "stated" / "frames.json").unlink()
    (corpus / "no_fps").mkdir()
    vtt(corpus / "s01e02.vtt", [(1.0, 4.0, "SHELDON: hello"), (10.0, 12.0, "bye")])
    rows = [
        {"video": "s01e02_clip_00", "subtitle": "s01e02.vtt", "video_id": "s01e02"},
        {"video": "stated", "fps": 3},
        {"video": "no_fps"},
    ]
    manifest = corpus / "inputs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = run_pipeline(config(manifest, tmp_path / "out"), progress=False)
    accounted(report)
    (error,) = read_errors(tmp_path / "out")
    assert error["video_id"] == "no_fps" and error["stage"] == "probe"
    assert "a folder without frames.json" in error["message"]
    ds = HeroDataset.open(tmp_path / "out", verify="full")
    clip, stated = ds["s01e02.0"], ds["stated.0"]
    assert len(ds) == 2 and clip.num_frames == 14 and stated.num_frames == 2
    for name, rows in clip.features.items():  # the same frames, whoever stated the rate
        assert rows[:2].tobytes() == stated.features[name].tobytes()
    assert clip.clip.end - clip.clip.start == 20.0
    assert [c.text for c in clip.cues] == ["hello", "bye"]
    assert clip.sub2frames == ((0, 1, 2), (6, 7))


def test_a_chosen_feature_set_end_to_end_then_trains(ray_local, tmp_path):
    """``--features clip_vit_b32,slowfast``: the dataset holds that set (its columns, widths and
    extractor configs), hero train takes its 2816 dims from it, resuming the dataset with
    another set is refused, and it exports to HERO's LMDB and imports back."""
    from align.tokenizer import train_byte_level_bpe
    from hero_data.errors import FeatureSetError
    from hero_data.features import FeatureSet
    from hero_model.runtime import find_checkpoint
    from hero_model.train import load_train_config, run_training

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = ["crack the eggs into a bowl", "whisk them with milk", "heat the pan", "flip it"]
    for k in range(3):
        make_video(corpus / f"v{k}.mp4", duration=6.0, width=96, height=64)
        vtt(corpus / f"v{k}.vtt", [(0.2, 2.5, lines[k]), (3.1, 5.6, lines[k + 1])])
    tokenizer = train_byte_level_bpe(lines, tmp_path / "tokenizer.json", vocab_size=300)
    out = tmp_path / "out"
    chosen = config(
        corpus, out, features="clip_vit_b32,slowfast", clip_length=3.0, tokenizer=str(tokenizer)
    )
    report = run_pipeline(chosen, progress=False)
    accounted(report)
    assert report["videos_ok"] == 3
    ds = HeroDataset.open(out, verify="full")
    assert ds.feature_set.describe() == "clip_vit_b32(512)+slowfast(2304)"
    assert ds.feature_set.columns[0].extractor["weights_sha256"] == "random"
    assert ds.feature_set.columns[0].extractor["model"].startswith("OpenAI CLIP ViT-B/32")
    assert load_manifest(out).config["features"] == ["clip_vit_b32", "slowfast"]
    record = ds["v0.0"]
    assert list(record.features) == ["clip_vit_b32", "slowfast"]
    assert record.features["clip_vit_b32"].shape == (2, 512) and len(ds) == 6
    with pytest.raises(FeatureSetError, match=r"holds features clip_vit_b32\(512\)\+slowfast"):
        run_pipeline(config(corpus, out, clip_length=3.0, tokenizer=str(tokenizer)))

    values = {"data": (str(out),), "max_steps": 2, "warmup_steps": 1, "checkpoint_every": 2}
    values.update(log_every=1, loader_workers=0, batch_size=2)
    values["model_overrides"] = {"vocab_size": 300}  # the tokenizer's
    run_training(load_train_config("tiny", values), tmp_path / "run", progress=False)
    meta = json.loads((find_checkpoint(tmp_path / "run") / "meta.json").read_text())
    assert meta["model_config"]["feature_dim"] == 2816
    assert FeatureSet.from_json(meta["features"]).same_layout(ds.feature_set)

    # The same dataset exports under VALUE's name and imports back, features exact.
    from pipelines.interop.lmdb_export import ExportOptions, export_hero_lmdb
    from pipelines.interop.lmdb_import import LmdbImportOptions, import_hero_lmdb

    lmdb_dir = tmp_path / "hero"
    summary = export_hero_lmdb(
        out, lmdb_dir, ExportOptions(tokenizer=str(tokenizer), progress=False)
    )
    assert summary.feature_db.name == "clip-vit_slowfast_1.5"
    import_hero_lmdb(lmdb_dir, tmp_path / "back", LmdbImportOptions(progress=False))
    back = HeroDataset.open(tmp_path / "back")
    assert back.feature_set.same_layout(ds.feature_set) and back.feature_dim == 2816
    assert back.clip_ids() == sorted(ds.clip_ids())
    for clip_id in ds.clip_ids():
        for name, rows in ds[clip_id].features.items():
            assert back[clip_id].features[name].tobytes() == rows.tobytes(), (clip_id, name)
