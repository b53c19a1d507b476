"""The finetuning recipe: :class:`FinetuneConfig` and :func:`run_finetune`.

``run_finetune(task, bench_dir, dataset, run_dir, cfg)`` reads top to bottom:

1. setup: open the dataset, check the tokenizer against its manifest, load the model (a
   ``hero train`` checkpoint, or random initialisation with a loud warning), read and tokenize
   the benchmark (:mod:`build_benchmarks.finetune.data`);
2. train on ``train.jsonl``: AdamW, linear warm-up then linear decay, gradient clipping,
   ``epochs`` passes over the shuffled examples (at most ``max_steps`` updates). How2R trains
   the VSM head with its pretraining losses (start/end cross-entropy and hinge losses against
   the other clips and queries of the batch); How2QA trains :class:`HeroForVideoQA`;
3. evaluate each of ``val`` / ``test`` that has records: How2R ranks every clip the split
   names (its corpus) for every query with :func:`build_benchmarks.vcmr.rank_vcmr` (VCMR, VR)
   and :func:`~build_benchmarks.vcmr.rank_svmr` (SVMR), writes the TVR submission and scores
   it with :func:`build_benchmarks.evaluate.evaluate_retrieval`; How2QA writes
   ``{qid: answer_idx}`` and scores it with :func:`~build_benchmarks.evaluate.evaluate_qa`;
4. write the run folder::

       RUN_DIR/metrics.json             the scores of each split, training summary, skipped
       RUN_DIR/predictions_<split>.json TVR submission (how2r) or {qid: answer_idx} (how2qa)
       RUN_DIR/train_log.jsonl          one line per logged step
       RUN_DIR/model.pt, finetune.json  the finetuned weights and the config that made them

On CPU the run is deterministic given ``seed`` (initialisation, shuffling, dropout).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from build_benchmarks.annotations import BenchmarkError
from build_benchmarks.evaluate import evaluate_qa, evaluate_retrieval
from build_benchmarks.finetune.config import (
    FinetuneConfig,
)
from build_benchmarks.finetune.data import (
    BenchSplits,
    FinetuneError,
    Query,
    Question,
    clip_batch,
    dataset_tokenizer,
    load_bench,
    load_tokenizer,
    qa_batch,
    retrieval_batch,
    text_batch,
)
from build_benchmarks.finetune.heads import HeroForVideoQA, corpus_scores
from build_benchmarks.vcmr import (
    RankedMoments,
    rank_svmr,
    rank_vcmr,
    temporal_nms,
    to_submission,
)
from hero_data.device import resolve_device
from hero_data.features import DEFAULT_FEATURES, FeatureSet
from hero_data.manifest import atomic_write_json
from hero_data.progress import Progress
from hero_data.reader import HeroDataset
from hero_data.schema import ClipRecord
from hero_model.config import HeroConfig, HeroConfigError, build_config, for_features
from hero_model.data import frame_interval_of
from hero_model.init import load_hero_checkpoint
from hero_model.pretrain import HeroForPretraining
from hero_model.runtime import (
    CheckpointError,
    adamw,
    autocast,
    autocast_dtype,
    check_state_fits,
    find_checkpoint,
    linear_schedule,
    param_groups,
    read_state_dict,
)
from hero_model.train import checkpoint_features

log = logging.getLogger(__name__)

TASKS = ("how2r", "how2qa")
"""Tasks :func:`run_finetune` knows."""

RANDOM_INIT_WARNING = (
    "NO CHECKPOINT: finetuning starts from RANDOM weights; the scores say nothing about HERO. "
    "Pass a `hero train` checkpoint (--checkpoint) for meaningful numbers."
)


# --- setup ---------------------------------------------------------------------------------


REFERENCE_PREFIX = "v_encoder."
"""Every parameter name of a reference HERO checkpoint (github.com/linjieli222/HERO) but the
query encoder's and the VSM head's starts with this; none of ``hero train``'s does."""


@dataclass(frozen=True)
class Initialisation:
    """Where the weights come from.

    Attributes:
        path: the weights file.
        meta: a ``hero train`` checkpoint's ``meta.json``; ``None`` for a reference HERO
            checkpoint (e.g. the released ``hero-tv-ht100.pt``), which has no metadata.
        state: the reference checkpoint's state dict, read once (``None`` for ours).
    """

    path: Path
    meta: dict[str, Any] | None = None
    state: Mapping[str, Any] | None = None

    @property
    def reference(self) -> bool:
        """Whether the file is in the reference HERO code's layout."""
        return self.meta is None


