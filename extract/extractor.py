"""Features for a video: one streaming decode feeding the configured extractors (by default
ResNet-152 and SlowFast-R50, HERO's; any set of :mod:`extract.features`).

A background thread decodes steps (:func:`extract.decode.iter_steps`) into a bounded queue while
the models run, so decoding overlaps compute and memory stays at ``prefetch_steps`` steps
(about 7 MB each) however long the video. Steps are batched ``batch_size`` at a time, always
consecutive steps of the one video being extracted (never two videos). On CPU the models run
each sample on its own (``cpu_micro_batch``), so a step's features are bit-identical whatever
it was batched with: resumed or retried runs agree. On CUDA: bf16 autocast, channels_last,
pinned host memory and non-blocking copies, optional ``torch.compile``; there a step's rows may
differ slightly with its batch (docs/extraction.md states the tolerance the tests hold).

Features are returned as float16, ``(N, dim)`` per extractor name (``resnet`` 2048,
L2-normalised; ``slowfast`` 2304; ``clip_vit_b32`` 512; ...), N = the number of steps decoded
(``ceil(D / L)`` for a whole video).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from extract.config import ExtractConfig
from extract.decode import (
    SHORT_SIDE,
    StepFrames,
    StepPlanes,
    crop_offset,
    iter_steps,
    scaled_size,
)
from extract.features import EXTRACTORS, ImageInput
from extract.models import WeightsInfo, prepare_for
from extract.nvdec import resolve_decoder
from extract.pixels import RGBFrame, YUVFrame, convert, resolve_pixels
from extract.sampling import pathway_slots, slow_positions
from hero_data.device import resolve_device
from hero_data.errors import HeroError
from hero_data.types import safe_id

log = logging.getLogger(__name__)


def resolve_pixels_and_decoder(cfg: ExtractConfig, device: torch.device) -> tuple[str, str]:
    """Where pixel work is done (``swscale``, ``torch``) and where videos are decoded (``cpu``,
    ``nvdec``, ``auto``: :func:`extract.nvdec.resolve_decoder`) when extracting on ``device``.

    Raises :class:`extract.nvdec.NvdecUnavailable` for ``decoder: nvdec`` where NVDEC cannot
    run.
    """
    pixels = resolve_pixels(cfg.pixels, device)
    if cfg.decoder == "nvdec" and cfg.pixels == "auto":
        pixels = "torch"  # NVDEC's frames are on the GPU: the pixel work is too
    if pixels == "torch" and cfg.backend != "pyav":
        pixels = "swscale"  # auto; an explicit torch with another backend fails validation
    # After the pixels: NVDEC frames are on the GPU, so "auto" takes NVDEC with torch only.
    return pixels, resolve_decoder(cfg.decoder, device, pixels)


def use_bf16(device: torch.device, asked: bool) -> bool:
    """Whether extraction on ``device`` runs in bfloat16 autocast: on a CUDA GPU that has
    bfloat16, when ``asked`` (``bf16``, true by default). A GPU without it (before Ampere)
    extracts in float32, with a warning, rather than failing in torch's kernels; the CPU always
    runs float32 (bit-identical rows whatever the batch)."""
    if device.type != "cuda" or not asked:
        return False
    if torch.cuda.get_device_capability(device) >= (8, 0):  # Ampere on: native bfloat16
        return True
    log.warning(
        "%s (%s) has no bfloat16: extracting in float32 (slower; bf16: false silences this)",
        device,
        torch.cuda.get_device_name(device),
    )
    return False


@dataclass(frozen=True)
class VideoFeatures:
    """Features of consecutive steps of one video.

    Attributes:
        features: per extractor name, in set order, ``(N, dim)`` float16 rows (``resnet``'s
            of unit norm); ``features["resnet"]`` is also ``video_features["resnet"]``.
        frame_interval: seconds per step.
        first_step: index of the first row's step in the video (0 for a whole video).
    """

    features: Mapping[str, np.ndarray]
    frame_interval: float
    first_step: int = 0

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("VideoFeatures needs at least one feature")
        counts = {name: len(rows) for name, rows in self.features.items()}
        if len(set(counts.values())) != 1:
            raise ValueError(f"features of different step counts: {counts}")

    def __getitem__(self, name: str) -> np.ndarray:
        return self.features[name]

    @property
    def names(self) -> tuple[str, ...]:
        """The feature names, in set order."""
        return tuple(self.features)

    @property
    def num_steps(self) -> int:
        """N."""
        return int(next(iter(self.features.values())).shape[0])


class ExtractTimeout(HeroError, TimeoutError):
    """A video took longer than its time budget (a hung or pathologically slow decode)."""


class _Prefetch:
    """Runs a step iterator in a thread, handing steps over through a bounded queue.

    With a ``deadline`` (``time.monotonic()`` seconds) the consumer stops waiting then and
    raises :class:`ExtractTimeout`; the decode thread is told to stop and, if it is stuck in a
    call that never returns, is left behind as a daemon (it holds one step at most).
    """

    _END = object()

    def __init__(
        self,
        steps: Iterator[Any],
        size: int,
        deadline: float | None = None,
        what: str = "",
        cost: Callable[[Any], int] | None = None,
        budget: int = 0,
    ) -> None:
        self._deadline = deadline
        self._what = what
        self._cost = cost  # bytes an item holds; with a budget, queued bytes stay under it
        self._budget = budget
        self._queued = 0
        self._lock = threading.Lock()
        self._q: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(steps,), daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, steps: Iterator[Any]) -> None:
        try:
            for step in steps:
                if self._cost is not None:
                    while self._queued > self._budget and not self._stop.is_set():
                        time.sleep(0.002)  # the consumer is behind by more than the budget
                    with self._lock:
                        self._queued += self._cost(step)
                if not self._put(step):
                    return
            self._put(self._END)
        except BaseException as e:  # handed to the consumer, raised there
            self._put(e)

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                if self._deadline is None:
                    item = self._q.get()
                else:
                    try:
                        item = self._q.get(timeout=max(self._deadline - time.monotonic(), 0.0))
                    except queue.Empty:
                        raise ExtractTimeout(
                            f"{self._what}: gave up after its time budget; decoding hung or is "
                            "far slower than expected"
                        ) from None
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                if self._cost is not None:
                    with self._lock:
                        self._queued -= self._cost(item)
                yield item
        finally:
            self._stop.set()
            self._thread.join(timeout=1 if self._deadline is not None else 10)


class FeatureExtractor:
    """Loads the configured extractors (:attr:`ExtractConfig.features`) once; extracts their
    features of videos or windows of them, from one decode per video whatever the set.

    Every 2D extractor reads the step's 2D sample, scaled from the decoded frame to its own
    short side (224, or RN50x4's 288: a second scaling of the same frame), every 3D one the
    window's 32 fast-pathway slots (SlowFast's slow pathway 8 of them): :mod:`extract.features`.

    Args:
        config: see :class:`ExtractConfig`.
        modules: already-built feature modules by extractor name (tests, or sharing across
            extractors); for those no weights are loaded and ``weights`` says "injected".
    """

    def __init__(
        self,
        config: ExtractConfig | None = None,
        *,
        modules: Mapping[str, torch.nn.Module] | None = None,
    ) -> None:
        self.config = cfg = config or ExtractConfig()
        self.device = resolve_device(cfg.device)
        cuda = self.device.type == "cuda"
        # before the weights load, so that a missing NVDEC is told at once
        self.pixels, self.decoder = resolve_pixels_and_decoder(cfg, self.device)
        injected = dict(modules or {})
        unknown = set(injected) - set(cfg.features)
        if unknown:
            raise ValueError(f"modules given for {sorted(unknown)}, not in {cfg.features}")
        self.specs = {name: EXTRACTORS[name] for name in cfg.features}
        # The short sides of the 2D samples read (224; CLIP RN50x4's 288), and those beyond
        # the decoder's 224, which it scales a second time.
        self._sides_read = sorted(
            {s.input.short_side for s in self.specs.values() if isinstance(s.input, ImageInput)}
        )
        self.image_sides = tuple(s for s in self._sides_read if s != SHORT_SIDE)
        self.weights: dict[str, WeightsInfo] = {}
        self._bf16 = use_bf16(self.device, cfg.bf16)
        opts = {"bf16": self._bf16, "channels_last": cuda, "compile": cuda and cfg.compile}
        self.models: dict[str, torch.nn.Module] = {}
        for name, spec in self.specs.items():
            if name in injected:
                module = injected[name]
                self.weights[name] = WeightsInfo("injected", None, "injected")
            else:
                module, self.weights[name] = spec.load(
                    cfg.weights_for(name), random_weights=cfg.random_weights, offline=cfg.offline
                )
            if name == "slowfast":
                module.slow_positions = slow_positions(cfg.sampling)
            self.models[name] = prepare_for(module, self.device, **opts)

    def describe(self) -> dict[str, Any]:
        """What a dataset manifest records about extraction."""
        return {
            "frame_interval": self.config.frame_interval,
            "decoder": self.config.backend,
            "features": list(self.specs),
            "models": {name: spec.model for name, spec in self.specs.items()},
            "weights": {k: asdict(v) for k, v in self.weights.items()},
            "sampling": self.config.sampling,
            "preprocessing": {name: spec.preprocessing.text for name, spec in self.specs.items()},
            "pixels": self.pixels,
            "decode": self.decoder,
            "dtype": "bfloat16 autocast" if self._bf16 else "float32",
            "device": self.device.type,
        }

    def _to_device(self, arrays: list[np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack(arrays))  # (B, ...) uint8
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch

    def fast_frames(self, step: StepFrames) -> np.ndarray:
        """The 32 fast-pathway frames of ``step``'s window, ``(32, 224, 224, 3)``, chosen by
        the configured sampling rule (:func:`extract.sampling.pathway_slots`)."""
        slots = pathway_slots(self.config.sampling, len(step.window), step.times.frame_rate)
        return step.window[list(slots.fast)]

    @torch.inference_mode()
    def _run(self, steps: list[Any]) -> dict[str, np.ndarray]:
        if isinstance(steps[0], StepPlanes):
            images, fast = planes_to_inputs(
                steps, self.config.sampling, self.device, self.image_sides
            )
        else:
            images = {  # short side -> (B, H, W, 3)
                side: self._to_device([_sample(s, side) for s in steps])
                for side in self._sides_read
            }
            fast = self._to_device([self.fast_frames(s) for s in steps])  # (B, 32, 224, 224, 3)
        rows = {}
        for name, model in self.models.items():
            source = self.specs[name].input
            inputs = images[source.short_side] if isinstance(source, ImageInput) else fast
            rows[name] = model(inputs).float().cpu().numpy().astype(np.float16)  # (B, dim)
        return rows

    def iter_features(
        self,
        path: str | os.PathLike[str],
        *,
        start: float = 0.0,
        end: float | None = None,
        timeout_s: float | None = None,
        fps: str | None = None,
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """``(step index, {name: (dim,) float16})`` per step, in order, the names those of
        the configured set.

        ``timeout_s``: the whole video's time budget; past it :class:`ExtractTimeout`.
        ``fps``: a frame folder's rate as the manifest states it (:mod:`extract.frames`).
        """
        cfg = self.config
        steps = iter_steps(
            path,
            cfg.frame_interval,
            start=start,
            end=end,
            backend=cfg.backend,
            image_sides=self.image_sides,
            sampling=cfg.sampling,  # convert only the window slots the 3D extractors read
            pixels=self.pixels,
            decoder=self.decoder,
            device=self.device,
            fps=fps,
        )
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        cost, budget = None, 0
        if self.pixels == "torch":
            cost, budget = _planes_bytes, cfg.planes_prefetch_mb << 20
        prefetch = _Prefetch(steps, cfg.prefetch_steps, deadline, str(path), cost, budget)
        batch: list[Any] = []
        for step in prefetch:
            if batch and _shape(step) != _shape(batch[0]):
                yield from self._emit(batch)  # a batch stacks images of one size only
                batch = []
            batch.append(step)
            if len(batch) >= cfg.batch_size:
                yield from self._emit(batch)
                batch = []
        if batch:
            yield from self._emit(batch)

    def _emit(self, batch: list[Any]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        rows = self._run(batch)
        for k, step in enumerate(batch):
            yield step.index, {name: r[k] for name, r in rows.items()}

    def extract(
        self,
        path: str | os.PathLike[str],
        *,
        start: float = 0.0,
        end: float | None = None,
        on_step: Callable[[int], None] | None = None,
        timeout_s: float | None = None,
        fps: str | None = None,
    ) -> VideoFeatures:
        """Features of ``[start, end)`` source seconds of ``path`` (the whole video by default).

        ``on_step(index)`` is called after each step (progress); ``timeout_s`` bounds the
        whole call (:class:`ExtractTimeout`); ``fps``: a frame folder's rate as the manifest
        states it.
        """
        rows: dict[str, list[np.ndarray]] = {name: [] for name in self.specs}
        first = None
        steps = self.iter_features(path, start=start, end=end, timeout_s=timeout_s, fps=fps)
        for index, step in steps:
            if first is None:
                first = index
            for name, row in step.items():
                rows[name].append(row)
            if on_step is not None:
                on_step(index)
        return VideoFeatures(
            {
                name: np.stack(r) if r else np.zeros((0, self.specs[name].dim), np.float16)
                for name, r in rows.items()
            },
            frame_interval=self.config.frame_interval,
            first_step=first or 0,
        )


def planes_to_inputs(
    steps: list[StepPlanes],
    sampling: str,
    device: torch.device,
    image_sides: Sequence[int] = (),
) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """The model inputs of steps of one size (:func:`_shape`) from their raw planes, converted
    on ``device`` (:func:`extract.pixels.convert`), each distinct frame (2D samples and the
    fast-pathway slots ``sampling`` names) once: uint8 images ``(B, h, w, 3)`` by short side
    (224, and each of ``image_sides``: the 2D samples scaled again from their planes) and fast
    frames ``(B, 32, 224, 224, 3)``, as the swscale path's :meth:`FeatureExtractor.fast_frames`
    would give them."""
    frames: dict[int, YUVFrame | RGBFrame] = {}
    rows: dict[int, int] = {}

    def row(frame: YUVFrame | RGBFrame | None) -> int:
        assert frame is not None, "a slot the sampling rule reads has no frame"
        if id(frame) not in rows:
            rows[id(frame)] = len(frames)
            frames[id(frame)] = frame
        return rows[id(frame)]

    image_rows = [row(s.image) for s in steps]
    fast_rows = []
    for s in steps:
        slots = pathway_slots(sampling, len(s.window), s.times.frame_rate)
        fast_rows.append([row(s.window[j]) for j in slots.fast])
    rgb = convert(list(frames.values()), steps[0].size, device)  # type: ignore[arg-type]  # (N, h, w, 3)
    side = SHORT_SIDE  # the 3D slots' crop
    top, left = crop_offset(rgb.shape[1], side), crop_offset(rgb.shape[2], side)
    crops = rgb[:, top : top + side, left : left + side]  # (N, 224, 224, 3)
    images = {side: rgb.index_select(0, torch.tensor(image_rows, device=device))}  # (B, h, w, 3)
    fast = crops[torch.tensor(fast_rows, device=device)]  # (B, 32, 224, 224, 3)
    display = steps[0].image.display_size
    for extra in image_sides:
        if extra != side:
            samples = [s.image for s in steps]
            images[extra] = convert(samples, scaled_size(*display, extra), device)  # type: ignore[arg-type]
    return images, fast.contiguous()


def _sample(step: StepFrames, side: int) -> np.ndarray:
    """The step's 2D sample at short side ``side``."""
    return step.image if side == SHORT_SIDE else step.extra[side]


def _shape(step: StepFrames | StepPlanes) -> Any:
    """Steps of equal shape batch together."""
    if isinstance(step, StepPlanes):
        return (step.size, step.image.key())
    return step.image.shape


def _planes_bytes(step: StepPlanes) -> int:
    """Bytes of raw planes a step holds (each distinct frame once)."""
    frames = {id(f): f for f in (step.image, *step.window) if f is not None}
    return sum(f.nbytes for f in frames.values())


def npz_name(video: str | os.PathLike[str]) -> str:
    """``<safe stem>.<8 hex of the absolute path's sha256>.npz``: same-named videos in
    different folders get different files, and a video always gets the same one."""
    path = Path(video)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{safe_id(path.stem)}.{digest}.npz"


def write_npz(path: str | os.PathLike[str], features: VideoFeatures, source: str) -> None:
    """Write each feature under its name (``resnet``, ``slowfast``, ...), ``frame_interval``
    and ``source``, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                **features.features,
                frame_interval=np.float64(features.frame_interval),
                source=np.str_(source),
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
