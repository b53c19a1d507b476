"""Finetuning HERO on How2R (moment retrieval) and How2QA (video QA), and scoring the result.

- :mod:`~build_benchmarks.finetune.data`: a built benchmark (``train/val/test.jsonl``) checked
  against a dataset and its tokenizer; query and question-answer token ids; padded batches.
- :mod:`~build_benchmarks.finetune.heads`: :class:`HeroForVideoQA` (the QA head) and the
  retrieval scores of the VSM head over a clip corpus.
- :mod:`~build_benchmarks.finetune.config`: :class:`FinetuneConfig` (no torch).
- :mod:`~build_benchmarks.finetune.recipe`: :func:`run_finetune` (setup, train, evaluate with
  :mod:`build_benchmarks.evaluate`, write the run folder).

See docs/finetune.md. ``torch`` is imported by the submodules that need it, when they are
first used, so that the config module imports without it.
"""

from typing import Any

from build_benchmarks.finetune.config import (
    FinetuneConfig,
    FinetuneConfigError,
    FinetuneError,
    load_finetune_config,
)

__all__ = [
    "TASKS",
    "FinetuneConfig",
    "FinetuneConfigError",
    "FinetuneError",
    "load_finetune_config",
    "run_finetune",
]


def __getattr__(name: str) -> Any:
    if name in ("TASKS", "run_finetune"):
        from build_benchmarks.finetune import recipe

        return getattr(recipe, name)
    raise AttributeError(name)
