"""``hero run``: a video corpus -> a HERO dataset, on Ray Data, resumable and fault-tolerant.

Stages (one row per *video* all the way, so a video's clips travel and commit together)::

    list (driver) -> probe + read subtitles (tasks) -> decode, extract, then cut, align and
    tokenize (actor pool: models and tokenizer load once per actor; GPU actors when GPUs exist)
    -> HeroDatasink (each write task commits its videos as one shard and one commit record)

Aligning runs in the extraction actor, right after a video's features: it takes milliseconds,
and a stage of its own cost a process, its imports and a copy of every video's features through
the object store (measured in benchmarks/pipeline.py).

Exactly once (hero_data.commits has the protocol). The driver holds the dataset's lease for the
whole run (a second run on the same output is refused), and plans from one snapshot: videos
committed in a shard or recorded as failed, in the manifest or in records not yet compacted, are
done and skipped. Each write task writes its videos' clips into a new shard and commits it,
with its failed videos, by creating one record whose name is a hash of those video ids: a retry
of the task asks for the same name and cannot commit them twice. Nothing on the write path
reads the dataset or takes a lock, so a commit costs the same for the first shard and the
millionth (benchmarks/scale.py). The driver compacts the records into ``manifest.json`` and
``errors.jsonl`` every ``compact_every_s`` seconds and at the end. Whatever kills a run
(Ctrl-C, ``kill -9`` of the driver or a worker, a machine restart), running the same command
again finishes the job: uncommitted work is redone, committed work is not.

Storage. Input and output are local paths or fsspec URLs (``s3://``, ``gs://``); every dataset
read and write goes through :mod:`hero_data.storage`.

Faults. Every error inside a stage becomes the video's failure row (``errors.jsonl``: stage,
type, message). A per-video time budget stops a hung decode. A worker process that dies (out of
memory, a crash in a native library) is restarted by Ray and its video retried, up to
``max_attempts`` tries; each try is logged in ``<output>/attempts.jsonl``, so when Ray gives up
the driver knows which video killed its workers, records it as failed (``WorkerDied``) and
starts the remaining videos again. The tries are counted by a small actor on the driver's node
(:class:`AttemptLedger`), so the count works whatever the output's storage.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa

from align.captions import CaptionIndex
from align.readers import SubtitleError
from hero_data.commits import snapshot
from hero_data.errors import DatasetError
from hero_data.lease import LeaseLostError
from hero_data.manifest import ERRORS_NAME, now_iso
from hero_data.schema import to_record_batch
from hero_data.storage import open_storage
from hero_data.types import Cue
from hero_data.writer import DatasetWriter, ShardWriter, new_run_id
from pipelines.config import RunConfig, resolve_cpus_per_worker, resolve_workers
from pipelines.inputs import (
    VideoInput,
    check_inputs,
    howto100m_inputs,
    load_inputs,
    open_local,
    read_subtitle_cues,
)

log = logging.getLogger(__name__)

# Ray 2.60 re-launches workers through `uv run` when the driver was started by `uv run`, and
# that relaunch fails ("Failed to spawn: --python"). Workers started with the driver's own
# interpreter are what we want anyway. Read when `ray` is imported, so set it first.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

REPORT_NAME = "report.json"
FAULT_EXIT_ENV = "HERO_FAULT_EXIT_ON_VIDEO"
"""Testing aid: a worker that starts extracting the video with this id exits at once (as an
out-of-memory kill would), so the retry-then-record path can be exercised."""

_LIGHT_CPUS = 0.1  # Ray CPU request of the probe and write stages (cheap, I/O bound)
_RESERVED_CPUS = 0.25  # kept free of extraction actors: the two light stages fit at once

_MODELS = {
    "resnet": "torchvision resnet152 (ImageNet), global average pool, L2-normalised",
    "slowfast": "pytorchvideo slowfast_r50 8x8 (Kinetics-400), pooled slow||fast",
}
_PREPROCESSING = {
    "image": "frame before (i+1/2)L, short side 224 (bicubic, long side truncated), aspect kept, "
    "ImageNet mean/std",
    "window": "frames before iL+(j+1/2)/30, j<45, short side 224 (long side truncated), centre "
    "crop 224 at int((w-224)/2); 32 fast / 8 slow frames by the sampling rule; /255, mean 0.45, "
    "std 0.225",
}


# -- rows ----------------------------------------------------------------------------------------


def _failed(row: dict[str, Any], stage: str, error: BaseException) -> dict[str, Any]:
    return {
        **row,
        "status": "failed",
        "stage": stage,
        "error_type": type(error).__name__,
        "error": str(error),
    }


def _cues_json(cues: Iterable[Cue]) -> str:
    return json.dumps([[c.start, c.end, c.text, c.speaker] for c in cues])


def _cues_from_json(text: str | None) -> list[Cue]:
    return [Cue(s, e, t, sp) for s, e, t, sp in json.loads(text)] if text else []


def _rows(batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    keys = list(batch)
    n = len(batch[keys[0]]) if keys else 0
    return [{k: _plain(batch[k][i]) for k in keys} for i in range(n)]


def _plain(value: Any) -> Any:
    """A numpy scalar as a Python one; Ray's numpy batches turn ``None`` into NaN: undo that
    (no column of ours holds a real NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _batch(rows: list[dict[str, Any]], keys: Iterable[str]) -> dict[str, list[Any]]:
    return {k: [r.get(k) for r in rows] for k in keys}


_BASE_KEYS = (
    "video_id",
    "video_uri",
    "subtitle_uri",
    "cues_json",
    "status",
    "stage",
    "error_type",
    "error",
    "duration",
    "info_json",
    "t_probe",
)


# -- stage 1: probe and subtitles (tasks) ------------------------------------------------


def probe_video(row: dict[str, Any]) -> dict[str, Any]:
    """Probe the video and read its subtitles; any error makes a failure row."""
    from extract.decode import probe

    started = time.monotonic()
    out = {
        **row,
        "status": "ok",
        "stage": None,
        "error_type": None,
        "error": None,
        "duration": None,
        "info_json": None,
    }
    try:
        with open_local(row["video_uri"]) as path:
            info = probe(path, row["video_id"])
        out["duration"] = info.duration
        out["info_json"] = json.dumps({**info.to_dict(), "uri": row["video_uri"]})
    except Exception as e:
        out = _failed(out, "probe", e)
    if out["status"] == "ok" and row.get("subtitle_uri"):
        try:
            out["cues_json"] = _cues_json(read_subtitle_cues(row["subtitle_uri"]))
        except (SubtitleError, OSError, ValueError) as e:
            out = _failed(out, "subtitles", e)
    out["t_probe"] = time.monotonic() - started
    return out


# -- stage 2: decode + extract (actor pool) ----------------------------------------------


class ExtractStage:
    """Holds the two models and the tokenizer (loaded once per actor); per call, extracts one
    video's features, then cuts, aligns and tokenizes it (:class:`AlignStage`)."""

    def __init__(self, cfg: dict[str, Any], threads: int, ledger: Any) -> None:
        import torch

        from extract.extractor import ExtractConfig, FeatureExtractor

        torch.set_num_threads(max(1, threads))
        self.cfg = RunConfig(**cfg)
        self.ledger = ledger
        self.extractor = FeatureExtractor(
            ExtractConfig(
                frame_interval=self.cfg.frame_interval,
                backend=self.cfg.backend,
                device=self.cfg.device,
                batch_size=self.cfg.batch_size,
                compile=self.cfg.compile,
                sampling=self.cfg.sampling,
                resnet_weights=self.cfg.resnet_weights,
                slowfast_weights=self.cfg.slowfast_weights,
                random_weights=self.cfg.random_weights,
                offline=True if self.cfg.offline else None,
            )
        )
        self.align = AlignStage(cfg)

    def _log(self, video_id: str, event: str) -> None:
        import ray

        ray.get(self.ledger.note.remote(video_id, event))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        out = []
        for row in _rows(batch):
            row.update(num_steps=0, t_extract=0.0)
            features = None
            if row["status"] == "ok":
                row, features = self._extract(row)
            out.append(self.align.run(row, features))
        return _batch(out, _OUT_KEYS)

    def _extract(self, row: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        self._log(row["video_id"], "start")
        if os.environ.get(FAULT_EXIT_ENV) == row["video_id"]:
            os._exit(137)
        started = time.monotonic()
        features = None
        try:
            with open_local(row["video_uri"]) as path:
                features = self.extractor.extract(
                    path, timeout_s=self.cfg.timeout_for(row["duration"])
                )
            if features.num_steps == 0:
                raise ValueError(f"{row['video_uri']}: no frame decoded")
            row["num_steps"] = features.num_steps
        except Exception as e:
            row, features = {**_failed(row, "extract", e), "num_steps": 0}, None
        row["t_extract"] = time.monotonic() - started
        self._log(row["video_id"], "end")
        return row, features


class AttemptLedger:
    """Counts, per video, the extraction tries that started and whether one ended, for one
    run (a Ray actor on the driver's node). A worker that dies mid-video leaves a start with
    no end; after ``max_attempts`` such starts the video is the one killing workers."""

    def __init__(self) -> None:
        self.starts: Counter[str] = Counter()
        self.ended: set[str] = set()

    def note(self, video_id: str, event: str) -> None:
        if event == "start":
            self.starts[video_id] += 1
        else:
            self.ended.add(video_id)

    def state(self) -> tuple[dict[str, int], list[str]]:
        return dict(self.starts), sorted(self.ended)


def _ledger() -> Any:
    """A fresh :class:`AttemptLedger` actor, pinned to this (the driver's) node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    actor = ray.remote(num_cpus=0, max_restarts=0)(AttemptLedger)
    return actor.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)
    ).remote()


# -- cut, align, tokenize (inside the extraction actor) ----------------------------------


_OUT_KEYS = (
    *_BASE_KEYS,
    *("num_steps", "t_extract", "clips_ipc", "clips", "steps", "cues", "t_align"),
)


class AlignStage:
    """Cuts a video into clips, aligns and tokenizes its cues, and packs its clip records
    (Arrow IPC bytes) for the datasink. The tokenizer loads once."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = RunConfig(**cfg)
        self.tokenizer = None
        if self.cfg.tokenizer:
            from align.tokenizer import CueTokenizer

            self.tokenizer = CueTokenizer.from_path(self.cfg.tokenizer)

    def run(self, row: dict[str, Any], features: Any) -> dict[str, Any]:
        """``row`` with its packed clips; a failure row when aligning fails. ``features``
        (:class:`extract.extractor.VideoFeatures`) is ``None`` for a row that failed before."""
        row.update(clips_ipc=b"", clips=0, steps=0, cues=0, t_align=0.0)
        if row["status"] != "ok" or features is None:
            return row
        from hero_data.types import VideoInfo
        from pipelines.assemble import clip_records

        started = time.monotonic()
        try:
            info = VideoInfo.from_dict(json.loads(row["info_json"]))
            records, _ = clip_records(
                info,
                features,
                _cues_from_json(row.get("cues_json")),
                clip_length=self.cfg.clip_length,
                tokenizer=self.tokenizer,
            )
            sink = pa.BufferOutputStream()
            batch = to_record_batch(records)
            with pa.ipc.new_stream(sink, batch.schema) as w:
                w.write_batch(batch)
            row.update(
                clips_ipc=sink.getvalue().to_pybytes(),
                clips=len(records),
                steps=sum(r.num_frames for r in records),
                cues=sum(len(r.cues) for r in records),
            )
        except Exception as e:
            row = _failed(row, "align", e)
        row["t_align"] = time.monotonic() - started
        return row


# -- stage 4: the datasink ---------------------------------------------------------------


def _records_from_ipc(data: bytes) -> list[Any]:
    from hero_data.reader import record_from_row

    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    return [record_from_row(b, i) for b in table.to_batches() for i in range(b.num_rows)]


def _sink_class() -> type:
    from ray.data import Datasink

    class HeroDatasink(Datasink):
        """Commits each write task's videos as one new shard and one commit record (and its
        failed videos in the same record). Reads nothing of the dataset, takes no lock."""

        def __init__(self, root: str, run_id: str, rows_per_shard: int) -> None:
            self.root = root
            self.run_id = run_id
            self.rows_per_shard = rows_per_shard
            self.result: dict[str, Any] = {}

        def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
            stats: dict[str, Any] = {
                "ok": 0,
                "failed": Counter(),
                "clips": 0,
                "steps": 0,
                "cues": 0,
                "video_seconds": 0.0,
                "t_probe": 0.0,
                "t_extract": 0.0,
                "t_align": 0.0,
                "t_write": 0.0,
                "commits": 0,
                "commits_repeated": 0,
            }
            started = time.monotonic()
            rows = [r for block in blocks for r in block.to_pylist()]
            with ShardWriter(
                self.root, run=self.run_id, max_rows_per_shard=self.rows_per_shard
            ) as writer:
                for row in rows:
                    for key in ("t_probe", "t_extract", "t_align"):
                        stats[key] += row.get(key) or 0.0
                    if row["status"] != "ok":
                        writer.record_failure(
                            video_id=row["video_id"],
                            source=row["video_uri"],
                            stage=row["stage"],
                            error_type=row["error_type"],
                            message=row["error"],
                        )
                        stats["failed"][row["error_type"]] += 1
                        continue
                    writer.write_video(_records_from_ipc(row["clips_ipc"]))
                    stats["ok"] += 1
                    for key in ("clips", "steps", "cues"):
                        stats[key] += row[key]
                    stats["video_seconds"] += row["duration"] or 0.0
            # An earlier try of this task that committed and then died (its result lost) made
            # the same record: this try's copy was discarded, its videos count once, here.
            stats["commits"] = len(writer.outcomes)
            stats["commits_repeated"] = sum(o != "created" for o, _ in writer.outcomes)
            stats["t_write"] = time.monotonic() - started
            stats["failed"] = dict(stats["failed"])
            return stats

        def on_write_complete(self, write_result: Any) -> None:
            total: dict[str, Any] = {}
            for stats in write_result.write_returns:
                for k, v in stats.items():
                    if isinstance(v, dict):
                        agg = total.setdefault(k, Counter())
                        agg.update(v)
                    else:
                        total[k] = total.get(k, 0) + v
            total["failed"] = dict(total.get("failed", {}))
            self.result = total

    return HeroDatasink


# -- the driver -------------------------------------------------------------------------


def _weights_config(cfg: RunConfig) -> dict[str, Any]:
    """Check both weight files in the driver (clear errors before Ray starts) and return their
    sha256, without building the models: each extraction actor builds its own."""
    if cfg.random_weights:
        log.warning(
            "RANDOM WEIGHTS (seed 0) for both models: features will be meaningless; use them only "
            "for tests and dry runs, never for training data"
        )
        return {"resnet": "random", "slowfast": "random"}
    from extract.models import verify_weights

    offline = True if cfg.offline else None
    resnet = verify_weights("resnet152", cfg.resnet_weights, offline=offline)
    slowfast = verify_weights("slowfast_r50", cfg.slowfast_weights, offline=offline)
    return {"resnet": resnet.sha256, "slowfast": slowfast.sha256}


def dataset_config(cfg: RunConfig) -> dict[str, Any]:
    """What the manifest records about how the dataset was made (content only)."""
    tokenizer = None
    if cfg.tokenizer:
        from align.tokenizer import CueTokenizer

        t = CueTokenizer.from_path(cfg.tokenizer)
        tokenizer = {"sha256": t.sha256, "vocab_size": t.vocab_size, "kind": t.describe()["kind"]}
    return {
        **cfg.dataset_config(),
        "weights_sha256": _weights_config(cfg),
        "models": _MODELS,
        "preprocessing": _PREPROCESSING,
        "tokenizer": tokenizer,
    }


def _inputs(
    cfg: RunConfig,
) -> tuple[list[VideoInput], CaptionIndex | None, list[dict], list[dict]]:
    """``(inputs, HowTo100M caption index or None, excluded by language, failed before any
    work)``; a failed one (a video whose caption entry is broken) carries the fields of an
    ``errors.jsonl`` row. An input with a ``caption_key`` has its cues in the index."""
    if cfg.subtitles:
        inputs, captions, excluded = howto100m_inputs(
            cfg.input, cfg.subtitles, language=cfg.language
        )
        failed = [x for x in excluded if x.get("reason") == "bad_captions"]
        return inputs, captions, [x for x in excluded if x.get("reason") != "bad_captions"], failed
    listing = load_inputs(cfg.input)
    for orphan in getattr(listing, "orphan_subtitles", ()) or ():
        log.warning("subtitle file without a video: %s", orphan)
    return list(listing.inputs), None, [], []


def _start_ray(cfg: RunConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": "WARNING",
        "log_to_driver": False,
    }
    if not address:
        # Ray kills idle workers beyond a soft limit of one per CPU after a second. Our two
        # actors already take that many on a small machine, so every probe and write task
        # started a fresh Python worker (imports included) and killed it again: on 1 CPU that
        # churn made a 12-video run 125 s instead of 88 s (benchmarks/pipeline.py). Keep a few
        # task workers warm instead. An environment variable, so the raylet started below
        # reads it; a user's own RAY_num_workers_soft_limit wins.
        cpus = os.cpu_count() or 1
        os.environ.setdefault("RAY_num_workers_soft_limit", str(max(8, 2 * cpus)))
    # "local" always starts a private instance: a bare ray.init() would join another run's
    # local cluster on this machine and the two would compete for (and starve on) its CPUs.
    ray.init(address=address or "local", **kwargs)


def _execute(
    cfg: RunConfig, todo: list[dict[str, Any]], run_id: str, ledger: Any, progress: bool
) -> dict[str, Any]:
    import ray
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    # Ray Data samples each map worker's unique memory (psutil over /proc/<pid>/smaps) every
    # second, for its stats only; in an actor holding torch that walk costs CPU the extraction
    # needs (benchmarks/pipeline.py). Off.
    ctx.memory_usage_poll_interval_s = None
    resources = ray.cluster_resources()
    cpus = int(resources.get("CPU", 1))
    gpus = int(resources.get("GPU", 0)) if cfg.device != "cpu" else 0
    workers = resolve_workers(cfg, cpus, gpus)
    threads = resolve_cpus_per_worker(cfg, cpus, workers)
    per_actor = min(threads, max((cpus - _RESERVED_CPUS) / workers, 0.1))
    use_gpu = gpus > 0 and cfg.device != "cpu"
    cfg_dict = asdict(cfg)
    log.info(
        "%d extraction workers, %.2f CPUs%s each",
        workers,
        per_actor,
        f" and {cfg.gpus_per_worker} GPU" if use_gpu else "",
    )
    sink = _sink_class()(cfg.output, run_id, cfg.rows_per_shard)
    retries = max(cfg.max_attempts - 1, 0)
    # Ray Data's actor pools restart dead actors and retry their tasks forever by default, which
    # would loop on a video that kills its worker. In Ray 2.60 the limits are still passed as
    # extra remote args (deprecated for 2.64: revisit when upgrading).
    warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", module="ray")
    warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
    ds = (
        ray.data.from_items(todo)
        .map(probe_video, num_cpus=_LIGHT_CPUS)
        .map_batches(
            ExtractStage,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=per_actor,
            num_gpus=cfg.gpus_per_worker if use_gpu else 0,
            fn_constructor_kwargs={
                "cfg": cfg_dict,
                "threads": round(threads),
                "ledger": ledger,
            },
            max_restarts=retries,
            max_task_retries=retries,
        )
    )
    ds.write_datasink(sink, ray_remote_args={"num_cpus": _LIGHT_CPUS})
    return sink.result


def _dataset_error(error: BaseException) -> DatasetError | None:
    """The :class:`DatasetError` (a store that failed for good, say) behind an error that a
    Ray task raised, if that is what it is."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, DatasetError) and type(error).__module__.startswith("hero_data"):
            return error
        error = getattr(error, "cause", None) or error.__cause__
        seen += 1
    return None


class _Compactor:
    """Folds commit records into the manifest every ``every_s`` seconds from a daemon thread,
    while the run writes (the driver's own thread waits on Ray). A failure is logged and tried
    again at the next tick; a lost lease stops it (the driver raises it afterwards)."""

    def __init__(self, owner: DatasetWriter, every_s: float) -> None:
        self.owner = owner
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hero-compact", daemon=True)

    def __enter__(self) -> _Compactor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                stats = self.owner.compact()
            except LeaseLostError:
                return
            except Exception as e:
                log.warning("compacting %s failed (will try again): %s", self.owner.root, e)
                continue
            if stats.records:
                log.info(
                    "compacted %d commit records (%d shards) in %.2f s",
                    stats.records,
                    stats.shards_added,
                    stats.seconds,
                )


def run_pipeline(cfg: RunConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the job; returns the report (also written to ``report.json``)."""
    started = time.monotonic()
    inputs, captions, excluded, failed = _inputs(cfg)
    check_inputs(inputs)
    config = dataset_config(cfg)
    run_id = new_run_id()
    mode = "overwrite" if cfg.overwrite else "append"
    totals: list[dict[str, Any]] = []
    with DatasetWriter(
        cfg.output,
        config,
        mode=mode,
        max_rows_per_shard=cfg.rows_per_shard,
        run=run_id,
        command="hero run",
    ) as owner:  # the lease: one run per output; another config is refused here
        done = owner.snapshot().done()
        for x in failed:  # failed before any work (a broken caption entry): recorded once
            if x["video_id"] not in done:
                owner.record_failure(
                    video_id=x["video_id"],
                    source=x["video_uri"],
                    stage=x["stage"],
                    error_type=x["error_type"],
                    message=x["error"],
                )
        owner.flush()
        todo = [
            {
                **inp.to_dict(),
                "cues_json": _cues_json(captions.cues(inp.caption_key))
                if captions is not None and inp.caption_key is not None
                else None,
            }
            for inp in inputs
            if inp.video_id not in done
        ]
        for item in todo:
            item.pop("type", None)
            item.pop("caption_key", None)
        log.info(
            "%d inputs, %d already done, %d to process",
            len(inputs),
            len(inputs) - len(todo),
            len(todo),
        )
        rounds = 0
        ledger = None
        with _Compactor(owner, cfg.compact_every_s):
            while todo:
                rounds += 1
                _start_ray(cfg)
                if ledger is None:
                    ledger = _ledger()
                try:
                    totals.append(_execute(cfg, todo, run_id, ledger, progress))
                    break
                except Exception as e:
                    stored = _dataset_error(e)
                    if stored is not None:  # the store failed for good: say so, plainly
                        raise stored from None
                    # A worker died more often than allowed: find the video(s) it died on.
                    import ray

                    starts, ended = ray.get(ledger.state.remote())
                    done = owner.snapshot().done()
                    poison = [
                        v
                        for v, n in starts.items()
                        if n >= cfg.max_attempts and v not in ended and v not in done
                    ]
                    if not poison or rounds > 20:
                        raise
                    for item in todo:
                        if item["video_id"] in poison:
                            owner.record_failure(
                                video_id=item["video_id"],
                                source=item["video_uri"],
                                stage="extract",
                                error_type="WorkerDied",
                                message=f"{item['video_uri']}: the worker extracting it died "
                                f"{starts[item['video_id']]} times ({type(e).__name__})",
                            )
                    owner.flush()
                    todo = [t for t in todo if t["video_id"] not in done | set(poison)]
    inputs += [VideoInput(x["video_id"], x["video_uri"]) for x in failed]
    return _report(cfg, inputs, excluded, totals, time.monotonic() - started)


def _report(
    cfg: RunConfig,
    inputs: list[VideoInput],
    excluded: list[dict],
    totals: list[dict[str, Any]],
    wall: float,
) -> dict[str, Any]:
    storage = open_storage(cfg.output)
    snap = snapshot(storage)
    ids = {i.video_id for i in inputs}
    committed = snap.videos() & ids
    failed = {e["video_id"]: e for e in snap.errors if e.get("video_id") in ids}
    this_run: dict[str, Any] = {}
    for t in totals:
        for k, v in t.items():
            if isinstance(v, dict):
                this_run.setdefault(k, Counter()).update(v)
            else:
                this_run[k] = this_run.get(k, 0) + v
    video_hours = this_run.get("video_seconds", 0.0) / 3600
    report = {
        "output": storage.url,
        "finished": now_iso(),
        "inputs": len(inputs),
        "videos_ok": len(committed),
        "videos_failed": len(failed),
        "unaccounted": sorted(ids - committed - set(failed)),
        "failed_by_reason": dict(Counter(e.get("error_type", "?") for e in failed.values())),
        "excluded_by_language": excluded,
        "dataset": {"clips": snap.num_rows, "shards": len(snap.shards)},
        "this_run": {
            "videos_ok": this_run.get("ok", 0),
            "videos_failed": dict(this_run.get("failed", {})),
            "clips": this_run.get("clips", 0),
            "steps": this_run.get("steps", 0),
            "cues": this_run.get("cues", 0),
            "commits": this_run.get("commits", 0),
            "video_hours": video_hours,
            "wall_s": wall,
            "video_hours_per_hour": video_hours / (wall / 3600) if wall > 0 else 0.0,
            "stage_worker_s": {
                k[2:]: this_run.get(k, 0.0) for k in ("t_probe", "t_extract", "t_align", "t_write")
            },
        },
        "errors_file": storage.uri(ERRORS_NAME),
    }
    storage.put(REPORT_NAME, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    return report
