"""The YAML configs from elsewhere: ``hero run``'s, ``hero train``'s and the model's files read
within bounds, and fuzzed until only their documented errors come out."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import strategies as st

from hero_data import yamlfile
from hero_data.errors import OptionError
from hero_data.yamlfile import MAX_BYTES, MAX_DEPTH, load_yaml
from hero_model.config import HeroConfig, HeroConfigError
from hero_model.config import build_config as build_model_config
from hero_model.train import TrainConfig, TrainConfigError, load_train_config
from pipelines.config import ConfigError, RunConfig, build_config, load_config
from tests.fuzz_support import (
    DEPTHS,
    MB,
    NUMBER_TEXTS,
    bounded,
    json_values,
    mutations,
    nested,
    run_cases,
)

REPO = Path(__file__).resolve().parents[2]
SEEDS = [p.read_bytes() for p in sorted((REPO / "configs").rglob("*.yaml"))]
TOKENS = [
    b"&a ",
    b"*a",
    b"<<: *a\n",
    b"!!python/object/apply:os.system ['touch x']",
    b"!!binary ",
    b"!!set ",
    b"? [a, b]\n: 1\n",
    b"[",
    b"{",
    b"]",
    b"}",
    b": ",
    b"- ",
    b"\t",
    b"'",
    b'"',
    b"---\n",
    b"...\n",
    b"%YAML 1.1\n",
    b"\n  ",
    b"\x00",
    *(t.encode() for t in NUMBER_TEXTS),
]

# Bounds every config read keeps, whatever the file holds (docs/untrusted-input.md).
SECONDS = 20
HEAP_MB = 96


def _read_run(path: str) -> RunConfig:
    return build_config(load_config(path), {}, source=path)


LOADERS = {
    "run": (_read_run, ConfigError, RunConfig),
    "train": (load_train_config, TrainConfigError, TrainConfig),
    "model": (build_model_config, HeroConfigError, HeroConfig),
}


def check_config_file(kind: str, path: Path) -> None:
    """The property: a config of the right type, or the loader's error naming the file."""
    load, error, config = LOADERS[kind]
    with bounded(SECONDS, HEAP_MB):
        try:
            out = load(str(path))
        except error as e:
            assert isinstance(e, OptionError)
            # Every problem names the file; only the required options of a run, absent from
            # the file, may be asked of the command line instead.
            assert e.source == str(path) or (kind == "run" and e.key in ("input", "output")), e
            assert str(e).startswith(f"{e.source}: ")
            return
    assert isinstance(out, config)


@pytest.fixture(params=sorted(LOADERS))
def kind(request) -> str:
    return request.param


# --- the adversarial table ------------------------------------------------------------------------

