"""Pretraining data: datasets mixed by weight, a seeded resumable sampler, and the DataLoader.

Everything a batch holds is a pure function of its position, so that a run resumed at step ``s``
sees exactly the batches an uninterrupted run would have seen:

* **Which clips.** Draws are numbered ``k = 0, 1, 2, …`` over the mixed datasets
  (:class:`MixSampler`). Draw ``k`` falls in "mix epoch" ``e = k // M``, where ``M`` is the
  total number of clips. Each mix epoch gives dataset ``i`` a quota ``q_i`` of its ``M`` slots
  (``q_i = len_i`` by default, so every clip is drawn once per epoch; with mixing weights
  ``q_i ≈ M·w_i/Σw``) and shuffles the slots with a permutation seeded by ``(seed, e)``.
  Dataset ``i``'s slots take its clips in the order of its own seeded per-pass permutations,
  so a dataset drawn more (or less) often than its size cycles through all its clips evenly.
* **Which task.** Step ``s`` samples its task by the configured ratios with a generator seeded
  by ``(seed, s)`` (and a stream tag keeping it apart from the batch generators); all workers
  and all accumulation micro-batches of a step share the task.
* **Which draws per worker.** A step takes ``A·W·B`` draws (accumulation steps × workers ×
  clips per micro-batch). Micro-batch ``a`` of worker ``r`` is stream ``j = a·W + r`` and takes
  draws ``start + j·B … start + (j+1)·B − 1``: the same clips whether one worker accumulates
  ``A = 2`` micro-batches or two workers take one each.
* **Which masks.** ``make_batch(records, task, config, np.random.default_rng([seed, s, j]))``
  (``j`` is the worker rank when there is no accumulation).

The data position saved in a checkpoint is therefore just the step and the number of draws
consumed before it (:class:`BatchPlan`).

Batches are built by DataLoader worker processes (``make_batch`` returns CPU tensors), each
opening the memory-mapped shards itself; on a GPU they are pinned for asynchronous copies.
"""

from __future__ import annotations

import bisect
import functools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch
from torch.utils.data import DataLoader, Dataset

from hero_data.errors import HeroError
from hero_data.features import FeatureSet
from hero_data.reader import HeroDataset
from hero_data.schema import ClipRecord
from hero_data.storage import canonical_location

log = logging.getLogger(__name__)

# Stream tags of the seeded generators. Seed sequences that differ only by trailing zeros
# collide in numpy ([s, 3] and [s, 3, 0] give the same stream), so the trainer's own streams
# carry tags that no batch generator ([seed, step, j]) can reach.
_TASK_STREAM = 0xFFFF_FFFF
_MIX_STREAM = 0xFFFF_FFFE
_PASS_STREAM = 0xFFFF_FFFD

BatchBuilder = Callable[..., "dict[str, torch.Tensor] | None"]


class DataMixError(HeroError, ValueError):
    """Datasets that cannot be trained on together, or a bad mixing weight; names the files."""


# -- datasets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSource:
    """One dataset of a mix.

    Attributes:
        path: the dataset folder.
        clips: number of clips (rows).
        weight: share of the draws it gets (relative to the others); ``None``: its size.
        frame_interval: seconds per feature step of all its clips.
        tokenizer: the manifest's tokenizer record (sha256, vocab size), or ``None``.
        max_token_id: the largest token id in its cues, or ``-1`` if none is tokenized.
        features: its feature set (the model's visual input is its columns side by side).
    """

    path: str
    clips: int
    weight: float | None
    frame_interval: float
    tokenizer: dict[str, Any] | None
    max_token_id: int
    features: FeatureSet


def frame_interval_of(ds: HeroDataset) -> float:
    """The one frame interval (seconds per step) of ``ds``'s clips; :class:`DataMixError`
    naming the dataset when its clips have several (steps of two lengths cannot be mixed)."""
    values = pc.unique(ds.table(["frame_interval"]).column("frame_interval")).to_pylist()
    if len(values) != 1:
        raise DataMixError(
            f"{ds.root}: clips with different frame intervals {sorted(values)} s in one dataset"
        )
    return float(values[0])


def _max_token_id(ds: HeroDataset) -> int:
    column = ds.table(["cue_token_ids"]).column("cue_token_ids")
    ids = pc.list_flatten(pc.list_flatten(column))
    if len(ids) == 0:
        return -1
    return int(pc.max(ids).as_py())


