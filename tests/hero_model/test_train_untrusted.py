"""A run folder from elsewhere: resuming never unpickles code, and every bad file is refused with
a message naming it, before training starts."""

from __future__ import annotations

import io
import json
import logging
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import strategies as st

from hero_data.writer import DatasetWriter
from hero_model.runtime import CheckpointError, find_checkpoint
from hero_model.train import (
    STATE_FORMAT,
    check_run,
    load_train_config,
    read_checkpoint,
    run_training,
)
from pipelines.cli.train import train
from tests.fuzz_support import DEPTHS, bounded, mutations, run_cases


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a busy 2-core machine, more make tiny models 10-50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(data: Path, **overrides) -> object:
    values = {
        "data": (str(data),),
        "max_steps": 3,
        "warmup_steps": 1,
        "checkpoint_every": 1,
        "keep_checkpoints": 1,
        "log_every": 1,
        "loader_workers": 0,
        "batch_size": 2,
        **overrides,
    }
    return load_train_config("tiny", values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, run folder stopped after step 1 with its checkpoint)."""
    from tests.conftest import make_record

    root = tmp_path_factory.mktemp("untrusted")
    data = root / "ds"
    with DatasetWriter(data, {"frame_interval": 1.5}) as w:
        for k in range(4):
            w.write(make_record(f"v{k}", 0, 9.0, seed=k, n_cues=2))
    run = root / "run"
    run_training(tiny(data), run, stop_at=1, progress=False)
    return data, run


@pytest.fixture
def run_copy(trained, tmp_path) -> tuple[Path, Path, Path]:
    """(dataset, a copy of the run folder, its checkpoint folder), to spoil at will."""
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return data, copy, find_checkpoint(copy)


class Planted:
    """Unpickling this creates ``marker``: what a crafted checkpoint would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _plant(path: Path, marker: Path, *, zipped: bool) -> None:
    payload = {"step": 1, "optimizer": Planted(marker)}
    if zipped:
        torch.save(payload, path)  # a torch.save archive whose pickle names builtins.exec
    else:
        path.write_bytes(pickle.dumps(payload))  # the legacy, bare-pickle layout


# --- the planted pickle ---------------------------------------------------------------------------


@pytest.mark.parametrize("file", ["state.pt", "model.pt"])
@pytest.mark.parametrize("zipped", [True, False], ids=["torch-save", "bare-pickle"])
def test_resume_refuses_a_planted_pickle_without_running_it(run_copy, tmp_path, file, zipped):
    data, run, ckpt = run_copy
    marker = tmp_path / "code-ran"
    _plant(ckpt / file, marker, zipped=zipped)
    with pytest.raises(CheckpointError) as info:
        run_training(tiny(data), run, resume=True, progress=False)
    assert not marker.exists()  # the planted code did not run
    message = str(info.value)
    assert message.startswith(f"{ckpt / file}: refused")
    if zipped:  # torch's reader says which global it refused; ours names it
        assert "builtins.exec" in message and "untrusted-input.md" in message
    # The same refusal comes from the checks that run before Ray starts (--num-workers).
    with pytest.raises(CheckpointError, match="refused"):
        check_run(tiny(data), run, resume=True)
    assert not marker.exists()


