"""perf/pipeline.py's standalone run: ``hero run``'s own pieces without Ray (the driver's lease
and plan, probe, :class:`pipelines.run.VideoProcessor`, the real datasink, the compaction)
write a dataset that reads back. It broke once without any test noticing, when the extraction
actor's signature changed under it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hero_data.manifest import load_manifest
from hero_data.reader import HeroDataset
from hero_data.writer import read_errors

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration  # both real-size models (ResNet-152, SlowFast-R50) on short videos
def test_standalone_run_writes_the_dataset(tmp_path):
    from perf.pipeline import make_corpus

    corpus, output = tmp_path / "corpus", tmp_path / "out"
    seconds = make_corpus(corpus, videos=2, min_s=1.0, max_s=1.5, seed=0)
    (corpus / "v0001.mp4").write_bytes(b"not a video")  # one failure, recorded by the sink
    child = ["--child", "standalone", "--child-cpus", "1", "--corpus", str(corpus)]
    proc = subprocess.run(
        [sys.executable, "-m", "perf.pipeline", *child, "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["mode"] == "standalone" and result["cpus"] == 1
    assert 0 < result["video_seconds"] < seconds  # v0000 only
    assert result["total_s"] == pytest.approx(sum(result["stage_s"].values()))

    ds = HeroDataset.open(output)
    assert [r.clip.video_id for r in ds] == ["v0000"]
    assert [e["video_id"] for e in read_errors(output)] == ["v0001"]
    # compacted when the standalone run released the lease, as at the end of `hero run`: the
    # manifest lists the shard, and no commit record is left
    assert [s.videos for s in load_manifest(output).shards] == [("v0000",)]
    assert not list(output.glob("_commits/*.json"))