def describe_sources(
    paths: Sequence[str | os.PathLike[str]], weights: Sequence[float] | None = None
) -> tuple[DataSource, ...]:
    """Open each dataset, describe it, and check that they can be mixed.

    Raises :class:`~hero_data.manifest.DatasetError` for a missing or broken dataset and
    :class:`DataMixError` for an empty one, a bad weight, or datasets that disagree on the
    frame interval, the feature set, the tokenizer or the feature extractor weights (their
    features or token ids would not mean the same thing).
    """
    if not paths:
        raise DataMixError("no dataset given: name at least one with --data")
    if weights is not None:
        if len(weights) != len(paths):
            raise DataMixError(
                f"{len(weights)} mixing weights for {len(paths)} datasets: give one per dataset"
            )
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
                raise DataMixError(f"mixing weights must be positive numbers, got {w!r}")
            if not np.isfinite(w):
                raise DataMixError(f"mixing weights must be finite, got {w!r}")
    if len({canonical_location(p) for p in paths}) != len(paths):
        raise DataMixError(f"a dataset is named twice in {[str(p) for p in paths]}")
    sources = []
    configs = []
    for k, path in enumerate(paths):
        root = os.fspath(path)
        ds = HeroDataset.open(root)  # a missing dataset is a DatasetError naming it
        if len(ds) == 0:
            raise DataMixError(f"{root}: the dataset has no clips")
        tok = ds.manifest.config.get("tokenizer")
        sources.append(
            DataSource(
                path=str(root),
                clips=len(ds),
                weight=None if weights is None else float(weights[k]),
                frame_interval=frame_interval_of(ds),
                tokenizer=tok if isinstance(tok, dict) else None,
                max_token_id=_max_token_id(ds),
                features=ds.feature_set,
            )
        )
        configs.append(ds.manifest.config)
    first = sources[0]
    for src, config in zip(sources[1:], configs[1:], strict=True):
        if not np.isclose(src.frame_interval, first.frame_interval, rtol=0, atol=1e-9):
            raise DataMixError(
                f"{src.path}: frame interval {src.frame_interval:g} s, but {first.path} has "
                f"{first.frame_interval:g} s; datasets mixed in one run need the same grid"
            )
        if not src.features.same_layout(first.features):
            raise DataMixError(
                f"{src.path}: features {src.features.describe()}, but {first.path} has "
                f"{first.features.describe()}; one model takes one feature set, so datasets "
                "mixed in one run need the same set"
            )
        a, b = first.tokenizer, src.tokenizer
        if a and b and a.get("sha256") != b.get("sha256"):
            raise DataMixError(
                f"{src.path}: tokenized with another tokenizer than {first.path} "
                f"(sha256 {str(b.get('sha256'))[:12]}… vs {str(a.get('sha256'))[:12]}…); "
                "token ids would mean different words"
            )
        wa, wb = configs[0].get("weights_sha256"), config.get("weights_sha256")
        if wa and wb and wa != wb:
            raise DataMixError(
                f"{src.path}: features from other extractor weights than {first.path} "
                f"({wb} vs {wa}); their features are not comparable"
            )
    return tuple(sources)


# -- the sampler ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _permutation(seed: int, stream: int, key: tuple[int, ...], n: int) -> np.ndarray:
    """A seeded permutation of ``range(n)`` (int32 when it fits), cached per process."""
    rng = np.random.default_rng([seed, stream, *key])
    perm = rng.permutation(n)
    return perm.astype(np.int32) if n < 2**31 else perm


def _quotas(clips: Sequence[int], weights: Sequence[float | None]) -> tuple[int, ...]:
    """Slots per mix epoch for each dataset: its size, or its weighted share (at least 1)."""
    total = sum(clips)
    if all(w is None for w in weights):
        return tuple(clips)
    w = np.asarray([float(x) for x in weights], dtype=np.float64)  # type: ignore[arg-type]
    raw = total * w / w.sum()
    quota = np.floor(raw).astype(np.int64)
    # Largest remainder, ties to the earlier dataset, so the slots add up to the total.
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - quota[i]), i))
    for i in order[: total - int(quota.sum())]:
        quota[i] += 1
    for i in np.flatnonzero(quota == 0):
        quota[int(np.argmax(quota))] -= 1
        quota[i] = 1
    return tuple(int(q) for q in quota)


