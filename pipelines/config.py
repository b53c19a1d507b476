"""The options of ``hero run``: one frozen :class:`RunConfig`, from a YAML file and flags.

A run holds an extraction config (:class:`extract.config.ExtractConfig`, the ``extract:``
section of the YAML file) and the options of the run itself. Both are typed models of the one
configuration system (:mod:`hero_data.configmodel`): defaults are written once, in the models.

Precedence: a command-line flag that is not ``None`` wins over the YAML file, the file over
the defaults (:func:`build_config`). Everything is validated when the config is built; every
error is a :class:`ConfigError` naming where the bad value came from (the YAML file or the
command line), the key and the problem. ``configs/run.example.yaml`` lists every option with
its default.

The extraction options may also be written at the top level of the file, as before the
``extract:`` section existed (``frame_interval: 1.5``); they are read into ``extract`` with a
deprecation warning, and errors name them as they were written. Flags are always flat
(``--frame-interval``).

Relative paths in a config file are relative to the working directory ``hero run`` starts in,
not to the file (as for the same paths given as flags).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator

from extract.config import BACKENDS, SAMPLINGS, ExtractConfig
from hero_data.configmodel import (
    ConfigModel,
    Flag,
    Number,
    Text,
    Whole,
    conflict,
    matching,
    option_error,
    read_mapping,
)
from hero_data.errors import OptionError
from hero_data.grid import GridError, check_clip_length

__all__ = [
    "BACKENDS",
    "CONTENT_KEYS",
    "EXTRACT_KEYS",
    "SAMPLINGS",
    "ConfigError",
    "RunConfig",
    "build_config",
    "load_config",
]

log = logging.getLogger(__name__)

CONTENT_KEYS = (
    "frame_interval",
    "clip_length",
    "language",
    "random_weights",
    "sampling",
    "features",
)
"""Options that decide what a dataset holds (see :meth:`RunConfig.dataset_config`)."""

EXTRACT_KEYS = tuple(ExtractConfig.model_fields)
"""Keys of the ``extract`` section, also accepted at the top level and as flags."""

_COMMAND_LINE = "command line"
_DEFAULT = "default"

Language = Annotated[
    Text, matching(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$", "a language code like 'en'")
]


class ConfigError(OptionError):
    """A ``hero run`` option that is unknown, of the wrong type, out of range or in conflict."""


class RunConfig(ConfigModel):
    """Every option of ``hero run``.

    Attributes:
        input: folder of videos, or a ``.csv``/``.jsonl`` manifest; local path or fsspec URL.
        output: the dataset folder (local path or fsspec URL).
        subtitles: HowTo100M caption JSON (``{id: {start, end, text}}``); ``None``: subtitle
            files next to the videos (or named in the manifest).
        language: keep only videos whose captions are in this language (ISO 639-1 code, e.g.
            ``"en"``); needs ``subtitles``. ``None``: no filter.
        clip_length: seconds per clip, a whole number of steps; ``None``: one clip per video.
        extract: how features are extracted (:class:`extract.config.ExtractConfig`: frame
            interval, decoder, device, batch size, sampling, weights, ...); its keys may also
            be given at the top level (the older flat form) and as flags. ``extract.compile``
            compiles the models in each worker before its first batch (slow to start).
        workers: extraction workers, at most; ``None``: as many as the nodes hold
            (:func:`pipelines.cluster.plan_workers`).
        cpus_per_worker: CPU cores Ray reserves per worker (a worker fits on one node);
            ``None``: 2, or less on nodes that have less (:func:`pipelines.cluster.plan_workers`).
        gpus_per_worker: GPUs Ray reserves per worker (fractions share a GPU); 0 with
            ``extract.device: cpu``.
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

    error = ConfigError

    input: Text
    output: Text
    subtitles: Text | None = None
    language: Language | None = None
    clip_length: Number | None = 60.0
    extract: ExtractConfig = ExtractConfig()
    workers: Whole | None = Field(None, ge=1)
    cpus_per_worker: Number | None = Field(None, gt=0)
    gpus_per_worker: Number = Field(1.0, ge=0)
    tokenizer: Text | None = None
    video_timeout_s: Number | None = Field(None, gt=0)
    timeout_per_video_second: Number = Field(4.0, ge=0)
    min_timeout_s: Number = Field(300.0, gt=0)
    max_attempts: Whole = Field(3, ge=1)
    rows_per_shard: Whole = Field(1024, ge=1)
    compact_every_s: Number = Field(60.0, gt=0)
    address: Text | None = None
    strict: Flag = False
    strict_subtitles: Flag = False
    overwrite: Flag = False

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_keys(cls, values: Any) -> Any:
        return _fold(values)[0] if isinstance(values, Mapping) else values

    @classmethod
    def accepted_keys(cls) -> list[str]:
        return [*cls.model_fields, *EXTRACT_KEYS]

    @classmethod
    def display_names(cls, values: Mapping[str, Any]) -> dict[str, str]:
        return _fold(values)[1]

    @model_validator(mode="after")
    def _rules(self) -> RunConfig:
        if self.clip_length is not None:
            try:
                check_clip_length(self.clip_length, self.extract.frame_interval)
            except GridError as e:
                raise conflict(
                    ["clip_length", "extract.frame_interval"], f"clip_length: {e}"
                ) from None
        if self.language is not None and self.subtitles is None:
            raise conflict(
                ["language", "subtitles"],
                "language filters HowTo100M captions: it needs subtitles (the caption JSON)",
            )
        device = self.extract.device
        if device.startswith("cuda") and self.gpus_per_worker == 0:
            raise conflict(
                ["gpus_per_worker", "extract.device"],
                f"gpus_per_worker is 0 but device is {device!r}: a CUDA worker needs a GPU",
            )
        if self.input == self.output:
            raise conflict(["output", "input"], "output must not be the input")
        return self

    # The extraction options, read as before the extract section existed.
    frame_interval = property(lambda self: self.extract.frame_interval)
    backend = property(lambda self: self.extract.backend)
    device = property(lambda self: self.extract.device)
    batch_size = property(lambda self: self.extract.batch_size)
    compile = property(lambda self: self.extract.compile)
    sampling = property(lambda self: self.extract.sampling)
    features = property(lambda self: list(self.extract.features))  # as JSON reads it back
    resnet_weights = property(lambda self: self.extract.resnet_weights)
    slowfast_weights = property(lambda self: self.extract.slowfast_weights)
    random_weights = property(lambda self: self.extract.random_weights)
    offline = property(lambda self: bool(self.extract.offline))

    def dataset_config(self) -> dict[str, Any]:
        """The options that decide the dataset's content (:data:`CONTENT_KEYS`).

        A run refuses to resume into an existing dataset whose recorded values differ, unless
        ``overwrite``. Content: ``frame_interval`` and ``clip_length`` (the grid and the rows),
        ``language`` (which videos are in), ``random_weights``, ``sampling`` and ``features``
        (what the features are and mean: the extractors, in order). Weight
        and tokenizer files are content too, but by what they hold, not where they are: the
        pipeline adds their sha256. Not content: where things are (``input``, ``output``,
        ``subtitles``; a corpus may grow between runs), how the work is done (``backend``,
        ``decoder`` and ``pixels``: the decoders select the same frames, and pixels differ by
        grey levels at most; ``device``, ``batch_size``, ``compile``, ``workers``, the
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


def _fold(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``values`` with top-level extraction keys moved into ``extract`` (they win over the same
    keys there), and the names to give them in errors (``extract.frame_interval`` ->
    ``frame_interval``)."""
    flat = {k: v for k, v in values.items() if k in EXTRACT_KEYS}
    if not flat:
        return dict(values), {}
    out = {k: v for k, v in values.items() if k not in flat}
    section = out.get("extract", {})
    if isinstance(section, ExtractConfig):
        section = section.model_dump()
    if isinstance(section, Mapping):
        out["extract"] = {**section, **flat}
    return out, {f"extract.{k}": k for k in flat}


