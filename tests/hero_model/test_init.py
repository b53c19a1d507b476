"""Loading reference HERO checkpoints and RoBERTa into our names (synthetic state dicts)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hero_model.config import HeroConfig, build_config
from hero_model.init import (
    REFERENCE_IGNORED,
    REFERENCE_TABLE,
    convert_hero_state_dict,
    load_hero_checkpoint,
    load_roberta_into,
    reference_shapes,
)
from hero_model.pretrain import HeroForPretraining
from hero_model.runtime import CheckpointError

REPO = Path(__file__).resolve().parents[2]
TINY = build_config("tiny", dropout=0.0, attention_dropout=0.0)
F_ = "v_encoder.f_encoder."


def reference_state(config: HeroConfig, seed: int = 0) -> dict[str, object]:
    """A state dict named and shaped as the reference HeroForPretraining saves it (fp16, as
    apex O2 left it), with random values; the LM decoder is the word table, as when tied."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, object] = {
        k: torch.randn(s, generator=g).half() for k, s in reference_shapes(config).items()
    }
    state[f"{F_}lm_head.decoder.weight"] = state[f"{F_}embeddings.word_embeddings.weight"]
    state["vocab_padded"] = True
    return state


def test_every_parameter_is_covered_and_mapped() -> None:
    state = reference_state(TINY)
    model = HeroForPretraining(TINY)
    report = load_hero_checkpoint(model, state)
    assert report.kept == []  # every one of our parameters came from the file
    assert sorted(report.loaded) == sorted(n for n, _ in model.named_parameters())
    assert set(report.ignored) == set(REFERENCE_IGNORED)
    p = dict(model.named_parameters())

    def same(ours: str, ref: str) -> bool:
        return torch.equal(p[ours].detach(), state[ref].float())  # type: ignore[union-attr]

    assert same(
        "encoder.cross.layers.1.attention.query.weight",
        f"{F_}encoder.layer.1.attention.self.query.weight",
    )
    assert same(
        "encoder.temporal.layers.0.ffn_norm.bias",
        "v_encoder.c_encoder.encoder.layer.0.output.LayerNorm.bias",
    )
    assert same("query_encoder.pool.weight", "q_feat_attn.modular_vector_mapping.weight")
    assert same("vsm_end.weight", "video_ed_predictor.weight")
    assert torch.equal(
        p["encoder.residual.mask_vector"].detach(),
        state["v_encoder.mask_embedding.weight"][1].float(),  # type: ignore[index]
    )


def test_type_vector_folded_into_the_positions_gives_heros_embeddings() -> None:
    """HERO: LayerNorm(word + position + type[1]) for tokens and LayerNorm(linear(LN(feat)) +
    position + type[1]) for frames; ours, with the type folded in, gives the same."""
    state = reference_state(TINY)
    model = HeroForPretraining(TINY).eval()
    load_hero_checkpoint(model, state)
    s = {k: v.float() for k, v in state.items() if isinstance(v, torch.Tensor)}
    type1 = s[f"{F_}embeddings.token_type_embeddings.weight"][1]
    ids = torch.tensor([[0, 7, 9, 2]])
    x = (
        s[f"{F_}embeddings.word_embeddings.weight"][ids]
        + s[f"{F_}embeddings.position_embeddings.weight"][:4]
        + type1
    )
    ln = f"{F_}embeddings.LayerNorm."
    want = F.layer_norm(x, (32,), s[ln + "weight"], s[ln + "bias"], eps=1e-5)
    assert torch.allclose(model.encoder.text_embed(ids), want, atol=1e-5)
    feats = torch.randn(1, 3, 4352)
    img = f"{F_}img_embeddings."
    normed = F.layer_norm(
        feats, (4352,), s[img + "img_LayerNorm.weight"], s[img + "img_LayerNorm.bias"], eps=1e-5
    )
    x = F.linear(normed, s[img + "img_linear.weight"], s[img + "img_linear.bias"])
    x = x + s[img + "position_embeddings.weight"][:3] + type1
    want = F.layer_norm(x, (32,), s[img + "LayerNorm.weight"], s[img + "LayerNorm.bias"], eps=1e-5)
    assert torch.allclose(model.encoder.frame_embed(feats), want, atol=1e-4)


