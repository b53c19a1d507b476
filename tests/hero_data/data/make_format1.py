"""Makes tests/hero_data/data/format1: a dataset written by the toolkit's format-1 writer.

Run it with the toolkit at commit c643da4 (the last to write format 1) on PYTHONPATH:

    git archive c643da4 hero_data | tar -x -C /tmp/format1-code
    PYTHONPATH=/tmp/format1-code:tests python tests/hero_data/data/make_format1.py OUT

Three videos of short clips in two shards, and one failed input in errors.jsonl.
"""

import sys

from conftest import make_record

from hero_data.writer import DatasetWriter, ErrorLog

CONFIG = {"frame_interval": 1.5, "clip_length": 3.0, "made_by": "format-1 writer"}

with DatasetWriter(sys.argv[1], CONFIG, max_rows_per_shard=3) as w:
    for v in range(3):
        w.write_video(
            [
                make_record(f"old{v}", 0, 3.0, seed=10 * v, n_cues=2),
                make_record(f"old{v}", 1, 1.2 + v, seed=10 * v + 1, n_cues=v),
            ]
        )
ErrorLog(sys.argv[1]).record(
    video_id="broken",
    source="/videos/broken.mp4",
    stage="probe",
    error_type="ValueError",
    message="/videos/broken.mp4: not a video",
)
