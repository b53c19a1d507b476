"""HeroForPretraining: each task learns, trains the right parameters, and its loss is right."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hero_data.schema import RESNET_DIM, ClipRecord
from hero_data.types import Clip, Cue
from hero_model.batch import TASKS, make_batch
from hero_model.config import HeroConfig, build_config
from hero_model.pretrain import HeroForPretraining, hinge_losses, mnce_logits

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")


# --- a small world in which every task is learnable ---------------------------------------------


def world(concepts: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Concept prototypes (concepts, 4352) and a smooth code of each step's position (64, 4352)."""
    g = np.random.default_rng(seed)
    protos = g.standard_normal((concepts, 4352)).astype(np.float32)
    freqs = g.uniform(0.05, 0.6, size=(1, 4352))
    phase = g.uniform(0, 2 * np.pi, size=(1, 4352))
    pos = np.cos(np.arange(64)[:, None] * freqs + phase).astype(np.float32)
    return protos, pos


def synthetic(
    n: int, *, concepts: int, position: float, noise: float, scale: float, seed: int = 0
) -> list[ClipRecord]:
    """Clips of 4 segments of 6 steps; each segment shows one concept (its prototype, plus
    ``position`` times the step's position code and noise) and has one cue repeating that
    concept's token (5 + concept) 4-8 times. MLM can read a masked token off the others,
    MFFR/MNCE a masked step off its neighbours and its cue, FOM a step's place off its
    position code, VSM a query's segment and clip off the prototypes."""
    protos, pos = world(concepts)  # one world: train and held-out clips differ, not concepts
    out = []
    for i in range(n):
        g = np.random.default_rng(1000 * seed + i)
        ks = g.choice(concepts, 4, replace=False)
        feats = np.concatenate([np.repeat(protos[k][None], 6, 0) for k in ks])
        feats = feats + position * pos[:24] + noise * g.standard_normal((24, 4352))
        feats = (scale * feats).astype(np.float16)
        spans = [tuple(range(6 * j, 6 * j + 6)) for j in range(4)]
        out.append(
            ClipRecord(
                clip=Clip(f"s{i}", 0, 0.0, 36.0),
                source="synthetic",
                frame_interval=1.5,
                features={"resnet": feats[:, :RESNET_DIM], "slowfast": feats[:, RESNET_DIM:]},
                cues=tuple(Cue(9.0 * j, 9.0 * j + 9.0, f"concept {k}") for j, k in enumerate(ks)),
                cue_token_ids=tuple((5 + int(k),) * int(g.integers(4, 9)) for k in ks),
                sub2frames=tuple(spans),
                unique_sub2frames=tuple(spans),
            )
        )
    return out


def evaluate(model: HeroForPretraining, batch: dict, task: str) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        out = {k: float(v) for k, v in model(batch, task).items()}
    model.train()
    return out


class Adam:
    """Plain Adam. torch.optim's first step imports torch._dynamo, which takes ~10 s here
    (bytecode caching is off); these tests need none of it."""

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> None:
        self.params = list(params)
        self.lr, self.betas, self.t = lr, betas, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            denom = (v / (1 - b2**self.t)).sqrt_().add_(1e-8)
            p.addcdiv_(m, denom, value=-self.lr / (1 - b1**self.t))


LEARN = {
    # task: (steps, data, lr)
    "mlm": (80, {"concepts": 12, "position": 0.0, "noise": 0.3, "scale": 0.2}, 3e-3),
    "mffr": (150, {"concepts": 4, "position": 0.0, "noise": 0.1, "scale": 0.2}, 3e-3),
    "mnce": (60, {"concepts": 4, "position": 0.0, "noise": 0.1, "scale": 0.2}, 3e-3),
    "fom": (80, {"concepts": 12, "position": 1.0, "noise": 0.3, "scale": 0.2}, 3e-3),
    "vsm": (60, {"concepts": 12, "position": 0.0, "noise": 0.3, "scale": 0.2}, 3e-3),
}


@pytest.mark.parametrize("task", TASKS)
def test_task_loss_falls(task: str) -> None:
    steps, data, lr = LEARN[task]
    cfg = build_config("tiny", dropout=0.0, attention_dropout=0.0, vsm_local_drop_prob=0.0)
    train = synthetic(48, seed=1, **data)
    held_out = make_batch(synthetic(8, seed=2, **data), task, cfg, np.random.default_rng(9))
    assert held_out is not None
    torch.manual_seed(0)
    model = HeroForPretraining(cfg)
    opt = Adam(model.parameters(), lr=lr)
    before = evaluate(model, held_out, task)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        picks = rng.choice(len(train), 4, replace=False)
        batch = make_batch([train[i] for i in picks], task, cfg, rng)
        loss = model(batch, task)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate(model, held_out, task)
    assert after["loss"] < 0.5 * before["loss"], (before, after)
    if task == "fom":  # chance is 1 in the ~4 shuffled positions of a clip at best
        assert after["acc"] > 0.5, after
    if task == "mlm":
        assert after["acc"] > 0.8, after


