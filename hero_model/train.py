"""HERO pretraining: the training options (:class:`TrainConfig`) and the recipe that runs them.

The recipe (:class:`PretrainRecipe`) reads top to bottom: ``setup`` (datasets, model,
optimizer, schedule, resume, loader, logs), ``train`` (one optimizer step per task sampled by
ratio, with accumulation, clipping and bf16 autocast on GPU), ``save_checkpoint`` and
``cleanup``. :func:`run_training` runs all four. It works in one process, or in each of several
processes of an initialised ``torch.distributed`` group (Ray Train starts them; see
:mod:`hero_model.distributed`), where the model is wrapped in DistributedDataParallel.

A run folder holds::

    RUN_DIR/config.yaml                    the training config (and the model config) of the run
    RUN_DIR/checkpoints/step-00001000/     model.pt (state dict), state.pt (optimizer, schedule,
                                           RNG of every worker, data position), meta.json
    RUN_DIR/tb/                            TensorBoard event files
    RUN_DIR/metrics.jsonl                  one line per logged step (the same scalars)
    RUN_DIR/curves.png                     loss per task, lr and data wait, redrawn from
                                           metrics.jsonl at each checkpoint (the last one too)
    RUN_DIR/summary.json                   written at the end: steps, throughput, workers

Resuming (``resume=True``) continues from the newest complete checkpoint exactly: the batches
(see :mod:`hero_model.data`), the dropout RNG, the optimizer and the schedule are those an
uninterrupted run would have had, so on the same hardware the losses after resuming are
bit-for-bit those of the uninterrupted run. A resumed run may change ``max_steps`` (not below
the checkpoint's step): it trains on to the new total, with the schedule rebuilt for it. A run
folder may come from elsewhere: its files load with ``weights_only=True`` and are checked
before use (:func:`read_checkpoint`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from hero_data import __version__
from hero_data.device import resolve_device
from hero_data.features import DEFAULT_FEATURES, FeatureSet
from hero_data.manifest import atomic_write_json
from hero_data.progress import Progress
from hero_data.storage import canonical_location
from hero_model.curves import draw_curves
from hero_model.data import (
    BatchPlan,
    DataSource,
    MicroBatch,
    MixSampler,
    PretrainBatches,
    describe_sources,
    make_loader,
)
from hero_model.runtime import (
    CHECKPOINT_DIR,
    CHECKPOINT_NAME,
    CheckpointError,
    adamw,
    autocast,
    autocast_dtype,
    check_plain,
    check_state_fits,
    checkpoint_name,
    find_checkpoint,
    linear_schedule,
    load_plain,
    lr_factor,
    param_groups,
)
from hero_model.train_config import (
    TRAIN_CONFIG_NAMES,
    TrainConfig,
    TrainConfigError,
    load_run_config,
    load_train_config,
    train_preset,
)

log = logging.getLogger(__name__)

__all__ = [
    "STATE_FORMAT",
    "TRAIN_CONFIG_NAMES",
    "PretrainRecipe",
    "TrainConfig",
    "TrainConfigError",
    "check_checkpoint_features",
    "check_run",
    "checkpoint_features",
    "load_run_config",
    "load_train_config",
    "read_checkpoint",
    "run_training",
    "train_preset",
]

# Options that may differ when a run is resumed: how it is carried out, not what it computes;
# the initialisation (used only at step 0); and the datasets (checked by path and size).
_RESUMABLE = frozenset(
    {
        "device",
        "loader_workers",
        "prefetch",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
        "init_roberta",
        "init_hero",
        "data",
    }
)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# -- checkpoints ---------------------------------------------------------------------------

STATE_FORMAT = 1
"""Layout version of ``state.pt``. Checkpoints written before the version was recorded (format
0) hold the same plain data; they still resume, with a warning."""


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# -- checkpoint files ----------------------------------------------------------------------
#
# A run folder may come from anyone, so nothing in it is unpickled with code: both files load
# with ``weights_only=True`` (tensors and plain containers), and every value is checked against
# the model and the run before any of it is used. Saving checks the other half: ``state.pt`` is
# written only if it holds nothing but plain data, so what this toolkit writes it can read back.

_STATE_KEYS = ("step", "draws", "optimizer", "scheduler", "rng", "world_size")
_warned_format0: set[str] = set()


@functools.lru_cache(maxsize=8)
def _model_layout(
    model_config: Any,
) -> tuple[dict[str, tuple[int, ...]], list[list[tuple[int, ...]]]]:
    """The run's model names and shapes, and its AdamW groups' parameter shapes in order; from
    a model built without memory (meta tensors)."""
    from hero_model.pretrain import HeroForPretraining

    with torch.device("meta"):
        model = HeroForPretraining(model_config)
    names = {k: tuple(t.shape) for k, t in model.state_dict().items()}
    groups = [[tuple(p.shape) for p in g["params"]] for g in param_groups(model, 0.0, 0.0)]
    return names, groups


def _is_byte_state(value: Any, size: int | None) -> bool:
    return (
        isinstance(value, torch.Tensor)
        and value.dtype == torch.uint8
        and value.dim() == 1
        and (size is None or value.numel() == size)
    )


@functools.lru_cache(maxsize=1)
def _scheduler_keys() -> frozenset[str]:
    probe = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
    return frozenset(torch.optim.lr_scheduler.LambdaLR(probe, lambda n: 1.0).state_dict())


def read_checkpoint(
    checkpoint: str | os.PathLike[str], model_config: Any
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(model state dict, training state)`` of a checkpoint folder, read without unpickling
    code and checked against the model ``model_config`` builds.

    Both files load with ``weights_only=True``. The model state must have exactly the model's
    names and shapes; the training state its documented keys (:data:`STATE_FORMAT`), a step
    equal to the folder's, one generator state per worker, an optimizer state that fits the
    model's parameter groups and a scheduler state of LambdaLR's keys. Anything else raises
    :class:`~hero_model.runtime.CheckpointError` naming the file and what is wrong. A format-0
    checkpoint (written before the format was recorded) is read the same way, with a warning
    (once per process).
    """
    folder = Path(checkpoint)
    model_path, state_path = folder / "model.pt", folder / "state.pt"
    expected, groups = _model_layout(model_config)

    weights = load_plain(model_path, written_by="hero train")
    if not isinstance(weights, dict) or not all(isinstance(k, str) for k in weights):
        raise CheckpointError(f"{model_path}: holds a {type(weights).__name__}, not a state dict")
    check_state_fits(weights, expected, model_path)

    state = load_plain(state_path, written_by="hero train")

    def bad(problem: str) -> CheckpointError:
        return CheckpointError(f"{state_path}: {problem}")

    if not isinstance(state, dict):
        raise bad(f"holds a {type(state).__name__}, not a training state")
    missing = [k for k in _STATE_KEYS if k not in state]
    if missing:
        raise bad(f"no {', '.join(missing)}: not a training state written by hero train")
    fmt = state.get("format", 0)
    if not _is_int(fmt) or fmt < 0:
        raise bad(f"format must be a whole number, got {fmt!r}")
    if fmt > STATE_FORMAT:
        raise bad(
            f"written in format {fmt}, newer than this toolkit reads ({STATE_FORMAT}); "
            "resume it with a newer hero-toolkit"
        )
    for key, low in (("step", 0), ("draws", 0), ("world_size", 1)):
        if not _is_int(state[key]) or state[key] < low:
            raise bad(f"{key} must be a whole number >= {low}, got {state[key]!r}")
    step = int(folder.name.split("-")[-1]) if CHECKPOINT_NAME.fullmatch(folder.name) else None
    if step is not None and state["step"] != step:
        raise bad(f"holds step {state['step']}, but its folder is of step {step}")
    rng = state["rng"]
    cpu_size = torch.get_rng_state().numel()
    if not isinstance(rng, list) or len(rng) != state["world_size"]:
        raise bad(f"rng must hold one generator state per worker ({state['world_size']})")
    for k, r in enumerate(rng):
        if not (
            isinstance(r, dict)
            and _is_byte_state(r.get("torch"), cpu_size)
            and ("cuda" not in r or _is_byte_state(r["cuda"], None))
        ):
            raise bad(f"rng[{k}] is not a generator state")

    optimizer = state["optimizer"]
    params = [shape for g in groups for shape in g]
    saved_groups = optimizer.get("param_groups") if isinstance(optimizer, dict) else None
    if (
        not isinstance(saved_groups, list)
        or not isinstance(optimizer.get("state"), dict)
        or len(saved_groups) != len(groups)
        or not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in saved_groups)
        or [len(g["params"]) for g in saved_groups] != [len(g) for g in groups]
    ):
        raise bad("optimizer is not an AdamW state of this model's parameter groups")
    ids = [i for g in saved_groups for i in g["params"]]
    if not all(_is_int(i) for i in ids) or sorted(ids) != list(range(len(params))):
        raise bad("optimizer names parameters this model does not have")
    for pid, entry in optimizer["state"].items():
        if not _is_int(pid) or not 0 <= pid < len(params) or not isinstance(entry, dict):
            raise bad(f"optimizer state of parameter {pid!r} is not one of this model's")
        shape = params[pid]
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() and tuple(value.shape) != shape:
                raise bad(
                    f"optimizer state {name!r} of parameter {pid} is {tuple(value.shape)}, the "
                    f"parameter {shape}"
                )
    scheduler = state["scheduler"]
    allowed = _scheduler_keys()
    if not isinstance(scheduler, dict) or not set(scheduler) <= allowed:
        extra = sorted(set(scheduler) - allowed) if isinstance(scheduler, dict) else scheduler
        raise bad(f"scheduler is not a LambdaLR state (unknown {extra!r})")

    if fmt == 0 and str(state_path) not in _warned_format0:
        _warned_format0.add(str(state_path))
        log.warning(
            "%s: written before checkpoints recorded a format (format 0); it loaded as plain "
            "tensors and containers, so the run resumes. Its next checkpoint is written in "
            "format %d.",
            state_path,
            STATE_FORMAT,
        )
    return weights, state


