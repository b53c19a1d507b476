"""``hero run``: a video corpus -> a HERO dataset, on Ray Data, resumable and fault-tolerant.

Stages (one row per *video* all the way, so a video's clips travel and commit together)::

    list (driver) -> probe + read subtitles (tasks) -> decode, extract, then cut, align and
    tokenize (actor pool: models and tokenizer load once per actor; GPU actors when GPUs exist)
    -> HeroDatasink (each write task commits its videos as one shard and one commit record)

Aligning runs in the extraction actor, right after a video's features: it takes milliseconds,
and a stage of its own cost a process, its imports and a copy of every video's features through
the object store (measured in perf/pipeline.py).

Exactly once (hero_data.commits has the protocol). The driver holds the dataset's lease for the
whole run (a second run on the same output is refused), and plans from one snapshot: videos
committed in a shard or recorded as failed, in the manifest or in records not yet compacted, are
done and skipped. Each write task writes its videos' clips into a new shard and commits it,
with its failed videos, by creating one record whose name is a hash of those video ids: a retry
of the task asks for the same name and cannot commit them twice. Nothing on the write path
reads the dataset or takes a lock, so a commit costs the same for the first shard and the
millionth (perf/scale.py). The driver compacts the records into ``manifest.json`` and
``errors.jsonl`` every ``compact_every_s`` seconds and at the end. Whatever kills a run
(Ctrl-C, ``kill -9`` of the driver or a worker, a machine restart), running the same command
again finishes the job: uncommitted work is redone, committed work is not.

Storage. Input and output are local paths or fsspec URLs (``s3://``, ``gs://``); every dataset
read and write goes through :mod:`hero_data.storage`.

Faults. Every error inside a stage becomes the video's failure row (``errors.jsonl``: stage,
type, message). A per-video time budget stops a hung decode. A worker process that dies (out of
memory, a crash in a native library) is restarted by Ray and its video retried, up to
``max_attempts`` tries. Each try is counted by a small actor on the driver's node
(:class:`RunLedger`), so when Ray gives up the driver knows which video killed its workers,
records it as failed (``WorkerDied``) and starts the remaining videos again. The work runs in
rounds: when a round fails after committing some videos (a lost node), the next one takes what
is left (:func:`run_pipeline`).

Cluster. Extraction workers are sized from each node's own resources
(:mod:`pipelines.cluster`) and spread over the nodes; the driver shows one progress view and
writes it to ``<output>/progress.json`` (:class:`RunMonitor`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from align.captions import CaptionIndex
from align.readers import ReadReport, SubtitleError
from hero_data.commits import snapshot
from hero_data.errors import DatasetError
from hero_data.features import FeatureSet
from hero_data.lease import LeaseLostError
from hero_data.manifest import ERRORS_NAME, now_iso
from hero_data.progress import Progress, clock
from hero_data.schema import to_record_batch
from hero_data.storage import open_storage
from hero_data.types import Cue
from hero_data.writer import DatasetWriter, ShardWriter, new_run_id
from pipelines.cluster import (
    WorkerPlan,
    WorkerPlanError,
    cluster_nodes,
    free_resources,
    plan_workers,
)
from pipelines.config import RunConfig
from pipelines.inputs import (
    VideoInput,
    check_inputs,
    howto100m_inputs,
    load_inputs,
    open_local,
    read_subtitle_cues_report,
)

log = logging.getLogger(__name__)

# Ray 2.60 re-launches workers through `uv run` when the driver was started by `uv run`, and
# that relaunch fails ("Failed to spawn: --python"). Workers started with the driver's own
# interpreter are what we want anyway. Read when `ray` is imported, so set it first.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

REPORT_NAME = "report.json"

_LIGHT_CPUS = 0.1  # Ray CPU request of the probe and write stages (cheap, I/O bound)


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


def _skips_json(report: ReadReport) -> str | None:
    """A video's malformed-cue counts as they travel on its row, or ``None`` when none."""
    return json.dumps(report.counts()) if report.skipped or report.repaired else None


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
    "subtitle_skips_json",
    "status",
    "stage",
    "error_type",
    "error",
    "duration",
    "info_json",
    "t_probe",
)


# -- stage 1: probe and subtitles (tasks) ------------------------------------------------


def probe_video(
    row: dict[str, Any],
    captions: dict[str, Any] | None = None,
    strict_subtitles: bool = False,
    ledger: Any = None,
) -> dict[str, Any]:
    """Probe the video and read its subtitles (its file, or its HowTo100M caption entry from
    the index that ``captions`` names: :func:`_captions_ref`); any error makes a failure row.
    Malformed cues are skipped or repaired, and counted in ``subtitle_skips_json``
    (:meth:`align.readers.ReadReport.counts`; ``None`` when there were none), unless
    ``strict_subtitles``, which fails the video at the first. The video's duration goes to the
    run's ``ledger`` (:class:`RunLedger`), if any: the progress view's ETA counts the video
    seconds left."""
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
            info = probe(path, row["video_id"], row.get("fps"))
        out["duration"] = info.duration
        out["info_json"] = json.dumps({**info.to_dict(), "uri": row["video_uri"]})
        if ledger is not None:
            ledger.probed.remote(row["video_id"], info.duration)  # no reply awaited
    except Exception as e:
        out = _failed(out, "probe", e)
    out["cues_json"] = out["subtitle_skips_json"] = None
    if out["status"] == "ok" and row.get("subtitle_uri"):
        try:
            cues, report = read_subtitle_cues_report(row["subtitle_uri"], strict=strict_subtitles)
            out["cues_json"] = _cues_json(cues)
            out["subtitle_skips_json"] = _skips_json(report)
        except (SubtitleError, OSError, ValueError) as e:
            out = _failed(out, "subtitles", e)
    elif out["status"] == "ok" and row.get("caption_key") and captions is not None:
        try:
            cues, report = _open_captions(captions).cues_report(
                row["caption_key"], strict=strict_subtitles
            )
            out["cues_json"] = _cues_json(cues)
            out["subtitle_skips_json"] = _skips_json(report)
        except (SubtitleError, KeyError, OSError, ValueError) as e:
            out = _failed(out, "subtitles", e)
    out.pop("caption_key", None)
    out["t_probe"] = time.monotonic() - started
    return out


