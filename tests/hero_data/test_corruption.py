"""Byte flips in a shard of the same size: whatever the damage, opening and reading every clip
either works or raises a DatasetError naming the shard, never another exception or an abort.

The flips run with ``verify="fast"`` (no sha256), so they reach the structural checks and the
row decoding; the default mode must reject them by sha256 (checked on every 4th position).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pytest

from hero_data.writer import DatasetWriter
from tests.conftest import shard_files

REPO = Path(__file__).resolve().parents[2]

# One process for all cases (a pyarrow abort would otherwise take the test session with it);
# it prints one JSON line per case, so a crash points at the case that caused it.
_FLIPPER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from hero_data.manifest import DatasetError
    from hero_data.reader import HeroDataset

    root, shard = Path(sys.argv[2]), Path(sys.argv[3])
    original = shard.read_bytes()
    for region, pos, mask in json.loads(sys.argv[4]):
        data = bytearray(original)
        data[pos] ^= mask
        shard.write_bytes(data)
        outcomes = {}
        for verify in ("fast", "auto") if pos % 4 == 0 else ("fast",):
            try:
                ds = HeroDataset.open(root, verify=verify)
                ids = ds.clip_ids()
                for i in range(len(ds)):
                    ds[i], ds[ids[i]], ds.features(i)
                outcomes[verify] = ["ok", ""]
            except DatasetError as e:
                outcomes[verify] = ["DatasetError", str(e)]
            except Exception as e:
                outcomes[verify] = [type(e).__name__, str(e)]
        print(json.dumps(outcomes), flush=True)
    shard.write_bytes(original)
    """
)


def _buffer_kinds(t: pa.DataType) -> list[str]:
    """What each buffer of an array of type ``t`` holds, in ``Array.buffers()`` order."""
    if pa.types.is_string(t):
        return ["validity", "offsets", "strings"]
    if pa.types.is_list(t):
        return ["validity", "offsets", *_buffer_kinds(t.value_type)]
    if pa.types.is_fixed_size_list(t):
        return ["validity", *_buffer_kinds(t.value_type)]
    if pa.types.is_struct(t):
        return [
            "validity",
            *(k for i in range(t.num_fields) for k in _buffer_kinds(t.field(i).type)),
        ]
    return ["validity", "features" if pa.types.is_float16(t) else "values"]


def _regions(path: Path) -> dict[str, list[range]]:
    """Byte ranges of an Arrow IPC file by what they hold, from the addresses of the buffers
    pyarrow maps: the body buffers by kind, and the bytes around them (the magic and schema
    with the first batch's metadata, the metadata of each later batch, the footer)."""
    source = pa.memory_map(str(path))
    base = source.read_buffer(1).address
    source.seek(0)
    reader = pa.ipc.open_file(source)
    regions: dict[str, list[range]] = defaultdict(list)
    previous_end = 0
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        spans = []
        for column in batch.columns:
            for kind, buf in zip(_buffer_kinds(column.type), column.buffers(), strict=True):
                if buf is not None and buf.size:
                    start = buf.address - base
                    spans.append((start, start + buf.size, kind))
        spans.sort()
        regions["header" if i == 0 else "batch metadata"].append(range(previous_end, spans[0][0]))
        for start, end, kind in spans:
            regions[kind].append(range(start, end))
        previous_end = max(end for _, end, _ in spans)
    regions["footer"].append(range(previous_end, path.stat().st_size))
    return regions


def _cases(regions: dict[str, list[range]]) -> list[tuple[str, int, int]]:
    """(region, position, xor mask): every 5th byte around the bodies; every byte of offsets,
    with 0x01 (keeps them plausible) and 0xFF; every byte of strings (0xFF breaks UTF-8) and
    of the small values (masks alternating); three bytes of each feature buffer."""
    cases = []
    for region, ranges in regions.items():
        for r in ranges:
            if region in ("header", "batch metadata", "footer"):
                cases += [(region, p, 0xFF) for p in r[::5]]
            elif region == "features":
                cases += [(region, p, 0xFF) for p in (r[0], r[len(r) // 2], r[-1])]
            elif region == "offsets":
                cases += [(region, p, m) for p in r for m in (0x01, 0xFF)]
            elif region == "strings":
                cases += [(region, p, 0xFF) for p in r]
            elif region == "values":
                cases += [(region, p, 0x01 if p % 2 else 0xFF) for p in r]
    return cases


def test_byte_flips_give_a_dataset_error_or_nothing(tmp_path, record_factory):
    root = tmp_path / "ds"
    with DatasetWriter(root, {"k": 1}, batch_rows=2) as w:
        for i in range(3):
            w.write(record_factory(f"v{i}", 0, 3.0, seed=i, n_cues=2))
    shard = shard_files(root)[0]
    regions = _regions(shard)
    assert set(regions) >= {"header", "batch metadata", "footer", "offsets", "strings", "values"}
    assert len(regions["batch metadata"]) == 1 and regions["features"]
    cases = _cases(regions)
    proc = subprocess.run(
        [sys.executable, "-c", _FLIPPER, str(REPO), str(root), str(shard), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    if proc.returncode != 0:
        region, pos, mask = cases[len(results)]
        pytest.fail(
            f"the reader died (status {proc.returncode}) on {region} byte {pos} ^ {mask:#x}:\n"
            f"{proc.stderr[-2000:]}"
        )
    assert len(results) == len(cases)
    prefix = f"{shard}: "
    caught: Counter[str] = Counter()
    for (region, pos, mask), outcomes in zip(cases, results, strict=True):
        for verify, (outcome, message) in outcomes.items():
            case = f"{verify}, {region} byte {pos} ^ {mask:#x}: {outcome}: {message}"
            if verify == "auto":  # every flip changes the sha256
                assert outcome == "DatasetError" and message.startswith(prefix), case
                assert "sha256" in message, case
            else:
                assert outcome in ("ok", "DatasetError"), case
                if outcome == "DatasetError":
                    assert message.startswith(prefix), case
                    caught[region] += 1
    assert sum("auto" in o for o in results) > 100
    # The structural checks and the row decoding did see damage in every part of the file.
    for region in ("header", "batch metadata", "footer", "offsets", "strings", "values"):
        assert caught[region] > 0, (region, caught)