@dataclass(frozen=True)
class MixSampler:
    """Maps a draw number ``k >= 0`` to ``(dataset index, row)``: a pure function of ``k``.

    Args:
        clips: clips per dataset.
        weights: per dataset, its share of the draws; all ``None`` (the default): its size.
        seed: seed of the permutations.
    """

    clips: tuple[int, ...]
    weights: tuple[float | None, ...] = ()
    seed: int = 0
    quotas: tuple[int, ...] = field(init=False)
    epoch_size: int = field(init=False)
    _bounds: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.clips or any(n < 1 for n in self.clips):
            raise ValueError(f"every dataset needs at least one clip, got sizes {self.clips}")
        weights = self.weights or (None,) * len(self.clips)
        if len(weights) != len(self.clips):
            raise ValueError(f"{len(weights)} weights for {len(self.clips)} datasets")
        if any(w is None for w in weights) and not all(w is None for w in weights):
            raise ValueError("give a weight for every dataset or for none")
        object.__setattr__(self, "weights", tuple(weights))
        object.__setattr__(self, "quotas", _quotas(self.clips, weights))
        object.__setattr__(self, "epoch_size", sum(self.clips))
        object.__setattr__(self, "_bounds", tuple(int(b) for b in np.cumsum(self.quotas)))

    @classmethod
    def from_sources(cls, sources: Sequence[DataSource], seed: int) -> MixSampler:
        """The sampler for :func:`describe_sources`' result."""
        return cls(tuple(s.clips for s in sources), tuple(s.weight for s in sources), seed)

    def locate(self, k: int) -> tuple[int, int]:
        """``(dataset index, row)`` of draw ``k``."""
        if k < 0:
            raise ValueError(f"draw numbers start at 0, got {k}")
        epoch, pos = divmod(int(k), self.epoch_size)
        slot = int(_permutation(self.seed, _MIX_STREAM, (epoch,), self.epoch_size)[pos])
        i = bisect.bisect_right(self._bounds, slot)
        offset = slot - (self._bounds[i - 1] if i else 0)
        # Position in dataset i's own endless sequence of passes over its clips.
        n = self.clips[i]
        p, row = divmod(epoch * self.quotas[i] + offset, n)
        return i, int(_permutation(self.seed, _PASS_STREAM, (i, p), n)[row])

    def draws(self, start: int, count: int) -> list[tuple[int, int]]:
        """``locate`` for draws ``start … start + count - 1``."""
        return [self.locate(k) for k in range(start, start + count)]


# -- what each step and worker takes -------------------------------------------------------


@dataclass(frozen=True)
class BatchPlan:
    """Which task, clips and random stream each micro-batch of each step uses.

    Attributes:
        seed: the run's seed.
        tasks: task names, in a fixed order.
        ratios: relative frequency of each task (same order), all positive.
        batch_size: clips per micro-batch ``B`` (per worker).
        accumulation: micro-batches per optimizer step and worker ``A``.
        world_size: data-parallel workers ``W``.
        rank: this worker.
        start_step: the first step this plan is used for (0, or the step resumed after).
        start_draw: draws consumed before ``start_step``.
    """

    seed: int
    tasks: tuple[str, ...]
    ratios: tuple[float, ...]
    batch_size: int
    accumulation: int = 1
    world_size: int = 1
    rank: int = 0
    start_step: int = 0
    start_draw: int = 0

    def __post_init__(self) -> None:
        if not self.tasks or len(self.tasks) != len(self.ratios):
            raise ValueError(f"tasks {self.tasks} and ratios {self.ratios} do not pair up")
        if any(not r > 0 for r in self.ratios):
            raise ValueError(f"task ratios must be positive, got {self.ratios}")
        if self.batch_size < 1 or self.accumulation < 1 or self.world_size < 1:
            raise ValueError("batch size, accumulation and world size must be at least 1")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside a world of {self.world_size}")

    @property
    def draws_per_step(self) -> int:
        """Clips one optimizer step takes over all workers: ``A·W·B``."""
        return self.accumulation * self.world_size * self.batch_size

    def task(self, step: int) -> str:
        """The task of ``step``, drawn by the ratios from a generator seeded by (seed, step)."""
        rng = np.random.default_rng([self.seed, step, _TASK_STREAM])
        p = np.asarray(self.ratios, dtype=np.float64)
        return self.tasks[int(rng.choice(len(self.tasks), p=p / p.sum()))]

    def stream(self, micro: int) -> int:
        """Stream number ``j = micro·W + rank`` of this worker's micro-batch ``micro``."""
        return micro * self.world_size + self.rank

    def first_draw(self, step: int, micro: int) -> int:
        """Draw number of the first clip of micro-batch ``micro`` of ``step`` on this worker."""
        if step < self.start_step:
            raise ValueError(f"step {step} is before this plan's first step {self.start_step}")
        steps = step - self.start_step
        return self.start_draw + steps * self.draws_per_step + self.stream(micro) * self.batch_size

    def draws_before(self, step: int) -> int:
        """Draws all workers consumed before ``step`` (the data position saved at ``step``)."""
        return self.start_draw + (step - self.start_step) * self.draws_per_step

    def rng(self, step: int, micro: int) -> np.random.Generator:
        """The generator ``make_batch`` gets: ``default_rng([seed, step, j])``."""
        return np.random.default_rng([self.seed, step, self.stream(micro)])


