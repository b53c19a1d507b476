"""How2QA builder: the released CSV format, clips for moments crossing a boundary, shuffling,
dataset filtering, and adversarial matching with its scorers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from build_benchmarks.adversarial import (
    EmbeddingScorer,
    MatchingConfig,
    SentenceTransformerScorer,
    TfidfScorer,
    adversarial_matching,
    normalize_answer,
)
from build_benchmarks.annotations import BenchmarkError
from build_benchmarks.clips import load_clip_index
from build_benchmarks.how2qa import AdversarialSettings, build_how2qa, choose_clip

CSV_LINES = [
    "vidA,[7.2:18.0],10,12,16,how many knives are there?,1",  # 1 plain
    "vidA,[134.15:181.52],White,Grey,Red,What colour is the sheet?,Brown",  # 2 crosses 180
    'vidB,[12.6:13.2],"his channel is called ""graphix""",b,c,"Name, please?","""whatsdev"""',  # 3
    "vidB,[60.0:60.0],Two,Three,Four,How many pots?,One",  # 4 zero length: kept, clip 1
    "vidB,[70:80],a,b,c,Où est le café ?,là-bas — 寿司",  # 5 unicode
    "vidC,[1:2],a,b,c,question",  # 6 too_few_fields
    "vidC,[1:2],a,b,c,question, with a comma,answer",  # 7 too_many_fields
    "vidC,[5:2],a,b,c,reversed?,x",  # 8 bad_moment
    "vidC,[1:2],blue,green,Blue,what colour?,blue",  # 9 ambiguous_answers
    "vidC,[1:2],a,,c,empty wrong answer?,x",  # 10 empty_text
    "",  # 11 blank_line
    "vidD,[237.68:240.84],x,y,z,last seconds?,w",  # 12 crosses 240, mostly clip 3
]


@pytest.fixture
def how2qa_csv(tmp_path: Path) -> Path:
    path = tmp_path / "how2qa.csv"
    path.write_text("\n".join(CSV_LINES) + "\n", encoding="utf-8")
    return path


def answers(row: dict) -> list[str]:
    return [row[k] for k in sorted(row) if k.startswith("a") and k[1:].isdigit()]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (7.2, 18.0, (0, 1)),
        (134.15, 181.52, (2, 2)),  # 45.85 s in clip 2, 1.52 s in clip 3
        (170.0, 190.0, (2, 2)),  # a tie goes to the earlier clip
        (175.0, 240.0, (3, 2)),  # end exactly on a boundary does not touch clip 4
        (60.0, 60.0, (1, 1)),  # a point belongs to the clip it falls in
        (50.0, 130.0, (1, 3)),
    ],
)
def test_choose_clip(start, end, expected):
    assert choose_clip(start, end) == expected


def test_build_without_dataset(how2qa_csv):
    bench = build_how2qa([how2qa_csv], seed=1)
    rep = bench.report
    assert rep.input_rows == len(CSV_LINES)
    assert rep.written + len(rep.rejections) == rep.input_rows
    rows = {r["qid"] + 1: r for r in bench.rows}
    assert sorted(rows) == [1, 2, 3, 4, 5, 12]
    assert rep.rejected == {
        "ambiguous_answers": 1,
        "bad_moment": 1,
        "blank_line": 1,
        "empty_text": 1,
        "too_few_fields": 1,
        "too_many_fields": 1,
    }
    r1 = rows[1]
    assert set(r1) == {"qid", "q", "a0", "a1", "a2", "a3", "answer_idx", "ts", "vid_name"}
    assert r1["vid_name"] == "vidA.0" and r1["ts"] == "7.2-18"
    assert r1[f"a{r1['answer_idx']}"] == "1"
    assert sorted(answers(r1)) == ["1", "10", "12", "16"]
    assert rows[2]["vid_name"] == "vidA.2" and rows[2]["ts"] == "14.15-60"
    assert rows[3]["q"] == "Name, please?"
    assert rows[3][f"a{rows[3]['answer_idx']}"] == '"whatsdev"'
    assert 'his channel is called "graphix"' in answers(rows[3])
    assert rows[4]["vid_name"] == "vidB.1" and rows[4]["ts"] == "0-0"
    assert rows[5]["q"] == "Où est le café ?"
    assert rows[12]["vid_name"] == "vidD.3" and rows[12]["ts"] == "57.68-60"
    assert rep.extra["crossing_boundary"] == 2 and rep.clipped == 2
    assert rep.extra["point_moments"] == 1


