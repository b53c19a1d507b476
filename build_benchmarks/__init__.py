"""Benchmarks on HERO datasets: How2R / How2QA / subtitle-query builders and their scorers.

- :mod:`~build_benchmarks.how2r`, :mod:`~build_benchmarks.how2qa`: the released CSV annotations
  -> TVR-style query / TVQA-style question records on our 60 s clips ``v.k``, every input
  record written or rejected with a reason (:mod:`~build_benchmarks.annotations`).
- :mod:`~build_benchmarks.adversarial`: adversarial matching of wrong answers (Zellers et al.)
  with a pluggable text scorer (TF-IDF by default, no download).
- :mod:`~build_benchmarks.subtitle_queries`: a retrieval set from a dataset's own cues.
- :mod:`~build_benchmarks.splits`, :mod:`~build_benchmarks.outputs`: 80/10/10 splits by video,
  atomic ``all/train/val/test.jsonl`` + ``report.json``.
- :mod:`~build_benchmarks.evaluate`: the official TVR metrics (VCMR, SVMR, VR) and QA
  accuracy; :mod:`~build_benchmarks.vcmr`: model scores -> ranked submission predictions.

See docs/benchmarks.md. Imports hero_data, align and hero_model only.
"""
