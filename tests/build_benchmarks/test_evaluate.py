"""The TVR scorer against a slow, obvious reference (plain loops, written here from the
official eval.py's rules), on seeded random submissions and hand-made edge cases."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest

from build_benchmarks.annotations import BenchmarkError
from build_benchmarks.evaluate import (
    _iou_hits,
    _percent,
    evaluate_qa,
    evaluate_retrieval,
    load_ground_truth,
    load_qa_predictions,
    load_submission,
)

THDS = (0.5, 0.7)
KS = (1, 5, 10, 100)


# --- the reference -----------------------------------------------------------------------


def ref_iou(pred_st, pred_ed, gt_st, gt_ed) -> np.float32:
    """Temporal IoU in float32, one pair at a time."""
    ps, pe = np.float32(pred_st), np.float32(pred_ed)
    gs, ge = np.float32(gt_st), np.float32(gt_ed)
    inter = max(np.float32(0), min(pe, ge) - max(ps, gs))
    union = max(pe, ge) - min(ps, gs)
    return np.float32(0) if union == 0 else np.float32(inter / union)


def ref_correct(pred, gt, video2idx, thd) -> bool:
    """Right video and IoU >= thd (DiDeMo: two of its four or more spans)."""
    same_video = np.float32(pred[0]) == np.float32(video2idx[gt["vid_name"]])
    ts = gt["ts"]
    spans = ts if len(ts) >= 4 else [ts]
    hits = 0
    for gs, ge in spans:
        iou = ref_iou(pred[1], pred[2], gs, ge) if same_video else np.float32(0)
        if iou >= np.float32(thd):
            hits += 1
    return hits >= (2 if len(ts) >= 4 else 1)


def ref_pct(hits: list[bool]) -> float:
    return float(round(np.mean(hits) * 100, 2))


def reference(submission, gt) -> dict:
    video2idx = submission["video2idx"]
    out = OrderedDict()
    for task in ("VCMR", "SVMR", "VR"):
        if task not in submission:
            continue
        preds = {e["desc_id"]: e["predictions"][:100] for e in submission[task]}
        metrics = OrderedDict()
        if task == "VR":
            for k in KS:
                hits = []
                for g in gt:
                    gidx = video2idx[g["vid_name"]]
                    hits.append(any(float(p[0]) == gidx for p in preds[g["desc_id"]][:k]))
                metrics[f"r{k}"] = ref_pct(hits)
        else:
            for thd in THDS:
                for k in KS:
                    hits = []
                    for g in gt:
                        rows = preds[g["desc_id"]]
                        if task == "SVMR":
                            gidx = video2idx[g["vid_name"]]
                            rows = [p for p in rows if np.float32(p[0]) == np.float32(gidx)]
                        hits.append(any(ref_correct(p, g, video2idx, thd) for p in rows[:k]))
                    metrics[f"{thd}-r{k}"] = ref_pct(hits)
        out[task] = metrics
    return out


# --- helpers -----------------------------------------------------------------------------


def random_case(seed: int, n_queries: int = 60, n_videos: int = 8):
    """A ground truth and a submission with many near-misses and exact boundaries."""
    rng = np.random.default_rng(seed)
    videos = [f"vid{i}.{i % 3}" for i in range(n_videos)]
    video2idx = {v: 10 + 3 * i for i, v in enumerate(videos)}  # not 0..n-1 on purpose
    gt = []
    for q in range(n_queries):
        st = float(rng.integers(0, 40)) * 1.5
        gt.append(
            {
                "desc_id": 1000 + q,
                "desc": f"query {q}",
                "vid_name": videos[rng.integers(n_videos)],
                "ts": [st, st + float(rng.integers(1, 12)) * 1.5],
                "duration": 60.0,
            }
        )
    sub = {"video2idx": video2idx}
    for task in ("VCMR", "SVMR", "VR"):
        entries = []
        for g in gt:
            n = int(rng.integers(1, 130))  # some have more than 100
            preds = []
            for _ in range(n):
                if rng.random() < 0.4:
                    v = video2idx[g["vid_name"]]
                else:
                    v = video2idx[videos[rng.integers(n_videos)]]
                if rng.random() < 0.5:  # jitter around the truth: IoUs near the thresholds
                    st = g["ts"][0] + float(rng.integers(-4, 5)) * 0.75
                    ed = g["ts"][1] + float(rng.integers(-4, 5)) * 0.75
                else:
                    st = float(rng.uniform(0, 55))
                    ed = st + float(rng.uniform(0, 20))
                preds.append([v, st, ed, float(rng.random())])
            entries.append({"desc_id": g["desc_id"], "desc": g["desc"], "predictions": preds})
        rng.shuffle(entries)  # order of queries does not matter
        sub[task] = entries
    return gt, sub


def one_query_case(predictions, ts=(0.0, 10.0), vid="a.0"):
    gt = [{"desc_id": 1, "vid_name": vid, "ts": list(ts)}]
    sub = {
        "video2idx": {"a.0": 0, "b.0": 1},
        "VCMR": [{"desc_id": 1, "desc": "", "predictions": predictions}],
        "SVMR": [{"desc_id": 1, "desc": "", "predictions": predictions}],
        "VR": [{"desc_id": 1, "desc": "", "predictions": predictions}],
    }
    return gt, sub


# --- tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_fast_scorer_matches_the_reference(seed):
    gt, sub = random_case(seed)
    fast = evaluate_retrieval(sub, gt)
    assert fast == reference(sub, gt)
    assert list(fast) == ["VCMR", "SVMR", "VR"]
    assert list(fast["VCMR"]) == [f"{t}-r{k}" for t in THDS for k in KS]
    assert list(fast["VR"]) == [f"r{k}" for k in KS]
    # not a degenerate case: the metrics spread out
    assert 0 < fast["VCMR"]["0.7-r1"] < fast["VCMR"]["0.5-r100"] < 100


def test_didemo_style_ground_truth_matches_the_reference():
    gt, sub = random_case(7, n_queries=30)
    for g in gt[::2]:  # four annotator spans: two must match
        st, ed = g["ts"]
        g["ts"] = [[st, ed], [st, ed], [st + 3.0, ed + 3.0], [0.0, 1.5]]
    assert evaluate_retrieval(sub, gt) == reference(sub, gt)


@pytest.mark.parametrize(
    ("pred", "ts", "hit_05", "hit_07"),
    [
        ([0, 0.0, 5.0], (0.0, 10.0), True, False),  # IoU exactly 0.5 counts
        ([0, 0.0, 7.0], (0.0, 10.0), True, True),  # IoU exactly 0.7 counts
        ([0, 0.0, 6.99], (0.0, 10.0), True, False),
        ([0, 5.0, 15.0], (0.0, 10.0), False, False),  # IoU 1/3
        ([0, 3.0, 10.0], (0.0, 10.0), True, True),  # IoU 0.7 from the other side
        ([1, 0.0, 10.0], (0.0, 10.0), False, False),  # perfect span, wrong video
        ([0, 10.0, 20.0], (0.0, 10.0), False, False),  # touching: IoU 0
        ([0, 4.0, 4.0], (0.0, 10.0), False, False),  # zero-length prediction inside
        # float32 decides, as in TVR: float64 gives 0.4999999999999999 (a miss) here ...
        ([0, 8.97, 17.11], (0.83, 17.11), True, False),
        # ... and 0.7000000000000001 (a hit) here, where float32 gives 0.69999993
        ([0, 13.85, 27.43], (8.03, 27.43), True, False),
    ],
)
def test_iou_threshold_edges(pred, ts, hit_05, hit_07):
    gt, sub = one_query_case([[*pred, 1.0]], ts=ts)
    res = evaluate_retrieval(sub, gt)
    assert res["VCMR"]["0.5-r1"] == (100.0 if hit_05 else 0.0)
    assert res["VCMR"]["0.7-r1"] == (100.0 if hit_07 else 0.0)
    assert res["SVMR"]["0.7-r1"] == res["VCMR"]["0.7-r1"]
    assert res == reference(sub, gt)


@pytest.mark.parametrize(
    ("pred", "ts", "thd", "hit32"),
    [((8.97, 17.11), (0.83, 17.11), 0.5, True), ((13.85, 27.43), (8.03, 27.43), 0.7, False)],
)
def test_the_float32_edge_cases_turn_on_the_precision(pred, ts, thd, hit32):
    """The IoU kernel decides these edges one way in float32 and the other in float64, so the
    table above pins the precision: the scorer's verdict is the float32 one."""

    def hit(dtype) -> bool:
        preds = np.array([[[0.0, *pred]]], dtype)  # (Q, P, 3)
        return bool(_iou_hits(preds, np.ones((1, 1), dtype), np.array([ts], dtype), thd)[0, 0])

    assert (hit(np.float32), hit(np.float64)) == (hit32, not hit32)
    gt, sub = one_query_case([[0, *pred, 1.0]], ts=ts)
    assert evaluate_retrieval(sub, gt)["VCMR"][f"{thd}-r1"] == (100.0 if hit32 else 0.0)