def _paths(values: Mapping[str, Any]) -> list[str]:
    """The dotted paths of the options ``values`` (folded) sets."""
    paths = [k for k in values if k != "extract"]
    section = values.get("extract")
    if isinstance(section, Mapping):
        paths += [f"extract.{k}" for k in section]
    elif "extract" in values:
        paths.append("extract")
    return paths


# --- reading and building ---------------------------------------------------------------------


def load_config(path: str) -> dict[str, Any]:
    """The mapping in YAML file ``path`` (local or fsspec URL); ``{}`` for an empty file.

    Raises :class:`ConfigError` naming the file for a missing file, a YAML error (with its
    line), a repeated key, a document past :mod:`hero_data.yamlfile`'s bounds, or one that is
    not a mapping of names (:func:`hero_data.configmodel.read_mapping`).
    """
    return read_mapping(path, ConfigError)


_warned: set[str] = set()


def build_config(
    file_values: dict[str, Any], overrides: dict[str, Any], *, source: str | None = None
) -> RunConfig:
    """The :class:`RunConfig` of defaults < ``file_values`` < ``overrides`` (flags).

    ``overrides`` whose value is ``None`` are flags not given and are ignored; they are flat
    (``frame_interval``, not ``extract.frame_interval``). ``source`` is the YAML file's name,
    used in errors (``None``: no file). With ``device: cpu``, ``gpus_per_worker`` becomes 0.
    An option that the others make moot, set to a value other than its default, is a conflict
    (``min_timeout_s`` with ``video_timeout_s``, ``gpus_per_worker`` with ``device: cpu``).
    Raises :class:`ConfigError` naming the file or the command line, and the key.
    """
    source = source or "config file"
    from_file, file_names = _fold(file_values)
    if file_names and source not in _warned:
        _warned.add(source)
        log.warning(
            "%s: extraction options at the top level (%s) are deprecated; put them in an "
            "'extract:' section",
            source,
            ", ".join(file_names.values()),
        )
    flags, flag_names = _fold({k: v for k, v in overrides.items() if v is not None})
    names = file_names | flag_names
    origin = dict.fromkeys(_paths(from_file), source) | dict.fromkeys(_paths(flags), _COMMAND_LINE)

    def where(paths: tuple[str, ...]) -> str:
        found = [(p, origin[p]) for p in paths if p in origin]
        places = {place for _, place in found} or {_DEFAULT}
        if len(places) == 1:
            return places.pop()
        return ", ".join(f"{place} ({names.get(p, p)})" for p, place in found)

    merged = {**from_file, **flags}
    if isinstance(from_file.get("extract"), Mapping) and isinstance(flags.get("extract"), Mapping):
        merged["extract"] = {**from_file["extract"], **flags["extract"]}
    for key in ("input", "output"):
        if merged.get(key) is None:
            raise ConfigError(
                f"{key} is required (in the config file or as --{key})",
                origin.get(key, _COMMAND_LINE),
                key,
            )
    try:
        cfg = RunConfig.model_validate(merged)
    except ValidationError as e:
        raise option_error(
            e, ConfigError, source, names=names, where=where, model=RunConfig
        ) from None

    def changed(key: str) -> bool:
        return getattr(cfg, key) != RunConfig.model_fields[key].default

    if cfg.video_timeout_s is not None:
        for key in ("timeout_per_video_second", "min_timeout_s"):
            if changed(key):
                raise ConfigError(
                    f"video_timeout_s fixes the timeout, so {key} (which only shapes the "
                    "automatic one) must not be set too",
                    where(("video_timeout_s", key)),
                    "video_timeout_s",
                )
    if cfg.extract.device == "cpu":
        if changed("gpus_per_worker") and cfg.gpus_per_worker != 0:
            raise ConfigError(
                f"gpus_per_worker is {cfg.gpus_per_worker:g} but device is 'cpu'",
                where(("gpus_per_worker", "extract.device")),
                "gpus_per_worker",
            )
        cfg = cfg.model_copy(update={"gpus_per_worker": 0.0})
    return cfg