def _worker_seed(seed: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, rank, 0xD1]).generate_state(1)[0])


def _dist() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass(frozen=True)
class RunCheck:
    """What :func:`check_run` found: the checkpoint to resume (or None), datasets, model config."""

    checkpoint: Path | None
    sources: tuple[DataSource, ...]
    model_config: Any


def check_run(cfg: TrainConfig, run_dir: str | os.PathLike[str], *, resume: bool) -> RunCheck:
    """Every check that can fail before training starts, with a message naming the file.

    The run folder must hold a checkpoint to resume (``resume``) or none (a new run); the
    datasets must open and mix (one feature set, which sets the model's ``feature_dim``); the
    model config must build and hold their token ids; a reference HERO checkpoint
    (``init_hero``) takes HERO's ResNet ‖ SlowFast features only; and a resumed run must have
    the same feature set and options (bar :data:`_RESUMABLE`, and ``max_steps``, which
    may change but not fall below the checkpoint's step) and datasets (path and size) as the
    checkpoint. Raises ``FileNotFoundError``, ``FileExistsError``, ``ValueError``
    (:class:`~hero_model.data.DataMixError`, a model config error) or
    :class:`~hero_data.manifest.DatasetError`.
    """
    run_dir = Path(run_dir)
    checkpoint = find_checkpoint(run_dir)
    if resume and checkpoint is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint to resume from")
    if not resume and checkpoint is not None:
        raise FileExistsError(
            f"{run_dir}: holds checkpoints of an earlier run ({checkpoint.name}); "
            "resume it with --resume, or train into a new folder"
        )
    if not cfg.data:
        raise TrainConfigError(
            "no dataset to train on: give one with --data (or data: in the config)"
        )
    sources = describe_sources(cfg.data, cfg.mix_weights)
    features = sources[0].features  # all the same: describe_sources checked
    model_config = cfg.hero_config(features)
    _check_tokens(sources, model_config)
    if cfg.init_hero and not features.same_layout(DEFAULT_FEATURES):
        raise TrainConfigError(
            f"init_hero {cfg.init_hero}: a HERO checkpoint takes "
            f"{DEFAULT_FEATURES.describe()} features, but {sources[0].path} has "
            f"{features.describe()}"
        )
    if checkpoint is not None:
        meta = _read_meta(checkpoint)
        check_checkpoint_features(meta, features, checkpoint, sources[0].path)
        _check_same_run(meta["train_config"], cfg, checkpoint)
        _, state = read_checkpoint(checkpoint, model_config)
        _check_max_steps(meta["train_config"].get("max_steps"), cfg, state["step"], checkpoint)
        saved = [(canonical_location(d["path"]), d["clips"]) for d in meta["datasets"]]
        now = [(canonical_location(s.path), s.clips) for s in sources]
        if saved != now:
            raise CheckpointError(
                f"{checkpoint}: the run trained on {saved} (path, clips) but now gets {now}; "
                "resuming exactly needs the same datasets"
            )
    return RunCheck(checkpoint, sources, model_config)