LAUGHS = "\n".join(
    [
        "a: &a [x, x, x, x, x, x, x, x, x, x]",
        *(
            f"{k}: &{k} [{', '.join([f'*{p}'] * 10)}]"
            for p, k in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)

# The same inside one known option: without the bound, validating it would print it whole.
LAUGHS_IN_DATA = (
    "data: [&a [x, x, x, x, x, x, x, x, x, x], "
    + ", ".join(
        f"&{k} [{', '.join([f'*{p}'] * 10)}]" for p, k in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "]\n"
)

ADVERSARIAL = [
    ("deep nesting", f"data: {nested(2_000)}\n".encode(), "nested more than 32 levels"),
    (
        "deep mappings",
        ("a:\n" + "".join(" " * k + "a:\n" for k in range(1, 60))).encode(),
        "nested",
    ),
    ("billion laughs", LAUGHS.encode(), "values once its aliases are expanded"),
    ("laughs in an option", LAUGHS_IN_DATA.encode(), "values once its aliases are expanded"),
    ("alias in itself", b"data: &a [1, *a]\n", "refers to the node that holds it"),
    ("huge integer", b"batch_size: " + b"9" * 5000 + b"\n", "more than 4,300 digits"),
    ("duplicate key", b"batch_size: 1\nseed: 2\nbatch_size: 3\n", "key 'batch_size' given twice"),
    ("list key", b"? [a]\n: 1\n", "a key must be a scalar"),
    ("set tag on a scalar", b"seed: !!set 4\n", "not valid YAML"),  # found by the deep run
    ("invalid UTF-8", b"seed: 1\nlr: \xc3\x28\n", "not UTF-8 text (line 2"),
    ("python tag", b"seed: !!python/object/apply:os.system ['touch x']\n", "not valid YAML"),
    ("10 MB line", b"data: [" + b"a, " * (10 * MB // 3) + b"]\n", "larger than the 256 KiB"),
]


@pytest.mark.parametrize(("name", "data", "message"), ADVERSARIAL, ids=[a[0] for a in ADVERSARIAL])
def test_adversarial_yaml_is_refused_naming_the_file_and_line(tmp_path, kind, name, data, message):
    path = tmp_path / "config.yaml"
    path.write_bytes(data)
    load, error, _ = LOADERS[kind]
    with bounded(SECONDS, HEAP_MB), pytest.raises(error) as info:
        load(str(path))
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    assert not (Path.cwd() / "x").exists()  # the python tag did not run


NUMERIC = {
    "run": ["frame_interval", "clip_length", "batch_size", "workers", "min_timeout_s"],
    "train": ["lr", "batch_size", "max_steps", "warmup_steps", "eps", "grad_clip", "seed"],
    "model": ["hidden", "heads", "dropout", "vocab_size", "max_clip_steps", "mask_id"],
}


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "-1", "-1.5e308", "1e999", "0"])
def test_non_finite_and_negative_numbers_are_refused_or_valid(tmp_path, kind, value):
    for key in NUMERIC[kind]:
        path = tmp_path / f"{key}.yaml"
        path.write_text(f"{key}: {value}\n")
        check_config_file(kind, path)


def test_load_yaml_limits_are_exact(monkeypatch):
    """One value under each bound loads; one over is refused."""
    monkeypatch.setattr(yamlfile, "MAX_VALUES", 1000)  # the same code, at a tenth of the time
    assert load_yaml(nested(MAX_DEPTH - 1).encode(), "f", OptionError) is not None
    with pytest.raises(OptionError, match="nested more than"):
        load_yaml(nested(MAX_DEPTH + 1).encode(), "f", OptionError)
    flat = ("[" + ", ".join(["1"] * 999) + "]").encode()  # the list and 999 numbers
    assert len(load_yaml(flat, "f", OptionError)) == 999
    over = ("[" + ", ".join(["1"] * 1000) + "]").encode()
    with pytest.raises(OptionError, match="values once its aliases"):
        load_yaml(over, "f", OptionError)
    assert load_yaml(b"#" * MAX_BYTES, "f", OptionError) is None
    with pytest.raises(OptionError, match="larger than"):
        load_yaml(b"#" * (MAX_BYTES + 1), "f", OptionError)
    with pytest.raises(OptionError, match=r"^f: not valid YAML: line 2: character #x0003"):
        load_yaml(b"a: 1\n\x03\n", "f", OptionError)
    assert load_yaml(b"a: &x [1, 2]\nb: *x\n", "f", OptionError) == {"a": [1, 2], "b": [1, 2]}


# --- fuzzing --------------------------------------------------------------------------------------


def _structures() -> st.SearchStrategy[bytes]:
    names = sorted(
        {f for fields in NUMERIC.values() for f in fields}
        | {"input", "output", "data", "tasks", "model", "extends", "model_overrides", "betas"}
    )
    keys = st.one_of(st.sampled_from(names), st.text(max_size=8))
    mapping = st.dictionaries(keys, json_values(), max_size=6)

    def dump(value: dict, unicode: bool, flow: bool | None) -> bytes:
        return yaml.safe_dump(value, allow_unicode=unicode, default_flow_style=flow).encode(
            "utf-8", "surrogatepass"
        )

    return st.builds(dump, mapping, st.booleans(), st.sampled_from([None, True, False]))


HOSTILE = st.one_of(st.binary(max_size=1024), mutations(SEEDS, TOKENS), _structures())
"""Random bytes, the repository's config files mutated, and YAML dumps of hostile values."""


@DEPTHS
def test_fuzzed_config_files_load_or_raise_their_error(tmp_path, kind, examples):
    path = tmp_path / "config.yaml"

    def check(data: bytes) -> None:
        path.write_bytes(data)
        check_config_file(kind, path)

    run_cases(f"yaml {kind}", examples, HOSTILE, check)


def test_values_read_are_what_yaml_says(tmp_path):
    """A sanity check of the fuzz property's other side: valid values come through."""
    path = tmp_path / "t.yaml"
    path.write_text("extends: tiny\nlr: 0.5\nmax_steps: 9\nwarmup_steps: 1\n")
    cfg = load_train_config(str(path))
    assert cfg.lr == 0.5 and cfg.max_steps == 9 and math.isfinite(cfg.eps)
