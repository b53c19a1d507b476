"""HERO's LMDB databases from elsewhere (`hero import hero-lmdb`): values fuzzed until only
HeroCompatError, naming the database and the key, comes out; whole databases of fuzzed values
import with their bad videos failed in errors.jsonl; adversarial values (decompression bombs,
absurd shapes, huge times) within bounds."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

from hero_data.features import DEFAULT_FEATURES
from hero_data.reader import HeroDataset
from hero_data.writer import read_errors
from pipelines.interop.lmdb_codec import (
    MAX_SUB_VALUE_BYTES,
    MAX_VALUE_BYTES,
    HeroCompatError,
    decode_features,
    decode_sub_value,
    encode_features,
    encode_sub_value,
)
from pipelines.interop.lmdb_import import (
    ImportedCues,
    LmdbImportOptions,
    cues_from_sub_value,
    import_hero_lmdb,
)
from tests.fuzz_support import (
    DEEP_EXAMPLES,
    DEPTHS,
    FAST_EXAMPLES,
    MB,
    bounded,
    json_values,
    mutations,
    nested,
    run_cases,
    run_measured,
)

lmdb = pytest.importorskip("lmdb")
msgpack = pytest.importorskip("msgpack")
lz4frame = pytest.importorskip("lz4.frame")

SECONDS = 10
HEAP_MB = 64
WHERE = "db key 'v.0'"
NUM_FRAMES, DURATION, INTERVAL = 8, 11.0, 1.5


# --- values ---------------------------------------------------------------------------------------


def _npz(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, features=arr)
    return buf.getvalue()


FEATURES = (
    np.arange(3 * DEFAULT_FEATURES.dim, dtype=np.float32).reshape(3, DEFAULT_FEATURES.dim) / 7
)
FEATURE_SEEDS = [
    encode_features(FEATURES.astype(np.float16)),
    encode_features(FEATURES[:1, :8]),
    _npz(FEATURES[:2]),
]
SUB_VALUE = {
    "input_ids": [[5, 6], [7], [8, 9]],
    "sub2frames": [[0, [0, 1, 2]], [1, [2, 3]], [2, [7, 8, 9]]],
    "unique_sub2frames": [[0, [0, 1]], [1, [2, 3]], [2, [7]]],
    "unmatched_frames": [4, 5, 6],
    "sub": [
        {"text": "a", "start": 0.5, "end": 4.0},
        {"text": "b", "start": 3.5, "end": 6.0, "speaker": "Ann"},
        {"text": "c", "start": 10.5, "end": 14.0},
    ],
}
SUB_SEEDS = [encode_sub_value(SUB_VALUE), encode_sub_value({"input_ids": []})]
TOKENS = [b"\xc0", b"\xc1", b"\xdd\xff\xff\xff\xff", b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"]


def _nd_maps() -> st.SearchStrategy[dict]:
    """msgpack-numpy array maps with hostile fields: dtypes, shapes, data of the wrong size."""
    shapes = st.one_of(
        st.lists(st.integers(-2, 2**64 - 1), max_size=4),
        st.lists(st.integers(0, 3), min_size=65, max_size=80),
        json_values(4),
    )
    return st.fixed_dictionaries(
        {
            b"nd": st.one_of(st.just(True), json_values(2)),
            b"type": st.one_of(
                st.sampled_from(["<f2", "<f4", ">f8", "|O", "<i4", "V8", "(2,)f4", "f\x00"]),
                json_values(3),
            ),
            b"kind": st.sampled_from([b"", "", b"O", "V"]),
            b"shape": shapes,
            b"data": st.binary(max_size=64),
        }
    )


def _packable(obj: object) -> object:
    """``obj`` with integers msgpack cannot hold (outside -2**63 .. 2**64 - 1) made floats."""
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return obj if -(2**63) <= obj < 2**64 else float(obj)
    if isinstance(obj, list):
        return [_packable(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _packable(v) for k, v in obj.items()}
    return obj


def _pack(obj: object) -> bytes:
    """msgpack bytes of ``obj``, lone surrogates written as they are (invalid UTF-8)."""
    return msgpack.packb(_packable(obj), use_bin_type=True, unicode_errors="surrogatepass")


FEATURE_VALUES = st.one_of(
    st.binary(max_size=256),
    mutations(FEATURE_SEEDS, TOKENS),
    st.builds(lambda nd: _pack({"features": nd}), _nd_maps()),
    st.builds(_pack, json_values(12)),
)


def check_features(data: bytes, heap_mb: float = HEAP_MB) -> np.ndarray | HeroCompatError:
    """The property: a float array within the size bound, or HeroCompatError naming WHERE."""
    with bounded(SECONDS, heap_mb):
        try:
            arr = decode_features(data, WHERE)
        except HeroCompatError as e:
            assert str(e).startswith(f"{WHERE}: "), e
            return e
    assert isinstance(arr, np.ndarray) and arr.dtype.kind == "f"
    assert arr.nbytes <= MAX_VALUE_BYTES
    return arr


@DEPTHS
def test_fuzzed_feature_values_decode_or_raise(examples):
    run_cases("hero-lmdb feature value", examples, FEATURE_VALUES, check_features)


def _hostile_times() -> st.SearchStrategy[object]:
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(2**63), 2**64 - 1),
        st.sampled_from([float(t) for t in ("nan", "inf", "-inf", "1e300", "-1e300")]),
        json_values(3),
    )


def _extras() -> st.SearchStrategy[dict]:
    """Our ``hero_toolkit`` map (clip span, source), each field usual or hostile."""

    def field(usual: object) -> st.SearchStrategy[object]:
        return st.one_of(st.just(usual), _hostile_times(), st.text(max_size=8))

    return st.fixed_dictionaries(
        {
            "video_id": field("v0"),
            "clip_index": field(0),
            "clip_start": field(0.0),
            "clip_end": field(12.0),
        },
        optional={"source": field("s")},
    )


def _sub_dicts() -> st.SearchStrategy[dict]:
    """Subtitle values of HERO's shape with hostile contents."""
    steps = st.lists(st.integers(-5, 2**64 - 1), max_size=6)
    pairs = st.lists(st.tuples(st.integers(-2, 5), steps).map(list), max_size=5)
    cue = st.fixed_dictionaries(
        {"start": _hostile_times(), "end": _hostile_times()},
        optional={"text": json_values(2), "speaker": json_values(2)},
    )

    extra = _extras()
    return st.fixed_dictionaries(
        {},
        optional={
            "input_ids": st.one_of(st.lists(st.lists(st.integers(-1, 2**64 - 1)), max_size=5)),
            "sub2frames": st.one_of(pairs, json_values(4)),
            "unique_sub2frames": st.one_of(pairs, json_values(4)),
            "unmatched_frames": st.one_of(steps, json_values(3)),
            "sub": st.one_of(st.lists(cue, max_size=5), json_values(4)),
            "hero_toolkit": st.one_of(extra, json_values(3)),
        },
    )


