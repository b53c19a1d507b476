"""The training recipe: configs, schedule, accumulation, checkpoints, exact resume, logs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord
from hero_data.types import Clip, Cue
from hero_data.writer import DatasetWriter
from hero_model.pretrain import HeroForPretraining
from hero_model.runtime import CheckpointError, lr_factor
from hero_model.train import (
    STATE_FORMAT,
    PretrainRecipe,
    TrainConfigError,
    load_run_config,
    load_train_config,
    run_training,
    train_preset,
)

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "train").glob("*.yaml"))


pytestmark = pytest.mark.usefixtures("one_thread")


def _record(video: str, rng: np.random.Generator) -> ClipRecord:
    """A 12 s clip (8 steps at 1.5 s) with two tokenized cues owning steps 0-3 and 4-7."""
    cues = (Cue(0.0, 5.0, "first"), Cue(6.0, 11.0, "second"))
    spans = ((0, 1, 2, 3), (4, 5, 6, 7))
    return ClipRecord(
        clip=Clip(video, 0, 0.0, 12.0),
        source=f"/videos/{video}.mp4",
        frame_interval=1.5,
        features={
            "resnet": rng.standard_normal((8, RESNET_DIM), dtype=np.float32).astype(np.float16),
            "slowfast": rng.standard_normal((8, SLOWFAST_DIM), dtype=np.float32).astype(np.float16),
        },
        cues=cues,
        cue_token_ids=tuple(tuple(rng.integers(5, 64, rng.integers(3, 7)).tolist()) for _ in cues),
        sub2frames=spans,
        unique_sub2frames=spans,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train") / "ds"
    rng = np.random.default_rng(0)
    with DatasetWriter(root, {"frame_interval": 1.5}) as w:
        for k in range(10):
            w.write(_record(f"v{k}", rng))
    return root


def tiny(dataset: Path, **overrides) -> object:
    values = {
        "data": (str(dataset),),
        "max_steps": 6,
        "warmup_steps": 2,
        "checkpoint_every": 3,
        "log_every": 1,
        "loader_workers": 0,
        "batch_size": 3,
        **overrides,
    }
    return load_train_config("tiny", values)


def losses(run_dir: Path) -> dict[int, dict[str, float]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {e["step"]: e["loss"] for e in map(json.loads, lines)}


@pytest.fixture(scope="module")
def full_run(dataset, tmp_path_factory) -> Path:
    """6 uninterrupted tiny steps (checkpoints at 3 and 6; dropout on)."""
    run = tmp_path_factory.mktemp("full") / "run"
    run_training(tiny(dataset), run, progress=False)
    return run


# -- configs -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_files_validate_and_match_their_presets(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# hero train ") and f"--config configs/train/{path.name}" in first
    cfg = load_train_config(path)
    assert cfg == train_preset(path.stem)
    assert cfg.hero_config().hidden > 0


def test_both_presets_have_files():
    assert {p.stem for p in CONFIGS} == {"base", "tiny"}
    assert dict(train_preset("base").tasks) == {"mlm": 2, "mnce": 2, "fom": 1, "vsm": 2}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("batch_sise: 4\n", r"unknown option 'batch_sise'; did you mean 'batch_size'\?"),
        ("- 1\n- 2\n", "expected a mapping of training config options, got a list"),
        ("lr: [1\n", "not valid YAML"),
        ("batch_size: four\n", "batch_size must be a whole number, got 'four'"),
        ("extends: tiny\nwarmup_steps: 500\n", r"warmup_steps \(500\) must be less than"),
        ("tasks: {mlm: 1, itm: 1}\n", "unknown task 'itm'"),
        ("tasks: {mlm: 0}\n", "at least one task"),
        ("model: huge\n", "model config 'huge'"),
        ("extends: large\n", "extends must be one of base, tiny"),
        ("precision: fp16\n", "precision must be one of auto, bf16, fp32, got 'fp16'"),
        ("init_roberta: a.pt\ninit_hero: b.pt\n", "not both"),
    ],
)
def test_bad_config_files_say_which_file_and_key(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TrainConfigError, match=match) as info:
        load_train_config(path)
    assert str(path) in str(info.value)


def test_unknown_name_and_command_line_overrides():
    with pytest.raises(TrainConfigError, match="not a named config"):
        load_train_config("huge")
    cfg = load_train_config("tiny", {"lr": 2, "max_steps": None, "data": ["a", "b"]})
    assert cfg.lr == 2.0 and cfg.max_steps == 200 and cfg.data == ("a", "b")
    with pytest.raises(TrainConfigError, match="command line: 1 mix_weights for 2 datasets"):
        load_train_config("tiny", {"data": ["a", "b"], "mix_weights": [1]})


# -- schedule ------------------------------------------------------------------------------


def test_schedule_warms_up_then_decays_linearly():
    w, t = 4, 12
    f = [lr_factor(n, w, t) for n in range(0, t + 2)]
    assert f[0] == 0 and f[t + 1] == 0  # outside the run
    assert f[1:5] == [0.25, 0.5, 0.75, 1.0]  # linear warm-up to the peak at update W
    decay = f[4 : t + 1]
    steps = np.diff(decay)
    assert np.all(steps < 0) and np.allclose(steps, steps[0])  # linear decay
    assert f[t] == pytest.approx(1 / (t - w + 1)) and f[t] > 0  # the last update still counts
    assert lr_factor(1, 0, 5) == 1.0  # no warm-up


def test_recipe_applies_the_schedule(full_run):
    lines = [json.loads(x) for x in (full_run / "metrics.jsonl").read_text().splitlines()]
    peak = train_preset("tiny").lr
    expected = [peak * lr_factor(n, 2, 6) for n in range(1, 7)]
    assert [e["lr"] for e in lines] == pytest.approx(expected)


# -- accumulation --------------------------------------------------------------------------


def test_accumulated_gradient_is_the_mean_of_micro_batch_gradients(dataset, tmp_path):
    cfg = tiny(
        dataset,
        accumulation=2,
        grad_clip=0.0,
        model_overrides={"dropout": 0.0, "attention_dropout": 0.0},
    )
    recipe = PretrainRecipe(cfg, tmp_path / "run", progress=False)
    try:
        recipe.setup()
        start = {k: v.clone() for k, v in recipe.model.state_dict().items()}
        it = iter(recipe.loader)
        micro = [next(it), next(it)]
        assert micro[0].task == micro[1].task and micro[0].clip_ids != micro[1].clip_ids
        recipe.train_step(micro)
        got = {n: p.grad.clone() for n, p in recipe.model.named_parameters() if p.grad is not None}
        moved = any(not torch.equal(p, start[n]) for n, p in recipe.model.named_parameters())
    finally:
        recipe.cleanup()
    assert moved  # the optimizer stepped

    ref = HeroForPretraining(cfg.hero_config())
    ref.load_state_dict(start)
    ref.train()
    per_batch = []
    for m in micro:
        ref.zero_grad(set_to_none=True)
        ref(m.batch, m.task)["loss"].backward()
        per_batch.append(
            {n: p.grad.clone() for n, p in ref.named_parameters() if p.grad is not None}
        )
    assert set(got) == set(per_batch[0]) and got
    for name, grad in got.items():
        torch.testing.assert_close(grad, (per_batch[0][name] + per_batch[1][name]) / 2)
    # Not trivially so: the two micro-batches' gradients differ.
    name = next(iter(got))
    assert not torch.allclose(per_batch[0][name], per_batch[1][name])


def test_init_hero_loads_a_reference_checkpoint(dataset, tmp_path):
    from hero_model.init import load_hero_checkpoint, reference_shapes

    model_config = tiny(dataset).hero_config()
    g = torch.Generator().manual_seed(1)
    ref = {n: torch.randn(s, generator=g) for n, s in reference_shapes(model_config).items()}
    # The reference stores the LM decoder as a copy of the word embeddings, which we tie.
    ref = {n: v for n, v in ref.items() if not n.endswith("lm_head.decoder.weight")}
    torch.save(ref, tmp_path / "hero.pt")
    cfg = tiny(dataset, init_hero=str(tmp_path / "hero.pt"))
    recipe = PretrainRecipe(cfg, tmp_path / "run", progress=False)
    try:
        recipe.setup()
        got = recipe.model.state_dict()
    finally:
        recipe.cleanup()
    torch.manual_seed(cfg.seed)
    expected = HeroForPretraining(model_config)
    report = load_hero_checkpoint(expected, ref)
    assert report.loaded
    assert all(torch.equal(got[k], v) for k, v in expected.state_dict().items())
    torch.manual_seed(cfg.seed)
    seeded = HeroForPretraining(model_config).state_dict()
    assert not all(torch.equal(got[k], v) for k, v in seeded.items())

    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.pt"):
        run_training(tiny(dataset, init_hero=str(tmp_path / "bad.pt")), tmp_path / "r2")


# -- checkpoints and exact resume ----------------------------------------------------------


def test_resume_gives_bit_identical_losses(dataset, full_run, tmp_path):
    run = tmp_path / "run"
    first = run_training(tiny(dataset), run, stop_at=3, progress=False)
    assert first["step"] == 3 and first["checkpoint"].endswith("step-00000003")
    # An interrupted run may have logged steps past its checkpoint: they are redone.
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 4, "loss": {"mlm": -1.0}}) + "\n")
    # Loader processes now (none before): the batches must not depend on them.
    resumed = run_training(tiny(dataset, loader_workers=1), run, resume=True, progress=False)
    assert resumed["step"] == 6 and resumed["steps_this_run"] == 3

    expected = losses(full_run)
    assert sorted(expected) == [1, 2, 3, 4, 5, 6]
    assert losses(run) == expected  # bit for bit: JSON keeps every digit of a float
    a = torch.load(full_run / "checkpoints/step-00000006/model.pt")
    b = torch.load(run / "checkpoints/step-00000006/model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_contents(dataset, full_run):
    ckpt = full_run / "checkpoints" / "step-00000006"
    assert sorted(p.name for p in (full_run / "checkpoints").iterdir()) == [
        "step-00000003",
        "step-00000006",
    ]
    meta = json.loads((ckpt / "meta.json").read_text())
    assert meta["step"] == 6 and meta["draws"] == 6 * 3 and meta["world_size"] == 1
    assert meta["train_config"]["batch_size"] == 3 and meta["model_config"]["hidden"] == 32
    assert meta["datasets"][0]["clips"] == 10

    # Plain data only: it loads without unpickling code, and names no global beyond torch's own.
    assert torch.serialization.get_unsafe_globals_in_checkpoint(ckpt / "state.pt") == []
    state = torch.load(ckpt / "state.pt", weights_only=True)
    assert set(state) == {"format", "step", "draws", "optimizer", "scheduler", "rng", "world_size"}
    assert state["format"] == STATE_FORMAT
    assert state["scheduler"]["last_epoch"] == 6
    assert len(state["rng"]) == 1 and isinstance(state["rng"][0]["torch"], torch.Tensor)
    model = HeroForPretraining(tiny(dataset).hero_config())
    model.load_state_dict(torch.load(ckpt / "model.pt"))  # strict: every key, right shapes
    n_params = sum(1 for p in model.parameters() if p.requires_grad)
    assert len(state["optimizer"]["state"]) <= n_params
    assert all("exp_avg" in s for s in state["optimizer"]["state"].values())
    assert all(torch.isfinite(p).all() for p in model.parameters())

    summary = json.loads((full_run / "summary.json").read_text())
    assert summary["step"] == 6 and summary["workers"][0]["clips_this_run"] == 18
    assert load_run_config(full_run) == tiny(dataset)


def test_old_checkpoints_are_pruned(dataset, tmp_path):
    run_training(tiny(dataset, checkpoint_every=1, keep_checkpoints=2, max_steps=4), tmp_path)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000003", "step-00000004"]


def test_resume_refusals(dataset, full_run, tmp_path):
    with pytest.raises(FileExistsError, match="resume it with --resume"):
        run_training(tiny(dataset), full_run, progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        run_training(tiny(dataset), tmp_path / "empty", resume=True, progress=False)
    with pytest.raises(ValueError, match=r"differs in \['lr'\]"):
        run_training(tiny(dataset, lr=0.5), full_run, resume=True, progress=False)


def test_resume_with_a_larger_max_steps_trains_on_with_the_rebuilt_schedule(
    dataset, full_run, tmp_path, caplog
):
    run = tmp_path / "run"
    run_training(tiny(dataset, max_steps=4), run, progress=False)
    resumed = run_training(tiny(dataset, max_steps=6), run, resume=True, progress=False)
    assert resumed["step"] == 6 and resumed["steps_this_run"] == 2 and resumed["max_steps"] == 6

    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in lines] == [1, 2, 3, 4, 5, 6]
    # Steps 1-4 on the 4-step schedule; 5-6 on the 6-step one, as a run started with 6 steps
    # has them: the learning rate rises from 1/3 of the peak at step 4 to 2/5 at step 5.
    peak = train_preset("tiny").lr
    old = [peak * lr_factor(n, 2, 4) for n in range(1, 5)]
    new = [peak * lr_factor(n, 2, 6) for n in (5, 6)]
    assert [e["lr"] for e in lines] == pytest.approx(old + new)
    # The batches go on where they stopped: the tasks are those of the uninterrupted run.
    full = [json.loads(x) for x in (full_run / "metrics.jsonl").read_text().splitlines()]
    assert [e["tasks"] for e in lines] == [e["tasks"] for e in full]
    meta = json.loads((run / "checkpoints/step-00000006/meta.json").read_text())
    assert meta["train_config"]["max_steps"] == 6 and load_run_config(run).max_steps == 6

    # At its max_steps already: nothing to train, and a warning says so.
    with caplog.at_level("WARNING", logger="hero_model.train"):
        again = run_training(tiny(dataset, max_steps=6), run, resume=True, progress=False)
    assert again["step"] == 6 and again["steps_this_run"] == 0
    assert "at step 6, its max_steps: nothing to train" in caplog.text


def test_resume_refuses_fewer_steps_than_done_and_other_option_changes(dataset, full_run):
    with pytest.raises(CheckpointError, match="max_steps 5 is less than the 6 steps the run has"):
        run_training(tiny(dataset, max_steps=5), full_run, resume=True, progress=False)
    # A longer run does not open the door to other changes.
    for change, name in (({"batch_size": 2}, "batch_size"), ({"warmup_steps": 3}, "warmup_steps")):
        with pytest.raises(CheckpointError, match=rf"differs in \['{name}'\]"):
            run_training(
                tiny(dataset, max_steps=8, **change), full_run, resume=True, progress=False
            )


# -- TensorBoard ---------------------------------------------------------------------------


def read_events(folder: Path) -> list[tuple[int, str, float]]:
    """(step, tag, value) of every scalar in the TFRecord event files of ``folder``."""
    from tensorboardX.proto import event_pb2

    out = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4  # length, its crc, the record, its crc
            for v in event.summary.value:
                out.append((event.step, v.tag, v.simple_value))
    return out


def test_tensorboard_event_files(full_run):
    events = read_events(full_run / "tb")
    tags = {tag for _, tag, _ in events}
    assert {"train/lr", "train/grad_norm", "perf/clips_per_s", "perf/data_wait_fraction"} <= tags
    assert any(t.startswith("loss/") for t in tags)
    assert sorted({s for s, tag, _ in events if tag == "train/lr"}) == [1, 2, 3, 4, 5, 6]
    logged = losses(full_run)
    for step, tag, value in events:
        if tag.startswith("loss/"):
            assert value == pytest.approx(logged[step][tag[5:]], rel=1e-6)


def test_training_on_a_dataset_on_s3_equals_training_on_its_local_copy(
    s3, dataset, full_run, tmp_path
):
    """hero train reads a dataset on object storage in place (features via the shard cache)."""
    from hero_data.reader import HeroDataset

    url = f"{s3.url}/train-ds"
    local = HeroDataset.open(dataset)
    with DatasetWriter(url, local.manifest.config) as w:
        for record in local:
            w.write(record)
    run = tmp_path / "run"
    run_training(tiny(url), run, progress=False)
    assert losses(run) == losses(full_run)


# -- what a person sees: the progress bar and the curves ---------------------------------------


def test_the_progress_line_shows_steps_losses_clips_per_s_and_eta(dataset, tmp_path, caplog):
    import logging
    import re

    from hero_data.progress import Progress

    caplog.set_level(logging.INFO, logger="hero.progress")
    with pytest.MonkeyPatch.context() as mp:  # off a terminal, a line at every update
        mp.setattr("hero_model.train.Progress", lambda: Progress(0.0, force_terminal=False))
        run_training(tiny(dataset), tmp_path / "run", progress=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "hero.progress"]
    text = (tmp_path / "run" / "metrics.jsonl").read_text()
    last = [json.loads(x) for x in text.splitlines()][-1]
    assert re.fullmatch(r"train .*: 6 steps done in 0:00:\d\d", lines[-1])
    line = lines[-2]  # the latest loss of each task, clips/s, data wait, steps, rate, ETA
    for task, value in last["loss"].items():
        assert f"{task} {value:.3f}" in line
    assert f"{last['perf']['clips_per_s']:.1f} clips/s" in line and "data wait " in line
    assert ": 6/6 steps · " in line and "steps/s · ETA 0:00:00" in line


def test_read_curves_gives_the_logged_losses_lr_and_data_wait(full_run):
    from hero_model.curves import read_curves

    logged = [json.loads(x) for x in (full_run / "metrics.jsonl").read_text().split("\n") if x]
    curves = read_curves(full_run)
    assert curves.lr == (tuple(e["step"] for e in logged), tuple(e["lr"] for e in logged))
    wait = tuple(e["perf"]["data_wait_fraction"] for e in logged)
    assert curves.data_wait[1] == wait and all(0 <= w <= 1 for w in wait)
    tasks = {t for e in logged for t in e["loss"]}
    assert set(curves.loss) == tasks
    for task, (steps, values) in curves.loss.items():
        assert list(zip(steps, values, strict=True)) == [
            (e["step"], e["loss"][task]) for e in logged if task in e["loss"]
        ]
    assert read_curves(full_run.parent / "nothing").lr == ((), ())


def _figure_data(fig) -> dict[str, object]:
    """What a curves figure draws, by axes: the loss lines by task, the lr and data-wait
    lines, as (steps, values)."""
    axes = {ax.get_gid(): ax for ax in fig.axes}

    def xy(line):
        return tuple(line.get_xdata().tolist()), tuple(line.get_ydata().tolist())

    return {
        "loss": {line.get_label(): xy(line) for line in axes["loss"].get_lines()},
        "lr": xy(axes["lr"].get_lines()[0]),
        "data_wait": xy(axes["data_wait"].get_lines()[0]),
    }


def test_each_checkpoint_draws_curves_png_from_metrics_jsonl(dataset, tmp_path, monkeypatch):
    from PIL import Image

    import hero_model.curves

    drawn = []
    real = hero_model.curves.curves_figure

    def spy(curves, title=""):
        fig = real(curves, title)
        drawn.append((title, _figure_data(fig)))
        return fig

    monkeypatch.setattr(hero_model.curves, "curves_figure", spy)
    run = tmp_path / "run"
    run_training(tiny(dataset), run, progress=False)  # checkpoints after steps 3 and 6
    assert [title for title, _ in drawn] == ["run: 3 steps", "run: 6 steps"]
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for (_, data), upto in zip(drawn, (3, 6), strict=True):
        seen = [e for e in logged if e["step"] <= upto]
        steps = tuple(float(e["step"]) for e in seen)
        assert data["lr"] == (steps, tuple(e["lr"] for e in seen))
        wait = tuple(100.0 * e["perf"]["data_wait_fraction"] for e in seen)
        assert data["data_wait"] == (steps, wait)
        assert data["loss"] == {
            task: (
                tuple(float(e["step"]) for e in seen if task in e["loss"]),
                tuple(e["loss"][task] for e in seen if task in e["loss"]),
            )
            for task in {t for e in seen for t in e["loss"]}
        }
    with Image.open(run / "curves.png") as img:
        assert img.format == "PNG" and img.size == (900, 800)
    assert not list(run.glob(".curves.png*"))  # no temporary file left


def test_a_curves_picture_that_fails_costs_a_warning_not_the_run(
    dataset, tmp_path, monkeypatch, caplog
):
    import logging

    import hero_model.curves

    def broken(curves, title=""):
        raise RuntimeError("no fonts today")

    monkeypatch.setattr(hero_model.curves, "curves_figure", broken)
    caplog.set_level(logging.WARNING, logger="hero_model.train")
    run = tmp_path / "run"
    run_training(tiny(dataset, max_steps=3), run, progress=False)
    assert json.loads((run / "summary.json").read_text())["step"] == 3
    assert (run / "checkpoints" / "step-00000003").is_dir()
    assert not (run / "curves.png").exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("curves.png not drawn: RuntimeError: no fonts today" in w for w in warnings)