_CAPTIONS_DIR = "_captions"
_OPENED_CAPTIONS: dict[str, CaptionIndex] = {}


def _captions_ref(cfg: RunConfig, captions: CaptionIndex | None) -> dict[str, Any] | None:
    """How workers find the caption index: its path on this machine and, when workers may run
    on other machines (``address``), a copy under ``<output>/_captions/`` (uploaded once; the
    same file name means the same caption file)."""
    if captions is None:
        return None
    path = Path(captions.path)
    ref = {
        "path": str(path),
        "size": path.stat().st_size,
        "source": captions.source,
        "root": None,
        "rel": f"{_CAPTIONS_DIR}/{path.name}",
    }
    if cfg.address or os.environ.get("RAY_ADDRESS"):
        storage = open_storage(cfg.output)
        rel = ref["rel"]
        if storage.read_optional(rel) is None or storage.size(rel) != ref["size"]:
            log.info("copying the caption index to %s for the workers", storage.uri(rel))
            storage.copy_in(path, rel)
        ref["root"] = storage.url
    return ref


def _open_captions(ref: dict[str, Any]) -> CaptionIndex:
    """The caption index in a worker (opened once per process): the driver's file when this
    machine has it, else a copy fetched from the dataset's storage into the local cache."""
    key = ref["path"]
    found = _OPENED_CAPTIONS.get(key)
    if found is not None:
        return found
    path = Path(ref["path"])
    if not (path.is_file() and path.stat().st_size == ref["size"]):
        if ref["root"] is None:
            raise FileNotFoundError(f"{path}: the caption index is not on this machine")
        from align.captions import caption_cache_dir

        path = caption_cache_dir() / Path(ref["rel"]).name
        if not (path.is_file() and path.stat().st_size == ref["size"]):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            open_storage(ref["root"]).download(ref["rel"], tmp)
            os.replace(tmp, path)
    found = CaptionIndex.open(path, source=ref["source"])
    _OPENED_CAPTIONS[key] = found
    return found


# -- stage 2: decode + extract (actor pool) ----------------------------------------------


