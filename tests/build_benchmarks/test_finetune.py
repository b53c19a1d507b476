"""``run_finetune`` end to end on a toy corpus it can learn in seconds (tiny model, CPU).

The toy: each clip shows one of four things (a block of its ResNet features lit up during its
moment); a How2R query names the thing ("where is the engine"), a How2QA question asks which
of the four it is. Training, val and test clips are different videos, so a model that beats
chance on val/test has learned the rule, not the clips.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from align.tokenizer import CueTokenizer, train_byte_level_bpe
from build_benchmarks.evaluate import evaluate_qa, evaluate_retrieval, read_jsonl
from build_benchmarks.finetune import FinetuneConfig, FinetuneError, run_finetune
from build_benchmarks.finetune.data import load_bench, moment_steps, qa_batch
from build_benchmarks.finetune.heads import HeroForVideoQA, corpus_scores
from build_benchmarks.finetune.recipe import encode_clips, make_optimizer, task_heads
from hero_data.features import FeatureSet
from hero_data.reader import HeroDataset
from hero_data.types import Cue
from hero_data.writer import DatasetWriter
from hero_model.config import build_config
from hero_model.init import reference_shapes
from hero_model.pretrain import HeroForPretraining
from tests.conftest import make_record

THINGS = ("engine", "guitar", "river", "apple")
DURATION = 15.0  # 10 steps at 1.5 s
INTERVAL = 1.5
CUE_TEXTS = ("now we look at this part", "and then we keep going here")
QUERY_TEMPLATES = ("where is the {}", "show me the {}", "find the {} now")
QUESTION = "what is shown in the video"

# Videos per split; clip i of a split shows THINGS[i % 4]. How2R queries name the first
# RETRIEVAL_CLIPS clips of val and test (one per thing: a corpus where r1 can reach 100%),
# How2QA asks about all of them.
SPLIT_VIDEOS = {"train": 32, "val": 8, "test": 8}
RETRIEVAL_CLIPS = 4
_SPLIT_SEED = {"train": 1, "val": 2, "test": 3}


def _clip_plan(split: str, i: int) -> dict[str, Any]:
    rng = np.random.default_rng([_SPLIT_SEED[split], i])
    start = int(rng.integers(0, 6))
    length = int(rng.integers(3, 5))
    return {
        "video": f"{split[:2]}{i:02d}",
        "thing": i % len(THINGS),
        "span": (start * INTERVAL, (start + length) * INTERVAL),
        "steps": (start, start + length),
    }


def _record(plan: dict[str, Any], tokenizer: CueTokenizer, seed: int):
    base = make_record(plan["video"], 0, DURATION, seed=seed, n_cues=2)
    resnet = (
        base.features["resnet"].astype(np.float32) * 0.1
    )  # faint noise: the thing tells clips apart
    lo, hi = plan["steps"]
    block = slice(plan["thing"] * 64, (plan["thing"] + 1) * 64)
    resnet[:, block] += 2.0  # the thing is on screen all along ...
    resnet[lo:hi, block] += 2.0  # ... and in close-up during the moment
    cues = (Cue(0.0, 6.0, CUE_TEXTS[0], None), Cue(7.5, 13.5, CUE_TEXTS[1], "Ann"))
    spans = (tuple(range(0, 4)), tuple(range(5, 9)))
    return replace(
        base,
        features={**base.features, "resnet": resnet.astype(np.float16)},
        cues=cues,
        cue_token_ids=tuple(tuple(tokenizer.encode(c.text)) for c in cues),
        sub2frames=spans,
        unique_sub2frames=spans,
        unmatched_frames=(4, 9),
    )


def _texts() -> list[str]:
    out = [*CUE_TEXTS, QUESTION, *THINGS]
    out += [t.format(w) for t in QUERY_TEMPLATES for w in THINGS]
    return out * 3


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A dataset of the toy clips, its tokenizer, a How2R and a How2QA benchmark."""
    root = tmp_path_factory.mktemp("toy")
    tok_path = train_byte_level_bpe(_texts(), root / "tokenizer.json", vocab_size=300)
    tokenizer = CueTokenizer.from_path(tok_path)
    config = {
        "frame_interval": INTERVAL,
        "clip_length": 60.0,
        "tokenizer": {
            "sha256": tokenizer.sha256,
            "vocab_size": tokenizer.vocab_size,
            "kind": "tokenizer.json",
        },
    }
    how2r: dict[str, list[dict[str, Any]]] = {}
    how2qa: dict[str, list[dict[str, Any]]] = {}
    desc_id = qid = 0
    with DatasetWriter(root / "ds", config) as writer:
        for split, n in SPLIT_VIDEOS.items():
            how2r[split], how2qa[split] = [], []
            for i in range(n):
                plan = _clip_plan(split, i)
                writer.write(_record(plan, tokenizer, seed=desc_id))
                clip = f"{plan['video']}.0"
                word = THINGS[plan["thing"]]
                templates = QUERY_TEMPLATES if split == "train" else QUERY_TEMPLATES[:1]
                if split != "train" and i >= RETRIEVAL_CLIPS:
                    templates = ()
                for template in templates:
                    how2r[split].append(
                        {
                            "desc_id": desc_id,
                            "desc": template.format(word),
                            "vid_name": clip,
                            "ts": list(plan["span"]),
                            "duration": DURATION,
                        }
                    )
                    desc_id += 1
                order = np.random.default_rng(qid).permutation(len(THINGS))
                answers = [THINGS[k] for k in order]
                how2qa[split].append(
                    {
                        "qid": qid,
                        "q": QUESTION,
                        **{f"a{k}": a for k, a in enumerate(answers)},
                        "answer_idx": answers.index(word),
                        "ts": f"{plan['span'][0]}-{plan['span'][1]}",
                        "vid_name": clip,
                    }
                )
                qid += 1
    for name, bench in (("how2r", how2r), ("how2qa", how2qa)):
        write_bench(root / name, bench)
    return {"root": root, "ds": root / "ds", "tokenizer": tok_path, **{
        name: root / name for name in ("how2r", "how2qa")
    }}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


