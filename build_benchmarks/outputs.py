"""Writing a built benchmark: ``all.jsonl``, ``train/val/test.jsonl`` and ``report.json``.

Each file is written to a temporary name in the output folder, fsynced, and renamed into place
only once all of them are written, so no file is ever half-written under its final name.
``report.json`` is renamed last and, when overwriting, the old one is removed first: a folder
with a ``report.json`` holds one complete build. An existing output is refused unless
``overwrite``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from build_benchmarks.annotations import BuildReport
from build_benchmarks.splits import DEFAULT_FRACTIONS, SPLITS, split_by_video
from hero_data.manifest import fsync_dir

log = logging.getLogger(__name__)

OUTPUT_FILES = ("all.jsonl", *(f"{s}.jsonl" for s in SPLITS), "report.json")


@dataclass(frozen=True)
class Benchmark:
    """A built benchmark before it is split and written.

    Attributes:
        rows: the output records (JSON-able dicts), in input order.
        videos: the source video id of each row (what the splits go by).
        report: the build's counts and rejections.
    """

    rows: list[dict[str, Any]]
    videos: list[str]
    report: BuildReport

    def __post_init__(self) -> None:
        if len(self.rows) != len(self.videos):
            raise ValueError(f"{len(self.rows)} rows but {len(self.videos)} video ids")


def _jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _write_temp(folder: Path, name: str, text: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_benchmark(
    output: str | os.PathLike[str],
    bench: Benchmark,
    *,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    overwrite: bool = False,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Split ``bench`` by video and write it to ``output``; return the report written.

    Raises ``FileExistsError`` naming the first output file that exists, unless ``overwrite``.
    ``settings`` (JSON-able) is stored in the report as given, to record how it was built.
    """
    bench.report.check()
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder}: exists and is not a folder")
    if not overwrite:
        for name in OUTPUT_FILES:
            if (folder / name).exists():
                raise FileExistsError(
                    f"{folder / name}: exists; pass --overwrite (overwrite=True) to replace it"
                )
    folder.mkdir(parents=True, exist_ok=True)
    split_of = split_by_video(bench.videos, seed=seed, fractions=fractions)
    by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    videos_in: dict[str, set[str]] = {s: set() for s in SPLITS}
    for row, video in zip(bench.rows, bench.videos, strict=True):
        by_split[split_of[video]].append(row)
        videos_in[split_of[video]].add(video)
    report = {
        **bench.report.to_dict(),
        "settings": {"seed": seed, "fractions": list(fractions), **(settings or {})},
        "splits": {s: {"rows": len(by_split[s]), "videos": len(videos_in[s])} for s in SPLITS},
    }
    # The rejections are long; keep the summary at the top of report.json.
    report["rejections"] = report.pop("rejections")
    texts = {"all.jsonl": _jsonl(bench.rows)}
    texts.update({f"{s}.jsonl": _jsonl(by_split[s]) for s in SPLITS})
    texts["report.json"] = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    temps: dict[str, Path] = {}
    try:
        for name in OUTPUT_FILES:
            temps[name] = _write_temp(folder, name, texts[name])
        (folder / "report.json").unlink(missing_ok=True)
        for name in OUTPUT_FILES:
            os.replace(temps[name], folder / name)
            del temps[name]
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    fsync_dir(folder)
    log.info(
        "%s: %d rows written (%s), %d rejected",
        folder,
        len(bench.rows),
        ", ".join(f"{s} {len(by_split[s])}" for s in SPLITS),
        len(bench.report.rejections),
    )
    return report