# -- the recipe ----------------------------------------------------------------------------


class PretrainRecipe:
    """HERO pretraining in one process (or one of a ``torch.distributed`` group).

    Args:
        cfg: the training config (its ``data`` must name at least one dataset).
        run_dir: the run folder (created).
        resume: continue from the newest checkpoint in ``run_dir`` (error if none). Without
            it, ``run_dir`` must hold no checkpoint.
        device: overrides ``cfg.device`` (Ray Train passes each worker's device).
        progress: show a progress bar with the running per-task losses (rank 0).
        report: called on every worker with the metrics at each checkpoint and at the end
            (Ray Train's ``report``).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: str | os.PathLike[str],
        *,
        resume: bool = False,
        device: torch.device | str | None = None,
        progress: bool = True,
        report: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.device = torch.device(device) if device is not None else resolve_device(cfg.device)
        self.show_progress = progress
        self.report = report
        self.rank, self.world_size = _dist()
        self.step = 0
        self.draws = 0
        self.history: list[dict[str, Any]] = []
        self._tb: Any = None
        self._progress: Progress | None = None
        self._bar: int | None = None
        self._loader_iter: Any = None
        self._skipped = 0
        self._clips = 0

    @property
    def is_main(self) -> bool:
        """Whether this is the worker that writes files (rank 0)."""
        return self.rank == 0

    # -- setup -----------------------------------------------------------------------------

    def setup(self) -> None:
        """Datasets, model, optimizer, schedule, resume state, loader and logs."""
        from hero_model.pretrain import HeroForPretraining

        cfg = self.cfg
        checked = check_run(cfg, self.run_dir, resume=self.resume)
        checkpoint = checked.checkpoint
        self.sources: tuple[DataSource, ...] = checked.sources
        self.model_config = checked.model_config
        if self.device.type == "cuda" and self.device.index is not None:
            torch.cuda.set_device(self.device)
        self.tasks, self.ratios = cfg.task_ratios()

        # The same initial weights on every worker (DDP also broadcasts rank 0's).
        torch.manual_seed(cfg.seed)
        model = HeroForPretraining(self.model_config)
        if checkpoint is None and (cfg.init_roberta or cfg.init_hero):
            from hero_model.init import load_hero_checkpoint, load_roberta_into

            if cfg.init_roberta:
                loaded = load_roberta_into(model, cfg.init_roberta)
            else:
                loaded = load_hero_checkpoint(model, cfg.init_hero)
            log.info(
                "initialised from %s: %d tensors loaded, %d kept their seeded values",
                cfg.init_roberta or cfg.init_hero,
                len(loaded.loaded),
                len(loaded.kept),
            )
        model.to(self.device)
        self.model = model
        self.optimizer = adamw(
            param_groups(model, cfg.lr, cfg.weight_decay),
            lr=cfg.lr,
            betas=cfg.betas,
            eps=cfg.eps,
            device=self.device,
        )
        self.scheduler = linear_schedule(self.optimizer, cfg.warmup_steps, cfg.max_steps)
        self.autocast_dtype = autocast_dtype(cfg.precision, self.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(_worker_seed(cfg.seed, self.rank))  # dropout differs per worker
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)

        self.ddp: torch.nn.Module = model
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,  # each task uses its own head
            )

        self.plan = BatchPlan(
            seed=cfg.seed,
            tasks=self.tasks,
            ratios=self.ratios,
            batch_size=cfg.batch_size,
            accumulation=cfg.accumulation,
            world_size=self.world_size,
            rank=self.rank,
            start_step=self.step,
            start_draw=self.draws,
        )
        batches = PretrainBatches(
            [s.path for s in self.sources],
            MixSampler.from_sources(self.sources, cfg.seed),
            self.plan,
            self.model_config,
            cfg.max_steps,
        )
        self.loader = make_loader(
            batches,
            num_workers=cfg.loader_workers,
            prefetch_factor=cfg.prefetch,
            pin_memory=self.device.type == "cuda",
        )
        if self.is_main:
            self._setup_logs(resumed=checkpoint is not None)
        log.info(
            "rank %d/%d on %s: %s, tasks %s, %d clips in %d dataset(s), from step %d",
            self.rank,
            self.world_size,
            self.device,
            cfg.model,
            dict(zip(self.tasks, self.ratios, strict=True)),
            sum(s.clips for s in self.sources),
            len(self.sources),
            self.step,
        )

    def _setup_logs(self, resumed: bool) -> None:
        from tensorboardX import SummaryWriter

        self.run_dir.mkdir(parents=True, exist_ok=True)
        _write_yaml(
            self.run_dir / "config.yaml",
            {"train": self.cfg.to_dict(), "model": self.model_config.to_dict()},
        )
        metrics = self.run_dir / "metrics.jsonl"
        if resumed and metrics.exists():
            # Lines an interrupted run logged after its last checkpoint are redone: drop them.
            keep = [
                line
                for line in metrics.read_text(encoding="utf-8", errors="replace").splitlines()
                if _logged_step(line) <= self.step
            ]
            metrics.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
        elif metrics.exists():
            metrics.unlink()
        # purge_step makes TensorBoard drop events of steps the resumed run does again.
        self._tb = SummaryWriter(
            str(self.run_dir / "tb"), purge_step=self.step + 1 if resumed else None
        )
        if self.show_progress:
            self._progress = Progress()
            self._progress.__enter__()
            self._bar = self._progress.add(
                "train", total=self.cfg.max_steps, unit="steps", done=self.step
            )

    # -- train -----------------------------------------------------------------------------

    def train(self, stop_at: int | None = None) -> dict[str, Any]:
        """Optimizer steps until ``max_steps`` (or until step ``stop_at``); returns a summary.

        A checkpoint is written every ``checkpoint_every`` steps and at the last step done.
        """
        cfg = self.cfg
        end = cfg.max_steps if stop_at is None else min(stop_at, cfg.max_steps)
        started = time.perf_counter()
        first_step = self.step
        window = _Window()
        if self._loader_iter is None:
            self._loader_iter = iter(self.loader)
        while self.step < end:
            t0 = time.perf_counter()
            micro = [next(self._loader_iter) for _ in range(cfg.accumulation)]
            t_data = time.perf_counter() - t0
            if micro[0].step != self.step:
                raise RuntimeError(f"loader at step {micro[0].step}, trainer at {self.step}")
            metrics = self.train_step(micro)
            self.step += 1
            self.draws = self.plan.draws_before(self.step)
            window.add(metrics, t_data, time.perf_counter() - t0)
            if self._progress is not None and self._bar is not None:
                self._progress.advance(self._bar)
            if self.step % cfg.log_every == 0 or self.step == end:
                self._log(window.close(self))
                window = _Window()
            if self.step % cfg.checkpoint_every == 0 or self.step == end:
                self.save_checkpoint()
                if self.report is not None:
                    self.report({"step": self.step, **self._last_losses()})
        wall = time.perf_counter() - started
        return self._summary(self.step - first_step, wall)

    def train_step(self, micro: Sequence[MicroBatch]) -> dict[str, Any]:
        """One optimizer step over a step's micro-batches; returns its (device) metrics.

        Gradients of the micro-batches are averaged (each loss is divided by their number),
        then averaged over workers by DDP, clipped, and applied. A micro-batch no clip could
        serve (``batch is None``) is left out on every worker alike; a step with none left
        only advances the schedule.
        """
        cfg = self.cfg
        task = micro[0].task
        usable = torch.tensor([m.batch is not None for m in micro], dtype=torch.int32)
        if self.world_size > 1:
            import torch.distributed as dist

            flags = usable.to(self.device)
            dist.all_reduce(flags, op=dist.ReduceOp.MIN)
            usable = flags.cpu()
        todo = [m for m, ok in zip(micro, usable.tolist(), strict=True) if ok]
        self.model.train()
        if hasattr(self.model, "train_step"):
            self.model.train_step = self.step  # hard-negative mining starts at a given step
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        for k, m in enumerate(todo):
            assert m.batch is not None
            batch = {name: t.to(self.device, non_blocking=True) for name, t in m.batch.items()}
            last = k == len(todo) - 1
            sync = (
                contextlib.nullcontext() if last or self.ddp is self.model else self.ddp.no_sync()
            )
            with sync:
                with autocast(self.autocast_dtype, self.device):
                    out = self.ddp(batch, task)
                (out["loss"] / len(todo)).backward()
            for name, value in out.items():
                v = value.detach().float()
                sums[name] = sums[name] + v if name in sums else v
        grad_norm = torch.zeros((), device=self.device)
        if todo:
            params = [p for p in self.model.parameters() if p.grad is not None]
            max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            self.optimizer.step()
        else:
            self._skipped += 1
            log.warning("step %d (%s): no clip of the batch could serve the task", self.step, task)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self._clips += sum(m.clips for m in todo)
        return {
            "task": task,
            "values": {k: v / len(todo) for k, v in sums.items()} if todo else {},
            "grad_norm": grad_norm.detach(),
            "lr": lr,
            "clips": sum(m.clips for m in todo),
            "tokens": sum(m.tokens for m in todo),
            "feature_steps": sum(m.feature_steps for m in todo),
        }

    def _last_losses(self) -> dict[str, float]:
        return dict(self.history[-1]["loss"]) if self.history else {}

    def _log(self, entry: dict[str, Any]) -> None:
        self.history.append(entry)
        if not self.is_main:
            return
        step = entry["step"]
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        tb = self._tb
        if tb is not None:
            for task, value in entry["loss"].items():
                tb.add_scalar(f"loss/{task}", value, step)
            for name, value in entry["metrics"].items():
                tb.add_scalar(name, value, step)
            for name in ("lr", "grad_norm"):
                tb.add_scalar(f"train/{name}", entry[name], step)
            for name, value in entry["perf"].items():
                tb.add_scalar(f"perf/{name}", value, step)
        if self._progress is not None and self._bar is not None:
            self._progress.describe(self._bar, progress_text(self._running(), entry))
        log.info(
            "step %d: %s lr %.3g",
            step,
            " ".join(f"{t} {v:.4f}" for t, v in entry["loss"].items()),
            entry["lr"],
        )

    def _running(self) -> dict[str, float]:
        """The latest logged loss of each task."""
        out: dict[str, float] = {}
        for entry in self.history:
            out.update(entry["loss"])
        return out

    # -- checkpoint ------------------------------------------------------------------------

    def save_checkpoint(self) -> Path | None:
        """Write the checkpoint of the current step (rank 0); returns its folder there."""
        rng = _rng_state(self.device)
        if self.world_size > 1:
            import torch.distributed as dist

            states: list[Any] = [None] * self.world_size
            dist.all_gather_object(states, rng)
        else:
            states = [rng]
        if not self.is_main:
            return None
        root = self.run_dir / CHECKPOINT_DIR
        root.mkdir(parents=True, exist_ok=True)
        final = root / checkpoint_name(self.step)
        tmp = root / f".{final.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        torch.save(self.model.state_dict(), tmp / "model.pt")
        state = {
            "format": STATE_FORMAT,
            "step": self.step,
            "draws": self.draws,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": states,
            "world_size": self.world_size,
        }
        check_plain(state, "state.pt")  # so that it loads back with weights_only=True
        torch.save(state, tmp / "state.pt")
        meta = {
            "step": self.step,
            "draws": self.draws,
            "world_size": self.world_size,
            "toolkit_version": __version__,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "features": self.sources[0].features.to_json(),
            "datasets": [
                {**dataclasses.asdict(s), "features": s.features.to_json()} for s in self.sources
            ],
            "train_config": self.cfg.to_dict(),
            "model_config": self.model_config.to_dict(),
        }
        atomic_write_json(tmp / "meta.json", meta)  # written last: marks the folder complete
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in sorted(p for p in root.glob("step-*") if p.is_dir())[
            : -self.cfg.keep_checkpoints
        ]:
            shutil.rmtree(old, ignore_errors=True)
        if self._tb is not None:
            self._tb.flush()
        log.info("checkpoint %s", final)
        self._draw_curves()
        return final

    def _draw_curves(self) -> None:
        """Redraw ``RUN_DIR/curves.png``; a picture that cannot be drawn costs a warning, not
        the run."""
        try:
            draw_curves(self.run_dir)
        except Exception as e:  # whatever broke the drawing, the training goes on
            log.warning("%s: curves.png not drawn: %s: %s", self.run_dir, type(e).__name__, e)

    def _load_checkpoint(self, path: Path) -> None:
        weights, state = read_checkpoint(path, self.model_config)
        try:
            self.model.load_state_dict(weights)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            # The saved optimizer holds the next update's learning rate on the schedule of the
            # checkpoint's max_steps; this run's may differ (a longer run), and its schedule
            # decides: the learning rate of step n is that of a run started with this max_steps.
            factor = lr_factor(int(state["step"]) + 1, self.cfg.warmup_steps, self.cfg.max_steps)
            for group, base in zip(
                self.optimizer.param_groups, self.scheduler.base_lrs, strict=True
            ):
                group["lr"] = base * factor
        except (KeyError, RuntimeError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: does not fit this run ({e})") from None
        del weights
        self.step = int(state["step"])
        self.draws = int(state["draws"])
        if state["world_size"] == self.world_size:
            _set_rng_state(state["rng"][self.rank], self.device)
        else:
            log.warning(
                "%s: saved by %d workers, resumed by %d: dropout RNG reseeded (the batches "
                "stay exact)",
                path,
                state["world_size"],
                self.world_size,
            )
            torch.manual_seed(_worker_seed(self.cfg.seed + self.step, self.rank))
        log.info("resumed from %s (step %d)", path, self.step)

    # -- cleanup ---------------------------------------------------------------------------

    def _summary(self, steps: int, wall: float) -> dict[str, Any]:
        mine = {
            "rank": self.rank,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": str(self.device),
            "clips_this_run": self._clips,
            "skipped_steps": self._skipped,
        }
        if self.world_size > 1:
            import torch.distributed as dist

            workers: list[Any] = [None] * self.world_size
            dist.all_gather_object(workers, mine)
        else:
            workers = [mine]
        summary = {
            "step": self.step,
            "max_steps": self.cfg.max_steps,
            "steps_this_run": steps,
            "wall_s": round(wall, 3),
            "steps_per_s": round(steps / wall, 4) if wall > 0 else None,
            "world_size": self.world_size,
            "workers": workers,
            "last_losses": self._running(),
            "checkpoint": str(find_checkpoint(self.run_dir)) if self.is_main else None,
        }
        if self.is_main:
            atomic_write_json(self.run_dir / "summary.json", summary)
        if self.report is not None:
            self.report({"step": self.step, "done": True, **self._running()})
        return summary

    def cleanup(self) -> None:
        """Stop the loader processes, close the logs and the progress bar."""
        self._loader_iter = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._progress is not None:
            if self._bar is not None:
                self._progress.done(self._bar)
            self._progress.__exit__(None, None, None)
            self._progress = None


def progress_text(losses: Mapping[str, float], entry: Mapping[str, Any]) -> str:
    """The training bar's description: the latest loss of each task, clips per second and
    the share of step time spent waiting for data, from the last logged window ``entry``."""
    shown = " ".join(f"{t} {v:.3f}" for t, v in sorted(losses.items()))
    perf = entry.get("perf", {})
    return (
        f"train {shown} · {perf.get('clips_per_s', 0.0):.1f} clips/s · "
        f"data wait {100 * perf.get('data_wait_fraction', 0.0):.0f}%"
    )


class _Window:
    """Metrics of the steps since the last log line."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.data_s = 0.0
        self.step_s = 0.0

    def add(self, metrics: dict[str, Any], data_s: float, step_s: float) -> None:
        self.steps.append(metrics)
        self.data_s += data_s
        self.step_s += step_s

    def close(self, recipe: PretrainRecipe) -> dict[str, Any]:
        """The window as one log entry: per-task mean losses (over workers too) and rates."""
        per_task: dict[str, list[torch.Tensor]] = {}
        extra: dict[str, list[float]] = {}
        for m in self.steps:
            if "loss" in m["values"]:
                per_task.setdefault(m["task"], []).append(m["values"]["loss"])
        names = sorted(per_task)
        losses = (
            torch.stack([torch.stack(per_task[t]).mean() for t in names])
            if names
            else torch.zeros(0, device=recipe.device)
        )
        if recipe.world_size > 1 and names:
            import torch.distributed as dist

            dist.all_reduce(losses)
            losses = losses / recipe.world_size
        loss = dict(zip(names, losses.cpu().tolist(), strict=True))
        for m in self.steps:
            for name, value in m["values"].items():
                if name != "loss":
                    extra.setdefault(f"{m['task']}/{name}", []).append(float(value))
        n = len(self.steps)
        workers = recipe.world_size
        rate = n / self.step_s if self.step_s > 0 else 0.0
        clips = sum(m["clips"] for m in self.steps) * workers
        tokens = sum(m["tokens"] for m in self.steps) * workers
        feature_steps = sum(m["feature_steps"] for m in self.steps) * workers
        return {
            "step": recipe.step,
            "tasks": [m["task"] for m in self.steps],
            "loss": loss,
            "metrics": {k: sum(v) / len(v) for k, v in sorted(extra.items())},
            "lr": self.steps[-1]["lr"],
            "grad_norm": float(torch.stack([m["grad_norm"] for m in self.steps]).mean()),
            "perf": {
                "steps_per_s": rate,
                "clips_per_s": clips / self.step_s if self.step_s > 0 else 0.0,
                "tokens_per_s": tokens / self.step_s if self.step_s > 0 else 0.0,
                "feature_steps_per_s": feature_steps / self.step_s if self.step_s > 0 else 0.0,
                "data_wait_fraction": self.data_s / self.step_s if self.step_s > 0 else 0.0,
            },
        }