def test_shuffle_is_seeded_per_question(how2qa_csv, tmp_path):
    a = build_how2qa([how2qa_csv], seed=5).rows
    b = build_how2qa([how2qa_csv], seed=5).rows
    assert a == b
    # the same question alone (other rows removed) gets the same order
    single = tmp_path / "one.csv"
    single.write_text("\n".join(CSV_LINES[:2]) + "\n", encoding="utf-8")
    assert build_how2qa([single], seed=5).rows == a[:2]
    # over many seeds the correct answer lands in every position
    positions = {build_how2qa([single], seed=s).rows[0]["answer_idx"] for s in range(40)}
    assert positions == {0, 1, 2, 3}


def test_dataset_filtering(how2qa_csv, make_dataset):
    root = make_dataset([("vidA", 0, 60.0, None), ("vidA", 2, 60.0, None), ("vidD", 3, 50.0, None)])
    bench = build_how2qa([how2qa_csv], load_clip_index(root))
    assert [r["vid_name"] for r in bench.rows] == ["vidA.0", "vidA.2"]
    assert bench.report.rejected["missing_clip"] == 3  # vidB.0, vidB.1 (x2)
    # vidD.3 is 50 s long in the dataset: the moment [57.68, 60.84] starts after it ends
    assert bench.report.rejected["outside_clip"] == 1
    path = how2qa_csv.with_name("late.csv")
    path.write_text("vidD,[235:239],x,y,z,late?,w\nvidD,[225:239],x,y,z,q?,w\n", encoding="utf-8")
    late = build_how2qa([path], load_clip_index(root))
    assert late.report.rejected == {"outside_clip": 1}
    assert late.rows[0]["ts"] == "45-50"


QUESTIONS = [
    ("what colour is the car?", "red"),
    ("what colour is the shirt?", "blue"),
    ("what colour is the wall?", "green"),
    ("how many bowls are there?", "two"),
    ("how many cups are there?", "three"),
    ("how many people are speaking?", "four"),
    ("which tool cuts the wood?", "a saw"),
    ("which tool drives the screw?", "a screwdriver"),
]


def test_tfidf_scorer_is_a_cosine():
    scorer = TfidfScorer()
    scorer.fit(["the red car", "the blue car", "a green wall"])
    sim = scorer.similarity(
        ["the red car", "green wall", "zzz unknown"], ["the red car", "the blue car"]
    )
    assert sim.shape == (3, 2)
    assert sim[0, 0] == pytest.approx(1.0)
    assert 0 < sim[0, 1] < 1
    assert sim[1, 0] == 0 and sim[2].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("rounds", [1, 2])
def test_matching_is_a_permutation_of_relevant_wrong_answers(rounds):
    qs, ans = zip(*QUESTIONS, strict=True)
    chosen = adversarial_matching(
        qs, ans, [[]] * len(qs), TfidfScorer(), MatchingConfig(rounds=rounds)
    )
    assert all(len(c) == rounds for c in chosen)
    for r in range(rounds):
        # each answer is used exactly once per round as a wrong answer, never for itself
        assert sorted(c[r] for c in chosen) == list(range(len(qs)))
        assert all(c[r] != i for i, c in enumerate(chosen))
    assert all(len(set(c)) == rounds for c in chosen)
    # relevance: in round 1 a colour question gets another colour, a count another count
    groups = [0, 0, 0, 1, 1, 1, 2, 2]
    assert all(groups[c[0]] == groups[i] for i, c in enumerate(chosen))


