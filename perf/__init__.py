"""Performance scripts: one per measured claim, each printing its figures and ending with one
JSON line; BENCHMARKS.md records them with the command, the machine and the date.

Run each as a module from the repository root, with the synced environment's Python::

    .venv/bin/python -m perf.decode --help

Running them as modules keeps the repository root first on ``sys.path``, so the toolkit's
packages are imported from this checkout. No file here is named after one of those packages
(``extract``, ``pipelines``, ...), which it would shadow for whoever imports from this folder;
tests/perf/test_scripts.py checks both, and that no script edits ``sys.path``. The folder is
``perf``, not ``benchmarks``, so that it is not confused with ``build_benchmarks`` (the
How2R/How2QA builders). It is not part of the installed distribution.
"""
