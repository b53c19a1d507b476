"""HERO's pretraining heads and losses, and :class:`HeroForPretraining`, which runs one task.

Tasks (batches from :func:`hero_model.batch.make_batch`):

- ``mlm``: masked language modelling per cue; each cue's tokens and its steps go through
  the Cross-modal Transformer; the LM head is tied to the word embeddings.
- ``mffr``: masked frame feature regression; L2 distance between the predicted and the raw
  4352-d feature of each masked step, averaged over masked steps (HERO's ``sqrt(sum sq)``).
- ``mnce``: masked frame modelling with noise-contrastive estimation; each masked step's
  prediction is scored (dot product / ``nce_temperature``) against its true feature, the true
  features of the other masked steps and the predictions at every unmasked *real* step of the
  batch (HERO also let padding steps in; we do not).
- ``fom``: frame order modelling; ``fom_prob`` of each clip's steps are shuffled after the
  cross-modal fusion, and a classifier predicts, at each shuffled position, the step's
  original index (cross-entropy; unshuffled positions ignored).
- ``vsm``: video-subtitle matching; up to ``vsm_queries`` cues per clip become queries and
  leave the context. Local: the projected query dotted with its clip's steps, two 1-D
  convolutions -> start and end logits, cross-entropy on the query's first and last step
  (computed in a batch with probability ``1 - vsm_local_drop_prob``). Global: cosine of the
  query and each step, max over steps; hinge losses (margin ``vsm_margin``) against negative
  clips and negative queries of the batch, gathered from all workers with gradients when
  ``torch.distributed`` runs with more than one process. From training step
  ``hard_negative_start_step`` on (see :attr:`HeroForPretraining.train_step`), the
  ``hard_negative_pool`` hardest negatives weigh ``hard_negative_weight`` and the rest 0.1.

``forward`` returns ``{"loss": scalar with grad, <metric>: detached scalar, ...}``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hero_model.batch import TASKS
from hero_model.config import HeroConfig
from hero_model.model import HeroEncoder, build_encoder, build_query_encoder, init_weights

__all__ = [
    "FeatureHead",
    "HeroForPretraining",
    "LMHead",
    "OrderHead",
    "count_parameters",
    "fom_loss",
    "hinge_losses",
    "mffr_loss",
    "mnce_logits",
    "vsm_scores",
]

_NEG = -1e4  # logit for positions that do not exist (HERO's mask_logits value)


class LMHead(nn.Module):
    """MLM head: Linear -> GELU -> LayerNorm -> (tied word embeddings)ᵀ + bias."""

    def __init__(self, hidden: int, vocab_rows: int, *, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_rows))

    def forward(self, x: torch.Tensor, word_weight: torch.Tensor) -> torch.Tensor:
        """``x`` (N, D), ``word_weight`` (V, D) -> logits (N, V)."""
        return F.linear(self.norm(F.gelu(self.dense(x))), word_weight, self.bias)


class FeatureHead(nn.Module):
    """MFFR/MNCE head (shared): Linear -> GELU -> LayerNorm -> Linear to the feature."""

    def __init__(self, hidden: int, feature_dim: int, *, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.out = nn.Linear(hidden, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, F)."""
        return self.out(self.norm(F.gelu(self.dense(x))))


class OrderHead(nn.Module):
    """FOM head: Linear(D, 2D) -> GELU -> LayerNorm -> Linear to ``max_clip_steps`` positions."""

    def __init__(self, hidden: int, positions: int, *, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, 2 * hidden)
        self.norm = nn.LayerNorm(2 * hidden, eps=eps)
        self.out = nn.Linear(2 * hidden, positions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, positions)."""
        return self.out(self.norm(F.gelu(self.dense(x))))


def mffr_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the L2 distance between ``pred`` and ``target`` (both (M, F))."""
    return (pred.float() - target.float()).pow(2).sum(-1).sqrt().mean()