def test_base_table_covers_every_parameter_by_shape() -> None:
    """The names and shapes hero-tv-ht100.pt holds (211 tensors and the vocab_padded flag),
    some spelt out from the reference code, convert to exactly our base parameters."""
    config = build_config("base")
    shapes = reference_shapes(config)
    assert len(shapes) == 211
    for name, shape in {
        f"{F_}embeddings.word_embeddings.weight": (50272, 768),
        f"{F_}embeddings.token_type_embeddings.weight": (2, 768),
        f"{F_}img_embeddings.position_embeddings.weight": (100, 768),
        f"{F_}img_embeddings.mask_embedding.weight": (2, 4352),
        f"{F_}encoder.layer.5.intermediate.dense.weight": (3072, 768),
        "v_encoder.c_encoder.encoder.layer.2.output.LayerNorm.bias": (768,),
        "v_encoder.frame_transform.net.1.weight": (768, 4352),
        "v_encoder.fom_output.linear_2.weight": (100, 1536),
        "v_encoder.feat_regress.net.3.weight": (4352, 768),
        "q_feat_attn.query_pos_embed.position_embeddings.weight": (514, 768),
        "video_st_predictor.weight": (1, 1, 5),
    }.items():
        assert shapes[name] == shape, name
    # zero fp16 tensors (not torch.empty: uninitialised memory can hold NaN, and NaN != NaN
    # makes the tied LM decoder look different from the word table)
    state = {k: torch.zeros(s, dtype=torch.float16) for k, s in shapes.items()}
    state[f"{F_}lm_head.decoder.weight"] = state[f"{F_}embeddings.word_embeddings.weight"]
    ours, report = convert_hero_state_dict(state, config)
    with torch.device("meta"):
        model = HeroForPretraining(config)
    assert report.kept == []
    assert {k: tuple(v.shape) for k, v in ours.items()} == {
        n: tuple(p.shape) for n, p in model.named_parameters()
    }


