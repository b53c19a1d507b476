"""HERO's LMDB layout: dataset -> export -> import round trips, HERO's own reader, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from align.tokenizer import CueTokenizer, train_byte_level_bpe
from extract.extractor import VideoFeatures
from hero_data.features import DEFAULT_FEATURES, FeatureSet
from hero_data.reader import HeroDataset
from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord
from hero_data.types import Cue, VideoInfo
from hero_data.writer import DatasetWriter, read_errors
from pipelines.assemble import clip_records
from pipelines.cli.compat import export, import_
from pipelines.interop.lmdb_codec import (
    EXTRA_KEY,
    INSTALL_HINT,
    UNKNOWN_TEXT,
    HeroCompatError,
    decode_features,
    decode_sub_value,
    encode_features,
    encode_sub_value,
    feature_version,
    features_of_version,
)
from pipelines.interop.lmdb_export import (
    ExportOptions,
    _interval_spelling,
    _LmdbWriter,
    export_hero_lmdb,
    meta_from_tokenizer,
)
from pipelines.interop.lmdb_import import LmdbImportOptions, cues_from_sub_value, import_hero_lmdb

lmdb = pytest.importorskip("lmdb")
msgpack = pytest.importorskip("msgpack")
msgpack_numpy = pytest.importorskip("msgpack_numpy")

TEXTS = [
    "Chase : that's all this is?",
    "crack the eggs into a bowl",
    "WHISK THEM WELL",
    "now the flour & the milk",
    "heat the pan until it smokes",
    "pour a thin layer and swirl",
    "flip it when the edges curl",
]


def _video(
    video_id: str, duration: float, cues: list[Cue], tokenizer, clip_length, seed: int
) -> list[ClipRecord]:
    """A video's records made by the pipeline's own code, with seeded random features."""
    rng = np.random.default_rng(seed)
    n = int(np.ceil(round(duration / 1.5, 8)))
    features = VideoFeatures(
        {
            "resnet": rng.standard_normal((n, RESNET_DIM), dtype=np.float32).astype(np.float16),
            "slowfast": rng.standard_normal((n, SLOWFAST_DIM), dtype=np.float32).astype(np.float16),
        },
        frame_interval=1.5,
    )
    info = VideoInfo(f"/corpus/{video_id}.mp4", video_id, duration, 30, 320, 240)
    records, _ = clip_records(info, features, cues, clip_length=clip_length, tokenizer=tokenizer)
    return records


def _cues(offset: float = 0.0) -> list[Cue]:
    times = [(0.5, 4.0), (3.5, 9.2), (12.0, 18.25), (40.0, 44.0), (58.0, 63.5), (70.1, 75.0)]
    return [
        Cue(s + offset, e + offset, TEXTS[k % len(TEXTS)], "Ann" if k == 2 else None)
        for k, (s, e) in enumerate(times)
    ]


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory) -> Path:
    return train_byte_level_bpe(TEXTS * 3, tmp_path_factory.mktemp("tok") / "tokenizer.json", 300)


def _write(root: Path, records: list[ClipRecord], config: dict) -> Path:
    with DatasetWriter(root, config, max_rows_per_shard=4) as w:
        for vid in dict.fromkeys(r.clip.video_id for r in records):
            w.write_video([r for r in records if r.clip.video_id == vid])
    return root


@pytest.fixture(scope="module")
def clip_dataset(tmp_path_factory, tokenizer_path) -> Path:
    """60 s clips: a 85.3 s video (a cue across the boundary), a silent one, a short one."""
    tok = CueTokenizer.from_path(tokenizer_path)
    records = [
        *_video("cook-1", 85.3, _cues(), tok, 60.0, 1),
        *_video("silent", 20.0, [], tok, 60.0, 2),
        *_video("short", 0.7, [Cue(0.0, 0.6, "hi there")], tok, 60.0, 3),
    ]
    config = {
        "frame_interval": 1.5,
        "clip_length": 60.0,
        "tokenizer": {"sha256": tok.sha256, "vocab_size": tok.vocab_size},
    }
    return _write(tmp_path_factory.mktemp("ds") / "clips", records, config)


def assert_same_record(a: ClipRecord, b: ClipRecord) -> None:
    assert a.clip == b.clip and a.source == b.source and a.frame_interval == b.frame_interval
    assert list(a.features) == list(b.features)
    for name, array in a.features.items():
        assert array.dtype == b.features[name].dtype == np.float16
        assert array.tobytes() == b.features[name].tobytes()  # float16 exact
    assert a.cues == b.cues
    assert a.cue_token_ids == b.cue_token_ids
    assert a.sub2frames == b.sub2frames
    assert a.unique_sub2frames == b.unique_sub2frames
    assert a.unmatched_frames == b.unmatched_frames


@pytest.fixture(scope="module")
def exported(clip_dataset, tokenizer_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "hero"
    summary = export_hero_lmdb(
        clip_dataset, out, ExportOptions(tokenizer=str(tokenizer_path), progress=False)
    )
    assert summary.clips == len(HeroDataset.open(clip_dataset)) == 4
    return out


def test_round_trip_gives_back_the_same_clips(clip_dataset, exported, tmp_path):
    summary = import_hero_lmdb(exported, tmp_path / "back", LmdbImportOptions(progress=False))
    assert summary.failed_videos == [] and summary.times_rebuilt == 0
    original, back = HeroDataset.open(clip_dataset), HeroDataset.open(tmp_path / "back")
    assert back.clip_ids() == sorted(original.clip_ids())
    for clip_id in original.clip_ids():
        assert_same_record(back[clip_id], original[clip_id])
    # the export of the import is byte-identical where it matters: values and json files
    again = export_hero_lmdb(tmp_path / "back", tmp_path / "again", ExportOptions(progress=False))
    assert again.clips == 4
    for rel in (
        "video_db/id2nframe.json",
        "sub_db/vid2len.json",
        "sub_db/vid2max_frame_sub_len.json",
    ):
        assert json.loads((exported / rel).read_text()) == json.loads(
            (tmp_path / "again" / rel).read_text()
        )


def test_layout_and_values_follow_hero(exported, clip_dataset):
    assert sorted(p.name for p in exported.iterdir()) == [
        "clip_ids.json",
        "export.json",
        "sub_db",
        "video_db",
    ]
    assert (exported / "video_db" / "resnet_slowfast_1.5" / "data.mdb").is_file()
    id2nframe = json.loads((exported / "video_db" / "id2nframe.json").read_text())
    assert id2nframe == {"cook-1.0": 40, "cook-1.1": 17, "short.0": 1, "silent.0": 14}
    meta = json.loads((exported / "sub_db" / "meta.json").read_text())
    assert {k: meta[k] for k in ("BOS", "PAD", "EOS", "SEP", "CLS", "UNK", "MASK")} == {
        "BOS": 0,
        "PAD": 1,
        "EOS": 2,
        "SEP": 2,
        "CLS": 0,
        "UNK": 3,
        "MASK": 4,
    }
    assert meta["v_range"] == [5, 300]
    env = lmdb.open(str(exported / "sub_db"), readonly=True, lock=False)
    with env.begin() as txn:
        value = decode_sub_value(txn.get(b"cook-1.1"), "sub")
    env.close()
    record = HeroDataset.open(clip_dataset)["cook-1.1"]
    assert value["duration"] == 17 and value["v_id"] == "cook-1.1"
    assert value["input_ids"] == [list(t) for t in record.cue_token_ids]
    assert value["unique_sub2frames"] == [
        [k, list(s)] for k, s in enumerate(record.unique_sub2frames)
    ]
    assert value["sub2frames"] == [[k, list(s)] for k, s in enumerate(record.sub2frames)]
    assert value["sub"][0]["start"] == 0.0  # the cue across 60 s, clip-relative and clipped
    assert value[EXTRA_KEY]["clip_start"] == 60.0 and value[EXTRA_KEY]["clip_end"] == 85.3
    expected = max(
        len(i) + len(s) for i, s in zip(record.cue_token_ids, record.sub2frames, strict=True)
    )
    assert value["max_mtached_sub_len"] == expected


HERO_READER = textwrap.dedent(
    """
    # What HERO's data/data.py does to read a clip (VideoFeatLmdb, TxtLmdb, SubTokLmdb).
    import json, sys
    import lmdb, msgpack, msgpack_numpy, numpy as np
    from lz4.frame import decompress
    msgpack_numpy.patch()
    img_dir, sub_dir, key, out = sys.argv[1:]
    name2nframe = json.load(open(f"{img_dir}/id2nframe.json"))
    env = lmdb.open(f"{img_dir}/resnet_slowfast_1.5", readonly=True, create=False,
                    max_readers=4096 * 8, readahead=False)
    txn = env.begin(buffers=True)
    feats = msgpack.loads(txn.get(key.encode("utf-8")), raw=False)["features"]
    feats = feats[:name2nframe[key]]
    sub_env = lmdb.open(sub_dir, readonly=True, create=False, max_readers=4096, readahead=False)
    sub = msgpack.loads(decompress(sub_env.begin(buffers=True).get(key.encode("utf-8"))),
                        raw=False)
    meta = json.load(open(f"{sub_dir}/meta.json"))
    lens = json.load(open(f"{sub_dir}/vid2len.json"))
    json.load(open(f"{sub_dir}/vid2max_frame_sub_len.json"))
    np.save(out, feats)
    print(json.dumps({"dtype": str(feats.dtype), "sub": sub["unique_sub2frames"],
                      "ids": sub["input_ids"], "len": lens[key], "mask": meta["MASK"],
                      "v_range": meta["v_range"], "unmatched": sub["unmatched_frames"]}))
    """
)


def test_hero_reader_decodes_our_values_exactly(exported, clip_dataset, tmp_path):
    record = HeroDataset.open(clip_dataset)["cook-1.0"]
    out = tmp_path / "feats.npy"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            HERO_READER,
            str(exported / "video_db"),
            str(exported / "sub_db"),
            "cook-1.0",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(proc.stdout)
    feats = np.load(out)
    assert got["dtype"] == "float16" and feats.shape == (40, DEFAULT_FEATURES.dim)
    assert feats.tobytes() == record.visual().tobytes()
    assert got["sub"] == [[k, list(s)] for k, s in enumerate(record.unique_sub2frames)]
    assert got["ids"] == [list(t) for t in record.cue_token_ids] and got["len"] == 40
    assert got["unmatched"] == list(record.unmatched_frames) and got["mask"] == 4


def test_feature_value_is_msgpack_numpys_encoding_byte_for_byte():
    arr = np.random.default_rng(0).standard_normal((7, DEFAULT_FEATURES.dim)).astype(np.float16)
    theirs = msgpack.packb({"features": arr}, default=msgpack_numpy.encode, use_bin_type=True)
    assert encode_features(arr) == theirs
    back = msgpack.unpackb(theirs, object_hook=msgpack_numpy.decode, raw=False)["features"]
    assert decode_features(theirs, "x").tobytes() == back.tobytes() == arr.tobytes()


def test_whole_video_datasets_use_video_keys(tmp_path, tokenizer_path):
    tok = CueTokenizer.from_path(tokenizer_path)
    records = _video("friends_s01e01_seg02_clip_00", 70.2, _cues()[:4], tok, None, 5)
    config = {"frame_interval": 1.5, "clip_length": None, "tokenizer": {"sha256": tok.sha256}}
    ds = _write(tmp_path / "tv", records, config)
    out = tmp_path / "hero"
    export_hero_lmdb(ds, out, ExportOptions(tokenizer=str(tokenizer_path), progress=False))
    assert json.loads((out / "clip_ids.json").read_text()) == ["friends_s01e01_seg02_clip_00"]
    import_hero_lmdb(out, tmp_path / "back", LmdbImportOptions(clip_length=None, progress=False))
    assert_same_record(HeroDataset.open(tmp_path / "back")[0], records[0])


def test_video_only_export_imports_with_clip_spans_from_keys(clip_dataset, tmp_path):
    out = tmp_path / "hero"
    export_hero_lmdb(clip_dataset, out, ExportOptions(subtitles=False, progress=False))
    assert not (out / "sub_db").exists()
    import_hero_lmdb(out / "video_db", tmp_path / "back", LmdbImportOptions(progress=False))
    back, original = HeroDataset.open(tmp_path / "back"), HeroDataset.open(clip_dataset)
    clip = back["cook-1.1"].clip
    assert (clip.start, clip.end) == (60.0, 60.0 + 17 * 1.5)  # the true end (85.3) is not kept
    for clip_id in original.clip_ids():
        assert back[clip_id].visual().tobytes() == original[clip_id].visual().tobytes()
        assert back[clip_id].cues == ()
    assert back.manifest.config["clip_length"] == 60.0


@pytest.mark.parametrize(
    ("interval", "given", "folder"),
    [(1.5, None, "1.5"), (2.0, None, "2.0"), (2.0, "2", "2"), (2.0, "2.0", "2.0")],
)
def test_feature_folder_is_named_as_heros_config_prints_the_interval(interval, given, folder):
    assert _interval_spelling(interval, given) == folder


@pytest.mark.parametrize(("given", "message"), [("1.50", "write the number"), ("2", "1.5 s per")])
def test_feature_folder_spelling_errors(given, message):
    with pytest.raises(HeroCompatError, match=message):
        _interval_spelling(1.5, given)


def test_export_refusals(clip_dataset, tmp_path, exported):
    with pytest.raises(HeroCompatError, match="give --overwrite"):
        export_hero_lmdb(clip_dataset, exported, ExportOptions(subtitles=False, progress=False))
    with pytest.raises(HeroCompatError, match="--tokenizer"):
        export_hero_lmdb(clip_dataset, tmp_path / "x", ExportOptions(progress=False))
    with pytest.raises(HeroCompatError, match=r"1.5 s per step"):
        export_hero_lmdb(
            clip_dataset, tmp_path / "x", ExportOptions(frame_interval="2", subtitles=False)
        )
    other = train_byte_level_bpe(["something else entirely"], tmp_path / "other.json", 280)
    with pytest.raises(HeroCompatError, match="sha256"):
        export_hero_lmdb(clip_dataset, tmp_path / "x", ExportOptions(tokenizer=str(other)))
    assert not any(tmp_path.glob(".x.tmp-*")) and not (tmp_path / "x").exists()


def test_overwrite_replaces_the_export_whole(clip_dataset, tmp_path):
    out = tmp_path / "hero"
    (out / "stale").mkdir(parents=True)
    export_hero_lmdb(
        clip_dataset, out, ExportOptions(subtitles=False, overwrite=True, progress=False)
    )
    assert not (out / "stale").exists() and (out / "video_db").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["hero"]  # no temporary folder left


def test_clips_without_cues_or_token_ids(tmp_path, tokenizer_path, record_factory):
    make_record = record_factory
    bare = make_record("bare", 0, 12.0, seed=1, n_cues=0)  # no cues at all: HERO pseudo-cues
    untokenized = replace(make_record("said", 0, 30.0, seed=2, n_cues=2), cue_token_ids=())
    meta = {"BOS": 0, "EOS": 2, "SEP": 2, "CLS": 0, "PAD": 1, "MASK": 4, "UNK": 3}
    ds = _write(tmp_path / "ds", [bare, untokenized], {"hero_meta": {**meta, "v_range": [5, 9]}})
    with pytest.raises(HeroCompatError, match=r"clip said\.0: cues have no token ids"):
        export_hero_lmdb(ds, tmp_path / "x", ExportOptions(progress=False))
    assert not (tmp_path / "x").exists()
    summary = export_hero_lmdb(
        ds, tmp_path / "hero", ExportOptions(tokenizer=str(tokenizer_path), progress=False)
    )
    assert summary.pseudo_filled == 1 and summary.tokenized == 1
    env = lmdb.open(str(tmp_path / "hero" / "sub_db"), readonly=True, lock=False)
    with env.begin() as txn:
        value = decode_sub_value(txn.get(b"bare.0"), "k")
    env.close()
    assert value["input_ids"] == [[], []] and value["unmatched_frames"] == []
    assert value["unique_sub2frames"] == [[0, [0, 1, 2, 3, 4]], [1, [5, 6, 7]]]
    import_hero_lmdb(tmp_path / "hero", tmp_path / "back", LmdbImportOptions(progress=False))
    back = HeroDataset.open(tmp_path / "back")
    assert back["bare.0"].cues == (Cue(0.0, 7.5, ""), Cue(7.5, 12.0, ""))
    tok = CueTokenizer.from_path(tokenizer_path)
    expected = tuple(tuple(t) for t in tok.encode_cues(untokenized.cues))
    assert back["said.0"].cue_token_ids == expected and back["said.0"].cues == untokenized.cues


def test_lmdb_writer_grows_a_full_map(tmp_path):
    writer = _LmdbWriter(tmp_path / "db", 1 << 20)
    for k in range(12):
        writer.put(f"{k}".encode(), bytes([k]) * (300 << 10))  # 3.6 MiB into a 1 MiB map
    writer.close()
    env = lmdb.open(str(tmp_path / "db"), readonly=True, lock=False)
    with env.begin() as txn:
        assert [len(v) for _, v in txn.cursor()] == [300 << 10] * 12
    env.close()


def test_meta_from_tokenizer_needs_the_special_tokens(tokenizer_path):
    meta = meta_from_tokenizer(CueTokenizer.from_path(tokenizer_path))
    assert meta["MASK"] == 4 and meta["v_range"] == [5, 300]

    class NoMask:
        vocab_size = 10

        def special_ids(self):
            return {"bos": 0, "eos": 1, "sep": 1, "cls": 0, "pad": 2, "mask": None, "unk": 3}

    with pytest.raises(HeroCompatError, match="mask"):
        meta_from_tokenizer(NoMask())


# --- cues from HERO's own values --------------------------------------------------------------


def test_cue_spans_are_rebuilt_from_steps_when_times_are_missing():
    value = {  # as HERO's prepro_sub.py writes it, without the input's "sub" list
        "input_ids": [[5, 6], [7], [8, 9, 10], [11]],
        "sub2frames": [[0, [0, 1, 2]], [1, [2, 3]], [2, []], [3, [9, 10, 11]]],
        "unique_sub2frames": [[0, [0, 1]], [1, [2, 3]], [2, []], [3, [9]]],
        "unmatched_frames": [4, 5, 6, 7, 8],
    }
    got = cues_from_sub_value(value, num_frames=10, duration=14.2, interval=1.5, where="w")
    assert not got.times_from_sub and got.dropped == 1  # cue 2 covers no step: dropped
    assert [(c.start, c.end) for c in got.cues] == [(0.0, 4.5), (3.0, 6.0), (13.5, 14.2)]
    assert {c.text for c in got.cues} == {UNKNOWN_TEXT}
    assert got.token_ids == ((5, 6), (7,), (11,))
    assert got.sub2frames == ((0, 1, 2), (2, 3), (9,))  # steps past the clip dropped
    assert got.unique_sub2frames == ((0, 1), (2, 3), (9,))
    decoded = cues_from_sub_value(value, 10, 14.2, 1.5, "w", decode=lambda ids: f"t{ids[0]}")
    assert [c.text for c in decoded.cues] == ["t5", "t7", "t11"]


def test_sub_times_are_used_only_when_they_agree_with_the_steps():
    value = {
        "input_ids": [[1], [2]],
        "sub2frames": [[0, [0, 1, 2]], [1, [2, 3]]],
        "unique_sub2frames": [[0, [0, 1]], [1, [2, 3]]],
        "sub": [{"text": "a", "start": 0.5, "end": 4.0}, {"text": "b", "start": 3.5, "end": 6.0}],
    }
    got = cues_from_sub_value(value, 4, 6.0, 1.5, "w")
    assert got.times_from_sub and got.cues == (Cue(0.5, 4.0, "a"), Cue(3.5, 6.0, "b"))
    shifted = {
        **value,
        "sub": [{**s, "start": s["start"] + 60, "end": s["end"] + 60} for s in value["sub"]],
    }
    got = cues_from_sub_value(shifted, 4, 6.0, 1.5, "w")  # source seconds: another clock
    assert not got.times_from_sub and got.cues == (Cue(0.0, 4.5, "a"), Cue(3.0, 6.0, "b"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"unique_sub2frames": []}, "no 'input_ids'"),
        ({"input_ids": [[1]]}, "no 'unique_sub2frames'"),
        ({"input_ids": [[1]], "unique_sub2frames": [[3, [0]]]}, "names cue 3 of 1"),
        ({"input_ids": [["x"]], "unique_sub2frames": []}, "input_ids\\[0\\] must be a list"),
        ({"input_ids": [[1]], "unique_sub2frames": [[0, 1]]}, "must be a list of integers"),
    ],
)
def test_malformed_sub_values_name_the_key(value, message):
    with pytest.raises(HeroCompatError, match=f"^db key 'v.0': .*{message}"):
        cues_from_sub_value(value, 4, 6.0, 1.5, "db key 'v.0'")


def test_malformed_values_decode_to_clear_errors():
    good = encode_features(np.zeros((3, DEFAULT_FEATURES.dim), np.float16))
    with pytest.raises(HeroCompatError, match=r"^k: truncated value"):
        decode_features(good[:-10], "k")
    short = {b"nd": True, b"type": "<f2", b"kind": b"", b"shape": [3, 4352], b"data": b"x" * 10}
    with pytest.raises(HeroCompatError, match=r"^k: .*needs 26112 bytes, got 10"):
        decode_features(msgpack.packb({"features": short}), "k")
    with pytest.raises(HeroCompatError, match=r"^k: no 'features' key"):
        decode_features(msgpack.packb({"feats": 1}), "k")
    with pytest.raises(HeroCompatError, match=r"^k: not a msgpack value"):
        decode_features(b"\xc1\xc1", "k")
    with pytest.raises(HeroCompatError, match="dtype kind"):  # pickled object arrays refused
        pickled = {b"nd": True, b"type": "|O", b"kind": b"O", b"shape": [1], b"data": b"x"}
        decode_features(msgpack.packb({"features": pickled}), "k")
    with pytest.raises(HeroCompatError, match=r"^s: not lz4-frame"):
        decode_sub_value(b"plain bytes", "s")
    assert decode_sub_value(encode_sub_value({"input_ids": []}), "s") == {"input_ids": []}


def test_compressed_npz_values_are_read_too():
    import io

    arr = np.arange(2 * DEFAULT_FEATURES.dim, dtype=np.float32).reshape(2, DEFAULT_FEATURES.dim)
    buf = io.BytesIO()
    np.savez_compressed(buf, features=arr)
    assert np.array_equal(decode_features(buf.getvalue(), "k"), arr)


# --- broken databases -------------------------------------------------------------------------


def _feature_db(root: Path, values: dict[str, bytes], id2nframe: dict[str, int]) -> Path:
    db = root / "resnet_slowfast_1.5"
    env = lmdb.open(str(db), map_size=64 << 20)
    with env.begin(write=True) as txn:
        for key, value in values.items():
            txn.put(key.encode(), value)
    env.close()
    (root / "id2nframe.json").write_text(json.dumps(id2nframe))
    return db


def test_bad_clips_fail_their_video_and_the_rest_is_imported(tmp_path):
    rng = np.random.default_rng(0)
    ok = rng.standard_normal((40, DEFAULT_FEATURES.dim)).astype(np.float16)
    values = {
        "good.0": encode_features(ok),
        "good.1": encode_features(ok[:5]),
        "nokey.0": msgpack.packb({"feats": 1}),
        "narrow.0": encode_features(ok[:, :4000]),
        "short.0": encode_features(ok[:3]),
    }
    _feature_db(tmp_path, values, {"good.0": 40, "good.1": 5, "narrow.0": 40, "short.0": 9})
    summary = import_hero_lmdb(tmp_path, tmp_path / "ds", LmdbImportOptions(progress=False))
    assert summary.clips == 2 and sorted(summary.failed_videos) == ["narrow", "nokey", "short"]
    errors = {e["video_id"]: e["message"] for e in read_errors(tmp_path / "ds")}
    assert "key 'nokey.0': no 'features' key" in errors["nokey"]
    assert "key 'narrow.0': features are (40, 4000), expected (steps, 4352)" in errors["narrow"]
    assert "id2nframe.json says 9 steps, but the value holds 3" in errors["short"]
    assert str(tmp_path / "resnet_slowfast_1.5") in errors["nokey"]
    ds = HeroDataset.open(tmp_path / "ds")
    assert ds["good.1"].clip.start == 60.0 and ds["good.1"].num_frames == 5
    assert ds["good.0"].visual().tobytes() == ok.tobytes()


def test_truncated_lmdb_is_refused_without_crashing(tmp_path):
    big = np.ones((200, DEFAULT_FEATURES.dim), np.float16)
    db = _feature_db(tmp_path, {f"v.{k}": encode_features(big) for k in range(4)}, {})
    data = db / "data.mdb"
    with open(data, "r+b") as f:
        f.truncate(data.stat().st_size // 2)
    with pytest.raises(HeroCompatError, match=f"^{data}: truncated"):
        import_hero_lmdb(tmp_path, tmp_path / "ds", LmdbImportOptions(progress=False))
    data.write_bytes(b"not an lmdb file at all" * 300)
    with pytest.raises(HeroCompatError, match="not a readable LMDB"):
        import_hero_lmdb(tmp_path, tmp_path / "ds", LmdbImportOptions(progress=False))


def test_feature_db_discovery_errors(tmp_path):
    with pytest.raises(HeroCompatError, match="no feature LMDB"):
        import_hero_lmdb(tmp_path, tmp_path / "ds", LmdbImportOptions())
    _feature_db(tmp_path, {}, {})
    lmdb.open(str(tmp_path / "resnet_slowfast_2.0"), map_size=1 << 20).close()
    with pytest.raises(HeroCompatError, match="several feature databases"):
        import_hero_lmdb(tmp_path, tmp_path / "ds", LmdbImportOptions())
    lmdb.open(str(tmp_path / "features"), map_size=1 << 20).close()
    with pytest.raises(HeroCompatError, match="cannot tell the frame interval"):
        import_hero_lmdb(tmp_path, tmp_path / "ds", LmdbImportOptions(feature_db="features"))


# --- packaging and command line -----------------------------------------------------------------


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "lmdb", None)  # makes `import lmdb` fail
    with pytest.raises(HeroCompatError, match="lmdb") as info:
        encode_features(np.zeros((1, DEFAULT_FEATURES.dim), np.float16))
    assert INSTALL_HINT in str(info.value)


def test_importing_the_modules_does_not_import_the_extra():
    code = (
        "import sys; import pipelines.interop.lmdb_export, pipelines.interop.lmdb_import, "
        "pipelines.cli.compat; print(sorted(m for m in ('lmdb', 'msgpack', 'msgpack_numpy', "
        "'lz4') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_command_line_round_trip(clip_dataset, tokenizer_path, tmp_path):
    runner = CliRunner()
    out = tmp_path / "hero"
    args = [
        "hero-lmdb",
        str(clip_dataset),
        "--output",
        str(out),
        "--tokenizer",
        str(tokenizer_path),
    ]
    result = runner.invoke(export, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "exported 4 clips" in result.output and "sub_txt_db" in result.output
    result = runner.invoke(export, ["hero-lmdb", str(clip_dataset), "--output", str(out)])
    assert result.exit_code == 1 and "already exists" in result.output
    result = runner.invoke(
        import_, ["hero-lmdb", str(out), "--output", str(tmp_path / "ds"), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "imported 3 videos -> 4 clips" in result.output
    result = runner.invoke(import_, ["hero-lmdb", str(tmp_path / "nowhere"), "--output", "x"])
    assert result.exit_code == 1 and "no such folder" in result.output
    for args in (["hero-lmdb", "--help"],):
        assert "[auto" in runner.invoke(export, args).output


def test_a_dataset_on_s3_exports_as_its_local_copy_does(
    s3, clip_dataset, exported, tokenizer_path, tmp_path
):
    """hero export reads a dataset in place on object storage (shards through the cache)."""
    import lmdb

    url = f"{s3.url}/clips"
    local = HeroDataset.open(clip_dataset)
    with DatasetWriter(url, local.manifest.config) as w:
        for video in dict.fromkeys(r.clip.video_id for r in local):
            w.write_video([r for r in local if r.clip.video_id == video])
    out = tmp_path / "from-s3"
    summary = export_hero_lmdb(
        url, out, ExportOptions(tokenizer=str(tokenizer_path), progress=False)
    )
    assert summary.clips == 4

    def contents(root: Path, db: str) -> dict[bytes, bytes]:
        folder = next((root / db).glob("**/data.mdb")).parent
        with lmdb.open(str(folder), readonly=True, lock=False) as env, env.begin() as txn:
            return dict(txn.cursor())

    for db in ("video_db", "sub_db"):
        assert contents(out, db) == contents(exported, db)


# --- TV subtitles: HERO's tv_subtitles.db ------------------------------------------------------


def _tv_corpus(root: Path) -> Path:
    """HERO extractor features for two TV clips (6 steps of 1.5 s) and TVR's subtitle file,
    whose entry for the second one is broken: its only cue has no readable start, so no cue of
    it can be read (a cue ending before it starts would only be repaired)."""
    from tests.conftest import TV_SUBS

    for name in ("house_s01", "bad_s01"):
        for folder, dim in (("resnet_features", RESNET_DIM), ("slowfast_features", SLOWFAST_DIM)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            np.savez(root / folder / f"{name}.npz", features=np.ones((6, dim), np.float16))
    good = {
        "vid_name": "house_s01",
        "sub": [{"text": t, "start": s, "end": e} for t, s, e in TV_SUBS],
    }
    bad = {"vid_name": "bad_s01", "sub": [{"text": " Chase : Hi", "start": "3s", "end": 1.0}]}
    (root / "tv_subtitles.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    return root


def _sub_db(folder: Path) -> dict[str, dict]:
    env = lmdb.open(str(folder), readonly=True, lock=False)
    with env.begin() as txn:
        values = {k.decode(): decode_sub_value(v, k.decode()) for k, v in txn.cursor()}
    env.close()
    return values


def test_tv_subtitles_export_as_heros_tv_subtitles_db(tmp_path):
    from tests.conftest import TV_TOKENS_WITH_SPEAKER, TV_TOKENS_WITHOUT_SPEAKER, hand_bpe

    vocab = hand_bpe(tmp_path / "roberta")
    root = _tv_corpus(tmp_path / "tv")
    runner = CliRunner()
    common = ["npz", str(root), "--subtitles", str(root / "tv_subtitles.jsonl"), "--whole-videos"]
    common += ["--no-progress"]

    def run(name: str, *extra: str, tokenize_at: str = "import") -> dict:
        at_import = ["--tokenizer", str(tmp_path / "roberta")] if tokenize_at == "import" else []
        ds, out = tmp_path / f"{name}-ds", tmp_path / f"{name}-hero"
        result = runner.invoke(import_, [*common, *at_import, *extra, "--output", str(ds)])
        assert result.exit_code == 0, result.output
        assert "failed: bad_s01" in result.output  # only the broken entry's video
        args = [
            "hero-lmdb",
            str(ds),
            "--output",
            str(out),
            "--tokenizer",
            str(tmp_path / "roberta"),
        ]
        result = runner.invoke(export, [*args, "--no-progress"])
        assert result.exit_code == 0, result.output
        values = _sub_db(out / "sub_db")
        assert set(values) == {"house_s01"}
        return {"value": values["house_s01"], "ds": ds, "out": out}

    expected = [[vocab[t] for t in cue] for cue in TV_TOKENS_WITH_SPEAKER]
    got = run("default")
    value = got["value"]
    # what HERO's prepro_sub.py writes for this entry: ids of " Name : text", its frame maps
    assert value["input_ids"] == expected
    assert value["sub2frames"] == [[0, [0, 1]], [1, [1, 2]], [2, [3]], [3, [4, 5]]]
    assert value["unique_sub2frames"] == [[0, [0]], [1, [1, 2]], [2, [3]], [3, [4, 5]]]
    assert value["unmatched_frames"] == [] and value["duration"] == 6
    assert value["max_mtached_sub_len"] == 8 + 2
    assert json.loads((got["out"] / "sub_db" / "vid2max_frame_sub_len.json").read_text()) == {
        "house_s01": 10
    }
    # the speaker stays in its own field
    assert [c.get("speaker") for c in value["sub"]] == ["Chase", "House", None, "MAN"]
    assert HeroDataset.open(got["ds"])["house_s01.0"].cues[0].speaker == "Chase"
    errors = read_errors(got["ds"])
    assert [(e["video_id"], e["stage"]) for e in errors] == [("bad_s01", "subtitles")]
    # tokenized at export time, the dataset's choice is kept
    assert run("late", tokenize_at="export")["value"]["input_ids"] == expected
    # the option drops the prefix
    value = run("plain", "--no-speaker-prefix")["value"]
    assert value["input_ids"] == [[vocab[t] for t in cue] for cue in TV_TOKENS_WITHOUT_SPEAKER]
    assert value["max_mtached_sub_len"] == 6 + 2


# -- feature sets other than HERO's ----------------------------------------------------------

CLIP_SLOWFAST = FeatureSet.of(("clip_vit_b32", 512), ("slowfast", 2304))


@pytest.mark.parametrize(
    ("features", "version"),
    [
        (DEFAULT_FEATURES, "resnet_slowfast"),
        (CLIP_SLOWFAST, "clip-vit_slowfast"),
        (FeatureSet.of(("resnet", 2048), ("milnce_s3d", 1024)), "resnet_mil-nce"),
        (FeatureSet.of(("clip_vit_b32", 512), ("milnce_s3d", 1024)), "clip-vit_mil-nce"),
        (FeatureSet.of(("clip_rn50x4", 640), ("slowfast", 2304)), "clip_rn50x4_slowfast"),
    ],
)
def test_feature_versions_name_the_set_as_hero_and_value_do(features, version):
    assert feature_version(features) == version
    assert features_of_version(version, "db") == features


def test_an_unknown_feature_version_is_refused(tmp_path):
    with pytest.raises(HeroCompatError, match=r"db: feature version 'resnet_hog' .* \('hog'\)"):
        features_of_version("resnet_hog", "db")
    db = tmp_path / "video_db" / "resnet_hog_1.5"
    db.mkdir(parents=True)
    lmdb.open(str(db), map_size=1 << 20).close()
    with pytest.raises(HeroCompatError, match=r"resnet_hog_1\.5: feature version 'resnet_hog'"):
        import_hero_lmdb(tmp_path, tmp_path / "out", LmdbImportOptions(progress=False))


@pytest.fixture(scope="module")
def clip_vit_dataset(clip_dataset, tmp_path_factory) -> Path:
    """``clip_dataset``'s clips with ``clip_vit_b32 ‖ slowfast`` features (the first 512
    ResNet numbers stand in for CLIP's)."""
    ds = HeroDataset.open(clip_dataset)
    records = [
        replace(
            r,
            features={
                "clip_vit_b32": r.features["resnet"][:, :512],
                "slowfast": r.features["slowfast"],
            },
        )
        for r in ds
    ]
    root = tmp_path_factory.mktemp("clip_vit") / "ds"
    with DatasetWriter(root, ds.manifest.config, features=CLIP_SLOWFAST) as w:
        for vid in dict.fromkeys(r.clip.video_id for r in records):
            w.write_video([r for r in records if r.clip.video_id == vid])
    return root