def _read_reference(path: Path) -> dict[str, Any]:
    """The state dict of ``path``, a file with no ``meta.json`` beside it: it must be a
    reference HERO checkpoint."""
    try:
        state = read_state_dict(path)
    except CheckpointError as e:
        raise FinetuneError(str(e)) from None
    if not any(k.removeprefix("module.").startswith(REFERENCE_PREFIX) for k in state):
        raise FinetuneError(
            f"{path}: neither a `hero train` checkpoint (it has no meta.json beside it) nor a "
            f"HERO checkpoint such as hero-tv-ht100.pt (no {REFERENCE_PREFIX}* parameters)"
        )
    return state


def resolve_checkpoint(path: str | os.PathLike[str]) -> Initialisation:
    """The weights named by ``path``: a ``hero train`` run folder (its newest checkpoint), a
    checkpoint folder, its ``model.pt``, or a reference HERO checkpoint file (a state dict in
    the original code's names, such as the released ``hero-tv-ht100.pt``)."""
    p = Path(path)
    if p.is_file():
        model, folder = p, p.parent
        if not (folder / "meta.json").is_file():
            return Initialisation(p, None, _read_reference(p))
    elif (p / "model.pt").is_file():
        model, folder = p / "model.pt", p
    elif p.is_dir() and (found := find_checkpoint(p)) is not None:
        model, folder = found / "model.pt", found
    elif p.exists():
        raise FinetuneError(
            f"{p}: not a checkpoint: expected a `hero train` run folder, a checkpoint folder "
            "(model.pt + meta.json), its model.pt, or a HERO checkpoint file (hero-tv-ht100.pt)"
        )
    else:
        raise FinetuneError(f"{p}: no such checkpoint")
    meta_path = folder / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FinetuneError(
            f"{meta_path}: missing; a `hero train` checkpoint records its model config there"
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise FinetuneError(f"{meta_path}: unreadable checkpoint metadata ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model_config"), dict):
        raise FinetuneError(f"{meta_path}: has no model_config")
    return Initialisation(model, meta)


_REFERENCE_FRAME_POSITIONS = "v_encoder.f_encoder.img_embeddings.position_embeddings.weight"


def _reference_config(cfg: FinetuneConfig, init: Initialisation) -> HeroConfig:
    """The model config for a reference checkpoint: ``cfg.model`` (``base``: HERO's), with
    ``max_clip_steps`` set to the checkpoint's frame positions, as HERO's finetuning scripts do."""
    config = build_config(cfg.model or "base", **cfg.model_overrides)
    assert init.state is not None
    table = {str(k).removeprefix("module."): v for k, v in init.state.items()}.get(
        _REFERENCE_FRAME_POSITIONS
    )
    if (
        "max_clip_steps" not in cfg.model_overrides
        and isinstance(table, torch.Tensor)
        and table.ndim == 2
        and table.shape[0] != config.max_clip_steps
    ):
        log.info(
            "%s: %d frame positions; max_clip_steps set to that (the config had %d)",
            init.path,
            table.shape[0],
            config.max_clip_steps,
        )
        config = config.updated(max_clip_steps=int(table.shape[0]))
    return config