# -- helpers -------------------------------------------------------------------------------


def checkpoint_features(meta: Mapping[str, Any], where: str | os.PathLike[str]) -> FeatureSet:
    """The feature set a ``hero train`` checkpoint was trained on (its ``meta.json``'s
    ``features``; checkpoints written before sets were named trained on HERO's default)."""
    raw = meta.get("features")
    if raw is None:
        return DEFAULT_FEATURES
    try:
        return FeatureSet.from_json(raw)
    except ValueError as e:
        raise CheckpointError(f"{where}: bad features in meta.json ({e})") from None


def check_checkpoint_features(
    meta: Mapping[str, Any], features: FeatureSet, checkpoint: str | os.PathLike[str], data: str
) -> None:
    """:class:`CheckpointError` unless the checkpoint was trained on ``features`` (the set of
    the dataset ``data``)."""
    trained = checkpoint_features(meta, checkpoint)
    if not trained.same_layout(features):
        raise CheckpointError(
            f"{checkpoint}: trained on features {trained.describe()}, but {data} has "
            f"{features.describe()}; a model takes the feature set it was trained on"
        )


def _read_meta(checkpoint: Path) -> dict[str, Any]:
    """``meta.json`` of a checkpoint, with the fields resuming reads checked."""
    path = checkpoint / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint metadata ({e})") from None
    datasets = meta.get("datasets") if isinstance(meta, dict) else None
    if (
        not isinstance(meta, dict)
        or not isinstance(meta.get("train_config"), dict)
        or not isinstance(datasets, list)
        or not all(
            isinstance(d, dict) and isinstance(d.get("path"), str) and _is_int(d.get("clips"))
            for d in datasets
        )
    ):
        raise CheckpointError(
            f"{path}: not checkpoint metadata of hero train (needs train_config, and datasets "
            "with path and clips)"
        )
    return meta


