"""The HERO encoder: embedders, the Cross-modal and Temporal Transformers, the query encoder.

Shapes (B clips of at most T steps, S cue sequences of at most Lf steps and Lt tokens, D the
hidden width, F = 4352 the per-step feature)::

    features (B, T, F) ─┬─ gather each cue's steps ──► (S, Lf, F) ─► FrameEmbedding ─┐
                        │  cue tokens (S, Lt) ─► TextEmbedding ─────────────────────┤
                        │        [steps | tokens | padding]   (S, L = max(nf + nt), D)
                        │        Cross-modal Transformer (6 layers), per cue
                        │        step outputs (S, Lf, D) scattered back to their clip
                        │                                   │ (B, T, D), 0 where no cue
                        └─ FeatureProjection (residual) ───(+)─► (B, T, D)
                                 [FOM shuffles steps here]
                           StepEmbedding + Temporal Transformer (3 layers) ─► (B, T, D)

    query tokens (Q, Lq) ─► TextEmbedding ─► Cross-modal Transformer (text alone)
                           ─► QueryEncoder (projection, positions, one attention layer,
                              attention pooling) ─► (Q, D)

A cue's sequence holds its steps first, then its tokens, then padding, as HERO's gather index
builds it; positions restart at 0 for steps and for tokens. Steps no cue owns reach the
Temporal Transformer through the residual projection only (as in HERO). Attention is PyTorch's
scaled-dot-product attention with a boolean key mask, so padding never changes an output at a
real position. Components take sizes as arguments; :func:`build_encoder` and
:func:`build_query_encoder` read a :class:`~hero_model.config.HeroConfig`.

Names: HERO calls a feature step (one 1.5 s grid slot) a "frame"; here a frame is a video frame
and a step is a step. HERO's word stays only where it names checkpoint tensors
(:class:`FrameEmbedding` as ``frame_embed``, whose position table is the "frame position
table") and in the paper's task names (masked frame feature regression, frame order modelling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hero_model.config import HeroConfig

__all__ = [
    "FeatureProjection",
    "FrameEmbedding",
    "HeroEncoder",
    "QueryEncoder",
    "SelfAttention",
    "StepEmbedding",
    "TextEmbedding",
    "TransformerEncoder",
    "TransformerLayer",
    "build_encoder",
    "build_query_encoder",
    "init_weights",
]


def _embedding(rows: int, dim: int, padding_idx: int | None = None) -> nn.Embedding:
    """An uninitialised ``nn.Embedding`` (:func:`init_weights` fills it). Passing the weight
    skips PyTorch's own ``normal_`` init, which on the meta device imports torch._dynamo and
    sympy (seconds) just to count parameters."""
    return nn.Embedding(rows, dim, padding_idx=padding_idx, _weight=torch.empty(rows, dim))


class SelfAttention(nn.Module):
    """Multi-head self-attention with a post-LayerNorm residual (BERT's attention block)."""

    def __init__(
        self, hidden: int, heads: int, *, dropout: float, attention_dropout: float, eps: float
    ) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.attention_dropout = attention_dropout
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` (N, L, D), ``mask`` (N, L) bool, True at real positions -> (N, L, D)."""
        n, length, d = x.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, length, h, d // h).transpose(1, 2)  # (N, H, L, D/H)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        p = self.attention_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :], dropout_p=p)
        y = y.transpose(1, 2).reshape(n, length, d)  # (N, L, D)
        return self.norm(x + self.dropout(self.out(y)))


class TransformerLayer(nn.Module):
    """One post-LN Transformer layer: self-attention, then a GELU feed-forward block."""

    def __init__(
        self,
        hidden: int,
        heads: int,
        ffn: int,
        *,
        dropout: float,
        attention_dropout: float,
        eps: float,
    ) -> None:
        super().__init__()
        self.attention = SelfAttention(
            hidden, heads, dropout=dropout, attention_dropout=attention_dropout, eps=eps
        )
        self.ffn_in = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.dropout = nn.Dropout(dropout)
        self.ffn_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` (N, L, D), ``mask`` (N, L) bool -> (N, L, D)."""
        x = self.attention(x, mask)
        return self.ffn_norm(x + self.dropout(self.ffn_out(F.gelu(self.ffn_in(x)))))


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerLayer`."""

    def __init__(self, layers: list[TransformerLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` (N, L, D), ``mask`` (N, L) bool -> (N, L, D)."""
        for layer in self.layers:
            x = layer(x, mask)
        return x


class TextEmbedding(nn.Module):
    """Token + position embeddings, LayerNorm, dropout (RoBERTa's, positions from 0 as HERO).

    HERO also added a token-type vector, the same one to every token and frame; it is folded
    into the position tables when a checkpoint is loaded (:mod:`hero_model.init`).
    """

    def __init__(
        self,
        vocab_rows: int,
        hidden: int,
        positions: int,
        *,
        pad_id: int,
        dropout: float,
        eps: float,
    ) -> None:
        super().__init__()
        self.word = _embedding(vocab_rows, hidden, padding_idx=pad_id)
        self.position = _embedding(positions, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (N, L) -> (N, L, D)."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.dropout(self.norm(self.word(ids) + self.position(positions)))


class FrameEmbedding(nn.Module):
    """The Cross-modal Transformer's video embedder: LayerNorm(F) -> Linear -> D, + positions.

    ``mask_vector`` is MFM's learned mask embedding at this level: added to masked steps,
    whose features the caller has zeroed.
    """

    def __init__(
        self, feature_dim: int, hidden: int, positions: int, *, dropout: float, eps: float
    ) -> None:
        super().__init__()
        self.feature_norm = nn.LayerNorm(feature_dim, eps=eps)
        self.proj = nn.Linear(feature_dim, hidden)
        self.position = _embedding(positions, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.mask_vector = nn.Parameter(torch.zeros(feature_dim))

    def forward(self, feats: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
        """``feats`` (N, Lf, F), ``masked`` (N, Lf) bool or None -> (N, Lf, D)."""
        if masked is not None:
            feats = feats + masked[..., None].to(feats.dtype) * self.mask_vector
        positions = torch.arange(feats.shape[1], device=feats.device)
        x = self.proj(self.feature_norm(feats)) + self.position(positions)
        return self.dropout(self.norm(x))


class FeatureProjection(nn.Module):
    """The residual path: LayerNorm(F) -> dropout -> Linear -> ReLU, per step.

    ``mask_vector`` is MFM's learned mask embedding at the clip level.
    """

    def __init__(self, feature_dim: int, hidden: int, *, dropout: float, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(feature_dim, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(feature_dim, hidden)
        self.mask_vector = nn.Parameter(torch.zeros(feature_dim))

    def forward(self, feats: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
        """``feats`` (B, T, F), ``masked`` (B, T) bool or None -> (B, T, D)."""
        if masked is not None:
            feats = feats + masked[..., None].to(feats.dtype) * self.mask_vector
        return F.relu(self.proj(self.dropout(self.norm(feats))))


class StepEmbedding(nn.Module):
    """The Temporal Transformer's input: step + position embedding, LayerNorm, dropout."""

    def __init__(self, hidden: int, positions: int, *, dropout: float, eps: float) -> None:
        super().__init__()
        self.position = _embedding(positions, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, D) -> (B, T, D)."""
        positions = torch.arange(x.shape[1], device=x.device)
        return self.dropout(self.norm(x + self.position(positions)))


class HeroEncoder(nn.Module):
    """HERO's two-level encoder: per-cue Cross-modal Transformer, clip-level Temporal one.

    Batch keys it reads (see :func:`hero_model.batch.make_batch`): ``features`` (B, T, F)
    float16, ``step_mask`` (B, T), ``cue_ids`` (S, Lt), ``cue_num_tokens`` (S,), ``cue_clip``
    (S,), ``cue_steps`` (S, Lf), ``cue_num_steps`` (S,).
    """

    def __init__(
        self,
        text_embed: TextEmbedding,
        frame_embed: FrameEmbedding,
        cross: TransformerEncoder,
        residual: FeatureProjection,
        step_embed: StepEmbedding,
        temporal: TransformerEncoder,
    ) -> None:
        super().__init__()
        self.text_embed = text_embed
        self.frame_embed = frame_embed
        self.cross = cross
        self.residual = residual
        self.step_embed = step_embed
        self.temporal = temporal

    @property
    def hidden(self) -> int:
        """Output width D."""
        return self.text_embed.word.embedding_dim

    def cross_modal(
        self,
        ids: torch.Tensor,
        num_tokens: torch.Tensor,
        step_feats: torch.Tensor | None = None,
        num_steps: torch.Tensor | None = None,
        step_masked: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the Cross-modal Transformer on S sequences of steps then tokens.

        Args:
            ids: (S, Lt) token ids, padded.
            num_tokens: (S,) real tokens per sequence (>= 1).
            step_feats: (S, Lf, F) the cue's step features, padded; None for text alone.
            num_steps: (S,) real steps per sequence (may be 0).
            step_masked: (S, Lf) bool, steps MFM masked (features already zeroed).

        Returns:
            step outputs (S, Lf, D) and token outputs (S, Lt, D); padding rows are junk.
        """
        text = self.text_embed(ids)  # (S, Lt, D)
        s, lt, d = text.shape
        tok = torch.arange(lt, device=ids.device)
        if step_feats is None or step_feats.shape[1] == 0:
            mask = tok[None, :] < num_tokens[:, None]  # (S, Lt)
            out = self.cross(text, mask)
            return text.new_zeros(s, 0, d), out
        assert num_steps is not None
        embedded = self.frame_embed(step_feats, step_masked)  # (S, Lf, D)
        lf = embedded.shape[1]
        length = int((num_steps + num_tokens).max())
        pos = torch.arange(length, device=ids.device)[None, :]  # (1, L)
        nf = num_steps[:, None]
        # Source index into cat([steps, text]): steps first, then tokens, then padding.
        src = torch.where(pos < nf, pos, (lf + pos - nf).clamp(max=lf + lt - 1))  # (S, L)
        src = torch.where(pos < nf + num_tokens[:, None], src, 0)
        both = torch.cat([embedded, text.to(embedded.dtype)], dim=1)  # (S, Lf + Lt, D)
        x = both.gather(1, src[..., None].expand(-1, -1, d))  # (S, L, D)
        mask = pos < nf + num_tokens[:, None]  # (S, L)
        out = self.cross(x, mask)  # (S, L, D), L >= Lf since every sequence has a token
        step_out = out[:, :lf]  # (S, Lf, D): step j of the cue sits at position j
        tok_pos = (nf + tok[None, :]).clamp(max=out.shape[1] - 1)  # (S, Lt)
        text_out = out.gather(1, tok_pos[..., None].expand(-1, -1, d))  # (S, Lt, D)
        return step_out, text_out

    def encode_text(self, ids: torch.Tensor, num_tokens: torch.Tensor) -> torch.Tensor:
        """Text alone through the Cross-modal Transformer: (Q, Lq) -> (Q, Lq, D)."""
        return self.cross_modal(ids, num_tokens)[1]

    def fuse(
        self, batch: dict[str, torch.Tensor], mfm_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Cross-modal fusion plus the residual projection: the Temporal input (B, T, D).

        ``mfm_mask`` (B, T) bool zeroes those steps' features and adds the mask embedding, at
        both levels.
        """
        feats = batch["features"].to(self.residual.proj.weight.dtype)  # (B, T, F)
        if mfm_mask is not None:
            feats = feats.masked_fill(mfm_mask[..., None], 0.0)
        b, t, _ = feats.shape
        fused = self.residual(feats, mfm_mask)  # (B, T, D)
        cue_clip = batch["cue_clip"]
        if cue_clip.numel() == 0:
            return fused
        steps = batch["cue_steps"]  # (S, Lf)
        num_steps = batch["cue_num_steps"]
        cue_feats = feats[cue_clip[:, None], steps]  # (S, Lf, F)
        cue_masked = mfm_mask[cue_clip[:, None], steps] if mfm_mask is not None else None
        step_out, _ = self.cross_modal(
            batch["cue_ids"], batch["cue_num_tokens"], cue_feats, num_steps, cue_masked
        )
        valid = torch.arange(steps.shape[1], device=steps.device)[None, :] < num_steps[:, None]
        flat = (cue_clip[:, None] * t + steps)[valid]  # (n_owned,)
        gathered = fused.new_zeros(b * t, fused.shape[-1])
        gathered = gathered.index_add(0, flat, step_out[valid].to(fused.dtype))
        return fused + gathered.view(b, t, -1)

    def encode_steps(self, x: torch.Tensor, step_mask: torch.Tensor) -> torch.Tensor:
        """The Temporal Transformer: (B, T, D) -> (B, T, D)."""
        return self.temporal(self.step_embed(x), step_mask)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Contextual step embeddings (B, T, D) of the clips in ``batch``."""
        return self.encode_steps(self.fuse(batch), batch["step_mask"])


class QueryEncoder(nn.Module):
    """VSM's query head on Cross-modal text outputs: projection, positions, one attention
    layer, then attention pooling to one vector per query (HERO's ``QueryFeatEncoder``)."""

    def __init__(
        self,
        hidden: int,
        heads: int,
        positions: int,
        *,
        dropout: float,
        attention_dropout: float,
        eps: float,
        attention_eps: float,
    ) -> None:
        super().__init__()
        self.input_norm = nn.LayerNorm(hidden, eps=eps)
        self.input_dropout = nn.Dropout(dropout)
        self.input_proj = nn.Linear(hidden, hidden)
        self.position = _embedding(positions, hidden)
        self.position_norm = nn.LayerNorm(hidden, eps=eps)
        self.position_dropout = nn.Dropout(dropout)
        self.attention = SelfAttention(
            hidden, heads, dropout=dropout, attention_dropout=attention_dropout, eps=attention_eps
        )
        self.pool = nn.Linear(hidden, 1, bias=False)

    def forward(self, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``text`` (Q, L, D) Cross-modal outputs, ``mask`` (Q, L) bool -> (Q, D)."""
        x = F.relu(self.input_proj(self.input_dropout(self.input_norm(text))))
        positions = torch.arange(x.shape[1], device=x.device)
        x = self.position_dropout(self.position_norm(x + self.position(positions)))
        x = self.attention(x, mask)  # (Q, L, D)
        scores = self.pool(x).squeeze(-1).float().masked_fill(~mask, float("-inf"))  # (Q, L)
        weights = scores.softmax(dim=-1).to(x.dtype)
        return torch.einsum("ql,qld->qd", weights, x)


def init_weights(module: nn.Module, std: float) -> None:
    """HERO's initialisation: normal(0, std) linear and embedding weights, zero biases, unit
    LayerNorms, normal(0, std) mask vectors. Convolutions keep PyTorch's default. A module on
    the meta device (sizes only) is left alone."""
    if any(p.is_meta for p in module.parameters()):
        return
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        if isinstance(m, (FrameEmbedding, FeatureProjection)):
            nn.init.normal_(m.mask_vector, 0.0, std)


def _stack(config: HeroConfig, n: int) -> TransformerEncoder:
    return TransformerEncoder(
        [
            TransformerLayer(
                config.hidden,
                config.heads,
                config.ffn,
                dropout=config.dropout,
                attention_dropout=config.attention_dropout,
                eps=config.encoder_norm_eps,
            )
            for _ in range(n)
        ]
    )


def build_encoder(config: HeroConfig) -> HeroEncoder:
    """The :class:`HeroEncoder` of ``config``, initialised (:func:`init_weights`)."""
    c = config
    encoder = HeroEncoder(
        text_embed=TextEmbedding(
            c.padded_vocab_size,
            c.hidden,
            c.max_text_positions,
            pad_id=c.pad_id,
            dropout=c.dropout,
            eps=c.norm_eps,
        ),
        frame_embed=FrameEmbedding(
            c.feature_dim, c.hidden, c.max_clip_steps, dropout=c.dropout, eps=c.norm_eps
        ),
        cross=_stack(c, c.cross_layers),
        residual=FeatureProjection(c.feature_dim, c.hidden, dropout=c.dropout, eps=c.norm_eps),
        step_embed=StepEmbedding(c.hidden, c.max_step_positions, dropout=c.dropout, eps=c.norm_eps),
        temporal=_stack(c, c.temporal_layers),
    )
    init_weights(encoder, c.init_std)
    return encoder


def build_query_encoder(config: HeroConfig) -> QueryEncoder:
    """The :class:`QueryEncoder` of ``config``, initialised (:func:`init_weights`)."""
    c = config
    query = QueryEncoder(
        c.hidden,
        c.heads,
        c.max_text_positions,
        dropout=c.dropout,
        attention_dropout=c.attention_dropout,
        eps=c.norm_eps,
        attention_eps=c.encoder_norm_eps,
    )
    init_weights(query, c.init_std)
    return query