# --- which parameters each task trains ----------------------------------------------------------

MASK_VECTORS = {"encoder.frame_embed.mask_vector", "encoder.residual.mask_vector"}
TRAINED = {
    "mlm": ("encoder.text_embed.", "encoder.frame_embed.", "encoder.cross.", "mlm_head."),
    "mffr": ("encoder.", "feature_head."),
    "mnce": ("encoder.", "feature_head."),
    "fom": ("encoder.", "order_head."),
    "vsm": ("encoder.", "query_encoder.", "vsm_"),
}


@pytest.mark.parametrize("task", TASKS)
def test_gradients_reach_what_the_task_trains_and_nothing_else(task: str) -> None:
    cfg = build_config("tiny", vsm_local_drop_prob=0.0)
    torch.manual_seed(0)
    model = HeroForPretraining(cfg)
    recs = synthetic(3, concepts=12, position=1.0, noise=0.3, scale=0.2)
    batch = make_batch(recs, task, cfg, np.random.default_rng(0))
    model(batch, task)["loss"].backward()
    expected = {
        n
        for n, _ in model.named_parameters()
        if n.startswith(TRAINED[task]) and (task in ("mffr", "mnce") or n not in MASK_VECTORS)
    }
    reached = {
        n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0
    }
    assert reached == expected, (sorted(expected - reached), sorted(reached - expected))


def test_mlm_head_is_tied_to_the_word_embeddings() -> None:
    model = HeroForPretraining(build_config("tiny"))
    head = {n for n, _ in model.named_parameters() if n.startswith("mlm_head.")}
    # no decoder matrix of its own: the logits use the word embeddings
    assert head == {f"mlm_head.{m}.{p}" for m in ("dense", "norm") for p in ("weight", "bias")} | {
        "mlm_head.bias"
    }
    cfg = model.config
    batch = make_batch(
        synthetic(2, concepts=12, position=0.0, noise=0.3, scale=0.2),
        "mlm",
        cfg,
        np.random.default_rng(0),
    )
    before = model(batch, "mlm")["loss"]
    with torch.no_grad():
        model.encoder.text_embed.word.weight[5:17].mul_(5.0)  # the tokens in use: logits change
    assert not torch.isclose(model(batch, "mlm")["loss"], before)


# --- MNCE ---------------------------------------------------------------------------------------


def test_mnce_logits_against_a_loop() -> None:
    torch.manual_seed(0)
    pred, target, neg = torch.randn(3, 8), torch.randn(3, 8), torch.randn(5, 8)
    logits = mnce_logits(pred, target, neg, temperature=2.0)
    for i in range(3):
        row = [float(pred[i] @ target[j]) for j in range(3)] + [float(pred[i] @ n) for n in neg]
        assert torch.allclose(logits[i], torch.tensor(row) / 2.0, atol=1e-5)