def _check_same_run(saved: Mapping[str, Any], cfg: TrainConfig, checkpoint: Path) -> None:
    now = cfg.to_dict()
    free = _RESUMABLE | {"max_steps"}  # checked against the step (_check_max_steps)
    changed = sorted(
        k for k in set(saved) | set(now) if k not in free and saved.get(k) != now.get(k)
    )
    if changed:
        raise CheckpointError(
            f"{checkpoint}: the run was started with other training options (differs in "
            f"{changed}); resume with the same config, or train into a new folder"
        )


def _check_max_steps(saved: Any, cfg: TrainConfig, step: int, checkpoint: Path) -> None:
    """A resumed run may change ``max_steps`` (to train longer, or end sooner) down to the step
    it reached; the schedule is then rebuilt for the new total (see ``_load_checkpoint``)."""
    if cfg.max_steps < step:
        raise CheckpointError(
            f"{checkpoint}: max_steps {cfg.max_steps} is less than the {step} steps the run has "
            f"done; resume with --max-steps {step} or more"
        )
    if cfg.max_steps == step:
        log.warning(
            "%s: the run is at step %d, its max_steps: nothing to train (give a larger "
            "--max-steps to train on)",
            checkpoint,
            step,
        )
    elif saved != cfg.max_steps:
        log.info(
            "%s: max_steps %s -> %d: the learning-rate schedule is rebuilt for %d steps; the lr "
            "of step %d is %.3g (%.3g on the old schedule)",
            checkpoint,
            saved,
            cfg.max_steps,
            cfg.max_steps,
            step + 1,
            cfg.lr * lr_factor(step + 1, cfg.warmup_steps, cfg.max_steps),
            cfg.lr * lr_factor(step + 1, cfg.warmup_steps, saved) if _is_int(saved) else math.nan,
        )


