"""``hero weights``: the models' weight files, where each is and whether it checks out."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipelines.cli.errors import friendly_errors


@click.command()
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
@click.option("--download", is_flag=True, help="Download missing published files first.")
@click.option(
    "--offline", is_flag=True, help="Never download, even with --download (also: HERO_OFFLINE=1)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@friendly_errors
def weights(
    resnet_weights: Path | None,
    slowfast_weights: Path | None,
    download: bool,
    offline: bool,
    as_json: bool,
) -> None:
    """List the models' weight files: where each is, whether its checksum matches.

    One row per file: ResNet-152's and SlowFast's default files (the ones HERO used) and
    SlowFast's alternative, or the files given. "found" is where the file is (the torch hub
    cache, a given path, or missing); "checksum" compares its sha256 with the published prefix
    (torchvision publishes one; PySlowFast and PyTorchVideo do not); "loads" reads it and fits
    it to the architecture. Exit status 1 if a default or given file is missing or fails.
    """
    from dataclasses import asdict

    from extract.models import weight_file_status
    from extract.weights import WEIGHT_FILES

    offline_flag = True if offline else None
    rows = [
        weight_file_status("resnet152", resnet_weights, download=download, offline=offline_flag)
    ]
    rows.append(
        weight_file_status(
            "slowfast_r50", slowfast_weights, download=download, offline=offline_flag
        )
    )
    if slowfast_weights is None:
        for f in WEIGHT_FILES:
            if f.model == "slowfast_r50" and not f.default:
                rows.append(weight_file_status("slowfast_r50", f.file_name))
    bad = [r for r in rows[:2] if r.loads != "ok"]
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
