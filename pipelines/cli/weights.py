"""``hero weights``: the models' weight files, where each is and whether it checks out."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipelines.cli.errors import friendly_errors
from pipelines.cli.options import named_paths


@click.command()
@click.option(
    "--features",
    metavar="NAME,NAME...",
    help="List the weight files of these extractors (as hero run --features) [resnet,slowfast].",
)
@click.option(
    "--resnet-weights",
    type=click.Path(path_type=Path),
    help="Check this ResNet-152 file instead of the default one.",
)
@click.option(
    "--slowfast-weights",
    type=click.Path(path_type=Path),
    help="Check this SlowFast file instead of the default one.",
)
@click.option(
    "--weights",
    metavar="NAME=PATH",
    multiple=True,
    callback=named_paths,
    help="Check this file for extractor NAME (one of --features but resnet and slowfast).",
)
@click.option("--download", is_flag=True, help="Download missing published files first.")
@click.option(
    "--offline", is_flag=True, help="Never download, even with --download (also: HERO_OFFLINE=1)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@friendly_errors
def weights(
    features: str | None,
    resnet_weights: Path | None,
    slowfast_weights: Path | None,
    weights: dict[str, str] | None,
    download: bool,
    offline: bool,
    as_json: bool,
) -> None:
    """List the extractors' weight files: where each is, whether its checksum matches.

    One row per file: the default file of each extractor of --features (by default ResNet-152
    and SlowFast, the ones HERO used) and the published alternatives of an extractor whose
    file is not given, or the files given. "found" is where the file is (the torch hub cache,
    a given path, or missing); "checksum" compares its sha256 with the published one
    (torchvision and OpenAI publish one; PySlowFast, PyTorchVideo and MIL-NCE do not);
    "loads" reads it and fits it to the architecture. Exit status 1 if a default or given file
    is missing or fails.
    """
    from dataclasses import asdict

    from extract.config import ExtractConfig
    from extract.features import get_extractor
    from extract.models import weight_file_status

    values: dict[str, object] = {"resnet_weights": resnet_weights, "weights": weights}
    values.update(slowfast_weights=slowfast_weights, features=features)
    cfg = ExtractConfig(**{k: str(v) if isinstance(v, Path) else v for k, v in values.items() if v})
    offline_flag = True if offline else None
    rows, alternatives = [], []
    for name in cfg.features:
        spec = get_extractor(name)
        path = cfg.weights_for(name)
        rows.append(
            weight_file_status(spec.architecture, path, download=download, offline=offline_flag)
        )
        if path is None:
            for f in spec.weight_files[1:]:
                alternatives.append(weight_file_status(spec.architecture, f.file_name))
    bad = [r for r in rows if r.loads != "ok"]
    rows += alternatives
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="weight files")
        for column in ("model", "file", "default", "found", "checksum", "loads"):
            table.add_column(column)
        for r in rows:
            table.add_row(
                r.model,
                r.file_name,
                "yes" if r.default else "-",
                r.found,
                r.checksum or "-",
                "-" if r.found == "missing" else ("ok" if r.loads == "ok" else "NO"),
            )
        Console().print(table)
        for r in rows:
            click.echo(f"{r.file_name}: {r.path}" + (f" (sha256 {r.sha256})" if r.sha256 else ""))
        for r in rows:
            if r.found == "missing":
                fetch = f"`hero weights --download` fetches it from {r.url}" if r.url else ""
                click.echo(f"{r.file_name}: missing; {fetch or r.loads}", err=True)
            elif r.loads != "ok":
                click.echo(f"{r.file_name}: {r.loads}", err=True)
    if bad:
        raise SystemExit(1)