def model_config_for(
    cfg: FinetuneConfig, tokenizer_vocab: int | None, features: FeatureSet, dataset: str
) -> tuple[HeroConfig, Initialisation | None]:
    """The model config of the run and where its weights come from (None: random init).

    The model takes ``features``, the feature set of ``dataset``: without a checkpoint its
    ``feature_dim`` is that set's; a checkpoint must have been trained on that set (a reference
    HERO checkpoint on HERO's ResNet ‖ SlowFast). Without a checkpoint, a vocabulary smaller
    than the dataset tokenizer's is widened to it (the weights are random anyway) unless
    ``model_overrides`` sets ``vocab_size``. A reference HERO checkpoint has no config of its
    own: ``cfg.model`` (default ``base``, HERO's sizes).
    """
    overrides = dict(cfg.model_overrides)
    try:
        if cfg.checkpoint is None:
            config = for_features(
                build_config(cfg.model or "base", **overrides), features, overrides
            )
            if (
                tokenizer_vocab is not None
                and tokenizer_vocab > config.vocab_size
                and "vocab_size" not in overrides
            ):
                log.info(
                    "model vocabulary widened from %d to the tokenizer's %d (random init)",
                    config.vocab_size,
                    tokenizer_vocab,
                )
                config = config.updated(vocab_size=tokenizer_vocab)
            return config, None
        init = resolve_checkpoint(cfg.checkpoint)
        trained = (
            DEFAULT_FEATURES
            if init.reference
            else checkpoint_features(init.meta or {}, init.path.parent / "meta.json")
        )
        if not trained.same_layout(features):
            raise FinetuneError(
                f"{init.path}: trained on features {trained.describe()}, but {dataset} has "
                f"{features.describe()}; finetune on data of the checkpoint's feature set"
            )
        if init.reference:
            return _reference_config(cfg, init), init
        assert init.meta is not None
        weights = init.path
        try:
            saved = HeroConfig(**init.meta["model_config"])
        except (TypeError, HeroConfigError) as e:
            raise FinetuneError(f"{weights.parent / 'meta.json'}: bad model_config ({e})") from None
        if cfg.model is not None:
            wanted = build_config(cfg.model)
            differ = [
                f"{name} (checkpoint {getattr(saved, name)!r}, config {getattr(wanted, name)!r})"
                for name in HeroConfig.model_fields
                if getattr(saved, name) != getattr(wanted, name)
            ]
            if differ:
                raise FinetuneError(
                    f"{weights}: the checkpoint is of another model config than {cfg.model!r}: "
                    f"{'; '.join(differ[:6])}{' ...' if len(differ) > 6 else ''}; leave the "
                    "config out to use the checkpoint's"
                )
        return (saved.updated(**overrides) if overrides else saved), init
    except HeroConfigError as e:
        raise FinetuneError(str(e)) from None


def load_weights(model: HeroForPretraining, init: Initialisation) -> None:
    """Load ``init``'s weights into ``model``; errors name the file."""
    if init.reference:
        assert init.state is not None
        try:
            report = load_hero_checkpoint(model, init.state, source=str(init.path))
        except CheckpointError as e:
            raise FinetuneError(
                f"{e}; give the checkpoint's model config with --config (default base)"
            ) from None
        log.info("%s: HERO checkpoint, %d tensors loaded", init.path, len(report.loaded))
        return
    try:
        state = {k.removeprefix("module."): v for k, v in read_state_dict(init.path).items()}
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        check_state_fits(state, shapes, init.path)
    except CheckpointError as e:
        raise FinetuneError(f"{e}; a checkpoint of another config?") from None
    model.load_state_dict(state)


def task_heads(model: torch.nn.Module) -> list[str]:
    """Names of the parameters of the heads added for the task: everything of a
    :class:`HeroForVideoQA` outside its encoder (HERO: outside ``v_encoder``). How2R adds no
    head (its VSM head and query encoder come from pretraining), so: none."""
    if not isinstance(model, HeroForVideoQA):
        return []
    return [n for n, _ in model.named_parameters() if not n.startswith("encoder.")]


def make_optimizer(
    model: torch.nn.Module, cfg: FinetuneConfig, device: torch.device
) -> torch.optim.AdamW:
    """AdamW as HERO finetunes: betas, epsilon, weight decay and the heads' ``lr_mul``."""
    groups = param_groups(
        model, cfg.lr, cfg.weight_decay, heads=task_heads(model), lr_mul=cfg.lr_mul
    )
    return adamw(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, device=device)


def _autocast(cfg: FinetuneConfig, device: torch.device) -> Any:
    """The run's autocast (the precision was checked against the device at setup)."""
    return autocast(autocast_dtype(cfg.precision, device), device)


# --- training ------------------------------------------------------------------------------


