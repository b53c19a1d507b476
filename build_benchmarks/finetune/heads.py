"""Finetuning heads: HERO's video-QA head, and the VSM head's scores over a clip corpus.

Video QA (HERO's ``HeroForVideoQA`` semantics; B questions, C candidates, T steps, Lq QA
tokens, D hidden)::

    clip + candidate c's QA text in every cue ─► encoder.fuse ─► StepEmbedding    (B·C, T, D)
    "</s> question </s> answer"  ─► the Cross-modal text embedder                  (B·C, Lq, D)
          [steps | QA tokens] ─► Temporal Transformer ─► step outputs              (B·C, T, D)
    answer:  attention pooling over steps (per candidate) ─► MLP ─► one logit      (B, C)
    span:    attention pooling over candidates (per step) ─► MLP ─► start, end     (B, T) each

Loss: cross-entropy over candidates + ``span_weight`` · mean of the start and end
cross-entropies over steps (questions without ``ts`` are left out of the span loss). Padding
(shorter clips, shorter texts, missing candidates) is masked everywhere, so a candidate's score
does not depend on what else is in the batch.

Retrieval uses :class:`hero_model.pretrain.HeroForPretraining`'s VSM head as is (training:
its ``forward(batch, "vsm")``); :func:`corpus_scores` scores queries against every clip of a
corpus with the same formulas, without materialising a (query, clip) copy of the steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hero_model.config import HeroConfig
from hero_model.model import HeroEncoder, build_encoder, init_weights
from hero_model.pretrain import HeroForPretraining, vsm_scores

__all__ = ["HeroForVideoQA", "MLPHead", "corpus_scores"]

_NEG = -1e4  # logit of positions that do not exist (HERO's mask_logits value)


class MLPHead(nn.Module):
    """Linear(D, 2D) -> GELU -> LayerNorm -> Linear(2D, out) (HERO's ``MLPLayer``)."""

    def __init__(self, hidden: int, out: int, *, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, 2 * hidden)
        self.norm = nn.LayerNorm(2 * hidden, eps=eps)
        self.out = nn.Linear(2 * hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., out)."""
        return self.out(self.norm(F.gelu(self.dense(x))))


class HeroForVideoQA(nn.Module):
    """HERO's encoder with the video-QA head (module docstring).

    Attributes:
        config: the model config.
        encoder: the :class:`~hero_model.model.HeroEncoder` (from a pretraining checkpoint).
        span_weight: weight of the span loss.
    """

    def __init__(
        self,
        config: HeroConfig,
        encoder: HeroEncoder | None = None,
        *,
        span_weight: float = 0.4,
        qa_in_cues: bool = True,
    ) -> None:
        super().__init__()
        c = config
        self.config = config
        self.span_weight = span_weight
        self.qa_in_cues = qa_in_cues
        self.encoder = encoder if encoder is not None else build_encoder(c)
        self.qa_pool = nn.Linear(c.hidden, 1, bias=False)
        self.qa_head = MLPHead(c.hidden, 1, eps=c.norm_eps)
        self.span_pool = nn.Linear(c.hidden, 1, bias=False)
        self.span_head = MLPHead(c.hidden, 2, eps=c.norm_eps)
        for head in (self.qa_pool, self.qa_head, self.span_pool, self.span_head):
            init_weights(head, c.init_std)
        with torch.no_grad():  # HERO makes its span pool a copy of the fresh answer pool
            self.span_pool.weight.copy_(self.qa_pool.weight)

    def logits(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Answer logits (B, C) and start / end logits (B, T), float32, padding at -1e4."""
        device = self.qa_pool.weight.device
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        enc = self.encoder
        cand_mask = batch["candidate_mask"]  # (B, C)
        b, c = cand_mask.shape
        step_mask = batch["step_mask"]  # (B·C, T)
        t = step_mask.shape[1]
        steps = enc.step_embed(enc.fuse(batch))  # (B·C, T, D)
        qa_ids, qa_len = batch["qa_ids"], batch["qa_num_tokens"]
        qa = enc.text_embed(qa_ids).to(steps.dtype)  # (B·C, Lq, D)
        qa_mask = torch.arange(qa_ids.shape[1], device=device)[None, :] < qa_len[:, None]
        x = torch.cat([steps, qa], dim=1)  # (B·C, T + Lq, D)
        out = enc.temporal(x, torch.cat([step_mask, qa_mask], dim=1))[:, :t]  # (B·C, T, D)
        video = out.view(b, c, t, -1)  # (B, C, T, D)
        mask = step_mask.view(b, c, t)  # (B, C, T)

        qa_w = self.qa_pool(video).squeeze(-1).float().masked_fill(~mask, float("-inf"))
        pooled = torch.einsum("bct,bctd->bcd", qa_w.softmax(-1).to(video.dtype), video)
        answer = self.qa_head(pooled).squeeze(-1).float().masked_fill(~cand_mask, _NEG)  # (B, C)

        # Per step, weigh the candidates (HERO pools its span features over them).
        span_w = self.span_pool(video).squeeze(-1).float()  # (B, C, T)
        span_w = span_w.masked_fill(~cand_mask[:, :, None], float("-inf")).softmax(dim=1)
        by_step = torch.einsum("bct,bctd->btd", span_w.to(video.dtype), video)  # (B, T, D)
        se = self.span_head(by_step).float()  # (B, T, 2)
        real = mask[:, 0]  # (B, T): every candidate row of a question has its clip's steps
        start = se[..., 0].masked_fill(~real, _NEG)
        end = se[..., 1].masked_fill(~real, _NEG)
        return answer, start, end

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss", "qa", "span", "acc"}`` (metrics detached) of a :func:`qa_batch`."""
        answer, start, end = self.logits(batch)
        targets = batch["targets"].to(answer.device)
        spans = batch["span_targets"].to(answer.device)
        qa_loss = F.cross_entropy(answer, targets)
        has_span = spans[:, 0] >= 0
        if bool(has_span.any()):
            span_loss = 0.5 * (
                F.cross_entropy(start[has_span], spans[has_span, 0])
                + F.cross_entropy(end[has_span], spans[has_span, 1])
            )
        else:
            span_loss = answer.sum() * 0.0
        loss = qa_loss + self.span_weight * span_loss
        acc = (answer.argmax(-1) == targets).float().mean()
        return {
            "loss": loss,
            "qa": qa_loss.detach(),
            "span": span_loss.detach(),
            "acc": acc.detach(),
        }


@torch.no_grad()
def corpus_scores(
    model: HeroForPretraining,
    queries: torch.Tensor,
    steps: torch.Tensor,
    step_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VSM scores of Q queries against N clips.

    Args:
        model: the model whose VSM head scores.
        queries: (Q, D) query vectors (:meth:`HeroForPretraining.encode_queries`).
        steps: (N, T, D) contextual step embeddings of the clips.
        step_mask: (N, T) real steps.

    Returns:
        global scores (Q, N) (cosine, max over steps), start and end log-probabilities
        (Q, N, T) over each clip's real steps (the same start/end convolutions as
        :meth:`HeroForPretraining.span_logits`, for every clip at once), float32. What the
        padded steps hold does not matter: their similarities are zeroed before the
        convolutions, as in training, so a clip's scores do not depend on the clips it was
        encoded or scored with.
    """
    glob = vsm_scores(queries, steps, step_mask)  # (Q, N)
    q, (n, t) = queries.shape[0], step_mask.shape
    mask = step_mask[None].expand(q, n, t)
    sim = torch.einsum("qd,ntd->qnt", model.vsm_query_proj(queries), steps)  # (Q, N, T)
    sim = sim.masked_fill(~mask, 0.0)  # the kernel reaches past a clip's last real step
    flat = sim.reshape(q * n, 1, t)  # (Q·N, 1, T)
    start = model.vsm_start(flat).view(q, n, t).float().masked_fill(~mask, _NEG)
    end = model.vsm_end(flat).view(q, n, t).float().masked_fill(~mask, _NEG)
    return glob.float(), start.log_softmax(-1), end.log_softmax(-1)