def test_svmr_is_restricted_to_the_gt_video_and_vr_ignores_times():
    preds = [[1, 0.0, 10.0, 0.9]] * 3 + [[0, 0.0, 10.0, 0.5]]  # right video only 4th
    gt, sub = one_query_case(preds)
    res = evaluate_retrieval(sub, gt)
    assert res["VCMR"]["0.5-r1"] == 0.0 and res["VCMR"]["0.5-r5"] == 100.0
    assert res["SVMR"]["0.5-r1"] == 100.0  # the other video's predictions are dropped
    assert res["VR"]["r1"] == 0.0 and res["VR"]["r5"] == 100.0
    gt, sub = one_query_case([[0, 30.0, 40.0, 1.0]])  # right video, wrong time
    res = evaluate_retrieval(sub, gt)
    assert res["VR"]["r1"] == 100.0 and res["VCMR"]["0.5-r100"] == 0.0


def test_only_the_first_100_predictions_count():
    preds = [[1, 0.0, 10.0, 1.0]] * 100 + [[0, 0.0, 10.0, 0.0]]
    gt, sub = one_query_case(preds)
    res = evaluate_retrieval(sub, gt)
    assert res["VCMR"]["0.5-r100"] == res["SVMR"]["0.5-r100"] == res["VR"]["r100"] == 0.0