def test_matching_never_picks_an_answer_the_question_has():
    qs = ["q one", "q two", "q three", "q four"]
    ans = ["Red", "red ", "blue", "green"]  # 0 and 1 have the same answer text
    taken = [["blue"], [], [], []]
    chosen = adversarial_matching(qs, ans, taken, TfidfScorer(), MatchingConfig(rounds=1))
    assert chosen[0][0] == 3 and chosen[1][0] != 0
    with pytest.raises(BenchmarkError, match="no acceptable wrong answer"):
        adversarial_matching(qs[:2], ans[:2], [[], []], TfidfScorer(), MatchingConfig(rounds=1))


def test_matching_in_chunks_is_deterministic():
    qs = [f"question {i} about topic {i % 5}" for i in range(30)]
    ans = [f"answer {i}" for i in range(30)]
    config = MatchingConfig(rounds=2, chunk_size=8, seed=3)
    first = adversarial_matching(qs, ans, [[]] * 30, TfidfScorer(), config)
    assert first == adversarial_matching(qs, ans, [[]] * 30, TfidfScorer(), config)
    assert all(j != i and len(set(c)) == 2 for i, c in enumerate(first) for j in c)


def test_embedding_scorer_plugs_in():
    rng = np.random.default_rng(0)
    table: dict[str, np.ndarray] = {}

    def embed(texts):
        return np.stack([table.setdefault(t, rng.standard_normal(16)) for t in texts])

    scorer = EmbeddingScorer(embed)
    sim = scorer.similarity(["a", "b"], ["a", "b", "c"])
    assert sim.shape == (2, 3) and sim[0, 0] == pytest.approx(1.0) and (sim >= 0).all()
    qs, ans = zip(*QUESTIONS, strict=True)
    chosen = adversarial_matching(qs, ans, [[]] * 8, scorer, MatchingConfig(rounds=1))
    assert sorted(c[0] for c in chosen) == list(range(8))
    bad = EmbeddingScorer(lambda texts: np.zeros(3))
    with pytest.raises(BenchmarkError, match="expected \\(texts, dim\\)"):
        bad.similarity(["a"], ["b"])


def test_sentence_transformer_scorer_errors(tmp_path, monkeypatch):
    with pytest.raises(BenchmarkError, match="no such model folder"):
        SentenceTransformerScorer(tmp_path / "nope")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails
    with pytest.raises(BenchmarkError, match="sentence-transformers, which is not installed"):
        SentenceTransformerScorer(tmp_path)


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_build_with_adversarial_matching(tmp_path, mode):
    path = tmp_path / "qa.csv"
    lines = [f"v{i},[1:5],w{i}a,w{i}b,w{i}c,{q},{a}" for i, (q, a) in enumerate(QUESTIONS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    bench = build_how2qa([path], seed=0, adversarial=AdversarialSettings(count=2, mode=mode))
    correct = {q: a for q, a in QUESTIONS}
    n_options = 4 if mode == "replace" else 6
    for i, row in enumerate(bench.rows):
        opts = answers(row)
        assert len(opts) == n_options
        assert opts[row["answer_idx"]] == correct[row["q"]]
        written = {f"w{i}a", f"w{i}b", f"w{i}c"}
        kept = written & set(opts)
        assert kept == ({f"w{i}a"} if mode == "replace" else written)
        matched = [o for o in opts if o not in written and o != correct[row["q"]]]
        assert len(matched) == 2 and set(matched) <= set(correct.values())
    assert bench.report.extra["adversarial"]["mode"] == mode
    with pytest.raises(ValueError, match="at most 3"):
        AdversarialSettings(count=4, mode="replace")


def test_normalize_answer():
    assert normalize_answer("  Red\tCar ") == normalize_answer("red car")
