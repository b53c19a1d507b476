"""The encoder: attention masks, the per-cue layout, fusion, the query encoder, sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hero_data.schema import RESNET_DIM, ClipRecord
from hero_data.types import Clip, Cue
from hero_model.batch import make_batch
from hero_model.config import build_config
from hero_model.init import reference_shapes
from hero_model.model import build_encoder, build_query_encoder
from hero_model.pretrain import HeroForPretraining, count_parameters

CFG = build_config("tiny")


def records(
    n: int, lengths: tuple[int, ...], cue_every: int = 4, cue_len: int = 4
) -> list[ClipRecord]:
    """``n`` clips of the given step counts; a cue starts every ``cue_every`` steps and owns
    ``cue_len`` of them; 3-6 random tokens per cue; random features."""
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        t = lengths[i]
        feats = rng.standard_normal((t, 4352)).astype(np.float16)
        spans = [tuple(range(s, min(s + cue_len, t))) for s in range(0, t, cue_every)]
        cues = tuple(Cue(1.5 * sp[0], 1.5 * (sp[-1] + 1), "x") for sp in spans)
        tokens = tuple(tuple(rng.integers(5, 64, rng.integers(3, 7)).tolist()) for _ in spans)
        out.append(
            ClipRecord(
                clip=Clip(f"v{i}", 0, 0.0, 1.5 * t),
                source="x",
                frame_interval=1.5,
                features={"resnet": feats[:, :RESNET_DIM], "slowfast": feats[:, RESNET_DIM:]},
                cues=cues,
                cue_token_ids=tokens,
                sub2frames=tuple(spans),
                unique_sub2frames=tuple(spans),
            )
        )
    return out


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_encoder(CFG).eval()


def batch_of(recs, task: str = "mffr", seed: int = 0) -> dict[str, torch.Tensor]:
    b = make_batch(recs, task, CFG, np.random.default_rng(seed))
    assert b is not None
    return b


def test_padding_never_changes_real_outputs(encoder) -> None:
    b = batch_of(records(3, lengths=(20, 9, 14)))
    out = encoder(b)
    noisy = dict(b)
    pad_steps = ~b["step_mask"]
    feats = b["features"].clone()
    feats[pad_steps] = torch.randn(int(pad_steps.sum()), 4352).half() * 50
    noisy["features"] = feats
    tok_pad = torch.arange(b["cue_ids"].shape[1])[None] >= b["cue_num_tokens"][:, None]
    noisy["cue_ids"] = b["cue_ids"].masked_fill(tok_pad, 7)
    frame_pad = torch.arange(b["cue_steps"].shape[1])[None] >= b["cue_num_steps"][:, None]
    noisy["cue_steps"] = b["cue_steps"].masked_fill(frame_pad, 3)
    out2 = encoder(noisy)
    real = b["step_mask"]
    assert torch.allclose(out[real], out2[real], atol=1e-5)
    assert not torch.allclose(out[pad_steps], out2[pad_steps])  # the noise did reach padding


def test_batched_equals_one_by_one(encoder) -> None:
    recs = records(3, lengths=(20, 9, 14))
    out = encoder(batch_of(recs))
    for i, r in enumerate(recs):
        alone = encoder(batch_of([r]))
        n = r.num_frames
        assert torch.allclose(out[i, :n], alone[0], atol=1e-5), i


def test_cross_modal_layout_matches_one_unpadded_sequence(encoder) -> None:
    """Frames then tokens, positions from 0 for each: a padded batch gives the outputs of each
    sequence run alone at its exact length."""
    torch.manual_seed(1)
    feats = torch.randn(3, 5, 4352)
    num_frames = torch.tensor([5, 2, 0])
    ids = torch.randint(5, 64, (3, 7))
    num_tokens = torch.tensor([3, 7, 4])
    frames, text = encoder.cross_modal(ids, num_tokens, feats, num_frames)
    for s in range(3):
        nf, nt = int(num_frames[s]), int(num_tokens[s])
        x = torch.cat(
            [
                encoder.frame_embed(feats[s : s + 1, :nf]),
                encoder.text_embed(ids[s : s + 1, :nt]),
            ],
            dim=1,
        )
        ref = encoder.cross(x, torch.ones(1, nf + nt, dtype=torch.bool))[0]
        assert torch.allclose(frames[s, :nf], ref[:nf], atol=1e-5)
        assert torch.allclose(text[s, :nt], ref[nf:], atol=1e-5)


def test_steps_without_a_cue_get_the_residual_only(encoder) -> None:
    rec = records(1, lengths=(20,), cue_every=5, cue_len=3)[0]  # steps 3, 4, 8, 9, ... unowned
    b = batch_of([rec])
    fused = encoder.fuse(b)
    residual = encoder.residual(b["features"].float())
    owned = torch.zeros(20, dtype=torch.bool)
    owned[b["cue_steps"][b["cue_num_steps"] > 0].flatten()] = True
    owned_steps = {s for span in rec.unique_sub2frames for s in span}
    assert set(torch.nonzero(owned).flatten().tolist()) == owned_steps
    assert torch.allclose(fused[0, ~owned], residual[0, ~owned], atol=1e-6)
    assert not torch.allclose(fused[0, owned], residual[0, owned], atol=1e-3)


def test_mfm_masks_both_levels(encoder) -> None:
    b = batch_of(records(2, lengths=(12, 12)))
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[0, 1] = mask[1, 7] = True
    fused = encoder.fuse(b, mfm_mask=mask)
    # the masked step's content is gone: changing its feature changes nothing
    other = dict(b)
    feats = b["features"].clone()
    feats[0, 1] = 7.0
    feats[1, 7] = -7.0
    other["features"] = feats
    assert torch.allclose(encoder.fuse(other, mfm_mask=mask), fused, atol=1e-6)
    # ... and the mask vectors are what stands in its place, at both levels
    saved = encoder.frame_embed.mask_vector.detach().clone()
    with torch.no_grad():
        encoder.frame_embed.mask_vector.add_(torch.randn(4352))
    changed = encoder.fuse(b, mfm_mask=mask)
    with torch.no_grad():
        encoder.frame_embed.mask_vector.copy_(saved)
        encoder.residual.mask_vector.add_(torch.randn(4352))
    changed2 = encoder.fuse(b, mfm_mask=mask)
    for c in (changed, changed2):
        assert not torch.allclose(c[0, 1], fused[0, 1], atol=1e-4)


def test_query_encoder_ignores_padding() -> None:
    torch.manual_seed(0)
    q = build_query_encoder(CFG).eval()
    text = torch.randn(2, 6, 32)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    out = q(text, mask)
    text2 = text.clone()
    text2[0, 3:] = 100.0
    assert out.shape == (2, 32)
    assert torch.allclose(q(text2, mask), out, atol=1e-5)
    assert torch.allclose(q(text[:1, :3], mask[:1, :3]), out[:1], atol=1e-5)


def heros_count(d: int = 768, ffn: int = 3072, v: int = 50272, f: int = 4352) -> int:
    """The reference HeroForPretraining's parameters, module by module from its code."""

    def linear(i: int, o: int) -> int:
        return i * o + o

    ln = 2 * d
    layer = 4 * linear(d, d) + ln + linear(d, ffn) + linear(ffn, d) + ln
    f_encoder = (
        v * d + 514 * d + 2 * d + ln  # word, position, token type (2 rows), LayerNorm
        + linear(f, d) + 2 * f + 100 * d + 2 * f + ln  # img_linear, img_LayerNorm, pos, mask, LN
        + 6 * layer + linear(d, d)  # encoder, pooler
        + linear(d, d) + ln + v  # lm_head (decoder tied)
    )  # fmt: skip
    frame_transform = 2 * f + linear(f, d)
    c_encoder = 514 * d + ln + 3 * layer + linear(d, d)
    feat_regress = linear(d, d) + ln + linear(d, f)
    fom_output = linear(d, 2 * d) + 4 * d + linear(2 * d, 100)
    vsm = linear(d, d) + 2 * 5
    q_feat_attn = ln + linear(d, d) + 514 * d + ln + 4 * linear(d, d) + ln + d
    mask_embedding = 2 * f
    return (
        f_encoder + frame_transform + c_encoder + feat_regress + fom_output + vsm + q_feat_attn
        + mask_embedding
    )  # fmt: skip


def test_base_parameter_count_on_meta_device() -> None:
    """119.8 M: HERO's 121.0 M without its two unused poolers, the unused token-type row and
    mask-table rows 0 (see docs/model.md)."""
    config = build_config("base")
    with torch.device("meta"):
        model = HeroForPretraining(config)
    ours = count_parameters(model)
    assert ours == 119_845_838
    shapes = reference_shapes(config)
    buffers_and_tied = (
        "v_encoder.pad",
        "v_encoder.f_encoder.pad",
        "v_encoder.f_encoder.lm_head.decoder.weight",
    )
    reference = sum(math.prod(s) for k, s in shapes.items() if k not in buffers_and_tied)
    assert reference == heros_count() == 121_037_262
    d = config.hidden
    poolers, type_table, mask_rows0 = 2 * (d * d + d), 2 * d, 2 * config.feature_dim
    assert reference - ours == poolers + type_table + mask_rows0
    # the LM head is tied to the word embeddings, counted once
    assert model.mlm_head.bias.shape == (config.padded_vocab_size,)


def test_tiny_parameter_count() -> None:
    assert count_parameters(HeroForPretraining(CFG)) == 497_610