def write_bench(folder: Path, splits: dict[str, list[dict[str, Any]]]) -> Path:
    """``all/train/val/test.jsonl`` as the builders write them."""
    folder.mkdir(parents=True, exist_ok=True)
    every = [r for rows in splits.values() for r in rows]
    for name, rows in (("all", every), *splits.items()):
        text = "".join(json.dumps(r) + "\n" for r in rows)
        (folder / f"{name}.jsonl").write_text(text, encoding="utf-8")
    return folder


def _cfg(toy: dict[str, Path], **kw: Any) -> FinetuneConfig:
    base = {
        "model": "tiny",
        "model_overrides": {"dropout": 0.0, "attention_dropout": 0.0},
        "tokenizer": str(toy["tokenizer"]),
        "batch_size": 8,
        "lr": 2e-3,
        "device": "cpu",
        "log_every": 10,
        "ranking": FinetuneConfig().ranking.updated(max_pred_l=10),
    }
    base.update(kw)
    return FinetuneConfig(**base)


def _scores(split: dict[str, Any]) -> dict[str, Any]:
    """A split's metrics without the prediction file paths."""
    out = {k: v for k, v in split.items() if k != "predictions"}
    if "nms" in out:
        out["nms"] = {k: v for k, v in out["nms"].items() if k != "predictions"}
    return out


# --- retrieval -----------------------------------------------------------------------------


def test_how2r_end_to_end_writes_a_scored_submission(toy, tmp_path, caplog):
    run = tmp_path / "run"
    with caplog.at_level("WARNING"):
        metrics = run_finetune("how2r", toy["how2r"], toy["ds"], run, _cfg(toy, max_steps=3))
    assert "RANDOM weights" in caplog.text
    assert metrics["init"] == "random" and metrics["train"]["steps"] == 3
    for split in ("val", "test"):
        path = run / f"predictions_{split}.json"
        submission = json.loads(path.read_text())
        assert set(submission) == {"video2idx", "VCMR", "SVMR", "VR"}
        assert len(submission["video2idx"]) == RETRIEVAL_CLIPS
        gt = read_jsonl(toy["how2r"] / f"{split}.jsonl", "gt")
        rescored = json.loads(json.dumps(evaluate_retrieval(submission, gt)))
        for task in ("VCMR", "SVMR", "VR"):
            assert metrics[split][task] == rescored[task]
        # SVMR predictions all lie in the query's own clip; spans inside the clip.
        for entry, q in zip(submission["SVMR"], gt, strict=True):
            clips = {p[0] for p in entry["predictions"]}
            assert clips == {submission["video2idx"][q["vid_name"]]}
            assert all(0 <= p[1] < p[2] <= DURATION for p in entry["predictions"])
        # HERO's span rule (min_pred_l 2; max_pred_l 10 here): moments of 3 to 10 steps
        for task in ("VCMR", "SVMR"):
            lengths = {round((p[2] - p[1]) / INTERVAL) for e in submission[task] for p in
                       e["predictions"]}  # fmt: skip
            assert lengths == set(range(3, 11)), (task, lengths)
            n = 100 if task == "VCMR" else 36  # SVMR: every allowed span of a 10-step clip
            assert all(len(e["predictions"]) == n for e in submission[task])
        # and the NMS report: the same predictions, none overlapping a better one of its clip
        nms_path = run / f"predictions_{split}_nms.json"
        nms = json.loads(nms_path.read_text())
        assert set(nms) == {"video2idx", "VCMR", "SVMR"}
        rescored = json.loads(json.dumps(evaluate_retrieval(nms, gt)))
        assert metrics[split]["nms"]["threshold"] == 0.5
        for task in ("VCMR", "SVMR"):
            assert metrics[split]["nms"][task] == rescored[task]
            for entry in nms[task]:
                preds = entry["predictions"]
                assert 0 < len(preds) < 100  # 4 clips of 10 steps: fewer than 100 survive
                for i, a in enumerate(preds):
                    for b in preds[:i]:
                        inter = max(0.0, min(a[2], b[2]) - max(a[1], b[1]))
                        union = max(a[2], b[2]) - min(a[1], b[1])
                        assert a[0] != b[0] or inter / union <= 0.5
                assert [p[3] for p in preds] == sorted((p[3] for p in preds), reverse=True)
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["val"]["VR"] == metrics["val"]["VR"]
    assert (run / "model.pt").is_file() and (run / "train_log.jsonl").read_text().strip()