class VideoProcessor:
    """Holds the feature set's models and the tokenizer (loaded once); per call, extracts one
    video's features, then cuts, aligns and tokenizes it (:class:`AlignStage`). Uses no Ray: the
    extraction actor (:class:`ExtractStage`) runs one, and perf/pipeline.py runs one in a plain
    loop to measure what Ray adds."""

    def __init__(self, cfg: dict[str, Any], threads: int) -> None:
        import torch

        from extract.extractor import FeatureExtractor

        torch.set_num_threads(max(1, threads))
        self.cfg = RunConfig(**cfg)
        offline = True if self.cfg.extract.offline else None  # false: as $HERO_OFFLINE says
        self.extractor = FeatureExtractor(self.cfg.extract.model_copy(update={"offline": offline}))
        self.align = AlignStage(cfg)

    def process(self, row: dict[str, Any]) -> dict[str, Any]:
        """One probed row (:func:`probe_video`) with its packed clips (``clips_ipc``), or a
        failure row; a row that failed before passes through."""
        row.update(num_steps=0, t_extract=0.0)
        features = None
        if row["status"] == "ok":
            row, features = self._extract(row)
        return self.align.run(row, features)

    def _extract(self, row: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        started = time.monotonic()
        features = None
        try:
            # The container's duration may be a lie (ten years): no decode runs past
            # MAX_VIDEO_SECONDS of frames, so neither does the timeout it sets.
            from extract.decode import MAX_VIDEO_SECONDS

            claimed = min(row["duration"], MAX_VIDEO_SECONDS)
            with open_local(row["video_uri"]) as path:
                features = self.extractor.extract(
                    path, timeout_s=self.cfg.timeout_for(claimed), fps=row.get("fps")
                )
            if features.num_steps == 0:
                raise ValueError(f"{row['video_uri']}: no frame decoded")
            row["num_steps"] = features.num_steps
        except Exception as e:
            row, features = {**_failed(row, "extract", e), "num_steps": 0}, None
        row["t_extract"] = time.monotonic() - started
        return row, features


class ExtractStage:
    """The extraction actor: a :class:`VideoProcessor` that tells the run's ledger
    (:class:`RunLedger`) when each video starts and how it ended."""

    def __init__(self, cfg: dict[str, Any], threads: int, ledger: Any) -> None:
        import ray

        self.ledger = ledger
        context = ray.get_runtime_context()
        self.node = context.get_node_id()
        # so a failed round can end it, and so a restart (the same actor id again) is counted
        ray.get(ledger.register.remote(context.current_actor, context.get_actor_id(), os.getpid()))
        self.processor = VideoProcessor(cfg, threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        import ray

        out = []
        for row in _rows(batch):
            if row["status"] == "ok":
                ray.get(self.ledger.start.remote(row["video_id"]))
            row = self.processor.process(row)
            ray.get(self.ledger.finish.remote(row["video_id"], _outcome(row, self.node)))
            out.append(row)
        return _batch(out, _OUT_KEYS)


def _outcome(row: dict[str, Any], node: str) -> tuple[Any, ...]:
    """What the ledger keeps of one processed video (see :data:`_OUTCOME_FIELDS`)."""
    return (
        row["status"],
        row.get("error_type"),
        node,
        row.get("duration") or 0.0,
        row.get("clips") or 0,
        row.get("steps") or 0,
        row.get("cues") or 0,
        row.get("t_probe") or 0.0,
        row.get("t_extract") or 0.0,
        row.get("t_align") or 0.0,
        row.get("subtitle_skips_json"),
    )


_OUTCOME_FIELDS = (
    "status",
    "error_type",
    "node",
    "seconds",
    "clips",
    "steps",
    "cues",
    "t_probe",
    "t_extract",
    "t_align",
    "subtitle_skips",
)


class RunLedger:
    """What happened to each video in one run, across its rounds: a Ray actor on the driver's
    node, told by the probe tasks each video's duration and by the extraction workers when a
    video starts and when it is done.

    It serves four things: finding a video that kills its workers (a start with no end, again
    and again: ``max_attempts`` starts make it the culprit), the progress view (counts, video
    seconds done and left), the report (per video: status, node, seconds of video, clips,
    steps, cues, stage times), and counting worker restarts (an actor that registers again
    under the same id was restarted by Ray). A video done twice (its first node died after
    processing it) is kept once, as last reported.
    """

    def __init__(self) -> None:
        self.starts: Counter[str] = Counter()
        self.done: dict[str, tuple[Any, ...]] = {}
        self.durations: dict[str, float] = {}
        self.workers: list[Any] = []
        self.inits: Counter[str] = Counter()
        self.pids: dict[str, int] = {}
        self.ok = 0
        self.seconds = 0.0
        self.done_seconds = 0.0
        self.done_unprobed = 0
        self.failed: Counter[str] = Counter()

    def register(self, worker: Any, actor_id: str, pid: int) -> None:
        """Remember an extraction worker (its actor handle) of the current round, and its
        process; the same actor id again is a restart."""
        key = actor_id
        self.inits[key] += 1
        self.pids[key] = pid
        if self.inits[key] == 1:
            self.workers.append(worker)

    def take_workers(self) -> list[Any]:
        """The workers registered since the last call (a failed round's, to end them)."""
        out, self.workers = self.workers, []
        return out

    def worker_processes(self) -> dict[str, int]:
        """Each extraction worker's actor id (hex) and the pid of its current process."""
        return dict(self.pids)

    def restarts(self) -> int:
        """How many times Ray restarted an extraction worker in this run."""
        return sum(n - 1 for n in self.inits.values())

    def probed(self, video_id: str, seconds: float) -> None:
        self.durations[video_id] = seconds

    def start(self, video_id: str) -> None:
        self.starts[video_id] += 1

    def finish(self, video_id: str, outcome: tuple[Any, ...]) -> None:
        before = self.done.get(video_id)
        if before is not None:
            self._count(video_id, before, -1)
        self.done[video_id] = outcome
        self._count(video_id, outcome, 1)

    def _count(self, video_id: str, outcome: tuple[Any, ...], sign: int) -> None:
        if outcome[0] == "ok":
            self.ok += sign
            self.seconds += sign * outcome[3]
        else:
            self.failed[outcome[1] or "Error"] += sign
        if video_id in self.durations:
            self.done_seconds += sign * self.durations[video_id]
        else:  # failed before its probe told its duration
            self.done_unprobed += sign

    def culprits(self, max_attempts: int) -> dict[str, int]:
        """Videos started ``max_attempts`` times or more without ever finishing."""
        return {v: n for v, n in self.starts.items() if n >= max_attempts and v not in self.done}

    def progress(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": sum(self.failed.values()),
            "failed_by_reason": {k: v for k, v in self.failed.items() if v > 0},
            "video_seconds": self.seconds,
            "started": len(self.starts),
            "running": sum(v not in self.done for v in self.starts),
            "probed": len(self.durations),
            "probed_seconds": sum(self.durations.values()),
            "done_seconds": self.done_seconds,
            "done_unprobed": self.done_unprobed,
            "restarts": self.restarts(),
        }

    def outcomes(self) -> dict[str, tuple[Any, ...]]:
        return self.done


LEDGER_PREFIX = "hero-run-ledger-"
"""Name prefix of a run's :class:`RunLedger` actor (then the run id), to find it from outside:
``ray.get_actor(name)``."""


def _ledger(run_id: str) -> Any:
    """A fresh :class:`RunLedger` actor, pinned to this (the driver's) node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    actor = ray.remote(num_cpus=0, max_restarts=0)(RunLedger)
    return actor.options(
        name=f"{LEDGER_PREFIX}{run_id}",
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
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
        from extract.features import feature_set

        self.cfg = RunConfig(**cfg)
        self.features = feature_set(self.cfg.extract.features)  # the layout: names and dims
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
            batch = to_record_batch(records, self.features)
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


def _records_from_ipc(data: bytes, features: FeatureSet) -> list[Any]:
    from hero_data.reader import record_from_row

    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    return [record_from_row(b, i, features) for b in table.to_batches() for i in range(b.num_rows)]


def datasink_class() -> type:
    """The Ray Data datasink ``hero run`` writes through (``HeroDatasink(root, run_id,
    rows_per_shard, features)``, ``features`` the dataset's :class:`FeatureSet`): each write
    task's ``write`` commits its rows (rows of :class:`VideoProcessor` output) with one
    :class:`hero_data.writer.ShardWriter`. A function,
    so that importing this module does not import Ray; perf/scale.py and perf/pipeline.py
    call the class's ``write`` without Ray (it needs only blocks with ``to_pylist``)."""
    from ray.data import Datasink

    class HeroDatasink(Datasink):
        """Commits each write task's videos as one new shard and one commit record (and its
        failed videos in the same record). Reads nothing of the dataset, takes no lock."""

        def __init__(
            self, root: str, run_id: str, rows_per_shard: int, features: FeatureSet
        ) -> None:
            self.root = root
            self.run_id = run_id
            self.rows_per_shard = rows_per_shard
            self.features = features
            self.result: dict[str, Any] = {}

        def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
            rows = [r for block in blocks for r in block.to_pylist()]
            with ShardWriter(
                self.root,
                run=self.run_id,
                max_rows_per_shard=self.rows_per_shard,
                features=self.features,
            ) as writer:
                for row in rows:
                    if row["status"] != "ok":
                        writer.record_failure(
                            video_id=row["video_id"],
                            source=row["video_uri"],
                            stage=row["stage"],
                            error_type=row["error_type"],
                            message=row["error"],
                        )
                    else:
                        writer.write_video(_records_from_ipc(row["clips_ipc"], self.features))
            # An earlier try of this task that committed and then died (its result lost) made
            # the same record: this try's copy was discarded.
            return {
                "commits": len(writer.outcomes),
                "commits_repeated": sum(o != "created" for o, _ in writer.outcomes),
            }

        def on_write_complete(self, write_result: Any) -> None:
            total: Counter[str] = Counter()
            for stats in write_result.write_returns:
                total.update(stats)
            self.result = dict(total)

    return HeroDatasink


# -- the driver -------------------------------------------------------------------------


def _weights_config(cfg: RunConfig) -> dict[str, str]:
    """Check the weight file of each extractor of the set in the driver (clear errors before
    Ray starts) and return their sha256 by feature name, without building the models: each
    extraction actor builds its own."""
    names = cfg.extract.features
    if cfg.random_weights:
        log.warning(
            "RANDOM WEIGHTS (seed 0) for every model: features will be meaningless; use them "
            "only for tests and dry runs, never for training data"
        )
        return dict.fromkeys(names, "random")
    from extract.features import get_extractor
    from extract.models import verify_weights

    offline = True if cfg.offline else None
    return {
        name: verify_weights(
            get_extractor(name).architecture, cfg.extract.weights_for(name), offline=offline
        ).sha256
        for name in names
    }


def _check_decoder(cfg: RunConfig) -> None:
    """``decoder: nvdec`` with a Ray started here: refuse before Ray starts when NVDEC cannot
    run on this machine (:class:`extract.nvdec.NvdecUnavailable`, naming what is missing).
    Workers on a cluster check for themselves when they start: their machines may differ."""
    if cfg.extract.decoder != "nvdec" or cfg.address or os.environ.get("RAY_ADDRESS"):
        return
    from extract.extractor import resolve_pixels_and_decoder
    from hero_data.device import resolve_device

    resolve_pixels_and_decoder(cfg.extract, resolve_device(cfg.extract.device))


_DEFAULT_SET_RECORD: dict[str, Any] = {
    "models": {
        "resnet": "torchvision resnet152 (ImageNet), global average pool, L2-normalised",
        "slowfast": "pytorchvideo slowfast_r50 8x8 (Kinetics-400), pooled slow||fast",
    },
    "preprocessing": {
        "image": "frame before (i+1/2)L, short side 224 (bicubic, long side truncated), aspect "
        "kept, ImageNet mean/std",
        "window": "frames before iL+(j+1/2)/30, j<45, short side 224 (long side truncated), "
        "centre crop 224 at int((w-224)/2); 32 fast / 8 slow frames by the sampling rule; /255, "
        "mean 0.45, std 0.225",
    },
}
"""How a dataset of the default set (``resnet,slowfast``) records its models and preprocessing
in its config: verbatim what every dataset recorded before a feature set could be chosen, and
without a ``features`` key (the manifest's feature set holds it). A resume compares configs
for equality, so this keeps those datasets resumable and a default dataset's manifest
unchanged."""


def dataset_config(cfg: RunConfig) -> dict[str, Any]:
    """What the manifest records about how the dataset was made (content only): the content
    options (the feature set's names among them), each extractor's weights' sha256, model and
    preprocessing, by feature name; for the default set, :data:`_DEFAULT_SET_RECORD`'s form."""
    tokenizer = None
    if cfg.tokenizer:
        from align.tokenizer import CueTokenizer

        t = CueTokenizer.from_path(cfg.tokenizer)
        tokenizer = {"sha256": t.sha256, "vocab_size": t.vocab_size, "kind": t.describe()["kind"]}
    from extract.config import DEFAULT_FEATURES
    from extract.features import get_extractor

    content = cfg.dataset_config()
    if tuple(cfg.extract.features) == DEFAULT_FEATURES:
        del content["features"]
        described = _DEFAULT_SET_RECORD
    else:
        specs = [get_extractor(name) for name in cfg.extract.features]
        described = {
            "models": {spec.name: spec.model for spec in specs},
            "preprocessing": {spec.name: spec.preprocessing.text for spec in specs},
        }
    return {
        **content,
        "weights_sha256": _weights_config(cfg),
        **described,
        "tokenizer": tokenizer,
    }


def dataset_features(cfg: RunConfig, config: Mapping[str, Any]) -> FeatureSet:
    """The feature set ``hero run`` writes: the configured extractors' columns, each with its
    extractor config and the sha256 of its weights from ``config`` (:func:`dataset_config`'s)."""
    from extract.features import feature_set

    return feature_set(cfg.extract.features, config["weights_sha256"])


def _inputs(
    cfg: RunConfig,
) -> tuple[list[VideoInput], CaptionIndex | None, list[dict], list[dict]]:
    """``(inputs, HowTo100M caption index or None, excluded by language, failed before any
    work)``; a failed one (a video whose caption entry is broken) carries the fields of an
    ``errors.jsonl`` row. An input with a ``caption_key`` has its cues in the index."""
    if cfg.subtitles:
        inputs, captions, excluded = howto100m_inputs(
            cfg.input, cfg.subtitles, language=cfg.language, strict=cfg.strict_subtitles
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
        # churn made a 12-video run 125 s instead of 88 s (perf/pipeline.py). Keep a few
        # task workers warm instead. An environment variable, so the raylet started below
        # reads it; a user's own RAY_num_workers_soft_limit wins.
        cpus = os.cpu_count() or 1
        os.environ.setdefault("RAY_num_workers_soft_limit", str(max(8, 2 * cpus)))
    # "local" always starts a private instance: a bare ray.init() would join another run's
    # local cluster on this machine and the two would compete for (and starve on) its CPUs.
    ray.init(address=address or "local", **kwargs)


_MAX_ROWS_PER_BLOCK = 64
"""Videos per input block at most (1 for small corpora): a probe task takes one block."""


def _execute(
    cfg: RunConfig,
    todo: pa.Table,
    run_id: str,
    ledger: Any,
    captions: dict[str, Any] | None,
    features: FeatureSet,
) -> tuple[dict[str, Any], WorkerPlan]:
    import ray
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the run's own view (RunMonitor) replaces them
    # Ray Data samples each map worker's unique memory (psutil over /proc/<pid>/smaps) every
    # second, for its stats only; in an actor holding torch that walk costs CPU the extraction
    # needs (perf/pipeline.py). Off.
    ctx.memory_usage_poll_interval_s = None
    plan = plan_workers(cfg, cluster_nodes())
    log.info("%s", plan.describe())
    sink = datasink_class()(cfg.output, run_id, cfg.rows_per_shard, features)
    retries = max(cfg.max_attempts - 1, 0)
    # Ray Data's actor pools restart dead actors and retry their tasks forever by default, which
    # would loop on a video that kills its worker. In Ray 2.60 the limits are still passed as
    # extra remote args (deprecated for 2.64: revisit when upgrading).
    warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", module="ray")
    warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
    # A worker task takes one input block: one video per block for corpora under 512 videos
    # (work spreads over every worker), at most 64 for big ones (a 1.2 M-video corpus is 19 k
    # blocks, not 1.2 M objects; a lost node loses at most 64 videos' work per worker). A
    # repartition to one video per block would need whole CPUs that a node full of workers
    # does not have free.
    rows = min(_MAX_ROWS_PER_BLOCK, max(1, todo.num_rows // 256))
    blocks = [todo.slice(i, rows) for i in range(0, todo.num_rows, rows)]
    ds = (
        # from_blocks computes the blocks' metadata here; from_arrow would run a 1-CPU task
        # per block, which a node full of workers has no room for
        ray.data.from_blocks(blocks)
        .map(
            probe_video,
            num_cpus=_LIGHT_CPUS,
            fn_kwargs={
                "captions": captions,
                "strict_subtitles": cfg.strict_subtitles,
                "ledger": ledger,
            },
        )
        .map_batches(
            ExtractStage,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=plan.workers),
            num_cpus=plan.cpus,
            num_gpus=plan.gpus,
            memory=plan.memory_gb * (1 << 30),
            fn_constructor_kwargs={
                "cfg": cfg.model_dump(),
                "threads": plan.threads,
                "ledger": ledger,
            },
            max_restarts=retries,
            max_task_retries=retries,
            scheduling_strategy="SPREAD",
        )
    )
    ds.write_datasink(sink, ray_remote_args={"num_cpus": _LIGHT_CPUS})
    return sink.result, plan


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


@dataclass
class RunPlan:
    """What a run has to do, as compact columns: ids and paths, no per-video payload.

    Attributes:
        inputs: every video listed: ``video_id``, ``video_uri``, ``subtitle_uri``,
            ``caption_key``, ``fps`` (a frame folder's, from the manifest).
        todo: the rows of ``inputs`` not done yet (not committed, not failed).
        excluded: videos left out by the language filter (HowTo100M).
        failed: videos failed before any work (a broken caption entry), as error rows.
        captions: the HowTo100M caption index (``--subtitles``), or ``None``.
        seconds: how long planning took.
    """

    inputs: pa.Table
    todo: pa.Table
    excluded: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    captions: CaptionIndex | None = None
    seconds: float = 0.0


_INPUT_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("video_uri", pa.string()),
        ("subtitle_uri", pa.string()),
        ("caption_key", pa.string()),
        ("fps", pa.string()),
    ]
)


def plan_run(cfg: RunConfig, done: Iterable[str]) -> RunPlan:
    """List the inputs and keep those not ``done`` (video ids committed or failed). A
    HowTo100M input carries the key of its caption entry: workers look its cues up in the
    caption index (``plan.captions``); nothing of the cues passes through the driver."""
    started = time.monotonic()
    inputs, captions, excluded, failed = _inputs(cfg)
    check_inputs(inputs)
    table = pa.table(
        {
            "video_id": [i.video_id for i in inputs],
            "video_uri": [i.video_uri for i in inputs],
            "subtitle_uri": [i.subtitle_uri for i in inputs],
            "caption_key": [i.caption_key for i in inputs],
            "fps": [i.fps for i in inputs],
        },
        schema=_INPUT_SCHEMA,
    )
    del inputs
    todo = _left(table, set(done))
    return RunPlan(table, todo, excluded, failed, captions, time.monotonic() - started)


def prepare_run(cfg: RunConfig, owner: DatasetWriter) -> RunPlan:
    """Everything a run does before Ray starts, once the lease is held (``owner``): one
    snapshot of what is done (the compacted manifest plus the pending records), the plan, and
    the failures found while listing (recorded once). perf/scale.py times this."""
    done = owner.snapshot().done()
    plan = plan_run(cfg, done)
    for x in plan.failed:  # failed before any work (a broken caption entry): recorded once
        if x["video_id"] not in done:
            owner.record_failure(
                video_id=x["video_id"],
                source=x["video_uri"],
                stage=x["stage"],
                error_type=x["error_type"],
                message=x["error"],
            )
    owner.flush()
    return plan


def _left(todo: pa.Table, done: set[str]) -> pa.Table:
    """The rows of ``todo`` whose video is not in ``done`` (vectorized: a hash set in Arrow)."""
    if not done:
        return todo
    gone = pc.is_in(todo["video_id"], value_set=pa.array(list(done), pa.string()))
    return todo.filter(pc.invert(gone))


_MAX_ROUNDS = 20


def run_pipeline(cfg: RunConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the job; returns the report (also written to ``report.json``).

    The work runs in rounds: one Ray Data execution over what is left. A round that fails after
    committing some videos (a node lost with blocks Ray could not rebuild, say) is followed by
    another over the rest, planned afresh from the commits; a video that keeps killing its
    workers is recorded as failed (``WorkerDied``); a store that fails for good, or a round that
    commits nothing, ends the run with its error.
    """
    started = time.monotonic()
    _check_decoder(cfg)
    config = dataset_config(cfg)
    features = dataset_features(cfg, config)
    run_id = new_run_id()
    mode = "overwrite" if cfg.overwrite else "append"
    results: list[dict[str, Any]] = []
    plans: list[WorkerPlan] = []
    ledger = None
    with DatasetWriter(
        cfg.output,
        config,
        features=features,
        mode=mode,
        max_rows_per_shard=cfg.rows_per_shard,
        run=run_id,
        command="hero run",
    ) as owner:  # the lease: one run per output; another config is refused here
        plan = prepare_run(cfg, owner)
        todo = plan.todo
        log.info(
            "%d inputs, %d already done, %d to process (planned in %.1f s)",
            plan.inputs.num_rows,
            plan.inputs.num_rows - todo.num_rows,
            todo.num_rows,
            plan.seconds,
        )
        rounds = 0
        captions = None
        if todo.num_rows:
            captions = _captions_ref(cfg, plan.captions)
            _start_ray(cfg)
            ledger = _ledger(run_id)
        monitor = RunMonitor(owner.storage, ledger, todo.num_rows, started, progress)
        with _Compactor(owner, cfg.compact_every_s), monitor:
            while todo.num_rows:
                rounds += 1
                monitor.round_started(rounds)
                try:
                    result, worker_plan = _execute(cfg, todo, run_id, ledger, captions, features)
                    results.append(result)
                    plans.append(worker_plan)
                    break
                except Exception as e:
                    stored = _dataset_error(e)
                    if stored is not None:  # the store failed for good: say so, plainly
                        raise stored from None
                    if isinstance(e, WorkerPlanError):
                        raise
                    todo = _next_round(cfg, owner, ledger, todo, rounds, e)
            monitor.finish()
    report = _report(cfg, plan, ledger, results, plans, rounds, time.monotonic() - started)
    return report


def _next_round(
    cfg: RunConfig, owner: DatasetWriter, ledger: Any, todo: pa.Table, rounds: int, error: Exception
) -> pa.Table:
    """What is left after a failed round, or ``error`` raised again when going on is useless."""
    import ray

    # A failed execution can leave its extraction workers alive, holding their CPUs: end them,
    # so the next round's workers have room.
    for worker in ray.get(ledger.take_workers.remote()):
        with contextlib.suppress(Exception):
            ray.kill(worker, no_restart=True)
    culprits = ray.get(ledger.culprits.remote(cfg.max_attempts))
    done = owner.snapshot().done()
    left = _left(todo, done)
    culprits = {v: n for v, n in culprits.items() if v not in done}
    if culprits:
        uris = dict(zip(todo["video_id"].to_pylist(), todo["video_uri"].to_pylist(), strict=True))
        for vid, n in culprits.items():
            owner.record_failure(
                video_id=vid,
                source=uris.get(vid, vid),
                stage="extract",
                error_type="WorkerDied",
                message=f"{uris.get(vid, vid)}: the worker extracting it died {n} times "
                f"({type(error).__name__})",
            )
        owner.flush()
        return _left(left, set(culprits))
    if left.num_rows == todo.num_rows or rounds >= _MAX_ROUNDS:
        raise error  # nothing committed in this round: another would fail the same way
    log.warning(
        "round %d stopped (%s: %s) after committing %d videos; running the %d left again",
        rounds,
        type(error).__name__,
        str(error).splitlines()[0][:300] if str(error) else "",
        todo.num_rows - left.num_rows,
        left.num_rows,
    )
    return left


PROGRESS_NAME = "progress.json"


class RunMonitor:
    """The run's one progress view, in the units of the work: videos ok / failed / total,
    video-hours done, video-hours per hour, an ETA from the video seconds left, failures by
    reason.

    The ETA divides the video seconds left (the probed durations of the videos not done, plus
    the mean probed duration for each video not probed yet) by the video seconds extracted per
    second since the first extraction started; row counts would mislead when durations differ.

    On a terminal it is a live view (the toolkit's progress helper); elsewhere the same line is
    logged every 30 s (``hero.progress``). The same figures are written to
    ``<output>/progress.json`` every 30 s and at the end, so a long cluster run can be watched
    without the driver's terminal. When no video has started for a while, it says that the run
    is waiting for the cluster, and for what.
    """

    POLL_S = 2.0
    WRITE_S = 30.0
    WAIT_S = 60.0

    def __init__(self, storage: Any, ledger: Any, total: int, started: float, show: bool) -> None:
        self.storage = storage
        self.ledger = ledger
        self.total = total
        self.started = started
        self.show = show
        self.state: dict[str, Any] = {"ok": 0, "failed": 0, "video_seconds": 0.0, "started": 0}
        self.round = 0
        self.work_started: float | None = None  # when a video was first seen started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hero-progress", daemon=True)
        self._progress: Progress | None = None
        self._bar: int | None = None
        self._last_started = (0, time.monotonic())
        self._waiting_said = 0.0

    def __enter__(self) -> RunMonitor:
        if self.ledger is not None and self.total:
            if self.show:
                self._progress = Progress(every_s=self.WRITE_S).__enter__()
                self._bar = self._progress.add(self.line(), total=self.total, plain=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
            self._progress = None

    def round_started(self, n: int) -> None:
        self.round = n
        self._last_started = (self.state.get("started", 0), time.monotonic())

    def finish(self) -> None:
        """Take the final figures and write them (also when nothing was left to do)."""
        self._poll()
        self._write(final=True)

    def figures(self, final: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        wall = now - self.started
        st = self.state
        done = st["ok"] + st["failed"]
        hours = st["video_seconds"] / 3600
        rate = hours / (wall / 3600) if wall > 0 else 0.0
        left = self._seconds_left()
        eta = None
        if done >= self.total:
            eta = 0.0
        elif left is not None and self.work_started is not None:
            # the rate counts the videos extracted: one that fails early took no time
            busy = now - self.work_started
            if st["video_seconds"] > 0 and busy > 0:
                eta = left / (st["video_seconds"] / busy)
        return {
            "updated": now_iso(),
            "state": "finished" if final else "running",
            "round": self.round,
            "videos_total": self.total,
            "videos_ok": st["ok"],
            "videos_failed": st["failed"],
            "failed_by_reason": st.get("failed_by_reason", {}),
            "video_hours": hours,
            "video_hours_left": None if left is None else left / 3600,
            "video_hours_per_hour": rate,
            "elapsed_s": wall,
            "eta_s": eta,
            "worker_restarts": st.get("restarts", 0),
        }

    def _seconds_left(self) -> float | None:
        """Video seconds not processed yet: known for probed videos, the probed mean for the
        others; ``None`` before any probe."""
        st = self.state
        probed = st.get("probed", 0)
        if not probed:
            return None
        probed_s = st.get("probed_seconds", 0.0)
        unknown = max(self.total - probed - st.get("done_unprobed", 0), 0)
        return max(probed_s - st.get("done_seconds", 0.0), 0.0) + unknown * probed_s / probed

    def line(self) -> str:
        f = self.figures()
        failed = ", ".join(f"{k} {v}" for k, v in sorted(f["failed_by_reason"].items()))
        restarts = f["worker_restarts"]
        return (
            f"videos {f['videos_ok']:,} ok, {f['videos_failed']:,} failed of "
            f"{f['videos_total']:,} · {_hours(f['video_hours'])} video-h · "
            f"{f['video_hours_per_hour']:.2f} video-h/h · elapsed {clock(f['elapsed_s'])} · "
            f"ETA {clock(f['eta_s'])}"
            + (f" · failed: {failed}" if failed else "")
            + (f" · worker restarts: {restarts}" if restarts else "")
        )

    def _poll(self) -> None:
        if self.ledger is None:
            return
        import ray

        try:
            self.state = ray.get(self.ledger.progress.remote(), timeout=10)
        except Exception as e:  # a slow or busy driver node: keep the last figures
            log.debug("no progress from the ledger: %s", e)
        if self.work_started is None and self.state.get("started", 0):
            self.work_started = time.monotonic()

    def _write(self, final: bool = False) -> None:
        try:
            data = json.dumps(self.figures(final), indent=2) + "\n"
            self.storage.put(PROGRESS_NAME, data.encode("utf-8"))
        except Exception as e:
            log.warning("could not write %s: %s", self.storage.uri(PROGRESS_NAME), e)

    def _loop(self) -> None:
        last_write = 0.0
        last_line = time.monotonic()
        while not self._stop.wait(self.POLL_S):
            self._poll()
            now = time.monotonic()
            done = self.state["ok"] + self.state["failed"]
            if self._progress is not None and self._bar is not None:
                # on a terminal a live view; elsewhere the helper logs it every WRITE_S
                self._progress.update(self._bar, done=done, description=self.line())
            elif now - last_line >= self.WRITE_S:
                last_line = now
                log.info("%s", self.line())
            if now - last_write >= self.WRITE_S:
                last_write = now
                self._write()
            self._check_waiting(now, done)

    def _check_waiting(self, now: float, done: int) -> None:
        started = self.state.get("started", 0)
        if started != self._last_started[0] or self.state.get("running", 0):
            # a video started, or one is being extracted (a long one takes minutes)
            self._last_started = (started, now)
            return
        idle = now - self._last_started[1]
        if done >= self.total or idle < self.WAIT_S or now - self._waiting_said < self.WAIT_S:
            return
        self._waiting_said = now
        free = free_resources()
        have = "; ".join(
            f"{node[:8]}: {res.get('CPU', 0):g} CPU"
            + (f", {res.get('GPU', 0):g} GPU" if res.get("GPU") else "")
            for node, res in sorted(free.items())
        )
        log.warning(
            "no video has started for %.0f s: waiting for the cluster to make room for the "
            "extraction workers%s",
            idle,
            f" (free now: {have})" if have else "",
        )


def _hours(hours: float) -> str:
    return f"{hours:.2f}" if hours >= 1 else f"{hours:.3f}"


def _malformed_in_dataset(
    storage: Any,
    in_dataset: set[str],
    this_run: dict[str, dict[str, dict[str, int]]],
    processed: set[str],
) -> dict[str, Any]:
    """The malformed-cue counts of every video in the dataset: this run's, and those the last
    report listed for videos this run did not process (a resumed or grown corpus). The
    counts are not stored in the dataset itself: a video committed by a run that ended
    without writing its report (killed) is not listed."""
    videos: dict[str, dict[str, dict[str, int]]] = {}
    previous = storage.read_optional(REPORT_NAME)
    if previous is not None:
        try:
            listed = json.loads(previous).get("malformed_cues", {}).get("videos", {})
        except (ValueError, AttributeError):  # an unreadable old report: nothing to carry
            listed = {}
        if isinstance(listed, dict):
            videos.update(
                (vid, counts)
                for vid, counts in listed.items()
                if vid in in_dataset and vid not in processed
            )
    videos.update(this_run)
    skipped: Counter[str] = Counter()
    repaired: Counter[str] = Counter()
    for counts in videos.values():
        skipped.update(counts.get("skipped", {}))
        repaired.update(counts.get("repaired", {}))
    return {
        "skipped": dict(sorted(skipped.items())),
        "repaired": dict(sorted(repaired.items())),
        "videos": dict(sorted(videos.items())),
    }


def _report(
    cfg: RunConfig,
    plan: RunPlan,
    ledger: Any,
    results: list[dict[str, Any]],
    worker_plans: list[WorkerPlan],
    rounds: int,
    wall: float,
) -> dict[str, Any]:
    storage = open_storage(cfg.output)
    snap = snapshot(storage)
    ids = set(plan.inputs["video_id"].to_pylist()) | {x["video_id"] for x in plan.failed}
    committed = snap.videos() & ids
    failed = {e["video_id"]: e for e in snap.errors if e.get("video_id") in ids}
    outcomes: dict[str, tuple[Any, ...]] = {}
    restarts = 0
    if ledger is not None:
        import ray

        outcomes = ray.get(ledger.outcomes.remote())
        restarts = ray.get(ledger.restarts.remote())
    sums = Counter()
    skipped: Counter[str] = Counter()
    repaired: Counter[str] = Counter()
    malformed: dict[str, dict[str, dict[str, int]]] = {}  # per video, its counts
    failed_now: Counter[str] = Counter()
    nodes: dict[str, list[str]] = {}
    for vid, outcome in sorted(outcomes.items()):
        o = dict(zip(_OUTCOME_FIELDS, outcome, strict=True))
        if o["status"] == "ok":
            if vid not in committed:
                continue  # processed, but its commit did not happen in this run
            sums["ok"] += 1
            for key in ("seconds", "clips", "steps", "cues"):
                sums[key] += o[key]
            if o["subtitle_skips"]:
                malformed[vid] = json.loads(o["subtitle_skips"])
                skipped.update(malformed[vid]["skipped"])
                repaired.update(malformed[vid]["repaired"])
            nodes.setdefault(o["node"], []).append(vid)
        else:
            failed_now[o["error_type"] or "Error"] += 1
            nodes.setdefault(o["node"], []).append(vid)
        for key in ("t_probe", "t_extract", "t_align"):
            sums[key] += o[key]
    commits = Counter()
    for r in results:
        commits.update(r)
    video_hours = sums["seconds"] / 3600
    corpus = _malformed_in_dataset(storage, snap.videos(), malformed, set(outcomes))
    report = {
        "output": storage.url,
        "finished": now_iso(),
        "inputs": len(ids),
        "videos_ok": len(committed),
        "videos_failed": len(failed),
        "unaccounted": sorted(ids - committed - set(failed)),
        "failed_by_reason": dict(Counter(e.get("error_type", "?") for e in failed.values())),
        "excluded_by_language": plan.excluded,
        "dataset": {"clips": snap.num_rows, "shards": len(snap.shards)},
        "malformed_cues": corpus,
        "this_run": {
            "videos_ok": sums["ok"],
            "videos_failed": dict(failed_now),
            "clips": sums["clips"],
            "steps": sums["steps"],
            "cues": sums["cues"],
            "malformed_skipped": dict(sorted(skipped.items())),
            "malformed_repaired": dict(sorted(repaired.items())),
            "videos_with_malformed_cues": malformed,
            "commits": commits.get("commits", 0),
            "rounds": rounds,
            "worker_restarts": restarts,
            "workers": [asdict(p) for p in worker_plans],
            "plan_s": plan.seconds,
            "video_hours": video_hours,
            "wall_s": wall,
            "video_hours_per_hour": video_hours / (wall / 3600) if wall > 0 else 0.0,
            "stage_worker_s": {k[2:]: sums[k] for k in ("t_probe", "t_extract", "t_align")},
        },
        "nodes": {node: sorted(vids) for node, vids in sorted(nodes.items())},
        "errors_file": storage.uri(ERRORS_NAME),
    }
    storage.put(REPORT_NAME, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    return report