def _logged_step(line: str) -> float:
    """The step of a ``metrics.jsonl`` line; infinity for a line that is not a step entry
    (so that resuming drops it)."""
    try:
        step = json.loads(line).get("step")
    except (ValueError, AttributeError, RecursionError):
        return math.inf
    return step if _is_int(step) else math.inf


def _check_tokens(sources: Sequence[DataSource], model_config: Any) -> None:
    for s in sources:
        if s.max_token_id >= model_config.vocab_size:
            raise TrainConfigError(
                f"{s.path}: token id {s.max_token_id} is outside the model's vocabulary of "
                f"{model_config.vocab_size}; was it tokenized for another model?"
            )
        if s.max_token_id < 0:
            log.warning("%s: no cue is tokenized; it cannot serve MLM or VSM", s.path)


def _write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(dict(data), sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)


def run_training(
    cfg: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    stop_at: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Set up, train (to ``max_steps`` or ``stop_at``) and clean up; returns the summary.

    The summary (also ``RUN_DIR/summary.json``) holds the step reached, steps per second, the
    workers (rank, host, pid, clips trained on) and the last logged loss of each task.
    """
    recipe = PretrainRecipe(
        cfg, run_dir, resume=resume, device=device, progress=progress, report=report
    )
    try:
        recipe.setup()
        return recipe.train(stop_at=stop_at)
    finally:
        recipe.cleanup()