def test_no_nms_report_when_switched_off(toy, tmp_path):
    ranking = FinetuneConfig().ranking.updated(max_pred_l=10, nms_threshold=None)
    cfg = _cfg(toy, max_steps=0, ranking=ranking)
    metrics = run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "run", cfg)
    assert "nms" not in metrics["val"] and not list((tmp_path / "run").glob("*_nms.json"))


def test_how2r_is_deterministic_on_cpu(toy, tmp_path):
    a = run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "a", _cfg(toy, max_steps=4))
    b = run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "b", _cfg(toy, max_steps=4))
    assert a["train"]["last_loss"] == b["train"]["last_loss"]
    pa = (tmp_path / "a" / "predictions_val.json").read_text()
    assert pa == (tmp_path / "b" / "predictions_val.json").read_text()
    c = run_finetune(
        "how2r", toy["how2r"], toy["ds"], tmp_path / "c", _cfg(toy, max_steps=4, seed=1)
    )
    assert c["train"]["last_loss"] != a["train"]["last_loss"]


def test_how2r_learns_the_toy_task(toy, tmp_path):
    before = run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "a", _cfg(toy, max_steps=0))
    cfg = _cfg(toy, epochs=100, max_steps=40, lr=1e-2)
    after = run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "b", cfg)
    r1 = [(m["val"]["VR"]["r1"] + m["test"]["VR"]["r1"]) / 2 for m in (before, after)]
    assert r1[1] >= r1[0] + 40, r1
    assert after["train"]["mean_last_loss"] < after["train"]["first_loss"]


# --- QA ------------------------------------------------------------------------------------


def test_how2qa_end_to_end_and_learns(toy, tmp_path):
    before = run_finetune(
        "how2qa", toy["how2qa"], toy["ds"], tmp_path / "a", _cfg(toy, max_steps=0)
    )
    cfg = _cfg(toy, epochs=100, max_steps=60, lr=5e-3)
    after = run_finetune("how2qa", toy["how2qa"], toy["ds"], tmp_path / "b", cfg)
    for split in ("val", "test"):
        predictions = json.loads((tmp_path / "b" / f"predictions_{split}.json").read_text())
        gt = read_jsonl(toy["how2qa"] / f"{split}.jsonl", "gt")
        assert evaluate_qa(predictions, {split: gt})["accuracy"] == after[split]["accuracy"]
    acc = [(m["val"]["correct"] + m["test"]["correct"]) / 16 for m in (before, after)]
    assert acc[1] >= 0.75 and acc[1] >= acc[0] + 0.25, acc