def test_order_not_score_decides_ties_and_ranks():
    # scores say the right one is best, but it is listed second: rank 2 it is
    gt, sub = one_query_case([[1, 0.0, 10.0, 0.1], [0, 0.0, 10.0, 0.9]])
    res = evaluate_retrieval(sub, gt)
    assert res["VCMR"]["0.5-r1"] == 0.0 and res["VCMR"]["0.5-r5"] == 100.0


def test_percentages_round_as_numpy_does():
    # 1 hit in 4000 queries: 0.025 %, which numpy rounds to 0.02 (Python's round gives 0.03)
    n = 4000
    gt = [{"desc_id": i, "vid_name": "a.0", "ts": [0.0, 10.0]} for i in range(n)]
    preds = [[[0 if i == 0 else 1, 0.0, 10.0, 1.0]] for i in range(n)]
    sub = {
        "video2idx": {"a.0": 0, "b.0": 1},
        "VCMR": [{"desc_id": i, "predictions": preds[i]} for i in range(n)],
    }
    assert evaluate_retrieval(sub, gt)["VCMR"]["0.5-r1"] == 0.02


@pytest.mark.parametrize(
    ("hits", "queries", "percent"),
    # the first two are where Python's round(float, 2) differs: it gives 0.03 and 0.07
    [(1, 4000, 0.02), (3, 4000, 0.08), (1, 8, 12.5), (2, 3, 66.67)],
)
def test_percent_rounds_as_numpy_does(hits, queries, percent):
    assert _percent(np.mean(np.arange(queries) < hits)) == percent


def test_by_type_results_when_the_ground_truth_has_tvr_types():
    gt, sub = one_query_case([[0, 0.0, 10.0, 1.0]])
    gt.append({"desc_id": 2, "vid_name": "b.0", "ts": [0.0, 5.0], "type": "t"})
    gt[0]["type"] = "v"
    for task in ("VCMR", "SVMR", "VR"):
        sub[task].append({"desc_id": 2, "predictions": [[0, 0.0, 5.0, 1.0]]})
    res = evaluate_retrieval(sub, gt)
    assert list(res) == ["VCMR", "SVMR", "VR", "VCMR_by_type", "SVMR_by_type", "VR_by_type"]
    by = res["VCMR_by_type"]
    assert by["v-0.5-r1"] == 100.0 and by["t-0.5-r1"] == 0.0
    assert np.isnan(by["vt-0.5-r1"])  # no vt queries: 0/0, as the official script gives
    assert by["desc_type_ratio"] == "v 50.0 t 50.0 vt 0.0"
    assert res["VR_by_type"]["t-r1"] == 0.0