def mnce_logits(
    pred: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """MNCE logits (M, M + N): masked predictions (M, F) against the true features (M, F),
    then against the negatives (N, F); row i's positive is column i."""
    pred = pred.float()
    pos = pred @ target.float().t()  # (M, M)
    neg = pred @ negatives.float().t()  # (M, N)
    return torch.cat([pos, neg], dim=1) / temperature


def fom_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``logits`` (N, C) on ``targets`` (N,), -1 ignored."""
    return F.cross_entropy(logits.float(), targets, ignore_index=-1)


def vsm_scores(queries: torch.Tensor, steps: torch.Tensor, step_mask: torch.Tensor) -> torch.Tensor:
    """Cosine of each query (Q, D) with each step (B, T, D), max over real steps -> (Q, B)."""
    q = F.normalize(queries.float(), dim=-1, eps=1e-5)
    s = F.normalize(steps.float(), dim=-1, eps=1e-5)
    scores = torch.einsum("qd,btd->qbt", q, s)  # (Q, B, T)
    return scores.masked_fill(~step_mask[None], float("-inf")).amax(dim=-1)


def _rank_weights(
    scores: torch.Tensor, valid: torch.Tensor, pool: int, weight: float
) -> torch.Tensor:
    """Per row, ``weight`` for the ``pool`` highest-scoring valid entries, 0.1 for the rest."""
    masked = scores.detach().masked_fill(~valid, float("-inf"))
    order = masked.argsort(dim=-1, descending=True)
    rank = order.argsort(dim=-1)  # rank of each column within its row, 0 = hardest
    w = torch.where(rank < pool, weight, 0.1)
    return w.to(scores.dtype)


def hinge_losses(
    rows: torch.Tensor,
    cols: torch.Tensor,
    row_clip: torch.Tensor,
    query_clip: torch.Tensor,
    col_clips: torch.Tensor,
    *,
    margin: float,
    hard_pool: int | None,
    hard_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """VSM's two hinge losses.

    Args:
        rows: (Qr, Ba) scores of this worker's queries against every clip.
        cols: (Qa, Br) scores of every query against this worker's clips.
        row_clip: (Qr,) index (into the Ba clips) of each of this worker's queries' clip.
        query_clip: (Qa,) index (into the Ba clips) of every query's clip.
        col_clips: (Br,) index (into the Ba clips) of this worker's clips.
        margin: hinge margin.
        hard_pool: with hard negatives, how many hardest negatives get ``hard_weight`` (the
            others 0.1); None for plain averaging.

    Returns:
        ``neg_ctx``: mean over this worker's queries of the mean over negative clips of
        ``max(0, margin + s(q, v') - s(q, v))``; ``neg_q``: mean over this worker's clips and
        their queries of the mean over negative queries of ``max(0, margin + s(q', v) - s(q, v))``.
    """
    zero = rows.sum() * 0.0 + cols.sum() * 0.0
    ba = rows.shape[1]
    if ba < 2 or rows.shape[0] == 0:
        return zero, zero
    # negative clips for each of this worker's queries
    pos_rows = rows.gather(1, row_clip[:, None])  # (Qr, 1)
    neg_clip = torch.arange(ba, device=rows.device)[None, :] != row_clip[:, None]  # (Qr, Ba)
    loss = (margin + rows - pos_rows).clamp(min=0)
    w = neg_clip.to(rows.dtype)
    if hard_pool is not None:
        w = w * _rank_weights(rows, neg_clip, hard_pool, hard_weight)
    neg_ctx = ((loss * w).sum(1) / neg_clip.sum(1).clamp(min=1)).mean()
    # negative queries for each (clip, positive query) pair of this worker's clips
    pos_q = (query_clip[:, None] == col_clips[None, :]).t()  # (Br, Qa) positive pairs
    neg_q_mask = ~pos_q
    if not bool(neg_q_mask.any()) or not bool(pos_q.any()):
        return neg_ctx, zero
    colsT = cols.t()  # (Br, Qa)
    wq = neg_q_mask.to(cols.dtype)
    if hard_pool is not None:
        wq = wq * _rank_weights(colsT, neg_q_mask, hard_pool, hard_weight)
    clip_idx, q_idx = pos_q.nonzero(as_tuple=True)  # (P,) each
    pos = colsT[clip_idx, q_idx][:, None]  # (P, 1)
    pair = (margin + colsT[clip_idx] - pos).clamp(min=0)  # (P, Qa)
    n_neg = neg_q_mask.sum(-1).clamp(min=1)[clip_idx]  # (P,)
    neg_q = ((pair * wq[clip_idx]).sum(-1) / n_neg).mean()
    return neg_ctx, neg_q


def _distributed() -> bool:
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def _gather_vsm(
    queries: torch.Tensor, steps: torch.Tensor, step_mask: torch.Tensor, query_clip: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every worker's queries and clips, with gradients flowing back to their owners.

    Returns (queries (Qa, D), steps (Ba, Ta, D), step_mask (Ba, Ta), query_clip (Qa,)
    indexing the Ba clips, this worker's query rows (Qr,), this worker's clip columns (Br,)).
    """
    device = queries.device
    if not _distributed():
        return (
            queries,
            steps,
            step_mask,
            query_clip,
            torch.arange(queries.shape[0], device=device),
            torch.arange(steps.shape[0], device=device),
        )
    import torch.distributed as dist
    import torch.distributed.nn.functional as dist_fn

    world, rank = dist.get_world_size(), dist.get_rank()
    dims = torch.tensor([queries.shape[0], steps.shape[0], steps.shape[1]], device=device)
    all_dims = [torch.empty_like(dims) for _ in range(world)]
    dist.all_gather(all_dims, dims)
    sizes = torch.stack(all_dims).tolist()  # [[Q, B, T] per rank]
    qm = max(s[0] for s in sizes)
    bm = max(s[1] for s in sizes)
    tm = max(s[2] for s in sizes)
    q_pad = F.pad(queries, (0, 0, 0, qm - queries.shape[0]))
    s_pad = F.pad(steps, (0, 0, 0, tm - steps.shape[1], 0, bm - steps.shape[0]))
    m_pad = F.pad(step_mask.to(torch.uint8), (0, tm - steps.shape[1], 0, bm - steps.shape[0]))
    c_pad = F.pad(query_clip, (0, qm - queries.shape[0]))
    qs = dist_fn.all_gather(q_pad)
    ss = dist_fn.all_gather(s_pad)
    ms = [torch.empty_like(m_pad) for _ in range(world)]
    dist.all_gather(ms, m_pad)
    cs = [torch.empty_like(c_pad) for _ in range(world)]
    dist.all_gather(cs, c_pad)
    q_offsets = [sum(s[0] for s in sizes[:r]) for r in range(world)]
    b_offsets = [sum(s[1] for s in sizes[:r]) for r in range(world)]
    q_all = torch.cat([qs[r][: sizes[r][0]] for r in range(world)])
    s_all = torch.cat([ss[r][: sizes[r][1]] for r in range(world)])
    m_all = torch.cat([ms[r][: sizes[r][1]] for r in range(world)]).bool()
    c_all = torch.cat([cs[r][: sizes[r][0]] + b_offsets[r] for r in range(world)])
    rows = torch.arange(sizes[rank][0], device=device) + q_offsets[rank]
    cols = torch.arange(sizes[rank][1], device=device) + b_offsets[rank]
    return q_all, s_all, m_all, c_all, rows, cols


class HeroForPretraining(nn.Module):
    """HERO with its pretraining heads; ``forward(batch, task)`` runs one task.

    Attributes:
        config: the :class:`~hero_model.config.HeroConfig`.
        encoder: the :class:`~hero_model.model.HeroEncoder` (what finetuning keeps).
        train_step: the trainer's global step, set by the trainer before each step (``model.
            train_step = step``; through DDP, ``model.module.train_step``). VSM's hinge losses
            use hard-negative weighting when ``train_step >= config.hard_negative_start_step``
            (and that is not -1). It is a plain attribute, not saved in the state dict.
    """

    def __init__(self, config: HeroConfig) -> None:
        super().__init__()
        c = config
        self.config = config
        self.train_step = 0
        self.encoder: HeroEncoder = build_encoder(c)
        self.mlm_head = LMHead(c.hidden, c.padded_vocab_size, eps=c.norm_eps)
        self.feature_head = FeatureHead(c.hidden, c.feature_dim, eps=c.norm_eps)
        self.order_head = OrderHead(c.hidden, c.max_clip_steps, eps=c.norm_eps)
        self.query_encoder = build_query_encoder(c)
        self.vsm_query_proj = nn.Linear(c.hidden, c.hidden)
        conv = {"kernel_size": c.vsm_kernel, "padding": c.vsm_kernel // 2, "bias": False}
        self.vsm_start = nn.Conv1d(1, 1, **conv)
        self.vsm_end = nn.Conv1d(1, 1, **conv)
        for head in (self.mlm_head, self.feature_head, self.order_head, self.vsm_query_proj):
            init_weights(head, c.init_std)

    @property
    def hard_negatives(self) -> bool:
        """Whether VSM weights negatives by rank at :attr:`train_step`."""
        start = self.config.hard_negative_start_step
        return start != -1 and self.train_step >= start

    def forward(self, batch: dict[str, torch.Tensor], task: str) -> dict[str, torch.Tensor]:
        """Run ``task`` on ``batch``: ``{"loss": ..., metrics...}`` (metrics detached)."""
        if task not in TASKS:
            raise ValueError(f"unknown pretraining task {task!r}; tasks: {', '.join(TASKS)}")
        device = self.vsm_start.weight.device
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        if task == "mlm":
            return self._mlm(batch)
        if task in ("mffr", "mnce"):
            return self._mfm(batch, task)
        if task == "fom":
            return self._fom(batch)
        return self._vsm(batch)

    # --- MLM ------------------------------------------------------------------------------

    def _mlm(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feats = batch["features"].to(self.encoder.frame_embed.proj.weight.dtype)  # (B, T, F)
        cue_feats = feats[batch["cue_clip"][:, None], batch["cue_steps"]]  # (S, Lf, F)
        _, text = self.encoder.cross_modal(
            batch["cue_ids"], batch["cue_num_tokens"], cue_feats, batch["cue_num_steps"]
        )  # (S, Lt, D)
        labels = batch["mlm_labels"]  # (S, Lt), -1 where not predicted
        picked = labels >= 0
        logits = self.mlm_head(text[picked], self.encoder.text_embed.word.weight)  # (M, Vp)
        logits = logits[:, : self.config.vocab_size].float()
        target = labels[picked]
        loss = F.cross_entropy(logits, target)
        acc = (logits.argmax(-1) == target).float().mean()
        return {"loss": loss, "acc": acc.detach(), "count": _count(target)}

    # --- MFFR / MNCE ------------------------------------------------------------------------

    def _mfm(self, batch: dict[str, torch.Tensor], task: str) -> dict[str, torch.Tensor]:
        mask = batch["mfm_mask"]  # (B, T) bool, only at real steps
        step_mask = batch["step_mask"]
        fused = self.encoder.fuse(batch, mfm_mask=mask)
        out = self.encoder.encode_steps(fused, step_mask)  # (B, T, D)
        pred = self.feature_head(out[mask])  # (M, F)
        target = batch["features"][mask]  # (M, F) raw features
        if task == "mffr":
            loss = mffr_loss(pred, target)
            return {"loss": loss, "count": _count(target)}
        negatives = self.feature_head(out[step_mask & ~mask])  # (N, F) unmasked real steps
        logits = mnce_logits(pred, target, negatives, self.config.nce_temperature)
        labels = torch.arange(pred.shape[0], device=pred.device)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(-1) == labels).float().mean()
        return {
            "loss": loss,
            "acc": acc.detach(),
            "count": _count(target),
            "negatives": torch.tensor(float(logits.shape[1] - 1), device=loss.device),
        }

    # --- FOM --------------------------------------------------------------------------------

    def _fom(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fused = self.encoder.fuse(batch)  # (B, T, D)
        order = batch["fom_order"]  # (B, T): new position of each step
        shuffled = torch.zeros_like(fused).scatter(
            1, order[..., None].expand_as(fused), fused
        )  # (B, T, D): step i now at order[i]
        out = self.encoder.encode_steps(shuffled, batch["step_mask"])  # (B, T, D)
        targets = batch["fom_targets"]  # (B, T): original index at each shuffled position
        picked = targets >= 0
        logits = self.order_head(out[picked])  # (N, max_clip_steps)
        loss = fom_loss(logits, targets[picked])
        acc = (logits.argmax(-1) == targets[picked]).float().mean()
        return {"loss": loss, "acc": acc.detach(), "count": _count(targets[picked])}

    # --- VSM --------------------------------------------------------------------------------

    def encode_queries(self, ids: torch.Tensor, num_tokens: torch.Tensor) -> torch.Tensor:
        """Query token ids (Q, Lq) -> one vector per query (Q, D)."""
        text = self.encoder.encode_text(ids, num_tokens)  # (Q, Lq, D)
        mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < num_tokens[:, None]
        return self.query_encoder(text, mask)

    def span_logits(
        self, query: torch.Tensor, steps: torch.Tensor, step_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Start and end logits (Q, T) of each query (Q, D) over its clip's steps (Q, T, D)."""
        sim = torch.einsum("qd,qtd->qt", self.vsm_query_proj(query), steps)  # (Q, T)
        # zero past the clip's end, as the convolutions' own padding: the kernel reaches a few
        # steps beyond each real one, and padding content must not move real logits
        sim = sim.masked_fill(~step_mask, 0.0)[:, None]  # (Q, 1, T)
        start = self.vsm_start(sim).squeeze(1).float().masked_fill(~step_mask, _NEG)
        end = self.vsm_end(sim).squeeze(1).float().masked_fill(~step_mask, _NEG)
        return start, end

    def _vsm(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        step_mask = batch["step_mask"]
        steps = self.encoder(batch)  # (B, T, D)
        query = self.encode_queries(batch["query_ids"], batch["query_num_tokens"])  # (Q, D)
        query_clip = batch["query_clip"]  # (Q,)
        if bool(batch["vsm_local"]):
            start, end = self.span_logits(query, steps[query_clip], step_mask[query_clip])
            span = batch["query_span"]  # (Q, 2)
            local = F.cross_entropy(start, span[:, 0]) + F.cross_entropy(end, span[:, 1])
        else:
            local = query.sum() * 0.0
        q_all, s_all, m_all, c_all, rows, cols = _gather_vsm(query, steps, step_mask, query_clip)
        row_scores = vsm_scores(q_all[rows], s_all, m_all)  # (Qr, Ba)
        col_scores = vsm_scores(q_all, s_all[cols], m_all[cols])  # (Qa, Br)
        neg_ctx, neg_q = hinge_losses(
            row_scores,
            col_scores,
            c_all[rows],
            c_all,
            cols,
            margin=c.vsm_margin,
            hard_pool=c.hard_negative_pool if self.hard_negatives else None,
            hard_weight=c.hard_negative_weight,
        )
        loss = (
            c.vsm_local_weight * local + c.vsm_neg_ctx_weight * neg_ctx + c.vsm_neg_q_weight * neg_q
        )
        r1 = (row_scores.argmax(-1) == c_all[rows]).float().mean()
        return {
            "loss": loss,
            "local": local.detach(),
            "neg_ctx": neg_ctx.detach(),
            "neg_q": neg_q.detach(),
            "r1": r1.detach(),
            "count": _count(query_clip),
        }


def _count(t: torch.Tensor) -> torch.Tensor:
    return torch.tensor(float(t.shape[0]), device=t.device)


def count_parameters(model: nn.Module) -> int:
    """Parameters of ``model``, tied ones once (works on the meta device)."""
    return sum(p.numel() for p in model.parameters())