def test_qa_scores_do_not_depend_on_padding(toy):
    ds = HeroDataset.open(toy["ds"])
    tokenizer = CueTokenizer.from_path(toy["tokenizer"])
    config = build_config("tiny", vocab_size=tokenizer.vocab_size)
    bench, records = load_bench("how2qa", toy["how2qa"], ds, tokenizer, config)
    a, b = bench.examples["val"][:2]
    # b: a shorter clip (its first 10 steps), longer answer texts, an extra candidate.
    short = records[b.clip_id]
    records = dict(records)
    records["short.0"] = replace(
        short,
        clip=replace(short.clip, video_id="short", end=short.clip.start + 15.0),
        features={
            "resnet": short.features["resnet"][:10],
            "slowfast": short.features["slowfast"][:10],
        },
        sub2frames=((0, 1, 2), (8, 9)),
        unique_sub2frames=((0, 1, 2), (8, 9)),
        unmatched_frames=(3, 4, 5, 6, 7),
    )
    longer = (*((*c, 7, 8, 9, 10, 11) for c in b.candidates), b.candidates[0])
    b = replace(b, clip_id="short.0", candidates=longer, span=(0, 9))
    torch.manual_seed(0)
    model = HeroForVideoQA(config).eval()
    with torch.no_grad():
        alone_a = model.logits(qa_batch([a], records, config))
        alone_b = model.logits(qa_batch([b], records, config))
        both = model.logits(qa_batch([a, b], records, config))
        swapped = model.logits(qa_batch([b, a], records, config))
    torch.testing.assert_close(both[0][0, :4], alone_a[0][0, :4], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(both[0][1], alone_b[0][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(swapped[0][1, :4], alone_a[0][0], rtol=1e-4, atol=1e-5)
    assert (both[0][0, 4] < -1e3).item()  # a has 4 answers: the 5th slot is padding
    for k in (1, 2):  # start / end logits on a's real steps
        torch.testing.assert_close(both[k][0], alone_a[k][0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(both[k][1, :10], alone_b[k][0], rtol=1e-4, atol=1e-5)
    # and the scores do depend on the video: another clip changes them
    other = replace(a, clip_id=bench.examples["val"][2].clip_id)
    with torch.no_grad():
        moved = model.logits(qa_batch([other], records, config))
    assert not torch.allclose(moved[0], alone_a[0])


# --- errors --------------------------------------------------------------------------------


def test_missing_clips_are_named_or_skipped(toy, tmp_path):
    rows = {s: read_jsonl(toy["how2r"] / f"{s}.jsonl", "gt") for s in ("train", "val", "test")}
    ghost = {**rows["val"][0], "desc_id": 9999, "vid_name": "ghost.3"}
    partly = write_bench(tmp_path / "partly", {**rows, "val": [*rows["val"], ghost]})
    metrics = run_finetune("how2r", partly, toy["ds"], tmp_path / "r1", _cfg(toy, max_steps=1))
    assert metrics["skipped"] == {"train": 0, "val": 1, "test": 0}
    assert metrics["missing_clips"] == ["ghost.3"]
    assert metrics["val"]["VR"]  # scored on the queries whose clip is there
    no_val = write_bench(
        tmp_path / "no_val", {**rows, "val": [{**r, "vid_name": "ghost.3"} for r in rows["val"]]}
    )
    metrics = run_finetune("how2r", no_val, toy["ds"], tmp_path / "r3", _cfg(toy, max_steps=0))
    assert "val" not in metrics and metrics["test"]["VR"] and metrics["skipped"]["val"] == 4
    none = write_bench(
        tmp_path / "none",
        {s: [{**r, "vid_name": f"nope{i}.0"} for i, r in enumerate(v)] for s, v in rows.items()},
    )
    with pytest.raises(FinetuneError, match=r"none of the benchmark's clips.*nope0\.0"):
        run_finetune("how2r", none, toy["ds"], tmp_path / "r2", _cfg(toy, max_steps=1))


def test_tokenizer_errors(toy, tmp_path, record_factory):
    with pytest.raises(FinetuneError, match="give it with --tokenizer"):
        run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "a", _cfg(toy, tokenizer=None))
    other = train_byte_level_bpe(["something else entirely"] * 5, tmp_path / "o.json", 280)
    with pytest.raises(FinetuneError, match=r"o\.json: not the tokenizer the dataset"):
        run_finetune(
            "how2r", toy["how2r"], toy["ds"], tmp_path / "b", _cfg(toy, tokenizer=str(other))
        )
    bare = tmp_path / "bare"
    with DatasetWriter(bare, {"frame_interval": 1.5, "clip_length": 60.0}) as writer:
        writer.write(record_factory("tr00", 0, DURATION))
    with pytest.raises(FinetuneError, match=r"bare: the dataset has no token ids"):
        run_finetune("how2r", toy["how2r"], bare, tmp_path / "c", _cfg(toy))


def _fake_checkpoint(folder: Path, config) -> Path:
    """A checkpoint folder laid out as ``hero train`` writes one (model.pt + meta.json)."""
    folder.mkdir(parents=True)
    torch.manual_seed(3)
    torch.save(HeroForPretraining(config).state_dict(), folder / "model.pt")
    meta = {"step": 1, "model_config": config.to_dict(), "train_config": {}, "datasets": []}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def test_checkpoint_is_loaded_and_another_config_refused(toy, tmp_path):
    vocab = CueTokenizer.from_path(toy["tokenizer"]).vocab_size
    tiny = build_config("tiny", vocab_size=vocab)
    run_dir = tmp_path / "pre"
    ckpt = _fake_checkpoint(run_dir / "checkpoints" / "step-00000001", tiny)
    cfg = _cfg(toy, model=None, model_overrides={}, checkpoint=str(run_dir), max_steps=0)
    a = run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "a", cfg)
    assert a["init"] == str(ckpt / "model.pt")
    b = run_finetune(
        "how2r", toy["how2r"], toy["ds"], tmp_path / "b", cfg.updated(checkpoint=str(ckpt))
    )
    assert _scores(a["val"]) == _scores(b["val"])
    with pytest.raises(FinetuneError, match=r"another model config than 'base'.*hidden"):
        run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "c", cfg.updated(model="base"))
    wrong = tmp_path / "wrong"
    _fake_checkpoint(wrong, build_config("tiny", vocab_size=vocab, hidden=48, heads=2))
    meta = json.loads((wrong / "meta.json").read_text())
    meta["model_config"] = tiny.to_dict()  # says tiny, holds a wider model
    (wrong / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(FinetuneError, match=r"does not fit the model: shapes differ"):
        run_finetune(
            "how2r", toy["how2r"], toy["ds"], tmp_path / "d", cfg.updated(checkpoint=str(wrong))
        )
    with pytest.raises(FinetuneError, match="no such checkpoint"):
        run_finetune(
            "how2r", toy["how2r"], toy["ds"], tmp_path / "e",
            cfg.updated(checkpoint=str(tmp_path / "absent")),
        )  # fmt: skip


def test_bad_inputs_are_refused(toy, tmp_path):
    with pytest.raises(FinetuneError, match="unknown finetuning task"):
        run_finetune("tvqa", toy["how2qa"], toy["ds"], tmp_path / "a", _cfg(toy))
    with pytest.raises(FinetuneError, match=r"nothing\.jsonl|no such benchmark folder"):
        run_finetune("how2r", tmp_path / "nothing", toy["ds"], tmp_path / "b", _cfg(toy))
    with pytest.raises(FinetuneError, match=r"record 1 lacks desc_id"):
        run_finetune("how2r", toy["how2qa"], toy["ds"], tmp_path / "c", _cfg(toy, max_steps=0))
    with pytest.raises(FinetuneError, match="batch_size must be at least 1, got 0"):
        _cfg(toy, batch_size=0)
    run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "d", _cfg(toy, max_steps=0))
    with pytest.raises(FileExistsError, match=r"metrics\.json: exists"):
        run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "d", _cfg(toy, max_steps=0))


def test_bf16_on_a_gpu_without_it_is_refused_before_anything_runs(toy, tmp_path, monkeypatch):
    """As in pretraining (hero_model.runtime.autocast_dtype): checked when the run starts,
    not left to torch's autocast at the first batch. No GPU is needed: nothing reaches it."""
    from build_benchmarks.finetune import recipe
    from hero_data.errors import OptionError

    monkeypatch.setattr(recipe, "resolve_device", lambda name: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    with pytest.raises(OptionError, match=r"bf16 asked for, but cuda:0 does not support bfloat16"):
        run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "a", _cfg(toy, precision="bf16"))
    assert not (tmp_path / "a").exists()


# --- command line and a real `hero train` checkpoint ----------------------------------------


def test_cli_prints_the_scores_and_names_errors(toy, tmp_path):
    from click.testing import CliRunner

    from pipelines.cli.finetune import finetune

    common = ["--bench", str(toy["how2qa"]), "--data", str(toy["ds"]), "--config", "tiny"]
    common += ["--max-steps", "2", "--batch-size", "4", "--device", "cpu"]
    run = tmp_path / "run"
    args = ["how2qa", *common, "--tokenizer", str(toy["tokenizer"]), "--output", str(run)]
    result = CliRunner().invoke(finetune, args)
    assert result.exit_code == 0, result.output
    assert "RANDOM weights" in result.output
    assert "val: accuracy" in result.output and "test: accuracy" in result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"({metrics['val']['correct']}/8)" in result.output
    result = CliRunner().invoke(finetune, ["how2qa", *common, "--output", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert "give it with --tokenizer" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(finetune, args)  # the run folder is taken
    assert result.exit_code == 1 and "--overwrite" in result.output


def test_a_hero_train_checkpoint_is_accepted(toy, tmp_path):
    from hero_model.train import load_train_config, run_training

    vocab = CueTokenizer.from_path(toy["tokenizer"]).vocab_size
    train_cfg = load_train_config(
        "tiny",
        {
            "data": (str(toy["ds"]),),
            "max_steps": 2,
            "warmup_steps": 1,
            "checkpoint_every": 2,
            "loader_workers": 0,
            "batch_size": 4,
            "model_overrides": {"vocab_size": vocab},
        },
    )
    run_training(train_cfg, tmp_path / "pre", progress=False)
    cfg = _cfg(toy, model=None, model_overrides={}, checkpoint=str(tmp_path / "pre"))
    metrics = run_finetune("how2qa", toy["how2qa"], toy["ds"], tmp_path / "ft", cfg.updated(
        max_steps=2
    ))  # fmt: skip
    assert metrics["init"].endswith("step-00000002/model.pt")
    assert metrics["val"]["total"] == 8


# --- HERO's finetuning recipe ----------------------------------------------------------------


def test_span_labels_are_heros(toy):
    # HERO's get_st_ed_label: st = min(floor(s/L), n-1); ed = min(max(ceil(e/L)-1, st+1), n-1)
    def hero(s: float, e: float, n: int) -> tuple[int, int]:
        st = min(int(np.floor(s / INTERVAL)), n - 1)
        return st, min(max(int(np.ceil(e / INTERVAL)) - 1, st + 1), n - 1)

    table = {
        (3.2, 7.6): (2, 5),  # HERO's docstring example
        (3.0, 4.0): (2, 3),  # inside one step: the end goes one step on
        (3.0, 4.5): (2, 3),  # ends on a boundary
        (6.0, 6.0): (4, 5),  # a point
        (14.0, 15.0): (9, 9),  # starts in the last step: nowhere to go
    }
    for (s, e), want in table.items():
        assert moment_steps(s, e, INTERVAL, 10) == want == hero(s, e, 10), (s, e)
    rng = np.random.default_rng(5)
    for _ in range(2000):
        s, e = sorted(rng.integers(0, 1500, 2) / 100)
        n = int(rng.integers(1, 12))
        assert moment_steps(s, e, INTERVAL, n) == hero(s, e, n), (s, e, n)


def test_how2r_trains_the_span_loss_in_a_fifth_of_the_batches(toy, tmp_path):
    # HERO's drop_svmr_prob 0.8 (our model config's vsm_local_drop_prob); hard negatives from
    # update 2000, as HERO's TVR finetuning config
    cfg = _cfg(toy, max_steps=30, epochs=100, log_every=1)
    run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "a", cfg)
    log = [
        json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()
    ]
    trained = sum(entry["local"] > 0 for entry in log)
    assert len(log) == 30 and 2 <= trained <= 12, trained
    saved = json.loads((tmp_path / "a" / "finetune.json").read_text())["model_config"]
    assert saved["hard_negative_start_step"] == 2000
    overrides = {**cfg.model_overrides, "vsm_local_drop_prob": 0.0}
    cfg = cfg.updated(model_overrides=overrides, hard_negative_start_step=None)
    run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "b", cfg)
    log = [
        json.loads(line) for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()
    ]
    assert all(entry["local"] > 0 for entry in log)
    saved = json.loads((tmp_path / "b" / "finetune.json").read_text())["model_config"]
    assert saved["hard_negative_start_step"] == build_config("tiny").hard_negative_start_step


def test_a_clips_scores_do_not_depend_on_its_batch(toy):
    """Padded steps of a batch hold encoder output; the start/end convolutions reach two
    steps past a clip's end, so without zeroing the padding a clip's last steps would score
    differently next to a longer clip."""
    ds = HeroDataset.open(toy["ds"])
    tokenizer = CueTokenizer.from_path(toy["tokenizer"])
    config = build_config("tiny", vocab_size=tokenizer.vocab_size, dropout=0.0)
    bench, records = load_bench("how2r", toy["how2r"], ds, tokenizer, config)
    query = bench.examples["val"][0]
    clip = records[query.clip_id]  # 10 steps
    longer = ds[bench.examples["test"][1].clip_id]
    longer = replace(
        longer,
        clip=replace(longer.clip, end=longer.clip.start + 24.0),
        features={
            "resnet": np.concatenate([longer.features["resnet"], longer.features["resnet"][:6]]),
            "slowfast": np.concatenate(
                [longer.features["slowfast"], longer.features["slowfast"][:6]]
            ),
        },
    )  # 16 steps
    torch.manual_seed(0)
    model = HeroForPretraining(config).eval()
    cfg = _cfg(toy, eval_batch=2)
    ids = torch.tensor([query.ids])
    vec = model.encode_queries(ids, torch.tensor([len(query.ids)]))
    with torch.no_grad():
        alone = corpus_scores(model, vec, *encode_clips(model, [clip], config, cfg))
        steps, mask = encode_clips(model, [clip, longer], config, cfg)
        assert steps[0, 10:].abs().sum() > 0  # the batch's padding holds something
        together = corpus_scores(model, vec, steps, mask)
    for a, b in zip(alone, together, strict=True):
        torch.testing.assert_close(b[:, 0, : a.shape[-1]] if b.ndim == 3 else b[:, 0], a[:, 0])


def test_optimizer_is_heros(toy):
    tokenizer = CueTokenizer.from_path(toy["tokenizer"])
    config = build_config("tiny", vocab_size=tokenizer.vocab_size)
    qa = HeroForVideoQA(config)
    heads = set(task_heads(qa))
    assert heads and all(n.split(".")[0] in {"qa_pool", "qa_head", "span_pool", "span_head"}
                         for n in heads)  # fmt: skip
    torch.testing.assert_close(qa.span_pool.weight, qa.qa_pool.weight)  # HERO's deepcopy
    assert task_heads(HeroForPretraining(config)) == []  # how2r adds no head
    cfg = _cfg(toy, lr=1e-3, weight_decay=0.0)
    optimizer = make_optimizer(qa, cfg, torch.device("cpu"))
    assert {g["betas"] for g in optimizer.param_groups} == {(0.9, 0.98)}
    assert {g["eps"] for g in optimizer.param_groups} == {1e-6}
    # one AdamW step on a gradient of ones moves every weight by its group's lr
    before = {n: p.detach().clone() for n, p in qa.named_parameters()}
    for p in qa.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    for name, p in qa.named_parameters():
        moved = (before[name] - p.detach()).abs().max().item()
        assert moved == pytest.approx(1e-2 if name in heads else 1e-3, rel=1e-3), name


# --- a released HERO checkpoint --------------------------------------------------------------


def _hero_release(path: Path, config, seed: int = 4) -> dict[str, torch.Tensor]:
    """A checkpoint in the reference code's layout (HERO's HeroForPretraining names, fp16 as
    apex O2 saved it), with seeded random values, saved to ``path``."""
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=g).half() for k, s in reference_shapes(config).items()}
    words = "v_encoder.f_encoder.embeddings.word_embeddings.weight"
    state["v_encoder.f_encoder.lm_head.decoder.weight"] = state[words]  # tied, as saved
    # names HERO's own scripts look for
    assert "v_encoder.f_encoder.img_embeddings.position_embeddings.weight" in state
    assert {"video_st_predictor.weight", "q_feat_attn.modular_vector_mapping.weight"} <= set(state)
    torch.save(state, path)
    return state