def write(tmp_path, name, obj, jsonl=False):
    path = tmp_path / name
    text = "".join(json.dumps(o) + "\n" for o in obj) if jsonl else json.dumps(obj)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.pop("video2idx"), "video2idx is missing"),
        (lambda s: [s.pop(t) for t in ("VCMR", "SVMR", "VR")], "none of the tasks"),
        (lambda s: s["VCMR"].pop(), r"VCMR: no predictions for ground-truth desc_ids \[?1"),
        (lambda s: s["VCMR"].append({"desc_id": 9, "predictions": [[0, 0, 1]]}), "not in gt"),
        (lambda s: s["SVMR"].append(dict(s["SVMR"][0])), "appears more than once"),
        (lambda s: s["VR"][0].update(predictions=[]), "VR desc_id 1: no predictions"),
        (lambda s: s["VCMR"][0].update(predictions=[[0, 1]]), "prediction 0 must be"),
        (lambda s: s["VCMR"][0].update(predictions=[[0, "1", 2]]), "prediction 0 must be"),
        (lambda s: s["VCMR"][0].update(predictions=[[0, 1, float("nan")]]), "finite"),
        (lambda s: s["video2idx"].pop("a.0"), "no index for ground-truth videos"),
        (lambda s: s["video2idx"].update({"a.0": "0"}), "must be an int"),
    ],
)
def test_bad_submissions_are_named(tmp_path, mutate, message):
    gt, sub = one_query_case([[0, 0.0, 10.0, 1.0]])
    mutate(sub)
    path = write(tmp_path, "pred.json", sub)
    with pytest.raises(BenchmarkError, match=message) as err:
        evaluate_retrieval(
            json.loads(path.read_text()), gt, submission_source=str(path), gt_source="gt"
        )
    assert str(err.value).startswith(f"{path}: ")  # every fault here is the submission's


def test_bad_files(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(BenchmarkError, match=r"broken\.json: not valid JSON \(line 1"):
        load_submission(broken)
    with pytest.raises(BenchmarkError, match="no such submission file"):
        load_submission(tmp_path / "none.json")
    gt_path = write(tmp_path, "gt.jsonl", [{"desc_id": 1, "vid_name": "a.0", "ts": [5, 1]}], True)
    with pytest.raises(BenchmarkError, match=r"gt\.jsonl: desc_id 1: ts \[5, 1\] ends before"):
        load_ground_truth(gt_path)
    bad_ts = [{"desc_id": 1, "vid_name": "a.0", "ts": [[0, 1], [1, 2], [2, 3]]}]
    with pytest.raises(BenchmarkError, match="at least 4 such pairs"):
        load_ground_truth(write(tmp_path, "g3.jsonl", bad_ts, True))
    dup = [{"desc_id": 1, "vid_name": "a.0", "ts": [0, 1]}] * 2
    with pytest.raises(BenchmarkError, match="appears more than once"):
        load_ground_truth(write(tmp_path, "dup.jsonl", dup, True))
    (tmp_path / "line.jsonl").write_text('{"desc_id": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(BenchmarkError, match=r"line\.jsonl:2: expected a JSON object"):
        load_ground_truth(tmp_path / "line.jsonl")


def test_qa_accuracy(tmp_path):
    val = [{"qid": 1, "answer_idx": 0}, {"qid": 2, "answer_idx": 3}]
    test = [{"qid": 3, "answer_idx": 1}, {"qid": 4, "answer_idx": 2}, {"qid": 5, "answer_idx": 0}]
    preds = {"1": 0, "2": 1, "3": 1, "4": 2, "5": 3}
    res = evaluate_qa(preds, {"val": val, "test": test})
    assert res["correct"] == 3 and res["total"] == 5 and res["accuracy"] == 60.0
    assert res["splits"]["val"] == {"accuracy": 50.0, "correct": 1, "total": 2}
    assert res["splits"]["test"] == {"accuracy": 66.67, "correct": 2, "total": 3}
    listed = write(tmp_path, "p.json", [{"qid": q, "answer_idx": a} for q, a in preds.items()])
    assert load_qa_predictions(listed) == preds
    with pytest.raises(BenchmarkError, match=r"p\.json: no prediction for qids '5'"):
        evaluate_qa(
            {k: v for k, v in preds.items() if k != "5"},
            {"val": val, "test": test},
            submission_source=str(listed),
        )
    with pytest.raises(BenchmarkError, match="answer_idx must be a non-negative int"):
        load_qa_predictions(write(tmp_path, "bad.json", {"1": "a"}))
    with pytest.raises(BenchmarkError, match="appears more than once"):
        evaluate_qa(preds, {"val": val, "again": val})
