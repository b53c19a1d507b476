"""Options and helpers that several ``hero`` commands share, declared once.

A shared option has one spelling, one type and one help text everywhere it appears; its
default, where it has one, is read from the config model that owns it (defaults are written
once, in the models) and shown in the help as ``[value]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def verbose() -> int:
    """The ``-v`` count given to ``hero``."""
    ctx = click.get_current_context(silent=True)
    return int(ctx.find_root().params.get("verbose", 0) or 0) if ctx is not None else 0


def shown(value: object) -> str:
    """A default as a flag's help shows it: ``1.5``, ``60``, ``hero``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def extract_default(name: str) -> str:
    """The default of extraction option ``name`` (:class:`extract.config.ExtractConfig`)."""
    from extract.config import ExtractConfig

    return shown(ExtractConfig.default_of(name))


def extraction_options(fn: F) -> F:
    """The feature-extraction options of ``hero run`` and ``hero extract``.

    Every one defaults to ``None`` (a flag: ``None`` when not given), so that the command can
    tell a given value from an absent one: ``hero run`` lets a flag override its config file,
    and both leave the rest to :class:`extract.config.ExtractConfig`. The parameters are named
    after its fields: ``frame_interval``, ``backend``, ``decoder``, ``pixels``, ``device``,
    ``batch_size``, ``compile``, ``sampling``, ``features``, ``resnet_weights``,
    ``slowfast_weights``, ``weights``, ``random_weights``, ``offline``.
    """
    from extract.config import BACKENDS, DECODERS, FEATURES, PIXELS, SAMPLINGS, ExtractConfig

    decorators = [
        click.option(
            "--features",
            metavar="NAME,NAME...",
            help="The extractors to run, in order, comma-separated, each one feature column: "
            f"{', '.join(FEATURES)} (docs/extraction.md) "
            f"[{','.join(ExtractConfig.default_of('features'))}].",
        ),
        click.option(
            "--frame-interval",
            type=float,
            help=f"Seconds per step [{extract_default('frame_interval')}].",
        ),
        click.option(
            "--sampling",
            type=click.Choice(SAMPLINGS),
            help="SlowFast's frame choice: hero (HERO's extractor: depends on the frame rate, "
            "repeats the window's last frame) or uniform (32 frames spread evenly) "
            f"[{extract_default('sampling')}].",
        ),
        click.option(
            "--backend",
            type=click.Choice(BACKENDS),
            help=f"Video decoder [{extract_default('backend')}].",
        ),
        click.option(
            "--decoder",
            type=click.Choice(DECODERS),
            help="Where videos are decoded: cpu (--backend), nvdec (the GPU's decoder through "
            "torchcodec, an optional install; needs a CUDA --device and torch pixels), auto "
            f"(nvdec where usable, video by video, else cpu) [{extract_default('decoder')}].",
        ),
        click.option(
            "--pixels",
            type=click.Choice(PIXELS),
            help="Where frames are scaled and converted to RGB: swscale (CPU, in the decode "
            "thread), torch (raw YUV planes sent to --device and converted there in batches; "
            f"pyav backend only), auto (torch on CUDA, swscale on CPU) "
            f"[{extract_default('pixels')}].",
        ),
        click.option(
            "--device",
            help="auto (CUDA when available; hero run: GPU workers when the cluster has GPUs), "
            f"cpu, or cuda[:N] [{extract_default('device')}].",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            help=f"Steps per model batch [{extract_default('batch_size')}].",
        ),
        click.option(
            "--compile",
            is_flag=True,
            default=None,
            help="torch.compile the models (CUDA only, ignored on CPU): slower start, faster "
            "batches.",
        ),
        click.option(
            "--resnet-weights",
            help="ResNet-152 ImageNet state dict [resnet152-394f9c45.pth in the torch hub "
            "cache, downloaded if missing].",
        ),
        click.option(
            "--slowfast-weights",
            help="SLOWFAST_8x8_R50.pkl (Caffe2, as HERO) or SLOWFAST_8x8_R50.pyth; a bare "
            "published name is looked up in the torch hub cache [the .pkl there, downloaded if "
            "missing].",
        ),
        click.option(
            "--weights",
            metavar="NAME=PATH",
            multiple=True,
            callback=named_paths,
            help="The weight file of extractor NAME of --features other than resnet and "
            "slowfast (clip_vit_b32=ViT-B-32.pt); repeat for several [its published file in "
            "the torch hub cache, downloaded if missing].",
        ),
        click.option(
            "--random-weights",
            is_flag=True,
            default=None,
            help="Seeded random weights: meaningless features, for trying the tool out.",
        ),
        click.option(
            "--offline",
            is_flag=True,
            default=None,
            help="Never download a missing weight file (also: HERO_OFFLINE=1).",
        ),
    ]
    for decorate in reversed(decorators):
        fn = decorate(fn)
    return fn


def named_paths(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str] | None:
    """``("clip_vit_b32=ViT-B-32.pt", ...)`` -> ``{"clip_vit_b32": "ViT-B-32.pt"}``; None when
    the flag is not given."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{value!r}: give NAME=PATH", ctx=ctx, param=param)
        out[name.strip()] = path
    return out or None


def training_device_options(default: Callable[[str], str]) -> Callable[[F], F]:
    """``--device`` and ``--precision`` of ``hero train`` and ``hero finetune``; ``default(name)``
    is the command's config default of option ``name``, as its help shows it."""
    from hero_model.train_config import PRECISIONS

    def decorate(fn: F) -> F:
        fn = click.option(
            "--precision",
            type=click.Choice(PRECISIONS),
            help="auto: bf16 autocast on a GPU that has bf16, else fp32; bf16 is refused on a "
            f"device without it [{default('precision')}].",
        )(fn)
        return click.option(
            "--device", help=f"auto (a GPU if any), cpu, cuda or cuda:N [{default('device')}]."
        )(fn)

    return decorate


no_progress_option = click.option(
    "--no-progress",
    is_flag=True,
    help="No progress output [live bars on a terminal; elsewhere, a log line now and then].",
)
