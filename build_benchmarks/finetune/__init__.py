"""Finetuning HERO on How2R (moment retrieval) and How2QA (video QA), and scoring the result.

- :mod:`~build_benchmarks.finetune.data`: a built benchmark (``train/val/test.jsonl``) checked
  against a dataset and its tokenizer; query and question-answer token ids; padded batches.
- :mod:`~build_benchmarks.finetune.heads`: :class:`HeroForVideoQA` (the QA head) and the
  retrieval scores of the VSM head over a clip corpus.
- :mod:`~build_benchmarks.finetune.recipe`: :class:`FinetuneConfig` and :func:`run_finetune`
  (setup, train, evaluate with :mod:`build_benchmarks.evaluate`, write the run folder).

See docs/finetune.md. ``torch`` is imported by the submodules, not by this package's parent.
"""

from build_benchmarks.finetune.data import FinetuneError
from build_benchmarks.finetune.recipe import TASKS, FinetuneConfig, run_finetune

__all__ = ["TASKS", "FinetuneConfig", "FinetuneError", "run_finetune"]
