"""Ray Train wiring: two CPU workers (gloo) train a few tiny steps into one run folder."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from hero_data.schema import RESNET_DIM, SLOWFAST_DIM, ClipRecord
from hero_data.types import Clip, Cue
from hero_data.writer import DatasetWriter
from hero_model.pretrain import HeroForPretraining
from hero_model.train import load_train_config, run_training

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def no_ray_left():
    """Fails if Ray is running before; shuts it down after, whatever happened."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    yield
    try:
        assert not ray.is_initialized(), "train_distributed left its Ray instance running"
    finally:
        ray.shutdown()


def _record(k: int, rng: np.random.Generator) -> ClipRecord:
    spans = ((0, 1, 2, 3), (4, 5, 6, 7))
    return ClipRecord(
        clip=Clip(f"v{k}", 0, 0.0, 12.0),
        source=f"/videos/v{k}.mp4",
        frame_interval=1.5,
        features={
            "resnet": rng.standard_normal((8, RESNET_DIM), dtype=np.float32).astype(np.float16),
            "slowfast": rng.standard_normal((8, SLOWFAST_DIM), dtype=np.float32).astype(np.float16),
        },
        cues=(Cue(0.0, 5.0, "one"), Cue(6.0, 11.0, "two")),
        cue_token_ids=((5, 6, 7), (8, 9, 10, 11)),
        sub2frames=spans,
        unique_sub2frames=spans,
    )


def test_two_gloo_workers_train_one_run(tmp_path, no_ray_left):
    """Two workers with one micro-batch each = one process accumulating two (same clips, same
    masks, DDP's mean = accumulation's mean); no dropout, and no VSM (it gathers negatives
    across workers, so its loss depends on the worker count)."""
    from hero_model.distributed import train_distributed

    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "ds", {"frame_interval": 1.5}) as w:
        for k in range(8):
            w.write(_record(k, rng))
    cfg = load_train_config(
        "tiny",
        {
            "data": (str(tmp_path / "ds"),),
            "max_steps": 3,
            "warmup_steps": 1,
            "batch_size": 2,
            "tasks": {"mlm": 1, "mnce": 1, "fom": 1},
            "model_overrides": {"dropout": 0.0, "attention_dropout": 0.0},
            "loader_workers": 0,
            "log_every": 1,
            "device": "cpu",
        },
    )
    run = tmp_path / "run"
    summary = train_distributed(cfg, run, num_workers=2, backend="gloo")

    assert summary["step"] == 3 and summary["world_size"] == 2
    workers = summary["workers"]
    assert [w["rank"] for w in workers] == [0, 1]
    assert workers[0]["pid"] != workers[1]["pid"] != os.getpid()
    assert all(w["clips_this_run"] == 3 * 2 for w in workers)  # each worker's share of every step

    ckpt = run / "checkpoints" / "step-00000003"
    meta = json.loads((ckpt / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["draws"] == 3 * 2 * 2
    state = torch.load(ckpt / "state.pt", weights_only=True)
    assert len(state["rng"]) == 2  # every worker's dropout RNG, for an exact resume
    trained = torch.load(ckpt / "model.pt")
    model = HeroForPretraining(cfg.hero_config())
    model.load_state_dict(trained)
    assert all(torch.isfinite(p).all() for p in model.parameters())

    single = tmp_path / "single"
    run_training(cfg.model_copy(update={"accumulation": 2}), single, progress=False)
    two, one = losses(run), losses(single)
    assert sorted(two) == [1, 2, 3]
    for step in two:
        assert two[step] == pytest.approx(one[step], rel=1e-4)
    reference = torch.load(single / "checkpoints" / "step-00000003" / "model.pt")
    for name, value in reference.items():
        torch.testing.assert_close(trained[name], value, rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(trained[k], v) for k, v in _initial(cfg).items())


def losses(run) -> dict[int, dict[str, float]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return {e["step"]: e["loss"] for e in map(json.loads, lines)}


def _initial(cfg) -> dict[str, torch.Tensor]:
    torch.manual_seed(cfg.seed)  # the recipe's seeded initial weights
    return HeroForPretraining(cfg.hero_config()).state_dict()