# -- batches -------------------------------------------------------------------------------


@dataclass
class MicroBatch:
    """One micro-batch as the loader hands it to the trainer.

    Attributes:
        step: optimizer step it belongs to.
        micro: its index among the step's accumulation micro-batches.
        task: the step's task.
        batch: ``make_batch``'s tensors, or ``None`` when no clip could serve the task.
        clips: clips drawn.
        tokens: text tokens in those clips' cues (each cue cut to the model's ``max_tokens``).
        feature_steps: steps in those clips (each clip cut to the model's ``max_clip_steps``).
        clip_ids: the clips, as ``(dataset index, row)``.
    """

    step: int
    micro: int
    task: str
    batch: dict[str, torch.Tensor] | None
    clips: int
    tokens: int
    feature_steps: int
    clip_ids: list[tuple[int, int]]

    def pin_memory(self) -> MicroBatch:
        """A copy with page-locked tensors (the DataLoader calls this with ``pin_memory``)."""
        if self.batch is None:
            return self
        return replace(self, batch={k: v.pin_memory() for k, v in self.batch.items()})


def _count(records: Sequence[ClipRecord], max_tokens: int, max_clip_steps: int) -> tuple[int, int]:
    tokens = sum(min(len(ids), max_tokens) for r in records for ids in r.cue_token_ids)
    steps = sum(min(r.num_frames, max_clip_steps) for r in records)
    return tokens, steps


def _default_builder() -> BatchBuilder:
    from hero_model.batch import make_batch

    return make_batch


class PretrainBatches(Dataset):
    """Map-style dataset whose item ``m`` is this worker's ``m``-th micro-batch from the plan.

    Item ``m`` belongs to step ``plan.start_step + m // A``, micro-batch ``m % A``. Datasets
    are opened lazily in each process (memory maps do not travel between processes).

    Args:
        paths: the dataset folders, in the sampler's order.
        sampler: maps draw numbers to clips.
        plan: tasks, seeds and draw numbers.
        model_config: handed to ``builder`` (and read for ``max_tokens``/``max_clip_steps``).
        max_steps: the last optimizer step (exclusive) to build batches for.
        builder: ``make_batch``; default: :func:`hero_model.batch.make_batch`.
    """

    def __init__(
        self,
        paths: Sequence[str],
        sampler: MixSampler,
        plan: BatchPlan,
        model_config: Any,
        max_steps: int,
        builder: BatchBuilder | None = None,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.sampler = sampler
        self.plan = plan
        self.model_config = model_config
        self.max_steps = max_steps
        self.builder = builder
        self._datasets: list[HeroDataset] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_datasets"] = None
        return state

    def __len__(self) -> int:
        return max(self.max_steps - self.plan.start_step, 0) * self.plan.accumulation

    def datasets(self) -> list[HeroDataset]:
        """The datasets, opened on first use in this process."""
        if self._datasets is None:
            self._datasets = [HeroDataset.open(p) for p in self.paths]
        return self._datasets

    def __getitem__(self, m: int) -> MicroBatch:
        if not 0 <= m < len(self):
            raise IndexError(f"micro-batch {m} out of range for {len(self)}")
        plan = self.plan
        step = plan.start_step + m // plan.accumulation
        micro = m % plan.accumulation
        task = plan.task(step)
        where = self.sampler.draws(plan.first_draw(step, micro), plan.batch_size)
        datasets = self.datasets()
        records = [datasets[i][row] for i, row in where]
        build = self.builder or _default_builder()
        batch = build(records, task, self.model_config, plan.rng(step, micro))
        tokens, steps = _count(
            records,
            int(getattr(self.model_config, "max_tokens", 1 << 30)),
            int(getattr(self.model_config, "max_clip_steps", 1 << 30)),
        )
        return MicroBatch(step, micro, task, batch, len(records), tokens, steps, where)


def _identity(item: MicroBatch) -> MicroBatch:
    return item


def make_loader(
    batches: PretrainBatches,
    *,
    num_workers: int = 2,
    prefetch_factor: int = 4,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader yielding ``batches``' micro-batches in order, built by worker processes.

    Args:
        batches: the micro-batches to load.
        num_workers: worker processes building batches (0: in this process).
        prefetch_factor: micro-batches each worker keeps ready.
        pin_memory: page-lock the tensors (for asynchronous copies to a GPU).
    """
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs["prefetch_factor"] = prefetch_factor
        kwargs["persistent_workers"] = False
    # Its own generator: creating an iterator draws a seed for the worker processes, and from
    # the global generator that draw would shift the dropout RNG of a resumed run. (Batches
    # never use torch's RNG: all their randomness comes from the plan's numpy generators.)
    return DataLoader(
        batches,
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_identity,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )
