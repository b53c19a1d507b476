"""The options of ``hero run``: one frozen :class:`RunConfig`, from a YAML file and flags.

Precedence: a command-line flag that is not ``None`` wins over the YAML file, the file over
the defaults (:func:`build_config`). Everything is validated when the config is built; every
error is a :class:`ConfigError` naming where the bad value came from (the YAML file or the
command line) and the key. ``configs/run.example.yaml`` lists every option with its default.

Relative paths in a config file are relative to the working directory ``hero run`` starts in,
not to the file (as for the same paths given as flags).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

import fsspec

from hero_data.errors import OptionError
from hero_data.grid import WINDOW_FPS, GridError, check_clip_length
from hero_data.yamlfile import load_yaml

__all__ = [
    "CONTENT_KEYS",
    "ConfigError",
    "RunConfig",
    "build_config",
    "load_config",
]

BACKENDS = ("pyav", "decord", "torchcodec")
"""Decoder backends a config may name (``extract.decode.BACKENDS``; kept here so that reading a
config does not import PyAV). Whether one is installed is checked when the run starts."""

SAMPLINGS = ("hero", "uniform")
"""SlowFast frame-choice rules a config may name (``extract.sampling.SAMPLINGS``; kept here so
that reading a config does not import torch)."""

CONTENT_KEYS = ("frame_interval", "clip_length", "language", "random_weights", "sampling")
"""Options that decide what a dataset holds (see :meth:`RunConfig.dataset_config`)."""

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_COMMAND_LINE = "command line"
_DEFAULT = "default"


class ConfigError(OptionError):
    """A ``hero run`` option that is unknown, of the wrong type, out of range or in conflict."""


@dataclass(frozen=True)
class RunConfig:
    """Every option of ``hero run``.

    Attributes:
        input: folder of videos, or a ``.csv``/``.jsonl`` manifest; local path or fsspec URL.
        output: the dataset folder (local path or fsspec URL).
        subtitles: HowTo100M caption JSON (``{id: {start, end, text}}``); ``None``: subtitle
            files next to the videos (or named in the manifest).
        language: keep only videos whose captions are in this language (ISO 639-1 code, e.g.
            ``"en"``); needs ``subtitles``. ``None``: no filter.
        frame_interval: seconds per feature step ``L``.
        clip_length: seconds per clip, a whole number of steps; ``None``: one clip per video.
        backend: video decoder: ``pyav``, ``decord`` or ``torchcodec``.
        device: ``auto`` (CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: feature steps per model batch.
        compile: ``torch.compile`` the feature models (CUDA only, ignored on CPU): each worker
            compiles them before its first batch (slow to start) to run batches faster.
        sampling: SlowFast's frame choice: ``hero`` (HERO's extractor's rule) or ``uniform``
            (see ``extract/sampling.py``).
        workers: extraction workers, at most; ``None``: as many as the nodes hold
            (:func:`pipelines.cluster.plan_workers`).
        cpus_per_worker: CPU cores Ray reserves per worker (a worker fits on one node);
            ``None``: 2, or less on nodes that have less (:func:`pipelines.cluster.plan_workers`).
        gpus_per_worker: GPUs Ray reserves per worker (fractions share a GPU); 0 with
            ``device: cpu``.
        resnet_weights: ResNet-152 ImageNet state dict; ``None``: the torch hub cache.
        slowfast_weights: SlowFast-R50 checkpoint; ``None``: the torch hub cache.
        random_weights: seeded random model weights (meaningless features; tests, dry runs).
        offline: never download a missing weight file (also ``$HERO_OFFLINE``).
        tokenizer: ``tokenizer.json`` for cue token ids; ``None``: no token ids.
        video_timeout_s: seconds one video may take before it is abandoned; ``None``: from
            its duration (:meth:`timeout_for`).
        timeout_per_video_second: seconds of timeout per second of video, when automatic.
        min_timeout_s: the least automatic timeout, seconds.
        max_attempts: tries per video (a crash or timeout is retried, bad data is not).
        rows_per_shard: clips per Arrow shard, at most (a shard holds one write task's
            videos, never part of a video).
        compact_every_s: seconds between two compactions of the commit records into
            ``manifest.json`` and ``errors.jsonl`` while the run writes (and once at the end).
        address: Ray cluster address (``auto``, ``ray://host:10001``); ``None``: a local Ray.
        strict: exit with status 1 when any video failed (every failure is still recorded in
            errors.jsonl and the run still finishes the other videos).
        strict_subtitles: a subtitle file (or caption entry) with any malformed cue fails its
            video, as the readers did before they recovered; by default malformed cues are
            skipped or repaired and counted (:mod:`align.readers`, docs/subtitles.md).
        overwrite: replace an existing dataset at ``output`` instead of resuming it.
    """

    input: str
    output: str
    subtitles: str | None = None
    language: str | None = None
    frame_interval: float = 1.5
    clip_length: float | None = 60.0
    backend: str = "pyav"
    device: str = "auto"
    batch_size: int = 16
    compile: bool = False
    sampling: str = "hero"
    workers: int | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float = 1.0
    resnet_weights: str | None = None
    slowfast_weights: str | None = None
    random_weights: bool = False
    offline: bool = False
    tokenizer: str | None = None
    video_timeout_s: float | None = None
    timeout_per_video_second: float = 4.0
    min_timeout_s: float = 300.0
    max_attempts: int = 3
    rows_per_shard: int = 1024
    compact_every_s: float = 60.0
    address: str | None = None
    strict: bool = False
    strict_subtitles: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        try:
            values = _validate(asdict(self))
        except _Invalid as e:
            raise ConfigError(e.problem, None, e.keys[0]) from None
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def dataset_config(self) -> dict[str, Any]:
        """The options that decide the dataset's content (:data:`CONTENT_KEYS`).

        A run refuses to resume into an existing dataset whose recorded values differ, unless
        ``overwrite``. Content: ``frame_interval`` and ``clip_length`` (the grid and the rows),
        ``language`` (which videos are in), ``random_weights`` and ``sampling`` (what the
        features mean). Weight
        and tokenizer files are content too, but by what they hold, not where they are: the
        pipeline adds their sha256. Not content: where things are (``input``, ``output``,
        ``subtitles``; a corpus may grow between runs), how the work is done (``backend``: the
        decoders select the same frames; ``device``, ``batch_size``, ``compile``, ``workers``, the
        resources, ``address``, timeouts, ``max_attempts``, ``strict``, ``offline``) and the
        shard layout (``rows_per_shard``). ``strict_subtitles`` is not content either: like
        the timeouts, it decides which videos fail, not what a clip holds, and a run may
        resume with it changed (videos already done keep the outcome they had).
        """
        return {key: getattr(self, key) for key in CONTENT_KEYS}

    def timeout_for(self, duration: float) -> float:
        """Seconds a video of ``duration`` seconds may take: ``video_timeout_s`` if set, else
        ``max(min_timeout_s, timeout_per_video_second × duration)``."""
        if self.video_timeout_s is not None:
            return self.video_timeout_s
        return max(self.min_timeout_s, self.timeout_per_video_second * max(duration, 0.0))


_FIELDS = {f.name: f for f in fields(RunConfig)}
_REQUIRED = tuple(name for name, f in _FIELDS.items() if f.default is MISSING)


# --- validation -------------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, keys: tuple[str, ...], problem: str) -> None:
        super().__init__(problem)
        self.keys = keys
        self.problem = problem


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid((key,), f"{key} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise _Invalid((key,), f"{key} must be a finite number, got {value!r}")
    return float(value)


def _whole(key: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid((key,), f"{key} must be a whole number, got {value!r}")
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid((key,), f"{key} must be a non-empty string, got {value!r}")
    return value


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid((key,), f"{key} must be true or false, got {value!r}")
    return value


def _at_least(key: str, value: float, low: float, *, strict: bool = False) -> None:
    if value < low or (strict and value == low):
        word = "greater than" if strict else "at least"
        raise _Invalid((key,), f"{key} must be {word} {low:g}, got {value:g}")


def _validate(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (every field) type-checked, range-checked and normalized; raises
    :class:`_Invalid` naming the keys at fault."""
    out = dict(values)
    for key in ("input", "output", "backend", "device", "sampling"):
        out[key] = _text(key, out[key])
    for key in ("subtitles", "language", "resnet_weights", "slowfast_weights", "tokenizer"):
        if out[key] is not None:
            out[key] = _text(key, out[key])
    if out["address"] is not None:
        out["address"] = _text("address", out["address"])
    for key in ("random_weights", "compile", "strict", "strict_subtitles", "overwrite", "offline"):
        out[key] = _flag(key, out[key])

    out["frame_interval"] = _number("frame_interval", out["frame_interval"])
    _at_least("frame_interval", out["frame_interval"], 0.0, strict=True)
    if round(out["frame_interval"] * WINDOW_FPS) < 1:
        raise _Invalid(
            ("frame_interval",),
            f"frame_interval must be at least {1 / (2 * WINDOW_FPS):.4g} s (one frame of the "
            f"{WINDOW_FPS} fps 3D window), got {out['frame_interval']!r}",
        )
    if out["clip_length"] is not None:
        out["clip_length"] = _number("clip_length", out["clip_length"])
        try:
            check_clip_length(out["clip_length"], out["frame_interval"])
        except GridError as e:
            raise _Invalid(("clip_length", "frame_interval"), f"clip_length: {e}") from None

    for key in ("batch_size", "max_attempts", "rows_per_shard"):
        out[key] = _whole(key, out[key])
        _at_least(key, out[key], 1)
    if out["workers"] is not None:
        out["workers"] = _whole("workers", out["workers"])
        _at_least("workers", out["workers"], 1)
    if out["cpus_per_worker"] is not None:
        out["cpus_per_worker"] = _number("cpus_per_worker", out["cpus_per_worker"])
        _at_least("cpus_per_worker", out["cpus_per_worker"], 0.0, strict=True)
    out["gpus_per_worker"] = _number("gpus_per_worker", out["gpus_per_worker"])
    _at_least("gpus_per_worker", out["gpus_per_worker"], 0.0)
    if out["video_timeout_s"] is not None:
        out["video_timeout_s"] = _number("video_timeout_s", out["video_timeout_s"])
        _at_least("video_timeout_s", out["video_timeout_s"], 0.0, strict=True)
    out["timeout_per_video_second"] = _number(
        "timeout_per_video_second", out["timeout_per_video_second"]
    )
    _at_least("timeout_per_video_second", out["timeout_per_video_second"], 0.0)
    out["min_timeout_s"] = _number("min_timeout_s", out["min_timeout_s"])
    _at_least("min_timeout_s", out["min_timeout_s"], 0.0, strict=True)
    out["compact_every_s"] = _number("compact_every_s", out["compact_every_s"])
    _at_least("compact_every_s", out["compact_every_s"], 0.0, strict=True)

    if out["backend"] not in BACKENDS:
        raise _Invalid(
            ("backend",), f"backend must be one of {', '.join(BACKENDS)}, got {out['backend']!r}"
        )
    if out["sampling"] not in SAMPLINGS:
        raise _Invalid(
            ("sampling",),
            f"sampling must be one of {', '.join(SAMPLINGS)}, got {out['sampling']!r}",
        )
    if not _DEVICE.match(out["device"]):
        raise _Invalid(
            ("device",), f"device must be auto, cpu, cuda or cuda:N, got {out['device']!r}"
        )
    if out["language"] is not None and not _LANGUAGE.match(out["language"]):
        raise _Invalid(
            ("language",), f"language must be a language code like 'en', got {out['language']!r}"
        )

    # Options that exclude each other.
    if out["random_weights"]:
        for key in ("resnet_weights", "slowfast_weights"):
            if out[key] is not None:
                raise _Invalid(
                    (key, "random_weights"),
                    f"{key} and random_weights exclude each other: give weight files or "
                    "random_weights: true, not both",
                )
    if out["language"] is not None and out["subtitles"] is None:
        raise _Invalid(
            ("language", "subtitles"),
            "language filters HowTo100M captions: it needs subtitles (the caption JSON)",
        )
    if out["device"].startswith("cuda") and out["gpus_per_worker"] == 0:
        raise _Invalid(
            ("gpus_per_worker", "device"),
            f"gpus_per_worker is 0 but device is {out['device']!r}: a CUDA worker needs a GPU",
        )
    if out["input"] == out["output"]:
        raise _Invalid(("output", "input"), "output must not be the input")
    return out


# --- reading and building ---------------------------------------------------------------------


def load_config(path: str) -> dict[str, Any]:
    """The mapping in YAML file ``path`` (local or fsspec URL); ``{}`` for an empty file.

    Raises :class:`ConfigError` naming the file for a missing file, a YAML error (with its
    line), a repeated key, a document past :mod:`hero_data.yamlfile`'s bounds, or one that is
    not a mapping of names.
    """
    try:
        with fsspec.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError("no such file", path) from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not a YAML file", path) from None
    obj = load_yaml(data, path, ConfigError)
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise ConfigError(f"expected a mapping of options, got a {type(obj).__name__}", path)
    for key in obj:
        if not isinstance(key, str):
            raise ConfigError(f"option names must be strings, got {key!r}", path)
    return obj


def _check_keys(values: dict[str, Any], source: str) -> None:
    for key in values:
        if key not in _FIELDS:
            close = difflib.get_close_matches(str(key), list(_FIELDS), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown option {key!r}{hint}", source, str(key))


def build_config(
    file_values: dict[str, Any], overrides: dict[str, Any], *, source: str | None = None
) -> RunConfig:
    """The :class:`RunConfig` of defaults < ``file_values`` < ``overrides`` (flags).

    ``overrides`` whose value is ``None`` are flags not given and are ignored. ``source`` is
    the YAML file's name, used in errors (``None``: no file). With ``device: cpu``,
    ``gpus_per_worker`` becomes 0. An option that the others make moot, set to a value other
    than its default, is a conflict (``min_timeout_s`` with ``video_timeout_s``,
    ``gpus_per_worker`` with ``device: cpu``). Raises :class:`ConfigError` naming the file or
    the command line, and the key.
    """
    source = source or "config file"
    _check_keys(file_values, source)
    _check_keys(overrides, _COMMAND_LINE)
    flags = {k: v for k, v in overrides.items() if v is not None}
    origin = {k: _DEFAULT for k in _FIELDS} | dict.fromkeys(file_values, source)
    origin |= dict.fromkeys(flags, _COMMAND_LINE)

    def where(keys: tuple[str, ...]) -> str:
        places = {origin[k] for k in keys if origin[k] != _DEFAULT} or {_DEFAULT}
        if len(places) == 1:
            return places.pop()
        return ", ".join(f"{origin[k]} ({k})" for k in keys)

    merged: dict[str, Any] = {k: f.default for k, f in _FIELDS.items() if f.default is not MISSING}
    merged |= file_values
    merged |= flags
    for key in _REQUIRED:
        if merged.get(key) is None:
            raise ConfigError(
                f"{key} is required (in the config file or as --{key})",
                origin[key] if origin[key] != _DEFAULT else _COMMAND_LINE,
                key,
            )

    try:
        values = _validate(merged)
    except _Invalid as e:
        raise ConfigError(e.problem, where(e.keys), e.keys[0]) from None

    def changed(key: str) -> bool:
        return values[key] != _FIELDS[key].default

    if values["video_timeout_s"] is not None:
        for key in ("timeout_per_video_second", "min_timeout_s"):
            if changed(key):
                raise ConfigError(
                    f"video_timeout_s fixes the timeout, so {key} (which only shapes the "
                    "automatic one) must not be set too",
                    where(("video_timeout_s", key)),
                    "video_timeout_s",
                )
    if values["device"] == "cpu":
        if changed("gpus_per_worker") and values["gpus_per_worker"] != 0:
            raise ConfigError(
                f"gpus_per_worker is {values['gpus_per_worker']:g} but device is 'cpu'",
                where(("gpus_per_worker", "device")),
                "gpus_per_worker",
            )
        values["gpus_per_worker"] = 0.0
    return RunConfig(**values)