SUB_VALUES = st.one_of(
    st.binary(max_size=256),
    mutations(SUB_SEEDS, TOKENS),
    st.builds(lambda v: lz4frame.compress(_pack(v)), _sub_dicts()),
    st.builds(lambda v: lz4frame.compress(_pack(v)), json_values(12)),
    st.builds(lambda b: lz4frame.compress(b), mutations([_pack(SUB_VALUE)], TOKENS)),
)


def check_sub_value(data: bytes, heap_mb: float = HEAP_MB) -> ImportedCues | HeroCompatError:
    """The property: cues inside the clip, each with its token ids and steps of the clip, or
    HeroCompatError naming WHERE."""
    with bounded(SECONDS, heap_mb):
        try:
            got = cues_from_sub_value(
                decode_sub_value(data, WHERE), NUM_FRAMES, DURATION, INTERVAL, WHERE
            )
        except HeroCompatError as e:
            assert str(e).startswith(f"{WHERE}: "), e
            return e
    n = len(got.cues)
    assert len(got.token_ids) == len(got.sub2frames) == len(got.unique_sub2frames) == n
    for cue, covering, unique in zip(got.cues, got.sub2frames, got.unique_sub2frames, strict=True):
        assert 0 <= cue.start <= cue.end <= DURATION
        assert math.isfinite(cue.start) and math.isfinite(cue.end)
        assert isinstance(cue.text, str)
        assert covering or unique
        assert all(0 <= s < NUM_FRAMES for s in (*covering, *unique))
    assert all(0 <= s < NUM_FRAMES for s in got.unmatched_frames)
    return got