def test_another_set_exports_under_values_name_and_imports_identically(
    clip_vit_dataset, tokenizer_path, tmp_path
):
    out = tmp_path / "hero"
    summary = export_hero_lmdb(
        clip_vit_dataset, out, ExportOptions(tokenizer=str(tokenizer_path), progress=False)
    )
    assert summary.feature_db == out / "video_db" / "clip-vit_slowfast_1.5"
    assert (summary.feature_db / "data.mdb").is_file()
    info = json.loads((out / "export.json").read_text())
    assert info["hero_config"]["vfeat_version"] == "clip-vit_slowfast"
    assert FeatureSet.from_json(info["features"]) == CLIP_SLOWFAST
    env = lmdb.open(str(summary.feature_db), readonly=True, lock=False)
    with env.begin() as txn:
        assert decode_features(txn.get(b"cook-1.0"), "x").shape == (40, 2816)
    env.close()
    import_hero_lmdb(out, tmp_path / "back", LmdbImportOptions(progress=False))
    original, back = HeroDataset.open(clip_vit_dataset), HeroDataset.open(tmp_path / "back")
    assert back.feature_set == CLIP_SLOWFAST and back.feature_dim == 2816
    assert back.clip_ids() == sorted(original.clip_ids())
    for clip_id in original.clip_ids():
        assert_same_record(back[clip_id], original[clip_id])


def test_values_of_another_width_than_the_version_says_fail_their_video(clip_vit_dataset, tmp_path):
    out = tmp_path / "hero"
    export_hero_lmdb(clip_vit_dataset, out, ExportOptions(subtitles=False, progress=False))
    (out / "video_db" / "clip-vit_slowfast_1.5").rename(out / "video_db" / "resnet_slowfast_1.5")
    summary = import_hero_lmdb(
        out, tmp_path / "back", LmdbImportOptions(subtitles=False, progress=False)
    )
    assert sorted(summary.failed_videos) == ["cook-1", "short", "silent"]
    message = read_errors(tmp_path / "back")[0]["message"]
    assert "expected (steps, 4352) (resnet(2048)+slowfast(2304)" in message
