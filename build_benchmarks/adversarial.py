"""Adversarial matching (Zellers et al., "From Recognition to Cognition", CVPR 2019).

Wrong answers are taken from the correct answers of *other* questions: for question ``i`` an
answer ``j`` should be relevant to the question (so it cannot be ruled out by topic alone) yet
unlike ``i``'s correct answer (so it is really wrong). With ``rel`` and ``sim`` in ``[0, 1]``
the weight of giving answer ``j`` to question ``i`` is::

    W[i, j] = log(rel(q_i, q_j ⊕ a_j) + eps) + λ · log(1 − sim(a_i, a_j) + eps)

and each round solves one maximum-weight assignment (``scipy.optimize.linear_sum_assignment``)
over the whole set, so every correct answer also appears exactly once per round as a wrong
answer elsewhere: an answer's text alone says nothing about whether it is right. A candidate is
judged relevant together with the question it answers (``q_j ⊕ a_j``), which lets a text
scorer see that "green" answers a question about colours. Pairs are forbidden (given a weight
of ``-1e9``) when ``j`` is ``i``, or ``a_j``'s text (case- and space-insensitive) is already
among ``i``'s answers; later rounds forbid what earlier rounds chose.

An assignment over ``n`` questions costs ``n²`` memory and up to ``n³`` time, so sets larger
than ``chunk_size`` are split (after a seeded shuffle) into near-equal chunks, each matched
as one assignment; ``chunk_size=None`` matches the whole set at once.

The text scorer is pluggable (:class:`TextScorer`): :class:`TfidfScorer` needs no download;
:class:`SentenceTransformerScorer` uses a local sentence-embedding model when the optional
``sentence-transformers`` package is installed; :class:`EmbeddingScorer` wraps any function
that embeds texts.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from build_benchmarks.annotations import BenchmarkError
from hero_data.errors import OptionError

log = logging.getLogger(__name__)

FORBIDDEN = -1e9
"""Weight of a pair that must not be chosen."""

_WORD = re.compile(r"\w+", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Case- and whitespace-insensitive form of an answer, for "same answer" tests."""
    return " ".join(text.casefold().split())


@runtime_checkable
class TextScorer(Protocol):
    """Scores how alike texts are, in ``[0, 1]`` (1: same meaning).

    ``fit`` sees every text of the set once before scoring (a TF-IDF scorer learns its word
    weights there; an embedding model ignores it). ``similarity(a, b)`` returns a
    ``(len(a), len(b))`` float array.
    """

    def fit(self, corpus: Sequence[str]) -> None: ...

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray: ...


class TfidfScorer:
    """Cosine similarity of TF-IDF word vectors: no model, no download.

    Words are ``\\w+`` runs, case-folded. Term weight ``1 + log(tf)``, inverse document
    frequency ``log((1 + N) / (1 + df)) + 1`` over the corpus given to :meth:`fit`; words
    unseen there are ignored. Vectors are L2-normalised, so similarity is a cosine in ``[0, 1]``.
    """

    def __init__(self) -> None:
        self._vocab: dict[str, int] = {}
        self._idf = np.zeros(0)

    def fit(self, corpus: Sequence[str]) -> None:
        df: Counter[str] = Counter()
        for text in corpus:
            df.update(set(_WORD.findall(text.casefold())))
        self._vocab = {w: i for i, w in enumerate(sorted(df))}
        n = len(corpus)
        self._idf = np.array([math.log((1 + n) / (1 + df[w])) + 1 for w in sorted(df)])

    def vectors(self, texts: Sequence[str]) -> sp.csr_matrix:
        """``(len(texts), vocabulary)`` L2-normalised TF-IDF rows (all zero for no known word)."""
        rows, cols, vals = [], [], []
        for r, text in enumerate(texts):
            counts = Counter(w for w in _WORD.findall(text.casefold()) if w in self._vocab)
            for w, tf in counts.items():
                rows.append(r)
                cols.append(self._vocab[w])
                vals.append((1 + math.log(tf)) * self._idf[self._vocab[w]])
        m = sp.csr_matrix((vals, (rows, cols)), shape=(len(texts), len(self._vocab)))
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.csr_matrix(sp.diags(1.0 / norms) @ m)

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        if not self._vocab:
            self.fit([*a, *b])
        out = (self.vectors(a) @ self.vectors(b).T).toarray()
        return np.clip(out, 0.0, 1.0)