@DEPTHS
def test_fuzzed_subtitle_values_decode_or_raise(examples):
    run_cases("hero-lmdb subtitle value", examples, SUB_VALUES, check_sub_value)


# --- whole databases ------------------------------------------------------------------------------


def _put(folder: Path, values: dict[bytes, bytes]) -> None:
    env = lmdb.open(str(folder), map_size=64 << 20)
    with env.begin(write=True) as txn:
        for key, value in values.items():
            txn.put(key, value)
    env.close()


def _database(root: Path, feats: list[bytes], subs: list[bytes], id2nframe: bytes) -> None:
    video_db = root / "video_db"
    (video_db / "resnet_slowfast_1.5").mkdir(parents=True)
    (root / "sub_db").mkdir()
    keys = [f"v{k}.{k % 2}".encode() for k in range(len(feats))]
    _put(video_db / "resnet_slowfast_1.5", dict(zip(keys, feats, strict=True)))
    _put(root / "sub_db", dict(zip(keys, subs, strict=False)))
    (video_db / "id2nframe.json").write_bytes(id2nframe)


ID2NFRAME = st.one_of(
    st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(
            st.sampled_from(["v0.0", "v1.1", "v2.0", "x"]), st.integers(-2, 2**70), max_size=3
        ),
    ),
    mutations([b'{"v0.0": 3, "v1.1": 1}'], [b"NaN", b"9" * 5000, b"[", b"{"]),
)
GOOD_FEATURES = FEATURE_SEEDS[0]
DATABASES = st.tuples(
    st.lists(st.one_of(st.just(GOOD_FEATURES), FEATURE_VALUES), min_size=1, max_size=3),
    st.lists(
        st.one_of(
            st.just(SUB_SEEDS[0]),
            SUB_VALUES,
            st.builds(lambda e: _sub({**SUB_VALUE, "hero_toolkit": e}), _extras()),
        ),
        max_size=3,
    ),
    ID2NFRAME,
)
DB_EXAMPLES = {FAST_EXAMPLES: 15, DEEP_EXAMPLES: 300}


@DEPTHS
def test_fuzzed_databases_import_with_bad_videos_failed(tmp_path, examples):
    """Every video ends in the dataset or in errors.jsonl; only a whole-database problem
    (id2nframe.json unreadable) stops the import, with HeroCompatError naming the file."""
    case = iter(range(10**9))

    def check(db: tuple[list[bytes], list[bytes], bytes]) -> None:
        root = tmp_path / str(next(case))
        _database(root, *db)
        out = root / "ds"
        with bounded(60, None):
            try:
                summary = import_hero_lmdb(root, out, LmdbImportOptions(progress=False))
            except HeroCompatError as e:
                assert str(e).startswith(str(root / "video_db" / "id2nframe.json")), e
                return
        failed = {e["video_id"] for e in read_errors(out)}
        assert failed == set(summary.failed_videos)
        ds = HeroDataset.open(out) if summary.clips else None
        imported = {c.rsplit(".", 1)[0] for c in ds.clip_ids()} if ds is not None else set()
        assert not imported & failed
        assert imported | failed == {f"v{k}" for k in range(len(db[0]))}

    run_cases("hero-lmdb database", DB_EXAMPLES[examples], DATABASES, check)


# --- adversarial values ---------------------------------------------------------------------------


def _nd(**fields: object) -> bytes:
    nd = {
        b"nd": True,
        b"type": "<f2",
        b"kind": b"",
        b"shape": [0, DEFAULT_FEATURES.dim],
        b"data": b"",
    }
    nd.update({k.encode(): v for k, v in fields.items()})
    return _pack({"features": nd})