def test_mnce_never_uses_padding_as_a_negative() -> None:
    cfg = build_config("tiny", dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    model = HeroForPretraining(cfg).eval()
    recs = synthetic(3, concepts=12, position=1.0, noise=0.3, scale=0.2)
    short = ClipRecord(
        clip=Clip("short", 0, 0.0, 12.0),
        source="synthetic",
        frame_interval=1.5,
        features={
            "resnet": recs[2].features["resnet"][:8],
            "slowfast": recs[2].features["slowfast"][:8],
        },
    )
    batch = make_batch([recs[0], recs[1], short], "mnce", cfg, np.random.default_rng(0))
    assert batch is not None and (~batch["step_mask"]).sum() == 16
    out = model(batch, "mnce")
    real_unmasked = int((batch["step_mask"] & ~batch["mfm_mask"]).sum())
    masked = int(batch["mfm_mask"].sum())
    assert out["negatives"] == masked - 1 + real_unmasked
    # whatever the padding holds, the loss is the same
    noisy = dict(batch)
    feats = batch["features"].clone()
    pad = ~batch["step_mask"]
    feats[pad] = (torch.randn(int(pad.sum()), 4352) * 3).half()  # not constant: LayerNorm
    noisy["features"] = feats
    assert torch.allclose(model(noisy, "mnce")["loss"], out["loss"], atol=1e-4)


# --- VSM ----------------------------------------------------------------------------------------


def _weight(rank: int, pool: int | None, weight: float) -> float:
    return 1.0 if pool is None else (weight if rank < pool else 0.1)


def slow_neg_ctx(
    scores: torch.Tensor, query_clip: list[int], margin: float, pool: int | None, weight: float
) -> list[float]:
    """Per query, HERO's hinge loss against the negative clips, with loops and sorted lists."""
    out = []
    for q in range(scores.shape[0]):
        pos = float(scores[q, query_clip[q]])
        negs = sorted(
            (float(scores[q, v]) for v in range(scores.shape[1]) if v != query_clip[q]),
            reverse=True,
        )
        terms = [_weight(r, pool, weight) * max(0.0, margin + s - pos) for r, s in enumerate(negs)]
        out.append(sum(terms) / len(negs))
    return out


def slow_neg_q(
    scores: torch.Tensor, query_clip: list[int], margin: float, pool: int | None, weight: float
) -> list[float]:
    """Per (clip, positive query), HERO's hinge loss against the negative queries."""
    out = []
    n_q, n_v = scores.shape
    for v in range(n_v):
        negs = sorted((float(scores[q, v]) for q in range(n_q) if query_clip[q] != v), reverse=True)
        for q in range(n_q):
            if query_clip[q] == v:
                pos = float(scores[q, v])
                terms = [
                    _weight(r, pool, weight) * max(0.0, margin + s - pos)
                    for r, s in enumerate(negs)
                ]
                out.append(sum(terms) / len(negs))
    return out


@pytest.mark.parametrize("pool", [None, 2])
def test_hinge_losses_against_a_loop(pool: int | None) -> None:
    torch.manual_seed(0)
    query_clip = [0, 0, 1, 2, 2, 2, 3]
    scores = torch.rand(7, 4) * 0.4
    qc = torch.tensor(query_clip)
    neg_ctx, neg_q = hinge_losses(
        scores, scores, qc, qc, torch.arange(4), margin=0.1, hard_pool=pool, hard_weight=10.0
    )
    want_ctx = slow_neg_ctx(scores, query_clip, 0.1, pool, 10.0)
    want_q = slow_neg_q(scores, query_clip, 0.1, pool, 10.0)
    assert float(neg_ctx) == pytest.approx(sum(want_ctx) / len(want_ctx), abs=1e-6)
    assert float(neg_q) == pytest.approx(sum(want_q) / len(want_q), abs=1e-6)
    # a worker's share: its rows and columns of the same matrix
    rows, cols = [2, 3], [1, 2]
    part_ctx, part_q = hinge_losses(
        scores[rows],
        scores[:, cols],
        qc[rows],
        qc,
        torch.tensor(cols),
        margin=0.1,
        hard_pool=pool,
        hard_weight=10.0,
    )
    assert float(part_ctx) == pytest.approx((want_ctx[2] + want_ctx[3]) / 2, abs=1e-6)
    # clips 1 and 2 own queries 2 and 3, 4, 5: entries 2..5 of the per-pair list
    assert float(part_q) == pytest.approx(sum(want_q[2:6]) / 4, abs=1e-6)


def test_hard_negatives_follow_train_step() -> None:
    cfg = build_config("tiny", vsm_local_drop_prob=0.0, hard_negative_start_step=10)
    torch.manual_seed(0)
    model = HeroForPretraining(cfg).eval()
    recs = synthetic(6, concepts=12, position=0.0, noise=0.3, scale=0.2)
    batch = make_batch(recs, "vsm", cfg, np.random.default_rng(0))
    assert not model.hard_negatives
    plain = model(batch, "vsm")
    model.train_step = 10
    assert model.hard_negatives
    hard = model(batch, "vsm")
    assert float(hard["neg_ctx"]) != pytest.approx(float(plain["neg_ctx"]))
    assert float(hard["local"]) == pytest.approx(float(plain["local"]))
    never = HeroForPretraining(build_config("tiny", hard_negative_start_step=-1))
    never.train_step = 10**9
    assert not never.hard_negatives


def test_vsm_padding_does_not_move_the_loss() -> None:
    """Neither the global scores nor the start/end convolutions see past a clip's end."""
    cfg = build_config("tiny", dropout=0.0, attention_dropout=0.0, vsm_local_drop_prob=0.0)
    torch.manual_seed(0)
    model = HeroForPretraining(cfg).eval()
    recs = vsm_records()  # 24, 24, 22 and 22 steps
    batch = make_batch(recs, "vsm", cfg, np.random.default_rng(0))
    assert batch is not None and bool(batch["vsm_local"])
    out = model(batch, "vsm")
    noisy = dict(batch)
    feats = batch["features"].clone()
    pad = ~batch["step_mask"]
    feats[pad] = (torch.randn(int(pad.sum()), 4352) * 3).half()  # not constant: LayerNorm
    noisy["features"] = feats
    again = model(noisy, "vsm")
    for key in ("local", "neg_ctx", "neg_q"):
        assert float(again[key]) == pytest.approx(float(out[key]), abs=1e-5), key


def test_vsm_without_the_local_loss() -> None:
    cfg = build_config("tiny")
    model = HeroForPretraining(cfg)
    recs = synthetic(3, concepts=12, position=0.0, noise=0.3, scale=0.2)
    batch = make_batch(recs, "vsm", cfg, np.random.default_rng(0))
    batch["vsm_local"] = torch.tensor(False)
    out = model(batch, "vsm")
    out["loss"].backward()
    assert float(out["local"]) == 0.0 and float(out["loss"].detach()) > 0
    assert model.vsm_start.weight.grad is None and model.vsm_end.weight.grad is None
    assert model.query_encoder.pool.weight.grad is not None


def test_unknown_task() -> None:
    model = HeroForPretraining(build_config("tiny"))
    with pytest.raises(ValueError, match=r"unknown pretraining task 'mfm'"):
        model({}, "mfm")


# --- VSM across workers -------------------------------------------------------------------------

_WORKER = """
import json, sys
import numpy as np, torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
from test_pretrain import vsm_config, vsm_records
from hero_model.batch import make_batch
from hero_model.pretrain import HeroForPretraining

rank = int(sys.argv[1])
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method={init!r}, rank=rank, world_size=2)
torch.manual_seed(0)
model = HeroForPretraining(vsm_config())
recs = vsm_records()
batch = make_batch(recs[2 * rank : 2 * rank + 2], "vsm", model.config, np.random.default_rng(0))
out = model(batch, "vsm")
out["loss"].backward()
grads = {{}}
for name, p in model.named_parameters():
    g = p.grad if p.grad is not None else torch.zeros_like(p)
    dist.all_reduce(g)
    grads[name] = g / 2
if rank == 0:
    torch.save(grads, {out!r})
print(json.dumps({{k: float(v) for k, v in out.items()}}))
dist.destroy_process_group()
"""


def vsm_records() -> list[ClipRecord]:
    """Four clips, the last two two steps shorter (so workers pad to gather), four queries
    each (so both workers hold equal shares of queries and negatives)."""
    recs = synthetic(4, concepts=12, position=0.0, noise=0.3, scale=0.2)
    for i in (2, 3):
        r = recs[i]
        spans = tuple(tuple(s for s in span if s < 22) for span in r.unique_sub2frames)
        recs[i] = ClipRecord(
            clip=Clip(r.clip.video_id, 0, 0.0, 33.0),
            source=r.source,
            frame_interval=1.5,
            features={"resnet": r.features["resnet"][:22], "slowfast": r.features["slowfast"][:22]},
            cues=r.cues,
            cue_token_ids=r.cue_token_ids,
            sub2frames=spans,
            unique_sub2frames=spans,
        )
    return recs


def vsm_config() -> HeroConfig:
    """Deterministic VSM: no dropout, local loss always on; every cue becomes a query."""
    return build_config("tiny", dropout=0.0, attention_dropout=0.0, vsm_local_drop_prob=0.0)


@pytest.mark.slow  # two fresh processes importing torch: ~25 s on two shared cores
def test_vsm_gathers_negatives_across_workers_with_gradients(tmp_path: Path) -> None:
    """Two gloo workers with two clips each train exactly like one process with all four:
    their averaged gradients equal the single-process gradients."""
    script = tmp_path / "worker.py"
    grads_file = tmp_path / "grads.pt"
    script.write_text(
        _WORKER.format(
            tests=str(Path(__file__).parent),
            init=f"file://{tmp_path / 'rendezvous'}",
            out=str(grads_file),
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    worker_losses = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]
    gathered = torch.load(grads_file)

    torch.manual_seed(0)
    model = HeroForPretraining(vsm_config())
    recs = vsm_records()
    halves = [
        make_batch(recs[i : i + 2], "vsm", model.config, np.random.default_rng(0)) for i in (0, 2)
    ]
    full = make_batch(recs, "vsm", model.config, np.random.default_rng(0))
    assert full is not None
    # every cue is a query (4 per clip, 5 allowed), so the halves are the full batch split
    assert full["query_clip"].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    assert full["step_mask"].sum(1).tolist() == [24, 24, 22, 22]
    out = model(full, "vsm")
    out["loss"].backward()
    assert sum(w["loss"] for w in worker_losses) / 2 == pytest.approx(
        float(out["loss"].detach()), rel=1e-5
    )
    assert all(h is not None for h in halves)
    for name, p in model.named_parameters():
        want = p.grad if p.grad is not None else torch.zeros_like(p)
        assert torch.allclose(gathered[name], want, atol=1e-6, rtol=1e-4), name