def test_a_released_hero_checkpoint_is_accepted(toy, tmp_path):
    vocab = CueTokenizer.from_path(toy["tokenizer"]).vocab_size
    release = build_config("tiny", vocab_size=vocab, max_clip_steps=40)  # 40 frame positions
    path = tmp_path / "hero-tv-ht100.pt"
    state = _hero_release(path, release)
    overrides = {"vocab_size": vocab, "dropout": 0.0, "attention_dropout": 0.0}
    cfg = _cfg(toy, checkpoint=str(path), model_overrides=overrides, max_steps=0)
    metrics = run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "r", cfg)
    assert metrics["init"] == str(path) and metrics["init_layout"] == "hero"
    loaded = torch.load(tmp_path / "r" / "model.pt", weights_only=True)
    torch.testing.assert_close(
        loaded["vsm_start.weight"], state["video_st_predictor.weight"].float()
    )
    q = "q_feat_attn.query_self_attention.self.query.weight"
    torch.testing.assert_close(loaded["query_encoder.attention.query.weight"], state[q].float())
    model_config = json.loads((tmp_path / "r" / "finetune.json").read_text())["model_config"]
    assert model_config["max_clip_steps"] == 40  # from the checkpoint, as HERO's scripts take it
    qa = run_finetune("how2qa", toy["how2qa"], toy["ds"], tmp_path / "q", cfg.updated(max_steps=1))
    assert qa["train"]["steps"] == 1 and qa["val"]["total"] == 8