def _npz_claiming(shape: tuple[int, ...]) -> bytes:
    """An npz whose features.npy header claims ``shape`` but holds no data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f2", "fortran_order": False, "shape": shape}
    )
    buf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("features.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:])
    return buf.getvalue()


ADVERSARIAL_FEATURES = [
    ("zero by 2**63", _nd(shape=[0, 2**63]), "bad shape"),
    ("100 dimensions", _nd(shape=[1] * 100, data=b"\x00\x00"), "bad shape"),
    ("negative shape", _nd(shape=[-1, DEFAULT_FEATURES.dim]), "bad shape"),
    ("object dtype", _nd(type="|O", kind=b"O"), "dtype kind"),
    ("int dtype", _nd(type="<i8"), "expected float16 or float32"),
    ("shape lies", _nd(shape=[10**6, DEFAULT_FEATURES.dim]), "a truncated value?"),
    ("deep msgpack", b"\x91" * 100_000 + b"\x00", "not a msgpack value"),
    ("deep map", b"\x81\xa1a" * 100_000 + b"\x00", "not a msgpack value"),
    ("huge bin length", b"\x81\xa8features\xc6\xff\xff\xff\xff", "truncated value"),
    ("npz claims 2**40 steps", _npz_claiming((2**40, DEFAULT_FEATURES.dim)), "MiB limit"),
    ("npz bomb", _npz(np.zeros((40_000, DEFAULT_FEATURES.dim), np.float16)), "MiB limit"),
    ("npz not zip", b"PK\x03\x04" + b"\x00" * 40, "not a readable npz"),
    ("10 MB of garbage", b"\xc1" * (10 * MB), "not a msgpack value"),
]


@pytest.mark.parametrize(
    ("name", "data", "message"), ADVERSARIAL_FEATURES, ids=[a[0] for a in ADVERSARIAL_FEATURES]
)
def test_adversarial_feature_values(name, data, message):
    got = check_features(data, heap_mb=64 + 3 * len(data) / MB)
    assert isinstance(got, HeroCompatError) and message in str(got), got


def _sub(value: object) -> bytes:
    return lz4frame.compress(_pack(value))


def _times(start: object, end: object) -> bytes:
    return _sub({**SUB_VALUE, "sub": [{"text": "a", "start": start, "end": end}] * 3})


ADVERSARIAL_SUBS = [
    # (name, value, expected: number of cues, or part of the message)
    ("lz4 bomb", "bomb", "MiB a subtitle value may hold"),
    ("lz4 cut", SUB_SEEDS[0][:-4], "lz4"),
    ("lz4 claims 2**62 bytes", lz4frame.compress(b"\x91\x00", store_size=True), "lz4"),
    ("end 1e300", _times(0.0, 1e300), 3),  # rebuilt from steps, not a 1e300-step range
    ("NaN times", _times(float("nan"), float("nan")), 3),
    ("negative times", _times(-5.0, -1.0), 3),
    ("huge int times", _times(2**64 - 1, 2**64 - 1), 3),
    ("duplicate cues", _sub({**SUB_VALUE, "unique_sub2frames": [[0, [0]], [0, [1]]]}), 3),
    ("cue index 2**64-1", _sub({**SUB_VALUE, "sub2frames": [[2**64 - 1, [0]]]}), "names cue"),
    ("step 2**64-1", _sub({**SUB_VALUE, "unmatched_frames": [2**64 - 1, -1]}), 3),
    ("deep ids", _sub({"input_ids": json.loads(nested(300)), "unique_sub2frames": []}), "list"),
    ("not a map", _sub([1, 2, 3]), "expected a map"),
    ("10 MB text", _sub({**SUB_VALUE, "sub": [{"text": "a" * (10 * MB)}] * 3}), 3),
]


@pytest.mark.parametrize(
    ("name", "data", "expected"), ADVERSARIAL_SUBS, ids=[a[0] for a in ADVERSARIAL_SUBS]
)
def test_adversarial_subtitle_values(name, data, expected):
    if name == "lz4 claims 2**62 bytes":  # patch the frame's content size field
        data = data[:6] + (2**62).to_bytes(8, "little") + data[14:]
    if data == "bomb":  # made here, not at collection: 1 MiB of lz4 unpacking past the bound
        data = lz4frame.compress(bytes(MAX_SUB_VALUE_BYTES + 1))
    got = check_sub_value(data, heap_mb=MAX_SUB_VALUE_BYTES / MB + 48 + 4 * len(data) / MB)
    if isinstance(expected, int):
        assert isinstance(got, ImportedCues) and len(got.cues) == expected, got
    else:
        assert isinstance(got, HeroCompatError) and expected in str(got), got


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deep"),
        ('{"v0.0": ' + "9" * 5000 + "}", "not readable JSON"),
        ('{"v0.0": NaN}', "clip id -> step count"),
        ("\xff", "not readable JSON"),
        ('{"v0.0": 1e308}', "clip id -> step count"),
        ('{"v0.0": 0}', ""),  # that clip fails: no feature steps
        ('{"v0.0": -1}', ""),
        ('{"v0.0": ' + "9" * 400 + "}", ""),  # that clip fails: more steps than it holds
        ('{"v0.0": 3, "v0.0": 1}', ""),
    ],
)
def test_adversarial_id2nframe(tmp_path, text, message):
    _database(tmp_path, [GOOD_FEATURES], [SUB_SEEDS[0]], text.encode("utf-8", "surrogateescape"))
    with bounded(SECONDS, None):
        try:
            summary = import_hero_lmdb(tmp_path, tmp_path / "ds", LmdbImportOptions(progress=False))
        except HeroCompatError as e:
            assert message and message in str(e), e
            return
    assert not message, summary
    assert summary.clips + len(summary.failed_videos) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"bos": NaN}', "cannot be kept in the manifest (Out of range float"),
        (b'{"bos": "\\ud800"}', "cannot be kept in the manifest ('utf-8' codec"),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deep"),
        (b"[0, 1]", "expected a JSON object"),
        (b'{"bos": 0, "bos": 1}', ""),
    ],
)
def test_adversarial_subtitle_meta(tmp_path, text, message):
    _database(tmp_path, [GOOD_FEATURES], [SUB_SEEDS[0]], b"{}")
    (tmp_path / "sub_db" / "meta.json").write_bytes(text)
    with bounded(SECONDS, None):
        try:
            summary = import_hero_lmdb(tmp_path, tmp_path / "ds", LmdbImportOptions(progress=False))
        except HeroCompatError as e:
            assert message and str(e).startswith(str(tmp_path / "sub_db" / "meta.json")), e
            assert message in str(e), e
            return
    assert not message and summary.clips == 1
    assert HeroDataset.open(tmp_path / "ds").manifest.config["hero_meta"] == {"bos": 1}


@pytest.mark.slow
def test_a_million_tiny_cues_within_bounds():
    """One subtitle value of a million one-token cues over a 10,000-step clip."""
    got = run_measured(
        """
        from pipelines.interop.lmdb_codec import encode_sub_value, decode_sub_value
        from pipelines.interop.lmdb_import import cues_from_sub_value
        n = 1_000_000
        value = {
            "input_ids": [[5]] * n,
            "unique_sub2frames": [[k, [k % 10_000]] for k in range(n)],
            "sub": [{"text": "a", "start": (k % 10_000) * 1.5, "end": (k % 10_000) * 1.5 + 1}
                    for k in range(n)],
        }
        data = encode_sub_value(value)
        del value
        _mark()
        got = cues_from_sub_value(decode_sub_value(data, "w"), 10_000, 15_000.0, 1.5, "w")
        result = [len(data), len(got.cues), got.times_from_sub]
        """,
        timeout=300,
    )
    size, cues, from_sub = got["result"]
    assert cues == 1_000_000 and from_sub
    print(
        f"\n1M cues, {size / MB:.1f} MiB value: {got['seconds']:.1f} s, +{got['rss_mb']:.0f} MiB"
        f" RSS over the imports and the value, {got['rss_peak_mb']:.0f} MiB peak RSS in all"
    )
    assert got["rss_mb"] < 2048
