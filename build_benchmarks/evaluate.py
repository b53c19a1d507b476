"""Scoring: TVR-style moment retrieval (VCMR, SVMR, VR) and multiple-choice QA accuracy.

Retrieval gives the same numbers, under the same keys, as the official TVR evaluation
(jayleicn/TVRetrieval ``standalone_eval/eval.py``) on the same files, vectorised over queries:

- Only the first 100 predictions of a query count, in the order given: scores are not used,
  so ties are whatever order the file has. Times, video indices and ground truth are float32,
  as there.
- A prediction is correct at threshold θ when its video index equals the ground-truth video's
  and ``IoU >= θ`` (float32 arithmetic; an IoU of exactly 0.5 or 0.7 counts). IoU is
  ``max(0, min(e, e') - max(s, s')) / (max(e, e') - min(s, s'))``, 0 where that span is 0.
- VCMR ``θ-rK``: some correct prediction among the first K. SVMR ``θ-rK``: the same after
  dropping the predictions in other videos (of the first 100). VR ``rK``: some prediction of
  the right video among the first K.
- A ground truth ``ts`` of at least four ``[start, end]`` pairs (DiDeMo) needs two of them
  matched at θ.
- Percentages are ``round(mean * 100, 2)`` with numpy's rounding (``round`` of a numpy float),
  which can differ from Python's at the last digit; reproduced here.
- When every ground-truth query has a TVR ``type`` (``v``, ``t`` or ``vt``), the per-type
  results ``<TASK>_by_type`` are added, as the official script does (it requires the field;
  How2R and subtitle queries do not have it, so they get no per-type results).

Where the official script would crash or silently pick one of several entries, this module
stops with an error naming the file and the fault instead: missing or duplicate ``desc_id``
values, a query with no predictions, a video name missing from ``video2idx``, malformed
predictions. The results are otherwise identical.

QA: predictions ``{"qid": answer_idx, ...}`` (or a list of ``{"qid", "answer_idx"}``) against
TVQA-style ground truth; accuracy in percent (2 decimals), overall and per ground-truth file.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from build_benchmarks.annotations import BenchmarkError

TASKS = ("VCMR", "SVMR", "VR")
IOU_THRESHOLDS = (0.5, 0.7)
RECALL_TOPKS = (1, 5, 10, 100)
MAX_PREDICTIONS = 100
DESC_TYPES = ("v", "t", "vt")
_MULTI_TS = 4  # DiDeMo: a ts of this many pairs or more
_MULTI_NEEDED = 2  # ... needs this many matched


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_number(x: Any) -> bool:
    return (
        isinstance(x, (int, float, np.integer, np.floating))
        and not isinstance(x, (bool, np.bool_))
        and math.isfinite(x)
    )


def _short(values: Sequence[Any], n: int = 5) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:n])
    return shown + (f" ... ({len(values)} in all)" if len(values) > n else "")


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """The JSON value in ``path``; :class:`BenchmarkError` naming the file if unreadable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchmarkError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchmarkError(f"{path}: cannot read the {what} file ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BenchmarkError(
            f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from None
    except ValueError as e:  # an integer of more than 4,300 digits
        raise BenchmarkError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise BenchmarkError(f"{path}: not valid JSON (nested too deep)") from None


def read_jsonl(path: str | os.PathLike[str], what: str) -> list[dict[str, Any]]:
    """One JSON object per non-blank line of ``path``; errors name the file and line."""
    path = Path(path)
    try:
        # "\n" only: str.splitlines would also cut at U+2028 and others, which JSON strings hold
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise BenchmarkError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchmarkError(f"{path}: cannot read the {what} file ({e})") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise BenchmarkError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        except ValueError as e:  # an integer of more than 4,300 digits
            raise BenchmarkError(f"{path}:{n}: not valid JSON ({e})") from None
        except RecursionError:
            raise BenchmarkError(f"{path}:{n}: not valid JSON (nested too deep)") from None
        if not isinstance(item, dict):
            raise BenchmarkError(f"{path}:{n}: expected a JSON object, got {type(item).__name__}")
        out.append(item)
    return out


# --- retrieval ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Query:
    """One ground-truth query, checked."""

    desc_id: Any
    vid_name: str
    ts: np.ndarray  # (2,) or (n >= 4, 2) float32
    type: str | None


def check_ground_truth(items: Sequence[Mapping[str, Any]], source: str) -> list[_Query]:
    """Ground-truth queries checked for what the scorer needs; errors name ``source``."""
    if not items:
        raise BenchmarkError(f"{source}: no queries")
    out: list[_Query] = []
    seen: set[Any] = set()
    for n, item in enumerate(items, 1):
        where = f"{source}: query {n}"
        desc_id = item.get("desc_id")
        if not (_is_int(desc_id) or isinstance(desc_id, str)):
            raise BenchmarkError(f"{where}: desc_id must be an int or a string, got {desc_id!r}")
        where = f"{source}: desc_id {desc_id!r}"
        if desc_id in seen:
            raise BenchmarkError(f"{where}: appears more than once")
        seen.add(desc_id)
        vid = item.get("vid_name")
        if not isinstance(vid, str):
            raise BenchmarkError(f"{where}: vid_name must be a string, got {vid!r}")
        ts = item.get("ts")
        pairs: list[Any]
        if isinstance(ts, list) and len(ts) == 2 and all(_is_number(t) for t in ts):
            pairs = [ts]
        elif isinstance(ts, list) and len(ts) >= _MULTI_TS:
            pairs = ts
        else:
            raise BenchmarkError(
                f"{where}: ts must be [start, end] seconds, or at least {_MULTI_TS} such pairs; "
                f"got {ts!r}"
            )
        for p in pairs:
            if not (isinstance(p, list) and len(p) == 2 and all(_is_number(t) for t in p)):
                raise BenchmarkError(f"{where}: bad [start, end] in ts: {p!r}")
            if p[1] < p[0]:
                raise BenchmarkError(f"{where}: ts {p!r} ends before it starts")
        arr = np.array(ts, dtype=np.float32)
        qtype = item.get("type")
        out.append(_Query(desc_id, vid, arr, qtype if isinstance(qtype, str) else None))
    return out


def load_ground_truth(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """A TVR-style ground-truth JSONL file (checked; errors name the file and query)."""
    items = read_jsonl(path, "ground-truth")
    check_ground_truth(items, str(path))
    return items


def _check_predictions(entry: Any, where: str) -> np.ndarray:
    """The first 100 predictions of one query as a ``(n, 3)`` float32 array."""
    preds = entry.get("predictions")
    if not isinstance(preds, list):
        raise BenchmarkError(f"{where}: predictions must be a list, got {type(preds).__name__}")
    if not preds:
        raise BenchmarkError(f"{where}: no predictions")
    used = preds[:MAX_PREDICTIONS]
    # Fast path for what JSON gives (lists of int/float); anything else is looked at one by one.
    if all(type(p) is list and len(p) >= 3 for p in used) and {
        type(v) for p in used for v in p[:3]
    } <= {int, float}:
        arr = np.array([p[:3] for p in used], dtype=np.float64)
        if np.isfinite(arr).all():
            return arr.astype(np.float32)
    for r, p in enumerate(used):
        if not (isinstance(p, list) and len(p) >= 3 and all(_is_number(v) for v in p[:3])):
            raise BenchmarkError(
                f"{where}: prediction {r} must be [video_idx, start, end, score] with finite "
                f"numbers, got {p!r}"
            )
    return np.array([p[:3] for p in used], dtype=np.float64).astype(np.float32)


def check_submission(
    submission: Any, source: str
) -> tuple[dict[str, int], dict[str, dict[Any, np.ndarray]]]:
    """``(video2idx, {task: {desc_id: (n, 3) float32 predictions}})``; errors name ``source``.

    Tasks are those of ``VCMR``, ``SVMR``, ``VR`` the submission has (at least one).
    """
    if not isinstance(submission, dict):
        raise BenchmarkError(f"{source}: expected a JSON object with video2idx and task lists")
    video2idx = submission.get("video2idx")
    if not isinstance(video2idx, dict):
        raise BenchmarkError(f"{source}: video2idx is missing or not an object")
    for name, idx in video2idx.items():
        if not _is_int(idx):
            raise BenchmarkError(f"{source}: video2idx[{name!r}] must be an int, got {idx!r}")
    tasks = [t for t in TASKS if t in submission]
    if not tasks:
        raise BenchmarkError(f"{source}: none of the tasks {', '.join(TASKS)} is present")
    out: dict[str, dict[Any, np.ndarray]] = {}
    for task in tasks:
        entries = submission[task]
        if not isinstance(entries, list):
            raise BenchmarkError(f"{source}: {task} must be a list of queries")
        by_id: dict[Any, np.ndarray] = {}
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise BenchmarkError(f"{source}: {task}[{n}] must be an object")
            desc_id = entry.get("desc_id")
            if not (_is_int(desc_id) or isinstance(desc_id, str)):
                raise BenchmarkError(
                    f"{source}: {task}[{n}]: desc_id must be an int or a string, got {desc_id!r}"
                )
            where = f"{source}: {task} desc_id {desc_id!r}"
            if desc_id in by_id:
                raise BenchmarkError(f"{where}: appears more than once")
            by_id[desc_id] = _check_predictions(entry, where)
        out[task] = by_id
    return video2idx, out


def load_submission(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TVR submission file (checked; errors name the file and the fault)."""
    submission = read_json(path, "submission")
    check_submission(submission, str(path))
    return submission


def _percent(x: Any) -> float:
    """``round(x * 100, 2)`` as the official script rounds a numpy float (numpy's rounding)."""
    return float(round(np.float64(x) * 100, 2))


def _iou_hits(preds: np.ndarray, match: np.ndarray, ts: np.ndarray, thd: float) -> np.ndarray:
    """``(IoU · matched) >= θ`` in float32 for ``preds (Q, P, 3)``, ``ts (Q, 2)``."""
    st, ed = preds[..., 1], preds[..., 2]
    gs, ge = ts[:, None, 0], ts[:, None, 1]
    inter = np.maximum(0, np.minimum(ed, ge) - np.maximum(st, gs))
    union = np.maximum(ed, ge) - np.minimum(st, gs)
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)
    return (iou * match) >= np.float32(thd)


def _task_metrics(
    task: str,
    preds_by_id: Mapping[Any, np.ndarray],
    video2idx: Mapping[str, int],
    queries: Sequence[_Query],
    thresholds: Sequence[float],
    topks: Sequence[int],
    types: np.ndarray | None,
) -> tuple[OrderedDict[str, float], OrderedDict[str, Any]]:
    """One task's metrics and per-type metrics (empty without ``types``), in percent."""
    n_q = len(queries)
    width = max(len(preds_by_id[q.desc_id]) for q in queries)
    preds = np.zeros((n_q, width, 3), dtype=np.float32)  # (Q, P, 3): video idx, start, end
    valid = np.zeros((n_q, width), dtype=bool)
    for r, q in enumerate(queries):
        p = preds_by_id[q.desc_id]
        preds[r, : len(p)] = p
        valid[r, : len(p)] = True
    gt_idx = np.array([video2idx[q.vid_name] for q in queries], dtype=np.float32)
    match = (preds[..., 0] == gt_idx[:, None]) & valid  # (Q, P)
    single = np.array([q.ts.ndim == 1 for q in queries])
    ts = np.zeros((n_q, 2), dtype=np.float32)
    if single.any():
        ts[single] = np.stack([q.ts for q in queries if q.ts.ndim == 1])
    corrects = []
    for thd in thresholds:
        hit = _iou_hits(preds, match, ts, thd) & valid & single[:, None]
        for r in np.flatnonzero(~single):  # DiDeMo: several ground-truth spans
            pr, mr = preds[r : r + 1], match[r : r + 1]
            count = sum(_iou_hits(pr, mr, pair[None], thd)[0].astype(int) for pair in queries[r].ts)
            hit[r] = (count >= _MULTI_NEEDED) & valid[r]
        corrects.append(hit)

    if task == "VCMR":
        per_key = {
            f"{thd}-r{k}": corrects[i][:, :k].any(axis=1)
            for i, thd in enumerate(thresholds)
            for k in topks
        }
    elif task == "SVMR":
        rank_in_video = np.cumsum(match, axis=1)  # (Q, P): 1-based rank among the gt video's
        per_key = {
            f"{thd}-r{k}": (corrects[i] & match & (rank_in_video <= k)).any(axis=1)
            for i, thd in enumerate(thresholds)
            for k in topks
        }
    else:  # VR
        per_key = {f"r{k}": match[:, :k].any(axis=1) for k in topks}

    metrics: OrderedDict[str, float] = OrderedDict(
        (key, _percent(np.mean(hits))) for key, hits in per_key.items()
    )
    by_type: OrderedDict[str, Any] = OrderedDict()
    if types is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            for t_idx, t in enumerate(DESC_TYPES):
                in_type = types == t_idx
                n_type = np.sum(in_type)
                for key, hits in per_key.items():
                    share = 1.0 * np.sum(np.logical_and(hits, in_type)) / n_type
                    by_type[f"{t}-{key}"] = _percent(share)
            ratios = [_percent(1.0 * np.sum(types == i) / len(types)) for i in range(3)]
        by_type["desc_type_ratio"] = "v {} t {} vt {}".format(*ratios)
    return metrics, by_type


def evaluate_retrieval(
    submission: Mapping[str, Any],
    ground_truth: Sequence[Mapping[str, Any]],
    *,
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
    topks: Sequence[int] = RECALL_TOPKS,
    submission_source: str = "submission",
    gt_source: str = "ground truth",
) -> OrderedDict[str, OrderedDict[str, Any]]:
    """TVR metrics of ``submission`` against ``ground_truth`` (see the module docstring).

    Returns ``{"VCMR": {"0.5-r1": 12.34, ...}, "SVMR": {...}, "VR": {"r1": ...}}`` for the
    tasks the submission has (percent), plus ``"<TASK>_by_type"`` when the ground truth has
    TVR query types. Errors name ``submission_source`` / ``gt_source``.
    """
    queries = check_ground_truth(ground_truth, gt_source)
    video2idx, tasks = check_submission(submission, submission_source)
    missing_videos = sorted({q.vid_name for q in queries} - set(video2idx))
    if missing_videos:
        raise BenchmarkError(
            f"{submission_source}: video2idx has no index for ground-truth videos "
            f"{_short(missing_videos)}"
        )
    types: np.ndarray | None = None
    if all(q.type is not None for q in queries):
        bad = sorted({q.type for q in queries} - set(DESC_TYPES))
        if bad:
            raise BenchmarkError(f"{gt_source}: query types must be v, t or vt; found {bad}")
        types = np.array([DESC_TYPES.index(q.type) for q in queries])  # type: ignore[arg-type]
    gt_ids = {q.desc_id for q in queries}
    results: OrderedDict[str, OrderedDict[str, Any]] = OrderedDict()
    by_type: OrderedDict[str, OrderedDict[str, Any]] = OrderedDict()
    for task, preds_by_id in tasks.items():
        missing = [q.desc_id for q in queries if q.desc_id not in preds_by_id]
        extra = [d for d in preds_by_id if d not in gt_ids]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"no predictions for ground-truth desc_ids {_short(missing)}")
            if extra:
                parts.append(f"predictions for desc_ids not in {gt_source}: {_short(extra)}")
            raise BenchmarkError(f"{submission_source}: {task}: {'; '.join(parts)}")
        results[task], by_type[task] = _task_metrics(
            task, preds_by_id, video2idx, queries, iou_thresholds, topks, types
        )
    if types is not None:
        for task, values in by_type.items():
            results[f"{task}_by_type"] = values
    return results


# --- QA ----------------------------------------------------------------------------------


def check_qa_predictions(predictions: Any, source: str) -> dict[str, int]:
    """``{qid (as a string): answer index}`` from a dict or a list of ``{qid, answer_idx}``."""
    out: dict[str, int] = {}
    if isinstance(predictions, dict):
        pairs = list(predictions.items())
    elif isinstance(predictions, list):
        pairs = []
        for n, item in enumerate(predictions):
            if not (isinstance(item, dict) and "qid" in item and "answer_idx" in item):
                raise BenchmarkError(f"{source}: item {n} must be an object with qid, answer_idx")
            pairs.append((item["qid"], item["answer_idx"]))
    else:
        raise BenchmarkError(
            f"{source}: expected {{qid: answer_idx}} or a list of {{qid, answer_idx}} objects"
        )
    for qid, answer in pairs:
        if not (_is_int(qid) or isinstance(qid, str)):
            raise BenchmarkError(f"{source}: qid must be an int or a string, got {qid!r}")
        if not _is_int(answer) or answer < 0:
            raise BenchmarkError(
                f"{source}: qid {qid!r}: answer_idx must be a non-negative int, got {answer!r}"
            )
        if str(qid) in out:
            raise BenchmarkError(f"{source}: qid {qid!r} appears more than once")
        out[str(qid)] = int(answer)
    return out


def evaluate_qa(
    predictions: Mapping[str, int],
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    submission_source: str = "predictions",
    gt_sources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Accuracy of ``predictions`` (qid string -> index) on ground-truth ``splits``.

    ``splits`` maps a name (e.g. the file's) to its TVQA-style records (``qid``,
    ``answer_idx``). Every ground-truth question needs a prediction and every prediction a
    question. Errors name ``gt_sources[name]`` (default: the name). Returns
    ``{"accuracy": %, "correct", "total", "splits": {name: {...}}}``.
    """
    where: dict[str, str] = {}
    answers: dict[str, dict[str, int]] = {}
    for name, items in splits.items():
        src = (gt_sources or {}).get(name, name)
        answers[name] = {}
        for n, item in enumerate(items, 1):
            qid, answer = item.get("qid"), item.get("answer_idx")
            if not (_is_int(qid) or isinstance(qid, str)):
                raise BenchmarkError(f"{src}: question {n}: qid must be an int or a string")
            if not _is_int(answer) or answer < 0:
                raise BenchmarkError(
                    f"{src}: qid {qid!r}: answer_idx must be a non-negative int, got {answer!r}"
                )
            key = str(qid)
            if key in where:
                raise BenchmarkError(
                    f"{src}: qid {qid!r} appears more than once (also in {where[key]})"
                )
            where[key] = name
            answers[name][key] = int(answer)
    if not where:
        raise BenchmarkError(f"{', '.join(splits) or 'ground truth'}: no questions")
    missing = [q for q in where if q not in predictions]
    extra = [q for q in predictions if q not in where]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no prediction for qids {_short(missing)}")
        if extra:
            parts.append(f"predictions for qids not in the ground truth: {_short(extra)}")
        raise BenchmarkError(f"{submission_source}: {'; '.join(parts)}")

    def score(truth: Mapping[str, int]) -> dict[str, Any]:
        correct = sum(predictions[q] == a for q, a in truth.items())
        total = len(truth)
        accuracy = round(100.0 * correct / total, 2) if total else float("nan")
        return {"accuracy": accuracy, "correct": correct, "total": total}

    everything = {q: a for truth in answers.values() for q, a in truth.items()}
    return {**score(everything), "splits": {name: score(t) for name, t in answers.items()}}


def load_qa_predictions(path: str | os.PathLike[str]) -> dict[str, int]:
    """A QA prediction file (checked; errors name the file)."""
    return check_qa_predictions(read_json(path, "prediction"), str(path))
