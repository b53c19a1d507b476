"""The ``hero`` command group: logging set-up, and every built command registered on it.

Each command lives in its own module of this package (``run``, ``extract``, ``align``, ...);
options that several commands share are declared once, in :mod:`pipelines.cli.options`.
"""

from __future__ import annotations

import logging

import click

from hero_data import __version__
from pipelines.cli.align import align
from pipelines.cli.bench import build, eval_
from pipelines.cli.compat import export, import_
from pipelines.cli.dataset import inspect, upgrade
from pipelines.cli.demo import demo
from pipelines.cli.extract import extract
from pipelines.cli.finetune import finetune
from pipelines.cli.run import run
from pipelines.cli.train import train
from pipelines.cli.weights import weights


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hero")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """HERO toolkit: raw videos and subtitles to HERO training data, and HERO itself.

    Quick look: `hero demo` builds a small dataset from a corpus it synthesizes;
    `hero inspect DATASET` summarizes a dataset.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Progress lines (off a terminal: one every few seconds) are shown without -v.
    logging.getLogger("hero.progress").setLevel(min(level, logging.INFO))


# `hero --help` lists them by name, whatever the order here.
for _command in (
    inspect,
    upgrade,
    run,
    extract,
    weights,
    align,
    demo,
    build,
    eval_,
    export,
    finetune,
    import_,
    train,
):
    main.add_command(_command)
