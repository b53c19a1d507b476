"""``hero build ...`` and ``hero eval ...`` through click, on files made here."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hero_data.types import Cue
from pipelines.cli.bench import build, eval_


def invoke(group, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(group, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "args",
    [
        (build, "how2r"),
        (build, "how2qa"),
        (build, "subtitle-queries"),
        (eval_, "vcmr"),
        (eval_, "qa"),
    ],
)
def test_help_states_defaults(args):
    code, out = invoke(*args, "--help")
    assert code == 0
    assert "--output" in out
    if args[1].startswith(("how2", "subtitle")):
        assert "[0]" in out and "--overwrite" in out


def test_build_how2r_then_eval(tmp_path):
    csv = tmp_path / "how2r.csv"
    csv.write_text(
        "v1,[0:60],[10:20],a man saws a plank\n"
        'v2,[60:120],[70:80],"a woman, smiling, irons"\n'
        "v3,[0:60]\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    code, text = invoke(build, "how2r", csv, "--output", out, "--seed", "2")
    assert code == 0, text
    assert "3 records -> 2 written" in text and "too_few_fields 1" in text
    code, text = invoke(build, "how2r", csv, "--output", out)
    assert code == 1 and "exists; pass --overwrite" in text
    assert invoke(build, "how2r", csv, "--output", out, "--overwrite")[0] == 0
    gt = out / "all.jsonl"
    rows = [json.loads(x) for x in gt.read_text().splitlines()]
    sub = {
        "video2idx": {"v1.0": 0, "v2.1": 1},
        "VCMR": [
            {"desc_id": r["desc_id"], "predictions": [[i, *r["ts"], 1.0]]}
            for i, r in enumerate(rows)
        ],
    }
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(sub), encoding="utf-8")
    saved = tmp_path / "metrics.json"
    code, text = invoke(eval_, "vcmr", "--submission", pred, "--gt", gt, "--output", saved)
    assert code == 0, text
    assert json.loads(text)["VCMR"]["0.7-r1"] == 100.0
    assert json.loads(saved.read_text()) == json.loads(text)
    sub["VCMR"][0]["predictions"] = [[0, 1]]
    pred.write_text(json.dumps(sub), encoding="utf-8")
    code, text = invoke(eval_, "vcmr", "--submission", pred, "--gt", gt)
    assert code == 1 and str(pred) in text and "prediction 0 must be" in text


def test_build_how2qa_with_adversarial_matching(tmp_path):
    csv = tmp_path / "qa.csv"
    csv.write_text(
        "a,[1:5],x1,x2,x3,what colour is the car?,red\n"
        "b,[1:5],y1,y2,y3,what colour is the wall?,white\n"
        "c,[61:65],z1,z2,z3,how many cups?,two\n",
        encoding="utf-8",
    )
    out = tmp_path / "qa"
    code, text = invoke(build, "how2qa", csv, "--output", out, "--adversarial", "1")
    assert code == 0, text
    report = json.loads((out / "report.json").read_text())
    assert report["adversarial"]["count"] == 1 and report["written"] == 3
    rows = [json.loads(x) for x in (out / "all.jsonl").read_text().splitlines()]
    opts = {r["q"]: {r[f"a{i}"] for i in range(4)} for r in rows}
    assert "white" in opts["what colour is the car?"] or "two" in opts["what colour is the car?"]
    code, text = invoke(build, "how2qa", csv, "--output", out, "--scorer-model", tmp_path)
    assert code == 2 and "--adversarial" in text
    code, text = invoke(
        build,
        "how2qa",
        csv,
        "--output",
        tmp_path / "m",
        "--adversarial",
        "1",
        "--scorer-model",
        tmp_path / "no-model",
    )
    assert code == 1 and "no such model folder" in text
    # QA scoring over two ground-truth files
    preds = tmp_path / "answers.json"
    preds.write_text(json.dumps({str(r["qid"]): r["answer_idx"] for r in rows}))
    code, text = invoke(
        eval_,
        "qa",
        "--submission",
        preds,
        "--gt",
        out / "train.jsonl",
        "--gt",
        out / "test.jsonl",
        "--gt",
        out / "val.jsonl",
    )
    assert code == 0, text
    result = json.loads(text)
    assert result["accuracy"] == 100.0 and result["total"] == 3
    assert set(result["splits"]) == {"train", "val", "test"}


def test_build_subtitle_queries(tmp_path, make_dataset):
    root = make_dataset([("v", 0, 30.0, [Cue(0, 2, "one two three four"), Cue(2, 3, "[Music]")])])
    out = tmp_path / "subq"
    code, text = invoke(build, "subtitle-queries", "--dataset", root, "--output", out)
    assert code == 0, text
    assert "2 records -> 1 written" in text and "tags_only 1" in text
    code, text = invoke(
        build, "subtitle-queries", "--dataset", tmp_path / "none", "--output", tmp_path / "o"
    )
    assert code == 1 and "no such dataset folder" in text


def test_missing_annotation_file_is_named(tmp_path):
    code, text = invoke(build, "how2r", tmp_path / "gone.csv", "--output", tmp_path / "o")
    assert code == 1 and "gone.csv: no such annotation file" in text