def test_file_round_trip_and_unpadded_vocab(tmp_path: Path) -> None:
    state = reference_state(TINY)
    path = tmp_path / "hero.pt"
    torch.save(state, path)
    model = HeroForPretraining(TINY)
    assert load_hero_checkpoint(model, path).kept == []
    # the same checkpoint with an unpadded vocabulary (tiny: 64 rows is already a multiple of 8)
    cfg = build_config("tiny", vocab_size=61, random_token_high=61)
    state = reference_state(cfg)
    for key in (f"{F_}embeddings.word_embeddings.weight", f"{F_}lm_head.bias"):
        state[key] = state[key][:61]  # type: ignore[index]
    state[f"{F_}lm_head.decoder.weight"] = state[f"{F_}embeddings.word_embeddings.weight"]
    model = HeroForPretraining(cfg)
    load_hero_checkpoint(model, state)
    assert not model.encoder.text_embed.word.weight[61:].any()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s.update({"v_encoder.extra.weight": torch.zeros(2)}),
            r"1 names the reference table does not know: v_encoder\.extra\.weight",
        ),
        (
            lambda s: s.pop("video_query_linear.bias"),
            r"missing 1 reference names: video_query_linear\.bias",
        ),
        (
            lambda s: s.update(
                {f"{F_}img_embeddings.position_embeddings.weight": torch.zeros(100, 32)}
            ),
            r"img_embeddings\.position_embeddings\.weight has shape \(100, 32\), the model's "
            r"encoder\.frame_embed\.position\.weight \(64, 32\) \(set max_clip_steps",
        ),
        (
            lambda s: s.update({f"{F_}lm_head.decoder.weight": torch.zeros(64, 32)}),
            r"lm_head\.decoder\.weight differs from the word embeddings",
        ),
        (
            lambda s: s.update({"v_encoder.mask_embedding.weight": torch.zeros(3, 4352)}),
            r"expected a \(2, dim\) mask table",
        ),
    ],
)
def test_bad_checkpoints_are_refused_clearly(edit, message: str) -> None:
    state = reference_state(TINY)
    edit(state)
    model = HeroForPretraining(TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(
        CheckpointError, match=r"^state dict: cannot load as a HERO checkpoint: .*" + message
    ):
        load_hero_checkpoint(model, state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


def test_not_strict_loads_what_it_can(caplog: pytest.LogCaptureFixture) -> None:
    state = reference_state(TINY)
    state.pop("video_query_linear.weight")
    state["extra.head.weight"] = torch.zeros(3)
    model = HeroForPretraining(TINY)
    with caplog.at_level(logging.WARNING, logger="hero_model.init"):
        report = load_hero_checkpoint(model, state, strict=False)
    assert report.kept == ["vsm_query_proj.weight"]
    assert "extra.head.weight" in report.ignored
    assert "missing 1 reference names" in caplog.text


def test_unreadable_files(tmp_path: Path) -> None:
    model = HeroForPretraining(TINY)
    with pytest.raises(CheckpointError, match=r"nope\.pt: HERO checkpoint not found"):
        load_hero_checkpoint(model, tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a readable checkpoint"):
        load_hero_checkpoint(model, junk)
    listed = tmp_path / "list.pt"
    torch.save([1, 2], listed)
    with pytest.raises(CheckpointError, match=r"list\.pt: holds a list, not a state dict"):
        load_roberta_into(model, listed)
    with pytest.raises(TypeError, match="expected a HeroForPretraining"):
        load_hero_checkpoint(torch.nn.Linear(2, 2), {})


def test_docs_list_the_whole_table() -> None:
    text = (REPO / "docs" / "model.md").read_text(encoding="utf-8")
    for ours, ref, _ in REFERENCE_TABLE:
        assert f"`{ours}`" in text and f"`{ref}`" in text, (ours, ref)
    for name in REFERENCE_IGNORED:
        assert f"`{name}`" in text, name


# --- RoBERTa ------------------------------------------------------------------------------------


def roberta_state(config: HeroConfig, layers: int = 12, prefix: str = "roberta.") -> dict:
    """HuggingFace RobertaForMaskedLM names at ``config``'s width and vocabulary."""
    g = torch.Generator().manual_seed(1)
    d, ffn = config.hidden, config.ffn

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=g)

    state = {
        "embeddings.word_embeddings.weight": r(config.vocab_size, d),
        "embeddings.position_embeddings.weight": r(config.max_text_positions, d),
        "embeddings.token_type_embeddings.weight": r(1, d),
        "embeddings.LayerNorm.weight": r(d),
        "embeddings.LayerNorm.bias": r(d),
    }
    for i in range(layers):
        layer = f"encoder.layer.{i}."
        for name, shape in (
            ("attention.self.query", (d, d)),
            ("attention.self.key", (d, d)),
            ("attention.self.value", (d, d)),
            ("attention.output.dense", (d, d)),
            ("attention.output.LayerNorm", (d,)),
            ("intermediate.dense", (ffn, d)),
            ("output.dense", (d, ffn)),
            ("output.LayerNorm", (d,)),
        ):
            state[layer + name + ".weight"] = r(*shape)
            state[layer + name + ".bias"] = r(shape[0])
    out = {prefix + k: v for k, v in state.items()}
    out["lm_head.dense.weight"] = r(d, d)
    out["lm_head.bias"] = r(config.vocab_size)
    return out


@pytest.mark.parametrize("prefix", ["roberta.", ""])
def test_roberta_layers_1_3_5_7_9_11(tmp_path: Path, prefix: str) -> None:
    config = build_config("tiny", cross_layers=6)
    state = roberta_state(config, prefix=prefix)
    path = tmp_path / "roberta.bin"
    torch.save(state, path)
    model = HeroForPretraining(config)
    frame_pos = model.encoder.frame_embed.position.weight.detach().clone()
    temporal = model.encoder.temporal.layers[0].ffn_in.weight.detach().clone()
    report = load_roberta_into(model, path)
    p = dict(model.named_parameters())
    for dst, src in enumerate([1, 3, 5, 7, 9, 11]):
        for ours, ref in (
            ("attention.key.weight", "attention.self.key.weight"),
            ("ffn_out.bias", "output.dense.bias"),
        ):
            assert torch.equal(
                p[f"encoder.cross.layers.{dst}.{ours}"], state[f"{prefix}encoder.layer.{src}.{ref}"]
            )
    type0 = state[f"{prefix}embeddings.token_type_embeddings.weight"][0]
    assert torch.allclose(
        p["encoder.text_embed.position.weight"],
        state[f"{prefix}embeddings.position_embeddings.weight"] + type0,
    )
    assert torch.allclose(p["encoder.frame_embed.position.weight"], frame_pos + type0)
    assert torch.equal(
        p["encoder.text_embed.word.weight"][:64],
        state[f"{prefix}embeddings.word_embeddings.weight"],
    )
    assert torch.equal(model.encoder.temporal.layers[0].ffn_in.weight, temporal)  # untouched
    assert (
        "lm_head.dense.weight" in report.ignored
        and f"{prefix}encoder.layer.0.output.dense.bias".removeprefix("roberta.") in report.ignored
    )
    assert "mlm_head.dense.weight" in report.kept


def test_roberta_mismatches_are_refused(tmp_path: Path) -> None:
    model = HeroForPretraining(TINY)
    with pytest.raises(
        CheckpointError, match=r"word embeddings are \(50, 32\), the model config has vocab_size 64"
    ):
        load_roberta_into(
            model, roberta_state(build_config("tiny", vocab_size=50, random_token_high=50))
        )
    with pytest.raises(CheckpointError, match=r"not a RoBERTa state dict"):
        load_roberta_into(model, {"bert.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"needs 2 Cross-modal layers"):
        load_roberta_into(model, roberta_state(TINY, layers=1))