class EmbeddingScorer:
    """Cosine similarity of embeddings from ``embed(texts) -> (n, d) array``, negatives as 0."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.embed = embed

    def fit(self, corpus: Sequence[str]) -> None:
        """Nothing to learn."""

    def _unit(self, texts: Sequence[str]) -> np.ndarray:
        e = np.asarray(self.embed(list(texts)), dtype=np.float64)
        if e.ndim != 2 or e.shape[0] != len(texts):
            raise BenchmarkError(
                f"the embedding function returned shape {e.shape} for {len(texts)} texts; "
                "expected (texts, dim)"
            )
        norms = np.linalg.norm(e, axis=1, keepdims=True)
        return e / np.where(norms == 0, 1.0, norms)

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        return np.clip(self._unit(a) @ self._unit(b).T, 0.0, 1.0)


class SentenceTransformerScorer(EmbeddingScorer):
    """:class:`EmbeddingScorer` over a local sentence-transformers model folder.

    Needs the optional ``sentence-transformers`` package; nothing is downloaded (the model is
    loaded from ``model_dir``, which must exist).
    """

    def __init__(
        self, model_dir: str | os.PathLike[str], device: str | None = None, batch_size: int = 64
    ) -> None:
        path = Path(model_dir)
        if not path.is_dir():
            raise BenchmarkError(
                f"{path}: no such model folder; give a local sentence-transformers model "
                "folder, or use the TF-IDF scorer"
            )
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise BenchmarkError(
                f"{path}: scoring with a sentence-embedding model needs the optional package "
                "sentence-transformers, which is not installed; install it (pip install "
                "'hero-toolkit[embeddings]'), or use the default TF-IDF scorer"
            ) from None
        model = SentenceTransformer(str(path), device=device)

        def embed(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(model.encode(list(texts), batch_size=batch_size))

        super().__init__(embed)


@dataclass(frozen=True)
class MatchingConfig:
    """Settings of :func:`adversarial_matching`.

    Attributes:
        rounds: wrong answers to choose per question (one assignment per round).
        lam: λ, weight of dissimilarity to the correct answer against relevance.
        eps: added inside the logs (similarities of exactly 0 or 1 stay finite).
        chunk_size: most questions per assignment (``None``: the whole set at once).
        seed: shuffles the questions before chunking.
    """

    rounds: int = 1
    lam: float = 1.0
    eps: float = 1e-3
    chunk_size: int | None = 4000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise OptionError(f"adversarial matching needs at least 1 round, got {self.rounds}")
        if self.chunk_size is not None and self.chunk_size < 2:
            raise OptionError(f"chunk size must be at least 2, got {self.chunk_size}")
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise OptionError(f"lambda must be a non-negative number, got {self.lam}")
        if not (0 < self.eps < 1):
            raise OptionError(f"eps must be in (0, 1), got {self.eps}")


def _chunks(n: int, config: MatchingConfig) -> list[np.ndarray]:
    if config.chunk_size is None or n <= config.chunk_size:
        return [np.arange(n)]
    order = np.random.default_rng(config.seed).permutation(n)
    return list(np.array_split(order, math.ceil(n / config.chunk_size)))


def adversarial_matching(
    questions: Sequence[str],
    answers: Sequence[str],
    taken: Sequence[Sequence[str]],
    scorer: TextScorer,
    config: MatchingConfig = MatchingConfig(),
) -> list[list[int]]:
    """For each question, ``config.rounds`` indices of other questions whose correct answers
    become its wrong answers, in round order.

    Args:
        questions: question texts.
        answers: the correct answer of each question.
        taken: per question, the answers it already has besides its correct one (an answer
            with the same text is never chosen for it).
        scorer: the text scorer; it is fitted on all questions and answers first.
        config: rounds, λ, chunking.
    """
    n = len(questions)
    if not (len(answers) == len(taken) == n):
        raise ValueError(f"{n} questions, {len(answers)} answers, {len(taken)} answer lists")
    if n == 0:
        return []
    scorer.fit([*questions, *answers])
    text_id: dict[str, int] = {}
    answer_id = np.array([text_id.setdefault(normalize_answer(a), len(text_id)) for a in answers])
    forbidden = [
        {int(answer_id[i]), *(text_id.get(normalize_answer(t), -1) for t in taken[i])}
        for i in range(n)
    ]
    chosen: list[list[int]] = [[] for _ in range(n)]
    for idx in _chunks(n, config):
        m = len(idx)
        q = [questions[i] for i in idx]
        a = [answers[i] for i in idx]
        qa = [f"{questions[i]} {answers[i]}" for i in idx]
        rel = np.clip(scorer.similarity(q, qa), 0.0, 1.0)  # (m, m)
        sim = np.clip(scorer.similarity(a, a), 0.0, 1.0)  # (m, m)
        base = np.log(rel + config.eps) + config.lam * np.log(1.0 - sim + config.eps)
        ids = answer_id[idx]  # (m,)
        banned = np.eye(m, dtype=bool)  # (m, m): row question may not get column's answer
        for r, i in enumerate(idx):
            for t in forbidden[i]:
                banned[r] |= ids == t
        for rnd in range(config.rounds):
            weights = np.where(banned, FORBIDDEN, base)
            rows, cols = linear_sum_assignment(weights, maximize=True)
            bad = banned[rows, cols]
            if bad.any():
                r = int(rows[np.argmax(bad)])
                raise BenchmarkError(
                    f"adversarial matching round {rnd + 1}: no acceptable wrong answer left for "
                    f"question {questions[idx[r]]!r} among {m} questions (too few questions "
                    "with distinct answers; use fewer rounds or a larger chunk)"
                )
            for r, c in zip(rows, cols, strict=True):
                chosen[int(idx[r])].append(int(idx[c]))
                banned[r] |= ids == ids[c]
    log.info("adversarial matching: %d questions, %d rounds", n, config.rounds)
    return chosen