def test_bad_hero_checkpoints_are_refused(toy, tmp_path):
    vocab = CueTokenizer.from_path(toy["tokenizer"]).vocab_size
    overrides = {"vocab_size": vocab}
    cfg = _cfg(toy, model_overrides=overrides, max_steps=0)
    foreign = tmp_path / "foreign.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, foreign)
    with pytest.raises(FinetuneError, match=r"foreign\.pt: neither a `hero train` checkpoint.*"
                       r"nor a HERO checkpoint"):  # fmt: skip
        run_finetune(
            "how2r", toy["how2r"], toy["ds"], tmp_path / "a", cfg.updated(checkpoint=str(foreign))
        )
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(FinetuneError, match=r"junk\.pt: not a readable checkpoint"):
        run_finetune(
            "how2r", toy["how2r"], toy["ds"], tmp_path / "b", cfg.updated(checkpoint=str(junk))
        )
    wide = tmp_path / "wide.pt"
    _hero_release(wide, build_config("tiny", vocab_size=vocab, hidden=48, heads=2))
    with pytest.raises(
        FinetuneError, match=r"wide\.pt: cannot load as a HERO checkpoint.*--config"
    ):
        run_finetune(
            "how2r", toy["how2r"], toy["ds"], tmp_path / "c", cfg.updated(checkpoint=str(wide))
        )