def _train(
    task: str,
    model: torch.nn.Module,
    examples: list[Any],
    records: Mapping[str, ClipRecord],
    config: HeroConfig,
    cfg: FinetuneConfig,
    device: torch.device,
    log_path: Path,
) -> dict[str, Any]:
    per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total = cfg.epochs * per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    summary: dict[str, Any] = {"steps": total, "examples": len(examples), "wall_s": 0.0}
    log_path.write_text("", encoding="utf-8")
    if total == 0:
        log.info("max_steps 0: evaluating the initial weights")
        return summary
    warmup = round(cfg.warmup * total)
    optimizer = make_optimizer(model, cfg, device)
    scheduler = linear_schedule(optimizer, warmup, total)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0xF7]))
    # How2R: a batch trains the start/end loss with probability 1 - vsm_local_drop_prob (HERO's
    # drop_svmr_prob, 0.8), drawn from its own stream so that shuffling does not depend on it
    local_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x5D]))
    model.train()
    start = time.perf_counter()
    losses: list[float] = []
    step = 0
    examples_done = 0
    with log_path.open("a", encoding="utf-8") as out, Progress() as progress:
        bar = progress.add(f"finetune {task}", total=total, unit="steps")
        while step < total:
            order = rng.permutation(len(examples))
            for lo in range(0, len(order), cfg.batch_size):
                if step >= total:
                    break
                chosen = [examples[i] for i in order[lo : lo + cfg.batch_size]]
                with _autocast(cfg, device):
                    if task == "how2r":
                        model.train_step = step
                        local = bool(local_rng.random() >= config.vsm_local_drop_prob)
                        batch = retrieval_batch(chosen, records, config, local=local)
                        metrics = model(batch, "vsm")
                    else:
                        batch = qa_batch(chosen, records, config, qa_in_cues=cfg.qa_in_cues)
                        metrics = model(batch)
                loss = metrics["loss"]
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"finetune step {step + 1}: the loss is {loss.item()}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                losses.append(float(loss.detach()))
                examples_done += len(chosen)
                seconds = time.perf_counter() - start
                progress.update(
                    bar,
                    done=step,
                    description=f"finetune {task} loss {losses[-1]:.3f} · "
                    f"{examples_done / seconds:.1f} examples/s",
                )
                if step % cfg.log_every == 0 or step == total:
                    entry = {"step": step, "lr": scheduler.get_last_lr()[0]}
                    entry.update({k: float(v.detach()) for k, v in metrics.items()})
                    out.write(json.dumps(entry) + "\n")
                    log.info("finetune %s step %d/%d loss %.4f", task, step, total, entry["loss"])
        progress.done(bar)
    summary["wall_s"] = round(time.perf_counter() - start, 3)
    summary["first_loss"] = losses[0]
    summary["last_loss"] = losses[-1]
    tail = losses[-max(1, len(losses) // 10) :]
    summary["mean_last_loss"] = float(np.mean(tail))
    return summary


# --- evaluation ----------------------------------------------------------------------------


def _stack_ranked(parts: list[RankedMoments]) -> RankedMoments:
    return RankedMoments(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(RankedMoments))
    )


@torch.no_grad()
def encode_clips(
    model: HeroForPretraining,
    clips: list[ClipRecord],
    config: HeroConfig,
    cfg: FinetuneConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Contextual step embeddings (N, T, D) float32 and real-step mask (N, T) of ``clips``,
    encoded ``cfg.eval_batch`` at a time (what a padded step holds depends on its batch)."""
    device = model.vsm_start.weight.device
    t = max(min(r.num_frames, config.max_clip_steps) for r in clips)
    steps = torch.zeros(len(clips), t, config.hidden, device=device)
    step_mask = torch.zeros(len(clips), t, dtype=torch.bool, device=device)
    for lo in range(0, len(clips), cfg.eval_batch):
        chunk = clips[lo : lo + cfg.eval_batch]
        batch = {k: v.to(device) for k, v in clip_batch(chunk, config).items()}
        with _autocast(cfg, device):
            out = model.encoder(batch)  # (b, t', D)
        steps[lo : lo + len(chunk), : out.shape[1]] = out.float()
        step_mask[lo : lo + len(chunk), : out.shape[1]] = batch["step_mask"]
    return steps, step_mask


@torch.no_grad()
def _eval_retrieval(
    model: HeroForPretraining,
    queries: list[Query],
    records: Mapping[str, ClipRecord],
    config: HeroConfig,
    cfg: FinetuneConfig,
    interval: float,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The TVR submissions of ``queries`` over the clips they name: without NMS, and with
    HERO's NMS (``None`` when ``cfg.ranking.nms_threshold`` is ``None``)."""
    device = model.vsm_start.weight.device
    ranking = cfg.ranking
    candidates = ranking.updated(max_predictions=ranking.candidates)
    names = list(dict.fromkeys(q.clip_id for q in queries))
    kept = np.array([min(records[c].num_frames, config.max_clip_steps) for c in names])
    durations = np.minimum([records[c].clip.duration for c in names], kept * interval).astype(
        np.float64
    )
    steps, step_mask = encode_clips(model, [records[c] for c in names], config, cfg)
    index = {c: i for i, c in enumerate(names)}
    vcmr, svmr, vr = [], [], []
    for lo in range(0, len(queries), cfg.eval_batch):
        chunk_q = queries[lo : lo + cfg.eval_batch]
        ids, lengths = text_batch([q.ids for q in chunk_q], config.pad_id)
        with _autocast(cfg, device):
            vec = model.encode_queries(ids.to(device), lengths.to(device)).float()
            glob, st, ed = corpus_scores(model, vec, steps, step_mask)
        glob, st, ed = glob.cpu().numpy(), st.cpu().numpy(), ed.cpu().numpy()
        moments, clips = rank_vcmr(
            glob,
            st,
            ed,
            kept,
            frame_interval=interval,
            clip_durations=durations,
            config=candidates,
        )
        gt = np.array([index[q.clip_id] for q in chunk_q])
        rows = np.arange(len(chunk_q))
        single = rank_svmr(
            st[rows, gt],
            ed[rows, gt],
            gt,
            kept[gt],
            frame_interval=interval,
            clip_durations=durations[gt],
            config=candidates,
        )
        vcmr.append(moments)
        vr.append(clips)
        svmr.append(single)
    all_vcmr, all_svmr = _stack_ranked(vcmr), _stack_ranked(svmr)
    desc_ids = [q.desc_id for q in queries]
    descs = [q.desc for q in queries]
    top = ranking.max_predictions
    plain = to_submission(
        names,
        desc_ids,
        vcmr=all_vcmr.head(top),
        svmr=all_svmr.head(top),
        vr=_stack_ranked(vr).head(top),
        descs=descs,
    )
    if ranking.nms_threshold is None:
        return plain, None
    nms = {
        "threshold": ranking.nms_threshold,
        "max_before": ranking.max_before_nms,
        "max_after": top,
    }
    suppressed = to_submission(
        names,
        desc_ids,
        vcmr=temporal_nms(all_vcmr, **nms),
        svmr=temporal_nms(all_svmr, **nms),
        descs=descs,
    )
    return plain, suppressed


@torch.no_grad()
def _eval_qa(
    model: HeroForVideoQA,
    questions: list[Question],
    records: Mapping[str, ClipRecord],
    config: HeroConfig,
    cfg: FinetuneConfig,
) -> dict[str, int]:
    """``{qid (string): predicted answer index}``."""
    device = model.qa_pool.weight.device
    out: dict[str, int] = {}
    for lo in range(0, len(questions), cfg.eval_batch):
        chunk = questions[lo : lo + cfg.eval_batch]
        batch = qa_batch(chunk, records, config, qa_in_cues=cfg.qa_in_cues)
        with _autocast(cfg, device):
            answer, _, _ = model.logits(batch)
        for q, k in zip(chunk, answer.argmax(-1).tolist(), strict=True):
            out[str(q.qid)] = int(k)
    return out


def _evaluate(
    task: str,
    model: torch.nn.Module,
    bench: BenchSplits,
    records: Mapping[str, ClipRecord],
    config: HeroConfig,
    cfg: FinetuneConfig,
    interval: float,
    run: Path,
) -> dict[str, Any]:
    model.eval()
    results: dict[str, Any] = {}
    for split in bench.examples:
        if split == "train":
            continue
        path = run / f"predictions_{split}.json"
        examples = bench.examples[split]
        source = bench.sources[split]
        try:
            if task == "how2r":
                assert isinstance(model, HeroForPretraining)
                submission, suppressed = _eval_retrieval(
                    model, examples, records, config, cfg, interval
                )
                atomic_write_json(path, submission)
                scores = evaluate_retrieval(
                    submission, bench.rows[split], submission_source=str(path), gt_source=source
                )
                results[split] = json.loads(json.dumps(scores))
                if suppressed is not None:
                    nms_path = run / f"predictions_{split}_nms.json"
                    atomic_write_json(nms_path, suppressed)
                    nms_scores = evaluate_retrieval(
                        suppressed,
                        bench.rows[split],
                        submission_source=str(nms_path),
                        gt_source=source,
                    )
                    results[split]["nms"] = {
                        "threshold": cfg.ranking.nms_threshold,
                        **json.loads(json.dumps(nms_scores)),
                        "predictions": str(nms_path),
                    }
            else:
                assert isinstance(model, HeroForVideoQA)
                predictions = _eval_qa(model, examples, records, config, cfg)
                atomic_write_json(path, predictions)
                results[split] = evaluate_qa(
                    predictions,
                    {split: bench.rows[split]},
                    submission_source=str(path),
                    gt_sources={split: source},
                )
        except BenchmarkError as e:
            raise FinetuneError(str(e)) from None
        results[split]["predictions"] = str(path)
    return results


# --- the run -------------------------------------------------------------------------------


def run_finetune(
    task: str,
    bench_dir: str | os.PathLike[str],
    dataset: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    cfg: FinetuneConfig | None = None,
) -> dict[str, Any]:
    """Finetune on ``bench_dir``'s ``train.jsonl``, score ``val`` / ``test``; the metrics.

    Returns (and writes to ``RUN_DIR/metrics.json``) ``{"task", "init", "train": {steps,
    losses, wall_s}, "skipped": {split: records}, "<split>": scores...}``; retrieval scores are
    TVR's (``VCMR``, ``SVMR``, ``VR``, percent), QA's ``accuracy`` (percent), ``correct``,
    ``total``. Raises :class:`FinetuneError` (naming the file) for unusable inputs.
    """
    cfg = cfg or FinetuneConfig()
    if task not in TASKS:
        raise FinetuneError(f"unknown finetuning task {task!r}; tasks: {', '.join(TASKS)}")
    run = Path(run_dir)
    if (run / "metrics.json").exists() and not cfg.overwrite:
        raise FileExistsError(
            f"{run / 'metrics.json'}: exists; use another run folder or --overwrite"
        )
    device = resolve_device(cfg.device)
    dtype = autocast_dtype(cfg.precision, device)  # refuses bf16 where the device lacks it
    log.info("finetuning on %s, %s", device, "bf16 autocast" if dtype else "float32")
    ds = HeroDataset.open(dataset)
    tok_record = dataset_tokenizer(ds)
    tokenizer = load_tokenizer(cfg.tokenizer, ds)
    vocab = tok_record.get("vocab_size")
    config, init = model_config_for(
        cfg, vocab if isinstance(vocab, int) else None, ds.feature_set, str(dataset)
    )
    if task == "how2r" and cfg.hard_negative_start_step is not None:
        config = config.updated(hard_negative_start_step=cfg.hard_negative_start_step)

    torch.manual_seed(cfg.seed)
    hero = HeroForPretraining(config)
    if init is None:
        log.warning(RANDOM_INIT_WARNING)
    else:
        load_weights(hero, init)
        log.info("initialised from %s", init.path)
        init = replace(init, state=None)  # a reference checkpoint's tensors: no longer needed
    model: torch.nn.Module = hero
    if task == "how2qa":
        model = HeroForVideoQA(
            config, hero.encoder, span_weight=cfg.qa_span_weight, qa_in_cues=cfg.qa_in_cues
        )
    model.to(device)

    bench, records = load_bench(task, bench_dir, ds, tokenizer, config)
    interval = frame_interval_of(ds)
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.json").unlink(missing_ok=True)

    train = _train(
        task, model, bench.examples["train"], records, config, cfg, device,
        run / "train_log.jsonl",
    )  # fmt: skip
    scores = _evaluate(task, model, bench, records, config, cfg, interval, run)

    torch.save(model.state_dict(), run / "model.pt")
    atomic_write_json(
        run / "finetune.json",
        {
            "task": task,
            "bench": str(bench_dir),
            "dataset": str(dataset),
            "config": cfg.to_dict(),
            "model_config": config.to_dict(),
        },
    )
    metrics: dict[str, Any] = {
        "task": task,
        "bench": str(bench_dir),
        "dataset": str(dataset),
        "init": str(init.path) if init is not None else "random",
        "init_layout": None if init is None else ("hero" if init.reference else "hero-toolkit"),
        "device": str(device),
        "train": train,
        "skipped": {s: n for s, n in bench.skipped.items()},
        "missing_clips": bench.missing_clips[:20],
        **scores,
    }
    atomic_write_json(run / "metrics.json", metrics)  # written last: marks a complete run
    return metrics