def test_the_command_line_refuses_it_in_one_line(run_copy, tmp_path):
    _, run, ckpt = run_copy
    marker = tmp_path / "code-ran"
    _plant(ckpt / "state.pt", marker, zipped=True)
    result = CliRunner().invoke(train, ["--output", str(run), "--resume", "--no-progress"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {ckpt / 'state.pt'}: refused")
    assert not marker.exists()


# --- what the toolkit writes reads back safely --------------------------------------------------


def test_checkpoints_hold_plain_data_only(trained):
    _, run = trained
    ckpt = find_checkpoint(run)
    for name in ("model.pt", "state.pt"):
        assert torch.serialization.get_unsafe_globals_in_checkpoint(ckpt / name) == []
    state = torch.load(ckpt / "state.pt", weights_only=True)
    assert state["format"] == STATE_FORMAT


def test_saving_refuses_state_that_would_not_load_back(trained, tmp_path, monkeypatch):
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    from hero_model.train import PretrainRecipe

    recipe = PretrainRecipe(tiny(data), copy, resume=True, progress=False)
    recipe.setup()
    try:
        original = recipe.optimizer.state_dict  # a numpy number: the plausible slip
        monkeypatch.setattr(
            recipe.optimizer, "state_dict", lambda: {**original(), "seen": np.float64(3)}
        )
        with pytest.raises(TypeError, match=r"state.pt\['optimizer'\]\['seen'\] is a float64"):
            recipe.save_checkpoint()
    finally:
        recipe.cleanup()


def test_a_format0_checkpoint_resumes_with_one_warning(run_copy, caplog):
    """What this toolkit wrote before the format was recorded: the same data, no 'format'."""
    data, run, ckpt = run_copy
    state = torch.load(ckpt / "state.pt", weights_only=True)
    del state["format"]
    torch.save(state, ckpt / "state.pt")
    with caplog.at_level(logging.WARNING, logger="hero_model.train"):
        summary = run_training(tiny(data), run, resume=True, progress=False)
    assert summary["step"] == 3
    warnings = [r.getMessage() for r in caplog.records if "format 0" in r.getMessage()]
    assert len(warnings) == 1 and str(ckpt / "state.pt") in warnings[0]
    newest = torch.load(find_checkpoint(run) / "state.pt", weights_only=True)
    assert newest["format"] == STATE_FORMAT


# --- every spoiled file is refused, naming it -----------------------------------------------


def _edit_state(ckpt: Path, change) -> None:
    state = torch.load(ckpt / "state.pt", weights_only=True)
    change(state)
    torch.save(state, ckpt / "state.pt")


def _edit_model(ckpt: Path, change) -> None:
    weights = torch.load(ckpt / "model.pt", weights_only=True)
    change(weights)
    torch.save(weights, ckpt / "model.pt")


def _first_param_state(state):
    return next(iter(state["optimizer"]["state"].values()))


SPOILED = [
    ("state", lambda s: s.update(format=STATE_FORMAT + 1), "newer than this toolkit reads"),
    ("state", lambda s: s.update(format="1"), "format must be a whole number"),
    ("state", lambda s: s.pop("draws"), "no draws: not a training state"),
    ("state", lambda s: s.update(step=7), "holds step 7, but its folder is of step 1"),
    ("state", lambda s: s.update(draws=-1), "draws must be a whole number >= 0"),
    ("state", lambda s: s.update(world_size=0), "world_size must be a whole number >= 1"),
    ("state", lambda s: s.update(rng=[]), "one generator state per worker"),
    ("state", lambda s: s["rng"][0].update(torch=torch.zeros(3, dtype=torch.uint8)), "rng[0]"),
    ("state", lambda s: s["optimizer"].update(param_groups=[]), "not an AdamW state"),
    (
        "state",
        lambda s: _first_param_state(s).update(exp_avg=torch.zeros(2, 3)),
        "optimizer state 'exp_avg' of parameter",
    ),
    ("state", lambda s: s["optimizer"]["state"].update({10**6: {}}), "is not one of this"),
    ("state", lambda s: s["scheduler"].update(optimizer="x"), "not a LambdaLR state"),
    ("state", lambda s: s.clear() or s.update(x=1), "no step, draws"),
    ("model", lambda w: w.pop(next(iter(w))), "does not fit the model: missing"),
    ("model", lambda w: w.update(extra=torch.zeros(1)), "unexpected ['extra']"),
    ("model", lambda w: w.update({next(iter(w)): torch.zeros(1)}), "shapes differ"),
]


@pytest.mark.parametrize(("file", "change", "message"), SPOILED)
def test_spoiled_checkpoint_files_are_refused_naming_them(run_copy, file, change, message):
    data, run, ckpt = run_copy
    (_edit_state if file == "state" else _edit_model)(ckpt, change)
    name = ckpt / ("state.pt" if file == "state" else "model.pt")
    with pytest.raises(CheckpointError) as info:
        check_run(tiny(data), run, resume=True)
    assert str(info.value).startswith(f"{name}: ") and message in str(info.value)


def test_other_spoiled_run_files(run_copy):
    data, run, ckpt = run_copy
    (ckpt / "state.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match=r"state.pt: refused, not read"):
        check_run(tiny(data), run, resume=True)
    (ckpt / "meta.json").write_text('{"train_config": {}, "datasets": [{"path": 1}]}')
    with pytest.raises(ValueError, match=r"meta.json: not checkpoint metadata of hero train"):
        check_run(tiny(data), run, resume=True)
    (ckpt / "meta.json").write_text("[" * 100_000)
    with pytest.raises(ValueError, match=r"meta.json: unreadable checkpoint metadata"):
        check_run(tiny(data), run, resume=True)
    # A folder that only looks like a checkpoint is not one.
    (run / "checkpoints" / "step-latest").mkdir()
    (run / "checkpoints" / "step-latest" / "meta.json").write_text("{}")
    assert find_checkpoint(run) == ckpt


def test_garbage_in_metrics_jsonl_is_dropped_on_resume(run_copy):
    data, run, _ = run_copy
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('not json\n[1, 2]\n{"step": "3"}\n' + "[" * 50_000 + "\n")
    run_training(tiny(data), run, resume=True, progress=False)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").open()]
    assert steps == [1, 2, 3]


# --- fuzzing the two files ---------------------------------------------------------------------


@DEPTHS
@pytest.mark.parametrize("file", ["state.pt", "model.pt"])
def test_fuzzed_checkpoint_files_load_or_are_refused(trained, tmp_path, file, examples):
    """Mutated archives: read_checkpoint gives back a checked checkpoint or a CheckpointError
    naming the file; nothing else, within 20 s per case (the files are memory-mapped)."""
    data, run = trained
    source = find_checkpoint(run)
    config = tiny(data).hero_config()
    seed = (source / file).read_bytes()
    tokens = [b"PK\x03\x04", b"PK\x05\x06", b"\x80\x02", b"cbuiltins\nexec\n", b"\x00" * 64]
    target = tmp_path / "ckpt" / source.name
    shutil.copytree(source, target)

    def check(data: bytes) -> None:
        (target / file).write_bytes(data)
        with bounded(20, None):
            try:
                weights, state = read_checkpoint(target, config)
            except CheckpointError as e:
                assert str(e).startswith(f"{target / file}: ")
                return
        assert state["step"] == 1 and set(weights) == set(
            torch.load(source / "model.pt", weights_only=True)
        )

    strategy = st.one_of(mutations([seed], tokens), st.binary(max_size=2048))
    run_cases(f"checkpoint {file}", examples, strategy, check)


def test_a_zip_of_anything_else_is_refused(run_copy):
    data, run, ckpt = run_copy
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    (ckpt / "model.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match=r"model.pt: not a readable checkpoint"):
        check_run(tiny(data), run, resume=True)