def test_cli_takes_a_hero_checkpoint_and_reports_nms(toy, tmp_path):
    from click.testing import CliRunner

    from pipelines.cli.finetune import finetune

    vocab = CueTokenizer.from_path(toy["tokenizer"]).vocab_size
    path = tmp_path / "hero-tv-ht100.pt"
    _hero_release(path, build_config("tiny", vocab_size=vocab))
    model = tmp_path / "model.yaml"
    model.write_text(f"extends: tiny\nvocab_size: {vocab}\n")
    args = ["how2r", "--bench", str(toy["how2r"]), "--data", str(toy["ds"]), "--tokenizer",
            str(toy["tokenizer"]), "--checkpoint", str(path), "--config", str(model),
            "--max-steps", "1", "--batch-size", "4", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(finetune, [*args, "--output", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert f"(init: {path})" in result.output and "RANDOM" not in result.output
    assert "val VCMR, no NMS: 0.5-r1" in result.output
    assert "val VCMR, NMS 0.5: 0.5-r1" in result.output and "val VR: r1" in result.output
    for bad, message in (
        (["--nms-thd", "1.5"], "not an IoU in [0, 1), nor -1"),
        (["--min-pred-l", "4", "--max-pred-l", "4"], "must be greater than --min-pred-l 4"),
        (["--lr-mul", "0"], "--lr-mul"),
    ):
        result = CliRunner().invoke(finetune, [*args, *bad, "--output", str(tmp_path / "x")])
        assert result.exit_code == 2 and message in result.output, result.output
    result = CliRunner().invoke(
        finetune, [*args, "--nms-thd", "-1", "--max-steps", "0", "--output", str(tmp_path / "n")]
    )
    assert result.exit_code == 0 and "NMS" not in result.output, result.output


def test_the_progress_line_shows_steps_loss_examples_per_s_and_eta(toy, tmp_path, caplog):
    import logging

    from hero_data.progress import Progress

    caplog.set_level(logging.INFO, logger="hero.progress")
    with pytest.MonkeyPatch.context() as mp:  # off a terminal, a line at every update
        mp.setattr(
            "build_benchmarks.finetune.recipe.Progress",
            lambda: Progress(0.0, force_terminal=False),
        )
        run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "run", _cfg(toy, max_steps=3))
    lines = [r.getMessage() for r in caplog.records if r.name == "hero.progress"]
    logged = [
        json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    ]
    step3 = [x for x in lines if ": 3/3 steps" in x]
    assert step3 and f"finetune how2r loss {logged[-1]['loss']:.3f} · " in step3[0]
    assert "examples/s: 3/3 steps · " in step3[0] and "ETA 0:00:00" in step3[0]
    assert lines[-1].startswith("finetune how2r loss ") and ": 3 steps done in " in lines[-1]


# --- a feature set other than HERO's ----------------------------------------------------------

CLIP_SLOWFAST = FeatureSet.of(("clip_vit_b32", 512), ("slowfast", 2304))


@pytest.fixture(scope="module")
def clip_toy(toy, tmp_path_factory) -> Path:
    """The toy's clips as a ``clip_vit_b32 ‖ slowfast`` dataset: the first 512 ResNet numbers
    stand in for CLIP's (the thing's block, numbers 0-255, lies in them)."""
    ds = HeroDataset.open(toy["ds"])
    root = tmp_path_factory.mktemp("clip_toy") / "ds"
    with DatasetWriter(root, ds.manifest.config, features=CLIP_SLOWFAST) as writer:
        for r in ds:
            feats = {
                "clip_vit_b32": r.features["resnet"][:, :512],
                "slowfast": r.features["slowfast"],
            }
            writer.write(replace(r, features=feats))
    return root


def test_finetunes_on_another_feature_set(toy, clip_toy, tmp_path):
    cfg = _cfg(toy, max_steps=2)
    assert build_config("tiny").feature_dim == 4352  # the data's set replaces it
    metrics = run_finetune("how2qa", toy["how2qa"], clip_toy, tmp_path / "run", cfg)
    assert metrics["train"]["steps"] == 2 and metrics["val"]["total"] == 8
    saved = json.loads((tmp_path / "run" / "finetune.json").read_text())
    assert saved["model_config"]["feature_dim"] == 2816
    model = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert model["encoder.frame_embed.proj.weight"].shape == (32, 2816)


def test_a_checkpoint_of_another_feature_set_is_refused(toy, clip_toy, tmp_path):
    vocab = CueTokenizer.from_path(toy["tokenizer"]).vocab_size
    ckpt = _fake_checkpoint(tmp_path / "ckpt", build_config("tiny", vocab_size=vocab))
    cfg = _cfg(toy, model=None, model_overrides={}, checkpoint=str(ckpt), max_steps=0)
    # Written before sets were named (no "features" in meta.json): trained on HERO's.
    with pytest.raises(FinetuneError, match=r"trained on features resnet\(2048\)\+slowfast"):
        run_finetune("how2r", toy["how2r"], clip_toy, tmp_path / "a", cfg)
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["features"] = CLIP_SLOWFAST.to_json()
    (ckpt / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(FinetuneError, match=rf"clip_vit_b32\(512\).*{toy['ds']} has resnet"):
        run_finetune("how2r", toy["how2r"], toy["ds"], tmp_path / "b", cfg)
    release = tmp_path / "hero-tv-ht100.pt"
    _hero_release(release, build_config("tiny", vocab_size=vocab))
    with pytest.raises(FinetuneError, match=r"hero-tv-ht100\.pt: trained on features resnet"):
        run_finetune(
            "how2r", toy["how2r"], clip_toy, tmp_path / "c", cfg.updated(checkpoint=str(release))
        )
